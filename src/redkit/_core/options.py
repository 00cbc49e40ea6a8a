"""``connect()``'s options, each declared once: name, type, default, converter, URL use, doc.

Every option is one field of :class:`ConnectOptions`, declared with :func:`_option`; the list of
valid names, the ones a URL's query string may carry, the converters and the option reference
in ``connect()``'s docstring (:func:`options_help`) are all derived from those fields. To add
an option, add one field.

Converters accept the typed value or its text (as it comes in a query string:
``?socket_timeout=1.5&read_from_replicas=true``) and raise :class:`ConfigurationError` naming the
option and, unless the option is secret, the value.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from redkit._core.backoff import Backoff, BackoffPolicy
from redkit._core.connection_events import ConnectionEvent
from redkit._core.specs import ConnectionSpec, TcpSpec, UnixSpec
from redkit.errors import ConfigurationError

Converter = Callable[[object], Any]
EventCallback = Callable[[ConnectionEvent], object]


class InvalidValue(Exception):
    """Raised by a converter: ``expected`` says what a valid value is (the caller adds the rest)."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


# --------------------------------------------------------------------------- converters


def integer(minimum: int) -> Converter:
    """An int ``>= minimum`` (or its decimal text)."""

    def convert(value: object) -> int:
        number = value
        if isinstance(value, str):
            if not re.fullmatch(r"[+-]?\d+", value.strip()):
                raise InvalidValue(f"an integer >= {minimum}")
            number = int(value.strip())
        if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
            raise InvalidValue(f"an integer >= {minimum}")
        return number

    return convert


#: ``max_connections``: the default (redis-py 8's own), and the most a waiting pool may hold.
DEFAULT_MAX_CONNECTIONS = 100
MAX_WAITING_POOL = 100_000


def _pool_size(value: object) -> int:
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return DEFAULT_MAX_CONNECTIONS  # redis-py 8 has no unbounded pool either
    return integer(1)(value)  # type: ignore[no-any-return]


