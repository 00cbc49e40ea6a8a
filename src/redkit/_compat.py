"""Sync primitives: the twins of ``_acompat`` used by the generated sync face."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

sleep = time.sleep
Lock = threading.Lock


def call_fetcher(fetcher: Callable[..., Any], *args: Any) -> Any:
    """Call a fetcher (a plain function in the sync face)."""
    return fetcher(*args)


class _Call:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """Runs one call per key at a time in this process; concurrent threads share its result."""

    def __init__(self) -> None:
        self._calls: dict[Hashable, _Call] = {}
        self._lock = threading.Lock()

    def do(self, key: Hashable, fn: Callable[[], T]) -> T:
        """The result of ``fn()``, run once for all threads that arrive while it runs."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.result  # type: ignore[no-any-return]
        try:
            call.result = fn()
            return call.result  # type: ignore[no-any-return]
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()


class ReadBatcher:
    """The sync face reads one key per round trip: a thread has nothing to batch with."""

    def __init__(self, client: Any, *, cluster: bool, max_batch: int = 1000) -> None:
        self.get: Callable[[str], bytes | None] = client.get

    def forget(self, key: str) -> None:
        """Nothing is shared between reads in the sync face."""
