"""Where to connect, one record per kind of URL: what :func:`~redkit._core.urls.parse_url` makes.

=====================  ======================================================================
:class:`TcpSpec`       ``redis://`` and ``rediss://``: one server over TCP (``ssl`` for TLS)
:class:`UnixSpec`      ``unix://``: one server over a unix socket
:class:`ClusterSpec`   ``redis+cluster://``: the startup nodes of a Cluster
:class:`SentinelSpec`  ``redis+sentinel://``: the sentinels of a group and the master's name
:class:`EmbeddedSpec`  ``embedded://``: start the bundled Valkey (a Cluster, a Sentinel group)
=====================  ======================================================================

Every spec carries ``options`` (the client options given in the URL's query string, already
converted, see :mod:`redkit._core.options`) and ``url`` (the URL with every password masked,
for messages). Passwords are fields that ``repr()`` never shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from redkit._core.connection_events import format_host

Address: TypeAlias = tuple[str, int]


def _secret() -> Any:
    """A password field: optional, and never in ``repr()``."""
    return field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class _Spec:
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    url: str = ""


@dataclass(frozen=True, kw_only=True)
class TcpSpec(_Spec):
    """One server over TCP (``ssl``: TLS, from ``rediss://``)."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = _secret()
    ssl: bool = False

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return format_host(self.host, self.port)


@dataclass(frozen=True, kw_only=True)
class UnixSpec(_Spec):
    """One server over a unix socket."""

    path: str
    db: int = 0
    username: str | None = None
    password: str | None = _secret()

    @property
    def address(self) -> str:
        """The socket path, for messages."""
        return self.path


@dataclass(frozen=True, kw_only=True)
class ClusterSpec(_Spec):
    """A Cluster, found through its startup ``nodes``."""

    nodes: tuple[Address, ...]
    username: str | None = None
    password: str | None = _secret()
    ssl: bool = False

    @property
    def address(self) -> str:
        """``host:port,host:port...``, for messages."""
        return ",".join(format_host(h, p) for h, p in self.nodes)


@dataclass(frozen=True, kw_only=True)
class SentinelSpec(_Spec):
    """The master ``master`` of a Sentinel group, found through ``sentinels``.

    ``username``/``password`` are the master's (and its replicas'); ``sentinel_username``/
    ``sentinel_password`` the sentinels' own.
    """

    sentinels: tuple[Address, ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = _secret()
    ssl: bool = False
    sentinel_username: str | None = None
    sentinel_password: str | None = _secret()

    @property
    def address(self) -> str:
        """``host:port,host:port.../master``, for messages."""
        return ",".join(format_host(h, p) for h, p in self.sentinels) + f"/{self.master}"


@dataclass(frozen=True, kw_only=True)
class EmbeddedSpec(_Spec):
    """The bundled Valkey: standalone, a Cluster of ``cluster`` primaries, or a Sentinel group."""

    cluster: int = 0
    sentinel: bool = False

    @property
    def address(self) -> str:
        """What will be started, for messages."""
        if self.cluster:
            return f"embedded Cluster of {self.cluster}"
        return "embedded Sentinel group" if self.sentinel else "embedded server"


#: Any parsed connection URL.
ConnectionSpec: TypeAlias = TcpSpec | UnixSpec | ClusterSpec | SentinelSpec | EmbeddedSpec

__all__ = [
    "Address",
    "ClusterSpec",
    "ConnectionSpec",
    "EmbeddedSpec",
    "SentinelSpec",
    "TcpSpec",
    "UnixSpec",
]
