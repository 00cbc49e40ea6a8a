"""``connect()``: a configured redis-py client from a URL, for every topology.

``connect(url=None, **options)`` returns a ``redis.asyncio.Redis`` (standalone, unix socket,
or the *master* of a Sentinel group) or a ``redis.asyncio.cluster.RedisCluster``. It is a plain
function in both faces: redis-py clients connect lazily, on their first command. (Two
exceptions: ``embedded://`` starts the bundled server before returning, and redis-py's *sync*
``RedisCluster`` discovers the cluster in its constructor.)

Options are keyword-only; all but the callables, objects and credentials may also be given
in the URL's query string (keywords win). Each is declared once, in
:mod:`redkit._core.options`; :func:`connect`'s docstring lists them. The callbacks
(``on_connect``, ``on_connection_error``, ``on_close``) take a
:class:`~redkit._core.connection_events.ConnectionEvent` and are called synchronously from the
connection; an exception they raise is logged, not propagated. ``on_connection_error`` fires
for every failed connection attempt and when an established connection fails.

Each pool holds ``max_connections`` (100) connections and, when all are in use, a command
waits up to ``pool_timeout`` (5 s) for one to be released, then raises redis-py's
``MaxConnectionsError`` (:mod:`redkit._redis_pools`; redkit's patterns raise it as
``BackendBusy``): redis-py's default pool would fail at once, so a burst of concurrent
requests failed while the server was idle. Standalone, unix socket and Sentinel pools wait,
and each node's pool on the sync Cluster client; redis-py's asyncio ``RedisCluster`` has no
pool that waits (a node with every connection in use fails at once).
``pool_timeout=0`` keeps redis-py's pool that never waits.

An authentication failure raises :class:`~redkit.errors.AuthenticationFailed` (both
redis-py's ``AuthenticationError`` and redkit's ``ConfigurationError``) and is never retried.

The ``redkit.connection`` logger records connects and closes at DEBUG and errors at WARNING.
Connection attempts on the Sentinel's own sockets (discovery) are not reported.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import (
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.cluster import LoadBalancingStrategy

from redkit import _redis_compat as compat
from redkit._acompat import ASYNC
from redkit._core.connection_events import ConnectionEvent, EventKind, format_host
from redkit._core.options import ConnectOptions, options_help, resolve_options
from redkit._core.specs import (
    ClusterSpec,
    EmbeddedSpec,
    SentinelSpec,
    TcpSpec,
    UnixSpec,
)
from redkit._core.urls import parse_url, resolve_spec
from redkit.embedded import EmbeddedServer
from redkit.errors import ConfigurationError

if ASYNC:
    from redkit._redis_compat import async_hooked_connection_class as hooked_connection_class
    from redkit._redis_compat import async_retry_policy as retry_policy
    from redkit._redis_pools import AsyncWaitingPool as WaitingPool
    from redkit._redis_pools import AsyncWaitingSentinelPool as WaitingSentinelPool

    SENTINEL_POOLS_WAIT = True
else:
    from redkit._redis_compat import hooked_connection_class, retry_policy
    from redkit._redis_pools import (
        SENTINEL_POOLS_WAIT,
        WaitingPool,
        WaitingSentinelPool,
        waiting_pool_class,
    )

__all__ = ["RedkitCluster", "SentinelMaster", "connect", "embedded_server", "replica_client"]

logger = logging.getLogger("redkit.connection")


class _Hooks:
    """Reports one client's connection events to its callbacks and to the logger."""

    def __init__(self, options: ConnectOptions) -> None:
        self.client_name = options.client_name
        self.callbacks: dict[EventKind, Callable[[ConnectionEvent], object] | None] = {
            "connect": options.on_connect,
            "error": options.on_connection_error,
            "close": options.on_close,
        }

    def connected(self, conn: Any) -> None:
        self._emit("connect", conn)

    def failed(self, conn: Any, error: BaseException) -> None:
        self._emit("error", conn, error)

    def closed(self, conn: Any, error: BaseException | None) -> None:
        self._emit("close", conn, error)

    def _emit(self, kind: EventKind, conn: Any, error: BaseException | None = None) -> None:
        try:
            event = ConnectionEvent(
                kind=kind,
                host=getattr(conn, "host", None),
                port=getattr(conn, "port", None),
                path=getattr(conn, "path", None),
                error=error,
                client_name=self.client_name,
            )
            if kind == "error":
                logger.warning("redis connection error on %s: %s", event.address, error)
            elif kind == "connect":
                logger.debug("connected to redis at %s", event.address)
            elif error is not None:
                logger.debug("closed redis connection to %s after an error", event.address)
            else:
                logger.debug("closed redis connection to %s", event.address)
            callback = self.callbacks[kind]
            if callback is not None:
                callback(event)
        except Exception:
            # An observer must not break the connection it observes (nor a GC-time close).
            logger.exception("redkit %s callback failed", kind)


