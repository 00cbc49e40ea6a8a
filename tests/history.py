"""Checks over a history of critical sections: (enter, exit, fencing token) per section.

Times come from ``time.monotonic_ns()``, which on Linux is one clock for every process, so
histories of several processes can be merged and compared.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

Section = tuple[int, int, int]


def assert_exclusive(history: Iterable[Section], expected: int | None = None) -> None:
    """No two sections overlap, and fencing tokens grow strictly in the order of entry."""
    sections = sorted(history)
    if expected is not None:
        assert len(sections) == expected, f"{len(sections)} sections, expected {expected}"
    for before, after in itertools.pairwise(sections):
        assert after[0] >= before[1], f"overlapping critical sections: {before} and {after}"
        assert after[2] > before[2], f"fencing token did not grow: {before} then {after}"