def _seconds(*, allow_none: bool, positive: bool) -> Converter:
    what = ("a number > 0" if positive else "a number >= 0") + (" or None" if allow_none else "")

    def convert(value: object) -> float | None:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
            if allow_none:
                return None
            raise InvalidValue(what)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise InvalidValue(what) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(what)
        number = float(value)
        if number != number or number < 0 or (positive and number == 0) or number == float("inf"):
            raise InvalidValue(what)
        return number

    return convert


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def boolean(value: object) -> bool:
    """A bool (or true/false, 1/0, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise InvalidValue("a boolean (true/false, 1/0, yes/no, on/off)")


def _string(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidValue("a non-empty string")
    return value


def _optional_string(value: object) -> str | None:
    return None if value is None else _string(value)


def _secret_string(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise InvalidValue(f"a non-empty str or None, got {type(value).__name__}")


def _client_name(value: object) -> str | None:
    if value is None:
        return None
    text = _string(value)
    if any(ch.isspace() for ch in text):
        raise InvalidValue("a name without spaces or newlines (Redis refuses them)")
    return text


def _cert_reqs(value: object) -> str:
    text = _string(value).lower()
    if text not in ("none", "optional", "required"):
        raise InvalidValue("'none', 'optional' or 'required'")
    return text


def _callback(value: object) -> EventCallback | None:
    if value is not None and not callable(value):
        raise InvalidValue("a callable taking a ConnectionEvent, or None")
    return value  # type: ignore[return-value]


def _backoff(value: object) -> BackoffPolicy:
    if not isinstance(value, BackoffPolicy):
        raise InvalidValue("a redkit Backoff (or any object with compute(failures) and reset())")
    return value


# --------------------------------------------------------------------------- the schema


def _option(
    default: object,
    convert: Converter,
    doc: str,
    *,
    in_url: bool = True,
    secret: bool = False,
    factory: Callable[[], object] | None = None,
) -> Any:
    """One option: a field of :class:`ConnectOptions` that carries its own description."""
    metadata = {"convert": convert, "doc": doc, "in_url": in_url, "secret": secret}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class ConnectOptions:
    """``connect()``'s validated options: the URL's query options and the keywords merged."""

    retries: int = _option(
        3,
        integer(0),
        "retries of a command or connection attempt after a connection error or timeout "
        "(never after an authentication failure)",
    )
    backoff: BackoffPolicy = _option(
        None,
        _backoff,
        "the delay between retries (default Backoff.default(): min(n * 50ms, 2s) less up to "
        "10% jitter)",
        in_url=False,
        factory=Backoff.default,
    )
    socket_timeout: float | None = _option(
        5.0,
        _seconds(allow_none=True, positive=True),
        "seconds to wait for a reply; None waits forever",
    )
    socket_connect_timeout: float | None = _option(
        2.0,
        _seconds(allow_none=True, positive=True),
        "seconds to wait for a connection; None waits forever",
    )
    health_check_interval: float = _option(
        0.0,
        _seconds(allow_none=False, positive=False),
        "PING a connection idle longer than this many seconds before using it (0: off)",
    )
    read_from_replicas: bool = _option(
        False,
        boolean,
        "Cluster: reads go round-robin to each shard's replicas (a shard without replicas "
        "serves reads from its primary). Sentinel: connect() still returns the master's client; "
        "replica_client() on it gives one on the replicas. Any other URL refuses it",
    )
    max_redirections: int = _option(
        16, integer(1), "Cluster: MOVED/ASK redirections followed per command"
    )
    client_name: str | None = _option(
        None, _client_name, "the name CLIENT LIST shows for each connection"
    )
    decode_responses: bool = _option(
        False, boolean, "return str instead of bytes (redkit's patterns need bytes: leave it off)"
    )
    max_connections: int = _option(
        DEFAULT_MAX_CONNECTIONS,
        _pool_size,
        "connections per pool (per node on a Cluster); None means the default (redis-py has "
        "no unbounded pool: its own default is 100 too). redkit's commands use at most 3/4 "
        "of them, and on the sync face keep up to min(8, max_connections/8) checked out "
        "(lanes)",
    )
    pool_timeout: float | None = _option(
        5.0,
        _seconds(allow_none=True, positive=False),
        "seconds a command waits for a free connection when all max_connections are in use "
        "(then redis-py's MaxConnectionsError, which redkit raises as BackendBusy); None waits "
        "for as long as it takes; 0 fails at once (redis-py's default pool). A Sentinel "
        "group's and a sync Cluster's pools wait too; an asyncio Cluster's nodes cannot "
        "(redis-py's asyncio RedisCluster has no waiting pool): there a node fails at once",
    )
    username: str | None = _option(
        None, _optional_string, "the ACL user (default: the URL's)", in_url=False
    )
    password: str | None = _option(
        None,
        _secret_string,
        "the password (default: the URL's, or REDIS_PASSWORD); never shown in errors or reprs",
        in_url=False,
        secret=True,
    )
    ssl_cert_reqs: str | None = _option(
        None, _cert_reqs, "TLS: 'none', 'optional' or 'required' (redis-py's default)"
    )
    ssl_ca_certs: str | None = _option(None, _optional_string, "TLS: the CA bundle's path")
    ssl_certfile: str | None = _option(None, _optional_string, "TLS: the client certificate")
    ssl_keyfile: str | None = _option(None, _optional_string, "TLS: the client key")
    ssl_check_hostname: bool | None = _option(
        None, boolean, "TLS: check the server's name against its certificate"
    )
    on_connect: EventCallback | None = _option(
        None,
        _callback,
        "called with a ConnectionEvent when a connection is established",
        in_url=False,
    )
    on_connection_error: EventCallback | None = _option(
        None,
        _callback,
        "called with a ConnectionEvent for every failed connection attempt, and when an "
        "established connection fails (redis-py then reconnects and retries)",
        in_url=False,
    )
    on_close: EventCallback | None = _option(
        None,
        _callback,
        "called with a ConnectionEvent when an established connection closes",
        in_url=False,
    )

    def ssl_kwargs(self) -> dict[str, Any]:
        """The ``ssl_*`` keyword arguments for redis-py that were set."""
        names = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
        out: dict[str, Any] = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        if self.ssl_check_hostname is not None:
            out["ssl_check_hostname"] = self.ssl_check_hostname
        return out


@dataclass(frozen=True)
class Option:
    """One option as declared on :class:`ConnectOptions`."""

    name: str
    convert: Converter
    default: str
    doc: str
    in_url: bool
    secret: bool


def _declared() -> dict[str, Option]:
    out: dict[str, Option] = {}
    for spec in fields(ConnectOptions):
        meta = spec.metadata
        if spec.default is not MISSING:
            default = repr(spec.default)
        else:
            factory: Any = spec.default_factory
            default = f"{factory.__qualname__}()"
        out[spec.name] = Option(
            spec.name, meta["convert"], default, meta["doc"], meta["in_url"], meta["secret"]
        )
    return out


#: Every option, by name, in declaration order.
OPTIONS: Mapping[str, Option] = _declared()
#: The keyword options ``connect()`` accepts, sorted.
VALID_OPTIONS: tuple[str, ...] = tuple(sorted(OPTIONS))
#: The options a URL's query string may carry (not callables, objects or credentials).
URL_OPTIONS: frozenset[str] = frozenset(name for name, o in OPTIONS.items() if o.in_url)


def convert_option(name: str, value: object, *, show_value: bool = True) -> Any:
    """``value`` converted for option ``name``; ConfigurationError if it is invalid.

    The message names the option and shows the value unless the option is secret or
    ``show_value`` is false (then only its type).
    """
    option = OPTIONS[name]
    try:
        return option.convert(value)
    except InvalidValue as exc:
        expected = exc.expected
    # Raised outside the except block, so no exception chain carries the value either.
    if show_value and not option.secret:
        raise ConfigurationError(f"option {name}={value!r} is invalid: expected {expected}")
    raise ConfigurationError(
        f"option {name} is invalid (a {type(value).__name__}; value not shown): expected {expected}"
    )


def options_help() -> str:
    """The option reference, one paragraph per option, for ``connect()``'s docstring."""
    lines = []
    for option in OPTIONS.values():
        where = "" if option.in_url else "; keyword only"
        lines.append(f"``{option.name}`` ({option.default}{where})")
        lines += textwrap.wrap(
            option.doc + ".", 88, initial_indent="    ", subsequent_indent="    "
        )
    return "\n".join(lines)


