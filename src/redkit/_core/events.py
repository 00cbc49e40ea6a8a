"""The event sink: every pattern reports what it does here, and ``stats`` reads it back.

A pattern instance owns one :class:`Events`. It calls ``emit(Event.HIT)`` and so on; the sink
counts each event and hands it to the listeners (monitoring, Prometheus, OpenTelemetry), both
those subscribed to this instance and those subscribed to every instance with
:func:`subscribe`. Counting is exact under threads when the sink is made ``threadsafe`` (the
sync face does); the async face counts from one event loop and skips the lock.

A hot path that cannot afford ``emit`` (an in-process cache hit, a few hundred nanoseconds)
takes a :meth:`Events.counter` instead: exact under threads, a few tens of nanoseconds, read
back by ``count`` and ``snapshot`` like any other event, but not pushed to listeners one by
one (they read ``snapshot()``).
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
from collections.abc import Callable
from typing import NamedTuple

logger = logging.getLogger("redkit.events")


class Event(enum.StrEnum):
    """What a pattern can report. Patterns add members here as they grow."""

    HIT = "hit"
    MISS = "miss"
    FETCH = "fetch"
    #: Redis failed on a read; the degradation policy then decided (fallback or raise)
    ERROR = "error"
    #: a read skipped Redis because the breaker was open
    SKIPPED = "skipped"
    #: the breaker opened after Redis was found unreachable
    BREAKER_OPEN = "breaker_open"
    #: a fetched value was not stored: the fill lost its lease (a write raced it) or failed
    FILL_REFUSED = "fill_refused"
    FILL_FAILED = "fill_failed"
    #: an early (XFetch) refresh ran / failed; the caller got the cached value either way
    EARLY_REFRESH = "early_refresh"
    EARLY_REFRESH_FAILED = "early_refresh_failed"
    #: bytes in Redis that did not decode, treated as a miss
    CORRUPT = "corrupt"
    #: a caller waited for another process's fetch (the fill lock was taken)
    LOCK_WAIT = "lock_wait"
    #: a caller gave up waiting for another fetch and fetched itself
    LOCK_WAIT_EXPIRED = "lock_wait_expired"
    #: write-through: an invalidation that failed and is retried in the background
    INVALIDATION_PENDING = "invalidation_pending"
    INVALIDATION_RETRIED = "invalidation_retried"
    # -- locks (Lock, Redlock) --
    LOCK_ACQUIRED = "lock_acquired"
    #: an acquire found the lock taken (counted once per acquire call)
    LOCK_CONTENDED = "lock_contended"
    LOCK_RELEASED = "lock_released"
    LOCK_EXTENDED = "lock_extended"
    #: the watchdog found the lock no longer held (or could not extend it in time)
    LOCK_LOST = "lock_lost"
    # -- sessions --
    SESSION_CREATED = "session_created"
    SESSION_DESTROYED = "session_destroyed"
    SESSION_ROTATED = "session_rotated"
    #: a session's horizon in its user index was lifted (once per ttl/8 of activity)
    SESSION_INDEX_LIFTED = "session_index_lifted"
    #: a read whose expiry could not slide: Redis refused writes (OOM, READONLY); the read
    #: was answered
    SESSION_SLIDE_FAILED = "session_slide_failed"
    # -- rate limiting (redkit._async.ratelimit) --
    #: a limiter admitted / refused a hit, whichever path decided
    ALLOWED = "allowed"
    DENIED = "denied"
    #: a decision made without Redis: by the in-process fallback, or by on_error allow / deny
    FALLBACK = "fallback"
    FAILED_OPEN = "failed_open"
    FAILED_CLOSED = "failed_closed"

    # -- write-behind (WriteBehind and its flusher) --
    #: an entity written: cached and appended to its shard's stream
    WRITE = "write"
    #: a write refused because its shard's backlog was full
    BACKPRESSURE = "backpressure"
    #: entities upserted into the repository, and the batches that carried them
    FLUSHED = "flushed"
    FLUSH_BATCH = "flush_batch"
    #: stream entries skipped because a newer write of the same id was in the batch
    COALESCED = "coalesced"
    #: an upsert the repository refused (the batch is retried, split, or dead-lettered)
    FLUSH_FAILED = "flush_failed"
    #: an entity moved to the dead-letter stream after max_attempts failures
    DEAD_LETTER = "dead_letter"
    #: pending entries of another (dead) flusher claimed by this one
    CLAIMED = "claimed"
    #: dead letters put back on their stream, or dropped as superseded by a newer write
    REPLAYED = "replayed"
    REPLAY_SUPERSEDED = "replay_superseded"
    # -- TieredCache (HIT and MISS count the Redis tier) --
    #: a read served from the in-process tier (counted with Events.counter)
    L1_HIT = "l1_hit"
    #: an entry pushed out of the in-process tier by its size bound
    L1_EVICTION = "l1_eviction"
    #: an invalidation of one key received from Redis (CLIENT TRACKING)
    INVALIDATION_RECEIVED = "invalidation_received"
    #: the in-process tier was emptied: Redis said "flush everything", or the invalidation
    #: channel was lost (it fills again once the channel is back)
    L1_FLUSH = "l1_flush"


class Emitted(NamedTuple):
    """One event as listeners see it."""

    pattern: str
    name: str
    event: Event
    amount: int


Listener = Callable[[Emitted], object]

_GLOBAL: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener`` for every event of every pattern; returns a function that unsubscribes.

    Listeners run synchronously on the emitting thread: keep them fast. One that raises is
    logged and does not disturb the pattern.
    """
    _GLOBAL.append(listener)

    def unsubscribe() -> None:
        if listener in _GLOBAL:
            _GLOBAL.remove(listener)

    return unsubscribe


