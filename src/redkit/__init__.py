"""redkit: caching and coordination patterns for Redis and Valkey, done right.

This is the sync face, for ``redis.Redis`` clients; :mod:`redkit.asyncio` has the same names
for ``redis.asyncio`` clients.

>>> import redkit
>>> client = redkit.connect("redis://localhost:6379/0")
>>> users = redkit.CacheAside(client, "user", ttl=300)
>>> user = users.get_or_fetch(42, lambda: load_user_from_db(42))
"""

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
from redkit._sync.adaptive_ttl import AdaptiveTTLCache
from redkit._sync.cache_aside import CacheAside
from redkit._sync.connection import connect, embedded_server, replica_client
from redkit._sync.decorators import cached
from redkit._sync.lock import Lock
from redkit._sync.ratelimit import (
    FixedWindowLimiter,
    GCRALimiter,
    SlidingWindowCounterLimiter,
    SlidingWindowLogLimiter,
    TokenBucketLimiter,
    rate_limited,
)
from redkit._sync.redlock import Redlock
from redkit._sync.repository import Repository
from redkit._sync.sessions import Session, SessionStore
from redkit._sync.tiered import TieredCache
from redkit._sync.write_behind import WriteBehind
from redkit._sync.write_through import WriteThrough
from redkit.embedded import EmbeddedServer

__version__ = "0.1.0"

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
    "__version__",
    "cached",
    "connect",
    "embedded_server",
    "rate_limited",
    "replica_client",
    "subscribe",
]
