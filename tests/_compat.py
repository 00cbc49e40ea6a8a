"""Test helpers that differ between the faces (sync here, async in ``_acompat``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from redkit._compat import Event
from redkit._lanes import lanes_for

FACE = "sync"

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


def run_concurrently(count: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(0) .. fn(count-1)`` in ``count`` threads at once; their results in order."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(fn, range(count)))


def pause(seconds: float) -> None:
    """Let the other threads run for ``seconds``."""
    time.sleep(seconds)


class Started:
    """A call running concurrently (a thread); ``result()`` for its outcome."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._future: Future[Any] = Future()
        threading.Thread(target=self._run, args=(call,), daemon=True).start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._future.set_result(call())
        except BaseException as exc:
            self._future.set_exception(exc)

    def result(self, timeout: float = 10.0) -> Any:
        """The call's return value (or its exception), waiting at most ``timeout`` seconds."""
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()


def start(call: Callable[[], Any]) -> Started:
    """Start ``call()`` concurrently with the test."""
    return Started(call)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (checked every millisecond), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


class Gated:
    """A fetcher that reports when it starts and returns only once released."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.calls = 0
        self.started = Event()
        self.release = Event()

    def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        self.release.wait()
        return self.value


Send = Callable[..., Any]


def intercept(client: Any, make: Callable[[Send], Send]) -> Callable[[], None]:
    """Route every command ``client`` sends outside pipelines through ``make(real)``, which
    gets ``("GET", key)``-style arguments; returns the undo. The client's lanes (the sync
    face's short path for GET, MGET and EVALSHA) are routed too."""
    real = client.execute_command
    client.execute_command = make(real)
    lanes = lanes_for(client)
    if lanes is not None:
        lanes.execute = make(lanes.execute)  # type: ignore[method-assign]

    def undo() -> None:
        client.execute_command = real
        if lanes is not None:
            del lanes.execute

    return undo


def hold_first_get(client: Any, command: str = "GET") -> tuple[Event, Event, Callable[[], None]]:
    """Hold the first ``command`` (a GET unless told) ``client`` sends, once the server has
    answered it, until released: (answered, release, undo)."""
    answered, release = Event(), Event()
    holds = [True]

    def make(real: Send) -> Send:
        def send(*args: Any, **kwargs: Any) -> Any:
            value = real(*args, **kwargs)
            if args[0] == command:
                try:
                    holds.pop()  # atomic: only the first GET is held
                except IndexError:
                    return value
                answered.set()
                release.wait()
            return value

        return send

    return answered, release, intercept(client, make)
