"""Loading a missing entry under a fill lease: the algorithm behind every ``get_or_fetch``.

An entry ``prefix:{id}`` has a companion fill lock ``prefix:{id}:lock`` (same slot). A miss
takes the lock before fetching and stores the result only if it still holds the lock
(``cache_fill.lua``); writes (``set``, ``invalidate``) delete the lock, so a fetch that raced
with them is refused instead of caching data older than the source. The same lock makes
callers in other processes wait for the one fetch (stampede protection). The caller runs a
load inside the store's single-flight, so concurrent misses in one process share it.

A :class:`Loader` is shared machinery: ``CacheAside``, ``AdaptiveTTLCache`` and
``TieredCache`` each own one and differ only in how they read and which TTL they fill with.
``follow`` names companions whose expiry a fill aligns with the entry's (the adaptive TTL's
statistics).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redkit._acompat import ASYNC, call_fetcher, sleep
from redkit._async.store import Store
from redkit._core.clock import Clock
from redkit._core.codecs import NEGATIVE, Codec
from redkit._core.degradation import Degradation
from redkit._core.events import Event, Events
from redkit._core.keys import Companion, companion
from redkit._scripts import script
from redkit.errors import BackendError, CorruptEntry, RedkitError

if ASYNC:
    Fetcher = Callable[[], Any] | Callable[[], Awaitable[Any]]
else:
    Fetcher = Callable[[], Any]

_GET_OR_LOCK = script("cache_get_or_lock")
_FILL = script("cache_fill")
_COMPARE_AND_DELETE = script("compare_and_delete")

_MAX_CORRUPT_LOGGED = 1024
_FIRST_POLL = 0.005
_MAX_POLL = 0.1


def token() -> str:
    """A fresh fill-lock token (random, unique to one caller)."""
    return secrets.token_hex(16)


#: How many write tokens an entry's applied list keeps, and for how long (milliseconds): far
#: above any socket timeout x retries, so a re-sent set always finds its token.
APPLIED_TOKENS = 8
APPLIED_TTL_MS = 60_000


def set_call(key: str, payload: bytes, ttl_ms: int, *expiring: str) -> tuple[list[str], list[Any]]:
    """The keys and arguments of one ``cache_set`` run: a fresh write token, so a re-send of
    it is recognised; ``expiring`` are companions that take the entry's expiry."""
    keys = [key, companion(key, Companion.LOCK), companion(key, Companion.APPLIED), *expiring]
    return keys, [payload, ttl_ms, token(), APPLIED_TOKENS, APPLIED_TTL_MS]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: What :meth:`Loader.decode` returns for an absent or corrupt entry.
MISSING: Any = _Missing()