class Events:
    """One pattern instance's counters and listeners.

    ``pattern`` names the kind (``"cache_aside"``), ``name`` the instance (its prefix).
    """

    __slots__ = ("_counts", "_listeners", "_lock", "_tallies", "name", "pattern")

    def __init__(self, pattern: str, name: str, *, threadsafe: bool) -> None:
        self.pattern = pattern
        self.name = name
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock() if threadsafe else None
        self._listeners: list[Listener] = []
        #: event -> (its counter, the counter's value at the last reset)
        self._tallies: dict[str, tuple[itertools.count[int], int]] = {}

    def emit(self, event: Event, count: int = 1) -> None:
        """Record ``count`` occurrences of ``event`` and tell the listeners."""
        counts = self._counts
        lock = self._lock
        if lock is None:
            counts[event] = counts.get(event, 0) + count
        else:
            with lock:
                counts[event] = counts.get(event, 0) + count
        if self._listeners or _GLOBAL:
            self._notify(Emitted(self.pattern, self.name, event, count))

    def counter(self, event: Event) -> Callable[[], object]:
        """A function that counts one ``event`` per call, for hot paths (see the module
        docstring): exact under threads (one C call under the GIL), not pushed to listeners."""
        tally = self._tallies.get(event)
        if tally is None:
            tally = self._tallies[event] = (itertools.count(), 0)
        return tally[0].__next__

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for this instance's events; returns a function that stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def count(self, event: Event) -> int:
        """How many times ``event`` was emitted (since creation or :meth:`reset`)."""
        count = self._counts.get(event, 0)
        tally = self._tallies.get(event)
        return count if tally is None else count + _value(tally[0]) - tally[1]

    def snapshot(self) -> dict[str, int]:
        """Every counter, by event name."""
        lock = self._lock
        if lock is None:
            counts = dict(self._counts)
        else:
            with lock:
                counts = dict(self._counts)
        for event, (tally, base) in self._tallies.items():
            counts[event] = counts.get(event, 0) + _value(tally) - base
        return counts

    def reset(self) -> None:
        """Set every counter back to zero."""
        lock = self._lock
        if lock is None:
            self._counts.clear()
        else:
            with lock:
                self._counts.clear()
        for event, (tally, _) in list(self._tallies.items()):
            self._tallies[event] = (tally, _value(tally))

    def _notify(self, emitted: Emitted) -> None:
        for listener in (*self._listeners, *_GLOBAL):
            try:
                listener(emitted)
            except Exception:
                logger.exception("event listener %r failed", listener)


def _value(tally: itertools.count[int]) -> int:
    """How many times ``tally`` was advanced: its repr is ``count(N)``, N the next value."""
    return int(repr(tally)[6:-1])


class CacheStats:
    """A live view of a cache's counters: ``hits``, ``misses``, ``errors``, ``fetches``...

    Read it at any time; ``snapshot()`` copies every counter, ``reset()`` zeroes them.
    """

    __slots__ = ("_events",)

    def __init__(self, events: Events) -> None:
        self._events = events

    @property
    def hits(self) -> int:
        """Reads answered from Redis."""
        return self._events.count(Event.HIT)

    @property
    def misses(self) -> int:
        """Reads that found nothing usable in Redis (absent or corrupt)."""
        return self._events.count(Event.MISS)

    @property
    def errors(self) -> int:
        """Reads that could not use Redis: it failed, or the breaker was open."""
        return self._events.count(Event.ERROR) + self._events.count(Event.SKIPPED)

    @property
    def fetches(self) -> int:
        """Calls of the fetcher (the source of truth)."""
        return self._events.count(Event.FETCH)

    @property
    def refused_fills(self) -> int:
        """Fetched values not stored because a write raced the fetch, or the fill failed."""
        return self._events.count(Event.FILL_REFUSED) + self._events.count(Event.FILL_FAILED)

    @property
    def hit_rate(self) -> float:
        """Hits over lookups, 0.0 before the first lookup."""
        hits, misses = self.hits, self.misses
        total = hits + misses
        return hits / total if total else 0.0

    def snapshot(self) -> dict[str, int]:
        """Every counter of the cache, by event name."""
        return self._events.snapshot()

    def reset(self) -> None:
        """Set every counter back to zero."""
        self._events.reset()

    def __repr__(self) -> str:
        return (
            f"CacheStats(hits={self.hits}, misses={self.misses}, errors={self.errors}, "
            f"fetches={self.fetches}, hit_rate={self.hit_rate:.3f})"
        )