def _client_kwargs(options: ConnectOptions, retry: Retry) -> dict[str, Any]:
    """Keyword arguments every data connection gets, whatever the topology."""
    return {
        "username": options.username,
        "password": options.password,
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
        "client_name": options.client_name,
        "decode_responses": options.decode_responses,
        "health_check_interval": options.health_check_interval,
        "retry": retry,
    }


def _pool_kwargs(options: ConnectOptions, waits: bool) -> dict[str, Any]:
    """The pool's size, and how long a command waits for a free connection if it waits."""
    kwargs: dict[str, Any] = {"max_connections": options.max_connections}
    if waits:
        kwargs["timeout"] = options.pool_timeout
    return kwargs


def _standalone(
    spec: TcpSpec | UnixSpec, options: ConnectOptions, retry: Retry, hooks: _Hooks
) -> Redis:
    waits = options.pool_timeout != 0
    kwargs = _client_kwargs(options, retry)
    kwargs.update(_pool_kwargs(options, waits))
    interval = options.health_check_interval
    pool_class = WaitingPool if waits else ConnectionPool
    pool: ConnectionPool
    if isinstance(spec, UnixSpec):
        kwargs.pop("socket_connect_timeout")
        pool = pool_class(
            connection_class=hooked_connection_class(UnixDomainSocketConnection, hooks, interval),
            path=spec.path,
            db=spec.db,
            **kwargs,
        )
    else:
        if spec.ssl:
            kwargs.update(options.ssl_kwargs())
        base = SSLConnection if spec.ssl else Connection
        pool = pool_class(
            connection_class=hooked_connection_class(base, hooks, interval),
            host=spec.host,
            port=spec.port,
            db=spec.db,
            socket_keepalive=True,
            **kwargs,
        )
    return Redis.from_pool(pool)


class RedkitCluster(RedisCluster):
    """The Cluster client :func:`connect` returns: a plain ``RedisCluster`` whose close also
    closes every node's pool (redis-py's sync client leaves them open on the path redkit uses
    to give the nodes its connection class)."""

    if ASYNC:
        pass  # redis.asyncio's RedisCluster closes its nodes' connections itself
    else:

        def close(self, *args: Any, **kwargs: Any) -> None:
            super().close(*args, **kwargs)
            compat.close_node_pools(self)


def _cluster(
    spec: ClusterSpec, options: ConnectOptions, retry: Retry, hooks: _Hooks
) -> RedisCluster:
    base = SSLConnection if spec.ssl else Connection
    connection_class = hooked_connection_class(base, hooks, options.health_check_interval)
    kwargs = _client_kwargs(options, retry)
    kwargs.pop("health_check_interval")  # set by the hooked class (sync RedisCluster drops it)
    kwargs["max_connections"] = options.max_connections
    if options.read_from_replicas:
        kwargs["load_balancing_strategy"] = LoadBalancingStrategy.ROUND_ROBIN_REPLICAS
    if spec.ssl:
        kwargs.update(options.ssl_kwargs())
    nodes = [ClusterNode(host, port) for host, port in spec.nodes]  # type: ignore[no-untyped-call]
    client: RedisCluster
    if ASYNC:
        client = RedkitCluster(startup_nodes=nodes, ssl=spec.ssl, **kwargs)
        compat.use_connection_class(client, connection_class)
    else:
        # The sync client passes `connection_class` to the node pools only when given a `url`.
        host, port = spec.nodes[0]
        url = f"redis://{format_host(host, port)}"  # TLS comes from the connection class
        if options.pool_timeout != 0:
            kwargs["connection_pool_class"] = waiting_pool_class(options.pool_timeout)
        client = RedkitCluster(
            url=url, startup_nodes=nodes[1:], connection_class=connection_class, **kwargs
        )
    compat.set_max_redirections(client, options.max_redirections)
    return client


class SentinelMaster(Redis):
    """The client of a Sentinel group's master, as :func:`connect` returns it.

    A plain ``Redis`` whose close also closes the connections to the sentinels and the
    :func:`replica_client` made from it (redis-py leaves those open).
    """

    async def aclose(self, *args: Any, **kwargs: Any) -> None:
        await super().aclose(*args, **kwargs)
        replica = compat.attached(self, "replica_client")
        if replica is not None:
            await replica.aclose()
        link = compat.attached(self, "sentinel")
        if link is not None:
            for sentinel_client in link[0].sentinels:
                await sentinel_client.aclose()


