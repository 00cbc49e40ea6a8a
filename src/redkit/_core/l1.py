"""The in-process tier of ``TieredCache``: a bounded LRU with a TTL per entry, and fill tickets.

Entries live in an ``OrderedDict`` (least recently used first): a hit moves its entry to the
end, an insert past ``max_size`` evicts from the front. Each entry is ``(value, expires_at)``
on the injected clock: ``ttl`` after the fill, or sooner when the value read expires
sooner in Redis (see :meth:`L1.fill`). ``benchmarks/l1_stores.py`` measures this against
cachebox, cachetools and theine; the choice and its reasons are in ``benchmarks/RESULTS.md``.

The pattern reads hits straight from :attr:`L1.data` (its fast path must not pay for a
method call); everything else goes through the methods here.

Tickets close the race between a read of Redis and an invalidation of the same key. A reader
takes a ticket (:meth:`L1.begin`) *before* it sends its request and may store what came back
only with a ticket still valid (:meth:`L1.fill`). An invalidation of the key, a flush, and the
loss of the invalidation channel void every ticket taken before them, so a value read before
an invalidation can never enter L1 after the invalidation was applied, whichever of the reply
and the invalidation arrives first. While the channel is down (:attr:`L1.live` False) tickets
are born void: nothing is stored until invalidations flow again.

``threadsafe`` (the sync face) puts the writers (fills, invalidations, flushes, ticket
bookkeeping) under one lock; hits take no lock (single dict operations are atomic in CPython).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any

from redkit._core.clock import Clock


class Ticket:
    """A reader's permission to fill L1 with what it is reading; void once the key changed."""

    __slots__ = ("readers", "valid")

    def __init__(self, valid: bool = True) -> None:
        self.valid = valid
        self.readers = 0


#: The ticket of a read that started while the channel was down: it never fills L1.
VOID = Ticket(valid=False)


class L1:
    """A bounded in-process LRU cache with a TTL per entry (see the module docstring).

    ``max_size`` entries at most; each expires ``ttl`` seconds after it was stored, on
    ``clock``. :attr:`evictions` counts entries pushed out by the size bound.
    """

    __slots__ = ("_lock", "_reading", "clock", "data", "evictions", "live", "max_size", "ttl")

    def __init__(self, max_size: int, ttl: float, clock: Clock, *, threadsafe: bool) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self.clock = clock
        self.data: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()
        self.evictions = 0
        self.live = False
        self._reading: dict[Hashable, Ticket] = {}
        self._lock: Any = threading.Lock() if threadsafe else contextlib.nullcontext()

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: Hashable) -> bool:
        entry = self.data.get(key)
        return entry is not None and entry[1] > self.clock.monotonic()

    def lookup(self, key: Hashable) -> tuple[Any, float] | None:
        """The fresh entry of ``key`` (moved to most recently used), or None; an expired one
        is dropped."""
        data = self.data
        entry = data.get(key)
        if entry is None:
            return None
        if entry[1] > self.clock.monotonic():
            with contextlib.suppress(KeyError):  # dropped meanwhile by another thread
                data.move_to_end(key)
            return entry
        with self._lock:
            if data.get(key) is entry:
                del data[key]
        return None

    def keys(self) -> list[Hashable]:
        """The keys, least recently used first (expired ones included until touched)."""
        with self._lock:
            return list(self.data)

    # -- tickets and fills -------------------------------------------------------------------

    def begin(self, key: Hashable) -> Ticket:
        """A ticket for a read of ``key`` about to be sent; pass it to :meth:`fill` and
        :meth:`end`."""
        with self._lock:
            if not self.live:
                return VOID
            ticket = self._reading.get(key)
            if ticket is None:
                ticket = self._reading[key] = Ticket()
            ticket.readers += 1
            return ticket

    def end(self, key: Hashable, ticket: Ticket) -> None:
        """The read that took ``ticket`` is over (whatever its outcome)."""
        if ticket is VOID:
            return
        with self._lock:
            ticket.readers -= 1
            if ticket.readers <= 0 and self._reading.get(key) is ticket:
                del self._reading[key]

    def fill(
        self, key: Hashable, value: Any, ticket: Ticket, expires_at: float | None = None
    ) -> int:
        """Store ``value`` for ``key`` if ``ticket`` is still valid; how many entries that
        evicted (least recently used first, past ``max_size``), or -1 if it was not stored.

        The entry expires ``ttl`` seconds from now, or at ``expires_at`` (on the clock) if
        that comes first: when the copy in Redis it was read from expires.
        """
        with self._lock:
            if not ticket.valid:  # voided, or taken while the channel was down
                return -1
            data = self.data
            expiry = self.clock.monotonic() + self.ttl
            if expires_at is not None and expires_at < expiry:
                expiry = expires_at
            data[key] = (value, expiry)
            data.move_to_end(key)
            evicted = 0
            while len(data) > self.max_size:
                data.popitem(last=False)
                evicted += 1
            self.evictions += evicted
            return evicted

    # -- invalidation ---------------------------------------------------------------------

    def invalidate(self, keys: Iterable[Hashable]) -> None:
        """Drop ``keys`` and void the tickets of reads of them in flight."""
        with self._lock:
            data, reading = self.data, self._reading
            for key in keys:
                data.pop(key, None)
                ticket = reading.pop(key, None)
                if ticket is not None:
                    ticket.valid = False

    def flush(self, *, live: bool) -> None:
        """Drop every entry, void every ticket, and set whether fills may happen again."""
        with self._lock:
            self.data.clear()
            for ticket in self._reading.values():
                ticket.valid = False
            self._reading.clear()
            self.live = live

    def set_live(self) -> None:
        """The invalidation channel is (back) up: reads that start now may fill again."""
        with self._lock:
            self.live = True

    def after_fork(self) -> None:
        """Start afresh in a child process: no listener there yet, so no entry may stay."""
        self._lock = (
            threading.Lock() if not isinstance(self._lock, contextlib.nullcontext) else self._lock
        )
        self.data.clear()
        self._reading.clear()
        self.live = False
