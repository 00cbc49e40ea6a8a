"""Cache-aside: read from Redis, fall back to the source on a miss, cache what it returns.

Each entry ``prefix:{id}`` has a companion fill lock ``prefix:{id}:lock`` (same slot). A miss
takes the lock before fetching and stores the result only if it still holds the lock
(``cache_fill.lua``); ``set`` and ``invalidate`` delete the lock, so a fetch that raced with
them is refused instead of caching data older than the source. The same lock makes callers in
other processes wait for the one fetch (stampede protection); in this process concurrent
misses share one call (single-flight) and, on the async face, concurrent reads share one MGET.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal

from redis.asyncio.cluster import RedisCluster

from redkit._acompat import AsyncReadBatcher, AsyncSingleFlight, call_fetcher, sleep
from redkit._async.scripting import run_script
from redkit._core.clock import SYSTEM_CLOCK, Clock
from redkit._core.codecs import DEFAULT_MAX_VALUE_SIZE, NEGATIVE, Codec, Serializer, SerializerName
from redkit._core.keys import KeyId, KeySpace, companion
from redkit._core.stats import CacheStats
from redkit._core.translate import REDIS_ERRORS, translate
from redkit._core.ttl import non_negative, seconds_to_ms
from redkit._scripts import script
from redkit.errors import BackendUnavailable, ConfigurationError, CorruptEntry, RedkitError

logger = logging.getLogger("redkit.cache")

OnError = Literal["fallback", "raise"]
Fetcher = Callable[[], Any] | Callable[[], Awaitable[Any]]

_GET_OR_LOCK = script("cache_get_or_lock")
_FILL = script("cache_fill")
_SET = script("cache_set")
_INVALIDATE = script("cache_invalidate")
_INVALIDATE_AND_LOCK = script("cache_invalidate_and_lock")
_GET_WITH_TTL = script("cache_get_with_ttl")
_COMPARE_AND_DELETE = script("compare_and_delete")

_MAX_CORRUPT_LOGGED = 1024
_SCAN_BATCH = 500


class CacheAside:
    """A cache in front of any source of truth, keyed by ``prefix[:vN]:{id}``.

    ``ttl``: seconds an entry lives; ``negative_ttl``: seconds a ``None`` from the fetcher is
    remembered (0 disables); ``beta``: probabilistic early refresh (XFetch, 1.0 is the usual
    choice; None disables); ``lock_ttl``/``lock_wait``: how long one fetch may hold the fill
    lock and how long other callers wait for its value before asking the source themselves;
    ``on_error``: when Redis is unreachable, ``"fallback"`` serves reads from the fetcher (and
    ``get`` reports a miss) while ``"raise"`` raises BackendUnavailable. Writes (``set``,
    ``invalidate``) always raise: a silently failed invalidation would leave stale data.
    ``breaker``: with ``"fallback"``, once Redis is found unreachable, reads skip it for this
    many seconds (no connection attempts, no timeouts to wait out); 0 disables.
    ``clock`` and ``rng`` (uniform in [0, 1)) are seams for tests.
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
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if on_error not in ("fallback", "raise"):
            raise ConfigurationError(f"on_error must be 'fallback' or 'raise', got {on_error!r}")
        if beta is not None and non_negative(beta, "beta") == 0:
            beta = None
        self.client = client
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
        self.on_error: OnError = on_error
        self.breaker = non_negative(breaker, "breaker")
        self._skip_until = 0.0
        self.clock = clock
        self.rng = rng
        self.stats = CacheStats()
        self._cluster = isinstance(client, RedisCluster)
        self._reader = AsyncReadBatcher(client, cluster=self._cluster)
        self._flight = AsyncSingleFlight()
        self._corrupt_logged: set[str] = set()

    # -- reads ---------------------------------------------------------------------------

    async def get(self, id: KeyId, default: Any = None) -> Any:
        """The cached value of ``id``, or ``default`` on a miss (or a cached ``None``)."""
        key = self.keys.key(id)
        if self._skip_until and self._skipping():
            return default
        try:
            data = await self._reader.get(key)
        except REDIS_ERRORS as exc:
            self._read_failed(exc)
            return default
        if data is None:
            self.stats.misses += 1
            return default
        try:
            value = self.codec.decode(data, key)
        except CorruptEntry as exc:
            self._corrupt(key, exc)
            self.stats.misses += 1
            return default
        self.stats.hits += 1
        return default if value is NEGATIVE else value

    async def get_or_fetch(self, id: KeyId, fetcher: Fetcher, ttl: float | None = None) -> Any:
        """The cached value of ``id``; on a miss, ``fetcher()``'s result, cached for ``ttl``.

        Falsy values are hits. A ``None`` result is cached as a negative entry for
        ``negative_ttl``. One fetch serves every concurrent miss of ``id``.
        """
        key = self.keys.key(id)
        ttl_ms = self.ttl_ms if ttl is None else seconds_to_ms(ttl)
        if self._skip_until and self._skipping():
            return await self._fetch(fetcher)
        if self.beta is not None:
            return await self._get_or_refresh(key, fetcher, ttl_ms)
        try:
            data = await self._reader.get(key)
        except REDIS_ERRORS as exc:
            self._read_failed(exc)
            return await self._fetch(fetcher)
        if data is not None:
            try:
                value = self.codec.decode(data, key)
            except CorruptEntry as exc:
                self._corrupt(key, exc)
            else:
                self.stats.hits += 1
                return None if value is NEGATIVE else value
        self.stats.misses += 1
        return await self._flight.do(key, lambda: self._load(key, fetcher, ttl_ms, data))

    async def get_many(self, ids: Iterable[KeyId]) -> dict[KeyId, Any]:
        """The cached values of ``ids`` in one round trip; misses are absent from the result."""
        ids = list(ids)
        if not ids:
            return {}
        keys = self.keys.keys(ids)
        try:
            if self._cluster:
                values = await self.client.mget_nonatomic(keys)
            else:
                values = await self.client.mget(keys)
        except REDIS_ERRORS as exc:
            self._read_failed(exc, count=len(keys))
            return {}
        found: dict[KeyId, Any] = {}
        loads = self.codec.serializer.loads
        hits = 0
        for id, data in zip(ids, values, strict=True):
            if data is None:
                continue
            try:
                # Plain entries (the common case) are decoded inline; the rest via the codec.
                value = loads(data[1:]) if data[:1] == b"\x00" else self.codec.decode(data)
            except Exception as exc:
                key = self.keys.key(id)
                self._corrupt(key, CorruptEntry(f"entry does not decode: {exc}", key))
                continue
            hits += 1
            if value is not NEGATIVE:
                found[id] = value
        self.stats.hits += hits
        self.stats.misses += len(keys) - hits
        return found

    # -- writes --------------------------------------------------------------------------

    async def set(self, id: KeyId, value: Any, ttl: float | None = None) -> None:
        """Cache ``value`` for ``id`` (``None`` caches a negative entry) and revoke fills."""
        key = self.keys.key(id)
        payload = self.codec.encode(value, key=key)
        ttl_ms = self._entry_ttl_ms(value, ttl)
        self._reader.forget(key)
        await run_script(self.client, _SET, [key, companion(key, "lock")], [payload, ttl_ms])

    async def set_many(self, mapping: Mapping[KeyId, Any], ttl: float | None = None) -> None:
        """Cache every value of ``mapping`` in one round trip; all are encoded before sending."""
        entries = []
        for id, value in mapping.items():
            key = self.keys.key(id)
            entries.append((key, self.codec.encode(value, key=key), self._entry_ttl_ms(value, ttl)))
        if not entries:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, payload, ttl_ms in entries:
            self._reader.forget(key)
            pipe.execute_command("UNLINK", companion(key, "lock"))
            pipe.set(key, payload, px=ttl_ms)
        try:
            await pipe.execute()
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc

    async def invalidate(self, id: KeyId) -> bool:
        """Remove ``id``'s entry and revoke any fill in progress; whether an entry existed."""
        key = self.keys.key(id)
        self._reader.forget(key)
        return bool(await run_script(self.client, _INVALIDATE, [key, companion(key, "lock")]))

    async def invalidate_pattern(self, pattern: str) -> int:
        """Remove the entries whose id matches glob ``pattern``; how many were removed.

        Uses SCAN on every primary and UNLINK in batches, never KEYS. Fills in progress for
        matching ids are revoked too. Only this cache's namespace (prefix and version) is
        touched, whatever glob characters the prefix holds.
        """
        match = self.keys.match(pattern) + "*"
        removed = 0
        batch: list[bytes] = []
        try:
            async for key in self.client.scan_iter(match=match, count=1000):
                if key.endswith(b"}") or key.endswith(b"}:lock"):
                    batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    removed += await self._unlink_batch(batch)
                    batch = []
            if batch:
                removed += await self._unlink_batch(batch)
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc
        return removed

    async def refresh(self, id: KeyId, fetcher: Fetcher, ttl: float | None = None) -> Any:
        """Replace ``id``'s entry with ``fetcher()``'s result now; returns that result.

        The entry is removed and its fill lock taken in one step, revoking fills in progress,
        so only a value read after this call is stored. Used after writes to the source.
        """
        key = self.keys.key(id)
        ttl_ms = self.ttl_ms if ttl is None else seconds_to_ms(ttl)
        lock = companion(key, "lock")
        token = secrets.token_hex(12)
        self._reader.forget(key)
        await run_script(self.client, _INVALIDATE_AND_LOCK, [key, lock], [token, self.lock_ttl_ms])
        return await self._fetch_and_fill(key, lock, token, fetcher, ttl_ms)

    # -- internals -----------------------------------------------------------------------

    async def _unlink_batch(self, keys: list[bytes]) -> int:
        entries = [key for key in keys if key.endswith(b"}")]
        locks = [key for key in keys if not key.endswith(b"}")]
        for key in entries:
            self._reader.forget(key.decode())
        removed = await self.client.unlink(*entries) if entries else 0
        if locks:
            await self.client.unlink(*locks)
        return int(removed)

    async def _load(self, key: str, fetcher: Fetcher, ttl_ms: int, seen: bytes | None) -> Any:
        """A miss: wait for another process's fetch, or take the fill lock and fetch."""
        lock = companion(key, "lock")
        token = secrets.token_hex(12)
        deadline = self.clock.monotonic() + self.lock_wait
        delay = 0.005
        try:
            if seen is not None:  # a corrupt entry: drop it unless someone replaced it already
                await run_script(self.client, _COMPARE_AND_DELETE, [key], [seen])
            while True:
                found, payload = await run_script(
                    self.client, _GET_OR_LOCK, [key, lock], [token, self.lock_ttl_ms]
                )
                if found:
                    try:
                        value = self.codec.decode(payload, key)
                    except CorruptEntry as exc:
                        self._corrupt(key, exc)
                        await run_script(self.client, _COMPARE_AND_DELETE, [key], [payload])
                        continue
                    return None if value is NEGATIVE else value
                if payload:
                    return await self._fetch_and_fill(key, lock, token, fetcher, ttl_ms)
                if self.clock.monotonic() >= deadline:
                    logger.warning("gave up waiting for another fetch of %s; fetching", key)
                    return await self._fetch(fetcher)
                await sleep(delay)
                delay = min(delay * 2, 0.1)
        except RedkitError as exc:
            if not isinstance(exc, BackendUnavailable):
                raise
            self._read_failed(exc)
            return await self._fetch(fetcher)

    async def _fetch_and_fill(
        self, key: str, lock: str, token: str, fetcher: Fetcher, ttl_ms: int
    ) -> Any:
        """Fetch while holding the fill lock, then store the value if the lock still holds."""
        started = self.clock.monotonic()
        try:
            value = await self._fetch(fetcher)
            delta_ms = (
                int((self.clock.monotonic() - started) * 1000) if self.beta is not None else None
            )
            payload = self.codec.encode(value, key=key, delta_ms=delta_ms)
        except BaseException:
            await self._release(lock, token)
            raise
        if value is None:
            if not self.negative_ttl_ms:
                await self._release(lock, token)
                return None
            ttl_ms = self.negative_ttl_ms
        try:
            stored = await run_script(self.client, _FILL, [key, lock], [token, payload, ttl_ms])
        except RedkitError as exc:
            self._read_failed(exc)
            return value
        if not stored:
            logger.debug("fill of %s refused: invalidated or set while fetching", key)
        return value

    async def _get_or_refresh(self, key: str, fetcher: Fetcher, ttl_ms: int) -> Any:
        """get_or_fetch with XFetch: occasionally refresh a hit before it expires."""
        try:
            data, pttl = await run_script(self.client, _GET_WITH_TTL, [key])
        except RedkitError as exc:
            if not isinstance(exc, BackendUnavailable):
                raise
            self._read_failed(exc)
            return await self._fetch(fetcher)
        if data is not None:
            try:
                value, delta_ms = self.codec.decode_entry(data, key)
            except CorruptEntry as exc:
                self._corrupt(key, exc)
            else:
                self.stats.hits += 1
                result = None if value is NEGATIVE else value
                if pttl > 0 and self._should_refresh(delta_ms, pttl):
                    await self._refresh_early(key, fetcher, ttl_ms)
                return result
        self.stats.misses += 1
        return await self._flight.do(key, lambda: self._load(key, fetcher, ttl_ms, data))

    def _should_refresh(self, delta_ms: int, remaining_ms: int) -> bool:
        """XFetch (Vattani et al.): refresh when -delta*beta*ln(U) reaches the time left."""
        assert self.beta is not None
        return -delta_ms * self.beta * math.log(1.0 - self.rng()) >= remaining_ms

    async def _refresh_early(self, key: str, fetcher: Fetcher, ttl_ms: int) -> None:
        """Recompute a hot entry before it expires, if no other caller is already doing it."""
        lock = companion(key, "lock")
        token = secrets.token_hex(12)
        try:
            taken = await self.client.set(lock, token, nx=True, px=self.lock_ttl_ms)
        except REDIS_ERRORS as exc:
            self._read_failed(exc)
            return
        if taken:
            await self._fetch_and_fill(key, lock, token, fetcher, ttl_ms)

    async def _fetch(self, fetcher: Fetcher) -> Any:
        self.stats.fetches += 1
        return await call_fetcher(fetcher)

    async def _release(self, lock: str, token: str) -> None:
        try:
            await run_script(self.client, _COMPARE_AND_DELETE, [lock], [token])
        except RedkitError:
            logger.warning("could not release fill lock %s; it expires by itself", lock)

    def _entry_ttl_ms(self, value: Any, ttl: float | None) -> int:
        if ttl is not None:
            return seconds_to_ms(ttl)
        if value is None and self.negative_ttl_ms:
            return self.negative_ttl_ms
        return self.ttl_ms

    def _read_failed(self, exc: BaseException, count: int = 1) -> None:
        """A read could not reach Redis: count it, then raise or carry on as configured."""
        self.stats.errors += count
        error = translate(exc)
        if self.on_error == "raise":
            raise error from (None if error is exc else exc)
        if self.breaker and isinstance(error, BackendUnavailable):
            self._skip_until = self.clock.monotonic() + self.breaker
            logger.warning(
                "cache %s serves from its source for %.1fs: %s",
                self.keys.prefix,
                self.breaker,
                error,
            )
        else:
            logger.warning("cache %s degraded to its source: %s", self.keys.prefix, error)

    def _skipping(self) -> bool:
        """Whether the breaker is open (Redis recently unreachable); counts the skipped read."""
        if self.clock.monotonic() < self._skip_until:
            self.stats.errors += 1
            return True
        self._skip_until = 0.0
        return False

    def _corrupt(self, key: str, exc: CorruptEntry) -> None:
        """Report an undecodable entry once per key; it is treated as a miss."""
        if key in self._corrupt_logged:
            return
        if len(self._corrupt_logged) < _MAX_CORRUPT_LOGGED:
            self._corrupt_logged.add(key)
        logger.warning("corrupt cache entry %s treated as a miss: %s", key, exc)