def _sentinel(spec: SentinelSpec, options: ConnectOptions, retry: Retry, hooks: _Hooks) -> Redis:
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
        "username": spec.sentinel_username,
        "password": spec.sentinel_password,
    }
    base: type[SentinelManagedConnection] = (
        SentinelManagedSSLConnection if spec.ssl else SentinelManagedConnection
    )
    kwargs = _client_kwargs(options, retry)
    if spec.ssl:
        sentinel_kwargs["ssl"] = True
        sentinel_kwargs.update(options.ssl_kwargs())
        kwargs.update(options.ssl_kwargs())
    waits = options.pool_timeout != 0 and SENTINEL_POOLS_WAIT
    kwargs.update(
        connection_class=hooked_connection_class(base, hooks, options.health_check_interval),
        db=spec.db,
        socket_keepalive=True,
        **_pool_kwargs(options, waits),
    )
    if waits:
        kwargs["connection_pool_class"] = WaitingSentinelPool
    sentinel = Sentinel(list(spec.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    master: SentinelMaster = sentinel.master_for(  # type: ignore[no-untyped-call]
        spec.master, redis_class=SentinelMaster, **kwargs
    )
    compat.attach(master, "sentinel", (sentinel, spec.master, kwargs))
    if options.read_from_replicas:
        replica_client(master)
    return master


def _build(
    spec: TcpSpec | UnixSpec | ClusterSpec | SentinelSpec, options: ConnectOptions
) -> Redis | RedisCluster:
    retry = retry_policy(options.retries, options.backoff)
    hooks = _Hooks(options)
    if isinstance(spec, ClusterSpec):
        return _cluster(spec, options, retry, hooks)
    if isinstance(spec, SentinelSpec):
        return _sentinel(spec, options, retry, hooks)
    return _standalone(spec, options, retry, hooks)


def _embedded(spec: EmbeddedSpec, options: ConnectOptions) -> Redis | RedisCluster:
    server = EmbeddedServer(cluster=spec.cluster, sentinel=spec.sentinel)
    server.start()
    try:
        served = parse_url(server.url)
        assert not isinstance(served, EmbeddedSpec)
        client = _build(served, options)
    except BaseException:
        server.stop()
        raise
    compat.attach(client, "embedded_server", server)
    # The server lives as long as the client (and EmbeddedServer stops it at exit anyway).
    weakref.finalize(client, server.stop)
    logger.debug("started embedded server %s", server.masked_url)
    return client


def connect(url: str | None = None, **options: Any) -> Redis | RedisCluster:
    """A configured redis-py client for ``url``.

    ``url`` defaults to ``$REDIS_URL``, then ``$REDIS_HOST``/``$REDIS_PORT``/
    ``$REDIS_PASSWORD``/``$REDIS_DB``, then ``redis://localhost:6379/0``. A bad URL or an
    unknown or invalid option raises :class:`~redkit.errors.ConfigurationError`; no message
    ever shows a password.

    Returns ``Redis`` for ``redis://``, ``rediss://``, ``unix://`` and ``redis+sentinel://``
    (the master's client), ``RedisCluster`` for ``redis+cluster://``. ``embedded://`` starts
    the bundled Valkey (``?cluster=3`` for a Cluster, ``?sentinel=true`` for a Sentinel
    group), keeps it running while the client object lives, and stops it at exit; reach it
    with :func:`embedded_server`. Close the client when you are done with it.

    Options (default; all but the keyword-only ones may be given in the URL's query string):

    """
    spec = resolve_spec(url)
    resolved = resolve_options(spec, options)
    if isinstance(spec, EmbeddedSpec):
        return _embedded(spec, resolved)
    return _build(spec, resolved)


connect.__doc__ = (connect.__doc__ or "") + "\n".join(
    "    " + line if line else "" for line in options_help().splitlines()
)


def replica_client(client: Redis | RedisCluster) -> Redis | RedisCluster:
    """A client whose reads go to replicas, for a client made by :func:`connect`.

    Sentinel: a ``Redis`` on the monitored master's replicas (round-robin; the master when
    none is up), made once per master client, cached, and closed when the master's is. Cluster: the
    client itself when made with ``read_from_replicas=True`` (the cluster routes reads). Any
    other client raises :class:`~redkit.errors.ConfigurationError`.
    """
    if isinstance(client, RedisCluster):
        if client.load_balancing_strategy is None and not client.read_from_replicas:
            raise ConfigurationError(
                "this Cluster client reads from primaries; connect(..., read_from_replicas=True)"
            )
        return client
    cached = compat.attached(client, "replica_client")
    if cached is not None:
        return cast("Redis", cached)
    link = compat.attached(client, "sentinel")
    if link is None:
        raise ConfigurationError(
            "replica_client() needs a client made by connect() from a redis+sentinel:// "
            "or redis+cluster:// URL"
        )
    sentinel, master_name, kwargs = link
    replica: Redis = sentinel.slave_for(master_name, **kwargs)
    compat.attach(client, "replica_client", replica)
    return replica


def embedded_server(client: Redis | RedisCluster) -> EmbeddedServer | None:
    """The :class:`~redkit.embedded.EmbeddedServer` behind a client from ``embedded://``.

    ``None`` for any other client. Call ``.stop()`` on it to stop the server now.
    """
    server = compat.attached(client, "embedded_server")
    return server if isinstance(server, EmbeddedServer) else None
