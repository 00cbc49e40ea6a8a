"""Invalidations that failed, retried in the background until Redis answers.

When a write has reached the source of truth but the cache entry could not be removed (Redis
unreachable, a partition), the entry may hold an older value than the source. The key is
remembered here and a background job (a task; a thread on the sync face) keeps removing it,
with capped exponential backoff, until Redis answers: the stale entry disappears as soon as the
network heals. Meanwhile reads of that key in this process do not trust Redis (the store asks
:meth:`PendingInvalidations.settle` first). Memory is bounded by ``limit`` keys: past it, a key
is not remembered, and an error is logged (its TTL still bounds the staleness).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from redkit._acompat import ASYNC, Background, Event
from redkit._core.events import Event as Happened
from redkit._core.events import Events
from redkit.errors import RedkitError

if ASYNC:
    Invalidate = Callable[[str], Awaitable[object]]
else:
    import threading

    Invalidate = Callable[[str], object]

logger = logging.getLogger("redkit.cache")

_FIRST_DELAY = 0.05
_MAX_DELAY = 2.0


class PendingInvalidations:
    """Keys whose invalidation failed; ``invalidate(key)`` removes one entry (and companions)."""

    def __init__(
        self,
        invalidate: Invalidate,
        *,
        background: Background,
        events: Events,
        limit: int = 10_000,
    ) -> None:
        self._invalidate = invalidate
        self._background = background
        self._events = events
        self.limit = limit
        #: the keys waiting for their invalidation (read by the store on every read: keep it
        #: a plain dict)
        self.keys: dict[str, None] = {}
        self._running = False
        self._stopping = Event()
        if ASYNC:
            pass
        else:
            self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: str) -> bool:
        """Remember ``key`` and make sure the retry job runs; False when over the limit."""
        if ASYNC:
            start = self._remember(key)
        else:
            with self._lock:
                start = self._remember(key)
        if start:
            self._background.spawn(self._retry, "invalidation retry")
        return key in self.keys

    async def settle(self, key: str) -> bool:
        """Try ``key``'s invalidation once now; whether it is done (or was not pending)."""
        if key not in self.keys:
            return True
        try:
            await self._invalidate(key)
        except RedkitError:
            return False
        self._forget(key)
        self._events.emit(Happened.INVALIDATION_RETRIED)
        logger.info("stale cache entry %s removed after Redis came back", key)
        return True

    def stop(self) -> None:
        """Ask the retry job to stop (the owner then closes its Background)."""
        self._stopping.set()
        if self.keys:
            logger.error(
                "closing with %d cache invalidations still pending; those entries may stay "
                "stale until their TTL: %s",
                len(self.keys),
                ", ".join(list(self.keys)[:10]),
            )

    def _remember(self, key: str) -> bool:
        """Add ``key`` (under the lock on the sync face); whether the job must be started."""
        if key not in self.keys:
            if len(self.keys) >= self.limit:
                logger.error(
                    "cannot remember more than %d pending invalidations: %s may stay stale "
                    "until its TTL",
                    self.limit,
                    key,
                )
                return False
            self.keys[key] = None
            self._events.emit(Happened.INVALIDATION_PENDING)
            logger.warning("cache entry %s may be stale: retrying its invalidation", key)
        if self._running or self._stopping.is_set():
            return False
        self._running = True
        return True

    def _forget(self, key: str) -> None:
        if ASYNC:
            self.keys.pop(key, None)
        else:
            with self._lock:
                self.keys.pop(key, None)

    def _done(self) -> bool:
        """Whether the job may end: nothing pending (decided under the lock on the sync face)."""
        if ASYNC:
            if not self.keys or self._stopping.is_set():
                self._running = False
                return True
            return False
        else:
            with self._lock:
                if not self.keys or self._stopping.is_set():
                    self._running = False
                    return True
                return False

    async def _retry(self) -> None:
        delay = _FIRST_DELAY
        try:
            while not self._done():
                for key in list(self.keys):
                    await self.settle(key)
                if self.keys and await self._stopping.wait(delay):
                    break
                delay = min(delay * 2, _MAX_DELAY)
        except BaseException:
            self._running = False  # so that a later add() starts a new job
            raise
