"""Test helpers that differ between the faces (async here, sync in ``_compat``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redkit._acompat import Event

FACE = "async"

__all__ = [
    "FACE",
    "Event",
    "Gated",
    "Started",
    "hold_first_get",
    "intercept",
    "pause",
    "run_concurrently",
    "start",
    "wait_until",
]


async def run_concurrently(count: int, fn: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run ``fn(0) .. fn(count-1)`` as concurrent tasks; their results in order."""
    return list(await asyncio.gather(*(fn(i) for i in range(count))))


async def pause(seconds: float) -> None:
    """Yield to the other tasks for ``seconds``."""
    await asyncio.sleep(seconds)


class Started:
    """A call running concurrently (a task); ``await result()`` for its outcome."""

    def __init__(self, call: Callable[[], Awaitable[Any]]) -> None:
        self._task = asyncio.ensure_future(call())

    async def result(self, timeout: float = 10.0) -> Any:
        """The call's return value (or its exception), waiting at most ``timeout`` seconds."""
        return await asyncio.wait_for(asyncio.shield(self._task), timeout)

    def done(self) -> bool:
        return self._task.done()


def start(call: Callable[[], Awaitable[Any]]) -> Started:
    """Start ``call()`` concurrently with the test."""
    return Started(call)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (checked between turns), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


class Gated:
    """A fetcher that reports when it starts and returns only once released.

    Races are staged with it: ``await fetcher.started.wait()`` to know a fetch is in
    progress, ``fetcher.release.set()`` to let it finish.
    """

    def __init__(self, value: Any) -> None:
        self.value = value
        self.calls = 0
        self.started = Event()
        self.release = Event()

    async def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return self.value


Send = Callable[..., Awaitable[Any]]


def intercept(client: Any, make: Callable[[Send], Send]) -> Callable[[], None]:
    """Route every command ``client`` sends outside pipelines through ``make(real)``, which
    gets ``("GET", key)``-style arguments; returns the undo."""
    real = client.execute_command
    client.execute_command = make(real)

    def undo() -> None:
        client.execute_command = real

    return undo


def hold_first_get(client: Any, command: str = "GET") -> tuple[Event, Event, Callable[[], None]]:
    """Hold the first ``command`` (a GET unless told) ``client`` sends, once the server has
    answered it, until released: (answered, release, undo)."""
    answered, release = Event(), Event()

    def make(real: Send) -> Send:
        async def send(*args: Any, **kwargs: Any) -> Any:
            value = await real(*args, **kwargs)
            if args[0] == command and not answered.is_set():
                answered.set()
                await release.wait()
            return value

        return send

    return answered, release, intercept(client, make)
