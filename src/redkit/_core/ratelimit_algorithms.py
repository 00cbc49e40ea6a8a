"""The five rate-limit algorithms, as pure functions: the in-process twins of the Lua scripts.

Each algorithm is a small class holding its validated parameters. Its :meth:`step` takes the
stored state of one key (``None`` when there is none), the time ``now`` in integer
microseconds, a ``cost`` and whether to consume it (a hit) or only look (a peek), and returns
the state to store (or ``None`` to leave it as it is) with how long it matters, and a
:class:`Verdict` laid out like the scripts' replies.

The arithmetic is written to match ``redkit/lua/ratelimit_*.lua`` operation for operation, in
IEEE doubles where the Lua uses non-integers (the ``float(...)`` conversions below put Python
on the same rounding path), so the twins give the very same answers: the test suite runs one
table of cases against both. Time always comes from the caller: the server's ``TIME`` in the
scripts, an injected clock in-process.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from typing import Any, NamedTuple

from redkit.errors import InvalidArgument

#: Microseconds per second: every duration below is an integer number of microseconds.
US = 1_000_000
#: Integers a Lua number (a double) holds exactly; products of the parameters stay below it.
_EXACT = 2**53
#: How many times a computed wait is nudged up by a microsecond when rounding left it short.
_NUDGES = 3


class Verdict(NamedTuple):
    """One decision, as a script returns it: integers, durations in microseconds.

    ``retry_us`` is 0 when allowed and -1 when no wait can make the cost fit (above the
    capacity); ``reset_us`` is the time until the key is back to its full capacity.
    """

    allowed: int
    remaining: int
    reset_us: int
    retry_us: int


class Step(NamedTuple):
    """What :meth:`step` returns: the new state (None: unchanged), for how long it matters
    (microseconds; the key's expiry), and the verdict."""

    state: Any
    ttl_us: int
    verdict: Verdict


def positive_int(value: object, name: str) -> int:
    """``value`` if it is an int of at least 1 (not a bool), else InvalidArgument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be an int of at least 1, got {value!r}")
    return int(value)


def positive_number(value: object, name: str) -> float:
    """``value`` if it is a finite number above 0 (not a bool), else InvalidArgument."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidArgument(f"{name} must be a finite number above 0, got {value!r}")
    return float(value)


def duration_us(value: object, name: str) -> int:
    """``value`` seconds as whole microseconds (at least 1), else InvalidArgument."""
    us = round(positive_number(value, name) * US)
    if us < 1:
        raise InvalidArgument(f"{name} must be at least one microsecond, got {value!r}")
    return us


def check_cost(cost: object) -> int:
    """``cost`` if it is an int of at least 0 (not a bool), else InvalidArgument."""
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise InvalidArgument(f"cost must be an int of at least 0, got {cost!r}")
    return int(cost)


def _exact(value: int | float, what: str) -> None:
    if value >= _EXACT:
        raise InvalidArgument(f"{what} is too large for exact arithmetic (at most 2**53)")


def _ceil(value: float) -> int:
    return math.ceil(value)


def span(us: int) -> str:
    """A duration of ``us`` microseconds as key text: ``60s``, ``500ms`` or ``2500us``."""
    if us % US == 0:
        return f"{us // US}s"
    if us % 1000 == 0:
        return f"{us // 1000}ms"
    return f"{us}us"


class FixedWindow:
    """At most ``limit`` per window; a window starts with the first hit after the last ended.

    State: ``(start, count)``; stored as ``"start:count"``.
    """

    name = "fixed_window"
    __slots__ = ("limit", "window_us")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = positive_int(limit, "limit")
        self.window_us = duration_us(window, "window")
        _exact(self.window_us * 2 + self.limit, "window")

    @property
    def capacity(self) -> int:
        return self.limit

    @property
    def policy(self) -> tuple[int, float]:
        """(quota, window in seconds), for the RateLimit-Policy header field."""
        return self.limit, self.window_us / US

    def args(self) -> list[int | str]:
        """The script's leading ARGV (the parameters), before cost and consume."""
        return [self.limit, self.window_us]

    @property
    def tag(self) -> str:
        """The algorithm and its parameters, as the keys name them: ``name:limit/window``."""
        return f"{self.name}:{self.limit}/{span(self.window_us)}"

    def step(self, state: Any, now: int, cost: int, consume: bool) -> Step:
        limit, window = self.limit, self.window_us
        start, count = now, 0
        if state is not None:
            s, c = state
            if now - s < window:
                start, count = s, c
        reset = start + window - now
        if cost > limit:
            return Step(None, 0, Verdict(0, limit - count, reset if count > 0 else 0, -1))
        if count + cost <= limit:
            if consume and cost > 0:
                count += cost
                return Step((start, count), reset, Verdict(1, limit - count, reset, 0))
            return Step(None, 0, Verdict(1, limit - count, reset if count > 0 else 0, 0))
        return Step(None, 0, Verdict(0, limit - count, reset, reset))


class SlidingWindowLog:
    """At most ``limit`` in any window of ``window`` seconds: one entry per admitted hit.

    State: the entries ``(stamp, total, cost)`` in stamp order, ``total`` being the running
    sum of the admitted costs (the entry's included); stored as a sorted set of
    ``"total:cost"`` scored by stamp. Stamps are unique: one landing on or before the newest
    is moved to just after it. The count in the window is the live entries' total cost, from
    the first and last live entries alone, whatever the costs. (The script removes at most
    1000 expired entries per hit and keeps the running total of expired ones; here every
    expired entry goes at once and the total may start again from 0: the verdicts depend
    only on differences of totals, so they are the same.)
    """

    name = "sliding_window_log"
    __slots__ = ("limit", "window_us")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = positive_int(limit, "limit")
        self.window_us = duration_us(window, "window")
        _exact(self.window_us * 2 + self.limit, "window")

    @property
    def capacity(self) -> int:
        return self.limit

    @property
    def policy(self) -> tuple[int, float]:
        return self.limit, self.window_us / US

    def args(self) -> list[int | str]:
        return [self.limit, self.window_us]

    @property
    def tag(self) -> str:
        """The algorithm and its parameters, as the keys name them: ``name:limit/window``."""
        return f"{self.name}:{self.limit}/{span(self.window_us)}"

    def step(self, state: Any, now: int, cost: int, consume: bool) -> Step:
        limit, window = self.limit, self.window_us
        entries: list[tuple[int, int, int]] = list(state) if state is not None else []
        # expired: stamp <= now - window
        del entries[: bisect_right(entries, (now - window, _EXACT, _EXACT))]
        count = entries[-1][1] - entries[0][1] + entries[0][2] if entries else 0
        reset = entries[-1][0] + window - now if count else 0
        if cost > limit:
            return Step(None, 0, Verdict(0, limit - count, reset, -1))
        if count + cost <= limit:
            if consume and cost > 0:
                stamp = max(now, entries[-1][0] + 1) if entries else now
                total = (entries[-1][1] if entries else 0) + cost
                entries.append((stamp, total, cost))
                count += cost
                reset = stamp + window - now
                return Step(entries, reset, Verdict(1, limit - count, reset, 0))
            return Step(None, 0, Verdict(1, limit - count, reset, 0))
        # the oldest entry whose expiry leaves room for ``cost``
        target = entries[-1][1] + cost - limit
        entry = entries[bisect_left([e[1] for e in entries], target)]
        return Step(None, 0, Verdict(0, limit - count, reset, entry[0] + window - now))


class SlidingWindowCounter:
    """The weighted two-window estimate: ``previous * (unelapsed share) + current``.

    State: ``(start, previous, current)``; stored as ``"start:previous:current"``. Windows
    follow each other from the first hit. Error bound: at most ``limit`` in each window, and in
    any span of ``window`` seconds at most ``limit + previous * elapsed_share`` (below
    ``2 * limit``, reached only when the previous window's hits all came at its very end);
    exact when the previous window's hits were evenly spread.
    """

    name = "sliding_window_counter"
    __slots__ = ("limit", "window_us")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = positive_int(limit, "limit")
        self.window_us = duration_us(window, "window")
        _exact(self.window_us * 2 + self.limit, "window")

    @property
    def capacity(self) -> int:
        return self.limit

    @property
    def policy(self) -> tuple[int, float]:
        return self.limit, self.window_us / US

    def args(self) -> list[int | str]:
        return [self.limit, self.window_us]

    @property
    def tag(self) -> str:
        """The algorithm and its parameters, as the keys name them: ``name:limit/window``."""
        return f"{self.name}:{self.limit}/{span(self.window_us)}"

    def step(self, state: Any, now: int, cost: int, consume: bool) -> Step:
        limit, window = self.limit, self.window_us
        start, prev, cur = now, 0, 0
        if state is not None:
            s, p, c = state
            elapsed = now - s
            if elapsed < window:
                start, prev, cur = s, p, c
            elif elapsed < 2 * window:
                start, prev, cur = s + window, c, 0

        def used_at(t: int) -> float:
            s, p, c = start, prev, cur
            if t - s >= window:
                if t - s >= 2 * window:
                    return 0.0
                s, p, c = s + window, c, 0
            e = max(0, t - s)
            return float(p) * (window - e) / window + c

        used = used_at(now)
        if cost > limit:
            return Step(
                None, 0, Verdict(0, _left(limit, used), self._reset(start, prev, cur, now), -1)
            )
        if used + cost <= limit:
            if consume and cost > 0:
                cur += cost
                used = used_at(now)
                reset = self._reset(start, prev, cur, now)
                return Step(
                    (start, prev, cur),
                    start + 2 * window - now,
                    Verdict(1, _left(limit, used), reset, 0),
                )
            return Step(
                None, 0, Verdict(1, _left(limit, used), self._reset(start, prev, cur, now), 0)
            )
        e = max(0, now - start)
        if cur + cost <= limit:  # only the previous window's share is in the way
            wait = _ceil(window - float(limit - cur - cost) * window / prev - e)
        else:  # wait for the next window, then for the current count's share to shrink
            share = window - float(limit - cost) * window / cur
            wait = start + window - now + _ceil(max(0.0, share))
        for _ in range(_NUDGES):
            if used_at(now + wait) + cost <= limit:
                break
            wait += 1
        return Step(
            None, 0, Verdict(0, _left(limit, used), self._reset(start, prev, cur, now), wait)
        )

    def _reset(self, start: int, prev: int, cur: int, now: int) -> int:
        if cur > 0:
            return start + 2 * self.window_us - now
        if prev > 0:
            return start + self.window_us - now
        return 0


def _left(limit: int, used: float) -> int:
    return max(0, math.floor(limit - used))


class TokenBucket:
    """A bucket of ``capacity`` tokens refilled continuously at ``refill_rate`` tokens per
    ``refill_interval`` seconds (fractions included, so rates below one per second work).

    State: ``(tokens, updated)``; stored as ``"tokens:updated"`` (tokens as ``%.17g``, exact).
    """

    name = "token_bucket"
    __slots__ = ("capacity", "interval_us", "refill_rate")

    def __init__(self, capacity: int, refill_rate: float, refill_interval: float = 1.0) -> None:
        self.capacity = positive_int(capacity, "capacity")
        self.refill_rate = positive_number(refill_rate, "refill_rate")
        self.interval_us = duration_us(refill_interval, "refill_interval")
        _exact(self.capacity, "capacity")

    @property
    def policy(self) -> tuple[int, float]:
        """(capacity, seconds to refill it from empty)."""
        return self.capacity, self.capacity * self.interval_us / self.refill_rate / US

    def args(self) -> list[int | str]:
        return [self.capacity, repr(self.refill_rate), self.interval_us]

    @property
    def tag(self) -> str:
        """``token_bucket:capacity:rate/interval``, as the keys name it."""
        return f"{self.name}:{self.capacity}:{self.refill_rate!r}/{span(self.interval_us)}"

    def step(self, state: Any, now: int, cost: int, consume: bool) -> Step:
        capacity, rate, interval = self.capacity, self.refill_rate, self.interval_us
        base_tokens, base_ts = float(capacity), now
        if state is not None:
            base_tokens, base_ts = state
        tokens, ts = base_tokens, base_ts
        if now > ts:
            tokens = min(float(capacity), tokens + (now - ts) * rate / interval)
            ts = now
        reset = _ceil((capacity - tokens) * interval / rate)
        if cost > capacity:
            return Step(None, 0, Verdict(0, math.floor(tokens), reset, -1))
        if tokens >= cost:
            if consume and cost > 0:
                tokens = tokens - cost
                reset = _ceil((capacity - tokens) * interval / rate)
                return Step((tokens, ts), reset, Verdict(1, math.floor(tokens), reset, 0))
            return Step(None, 0, Verdict(1, math.floor(tokens), reset, 0))
        wait = _ceil((cost - tokens) * interval / rate)
        for _ in range(_NUDGES):  # what a later step computes, from the stored state
            if min(float(capacity), base_tokens + (now + wait - base_ts) * rate / interval) >= cost:
                break
            wait += 1
        return Step(None, 0, Verdict(0, math.floor(tokens), reset, wait))


class GCRA:
    """The generic cell rate algorithm: ``limit`` per ``period``, at most ``burst`` at once.

    One number per key, the theoretical arrival time (TAT). The emission interval
    ``period / limit`` need not be a whole microsecond: the TAT is kept exactly as
    ``us + rem / limit`` and stored as ``"us"`` or ``"us:rem"``; the arithmetic below works in
    units of ``1 / limit`` microsecond relative to ``now`` (the "debt"), in exact integers.
    """

    name = "gcra"
    __slots__ = ("burst", "limit", "period_us")

    def __init__(self, limit: int, period: float, burst: int | None = None) -> None:
        self.limit = positive_int(limit, "limit")
        self.period_us = duration_us(period, "period")
        self.burst = self.limit if burst is None else positive_int(burst, "burst")
        _exact(self.burst * self.period_us + self.period_us, "burst * period")

    @property
    def capacity(self) -> int:
        return self.burst

    @property
    def policy(self) -> tuple[int, float]:
        return self.limit, self.period_us / US

    def args(self) -> list[int | str]:
        return [self.limit, self.period_us, self.burst]

    @property
    def tag(self) -> str:
        """``gcra:limit/period:burst``, as the keys name it."""
        return f"{self.name}:{self.limit}/{span(self.period_us)}:{self.burst}"

    def step(self, state: Any, now: int, cost: int, consume: bool) -> Step:
        limit, period = self.limit, self.period_us
        debt = 0
        if state is not None:
            us, rem = state
            if us > now or (us == now and rem > 0):
                debt = (us - now) * limit + rem
        tau = self.burst * period
        if cost > self.burst:
            return Step(
                None, 0, Verdict(0, math.floor((tau - debt) / period), _ceil(debt / limit), -1)
            )
        need = debt + cost * period
        if need <= tau:
            if consume and cost > 0:
                debt = need
                tat = (now + math.floor(debt / limit), debt - math.floor(debt / limit) * limit)
                reset = _ceil(debt / limit)
                return Step(tat, reset, Verdict(1, math.floor((tau - debt) / period), reset, 0))
            return Step(
                None, 0, Verdict(1, math.floor((tau - debt) / period), _ceil(debt / limit), 0)
            )
        retry = _ceil((need - tau) / limit)
        return Step(
            None, 0, Verdict(0, math.floor((tau - debt) / period), _ceil(debt / limit), retry)
        )


Algorithm = FixedWindow | SlidingWindowLog | SlidingWindowCounter | TokenBucket | GCRA
