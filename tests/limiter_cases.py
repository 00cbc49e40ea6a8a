"""One table of rate-limit cases, run against the Lua scripts and their in-process twins.

Each case is an algorithm and a list of steps ``(at, cost, consume, expected)``: ``at`` in
microseconds from the case's start, ``expected`` the verdict ``(allowed, remaining, reset_us,
retry_us)`` (``retry_us`` -1: never). The scripts read the server's ``TIME``; :func:`timed`
gives a copy of a script that reads the time from its last two ARGV instead, so that the
very same arithmetic runs at the times a case asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redkit._core.ratelimit_algorithms import (
    GCRA,
    Algorithm,
    FixedWindow,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
    Verdict,
)
from redkit._scripts import script

S = 1_000_000  # one second in microseconds
#: An arbitrary start (a plausible server time), so the arithmetic sees real magnitudes.
T0 = 1_780_000_000_000_000
_TIME_CALL = "redis.call('TIME')"


_EXPIRY = ("'PX', math.ceil(", "redis.call('PEXPIRE', key, math.ceil(")


def timed(algorithm: Algorithm) -> str:
    """The script of ``algorithm`` reading the time from its last two ARGV (seconds, µs).

    Its keys also live an hour: their expiry runs on the server's real clock, not on the
    case's, and a state that expired in real time between two steps (a 1 ms window) would
    make the script and its twin part for a reason that is the test's, not the code's.
    """
    source = script(f"ratelimit_{algorithm.name}").source
    assert source.count(_TIME_CALL) == 1, "each script reads TIME exactly once"
    source = source.replace(_TIME_CALL, "{ARGV[#ARGV - 1], ARGV[#ARGV]}")
    for expiry in _EXPIRY:
        source = source.replace(expiry, expiry[: -len("math.ceil(")] + "3600000 + 0 * math.ceil(")
    assert "3600000 + 0 * math.ceil(" in source, "each script sets an expiry"
    return source


def run_lua(
    client: Any, algorithm: Algorithm, key: str, now: int, cost: int, consume: bool
) -> Verdict:
    """One step of ``algorithm``'s script on ``client`` at time ``now`` (µs)."""
    args = [*algorithm.args(), cost, 1 if consume else 0, now // S, now % S]
    reply = client.eval(timed(algorithm), 1, key, *args)
    return Verdict(*(int(x) for x in reply))


@dataclass
class Twin:
    """An algorithm's twin holding one key's state, stepped like the script."""

    algorithm: Algorithm
    state: Any = None

    def step(self, now: int, cost: int, consume: bool) -> Verdict:
        step = self.algorithm.step(self.state, now, cost, consume)
        if step.state is not None:
            self.state = step.state
        return step.verdict


Step = tuple[int, int, bool, tuple[int, int, int, int]]
HIT, PEEK = True, False


@dataclass
class Case:
    name: str
    make: Callable[[], Algorithm]
    steps: list[Step]


CASES = [
    Case(
        "fixed window: a window from the first hit, denials take nothing",
        lambda: FixedWindow(3, 10),
        [
            (0, 1, PEEK, (1, 3, 0, 0)),
            (0, 1, HIT, (1, 2, 10 * S, 0)),
            (1 * S, 2, HIT, (1, 0, 9 * S, 0)),
            (2 * S, 1, HIT, (0, 0, 8 * S, 8 * S)),
            (2 * S, 1, PEEK, (0, 0, 8 * S, 8 * S)),
            (2 * S, 4, HIT, (0, 0, 8 * S, -1)),
            (2 * S, 0, HIT, (1, 0, 8 * S, 0)),
            (10 * S, 1, HIT, (1, 2, 10 * S, 0)),
            (10 * S, 0, PEEK, (1, 2, 10 * S, 0)),
        ],
    ),
    Case(
        "sliding log: exact over any window, one entry per hit, retry at the right entry",
        lambda: SlidingWindowLog(3, 10),
        [
            (0, 1, HIT, (1, 2, 10 * S, 0)),
            (1 * S, 2, HIT, (1, 0, 10 * S, 0)),  # one entry of cost 2
            (2 * S, 1, HIT, (0, 0, 9 * S, 8 * S)),
            (2 * S, 4, HIT, (0, 0, 9 * S, -1)),
            (10 * S, 1, HIT, (1, 0, 10 * S, 0)),
            (10 * S, 2, HIT, (0, 0, 10 * S, 1 * S)),
            (10 * S, 2, PEEK, (0, 0, 10 * S, 1 * S)),
            (30 * S, 3, PEEK, (1, 3, 0, 0)),
        ],
    ),
    Case(
        "sliding log: simultaneous hits get distinct stamps (one microsecond apart)",
        lambda: SlidingWindowLog(3, 10),
        [
            (0, 1, HIT, (1, 2, 10 * S, 0)),
            (0, 1, HIT, (1, 1, 10 * S + 1, 0)),
            (0, 1, HIT, (1, 0, 10 * S + 2, 0)),
            (0, 1, HIT, (0, 0, 10 * S + 2, 10 * S)),
        ],
    ),
    Case(
        "sliding log: costly hits, the retry waits for the entries the cost needs gone",
        lambda: SlidingWindowLog(10, 10),
        [
            (0, 3, HIT, (1, 7, 10 * S, 0)),
            (1 * S, 2, HIT, (1, 5, 10 * S, 0)),
            (2 * S, 4, HIT, (1, 1, 10 * S, 0)),
            (3 * S, 1, HIT, (1, 0, 10 * S, 0)),
            (4 * S, 6, HIT, (0, 0, 9 * S, 8 * S)),  # the 3, 2 and 4 must expire
            (11 * S, 5, HIT, (1, 0, 10 * S, 0)),  # the 3 and the 2 have
            (11 * S, 1, HIT, (0, 0, 10 * S, 1 * S)),
            (11 * S, 10, PEEK, (0, 0, 10 * S, 10 * S)),
        ],
    ),
    Case(
        "sliding counter: the previous window weighs by its unelapsed share",
        lambda: SlidingWindowCounter(10, 10),
        [
            (0, 6, HIT, (1, 4, 20 * S, 0)),
            (5 * S, 4, HIT, (1, 0, 15 * S, 0)),
            (5 * S, 1, HIT, (0, 0, 15 * S, 6 * S)),
            (15 * S, 5, HIT, (1, 0, 15 * S, 0)),
            (15 * S, 1, HIT, (0, 0, 15 * S, 1 * S)),
            (15 * S, 11, HIT, (0, 0, 15 * S, -1)),
            (40 * S, 1, PEEK, (1, 10, 0, 0)),
        ],
    ),
    Case(
        "sliding counter: two windows after the start, the old counts are gone",
        lambda: SlidingWindowCounter(10, 10),
        [
            (0, 1, HIT, (1, 9, 20 * S, 0)),
            (20 * S, 1, HIT, (1, 9, 20 * S, 0)),
            (25 * S, 1, PEEK, (1, 9, 15 * S, 0)),
        ],
    ),
    Case(
        "token bucket: continuous refill below one token per second",
        lambda: TokenBucket(2, 0.5),
        [
            (0, 1, HIT, (1, 1, 2 * S, 0)),
            (0, 1, HIT, (1, 0, 4 * S, 0)),
            (1 * S, 1, HIT, (0, 0, 3 * S, 1 * S)),
            (2 * S, 1, HIT, (1, 0, 4 * S, 0)),
            (2 * S, 3, HIT, (0, 0, 4 * S, -1)),
            (100 * S, 1, PEEK, (1, 2, 0, 0)),
        ],
    ),
    Case(
        "GCRA: a burst, then one emission interval apart",
        lambda: GCRA(2, 1.0),
        [
            (0, 1, HIT, (1, 1, S // 2, 0)),
            (0, 1, HIT, (1, 0, 1 * S, 0)),
            (0, 1, HIT, (0, 0, 1 * S, S // 2)),
            (S // 2, 1, HIT, (1, 0, 1 * S, 0)),
            (S // 2, 3, HIT, (0, 0, 1 * S, -1)),
            (S // 2, 1, PEEK, (0, 0, 1 * S, S // 2)),
        ],
    ),
    Case(
        "GCRA: an emission interval that is not a whole microsecond keeps exact bursts",
        lambda: GCRA(3, 1.0),
        [
            (0, 1, HIT, (1, 2, 333_334, 0)),
            (0, 1, HIT, (1, 1, 666_667, 0)),
            (0, 1, HIT, (1, 0, 1 * S, 0)),
            (0, 1, HIT, (0, 0, 1 * S, 333_334)),
            (333_334, 1, HIT, (1, 0, 1 * S, 0)),
        ],
    ),
]


async def a_coroutine_function() -> int:
    """A coroutine function the generated sync tests can hand to the sync face (which must
    refuse it): written here because the generator turns ``async def`` in tests into ``def``."""
    return 7
