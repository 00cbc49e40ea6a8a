"""Rate limiting, the pure part: results, and the in-process limiters (the fallback).

A limiter's answer is a :class:`RateLimitResult`; its ``decided_by`` says which path made the
decision: Redis, the in-process fallback, or the ``on_error`` policy (fail open or closed).

The in-process limiters (``LocalFixedWindowLimiter``...) run the very arithmetic of the Lua
scripts (:mod:`redkit._core.ratelimit_algorithms`) on an injected clock, in this process only.
A Redis limiter given one as ``fallback=`` decides with it while Redis cannot be reached. They
are thread-safe and bounded (``max_keys``; the least recently used key is forgotten first).
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from redkit._core.clock import SYSTEM_CLOCK, Clock
from redkit._core.events import Event, Events
from redkit._core.keys import KeyId, id_text
from redkit._core.ratelimit_algorithms import (
    GCRA,
    US,
    Algorithm,
    FixedWindow,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
    Verdict,
    check_cost,
    positive_int,
)

__all__ = [
    "DecidedBy",
    "LimiterStats",
    "LocalFixedWindowLimiter",
    "LocalGCRALimiter",
    "LocalLimiter",
    "LocalSlidingWindowCounterLimiter",
    "LocalSlidingWindowLogLimiter",
    "LocalTokenBucketLimiter",
    "RateLimitResult",
    "result_of",
]


class DecidedBy(enum.StrEnum):
    """Which path made a rate-limit decision."""

    #: the limiter's script on Redis (the normal path)
    REDIS = "redis"
    #: the in-process fallback limiter, because Redis could not be used
    FALLBACK = "fallback"
    #: ``on_error="allow"``: admitted without a decision, because Redis could not be used
    FAIL_OPEN = "fail_open"
    #: ``on_error="deny"``: refused without a decision, because Redis could not be used
    FAIL_CLOSED = "fail_closed"


class RateLimitResult(NamedTuple):
    """The answer to ``hit`` or ``peek``.

    ``allowed``: whether the cost was (for a peek: would be) admitted. ``limit``: the most
    that can be taken at once (the limit, the bucket's capacity, GCRA's burst).
    ``remaining``: how much is left now (after this hit). ``reset_after``: seconds until the
    key is back to its full capacity. ``retry_after``: 0.0 when allowed; when denied, seconds
    until the same cost would be admitted, or None when it never can (a cost above
    ``limit``). ``decided_by``: the path that decided (see :class:`DecidedBy`).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float | None
    decided_by: DecidedBy = DecidedBy.REDIS


def result_of(
    reply: Verdict | list[int], limit: int, decided_by: DecidedBy = DecidedBy.REDIS
) -> RateLimitResult:
    """The result for a script's reply (or a twin's verdict): microseconds become seconds."""
    allowed, remaining, reset_us, retry_us = reply
    return RateLimitResult(
        allowed == 1,
        limit,
        remaining,
        reset_us / US,
        None if retry_us < 0 else retry_us / US,
        decided_by,
    )


class LimiterStats:
    """A live view of a limiter's counters: ``allowed``, ``denied``, ``errors``...

    Every decision counts as allowed or denied, whichever path made it; ``fallback``,
    ``failed_open`` and ``failed_closed`` count the decisions made without Redis.
    """

    __slots__ = ("_events",)

    def __init__(self, events: Events) -> None:
        self._events = events

    @property
    def allowed(self) -> int:
        return self._events.count(Event.ALLOWED)

    @property
    def denied(self) -> int:
        return self._events.count(Event.DENIED)

    @property
    def errors(self) -> int:
        """Decisions Redis could not make: it failed, or the breaker was open."""
        return self._events.count(Event.ERROR) + self._events.count(Event.SKIPPED)

    @property
    def fallback(self) -> int:
        return self._events.count(Event.FALLBACK)

    @property
    def failed_open(self) -> int:
        return self._events.count(Event.FAILED_OPEN)

    @property
    def failed_closed(self) -> int:
        return self._events.count(Event.FAILED_CLOSED)

    def snapshot(self) -> dict[str, int]:
        """Every counter, by event name."""
        return self._events.snapshot()

    def reset(self) -> None:
        """Set every counter back to zero."""
        self._events.reset()

    def __repr__(self) -> str:
        return (
            f"LimiterStats(allowed={self.allowed}, denied={self.denied}, "
            f"errors={self.errors}, fallback={self.fallback})"
        )


