"""What ``connect()``'s connection callbacks receive: one :class:`ConnectionEvent` per event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

EventKind = Literal["connect", "error", "close"]

_FIELDS = ("kind", "host", "port", "path", "error", "client_name")


def format_host(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ConnectionEvent:
    """What ``on_connect``, ``on_connection_error`` and ``on_close`` callbacks receive.

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
        return format_host(self.host or "?", self.port or 0)

    def __getitem__(self, key: str) -> Any:
        """``event["host"]`` works too, for callers that prefer a dict."""
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)


__all__ = ["ConnectionEvent", "EventKind", "format_host"]
