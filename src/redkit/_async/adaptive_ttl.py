"""Adaptive TTL: entries that are read often live longer, by statistics every process shares.

Each entry ``prefix:{id}`` has a companion ``prefix:{id}:stats`` (same slot): a hash of its
hits, misses and the server time of its last hit. Every read runs one script
(``adaptive_get.lua``) that reads the entry and records the read in the same round trip;
the statistics expire with the entry (a fill or a ``set`` gives them the entry's expiry), so
nothing grows in the process and nothing outlives its entry in Redis, and every process
sees the same numbers. When an entry is stored (``set``, or the fill after a miss), the TTL
comes from the policy (:mod:`redkit._core.adaptive_ttl`; the source article's formula by
default) applied to those statistics and the server's clock.

Misses go through the same lease-guarded, single-flight load as ``CacheAside``
(:class:`~redkit._async.loader.Loader`): one fetch for concurrent misses across processes,
and a fill that a concurrent write revoked is refused.
"""

from __future__ import annotations

import logging
from typing import Any

from redkit._acompat import ASYNC, check_fetcher
from redkit._async.lifecycle import Closeable
from redkit._async.loader import MISSING, Fetcher, Loader, set_call
from redkit._async.store import Store
from redkit._core.adaptive_ttl import ArticlePolicy, KeyMetrics, TTLPolicy, check_bounds, clamp
from redkit._core.clock import SYSTEM_CLOCK, Clock
from redkit._core.codecs import DEFAULT_MAX_VALUE_SIZE, NEGATIVE, Codec, Serializer, SerializerName
from redkit._core.degradation import Degradation, OnError
from redkit._core.events import CacheStats, Events
from redkit._core.keys import ADAPTIVE_ENTRY, Companion, KeyId, KeySpace, companion
from redkit._core.ttl import non_negative, seconds_to_ms
from redkit._scripts import script
from redkit.errors import ConfigurationError, RedkitError

logger = logging.getLogger("redkit.cache")

_GET = script("adaptive_get")
_METRICS = script("adaptive_metrics")
_SET = script("cache_set")
_INVALIDATE = script("cache_invalidate")


