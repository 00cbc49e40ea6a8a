"""Connection pools that wait for a free connection: what ``connect(pool_timeout=...)`` builds.

redis-py's default pool fails at once ("Too many connections", ``MaxConnectionsError``) when
all ``max_connections`` are in use: under a burst of concurrent requests an application's
commands fail while the server is idle. Its ``BlockingConnectionPool`` (and the asyncio one)
waits up to ``timeout`` seconds instead, but then raises a plain ``ConnectionError``, the
error of a server that cannot be reached, so a retry policy, a breaker or a Cluster client
would take a busy pool for a dead server. The pools here wait the same way and raise
``MaxConnectionsError`` (a ``ConnectionError`` too) when the wait times out: redkit
translates it to ``BackendBusy``, and ``RedisCluster`` does not mark the node as failed.

Which timeouts are the pool's: redis-py raises its ``ConnectionError`` from the wait's own
timeout (``queue.Empty`` on the sync face, ``asyncio.TimeoutError`` on the other), so that
is what is recognised; a connection that fails to connect keeps its own error. A canary test
(``tests/async_/test_connection.py``) pins this on the installed redis-py.

Variants: a plain server or unix socket (:class:`WaitingPool`), a Sentinel master or replica
(:class:`WaitingSentinelPool`, the Sentinel's pool with the waiting behaviour mixed in), and
each sync Cluster node (:func:`waiting_pool_class`: ``RedisCluster`` builds its node pools
itself from a class). redis-py's asyncio ``RedisCluster`` keeps a plain connection list per
node with no way to wait: a node whose ``max_connections`` are in use raises
``MaxConnectionsError`` at once.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError


def _exhausted(pool: Any) -> MaxConnectionsError:
    return MaxConnectionsError(
        f"no free connection in the pool (max_connections={pool.max_connections}) "
        f"within pool_timeout={pool.timeout}s"
    )


class WaitingPool(redis.BlockingConnectionPool):
    """A sync pool that waits up to ``timeout`` seconds (None: forever) for a connection."""

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """A connection, waiting for one to be released; MaxConnectionsError after
        ``timeout``."""
        try:
            return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except MaxConnectionsError:
            raise
        except RedisConnectionError as exc:
            if isinstance(exc.__context__, queue.Empty):
                raise _exhausted(self) from None
            raise


class AsyncWaitingPool(redis.asyncio.BlockingConnectionPool):
    """An asyncio pool that waits up to ``timeout`` seconds (None: forever) for a connection."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """A connection, waiting for one to be released; MaxConnectionsError after
        ``timeout``."""
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except MaxConnectionsError:
            raise
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                raise _exhausted(self) from None
            raise


#: Whether the sync Sentinel pool can wait: on older redis-py (6.0, the floor) its
#: ``disconnect`` passes ``inuse_connections``, which the blocking pool does not take, so there
#: a sync Sentinel master keeps redis-py's pool that fails at once (the asyncio one waits).
SENTINEL_POOLS_WAIT = (
    "inuse_connections" in inspect.signature(redis.BlockingConnectionPool.disconnect).parameters
)


class WaitingSentinelPool(redis.sentinel.SentinelConnectionPool, WaitingPool):
    """A Sentinel master's (or replicas') sync pool that waits like :class:`WaitingPool`."""


class AsyncWaitingSentinelPool(redis.asyncio.sentinel.SentinelConnectionPool, AsyncWaitingPool):
    """A Sentinel master's (or replicas') asyncio pool that waits like
    :class:`AsyncWaitingPool`."""


def waiting_pool_class(timeout: float | None) -> type[WaitingPool]:
    """A :class:`WaitingPool` class waiting ``timeout`` seconds, for the sync
    ``RedisCluster``'s ``connection_pool_class`` (it passes the pool no timeout of its own)."""

    class ClusterNodePool(WaitingPool):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("timeout", timeout)
            super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    return ClusterNodePool


__all__ = [
    "SENTINEL_POOLS_WAIT",
    "AsyncWaitingPool",
    "AsyncWaitingSentinelPool",
    "WaitingPool",
    "WaitingSentinelPool",
    "waiting_pool_class",
]
