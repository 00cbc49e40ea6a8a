"""redkit's async face: the same names as :mod:`redkit`, for ``redis.asyncio`` clients.

>>> import redkit.asyncio as redkit
>>> client = redkit.connect("redis://localhost:6379/0")
>>> users = redkit.CacheAside(client, "user", ttl=300)
>>> user = await users.get_or_fetch(42, load_user_from_db)
"""

from redkit._async.adaptive_ttl import AdaptiveTTLCache
from redkit._async.cache_aside import CacheAside
from redkit._async.connection import connect, embedded_server, replica_client
from redkit._async.decorators import cached
from redkit._async.lock import Lock
from redkit._async.ratelimit import (
    FixedWindowLimiter,
    GCRALimiter,
    SlidingWindowCounterLimiter,
    SlidingWindowLogLimiter,
    TokenBucketLimiter,
    rate_limited,
)
from redkit._async.redlock import Redlock
from redkit._async.repository import Repository
from redkit._async.sessions import Session, SessionStore
from redkit._async.tiered import TieredCache
from redkit._async.write_behind import WriteBehind
from redkit._async.write_through import WriteThrough
from redkit._core.adaptive_ttl import ArticlePolicy, KeyMetrics, TTLPolicy
from redkit._core.backoff import Backoff
from redkit._core.codecs import Codec, Serializer
from redkit._core.connection_events import ConnectionEvent
from redkit._core.events import CacheStats, Event, subscribe
from redkit._core.ratelimit import (
    DecidedBy,
    LimiterStats,
    LocalFixedWindowLimiter,
    LocalGCRALimiter,
    LocalSlidingWindowCounterLimiter,
    LocalSlidingWindowLogLimiter,
    LocalTokenBucketLimiter,
    RateLimitResult,
)
from redkit._core.session_stats import SessionStats
from redkit._core.tiered_stats import TieredStats
from redkit.embedded import EmbeddedServer

__all__ = [
    "AdaptiveTTLCache",
    "ArticlePolicy",
    "Backoff",
    "CacheAside",
    "CacheStats",
    "Codec",
    "ConnectionEvent",
    "DecidedBy",
    "EmbeddedServer",
    "Event",
    "FixedWindowLimiter",
    "GCRALimiter",
    "KeyMetrics",
    "LimiterStats",
    "LocalFixedWindowLimiter",
    "LocalGCRALimiter",
    "LocalSlidingWindowCounterLimiter",
    "LocalSlidingWindowLogLimiter",
    "LocalTokenBucketLimiter",
    "Lock",
    "RateLimitResult",
    "Redlock",
    "Repository",
    "Serializer",
    "Session",
    "SessionStats",
    "SessionStore",
    "SlidingWindowCounterLimiter",
    "SlidingWindowLogLimiter",
    "TTLPolicy",
    "TieredCache",
    "TieredStats",
    "TokenBucketLimiter",
    "WriteBehind",
    "WriteThrough",
    "cached",
    "connect",
    "embedded_server",
    "rate_limited",
    "replica_client",
    "subscribe",
]