class AdaptiveTTLCache(Closeable):
    """A cache whose entries live as long as their shared read statistics say.

    ``min_ttl``/``max_ttl``: bounds (seconds) on every TTL the policy gives; ``base_ttl``: the
    default policy's base. ``policy``: a :class:`~redkit._core.adaptive_ttl.TTLPolicy`, a pure
    function ``(metrics, now) -> seconds``, the source article's formula by default; ``now``
    is the server's time. Statistics of an entry that is absent live ``min_ttl``.

    The other options are ``CacheAside``'s: ``serializer``, ``compress_threshold``,
    ``max_value_size``, ``version``, ``negative_ttl`` (how long a ``None`` from the fetcher is
    remembered; 0 disables), ``lock_ttl``/``lock_wait`` (the fill lease), ``on_error`` and
    ``breaker`` (what a Redis failure does to reads; writes always raise). Close it with
    ``aclose()`` or use it as a context manager.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        min_ttl: float = 60,
        max_ttl: float = 86400,
        base_ttl: float = 3600,
        policy: TTLPolicy | None = None,
        *,
        version: int | str | None = None,
        serializer: SerializerName | Serializer = "json",
        compress_threshold: int | None = None,
        max_value_size: int | None = DEFAULT_MAX_VALUE_SIZE,
        negative_ttl: float = 60,
        lock_ttl: float = 10.0,
        lock_wait: float = 5.0,
        on_error: OnError = "fallback",
        breaker: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.min_ttl, self.max_ttl, self.base_ttl = check_bounds(min_ttl, max_ttl, base_ttl)
        if policy is None:
            policy = ArticlePolicy(self.base_ttl, self.min_ttl, self.max_ttl)
        elif not callable(policy):
            raise ConfigurationError(
                f"policy must be a function (metrics, now) -> seconds, got {policy!r}"
            )
        self.policy: TTLPolicy = policy
        self.keys = KeySpace(prefix, version, kind=ADAPTIVE_ENTRY)
        self.codec = Codec(
            serializer, compress_threshold=compress_threshold, max_value_size=max_value_size
        )
        self.negative_ttl_ms = (
            seconds_to_ms(negative_ttl, "negative_ttl")
            if non_negative(negative_ttl, "negative_ttl")
            else 0
        )
        self._min_ttl_ms = seconds_to_ms(self.min_ttl, "min_ttl")
        self._max_ttl_ms = seconds_to_ms(self.max_ttl, "max_ttl")
        if ASYNC:
            threadsafe = False
        else:
            threadsafe = True
        self.events = Events("adaptive_ttl", prefix, threadsafe=threadsafe)
        self.stats = CacheStats(self.events)
        self.degradation = Degradation(
            on_error,
            breaker=non_negative(breaker, "breaker"),
            clock=clock,
            events=self.events,
            logger=logger,
            name=f"adaptive cache {prefix!r}",
        )
        # Reads are scripts (one round trip each, statistics included): no GET batching.
        self.store = Store(
            client, self.keys, pattern="AdaptiveTTLCache", events=self.events, batch_reads=False
        )
        self.client = client
        self.loader = Loader(
            self.store,
            self.codec,
            self.events,
            self.degradation,
            clock=clock,
            lock_ttl_ms=seconds_to_ms(lock_ttl, "lock_ttl"),
            lock_wait=non_negative(lock_wait, "lock_wait"),
            negative_ttl_ms=self.negative_ttl_ms,
            logger=logger,
            follow=(Companion.STATS,),
        )

    # -- reads ---------------------------------------------------------------------------

    async def get(self, id: KeyId, default: Any = None) -> Any:
        """The cached value of ``id``, or ``default`` on a miss (or a cached ``None``).

        One round trip: the read and its statistics update are one script.
        """
        key = self.keys.key(id)
        if self.degradation.is_open():
            return default
        try:
            reply = await self._read(key)
        except RedkitError as exc:
            self.degradation.read_failed(exc)
            return default
        value = self.loader.decode(key, reply[0])
        return default if value is NEGATIVE or value is MISSING else value

    async def get_or_fetch(self, id: KeyId, fetcher: Fetcher, ttl: float | None = None) -> Any:
        """The cached value of ``id``; on a miss, ``fetcher()``'s result, cached for the
        policy's TTL (or ``ttl`` seconds, if given).

        Falsy values are hits; a ``None`` result is cached as a negative entry for
        ``negative_ttl``. One fetch serves every concurrent miss of ``id``, across processes.
        """
        key = self.keys.key(id)
        check_fetcher(fetcher)
        ttl_ms = None if ttl is None else seconds_to_ms(ttl)
        if self.degradation.is_open():
            return await self.loader.fetch(fetcher)
        try:
            reply = await self._read(key)
        except RedkitError as exc:
            self.degradation.read_failed(exc)
            return await self.loader.fetch(fetcher)
        data = reply[0]
        value = self.loader.decode(key, data)
        if value is not MISSING:
            return None if value is NEGATIVE else value
        if ttl_ms is None:
            try:
                # The statistics came back with the miss; corrupt bytes were a hit for Redis
                # and came alone (rare: read the statistics then).
                metrics, now = _metrics(reply[1:]) if len(reply) > 1 else await self._metrics(key)
            except RedkitError as exc:
                self.degradation.read_failed(exc)
                return await self.loader.fetch(fetcher)
            ttl_ms = self._ttl_ms(metrics, now)
        fill_ttl_ms = ttl_ms
        return await self.store.flight(
            key, lambda: self.loader.load(key, fetcher, fill_ttl_ms, data)
        )

    async def ttl_for(self, id: KeyId) -> float:
        """The TTL (seconds) the policy gives ``id`` now, from its shared statistics."""
        metrics, now = await self._metrics(self.keys.key(id))
        return self._ttl_ms(metrics, now) / 1000

    async def metrics(self, id: KeyId) -> KeyMetrics:
        """``id``'s read statistics, as every process sees them."""
        metrics, _ = await self._metrics(self.keys.key(id))
        return metrics

    # -- writes --------------------------------------------------------------------------

    async def set(self, id: KeyId, value: Any, ttl: float | None = None) -> float:
        """Cache ``value`` for ``id`` and revoke fills in progress; returns the TTL given
        (seconds): ``ttl`` if given, the policy's otherwise (``negative_ttl`` for ``None``).

        Without ``ttl`` this reads the statistics first (a second round trip).
        """
        key = self.keys.key(id)
        payload = self.codec.encode(value, key=key)
        if ttl is not None:
            ttl_ms = seconds_to_ms(ttl)
        elif value is None and self.negative_ttl_ms:
            ttl_ms = self.negative_ttl_ms
        else:
            ttl_ms = self._ttl_ms(*await self._metrics(key))
        await self.store.write(
            _SET,
            *set_call(key, payload, ttl_ms, companion(key, Companion.STATS)),
            entries=[key],
        )
        return ttl_ms / 1000

    async def invalidate(self, id: KeyId) -> bool:
        """Remove ``id``'s entry and its statistics, revoking any fill in progress; whether
        an entry existed."""
        key = self.keys.key(id)
        return bool(
            await self.store.write(_INVALIDATE, [key, *self.keys.companions(key)], entries=[key])
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop this cache's background work; not the client."""
        await self.store.aclose()

    # -- internals -----------------------------------------------------------------------

    async def _read(self, key: str) -> list[Any]:
        """The entry (``[bytes]``) or ``[None, hits, misses, last ms, now ms]``: one script."""
        reply: list[Any] = await self.store.run(
            _GET,
            [key, companion(key, Companion.STATS)],
            [self._min_ttl_ms, self._max_ttl_ms],
        )
        return reply

    async def _metrics(self, key: str) -> tuple[KeyMetrics, float]:
        reply = await self.store.run(_METRICS, [companion(key, Companion.STATS)])
        hits, misses, last, now = reply
        return _metrics([hits, misses, last, now])

    def _ttl_ms(self, metrics: KeyMetrics, now: float) -> int:
        ttl = self.policy(metrics, now)
        return seconds_to_ms(clamp(ttl, self.min_ttl, self.max_ttl, self.policy))


def _metrics(fields: list[Any]) -> tuple[KeyMetrics, float]:
    """KeyMetrics and the server time (seconds) from a script's ``hits, misses, last, now``."""
    hits, misses, last, now = (int(field) for field in fields)
    return KeyMetrics(hits, misses, None if last < 0 else last / 1000), now / 1000
