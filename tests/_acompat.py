"""Test helpers that differ between the faces (async here, sync in ``_compat``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

FACE = "async"


async def run_concurrently(count: int, fn: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run ``fn(0) .. fn(count-1)`` as concurrent tasks; their results in order."""
    return list(await asyncio.gather(*(fn(i) for i in range(count))))


async def pause(seconds: float) -> None:
    """Yield to the other tasks for ``seconds``."""
    await asyncio.sleep(seconds)
