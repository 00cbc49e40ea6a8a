"""Connection URLs and ``connect()`` options, parsed and validated without I/O.

Schemes::

    redis://[[user]:password@]host[:port][/db][?option=value...]
    rediss://...                                   the same over TLS
    unix://[[user]:password@]/path/to/socket.sock[?db=0]
    redis+cluster://host1:port1,host2:port2[?...]   (also rediss+cluster://)
    redis+sentinel://[[user]:password@]s1:p1,s2:p2/master_name[/db][?sentinel_password=...]
                                                    (also rediss+sentinel://; the password is
                                                    the master's, sentinel_password the
                                                    sentinels'; sentinel port defaults to 26379)
    embedded://[?cluster=3][&sentinel=true]         start the bundled Valkey (redkit.embedded)

With no URL, :func:`resolve_spec` reads ``REDIS_URL``; else builds one from ``REDIS_HOST``,
``REDIS_PORT``, ``REDIS_PASSWORD`` and ``REDIS_DB`` when any is set; else uses
``redis://localhost:6379/0``. Every problem raises :class:`~redkit.errors.ConfigurationError`
naming it and the URL, with passwords masked as ``***``.

Client options may also be given in the query string (``?socket_timeout=1.5&client_name=web``);
keyword options to ``connect()`` override them. :func:`resolve_options` validates both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.backoff import AbstractBackoff

from redkit._core.backoff import Backoff
from redkit.errors import ConfigurationError

Kind = Literal["standalone", "cluster", "sentinel", "embedded"]
EventKind = Literal["connect", "error", "close"]

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379

# scheme -> (kind, ssl)
_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": ("standalone", False),
    "rediss": ("standalone", True),
    "unix": ("standalone", False),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "embedded": ("embedded", False),
}

_MASK = "***"
_QUERY_SECRET = re.compile(r"((?:^|[?&])(?:sentinel_)?password=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with the password in its user info and ``*password=`` query values masked."""
    scheme, sep, rest = url.partition("://")
    if sep:
        query_at = rest.find("?")
        head, tail = (rest, "") if query_at < 0 else (rest[:query_at], rest[query_at:])
        at = head.rfind("@")
        if at >= 0:
            userinfo = head[:at]
            colon = userinfo.find(":")
            if colon >= 0 and not userinfo.startswith("/"):
                head = userinfo[: colon + 1] + _MASK + head[at:]
        url = f"{scheme}{sep}{head}{_QUERY_SECRET.sub(lambda m: m.group(1) + _MASK, tail)}"
    else:
        url = _QUERY_SECRET.sub(lambda m: m.group(1) + _MASK, url)
    return url


@dataclass(frozen=True)
class ConnectionSpec:
    """Where and how to connect, as parsed from a URL (or the environment).

    ``hosts`` holds ``(host, port)`` pairs: one for a standalone server, the startup nodes of a
    Cluster, or the sentinels of a Sentinel group (``master`` names the monitored master).
    ``path`` is set for a ``unix://`` socket (``hosts`` is then empty). ``options`` holds the
    client options given in the query string, already converted (see :func:`resolve_options`).
    ``url`` is the URL with passwords masked, for messages.
    """

    kind: Kind
    hosts: tuple[tuple[str, int], ...] = ()
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    path: str | None = None
    master: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    embedded_cluster: int = 0
    embedded_sentinel: bool = False
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    url: str = ""

    @property
    def address(self) -> str:
        """``host:port[,host:port...]`` or the socket path, for messages."""
        if self.path is not None:
            return self.path
        return ",".join(_format_host(h, p) for h, p in self.hosts)


def _format_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------- option values


def _bad(name: str, value: object, expected: str) -> ConfigurationError:
    return ConfigurationError(f"option {name}={value!r} is invalid: expected {expected}")


