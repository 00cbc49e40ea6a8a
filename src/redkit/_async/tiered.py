"""Tiered cache: an in-process LRU (L1) in front of Redis (L2), invalidated by Redis itself.

L1 (:class:`~redkit._core.l1.L1`) is bounded (``l1_max_size``, least recently used out
first) and each entry expires ``l1_ttl`` seconds after it was stored, or when the copy in
Redis it was read from expires if that comes sooner: a read of Redis returns the value with
its remaining PTTL (one script, one round trip), because Redis announces an expiry only when
it deletes the key, which for a key nobody reads on the server can take minutes. L2 is a cache-aside
entry ``prefix:{id}`` with ``CacheAside``'s fill lease and stampede protection (the shared
:class:`~redkit._async.loader.Loader`).

Other processes' writes reach L1 through server-assisted invalidation
(:mod:`redkit._async.tracking`): CLIENT TRACKING in BCAST mode for the prefix, on one RESP2
connection per primary subscribed to ``__redis__:invalidate``. Any write to an entry under the
prefix, by redkit or by a plain client, an expiry or an eviction drops it from every L1.

The rules that keep L1 honest:

- L1 holds only values decoded from bytes Redis returned to a read; a value this process
  writes or fetches reaches L1 through a later read (so a value Redis rejected never does).
- A read takes a ticket before it sends its request and fills L1 only if no invalidation of
  its key, flush or channel loss happened meanwhile (:class:`~redkit._core.l1.Ticket`): an
  invalidation applied while the reply was on its way voids the fill, whichever socket
  delivers first.
- While the invalidation channel is down (not yet up, or lost: a killed connection, a
  failover, a missed health check) L1 is empty and nothing fills it; every read goes to
  Redis. It fills again once every primary's channel is back.
- ``set`` and ``invalidate`` drop the entry from this process's L1 (and void its reads in
  flight) as soon as Redis answered, so this process reads its own writes.

The L1 hit path is a handful of dict operations: no lock, no event emission (hits are
counted by :meth:`~redkit._core.events.Events.counter`), no key building. A value served from
L1 is the object stored there, shared by every caller: do not mutate it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from redkit._acompat import ASYNC, check_fetcher
from redkit._async.lifecycle import Closeable
from redkit._async.loader import MISSING, Fetcher, Loader, set_call
from redkit._async.store import Store
from redkit._async.tracking import Invalidations
from redkit._core.clock import SYSTEM_CLOCK, Clock
from redkit._core.codecs import DEFAULT_MAX_VALUE_SIZE, NEGATIVE, Codec, Serializer, SerializerName
from redkit._core.degradation import Degradation, OnError
from redkit._core.events import Event, Events
from redkit._core.keys import KeyId, KeySpace, id_text
from redkit._core.l1 import L1
from redkit._core.tiered_stats import TieredStats
from redkit._core.ttl import non_negative, seconds_to_ms
from redkit._scripts import script
from redkit.errors import ConfigurationError, RedkitError

if not ASYNC:
    import os
    import weakref

logger = logging.getLogger("redkit.tiered")

_GET_WITH_TTL = script("cache_get_with_ttl")
_SET = script("cache_set")
_INVALIDATE = script("cache_invalidate")
_CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]*")


class TieredCache(Closeable):
    """An in-process LRU in front of Redis that every process's writes invalidate.

    ``l2_ttl``: seconds an entry lives in Redis; ``l1_max_size``: entries in L1 at most;
    ``l1_ttl``: seconds an entry lives in L1 at most (a bound on staleness if invalidations
    were ever delayed; never longer than the entry had left in Redis when it was read);
    ``health_check_interval``: seconds between health checks of the invalidation connections
    (a connection silent past it is treated as lost: L1 emptied and bypassed until it is
    back).

    The other options are ``CacheAside``'s (``serializer``, ``compress_threshold``,
    ``max_value_size``, ``version``, ``negative_ttl``, ``lock_ttl``, ``lock_wait``,
    ``on_error``, ``breaker``). Close it with ``aclose()`` (or use it as a context manager)
    to stop its invalidation listener. The async face listens on the event loop of its first
    call; use it from that loop.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        l2_ttl: float = 3600,
        l1_max_size: int = 10_000,
        l1_ttl: float = 60,
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
        health_check_interval: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if isinstance(l1_max_size, bool) or not isinstance(l1_max_size, int) or l1_max_size < 1:
            raise ConfigurationError(
                f"l1_max_size must be a positive int (entries), got {l1_max_size!r}"
            )
        l1_seconds = seconds_to_ms(l1_ttl, "l1_ttl") / 1000
        interval = seconds_to_ms(health_check_interval, "health_check_interval") / 1000
        self.keys = KeySpace(prefix, version)
        self.codec = Codec(
            serializer, compress_threshold=compress_threshold, max_value_size=max_value_size
        )
        self.ttl_ms = seconds_to_ms(l2_ttl, "l2_ttl")
        self.negative_ttl_ms = (
            seconds_to_ms(negative_ttl, "negative_ttl")
            if non_negative(negative_ttl, "negative_ttl")
            else 0
        )
        if ASYNC:
            threadsafe = False
        else:
            threadsafe = True
        self.events = Events("tiered", prefix, threadsafe=threadsafe)
        self.l1 = L1(l1_max_size, l1_seconds, clock, threadsafe=threadsafe)
        self.stats = TieredStats(self.events, self.l1)
        self.degradation = Degradation(
            on_error,
            breaker=non_negative(breaker, "breaker"),
            clock=clock,
            events=self.events,
            logger=logger,
            name=f"tiered cache {prefix!r}",
        )
        self.store = Store(client, self.keys, pattern="TieredCache", events=self.events)
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
        )
        self.invalidations = Invalidations(
            client,
            cluster=self.store.cluster,
            prefix=f"{self.keys.namespace}{{",
            handler=_Channel(self),
            background=self.store.background,
            interval=interval,
        )
        # The hit path's tools, bound once.
        self._l1_get = self.l1.data.get
        self._l1_touch = self.l1.data.move_to_end
        self._now = clock.monotonic
        self._count_l1_hit = self.events.counter(Event.L1_HIT)
        if not ASYNC:
            _CACHES.add(self)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, id: KeyId, default: Any = None) -> Any:
        """The cached value of ``id`` (from L1, else Redis), or ``default`` on a miss."""
        try:
            entry = self._l1_get(id)
        except TypeError:  # unhashable: not an id (the slow path says so)
            entry = None
        if entry is not None and entry[1] > self._now():
            kind = type(id)
            if kind is int or kind is str:  # not True, 1.0... (equal to 1, never valid ids)
                if ASYNC:
                    self._l1_touch(id)
                else:
                    try:  # noqa: SIM105 (contextlib.suppress costs as much as a whole hit)
                        self._l1_touch(id)
                    except KeyError:  # dropped meanwhile by another thread
                        pass
                self._count_l1_hit()
                value = entry[0]
                return default if value is NEGATIVE else value
        return await self._get(id, default)

    async def get_or_fetch(self, id: KeyId, fetcher: Fetcher, ttl: float | None = None) -> Any:
        """The cached value of ``id``; on a miss in both tiers, ``fetcher()``'s result,
        stored in Redis for ``ttl`` (default ``l2_ttl``) under the fill lease.

        One fetch serves every concurrent miss of ``id``, across processes; falsy values are
        hits; a ``None`` result is cached as a negative entry for ``negative_ttl``.
        """
        try:
            entry = self._l1_get(id)
        except TypeError:
            entry = None
        if entry is not None and entry[1] > self._now():
            kind = type(id)
            if kind is int or kind is str:
                if ASYNC:
                    self._l1_touch(id)
                else:
                    try:  # noqa: SIM105 (contextlib.suppress costs as much as a whole hit)
                        self._l1_touch(id)
                    except KeyError:  # dropped meanwhile by another thread
                        pass
                self._count_l1_hit()
                value = entry[0]
                return None if value is NEGATIVE else value
        return await self._get_or_fetch(id, fetcher, ttl)

    # -- writes --------------------------------------------------------------------------

    async def set(self, id: KeyId, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` for ``id`` in Redis (``None``: a negative entry) and revoke fills
        in progress; every L1 drops the entry (this process's at once)."""
        key = self.keys.key(id)
        payload = self.codec.encode(value, key=key)
        if ttl is not None:
            ttl_ms = seconds_to_ms(ttl)
        elif value is None and self.negative_ttl_ms:
            ttl_ms = self.negative_ttl_ms
        else:
            ttl_ms = self.ttl_ms
        try:
            await self.store.write(_SET, *set_call(key, payload, ttl_ms), entries=[key])
        finally:
            self.l1.invalidate(self._names(key))

    async def invalidate(self, id: KeyId) -> bool:
        """Remove ``id`` from Redis and from every L1, revoking fills in progress; whether an
        entry existed in Redis."""
        key = self.keys.key(id)
        try:
            return bool(
                await self.store.write(
                    _INVALIDATE, [key, *self.keys.companions(key)], entries=[key]
                )
            )
        finally:
            self.l1.invalidate(self._names(key))

    # -- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the invalidation listener and background work, empty L1; not the client."""
        self.invalidations.stop()
        await self.store.aclose()
        self.l1.flush(live=False)

    # -- internals -----------------------------------------------------------------------

    async def _get(self, id: KeyId, default: Any) -> Any:
        """get() past L1: a ticketed read of Redis that may fill L1."""
        key = self.keys.key(id)
        name = _l1_name(id)
        entry = self.l1.lookup(name)  # an id of another type, or an expired entry (dropped)
        if entry is not None:
            self._count_l1_hit()
            return default if entry[0] is NEGATIVE else entry[0]
        if self.degradation.is_open():
            return default
        sent = self._now()
        ticket = self.l1.begin(name)
        try:
            try:
                data, pttl = await self.store.run_batched(_GET_WITH_TTL, [key])
            except RedkitError as exc:
                self.degradation.read_failed(exc)
                return default
            self.invalidations.start()  # (once) Redis answers: L1 may fill once it is up
            value = self.loader.decode(key, data)
            if value is MISSING:
                return default
            self._fill(name, value, ticket, sent, pttl)
            return default if value is NEGATIVE else value
        finally:
            self.l1.end(name, ticket)

    async def _get_or_fetch(self, id: KeyId, fetcher: Fetcher, ttl: float | None) -> Any:
        key = self.keys.key(id)
        check_fetcher(fetcher)
        ttl_ms = self.ttl_ms if ttl is None else seconds_to_ms(ttl)
        name = _l1_name(id)
        entry = self.l1.lookup(name)
        if entry is not None:
            self._count_l1_hit()
            return None if entry[0] is NEGATIVE else entry[0]
        if self.degradation.is_open():
            return await self.loader.fetch(fetcher)
        sent = self._now()
        ticket = self.l1.begin(name)
        try:
            try:
                data, pttl = await self.store.run_batched(_GET_WITH_TTL, [key])
            except RedkitError as exc:
                self.degradation.read_failed(exc)
                return await self.loader.fetch(fetcher)
            self.invalidations.start()
            value = self.loader.decode(key, data)
            if value is not MISSING:
                self._fill(name, value, ticket, sent, pttl)
                return None if value is NEGATIVE else value
        finally:
            self.l1.end(name, ticket)
        # A miss: the value fetched (or found after another process's fetch) reaches L1
        # through the next read, once Redis holds it.
        return await self.store.flight(key, lambda: self.loader.load(key, fetcher, ttl_ms, data))

    def _fill(self, name: KeyId, value: Any, ticket: Any, sent: float, pttl: int) -> None:
        """Store what a read returned in L1, to expire no later than Redis's copy: ``pttl``
        (ms left, -1 for none) counted from ``sent``, before the server measured it."""
        if pttl == -1:
            expires_at = None
        elif pttl > 0:
            expires_at = sent + pttl / 1000
        else:  # expiring as it was read
            return
        evicted = self.l1.fill(name, value, ticket, expires_at)
        if evicted > 0:
            self.events.emit(Event.L1_EVICTION, evicted)

    def _names(self, key: str) -> list[KeyId]:
        """Every L1 key that may hold entry ``key``: its id text, and the int of the same
        text (``1`` and ``"1"`` share a Redis key, not an L1 key)."""
        text = self.keys.id_of(key.encode())
        return [] if text is None else _aliases(text)

    def _after_fork(self) -> None:
        """In a child process: no listener runs here; start afresh on the next read."""
        self.l1.after_fork()
        self.invalidations.restart()


def _l1_name(id: KeyId) -> KeyId:
    """The L1 key of a valid id: itself for a str or int, its id text otherwise."""
    kind = type(id)
    if kind is str or kind is int:
        return id
    return id_text(id)


def _aliases(text: str) -> list[KeyId]:
    if _CANONICAL_INT.fullmatch(text):
        return [text, int(text)]
    return [text]


class _Channel:
    """What the invalidation listener's news does to one TieredCache's L1."""

    __slots__ = ("_cache", "_lost")

    def __init__(self, cache: TieredCache) -> None:
        self._cache = cache
        self._lost = False

    def keys(self, keys: list[bytes]) -> None:
        cache = self._cache
        id_of = cache.keys.id_of
        names: list[KeyId] = []
        entries = 0
        for raw in keys:
            text = id_of(raw)
            if text is not None:  # companions (fill locks) change no value
                entries += 1
                names += _aliases(text)
        if names:
            cache.l1.invalidate(names)
        if entries:
            cache.events.emit(Event.INVALIDATION_RECEIVED, entries)

    def flush(self) -> None:
        self._cache.l1.flush(live=True)
        self._cache.events.emit(Event.L1_FLUSH)

    def up(self) -> None:
        self._cache.l1.set_live()
        if self._lost:
            self._lost = False
            logger.info("tiered cache %r: invalidations are back; L1 fills again", self._name)

    def down(self, error: BaseException | None) -> None:
        cache = self._cache
        was_live = cache.l1.live
        cache.l1.flush(live=False)
        if was_live:
            cache.events.emit(Event.L1_FLUSH)
            if error is not None:
                self._lost = True
                logger.warning(
                    "tiered cache %r lost its invalidation channel (%s): L1 emptied and "
                    "bypassed until it is back",
                    self._name,
                    error,
                )

    @property
    def _name(self) -> str:
        return self._cache.keys.prefix


if not ASYNC:
    _CACHES: weakref.WeakSet[TieredCache] = weakref.WeakSet()

    def _reset_after_fork() -> None:
        for cache in list(_CACHES):
            cache._after_fork()

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_after_fork)
