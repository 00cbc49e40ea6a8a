"""Counters kept by caches, readable at any time as a snapshot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CacheStats:
    """What a cache has done since it was created (or since :meth:`reset`)."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    fetches: int = 0

    @property
    def hit_rate(self) -> float:
        """Hits over lookups, 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def reset(self) -> None:
        """Set every counter back to zero."""
        self.hits = self.misses = self.errors = self.fetches = 0
