"""Cache-aside: read from Redis, fall back to the source on a miss, cache what it returns.

Each entry ``prefix:{id}`` has a companion fill lock ``prefix:{id}:lock`` (same slot). A miss
takes the lock before fetching and stores the result only if it still holds the lock
(``cache_fill.lua``); ``set`` and ``invalidate`` delete the lock, so a fetch that raced with
them is refused instead of caching data older than the source. The same lock makes callers in
other processes wait for the one fetch (stampede protection); in this process concurrent
misses share one call (single-flight) and concurrent reads share one MGET.

The pattern is thin over the kernel: the :class:`~redkit._async.store.Store` owns keys,
scripts, batching, single-flight and the write barrier; the
:class:`~redkit._async.loader.Loader` runs the lease-guarded load of a miss (shared with the
other caches); the
:class:`~redkit._core.degradation.Degradation` policy decides what a Redis failure does; the
:class:`~redkit._core.events.Events` sink counts what happens (``stats``).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from redkit._acompat import ASYNC, check_fetcher
from redkit._async.lifecycle import Closeable
from redkit._async.loader import MISSING, Fetcher, Loader, set_call, token
from redkit._async.store import Store
from redkit._core.clock import SYSTEM_CLOCK, Clock
from redkit._core.codecs import DEFAULT_MAX_VALUE_SIZE, NEGATIVE, Codec, Serializer, SerializerName
from redkit._core.degradation import Degradation, OnError
from redkit._core.events import CacheStats, Event, Events
from redkit._core.keys import Companion, KeyId, KeySpace, companion
from redkit._core.ttl import non_negative, seconds_to_ms
from redkit._scripts import script
from redkit.errors import BackendError, CorruptEntry, InvalidationPending, RedkitError

logger = logging.getLogger("redkit.cache")

__all__ = ["CacheAside", "Fetcher"]

_SET = script("cache_set")
_INVALIDATE = script("cache_invalidate")
_INVALIDATE_AND_LOCK = script("cache_invalidate_and_lock")
_GET_WITH_TTL = script("cache_get_with_ttl")

_UNLINK_BATCH = 500


class CacheAside(Closeable):
    """A cache in front of any source of truth, keyed by ``prefix[:vN]:{id}``.

    ``ttl``: seconds an entry lives; ``negative_ttl``: seconds a ``None`` from the fetcher is
    remembered (0 disables); ``beta``: probabilistic early refresh (XFetch, 1.0 is the usual
    choice; None disables; a failed early refresh is logged and counted, and the caller gets
    the cached value); ``lock_ttl``/``lock_wait``: how long one fetch may hold the fill lock
    and how long other callers wait for its value before asking the source themselves.

    When Redis fails (the degradation policy): ``on_error="fallback"`` (default) serves reads
    from the fetcher (``get`` reports a miss) and keeps a fetched value even if storing it
    fails; ``"raise"`` raises. ``breaker``: once Redis is found unreachable, reads skip it for
    this many seconds (0 disables). A busy server (pool exhausted, READONLY, a moving slot)
    degrades the one call without opening the breaker; a refused password always raises
    ``AuthenticationFailed``. Writes (``set``, ``invalidate``...) always raise.

    ``batch_reads=False`` sends one GET per read instead of batching concurrent reads.
    ``clock`` and ``rng`` (uniform in [0, 1)) are seams for tests. Close it with
    ``aclose()`` (or use it as a context manager) to stop its background work.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        ttl: float = 3600,
        *,
        version: int | str | None = None,
        serializer: SerializerName | Serializer = "json",
        compress_threshold: int | None = None,
        max_value_size: int | None = DEFAULT_MAX_VALUE_SIZE,
        negative_ttl: float = 60,
        beta: float | None = None,
        lock_ttl: float = 10.0,
        lock_wait: float = 5.0,
        on_error: OnError = "fallback",
        breaker: float = 1.0,
        batch_reads: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if beta is not None and non_negative(beta, "beta") == 0:
            beta = None
        self.keys = KeySpace(prefix, version)
        self.codec = Codec(
            serializer, compress_threshold=compress_threshold, max_value_size=max_value_size
        )
        self.ttl_ms = seconds_to_ms(ttl)
        self.negative_ttl_ms = (
            seconds_to_ms(negative_ttl, "negative_ttl")
            if non_negative(negative_ttl, "negative_ttl")
            else 0
        )
        self.beta = beta
        self.lock_ttl_ms = seconds_to_ms(lock_ttl, "lock_ttl")
        self.lock_wait = non_negative(lock_wait, "lock_wait")
        self.clock = clock
        self.rng = rng
        if ASYNC:
            threadsafe = False
        else:
            threadsafe = True
        self.events = Events("cache_aside", prefix, threadsafe=threadsafe)
        self.stats = CacheStats(self.events)
        self.policy = Degradation(
            on_error,
            breaker=non_negative(breaker, "breaker"),
            clock=clock,
            events=self.events,
            logger=logger,
            name=f"cache {prefix!r}",
        )
        self.store = Store(
            client, self.keys, pattern="CacheAside", events=self.events, batch_reads=batch_reads
        )
        self.client = client
        self.loader = Loader(
            self.store,
            self.codec,
            self.events,
            self.policy,
            clock=clock,
            lock_ttl_ms=self.lock_ttl_ms,
            lock_wait=self.lock_wait,
            negative_ttl_ms=self.negative_ttl_ms,
            logger=logger,
            record_delta=beta is not None,
        )

    @property
    def on_error(self) -> OnError:
        """The degradation policy's choice: ``"fallback"`` or ``"raise"``."""
        return self.policy.on_error

    # -- reads ---------------------------------------------------------------------------

    async def get(self, id: KeyId, default: Any = None) -> Any:
        """The cached value of ``id``, or ``default`` on a miss (or a cached ``None``)."""
        key = self.keys.key(id)
        if self.policy.is_open():
            return default
        try:
            data = await self.store.get(key)
        except RedkitError as exc:
            self.policy.read_failed(exc)
            return default
        value = self.loader.decode(key, data)
        return default if value is NEGATIVE or value is MISSING else value

    async def get_or_fetch(self, id: KeyId, fetcher: Fetcher, ttl: float | None = None) -> Any:
        """The cached value of ``id``; on a miss, ``fetcher()``'s result, cached for ``ttl``.

        Falsy values are hits. A ``None`` result is cached as a negative entry for
        ``negative_ttl``. One fetch serves every concurrent miss of ``id``.
        """
        key = self.keys.key(id)
        check_fetcher(fetcher)
        ttl_ms = self.ttl_ms if ttl is None else seconds_to_ms(ttl)
        if self.policy.is_open():
            return await self.loader.fetch(fetcher)
        if self.beta is not None:
            return await self._get_or_refresh(key, fetcher, ttl_ms)
        try:
            data = await self.store.get(key)
        except RedkitError as exc:
            self.policy.read_failed(exc)
            return await self.loader.fetch(fetcher)
        value = self.loader.decode(key, data)
        if value is not MISSING:
            return None if value is NEGATIVE else value
        return await self._load(key, fetcher, ttl_ms, data)

    async def get_many(self, ids: Iterable[KeyId]) -> dict[KeyId, Any]:
        """The cached values of ``ids`` in one round trip; misses are absent from the result."""
        ids = list(ids)
        if not ids:
            return {}
        keys = self.keys.keys(ids)
        if self.policy.is_open(len(keys)):
            return {}
        try:
            values = await self.store.get_many(keys)
        except RedkitError as exc:
            self.policy.read_failed(exc, count=len(keys))
            return {}
        found: dict[KeyId, Any] = {}
        decode = self.codec.decode
        hits = 0
        for id, key, data in zip(ids, keys, values, strict=True):
            if data is None:
                continue
            try:
                value = decode(data, key)
            except Exception as exc:
                self.loader.corrupt(key, CorruptEntry(f"entry does not decode: {exc}", key))
                continue
            hits += 1
            if value is not NEGATIVE:
                found[id] = value
        self.events.emit(Event.HIT, hits)
        self.events.emit(Event.MISS, len(keys) - hits)
        return found

    # -- writes --------------------------------------------------------------------------

    async def set(self, id: KeyId, value: Any, ttl: float | None = None) -> None:
        """Cache ``value`` for ``id`` (``None`` caches a negative entry) and revoke fills."""
        key = self.keys.key(id)
        payload = self.codec.encode(value, key=key)
        ttl_ms = self._entry_ttl_ms(value, ttl)
        await self.store.write(_SET, *set_call(key, payload, ttl_ms), entries=[key])

    async def set_many(self, mapping: Mapping[KeyId, Any], ttl: float | None = None) -> None:
        """Cache every value of ``mapping`` in one round trip, revoking fills of each.

        Every value is encoded before anything is sent; each entry is stored atomically with
        its fill lock revoked (the same script as :meth:`set`), in one pipeline.
        """
        calls = []
        entries = []
        for id, value in mapping.items():
            key = self.keys.key(id)
            payload = self.codec.encode(value, key=key)
            calls.append((_SET, *set_call(key, payload, self._entry_ttl_ms(value, ttl))))
            entries.append(key)
        await self.store.write_many(calls, entries=entries)

    async def invalidate(self, id: KeyId) -> bool:
        """Remove ``id``'s entry and revoke any fill in progress; whether an entry existed."""
        key = self.keys.key(id)
        return bool(
            await self.store.write(_INVALIDATE, [key, *self.keys.companions(key)], entries=[key])
        )

    async def invalidate_pattern(self, pattern: str) -> int:
        """Remove the entries whose id matches glob ``pattern``; how many were removed.

        Uses SCAN on every primary and UNLINK in batches, never KEYS. Every companion of a
        matching entry (fill locks...) goes too. Only this cache's namespace (prefix and
        version) is touched, whatever glob characters the prefix holds.
        """
        removed = 0
        batch: list[bytes] = []
        async for raw in self.store.scan(self.keys.match(pattern)):
            if self.keys.entry_of(raw) is not None:
                batch.append(raw)
            if len(batch) >= _UNLINK_BATCH:
                removed += await self._unlink_batch(batch)
                batch = []
        if batch:
            removed += await self._unlink_batch(batch)
        return removed

    async def refresh(self, id: KeyId, fetcher: Fetcher, ttl: float | None = None) -> Any:
        """Replace ``id``'s entry with ``fetcher()``'s result now; returns that result.

        The entry is removed and its fill lock taken in one step, revoking fills in progress,
        so only a value read after this call is stored. Used after writes to the source.

        If the entry cannot be removed (Redis unreachable), it may hold an older value than
        the source: this raises :class:`~redkit.errors.InvalidationPending` and keeps removing
        it in the background until Redis answers (reads of it in this process skip Redis
        meanwhile).
        """
        key = self.keys.key(id)
        check_fetcher(fetcher)
        ttl_ms = self.ttl_ms if ttl is None else seconds_to_ms(ttl)
        lock = companion(key, Companion.LOCK)
        mine = token()
        try:
            await self.store.write(
                _INVALIDATE_AND_LOCK, [key, lock], [mine, self.lock_ttl_ms], entries=[key]
            )
        except BaseException as exc:
            # Whether the entry was removed is unknown: remove it (and the lock) for sure.
            self.store.invalidate_later(key)
            if isinstance(exc, BackendError):
                raise InvalidationPending(
                    f"the cache entry of {id!r} could not be invalidated ({exc}); "
                    "redkit keeps retrying in the background",
                    id=id,
                    result=None,
                ) from exc
            raise
        return await self.loader.fetch_and_fill(key, lock, mine, fetcher, ttl_ms)

    # -- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop this cache's background work (reads in flight, lock clean-ups); not the client."""
        await self.store.aclose()

    # -- internals -----------------------------------------------------------------------

    async def _unlink_batch(self, raw_keys: list[bytes]) -> int:
        entries = [raw for raw in raw_keys if raw.endswith(b"}")]
        others = [raw for raw in raw_keys if not raw.endswith(b"}")]
        detached = [raw.decode() for raw in entries]
        removed = await self.store.unlink(entries, entries=detached)
        await self.store.unlink(others, entries=())
        return removed

    async def _load(self, key: str, fetcher: Fetcher, ttl_ms: int, corrupt: bytes | None) -> Any:
        """A miss: one load (the loader's) for every concurrent caller in this process."""
        return await self.store.flight(key, lambda: self.loader.load(key, fetcher, ttl_ms, corrupt))

    async def _get_or_refresh(self, key: str, fetcher: Fetcher, ttl_ms: int) -> Any:
        """get_or_fetch with XFetch: occasionally refresh a hit before it expires."""
        try:
            data, pttl = await self.store.run(_GET_WITH_TTL, [key])
        except RedkitError as exc:
            self.policy.read_failed(exc)
            return await self.loader.fetch(fetcher)
        if data is not None:
            try:
                value, delta_ms = self.codec.decode_entry(data, key)
            except CorruptEntry as exc:
                self.loader.corrupt(key, exc)
            else:
                self.events.emit(Event.HIT)
                result = None if value is NEGATIVE else value
                if pttl > 0 and self._should_refresh(delta_ms, pttl):
                    await self._refresh_early(key, fetcher, ttl_ms)
                return result
        self.events.emit(Event.MISS)
        return await self._load(key, fetcher, ttl_ms, data)

    def _should_refresh(self, delta_ms: int, remaining_ms: int) -> bool:
        """XFetch (Vattani et al.): refresh when -delta*beta*ln(U) reaches the time left."""
        assert self.beta is not None
        return -delta_ms * self.beta * math.log(1.0 - self.rng()) >= remaining_ms

    async def _refresh_early(self, key: str, fetcher: Fetcher, ttl_ms: int) -> None:
        """Recompute a hot entry before it expires, if no other caller is already doing it.

        Whatever goes wrong (the source fails, Redis fails) is logged and counted: the caller
        already holds a good cached value and gets it.
        """
        lock = companion(key, Companion.LOCK)
        mine = token()
        try:
            taken = await self.store.call("SET", lock, mine, "NX", "PX", self.lock_ttl_ms)
            if taken:
                self.events.emit(Event.EARLY_REFRESH)
                await self.loader.fetch_and_fill(key, lock, mine, fetcher, ttl_ms)
        except Exception as exc:
            self.events.emit(Event.EARLY_REFRESH_FAILED)
            logger.warning("early refresh of %s failed; serving the cached value: %r", key, exc)

    def _entry_ttl_ms(self, value: Any, ttl: float | None) -> int:
        if ttl is not None:
            return seconds_to_ms(ttl)
        if value is None and self.negative_ttl_ms:
            return self.negative_ttl_ms
        return self.ttl_ms
