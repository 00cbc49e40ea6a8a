"""The only module that touches redis-py's internals; each use says why redkit needs it.

redkit hands users plain redis-py clients, configured. A few things it adds have no public
hook in redis-py, so they are done here, in one place, where an upgrade of redis-py is checked:

- connection events (``on_connect``, ``on_connection_error``, ``on_close``): subclasses of
  redis-py's connection classes that override ``_connect``, ``connect_check_health``,
  ``send_packed_command``, ``read_response``, ``can_read`` and ``disconnect``;
- a retry policy that never retries an authentication failure, which it raises as
  :class:`RedisAuthenticationFailed` (redkit's ``AuthenticationFailed`` as well as redis-py's
  ``AuthenticationError``);
- the asyncio Cluster's connection class, set through ``nodes_manager``; the sync Cluster's
  node pools, closed through each node's ``redis_connection``; ``RedisClusterRequestTTL``;
- state redkit keeps on the client objects it returns (the embedded server, the Sentinel);
- what a client is: :func:`is_async_client` and :func:`decode_responses_of`, which patterns
  use to refuse a client of the wrong face or one that decodes responses;
- which sync clients may have lanes (:func:`lanes_allowed`, used by :mod:`redkit._lanes`,
  which sends on pool connections through ``send_command``/``read_response``);
- invalidation connections for ``TieredCache``: :func:`tracking_connection` (a RESP2
  connection with a client's settings, in no pool), :func:`cluster_primaries`,
  :func:`sentinel_master_pool`, :func:`is_connected` and :func:`interrupt_connection`.

Nothing here starts I/O. Both faces are here: the connection module picks its own with an
``if ASYNC:`` block, so no face is probed at run time.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar

import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.client
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from redkit._core.backoff import BackoffPolicy
from redkit.errors import AuthenticationFailed, ConfigurationError

T = TypeVar("T")

# --------------------------------------------------------------------------- authentication


class RedisAuthenticationFailed(AuthenticationError, AuthenticationFailed):
    """The server refused the credentials: a configuration error, never retried.

    It is redis-py's ``AuthenticationError`` (code catching that keeps working) and redkit's
    :class:`~redkit.errors.AuthenticationFailed` (a ``ConfigurationError``: a cache never
    falls back silently on it).
    The message names the server and the user, never the password.
    """

    @classmethod
    def of(cls, error: BaseException, conn: Any) -> RedisAuthenticationFailed:
        """The typed error for redis-py's ``error`` on connection ``conn``."""
        path = getattr(conn, "path", None)
        host, port = getattr(conn, "host", "?"), getattr(conn, "port", "?")
        where = path if path else (f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}")
        user = getattr(conn, "username", None) or "default"
        if getattr(conn, "password", None) is None:
            advice = "the server requires a password and none was given"
        else:
            advice = (
                "check the password given to connect() (in the URL, password= or REDIS_PASSWORD)"
            )
        failure = cls(f"authentication failed on {where} as user {user!r}: {advice} ({error})")
        failure.__cause__ = error
        return failure


