"""Async primitives: the few pieces hand-written twice (``_compat`` holds the sync twins).

Everything in ``redkit._async`` is written against these names; the sync face, generated from
it, imports the same names from ``redkit._compat``. Only primitives live here (sleeping,
calling a fetcher, a concurrency gate, an event, background work, a shared call); algorithms
live in ``redkit._async``. A test checks that both modules export the same names with the
same signatures.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from redkit.errors import BackendBusy, ConfigurationError

T = TypeVar("T")

logger = logging.getLogger("redkit")

__all__ = [
    "ASYNC",
    "Background",
    "Event",
    "Gate",
    "SharedCall",
    "call_fetcher",
    "check_fetcher",
    "gather_within",
    "race",
    "sleep",
]

#: Which face this is; ``if ASYNC:`` blocks in ``redkit._async`` are resolved by the
#: generator, and mypy (``always_true``) checks only their async side.
ASYNC = True

sleep = asyncio.sleep


async def call_fetcher(fetcher: Callable[[], Any]) -> Any:
    """Call a fetcher that may be a plain function or a coroutine function."""
    result = fetcher()
    if inspect.isawaitable(result):
        result = await result
    return result


def check_fetcher(fetcher: object) -> None:
    """Refuse a fetcher that cannot be called (any callable may return an awaitable here)."""
    if not callable(fetcher):
        raise ConfigurationError(f"the fetcher must be callable, got {fetcher!r}")


async def race(fns: Sequence[Callable[[], Awaitable[Any]]], interrupt: Callable[[], None]) -> None:
    """Run ``fns`` concurrently until the first one ends; stop the others; re-raise the
    first one's error, if it failed.

    Here the others are cancelled (after ``interrupt()``, called in both faces); on the sync
    face ``interrupt`` is what makes them return (close their sockets, set their event).
    """
    tasks = [asyncio.ensure_future(fn()) for fn in fns]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        interrupt()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = next(iter(done))
    if not first.cancelled() and first.exception() is not None:
        raise first.exception()  # type: ignore[misc]


async def gather_within(
    fns: Sequence[Callable[[], Awaitable[Any]]],
    budget: float | None,
    background: Background,
    late: Callable[[int, Any], Awaitable[Any]] | None = None,
) -> list[Any]:
    """Run ``fns`` at once for at most ``budget`` seconds (None: until they all end).

    Returns, for each, its result, the exception it raised, or a :class:`TimeoutError` when
    it had not ended in time. A call that had not keeps running on ``background`` (here a
    task it owns; a thread on the sync face); when it ends, ``late(index, outcome)`` runs
    there (outcome: its result or exception). If the caller is cancelled meanwhile, every
    call still running becomes late in the same way.
    """
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(fn()) for fn in fns]
    results: list[Any] = []
    try:
        if tasks and (budget is None or budget > 0):
            await asyncio.wait(tasks, timeout=budget)
    finally:
        for index, task in enumerate(tasks):
            if task.done():
                results.append(_outcome(task))
                continue
            results.append(TimeoutError(f"no answer within {budget}s"))
            background._adopt(task)  # type: ignore[arg-type]
            task.add_done_callback(functools.partial(_ended_late, index, background, late))
    return results


def _outcome(task: asyncio.Future[Any]) -> Any:
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception() or task.result()


def _ended_late(
    index: int,
    background: Background,
    late: Callable[[int, Any], Awaitable[Any]] | None,
    task: asyncio.Future[Any],
) -> None:
    outcome = _outcome(task)
    if late is not None:
        background.spawn(lambda: late(index, outcome), "late reply")


class Gate:
    """Lets at most ``limit`` callers in at once; the others wait their turn (FIFO), for at
    most ``timeout`` seconds (None: as long as it takes), then get
    :class:`~redkit.errors.BackendBusy`.

    Not bound to an event loop (unlike ``asyncio.Semaphore`` before first use), so one gate
    can serve a client used from several loops in turn.
    """

    __slots__ = ("_free", "_waiters", "limit", "timeout")

    def __init__(self, limit: int, timeout: float | None = None) -> None:
        self.limit = limit
        self.timeout = timeout
        self._free = limit
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._release()  # granted and cancelled at once: pass the turn on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise BackendBusy(
                    f"no connection of the pool came free within {self.timeout}s "
                    f"({self.limit} of redkit's commands in flight)"
                ) from None
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class Event:
    """A flag that callers can wait for, with an optional timeout."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._event.set()

    def clear(self) -> None:
        """Clear the flag."""
        self._event.clear()

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` seconds pass; whether it is set."""
        if timeout is None:
            await self._event.wait()
            return True
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return self._event.is_set()
        return True


class Background:
    """Background work owned by one object: started with :meth:`spawn`, ended by :meth:`close`.

    ``spawn`` runs ``fn()`` as a task (a thread on the sync face). ``cleanup`` runs a short
    clean-up step that must happen even when its caller is being cancelled (releasing a lock
    after a cancelled fetch): as its own task here, inline on the sync face. Errors of either
    are logged, never lost silently. ``close`` cancels what still runs and waits for it.
    """

    __slots__ = ("_tasks", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, fn: Callable[[], Awaitable[Any]], what: str) -> None:
        """Run ``fn()`` in the background until it returns or :meth:`close` is called."""
        self._adopt(asyncio.get_running_loop().create_task(self._guard(fn, what)))

    def _adopt(self, task: asyncio.Task[Any]) -> None:
        """Count ``task`` as this owner's background work (drained and cancelled with it)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cleanup(self, fn: Callable[[], Awaitable[Any]], what: str) -> None:
        """Run ``fn()`` to completion even if the caller is cancelled meanwhile."""
        self.spawn(fn, what)

    async def shielded(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        """``fn()``'s result; if the caller is cancelled meanwhile, ``fn()`` still runs to
        its end in the background (a lock release must not stop halfway)."""
        task: asyncio.Task[T] = asyncio.get_running_loop().create_task(fn())  # type: ignore[arg-type]
        self._adopt(task)
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    @property
    def running(self) -> int:
        """How many background jobs have not finished yet."""
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait for the background jobs running now (and those they start) to finish."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel every background job and wait until they have all ended."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _guard(self, fn: Callable[[], Awaitable[Any]], what: str) -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s: background %s failed", self.name, what)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a shielded task's outcome as seen: its caller may have been cancelled."""
    if not task.cancelled():
        task.exception()


class SharedCall(Generic[T]):
    """One call of ``fn`` that several callers await together (single-flight).

    ``fn`` runs in its own task, so cancelling one caller, the first one included, never
    cancels the call for the others. When every caller has gone (all cancelled), the call is
    cancelled too, so the work behind it stops and its clean-up runs; it belongs to
    ``background`` until it ends. ``on_done`` is called
    with the call once it has ended, however it ended, or has been abandoned (it may then be
    called twice).
    """

    __slots__ = ("_on_done", "_task", "_waiters")

    def __init__(
        self,
        fn: Callable[[], Awaitable[T]],
        on_done: Callable[[SharedCall[T]], None],
        background: Background,
    ) -> None:
        self._waiters = 0
        self._on_done = on_done
        self._task: asyncio.Task[T] = asyncio.get_running_loop().create_task(fn())  # type: ignore[arg-type]
        self._task.add_done_callback(self._finished)
        # An abandoned call may still be finishing (redis-py can swallow a cancellation that
        # lands mid-command): its owner's close() must wait for it.
        background._adopt(self._task)

    @property
    def done(self) -> bool:
        """Whether the call has ended (a caller that finds it so starts a new one)."""
        return self._task.done()

    async def join(self) -> T:
        """The call's result (or its exception), shared with every other caller."""
        self._waiters += 1
        try:
            return await asyncio.shield(self._task)
        finally:
            self._waiters -= 1
            if self._waiters == 0 and not self._task.done():
                self._task.cancel()
                self._on_done(self)  # nobody waits: later callers must not join a dying call

    def _finished(self, task: asyncio.Task[T]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: the callers may all be gone
        self._on_done(self)