class LocalLimiter:
    """An in-process limiter: one algorithm's arithmetic over a bounded map of keys.

    Not shared between processes: as a fallback it limits each process on its own, so give it
    the share of the limit one process may use. ``clock`` is a seam for tests.
    """

    __slots__ = ("_lock", "_states", "algorithm", "clock", "max_keys")

    def __init__(
        self, algorithm: Algorithm, *, clock: Clock = SYSTEM_CLOCK, max_keys: int = 10_000
    ) -> None:
        self.algorithm = algorithm
        self.clock = clock
        self.max_keys = positive_int(max_keys, "max_keys")
        # key -> (state, expires at in microseconds)
        self._states: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        """The most that can be taken at once."""
        return self.algorithm.capacity

    @property
    def quota(self) -> tuple[int, float]:
        """The policy as (quota, window in seconds), as the RateLimit-Policy field states it."""
        return self.algorithm.policy

    def hit(self, key: KeyId, cost: int = 1) -> RateLimitResult:
        """Take ``cost`` from ``key``'s allowance if it fits."""
        return self._decide(id_text(key), check_cost(cost), True)

    def peek(self, key: KeyId, cost: int = 1) -> RateLimitResult:
        """Whether ``cost`` would fit now, taking nothing."""
        return self._decide(id_text(key), check_cost(cost), False)

    def reset(self, key: KeyId) -> bool:
        """Forget ``key``'s state (its full allowance is back); whether it had one."""
        with self._lock:
            return self._states.pop(id_text(key), None) is not None

    def __len__(self) -> int:
        return len(self._states)

    def _decide(self, key: str, cost: int, consume: bool) -> RateLimitResult:
        now = round(self.clock.monotonic() * US)
        states = self._states
        with self._lock:
            entry = states.get(key)
            state = None
            if entry is not None:
                if entry[1] > now:
                    state = entry[0]
                    states.move_to_end(key)
                else:
                    del states[key]
            step = self.algorithm.step(state, now, cost, consume)
            if step.state is not None:
                states[key] = (step.state, now + step.ttl_us)
                states.move_to_end(key)
                while len(states) > self.max_keys:
                    states.popitem(last=False)
        return result_of(step.verdict, self.algorithm.capacity, DecidedBy.FALLBACK)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.algorithm.name} keys={len(self._states)}>"


class LocalFixedWindowLimiter(LocalLimiter):
    """In-process :class:`~redkit.FixedWindowLimiter`: ``limit`` per ``window`` seconds."""

    __slots__ = ()

    def __init__(
        self, limit: int, window: float, *, clock: Clock = SYSTEM_CLOCK, max_keys: int = 10_000
    ) -> None:
        super().__init__(FixedWindow(limit, window), clock=clock, max_keys=max_keys)


class LocalSlidingWindowLogLimiter(LocalLimiter):
    """In-process :class:`~redkit.SlidingWindowLogLimiter`."""

    __slots__ = ()

    def __init__(
        self, limit: int, window: float, *, clock: Clock = SYSTEM_CLOCK, max_keys: int = 10_000
    ) -> None:
        super().__init__(SlidingWindowLog(limit, window), clock=clock, max_keys=max_keys)


class LocalSlidingWindowCounterLimiter(LocalLimiter):
    """In-process :class:`~redkit.SlidingWindowCounterLimiter`."""

    __slots__ = ()

    def __init__(
        self, limit: int, window: float, *, clock: Clock = SYSTEM_CLOCK, max_keys: int = 10_000
    ) -> None:
        super().__init__(SlidingWindowCounter(limit, window), clock=clock, max_keys=max_keys)


class LocalTokenBucketLimiter(LocalLimiter):
    """In-process :class:`~redkit.TokenBucketLimiter`."""

    __slots__ = ()

    def __init__(
        self,
        capacity: int,
        refill_rate: float,
        refill_interval: float = 1.0,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_keys: int = 10_000,
    ) -> None:
        super().__init__(
            TokenBucket(capacity, refill_rate, refill_interval), clock=clock, max_keys=max_keys
        )


class LocalGCRALimiter(LocalLimiter):
    """In-process :class:`~redkit.GCRALimiter`."""

    __slots__ = ()

    def __init__(
        self,
        limit: int,
        period: float,
        burst: int | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_keys: int = 10_000,
    ) -> None:
        super().__init__(GCRA(limit, period, burst), clock=clock, max_keys=max_keys)
