"""Test helpers that differ between the faces (sync here, async in ``_acompat``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

FACE = "sync"


def run_concurrently(count: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(0) .. fn(count-1)`` in ``count`` threads at once; their results in order."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(fn, range(count)))


def pause(seconds: float) -> None:
    """Let the other threads run for ``seconds``."""
    time.sleep(seconds)
