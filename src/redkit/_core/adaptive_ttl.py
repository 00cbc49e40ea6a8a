"""Adaptive TTL policies: how long an entry lives, from how it has been read.

A policy is a pure function ``policy(metrics, now) -> seconds``. ``metrics`` are the entry's
shared read statistics (kept in Redis next to it, see ``AdaptiveTTLCache``); ``now`` is the
injected clock: the cache passes the server's time, read in the same script as the
statistics, so processes with skewed clocks agree on "read within the last minute". The cache
clamps whatever a policy returns to ``[min_ttl, max_ttl]``.

:class:`ArticlePolicy` is the default, the source article's formula:
``TTL = base_ttl x (1 + hit rate)``, ``x 1.5`` when the entry was hit within the last
minute, clamped to ``[min_ttl, max_ttl]``, with ``hit rate = hits / (hits + misses + 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from redkit._core.ttl import MAX_TTL_MS
from redkit.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class KeyMetrics:
    """One entry's read statistics, shared by every process.

    ``hits``/``misses``: reads that found / did not find the entry during its current life
    (they expire with it); ``last_hit``: server time (seconds since the epoch) of the last hit,
    None before the first.
    """

    hits: int = 0
    misses: int = 0
    last_hit: float | None = None

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses + 1)``: the article's rate, 0 for an unread entry."""
        return self.hits / (self.hits + self.misses + 1)


class TTLPolicy(Protocol):
    """Seconds an entry should live, given its statistics and the time now (seconds)."""

    def __call__(self, metrics: KeyMetrics, now: float) -> float: ...


@dataclass(frozen=True, slots=True)
class ArticlePolicy:
    """The source article's policy (see the module docstring); ``recent`` and ``boost`` are
    its "within the last minute" and "x 1.5"."""

    base_ttl: float = 3600.0
    min_ttl: float = 60.0
    max_ttl: float = 86400.0
    recent: float = 60.0
    boost: float = 1.5

    def __call__(self, metrics: KeyMetrics, now: float) -> float:
        ttl = self.base_ttl * (1.0 + metrics.hit_rate)
        if metrics.last_hit is not None and now - metrics.last_hit < self.recent:
            ttl *= self.boost
        return min(max(ttl, self.min_ttl), self.max_ttl)


def check_bounds(min_ttl: float, max_ttl: float, base_ttl: float) -> tuple[float, float, float]:
    """The three TTL options checked: positive finite seconds, ``min_ttl <= max_ttl``."""
    for name, value in (("min_ttl", min_ttl), ("max_ttl", max_ttl), ("base_ttl", base_ttl)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(
                f"{name} must be a number of seconds, got {type(value).__name__}: {value!r}"
            )
        if not math.isfinite(value) or value <= 0:
            raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
        if value * 1000 > MAX_TTL_MS:
            raise ConfigurationError(f"{name}={value!r} seconds is longer than redkit can store")
    if min_ttl > max_ttl:
        raise ConfigurationError(f"min_ttl ({min_ttl!r}) must not exceed max_ttl ({max_ttl!r})")
    return float(min_ttl), float(max_ttl), float(base_ttl)


def clamp(ttl: object, min_ttl: float, max_ttl: float, policy: object) -> float:
    """A policy's answer checked (a finite number) and clamped to ``[min_ttl, max_ttl]``."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or math.isnan(ttl):
        raise ConfigurationError(
            f"the TTL policy {policy!r} returned {ttl!r}; it must return a number of seconds"
        )
    return min(max(float(ttl), min_ttl), max_ttl)