class _NotRetried(Exception):
    """Carries an error through redis-py's retry loop without it being retried."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


#: The errors a retry policy retries: the connection dropped, was refused, or timed out.
#: redis-py wraps socket errors in its own types, except around a connect attempt before
#: redis-py 7 (the asyncio client then saw the raw OSError): the builtin ones cover that.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    socket.timeout,
    ConnectionError,
)


class _Retry(Retry):
    # Why: AuthenticationError subclasses ConnectionError, which must be retried, so redis-py's
    # Retry retried a wrong password `retries` times. `is_retryable` would say so, but the
    # sync Retry takes it only from redis-py 7.0 (the asyncio one from 7.4): wrap instead.
    def call_with_retry(self, do: Callable[[], T], fail: Any, *args: Any, **kwargs: Any) -> T:
        def guarded() -> T:
            try:
                return do()
            except AuthenticationError as exc:
                raise _NotRetried(exc) from None

        try:
            return super().call_with_retry(guarded, fail, *args, **kwargs)
        except _NotRetried as wrapped:
            error = wrapped.error
        raise error


class _AsyncRetry(AsyncRetry):
    # Why: as _Retry, for redis.asyncio.
    async def call_with_retry(  # type: ignore[override]
        self, do: Callable[[], Awaitable[T]], fail: Any, *args: Any, **kwargs: Any
    ) -> T:
        async def guarded() -> T:
            try:
                return await do()
            except AuthenticationError as exc:
                raise _NotRetried(exc) from None

        try:
            return await super().call_with_retry(guarded, fail, *args, **kwargs)
        except _NotRetried as wrapped:
            error = wrapped.error
        raise error


def retry_policy(retries: int, backoff: BackoffPolicy) -> Retry:
    """A ``redis.retry.Retry``: ``retries`` retries of connection errors and timeouts."""
    return _Retry(backoff, retries, RETRYABLE_ERRORS)  # type: ignore[arg-type]


def async_retry_policy(retries: int, backoff: BackoffPolicy) -> AsyncRetry:
    """The same for ``redis.asyncio``."""
    return _AsyncRetry(backoff, retries, RETRYABLE_ERRORS)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- connection hooks


class Reporter(Protocol):
    """Receives one client's connection events (the connection module's ``_Hooks``)."""

    def connected(self, conn: Any) -> None:
        """A connection was established and handshaken."""

    def failed(self, conn: Any, error: BaseException) -> None:
        """A connection attempt failed, or an established connection failed."""

    def closed(self, conn: Any, error: BaseException | None) -> None:
        """An established connection was closed (``error``: why, if by an error)."""


_REPORTED = "_redkit_reported"


def _report_once(reporter: Reporter, conn: Any, error: BaseException) -> None:
    """Report ``error`` unless it, or an error it wraps, was reported already.

    redis-py re-raises a socket error as its own ``ConnectionError``, and several layers
    (a connect attempt, the command, the disconnect) see the same failure.
    """
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if any(getattr(e, _REPORTED, False) for e in chain):
        return
    with contextlib.suppress(AttributeError):  # an exception type without a __dict__
        setattr(error, _REPORTED, True)  # Why: an attribute on the exception is the only mark
    reporter.failed(conn, error)


_IO_ERRORS = (RedisConnectionError, RedisTimeoutError)


def _sync_connected(conn: Any) -> bool:
    # Why: the sync connections have `is_connected` only from redis-py 6.4; `_sock` is what
    # it reads, in every version.
    return getattr(conn, "_sock", None) is not None


def hooked_connection_class(
    base: type[Any], reporter: Reporter, health_check_interval: float
) -> type[Any]:
    """A subclass of redis-py's sync connection class ``base`` that reports to ``reporter``.

    Why the overrides: ``_connect`` is one socket attempt (retried inside
    ``connect_check_health`` on redis-py >= 6.3, by the command's retry before that),
    ``connect_check_health`` the whole connect and handshake (where authentication fails), and
    the I/O methods are where an established connection fails. ``__init__`` forces
    ``health_check_interval``, which redis-py's sync RedisCluster drops on its way to the nodes.

    Interrupts: an exception from a signal handler can land in redis-py between sending a
    command and reading its reply, and redis-py then returns the connection to its pool with
    the reply still to come; with maintenance notifications on (redis-py 8's default) the
    pool no longer checks for stray data, so the next command would read this one's reply.
    The connection counts the replies it owes (``send_command``/``pack_commands`` add, a
    complete reply subtracts) and one handed out again while it owes any is reconnected
    (``connect_check_health``, which the pool's checkout calls). ``disconnect`` finishes a
    disconnect interrupted halfway (redis-py resets the parser before it drops the socket: a
    connection left in between looks open and fails every command).
    """
    parent: Any = base  # redis-py's connection methods are untyped

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["health_check_interval"] = health_check_interval
        self._redkit_owed = 0
        parent.__init__(self, *args, **kwargs)

    def _connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return parent._connect(self, *args, **kwargs)
        except Exception as exc:
            _report_once(reporter, self, exc)
            raise

    def connect_check_health(self: Any, *args: Any, **kwargs: Any) -> None:
        if _sync_connected(self):
            if not self._redkit_owed:
                return
            self.disconnect()  # interrupted mid-command: replies still to come
        try:
            parent.connect_check_health(self, *args, **kwargs)
        except AuthenticationError as exc:
            failure = RedisAuthenticationFailed.of(exc, self)
        except Exception as exc:
            _report_once(reporter, self, exc)
            raise
        else:
            reporter.connected(self)
            return
        _report_once(reporter, self, failure)
        raise failure

    def send_command(self: Any, *args: Any, **kwargs: Any) -> None:
        self._redkit_owed += 1
        parent.send_command(self, *args, **kwargs)

    def pack_commands(self: Any, commands: Any) -> Any:
        commands = list(commands)
        self._redkit_owed += len(commands)
        return parent.pack_commands(self, commands)

    def send_packed_command(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            parent.send_packed_command(self, *args, **kwargs)
        except _IO_ERRORS as exc:
            _report_once(reporter, self, exc)
            raise

    def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            reply = parent.read_response(self, *args, **kwargs)
        except _IO_ERRORS as exc:
            _report_once(reporter, self, exc)
            raise
        except ResponseError:
            self._redkit_owed -= 1  # an error reply is a complete reply
            raise
        self._redkit_owed -= 1
        return reply

    def can_read(self: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            return bool(parent.can_read(self, *args, **kwargs))
        except _IO_ERRORS as exc:
            _report_once(reporter, self, exc)
            raise

    def disconnect(self: Any, *args: Any, **kwargs: Any) -> None:
        was_connected = _sync_connected(self)
        try:
            parent.disconnect(self, *args, **kwargs)
        finally:
            self._redkit_owed = 0
            if _sync_connected(self):
                _finish_disconnect(self)
        if was_connected:
            _closed(reporter, self, args, kwargs)

    return _subclass(base, locals())


def _finish_disconnect(conn: Any) -> None:
    """Drop the socket of a sync connection whose ``disconnect()`` stopped halfway."""
    sock, conn._sock = conn._sock, None
    with contextlib.suppress(OSError):
        sock.close()
    with contextlib.suppress(Exception):
        conn._parser.on_disconnect()


def async_hooked_connection_class(
    base: type[Any], reporter: Reporter, health_check_interval: float
) -> type[Any]:
    """The same as :func:`hooked_connection_class`, for redis.asyncio's connection classes."""
    parent: Any = base

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["health_check_interval"] = health_check_interval
        parent.__init__(self, *args, **kwargs)

    async def _connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await parent._connect(self, *args, **kwargs)
        except Exception as exc:
            _report_once(reporter, self, exc)
            raise

    async def connect_check_health(self: Any, *args: Any, **kwargs: Any) -> None:
        if self.is_connected:
            return
        try:
            await parent.connect_check_health(self, *args, **kwargs)
        except AuthenticationError as exc:
            failure = RedisAuthenticationFailed.of(exc, self)
        except Exception as exc:
            _report_once(reporter, self, exc)
            raise
        else:
            reporter.connected(self)
            return
        _report_once(reporter, self, failure)
        raise failure

    async def send_packed_command(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await parent.send_packed_command(self, *args, **kwargs)
        except _IO_ERRORS as exc:
            _report_once(reporter, self, exc)
            raise
        except AttributeError as exc:
            raise _lost_in_use(reporter, self, exc) from exc

    async def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await parent.read_response(self, *args, **kwargs)
        except _IO_ERRORS as exc:
            _report_once(reporter, self, exc)
            raise
        except AttributeError as exc:
            raise _lost_in_use(reporter, self, exc) from exc

    async def can_read(self: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            return bool(await parent.can_read(self, *args, **kwargs))
        except _IO_ERRORS as exc:
            _report_once(reporter, self, exc)
            raise

    async def disconnect(self: Any, *args: Any, **kwargs: Any) -> None:
        was_connected = self.is_connected
        await parent.disconnect(self, *args, **kwargs)
        if was_connected:
            _closed(reporter, self, args, kwargs)

    return _subclass(base, locals())


def _lost_in_use(reporter: Reporter, conn: Any, error: AttributeError) -> BaseException:
    """The error to raise for an AttributeError out of an asyncio connection's I/O.

    Why: redis-py's asyncio Cluster client can disconnect a connection another task is using
    (a re-initialisation after MOVED or a failure closes the nodes' connections), and the
    write or read then finds no stream (``'NoneType' object has no attribute 'writelines'``).
    That is a lost connection: raised as one, it is retried and translated like one. Any other
    AttributeError (the stream is still there) is a bug and is raised as it is.
    """
    if getattr(conn, "_writer", None) is not None and getattr(conn, "_reader", None) is not None:
        return error
    lost = RedisConnectionError(f"the connection was closed while in use ({error})")
    _report_once(reporter, conn, lost)
    return lost


def _closed(reporter: Reporter, conn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    error = kwargs.get("error")
    if error is None:
        error = next((a for a in args if isinstance(a, BaseException)), None)
    if error is not None:
        _report_once(reporter, conn, error)
    reporter.closed(conn, error)


_HOOKS = (
    "__init__",
    "_connect",
    "connect_check_health",
    "send_packed_command",
    "read_response",
    "can_read",
    "disconnect",
)
_SYNC_HOOKS = ("send_command", "pack_commands")


def _subclass(base: type[Any], namespace: dict[str, Any]) -> type[Any]:
    methods = {name: namespace[name] for name in _HOOKS if name in namespace}
    methods.update((name, namespace[name]) for name in _SYNC_HOOKS if name in namespace)
    return type(f"Redkit{base.__name__}", (base,), {**methods, "__module__": __name__})


# --------------------------------------------------------------------------- Cluster


def use_connection_class(cluster: Any, connection_class: type[Any]) -> None:
    """Make an asyncio ``RedisCluster`` (not yet initialised) use ``connection_class``.

    Why: its constructor takes no ``connection_class`` and hard-codes ``Connection``; the
    node connections are made from ``nodes_manager.connection_kwargs`` and each startup
    node's ``connection_class``, so both are set before the first command.
    """
    cluster.connection_kwargs["connection_class"] = connection_class
    cluster.nodes_manager.connection_kwargs["connection_class"] = connection_class
    for node in cluster.nodes_manager.startup_nodes.values():
        node.connection_class = connection_class


def set_max_redirections(cluster: Any, redirections: int) -> None:
    """Follow at most ``redirections`` MOVED/ASK replies per command.

    Why: redis-py reads the bound from the ``RedisClusterRequestTTL`` attribute; only the
    sync constructor has no parameter for it in every supported version.
    """
    cluster.RedisClusterRequestTTL = redirections


def close_node_pools(cluster: Any) -> None:
    """Disconnect every node's pool of a sync ``RedisCluster``.

    Why: ``RedisCluster.close()`` leaves them open when the cluster was built from a URL with
    a ``connection_class`` (how redkit gives the nodes its class); each node holds its own
    ``Redis`` in ``redis_connection``.
    """
    for node in cluster.get_nodes():
        node_client = getattr(node, "redis_connection", None)
        if node_client is not None:
            node_client.connection_pool.disconnect()


# --------------------------------------------------------------------------- state on clients

Attachment = Literal["embedded_server", "sentinel", "replica_client"]


def attach(client: Any, name: Attachment, value: object) -> None:
    """Keep ``value`` on ``client`` (made by ``connect()``) for as long as the client lives.

    Why: the objects ``connect()`` returns are redis-py's own (or thin subclasses), and what
    redkit needs later (the embedded server to stop, the Sentinel to ask for replicas) must
    live and die with them; an attribute does that without a registry that could leak.
    """
    setattr(client, f"_redkit_{name}", value)


def attached(client: Any, name: Attachment) -> Any:
    """What :func:`attach` kept on ``client`` under ``name``, or None."""
    return getattr(client, f"_redkit_{name}", None)


# --------------------------------------------------------------------------- what a client is

_ASYNC_CLIENTS: tuple[type[Any], ...] = (
    redis.asyncio.Redis,  # also its Pipeline and the Sentinel's master and replica clients
    redis.asyncio.cluster.RedisCluster,
    redis.asyncio.cluster.ClusterPipeline,  # not a RedisCluster subclass
)
_SYNC_CLIENTS: tuple[type[Any], ...] = (
    redis.Redis,  # also its Pipeline and the Sentinel's clients
    redis.cluster.RedisCluster,  # also its ClusterPipeline
)


def is_async_client(client: object) -> bool | None:
    """True for a redis.asyncio client or pipeline, False for a sync one, None otherwise."""
    if isinstance(client, _ASYNC_CLIENTS):
        return True
    if isinstance(client, _SYNC_CLIENTS):
        return False
    return None


def decode_responses_of(client: object) -> bool:
    """Whether redis-py client ``client`` (any topology, either face, or a pipeline) decodes
    replies to ``str``; ConfigurationError for something that is not a redis-py client."""
    if is_async_client(client) is None:
        raise ConfigurationError(
            f"expected a redis-py client (redis.Redis, RedisCluster or their redis.asyncio "
            f"versions), got {type(client).__name__}"
        )
    # Why: what counts is what the connections do, and they are made from these kwargs (a
    # sync ClusterPipeline's own encoder does not follow decode_responses). The asyncio
    # ClusterPipeline wraps its cluster client (`cluster_client` in redis-py 8, `_client` before).
    target: Any = client
    if isinstance(client, redis.asyncio.cluster.ClusterPipeline):
        target = getattr(client, "cluster_client", None) or getattr(client, "_client", None)
    if isinstance(target, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster):
        kwargs = target.nodes_manager.connection_kwargs
    else:
        kwargs = target.connection_pool.connection_kwargs
    return bool(kwargs.get("decode_responses", False))


def pool_size(client: object) -> int:
    """How many connections redis-py client ``client`` may open (per node on a Cluster).

    Why: redkit keeps its own concurrent commands below this (a gate per client), so a burst
    of misses waits its turn instead of exhausting the pool; redis-py has no public accessor.
    """
    target: Any = client
    if isinstance(target, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster):
        size = target.nodes_manager.connection_kwargs.get("max_connections")
    else:
        size = getattr(getattr(target, "connection_pool", None), "max_connections", None)
    return size if isinstance(size, int) and size > 0 else 100


def lanes_allowed(client: object) -> bool:
    """Whether sync ``client``'s replies to GET, MGET and EVALSHA can be read off its pool's
    connections directly (see :mod:`redkit._lanes`).

    Why: ``execute_command`` does more than send and read for some clients: a pinned
    connection (``single_connection_client``), client-side caching (the pool's ``cache``),
    and maintenance notifications, which arrive as RESP3 pushes and may make it reconnect
    after a command (their config's ``enabled`` is "auto", truthy, by default in redis-py 8;
    they need RESP3). Those clients keep the client's own path.
    """
    if not isinstance(client, redis.Redis) or client.connection is not None:
        return False
    pool = client.connection_pool
    if getattr(pool, "cache", None) is not None:
        return False
    if str(pool.connection_kwargs.get("protocol")) != "3":
        return True
    notifications = getattr(pool, "maint_notifications_enabled", None)
    return not (callable(notifications) and notifications())


def marked_for_reconnect(conn: Any) -> bool:
    """Whether a maintenance notification marked sync connection ``conn`` for reconnection.

    Why: redis-py 8 marks the pool's connections in use when a RESP3 ``MOVING`` notification
    arrives (``mark_for_reconnect``); ``execute_command`` and the pool's ``release`` then
    disconnect them. Lanes bypass both, so they check the mark themselves. Older redis-py
    has no such notifications (and no ``should_reconnect``).
    """
    marked = getattr(conn, "should_reconnect", None)
    return bool(marked()) if marked is not None else False


# --------------------------------------------------------------------------- tracking


def tracking_connection(client: Any, address: tuple[str, int] | None = None) -> Any:
    """A new connection, in no pool, to the server ``client`` talks to (to ``address``, a
    primary, on a Cluster): RESP2, no read timeout. It is not connected yet.

    Why: a CLIENT TRACKING redirect target must speak RESP2 (RESP3 invalidations arrive as
    push frames redis-py's pub/sub never returns), is subscribed (no other command may use
    it), and must block on reads for as long as no key changes. redis-py has no public way to
    open one connection with a client's settings (credentials, TLS, Sentinel, connection
    hooks), so it is made from the pool's (or a Cluster node's) connection class and
    arguments: ``connection_pool.connection_class``/``connection_kwargs`` on a ``Redis``,
    ``node.redis_connection``'s pool on a sync Cluster node, ``node.connection_class``/
    ``connection_kwargs`` on an asyncio one.
    """
    if address is None:
        pool = client.connection_pool
        cls, kwargs = pool.connection_class, dict(pool.connection_kwargs)
    else:
        nodes = client.get_nodes()
        if not nodes:
            raise ConfigurationError("the Cluster client knows no node yet")
        node = nodes[0]
        if getattr(node, "redis_connection", None) is not None:
            pool = node.redis_connection.connection_pool
            cls, kwargs = pool.connection_class, dict(pool.connection_kwargs)
        else:
            cls, kwargs = node.connection_class, dict(node.connection_kwargs)
        kwargs["host"], kwargs["port"] = address
    kwargs.update(protocol=2, socket_timeout=None)
    return cls(**kwargs)


def is_connected(conn: Any) -> bool:
    """Whether redis-py connection ``conn`` (either face) has an open socket.

    Why: sending on a closed connection makes redis-py connect it again, handshake included,
    in the sending thread; a thread that only wants to wake a reader must not do that. The
    asyncio connections have ``is_connected``; the sync ones only from redis-py 6.4, so their
    ``_sock`` is read (what ``is_connected`` reads).
    """
    state = getattr(conn, "is_connected", None)
    if isinstance(state, bool):
        return state
    return _sync_connected(conn)


def interrupt_connection(conn: Any) -> None:
    """Wake a thread blocked reading sync connection ``conn``: its read fails at once.

    Why: redis-py's sync connections cannot be interrupted; shutting their socket
    (``_sock``) down ends a blocking ``recv`` in another thread, which ``close()`` does not
    reliably do.
    """
    sock = getattr(conn, "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def cluster_primaries(slots: Any) -> list[tuple[str, int]]:
    """The ``(host, port)`` of every primary in a ``CLUSTER SLOTS`` reply, sorted.

    Why: redis-py parses the reply into ``{(start, end): {"primary": (host, port), ...}}``;
    a raw reply (``[[start, end, [host, port, id], ...], ...]``) is read as well.
    """
    found: set[tuple[str, int]] = set()
    if isinstance(slots, dict):
        for entry in slots.values():
            host, port = entry["primary"][:2]
            found.add((_text(host), int(port)))
    else:
        for entry in slots or ():
            host, port = entry[2][:2]
            found.add((_text(host), int(port)))
    return sorted(found)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def sentinel_master_pool(client: Any) -> Any | None:
    """The Sentinel connection pool behind ``client`` if it talks to the master, else None.

    Why: after a failover the old master may stay up, and answer, for a while before it
    replicates from the new one; an invalidation connection still on it hears of no write.
    Its ``get_master_address()`` (sync or async, as the pool) asks the sentinels where the
    master is now; ``is_master`` tells a master pool from a replica one.
    """
    pool = getattr(client, "connection_pool", None)
    sentinel_pools = (
        redis.sentinel.SentinelConnectionPool,
        redis.asyncio.sentinel.SentinelConnectionPool,
    )
    if isinstance(pool, sentinel_pools) and pool.is_master:
        return pool
    return None


__all__ = [
    "RETRYABLE_ERRORS",
    "RedisAuthenticationFailed",
    "Reporter",
    "async_hooked_connection_class",
    "async_retry_policy",
    "attach",
    "attached",
    "close_node_pools",
    "cluster_primaries",
    "decode_responses_of",
    "hooked_connection_class",
    "interrupt_connection",
    "is_async_client",
    "is_connected",
    "marked_for_reconnect",
    "pool_size",
    "retry_policy",
    "sentinel_master_pool",
    "set_max_redirections",
    "tracking_connection",
    "use_connection_class",
]
