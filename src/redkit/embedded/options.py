"""The options of an :class:`~redkit.embedded.EmbeddedServer`, checked once, and the
configuration files they become.

Every bad option raises :class:`~redkit.errors.ConfigurationError` naming it, before any
process starts. Configuration values are written to a file (never to the command line, where
``ps`` would show a password), each one quoted so no value can add a line of its own.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from redkit.errors import ConfigurationError

__all__ = ["Options", "conf_text", "format_address", "make_options"]

#: Options the topology sets itself; a user value would break it, so they are refused.
MANAGED = frozenset(
    {
        "port",
        "bind",
        "dir",
        "logfile",
        "daemonize",
        "include",
        "cluster-enabled",
        "cluster-config-file",
        "cluster-port",
        "replicaof",
        "slaveof",
    }
)
#: Options whose values are never shown in a message.
SECRETS = frozenset({"requirepass", "masterauth"})

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_MASK = "***"


@dataclass(frozen=True)
class Options:
    """Checked options: what to start, where, and the extra server configuration."""

    cluster: int = 0
    sentinel: bool = False
    host: str = "127.0.0.1"
    config: Mapping[str, str] = field(default_factory=dict, repr=False)
    startup_timeout: float = 20.0

    @property
    def topology(self) -> str:
        """``"standalone"``, ``"cluster"`` or ``"sentinel"``."""
        return "cluster" if self.cluster else "sentinel" if self.sentinel else "standalone"

    @property
    def password(self) -> str | None:
        """The ``requirepass`` of the data nodes, or None."""
        return self.config.get("requirepass") or None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value in the configuration, to mask in logs and messages."""
        return tuple(v for k, v in self.config.items() if k in SECRETS and v)


def make_options(
    *,
    cluster: object,
    sentinel: object,
    host: object,
    config: object,
    startup_timeout: object,
) -> Options:
    """Check every option and return them normalised; ConfigurationError names a bad one."""
    count = _cluster(cluster)
    if not isinstance(sentinel, bool):
        raise ConfigurationError(f"sentinel must be True or False, not {_show(sentinel)}")
    if count and sentinel:
        raise ConfigurationError("an EmbeddedServer is either a cluster or a sentinel group")
    return Options(
        cluster=count,
        sentinel=sentinel,
        host=_host(host),
        config=_config(config),
        startup_timeout=_timeout(startup_timeout),
    )


def _show(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def _cluster(value: object) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(
            f"cluster must be a number of primaries (0 for no cluster), not {value!r}"
        )
    try:
        count = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigurationError(
            f"cluster must be a number of primaries (an int >= 0), not {_show(value)}"
        ) from None
    if count < 0:
        raise ConfigurationError(f"cluster must be 0 or a number of primaries, not {count}")
    return count


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"startup_timeout must be a number of seconds, not {_show(value)}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(
            f"startup_timeout must be a positive number of seconds, not {value!r}"
        )
    return seconds


def _host(value: object) -> str:
    """An IP address to bind and to put in URLs (``localhost`` means ``127.0.0.1``)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"host must be an IP address string, not {_show(value)}")
    text = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if text == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ConfigurationError(
            f"host={value!r} is not an IP address; use a loopback address such as "
            "'127.0.0.1' or '::1'"
        ) from None
    if address.is_unspecified or "%" in text:
        raise ConfigurationError(
            f"host={value!r} cannot be put in a URL; use an address such as '127.0.0.1' or '::1'"
        )
    return str(address)


def _config(value: object) -> dict[str, str]:
    """Names without leading dashes, lower-cased; values as the server spells them.

    A value is a ``str`` (one argument, written as is), an ``int`` (``64`` -> ``"64"``) or a
    ``bool`` (``True`` -> ``"yes"``); anything else (a float, None, a list) is refused, since
    the server's spelling of it would be a guess.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"config must be a mapping of option names to values, not {_show(value)}"
        )
    out: dict[str, str] = {}
    for key, raw in value.items():
        if not isinstance(key, str):
            raise ConfigurationError(f"config option names must be str, not {_show(key)}")
        name = key.lstrip("-").lower()
        if not _NAME.fullmatch(name):
            raise ConfigurationError(f"config option name {key!r} is not a server option name")
        if name in MANAGED:
            raise ConfigurationError(
                f"config option {name!r} is set by EmbeddedServer itself and cannot be given"
            )
        if name in out:
            raise ConfigurationError(f"config option {name!r} is given twice")
        out[name] = _config_value(name, raw)
    return out


def _config_value(name: str, value: object) -> str:
    shown = _MASK if name in SECRETS else repr(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise ConfigurationError(
            f"config option {name!r} must be a str, int or bool, not {type(value).__name__} {shown}"
        )
    if "\0" in value:
        raise ConfigurationError(f"config option {name!r} contains a NUL character")
    return value


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def quote(value: str) -> str:
    """``value`` as one double-quoted argument of a server configuration file."""
    out = ['"']
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char < " " or char == "\x7f":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def conf_text(lines: Iterable[tuple[str, ...]]) -> str:
    """A configuration file: one ``name "arg" "arg"...`` line per tuple."""
    return "".join(" ".join([name, *map(quote, args)]) + "\n" for name, *args in lines)