class Loader:
    """Stampede-protected loads of one cache's entries (see the module docstring).

    ``lock_ttl_ms``/``lock_wait``: how long one fetch may hold the fill lock and how long
    other callers wait for its value before asking the source themselves;
    ``negative_ttl_ms``: how long a ``None`` from the fetcher is remembered (0: not at all);
    ``record_delta``: store the fetch's duration in the entry (for XFetch).
    """

    __slots__ = (
        "_corrupt_logged",
        "clock",
        "codec",
        "events",
        "follow",
        "lock_ttl_ms",
        "lock_wait",
        "logger",
        "negative_ttl_ms",
        "policy",
        "record_delta",
        "store",
    )

    def __init__(
        self,
        store: Store,
        codec: Codec,
        events: Events,
        policy: Degradation[Any],
        *,
        clock: Clock,
        lock_ttl_ms: int,
        lock_wait: float,
        negative_ttl_ms: int,
        logger: logging.Logger,
        record_delta: bool = False,
        follow: Sequence[Companion] = (),
    ) -> None:
        self.store = store
        self.codec = codec
        self.events = events
        self.policy = policy
        self.clock = clock
        self.lock_ttl_ms = lock_ttl_ms
        self.lock_wait = lock_wait
        self.negative_ttl_ms = negative_ttl_ms
        self.logger = logger
        self.record_delta = record_delta
        self.follow = tuple(follow)
        self._corrupt_logged: set[str] = set()

    # -- reading what Redis returned -----------------------------------------------------

    def decode(self, key: str, data: bytes | None) -> Any:
        """The value in ``data`` (``NEGATIVE`` for a negative entry), or ``MISSING``; counts
        the hit or the miss."""
        if data is None:
            self.events.emit(Event.MISS)
            return MISSING
        try:
            value = self.codec.decode(data, key)
        except CorruptEntry as exc:
            self.corrupt(key, exc)
            self.events.emit(Event.MISS)
            return MISSING
        self.events.emit(Event.HIT)
        return value

    def corrupt(self, key: str, exc: CorruptEntry) -> None:
        """Count an undecodable entry and report it once per key; it is treated as a miss."""
        self.events.emit(Event.CORRUPT)
        if key in self._corrupt_logged:
            return
        if len(self._corrupt_logged) < _MAX_CORRUPT_LOGGED:
            self._corrupt_logged.add(key)
        self.logger.warning("corrupt cache entry %s treated as a miss: %s", key, exc)

    # -- loading ---------------------------------------------------------------------------

    async def load(self, key: str, fetcher: Fetcher, ttl_ms: int, corrupt: bytes | None) -> Any:
        """A miss: wait for another process's fetch, or take the fill lock and fetch.

        ``corrupt``: the undecodable bytes the caller found, removed first unless replaced.
        Run it inside ``store.flight(key, ...)``: once per key for all concurrent callers in
        this process. If this call is cancelled or fails after asking for the lock, the lock
        is released (by token, so never another caller's) so that the next caller does not
        wait out ``lock_ttl``.
        """
        lock = companion(key, Companion.LOCK)
        mine = token()
        deadline = self.clock.monotonic() + self.lock_wait
        delay = _FIRST_POLL
        waited = False
        try:
            if corrupt is not None:  # drop the corrupt bytes unless someone replaced them
                await self.store.run(_COMPARE_AND_DELETE, [key], [corrupt])
            while True:
                try:
                    found, data = await self.store.run(
                        _GET_OR_LOCK, [key, lock], [mine, self.lock_ttl_ms]
                    )
                except BaseException:
                    # The script may have taken the lock before the failure or cancellation.
                    await self.release(lock, mine)
                    raise
                if found:
                    try:
                        value = self.codec.decode(data, key)
                    except CorruptEntry as exc:
                        self.corrupt(key, exc)
                        await self.store.run(_COMPARE_AND_DELETE, [key], [data])
                        continue
                    return None if value is NEGATIVE else value
                if data:  # this caller holds the lock
                    break
                if not waited:
                    waited = True
                    self.events.emit(Event.LOCK_WAIT)
                if self.clock.monotonic() >= deadline:
                    self.events.emit(Event.LOCK_WAIT_EXPIRED)
                    self.logger.warning("gave up waiting for another fetch of %s; fetching", key)
                    return await self.fetch(fetcher)
                await sleep(delay)
                delay = min(delay * 2, _MAX_POLL)
        except BackendError as exc:
            self.policy.read_failed(exc)
            return await self.fetch(fetcher)
        return await self.fetch_and_fill(key, lock, mine, fetcher, ttl_ms)

    async def fetch_and_fill(
        self, key: str, lock: str, token: str, fetcher: Fetcher, ttl_ms: int
    ) -> Any:
        """Fetch while holding the fill lock, then store the value if the lock still holds."""
        started = self.clock.monotonic()
        try:
            value = await self.fetch(fetcher)
            delta_ms = int((self.clock.monotonic() - started) * 1000) if self.record_delta else None
            payload = self.codec.encode(value, key=key, delta_ms=delta_ms)
        except BaseException:
            await self.release(lock, token)
            raise
        if value is None:
            if not self.negative_ttl_ms:
                await self.release(lock, token)
                return None
            ttl_ms = self.negative_ttl_ms
        keys = [key, lock, *(companion(key, role) for role in self.follow)]
        try:
            stored = await self.store.run(_FILL, keys, [token, payload, ttl_ms])
        except BaseException as exc:
            await self.release(lock, token)
            if not isinstance(exc, RedkitError):
                raise
            self.policy.fill_failed(exc)
            return value
        if not stored:
            self.events.emit(Event.FILL_REFUSED)
            self.logger.debug("fill of %s refused: invalidated or set while fetching", key)
        return value

    async def fetch(self, fetcher: Fetcher) -> Any:
        """Ask the source of truth (counted)."""
        self.events.emit(Event.FETCH)
        return await call_fetcher(fetcher)

    async def release(self, lock: str, token: str) -> None:
        """Release the fill lock if ``token`` still holds it; survives a cancelled caller."""

        async def release() -> None:
            try:
                await self.store.run(_COMPARE_AND_DELETE, [lock], [token])
            except RedkitError as exc:
                self.logger.warning(
                    "could not release fill lock %s (it expires by itself): %s", lock, exc
                )

        await self.store.background.cleanup(release, "fill-lock release")
