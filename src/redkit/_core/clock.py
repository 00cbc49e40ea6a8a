"""Clocks, injected wherever time matters so tests can drive them."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of time: ``monotonic()`` for durations, ``time()`` for wall-clock seconds."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The real clocks of this process."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


SYSTEM_CLOCK: Clock = SystemClock()