def resolve_options(spec: ConnectionSpec, options: Mapping[str, object]) -> ConnectOptions:
    """Validate ``options`` (``connect()``'s keywords) over the URL's query options.

    Unknown names raise :class:`ConfigurationError` listing the valid ones; keywords win over
    the query string; ``username``/``password`` default to the URL's.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"unknown connect() option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(str, unknown))}; valid options: {', '.join(VALID_OPTIONS)}"
        )
    values: dict[str, Any] = {}
    for name in ("username", "password"):
        if getattr(spec, name, None) is not None:
            values[name] = getattr(spec, name)
    values.update(spec.options)
    for name, value in options.items():
        values[name] = convert_option(name, value)
    size = values.get("max_connections", DEFAULT_MAX_CONNECTIONS)
    if values.get("pool_timeout", 5.0) != 0 and size > MAX_WAITING_POOL:
        raise ConfigurationError(
            f"max_connections={size} is more than a pool that waits may hold "
            f"({MAX_WAITING_POOL}; a server accepts 10000 clients by default): "
            "lower it, or pass pool_timeout=0 for a pool that never waits"
        )
    if isinstance(spec, TcpSpec | UnixSpec) and values.get("read_from_replicas"):
        raise ConfigurationError(
            f"read_from_replicas needs a Cluster or Sentinel URL, not {spec.url!r}"
        )
    return ConnectOptions(**values)


__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "MAX_WAITING_POOL",
    "OPTIONS",
    "URL_OPTIONS",
    "VALID_OPTIONS",
    "ConnectOptions",
    "InvalidValue",
    "Option",
    "boolean",
    "convert_option",
    "integer",
    "options_help",
    "resolve_options",
]
