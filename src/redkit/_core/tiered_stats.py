"""``TieredCache.stats``: its counters per tier, a view over its event sink."""

from __future__ import annotations

from redkit._core.events import CacheStats, Event, Events
from redkit._core.l1 import L1


class TieredStats(CacheStats):
    """A live view of a tiered cache's counters, per tier.

    ``l1_hits``, ``l2_hits`` (``hits`` is both), ``misses`` (in both tiers),
    ``invalidations`` (entry invalidations received from Redis), ``l1_evictions`` (pushed
    out by ``l1_max_size``), ``l1_flushes`` (L1 emptied: FLUSHALL, or the invalidation
    channel lost), ``errors``, ``fetches``; ``l1_size`` is the entries in L1 now.
    """

    __slots__ = ("_l1",)

    def __init__(self, events: Events, l1: L1) -> None:
        super().__init__(events)
        self._l1 = l1

    @property
    def l1_hits(self) -> int:
        """Reads served from the in-process tier."""
        return self._events.count(Event.L1_HIT)

    @property
    def l2_hits(self) -> int:
        """Reads served from Redis."""
        return self._events.count(Event.HIT)

    @property
    def hits(self) -> int:
        """Reads served from either tier."""
        return self.l1_hits + self.l2_hits

    @property
    def invalidations(self) -> int:
        """Invalidations of entries received from Redis (any process's writes, expiries...)."""
        return self._events.count(Event.INVALIDATION_RECEIVED)

    @property
    def l1_evictions(self) -> int:
        """Entries pushed out of L1 by its size bound."""
        return self._events.count(Event.L1_EVICTION)

    @property
    def l1_flushes(self) -> int:
        """Times L1 was emptied: a FLUSHALL/FLUSHDB, or the invalidation channel lost."""
        return self._events.count(Event.L1_FLUSH)

    @property
    def l1_size(self) -> int:
        """Entries in L1 now."""
        return len(self._l1)

    def __repr__(self) -> str:
        return (
            f"TieredStats(l1_hits={self.l1_hits}, l2_hits={self.l2_hits}, "
            f"misses={self.misses}, invalidations={self.invalidations}, "
            f"l1_evictions={self.l1_evictions}, l1_size={self.l1_size})"
        )
