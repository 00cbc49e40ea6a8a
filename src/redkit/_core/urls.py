"""Connection URLs: the grammar, the environment fallback, and passwords masked for messages.

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

Each parses to its own spec (:mod:`redkit._core.specs`). With no URL, :func:`resolve_spec`
reads ``REDIS_URL``; else builds one from ``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_PASSWORD``
and ``REDIS_DB`` when any is set; else uses ``redis://localhost:6379/0``. Client options may
also be given in the query string (``?socket_timeout=1.5&client_name=web``; see
:mod:`redkit._core.options`).

Passwords never reach a message. Every problem raises :class:`~redkit.errors.ConfigurationError`
naming it and the URL as :func:`mask_url` shows it. Percent-encode ``/``, ``?``, ``#``, ``&``,
``+`` and ``%`` in a password (``quote(password, safe="")``): an ``@`` anywhere but in the user
info is refused (it would mean that a password holds an unencoded ``/``, ``?`` or ``#``, so that
the host, path or query would show part of it), a query segment after a password is never
quoted (it may be the rest of a password holding an unencoded ``&``), and neither is a
``#fragment``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from redkit._core.options import URL_OPTIONS, InvalidValue, boolean, convert_option, integer
from redkit._core.specs import (
    Address,
    ClusterSpec,
    ConnectionSpec,
    EmbeddedSpec,
    SentinelSpec,
    TcpSpec,
    UnixSpec,
)
from redkit.errors import ConfigurationError

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379

# scheme -> (kind, TLS)
_SCHEMES: dict[str, tuple[str, bool]] = {
    "redis": ("tcp", False),
    "rediss": ("tcp", True),
    "unix": ("unix", False),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "embedded": ("embedded", False),
}
_EXPECTED_SCHEMES = ", ".join(f"{s}://" for s in _SCHEMES)
# query keys the URL itself consumes, per kind (the rest are client options)
_SCHEME_KEYS: dict[str, frozenset[str]] = {
    "tcp": frozenset({"db", "password"}),
    "unix": frozenset({"db", "password"}),
    "cluster": frozenset({"db", "password"}),
    "sentinel": frozenset({"db", "password", "sentinel_username", "sentinel_password"}),
    "embedded": frozenset({"cluster", "sentinel"}),
}
_SECRET_KEYS = frozenset({"password", "sentinel_password"})
_KNOWN_KEYS = URL_OPTIONS.union(*_SCHEME_KEYS.values())

_MASK = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# A query segment that mentions any of these is masked in messages, whatever its key.
_SECRET_WORD = re.compile(r"pass|secret|token|auth", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _authority_end(rest: str) -> int:
    """Where the authority (``user:password@hosts``) of ``rest`` (after ``://``) ends."""
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return min(ends, default=len(rest))


def _split_tail(tail: str) -> tuple[str, str | None, str | None]:
    """``/path?query#fragment`` -> (path, query or None, fragment or None)."""
    tail, hash_, fragment = tail.partition("#")
    path, question, query = tail.partition("?")
    return path, (query if question else None), (fragment if hash_ else None)


def _mask_query(query: str) -> str:
    out: list[str] = []
    after_secret = False
    for segment in query.split("&"):
        key_text, eq, _ = segment.partition("=")
        key = unquote_plus(key_text).strip().lower()
        if after_secret:  # may be the rest of a password holding an unencoded '&'
            out.append(f"{key_text}={_MASK}" if key in _KNOWN_KEYS and eq else _MASK)
        elif _SECRET_WORD.search(unquote_plus(segment)):
            out.append(f"{key_text}={_MASK}" if eq else _MASK)
            after_secret = True
        else:
            out.append(segment)
    return "&".join(out)


def mask_url(url: str) -> str:
    """``url`` as messages show it: passwords (and whatever may hold one) become ``***``.

    The user info keeps its user name; query values that look secret are masked, and so is
    every value after them (only known option names stay); a ``#fragment`` is masked. A URL whose
    structure cannot be read (no ``scheme://``, or an ``@`` outside the user info) shows only
    its beginning.
    """
    match = _SCHEME.match(url)
    scheme = match.group() if match else ""
    if not scheme or not url[len(scheme) :].startswith("://"):
        if "@" in url or "%" in url or _SECRET_WORD.search(url):
            separator = re.match(r"[:/]*", url[len(scheme) :])
            return url[: len(scheme)] + (separator.group() if separator else "") + _MASK
        return url
    rest = url[len(scheme) + 3 :]
    end = _authority_end(rest)
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        return f"{scheme}://{_MASK}"
    userinfo, at, hosts = authority.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        authority = (f"{user}:{_MASK}" if colon else userinfo) + "@" + hosts
    path, query, fragment = _split_tail(tail)
    out = f"{scheme}://{authority}{path}"
    if query is not None:
        out += "?" + _mask_query(query)
    if fragment is not None:
        out += "#" + _MASK
    return out


# --------------------------------------------------------------------------- parsing


class _Problem(Exception):
    """A parse problem; :func:`parse_url` adds the (masked) URL."""


@dataclass(frozen=True)
class _Value:
    """One query value, and whether messages may quote it."""

    text: str
    shown: bool

    def quoted(self) -> str:
        return repr(self.text) if self.shown else "(value not shown)"


def _parse_host(item: str, default_port: int) -> Address:
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
        if "]" in item:
            raise _Problem(f"unexpected ']' in host {item!r}")
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


def _parse_db(text: str, what: str, shown: bool = True) -> int:
    if not re.fullmatch(r"\d+", text):
        quoted = repr(text) if shown else "(value not shown)"
        raise _Problem(f"{what} {quoted} is not a non-negative integer")
    return int(text)


def _query(query: str | None, scheme: str, kind: str) -> dict[str, _Value]:
    """The query's values by key, checked against the keys valid for ``kind``."""
    if not query:
        return {}
    allowed = URL_OPTIONS | _SCHEME_KEYS[kind]
    segments: list[tuple[str, _Value]] = []
    after_secret = False
    for segment in query.split("&"):
        if not segment:
            raise _Problem("empty option in the query (a stray '&')")
        key_text, eq, value_text = segment.partition("=")
        key = unquote_plus(key_text)
        secret = bool(_SECRET_WORD.search(unquote_plus(segment)))
        shown = not (after_secret or secret)
        if not eq:
            what = repr(key) if shown and _IDENTIFIER.fullmatch(key) else "(not shown)"
            raise _Problem(f"option {what} has no value (write key=value)")
        segments.append((key, _Value(unquote_plus(value_text), shown)))
        after_secret = after_secret or key in _SECRET_KEYS or secret
    unknown = [(k, v) for k, v in segments if k not in allowed]
    if unknown:
        names = [k for k, v in unknown if v.shown and _IDENTIFIER.fullmatch(k)]
        hidden = len(unknown) - len(names)
        listed = ", ".join(sorted(set(names)) + ([f"{hidden} not shown"] if hidden else []))
        raise _Problem(
            f"unknown option{'s' if len(unknown) > 1 else ''} {listed} "
            f"(valid in a {scheme}:// URL: {', '.join(sorted(allowed))}; "
            "percent-encode '&', '#', '+' and '%' in a password)"
        )
    out: dict[str, _Value] = {}
    for key, value in segments:
        if key in out:
            raise _Problem(f"option {key!r} given twice")
        out[key] = value
    return out


def _url_option(key: str, value: _Value) -> Any:
    return convert_option(key, value.text, show_value=value.shown)


def _scheme_value(key: str, value: _Value, convert: Any) -> Any:
    try:
        return convert(value.text)
    except InvalidValue as exc:
        expected = exc.expected
    raise _Problem(f"{key}={value.quoted()} is invalid: expected {expected}")


def parse_url(url: str) -> ConnectionSpec:
    """Parse one URL into its spec; a bad URL raises ConfigurationError (password masked)."""
    if not isinstance(url, str):
        raise ConfigurationError(f"a Redis URL must be a string, got {type(url).__name__}")
    url = url.strip()
    masked = mask_url(url)
    try:
        return _parse(url, masked)
    except _Problem as problem:
        message = f"{problem} in Redis URL {masked!r}"
    except ConfigurationError as exc:  # an option value
        message = f"{exc} in Redis URL {masked!r}"
    # Raised outside the except blocks: no exception chain to carry parts of the URL.
    raise ConfigurationError(message)


def _parse(url: str, masked: str) -> ConnectionSpec:
    if not url:
        raise _Problem("empty URL")
    match = _SCHEME.match(url)
    scheme_text = match.group() if match else ""
    scheme = scheme_text.lower()
    if not url[len(scheme_text) :].startswith("://"):
        separator = re.match(r"[:/]*", url[len(scheme_text) :])
        written = scheme_text + (separator.group() if separator else "")
        if scheme in _SCHEMES and written != scheme_text:
            raise _Problem(f"malformed {written!r}: write {scheme + '://'!r}")
        raise _Problem(f"missing scheme (expected one of {_EXPECTED_SCHEMES})")
    if scheme not in _SCHEMES:
        raise _Problem(f"unknown scheme {scheme + '://'!r} (expected one of {_EXPECTED_SCHEMES})")
    kind, ssl = _SCHEMES[scheme]
    rest = url[len(scheme_text) + 3 :]
    end = _authority_end(rest)
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        hint = " (one '/' too many after '://'?)" if kind != "unix" and not authority else ""
        raise _Problem(
            "'@' outside the user info: percent-encode '/', '?' and '#' in a password "
            f"(%2F, %3F, %23) and write any other '@' as %40{hint}"
        )
    path, query_text, fragment = _split_tail(tail)
    if fragment is not None:
        raise _Problem("unexpected '#' (write a '#' in a password or option value as %23)")
    query = _query(query_text, scheme, kind)
    options = {k: _url_option(k, v) for k, v in query.items() if k in URL_OPTIONS}
    userinfo, at, hosts_text = authority.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = (unquote(secret) or None) if colon else None
    if "password" in query:
        if password is not None:
            raise _Problem("password given both in the user info and as ?password=")
        password = query["password"].text or None
    query_db = _parse_db(query["db"].text, "db", query["db"].shown) if "db" in query else None

    if kind == "embedded":
        if hosts_text or at:
            raise _Problem("embedded:// takes no host or credentials")
        if path not in ("", "/"):
            raise _Problem(f"unexpected path {path!r} (embedded:// takes only ?cluster=N)")
        cluster = (
            _scheme_value("cluster", query["cluster"], integer(0)) if "cluster" in query else 0
        )
        sentinel = (
            _scheme_value("sentinel", query["sentinel"], boolean) if "sentinel" in query else False
        )
        if cluster and sentinel:
            raise _Problem("embedded:// takes cluster=N or sentinel=true, not both")
        return EmbeddedSpec(cluster=cluster, sentinel=sentinel, options=options, url=masked)

    if kind == "unix":
        if hosts_text:
            raise _Problem(
                f"unix:// takes no host (got {hosts_text!r}); write unix:///path/to/redis.sock"
            )
        if path in ("", "/"):
            raise _Problem("missing socket path (write unix:///path/to/redis.sock)")
        return UnixSpec(
            path=unquote(path),
            db=query_db or 0,
            username=username,
            password=password,
            options=options,
            url=masked,
        )

    items = [item.strip() for item in hosts_text.split(",")]
    if items == [""]:
        raise _Problem("missing host")
    if any(not item for item in items):
        raise _Problem("empty entry in the host list")
    default_port = DEFAULT_SENTINEL_PORT if kind == "sentinel" else DEFAULT_PORT
    hosts = tuple(_parse_host(item, default_port) for item in items)
    segments = [s for s in path.split("/") if s]

    if kind == "sentinel":
        if not segments:
            raise _Problem("missing master name (write redis+sentinel://host:26379/mymaster)")
        if len(segments) > 2:
            raise _Problem(f"unexpected path {path!r} (expected /master_name[/db])")
        db = _parse_db(segments[1], "db") if len(segments) == 2 else None
        if db is not None and query_db is not None and db != query_db:
            raise _Problem("db given both in the path and as ?db=")
        sentinel_user = query.get("sentinel_username")
        sentinel_password = query.get("sentinel_password")
        return SentinelSpec(
            sentinels=hosts,
            master=unquote(segments[0]),
            db=db if db is not None else (query_db or 0),
            username=username,
            password=password,
            ssl=ssl,
            sentinel_username=(sentinel_user.text or None) if sentinel_user else None,
            sentinel_password=(sentinel_password.text or None) if sentinel_password else None,
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
        return ClusterSpec(
            nodes=hosts, username=username, password=password, ssl=ssl, options=options, url=masked
        )

    if len(hosts) > 1:
        raise _Problem(
            f"{scheme}:// takes one host (got {len(hosts)}); "
            "use redis+cluster:// or redis+sentinel:// for several"
        )
    ((host, port),) = hosts
    return TcpSpec(
        host=host,
        port=port,
        db=db,
        username=username,
        password=password,
        ssl=ssl,
        options=options,
        url=masked,
    )


# --------------------------------------------------------------------------- environment

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
            message = f"REDIS_URL: {exc}"
        raise ConfigurationError(message)  # outside the except block: one clean message
    if not any(env.get(name, "").strip() for name in _ENV_PARTS):
        return parse_url(DEFAULT_URL)
    return _spec_from_parts(env)


def _spec_from_parts(env: Mapping[str, str]) -> TcpSpec:
    host = env.get("REDIS_HOST", "").strip() or "localhost"
    port_text = env.get("REDIS_PORT", "").strip()
    db_text = env.get("REDIS_DB", "").strip()
    password = env.get("REDIS_PASSWORD") or None
    if re.search(r"[@/?#\s]", host):
        raise ConfigurationError(
            "REDIS_HOST must be a host name or address (not shown: it holds '@', '/', '?', "
            "'#' or a space); put a whole URL in REDIS_URL instead"
        )
    shown = f"REDIS_HOST={host!r} REDIS_PORT={port_text!r} REDIS_DB={db_text!r}"
    try:
        bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
        parsed_host, port = _parse_host(
            f"{bracketed}:{port_text}" if port_text else bracketed, DEFAULT_PORT
        )
        db = _parse_db(db_text, "REDIS_DB") if db_text else 0
    except _Problem as problem:
        message = f"{problem} in environment ({shown})"
    else:
        auth = f":{_MASK}@" if password else ""
        address = f"[{parsed_host}]:{port}" if ":" in parsed_host else f"{parsed_host}:{port}"
        return TcpSpec(
            host=parsed_host,
            port=port,
            db=db,
            password=password,
            url=f"redis://{auth}{address}/{db}",
        )
    raise ConfigurationError(message)


__all__ = ["DEFAULT_URL", "mask_url", "parse_url", "resolve_spec"]
