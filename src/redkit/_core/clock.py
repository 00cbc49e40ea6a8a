"""Clocks, injected wherever time matters so tests can drive them.

Only durations are measured in the process (``monotonic``); where several clients compare
timestamps, redkit reads the server's clock (``TIME`` inside a script) instead.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic time in seconds, for durations and deadlines."""

    def monotonic(self) -> float: ...


class SystemClock:
    """The real monotonic clock of this process."""

    monotonic = staticmethod(time.monotonic)


SYSTEM_CLOCK: Clock = SystemClock()
