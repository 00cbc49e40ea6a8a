"""``connect()``: a configured redis-py client from a URL, for every topology.

``connect(url=None, **options)`` returns a ``redis.asyncio.Redis`` (standalone, unix socket,
or the *master* of a Sentinel group) or a ``redis.asyncio.cluster.RedisCluster``. It is a plain
function in both faces: redis-py clients connect lazily, on their first command. (Two
exceptions: ``embedded://`` starts the bundled server before returning, and redis-py's *sync*
``RedisCluster`` discovers the cluster in its constructor.)

Options (keyword-only; also accepted in the URL's query string, except the callables and
credentials; keywords win):

``retries`` (3)
    retries of a command or connection attempt after a connection error or timeout.
``backoff`` (:meth:`Backoff.default`)
    the delay between retries: ``min(n * 50ms, 2s)`` less a little jitter by default.
``socket_timeout`` (5.0), ``socket_connect_timeout`` (2.0)
    seconds; ``None`` waits forever.
``health_check_interval`` (0: off)
    PING a connection idle longer than this before using it.
``read_from_replicas`` (False)
    Cluster: reads go round-robin to each shard's replicas (``LoadBalancingStrategy.
    ROUND_ROBIN_REPLICAS``; a shard without replicas serves reads from its primary).
    Sentinel: ``connect()`` still returns the master's client (writes must go there); call
    :func:`replica_client` on it for a client whose connections go to the replicas. Any
    other URL raises ConfigurationError.
``max_redirections`` (16)
    Cluster: MOVED/ASK redirections followed per command.
``client_name``, ``decode_responses`` (False: redkit works on bytes), ``max_connections``
    (per node), ``username``, ``password``, ``ssl_cert_reqs``, ``ssl_ca_certs``,
    ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname``.
``on_connect``, ``on_error``, ``on_close``
    callables taking a :class:`~redkit._core.urls.ConnectionEvent` (``kind``, ``host``,
    ``port``, ``path``, ``error``, ``client_name``; ``event["host"]`` works too), called
    synchronously from the connection; an exception they raise is logged, not propagated.
    ``on_error`` fires for every failed connection attempt and when an established
    connection fails (a read or write error or timeout, or the server closed it: redis-py
    then reconnects and retries); ``on_close`` when an established connection closes.

The ``redkit.connection`` logger records connects and closes at DEBUG and errors at WARNING.
Connection attempts on the Sentinel's own sockets (discovery) are not reported.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import weakref
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
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
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redkit._core.backoff import retry_policy
from redkit._core.urls import (
    ConnectionEvent,
    ConnectionSpec,
    ConnectOptions,
    EventKind,
    parse_url,
    resolve_options,
    resolve_spec,
)
from redkit.embedded import EmbeddedServer
from redkit.errors import ConfigurationError

__all__ = ["RedkitCluster", "SentinelMaster", "connect", "embedded_server", "replica_client"]

logger = logging.getLogger("redkit.connection")

_EMBEDDED_ATTR = "_redkit_embedded_server"
_SENTINEL_ATTR = "_redkit_sentinel"
_REPLICA_ATTR = "_redkit_replica_client"


class _Hooks:
    """Reports one client's connection events to its callbacks and to the logger."""

    def __init__(self, options: ConnectOptions) -> None:
        self.client_name = options.client_name
        self.callbacks: dict[EventKind, Callable[[ConnectionEvent], object] | None] = {
            "connect": options.on_connect,
            "error": options.on_error,
            "close": options.on_close,
        }

    def emit(self, kind: EventKind, conn: Any, error: BaseException | None = None) -> None:
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


def _report_once(hooks: _Hooks, conn: Any, error: BaseException) -> None:
    """Emit an ``error`` event for ``error`` unless an inner layer already did."""
    if getattr(error, "_redkit_reported", False):
        return
    with contextlib.suppress(AttributeError):  # an exception type without a __dict__
        error._redkit_reported = True  # type: ignore[attr-defined]
    hooks.emit("error", conn, error)