def _int(name: str, value: object, minimum: int) -> int:
    number = value
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?\d+", text):
            raise _bad(name, value, f"an integer >= {minimum}")
        number = int(text)
    if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
        raise _bad(name, value, f"an integer >= {minimum}")
    return number


def _float(name: str, value: object, *, allow_none: bool, positive: bool) -> float | None:
    what = "a number > 0" if positive else "a number >= 0"
    if allow_none:
        what += " or None"
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        if allow_none:
            return None
        raise _bad(name, value, what)
    given = value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _bad(name, given, what) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, given, what)
    number = float(value)
    if number != number or number < 0 or (positive and number == 0) or number == float("inf"):
        raise _bad(name, given, what)
    return number


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _bad(name, value, "a boolean (true/false, 1/0, yes/no, on/off)")


def _str(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(name, value, "a non-empty string")
    return value


def _client_name(name: str, value: object) -> str | None:
    if value is None:
        return None
    text = _str(name, value)
    if any(ch.isspace() for ch in text):
        raise _bad(name, value, "a name without spaces or newlines (Redis refuses them)")
    return text


def _cert_reqs(name: str, value: object) -> str:
    text = _str(name, value).lower()
    if text not in ("none", "optional", "required"):
        raise _bad(name, value, "'none', 'optional' or 'required'")
    return text


def _opt_str(name: str, value: object) -> str | None:
    return None if value is None else _str(name, value)


def _callback(name: str, value: object) -> Callable[[ConnectionEvent], object] | None:
    if value is not None and not callable(value):
        raise _bad(name, value, "a callable taking a ConnectionEvent, or None")
    return value  # type: ignore[return-value]


def _backoff(name: str, value: object) -> AbstractBackoff:
    if not isinstance(value, AbstractBackoff):
        raise _bad(name, value, "a redkit Backoff (or a redis.backoff.AbstractBackoff)")
    return value


# name -> converter; the ones allowed in a URL's query string are in _URL_OPTIONS.
_CONVERTERS: dict[str, Callable[[str, object], Any]] = {
    "retries": lambda n, v: _int(n, v, 0),
    "backoff": _backoff,
    "socket_timeout": lambda n, v: _float(n, v, allow_none=True, positive=True),
    "socket_connect_timeout": lambda n, v: _float(n, v, allow_none=True, positive=True),
    "health_check_interval": lambda n, v: _float(n, v, allow_none=False, positive=False),
    "read_from_replicas": _bool,
    "max_redirections": lambda n, v: _int(n, v, 1),
    "client_name": _client_name,
    "decode_responses": _bool,
    "max_connections": lambda n, v: None if v is None else _int(n, v, 1),
    "username": _opt_str,
    "password": _opt_str,
    "ssl_cert_reqs": _cert_reqs,
    "ssl_ca_certs": _opt_str,
    "ssl_certfile": _opt_str,
    "ssl_keyfile": _opt_str,
    "ssl_check_hostname": _bool,
    "on_connect": _callback,
    "on_error": _callback,
    "on_close": _callback,
}
_KEYWORD_ONLY = frozenset({"backoff", "on_connect", "on_error", "on_close", "username", "password"})
_URL_OPTIONS = frozenset(_CONVERTERS) - _KEYWORD_ONLY
# query keys consumed by the URL itself, per scheme kind
_SCHEME_KEYS: dict[Kind, frozenset[str]] = {
    "standalone": frozenset({"db", "password"}),
    "cluster": frozenset({"db", "password"}),
    "sentinel": frozenset({"db", "password", "sentinel_username", "sentinel_password"}),
    "embedded": frozenset({"cluster", "sentinel"}),
}

#: The keyword options ``connect()`` accepts.
VALID_OPTIONS: tuple[str, ...] = tuple(sorted(_CONVERTERS))


@dataclass(frozen=True)
class ConnectionEvent:
    """What ``on_connect``, ``on_error`` and ``on_close`` callbacks receive.

    ``kind`` is ``"connect"`` (a connection was established and handshaken), ``"error"`` (a
    connection attempt failed, or an established connection was dropped by an error) or
    ``"close"`` (an established connection was closed; ``error`` says why, if by an error).
    ``host``/``port`` name the server (``path`` for a unix socket); ``client_name`` is the
    configured name.
    """

    kind: EventKind
    host: str | None
    port: int | None
    path: str | None = None
    error: BaseException | None = None
    client_name: str | None = None

    @property
    def address(self) -> str:
        """``host:port`` or the socket path."""
        if self.path is not None:
            return self.path
        return _format_host(self.host or "?", self.port or 0)

    def __getitem__(self, key: str) -> Any:
        """``event["host"]`` works too, for callers that prefer a dict."""
        if key not in ("kind", "host", "port", "path", "error", "client_name"):
            raise KeyError(key)
        return getattr(self, key)


@dataclass(frozen=True)
class ConnectOptions:
    """``connect()``'s validated options, URL query options and keywords merged."""

    retries: int = 3
    backoff: AbstractBackoff = field(default_factory=Backoff.default)
    socket_timeout: float | None = 5.0
    socket_connect_timeout: float | None = 2.0
    health_check_interval: float = 0.0
    read_from_replicas: bool = False
    max_redirections: int = 16
    client_name: str | None = None
    decode_responses: bool = False
    max_connections: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cert_reqs: str | None = None
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool | None = None
    on_connect: Callable[[ConnectionEvent], object] | None = None
    on_error: Callable[[ConnectionEvent], object] | None = None
    on_close: Callable[[ConnectionEvent], object] | None = None

    def ssl_kwargs(self) -> dict[str, Any]:
        """The ``ssl_*`` keyword arguments for redis-py that were set."""
        names = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
        out: dict[str, Any] = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        if self.ssl_check_hostname is not None:
            out["ssl_check_hostname"] = self.ssl_check_hostname
        return out


def resolve_options(spec: ConnectionSpec, options: Mapping[str, object]) -> ConnectOptions:
    """Validate ``options`` (``connect()``'s keywords) over the URL's query options.

    Unknown names raise :class:`ConfigurationError` listing the valid ones; keywords win over
    the query string; ``username``/``password`` default to the URL's.
    """
    unknown = sorted(set(options) - set(_CONVERTERS))
    if unknown:
        raise ConfigurationError(
            f"unknown connect() option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; valid options: {', '.join(VALID_OPTIONS)}"
        )
    values: dict[str, Any] = {"username": spec.username, "password": spec.password}
    values.update(spec.options)
    for name, value in options.items():
        values[name] = _CONVERTERS[name](name, value)
    if spec.kind == "standalone" and values.get("read_from_replicas"):
        raise ConfigurationError(
            f"read_from_replicas needs a Cluster or Sentinel URL, not {spec.url!r}"
        )
    if spec.kind == "cluster" and spec.path is not None:  # pragma: no cover - parse forbids it
        raise ConfigurationError(f"a Cluster cannot use a unix socket: {spec.url!r}")
    return ConnectOptions(**values)


# --------------------------------------------------------------------------- URL parsing


class _Problem(Exception):
    """A parse problem; :func:`parse_url` adds the (masked) URL."""


def _parse_host(item: str, default_port: int) -> tuple[str, int]:
    port_text: str | None
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            raise _Problem(f"unclosed '[' in host {item!r}")
        host, rest = item[1:end], item[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _Problem(f"unexpected {rest!r} after IPv6 address [{host}]")
        port_text = rest[1:] if rest else None
    else:
        if item.count(":") > 1:
            raise _Problem(f"IPv6 address {item!r} must be in brackets, e.g. [::1]:6379")
        host, sep, port_text_ = item.partition(":")
        port_text = port_text_ if sep else None
    host = unquote(host)
    if not host:
        raise _Problem("missing host")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _Problem(f"bad port {port_text!r} (expected 1-65535)")
    return host, int(port_text)


def _parse_db(text: str, what: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise _Problem(f"{what} {text!r} is not a non-negative integer")
    return int(text)


def _split_netloc(netloc: str) -> tuple[str | None, str | None, str]:
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return None, None, netloc
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) or None) if colon else None, hosts


def _query(query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in out:
            raise _Problem(f"option {key!r} given twice")
        out[key] = value
    return out


def parse_url(url: str) -> ConnectionSpec:
    """Parse one URL into a :class:`ConnectionSpec`; a bad URL raises ConfigurationError."""
    if not isinstance(url, str):
        raise ConfigurationError(f"a Redis URL must be a string, got {type(url).__name__}")
    masked = mask_url(url)
    try:
        return _parse(url.strip(), masked)
    except _Problem as problem:
        raise ConfigurationError(f"{problem} in Redis URL {masked!r}") from None
    except ConfigurationError as exc:  # an option value
        raise ConfigurationError(f"{exc} in Redis URL {masked!r}") from None


def _parse(url: str, masked: str) -> ConnectionSpec:
    if not url:
        raise _Problem("empty URL")
    if "://" not in url:
        raise _Problem(
            "missing scheme (expected one of " + ", ".join(f"{s}://" for s in _SCHEMES) + ")"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _Problem(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise _Problem(
            f"unknown scheme {scheme + '://'!r} (expected one of "
            + ", ".join(f"{s}://" for s in _SCHEMES)
            + ")"
        )
    if parts.fragment:
        raise _Problem(f"unexpected fragment '#{parts.fragment}'")
    kind, ssl = _SCHEMES[scheme]
    query = _query(parts.query)
    scheme_keys = _SCHEME_KEYS[kind]
    unknown = sorted(k for k in query if k not in _URL_OPTIONS and k not in scheme_keys)
    if unknown:
        valid = sorted(_URL_OPTIONS | scheme_keys)
        raise _Problem(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(valid in a {scheme}:// URL: {', '.join(valid)})"
        )
    options = {k: _CONVERTERS[k](k, v) for k, v in query.items() if k in _URL_OPTIONS}
    username, password, netloc_hosts = _split_netloc(parts.netloc)
    if "password" in query:
        if password is not None:
            raise _Problem("password given both in the user info and as ?password=")
        password = query["password"] or None
    query_db = _parse_db(query["db"], "db") if "db" in query else None
    path = parts.path

    if kind == "embedded":
        if netloc_hosts or username or password:
            raise _Problem("embedded:// takes no host or credentials")
        if path not in ("", "/"):
            raise _Problem(f"unexpected path {path!r} (embedded:// takes only ?cluster=N)")
        cluster = _int("cluster", query["cluster"], 0) if "cluster" in query else 0
        sentinel = _bool("sentinel", query["sentinel"]) if "sentinel" in query else False
        if cluster and sentinel:
            raise _Problem("embedded:// takes cluster=N or sentinel=true, not both")
        return ConnectionSpec(
            kind="embedded",
            embedded_cluster=cluster,
            embedded_sentinel=sentinel,
            options=options,
            url=masked,
        )

    if scheme == "unix":
        if netloc_hosts:
            raise _Problem(
                f"unix:// takes no host (got {netloc_hosts!r}); write unix:///path/to/redis.sock"
            )
        if path in ("", "/"):
            raise _Problem("missing socket path (write unix:///path/to/redis.sock)")
        return ConnectionSpec(
            kind="standalone",
            db=query_db or 0,
            username=username,
            password=password,
            path=unquote(path),
            options=options,
            url=masked,
        )

    items = [item.strip() for item in netloc_hosts.split(",")]
    if items == [""]:
        raise _Problem("missing host")
    if any(not item for item in items):
        raise _Problem("empty entry in the host list")
    default_port = DEFAULT_SENTINEL_PORT if kind == "sentinel" else DEFAULT_PORT
    hosts = tuple(_parse_host(item, default_port) for item in items)
    segments = [s for s in path.split("/") if s] if path else []

    if kind == "sentinel":
        if not segments:
            raise _Problem("missing master name (write redis+sentinel://host:26379/mymaster)")
        if len(segments) > 2:
            raise _Problem(f"unexpected path {path!r} (expected /master_name[/db])")
        master = unquote(segments[0])
        db = _parse_db(segments[1], "db") if len(segments) == 2 else None
        if db is not None and query_db is not None and db != query_db:
            raise _Problem("db given both in the path and as ?db=")
        return ConnectionSpec(
            kind="sentinel",
            hosts=hosts,
            db=db if db is not None else (query_db or 0),
            username=username,
            password=password,
            ssl=ssl,
            master=master,
            sentinel_username=query.get("sentinel_username") or None,
            sentinel_password=query.get("sentinel_password") or None,
            options=options,
            url=masked,
        )

    if len(segments) > 1:
        raise _Problem(f"unexpected path {path!r} (expected /db)")
    db = _parse_db(segments[0], "db") if segments else None
    if db is not None and query_db is not None and db != query_db:
        raise _Problem("db given both in the path and as ?db=")
    db = db if db is not None else (query_db or 0)

    if kind == "cluster":
        if db != 0:
            raise _Problem(f"a Cluster has only db 0 (got db {db})")
        return ConnectionSpec(
            kind="cluster",
            hosts=hosts,
            username=username,
            password=password,
            ssl=ssl,
            options=options,
            url=masked,
        )

    if len(hosts) > 1:
        raise _Problem(
            f"{scheme}:// takes one host (got {len(hosts)}); "
            "use redis+cluster:// or redis+sentinel:// for several"
        )
    return ConnectionSpec(
        kind="standalone",
        hosts=hosts,
        db=db,
        username=username,
        password=password,
        ssl=ssl,
        options=options,
        url=masked,
    )


_ENV_PARTS = ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB")


def resolve_spec(
    url: str | None = None, environ: Mapping[str, str] | None = None
) -> ConnectionSpec:
    """The spec for ``url``; with None, from ``REDIS_URL``, ``REDIS_HOST``... or the default."""
    if url is not None:
        return parse_url(url)
    env = os.environ if environ is None else environ
    env_url = env.get("REDIS_URL", "").strip()
    if env_url:
        try:
            return parse_url(env_url)
        except ConfigurationError as exc:
            raise ConfigurationError(f"REDIS_URL: {exc}") from None
    if not any(env.get(name, "").strip() for name in _ENV_PARTS):
        return parse_url(DEFAULT_URL)
    host = env.get("REDIS_HOST", "").strip() or "localhost"
    port_text = env.get("REDIS_PORT", "").strip()
    db_text = env.get("REDIS_DB", "").strip()
    password = env.get("REDIS_PASSWORD") or None
    shown = f"REDIS_HOST={host!r} REDIS_PORT={port_text!r} REDIS_DB={db_text!r}"
    try:
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        parsed_host, port = _parse_host(f"{host}:{port_text}" if port_text else host, DEFAULT_PORT)
        db = _parse_db(db_text, "REDIS_DB") if db_text else 0
    except _Problem as problem:
        raise ConfigurationError(f"{problem} in environment ({shown})") from None
    auth = f":{_MASK}@" if password else ""
    return ConnectionSpec(
        kind="standalone",
        hosts=((parsed_host, port),),
        db=db,
        password=password,
        url=f"redis://{auth}{_format_host(parsed_host, port)}/{db}",
    )


__all__ = [
    "DEFAULT_URL",
    "VALID_OPTIONS",
    "ConnectOptions",
    "ConnectionEvent",
    "ConnectionSpec",
    "mask_url",
    "parse_url",
    "resolve_options",
    "resolve_spec",
]