def _hooked(base: type[Any], hooks: _Hooks, health_check_interval: float) -> type[Any]:
    """A subclass of redis-py connection class ``base`` that reports to ``hooks``.

    It also forces ``health_check_interval``: redis-py's sync RedisCluster drops that option
    on its way to the node connections.
    """
    parent: Any = base  # redis-py's connection methods are untyped

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["health_check_interval"] = health_check_interval
        parent.__init__(self, *args, **kwargs)

    async def connect_check_health(
        self: Any, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self.is_connected:
            return
        try:
            await parent.connect_check_health(self, check_health, retry_socket_connect)
        except Exception as exc:
            _report_once(hooks, self, exc)
            raise
        hooks.emit("connect", self)

    async def send_packed_command(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await parent.send_packed_command(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            _report_once(hooks, self, exc)
            raise

    async def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await parent.read_response(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            _report_once(hooks, self, exc)
            raise

    async def can_read(self: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            return bool(await parent.can_read(self, *args, **kwargs))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            _report_once(hooks, self, exc)
            raise

    async def disconnect(self: Any, *args: Any, **kwargs: Any) -> None:
        was_connected = self.is_connected
        await parent.disconnect(self, *args, **kwargs)
        if was_connected:
            error = kwargs.get("error")
            if error is None:
                error = next((a for a in args if isinstance(a, BaseException)), None)
            if error is not None:
                _report_once(hooks, self, error)
            hooks.emit("close", self, error)

    namespace = {
        "__init__": __init__,
        "connect_check_health": connect_check_health,
        "send_packed_command": send_packed_command,
        "read_response": read_response,
        "can_read": can_read,
        "disconnect": disconnect,
        "__module__": __name__,
    }
    return type(f"Redkit{base.__name__}", (base,), namespace)


def _client_kwargs(options: ConnectOptions, retry: Retry) -> dict[str, Any]:
    """Keyword arguments every data connection gets, whatever the topology."""
    kwargs: dict[str, Any] = {
        "username": options.username,
        "password": options.password,
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
        "client_name": options.client_name,
        "decode_responses": options.decode_responses,
        "health_check_interval": options.health_check_interval,
        "retry": retry,
    }
    return kwargs


def _standalone(
    spec: ConnectionSpec, options: ConnectOptions, retry: Retry, hooks: _Hooks
) -> Redis:
    kwargs = _client_kwargs(options, retry)
    pool: ConnectionPool
    if spec.path is not None:
        unix_class = _hooked(UnixDomainSocketConnection, hooks, options.health_check_interval)
        kwargs.pop("socket_connect_timeout")
        pool = ConnectionPool(
            connection_class=unix_class,
            max_connections=options.max_connections,
            path=spec.path,
            db=spec.db,
            **kwargs,
        )
    else:
        host, port = spec.hosts[0]
        tcp_class = _hooked(
            SSLConnection if spec.ssl else Connection, hooks, options.health_check_interval
        )
        if spec.ssl:
            kwargs.update(options.ssl_kwargs())
        pool = ConnectionPool(
            connection_class=tcp_class,
            max_connections=options.max_connections,
            host=host,
            port=port,
            db=spec.db,
            socket_keepalive=True,
            **kwargs,
        )
    return Redis.from_pool(pool)


# redis-py's sync RedisCluster takes `url` and passes `connection_class` to the node pools
# only on that path; its asyncio RedisCluster takes neither and hard-codes Connection, so
# there the class is swapped in the shared connection kwargs before the first connect.
_CLUSTER_TAKES_URL = "url" in inspect.signature(RedisCluster.__init__).parameters


def _swap_connection_class(client: Any, connection_class: type[AbstractConnection]) -> None:
    client.connection_kwargs["connection_class"] = connection_class
    client.nodes_manager.connection_kwargs["connection_class"] = connection_class
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = connection_class


class RedkitCluster(RedisCluster):
    """The Cluster client :func:`connect` returns: a plain ``RedisCluster`` whose close also
    closes every node's pool (redis-py's sync client leaves them open on the path redkit uses
    to give the nodes its connection class)."""

    async def aclose(self, *args: Any, **kwargs: Any) -> None:
        await super().aclose(*args, **kwargs)
        for node in self.get_nodes():  # type: ignore[no-untyped-call]
            node_client = getattr(node, "redis_connection", None)  # sync redis-py only
            if node_client is not None:
                await node_client.connection_pool.disconnect()


def _cluster(
    spec: ConnectionSpec, options: ConnectOptions, retry: Retry, hooks: _Hooks
) -> RedisCluster:
    connection_class = _hooked(
        SSLConnection if spec.ssl else Connection, hooks, options.health_check_interval
    )
    kwargs = _client_kwargs(options, retry)
    kwargs.pop("health_check_interval")  # set by the hooked class (sync RedisCluster drops it)
    if options.max_connections is not None:
        kwargs["max_connections"] = options.max_connections
    if options.read_from_replicas:
        kwargs["load_balancing_strategy"] = LoadBalancingStrategy.ROUND_ROBIN_REPLICAS
    if spec.ssl:
        kwargs.update(options.ssl_kwargs())
    nodes = [ClusterNode(host, port) for host, port in spec.hosts]  # type: ignore[no-untyped-call]
    client: RedisCluster
    if _CLUSTER_TAKES_URL:
        host, port = spec.hosts[0]
        shown = f"[{host}]" if ":" in host else host
        kwargs.update(
            url=f"redis://{shown}:{port}",
            startup_nodes=nodes[1:],
            connection_class=connection_class,
        )
        client = RedkitCluster(**kwargs)
    else:
        client = RedkitCluster(startup_nodes=nodes, ssl=spec.ssl, **kwargs)
        _swap_connection_class(client, connection_class)
    client.RedisClusterRequestTTL = options.max_redirections
    return client


class SentinelMaster(Redis):
    """The client of a Sentinel group's master, as :func:`connect` returns it.

    A plain ``Redis`` whose close also closes the connections to the sentinels and the
    :func:`replica_client` made from it (redis-py leaves those open).
    """

    async def aclose(self, *args: Any, **kwargs: Any) -> None:
        await super().aclose(*args, **kwargs)
        replica = getattr(self, _REPLICA_ATTR, None)
        if replica is not None:
            await replica.aclose()
        sentinel_info = getattr(self, _SENTINEL_ATTR, None)
        if sentinel_info is not None:
            for sentinel_client in sentinel_info[0].sentinels:
                await sentinel_client.aclose()


def _sentinel(spec: ConnectionSpec, options: ConnectOptions, retry: Retry, hooks: _Hooks) -> Redis:
    assert spec.master is not None
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
    kwargs.update(
        connection_class=_hooked(base, hooks, options.health_check_interval),
        db=spec.db,
        max_connections=options.max_connections,
        socket_keepalive=True,
    )
    sentinel = Sentinel(list(spec.hosts), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    master: SentinelMaster = sentinel.master_for(  # type: ignore[no-untyped-call]
        spec.master, redis_class=SentinelMaster, **kwargs
    )
    setattr(master, _SENTINEL_ATTR, (sentinel, spec.master, kwargs))
    if options.read_from_replicas:
        replica_client(master)
    return master


def _build(spec: ConnectionSpec, options: ConnectOptions) -> Redis | RedisCluster:
    retry = retry_policy(options.retries, options.backoff, Retry)
    hooks = _Hooks(options)
    if spec.kind == "cluster":
        return _cluster(spec, options, retry, hooks)
    if spec.kind == "sentinel":
        return _sentinel(spec, options, retry, hooks)
    return _standalone(spec, options, retry, hooks)


def _embedded(spec: ConnectionSpec, options: ConnectOptions) -> Redis | RedisCluster:
    server = EmbeddedServer(cluster=spec.embedded_cluster, sentinel=spec.embedded_sentinel)
    server.start()
    try:
        client = _build(parse_url(server.url), options)
    except BaseException:
        server.stop()
        raise
    setattr(client, _EMBEDDED_ATTR, server)
    # The server lives as long as the client (and EmbeddedServer stops it at exit anyway).
    weakref.finalize(client, server.stop)
    logger.debug("started embedded server %s", server.url)
    return client


def connect(url: str | None = None, **options: Any) -> Redis | RedisCluster:
    """A configured redis-py client for ``url`` (see the module docstring for the options).

    ``url`` defaults to ``$REDIS_URL``, then ``$REDIS_HOST``/``$REDIS_PORT``/
    ``$REDIS_PASSWORD``/``$REDIS_DB``, then ``redis://localhost:6379/0``. A bad URL or an
    unknown or invalid option raises :class:`~redkit.errors.ConfigurationError`.

    Returns ``Redis`` for ``redis://``, ``rediss://``, ``unix://`` and ``redis+sentinel://``
    (the master's client), ``RedisCluster`` for ``redis+cluster://``. ``embedded://`` starts
    the bundled Valkey (``?cluster=3`` for a Cluster, ``?sentinel=true`` for a Sentinel
    group), keeps it running while the client object lives, and stops it at exit; reach it
    with :func:`embedded_server`. Close the client when you are done with it.
    """
    spec = resolve_spec(url)
    resolved = resolve_options(spec, options)
    if spec.kind == "embedded":
        return _embedded(spec, resolved)
    return _build(spec, resolved)


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
    cached = getattr(client, _REPLICA_ATTR, None)
    if cached is not None:
        return cast("Redis", cached)
    sentinel_info = getattr(client, _SENTINEL_ATTR, None)
    if sentinel_info is None:
        raise ConfigurationError(
            "replica_client() needs a client made by connect() from a redis+sentinel:// "
            "or redis+cluster:// URL"
        )
    sentinel, master_name, kwargs = sentinel_info
    replica: Redis = sentinel.slave_for(master_name, **kwargs)
    setattr(client, _REPLICA_ATTR, replica)
    return replica


def embedded_server(client: Redis | RedisCluster) -> EmbeddedServer | None:
    """The :class:`~redkit.embedded.EmbeddedServer` behind a client from ``embedded://``.

    ``None`` for any other client. Call ``.stop()`` on it to stop the server now.
    """
    server = getattr(client, _EMBEDDED_ATTR, None)
    return server if isinstance(server, EmbeddedServer) else None
