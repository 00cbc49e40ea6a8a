"""Sync primitives: the twins of ``_acompat``, used by the generated sync face.

Same names and signatures as ``redkit._acompat`` (a test checks it); threads stand in for
tasks. Only primitives live here; algorithms live in ``redkit._async`` and are generated.
"""

from __future__ import annotations

import functools
import inspect
import logging
import operator
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from redkit.errors import ConfigurationError

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
ASYNC = False

sleep = time.sleep


def call_fetcher(fetcher: Callable[[], Any]) -> Any:
    """Call a fetcher; one that returns an awaitable is refused (nothing would await it)."""
    result = fetcher()
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # no "coroutine was never awaited" warning on top of the error
        raise ConfigurationError(
            f"the fetcher returned an awaitable ({type(result).__name__}): the sync face "
            "cannot await it; use redkit.asyncio, or return the value itself"
        )
    return result


def check_fetcher(fetcher: object) -> None:
    """Refuse a fetcher that cannot be called, or one the sync face could not await."""
    if not callable(fetcher):
        raise ConfigurationError(f"the fetcher must be callable, got {fetcher!r}")
    if inspect.iscoroutinefunction(fetcher):
        raise ConfigurationError(
            f"{fetcher!r} is a coroutine function: the sync face cannot await it; "
            "use redkit.asyncio, or pass a plain function"
        )


def race(fns: Sequence[Callable[[], Any]], interrupt: Callable[[], None]) -> None:
    """Run ``fns`` concurrently until the first one ends; stop the others; re-raise the
    first one's error, if it failed.

    The first runs in this thread, the others in threads of their own. When one ends,
    ``interrupt()`` is called (from its thread): it must make the others return (close their
    sockets, set the event they wait on); then every thread is joined.
    """
    lock = threading.Lock()
    outcome: list[BaseException | None] = []

    def run(fn: Callable[[], Any]) -> None:
        error: BaseException | None = None
        try:
            fn()
        except BaseException as exc:
            error = exc
        with lock:
            first = not outcome
            if first:
                outcome.append(error)
        if first:
            interrupt()

    threads = [
        threading.Thread(target=run, args=(fn,), name="redkit race", daemon=True) for fn in fns[1:]
    ]
    for thread in threads:
        thread.start()
    try:
        if fns:
            run(fns[0])
    finally:
        for thread in threads:
            thread.join()
    if outcome and outcome[0] is not None:
        raise outcome[0]


def gather_within(
    fns: Sequence[Callable[[], Any]],
    budget: float | None,
    background: Background,
    late: Callable[[int, Any], Any] | None = None,
) -> list[Any]:
    """Run ``fns`` at once, each in a thread, for at most ``budget`` seconds (None: until
    they all end).

    Returns, for each, its result, the exception it raised, or a :class:`TimeoutError` when
    it had not ended in time. A call that had not keeps running in its thread; when it ends,
    ``late(index, outcome)`` runs in that thread (outcome: its result or exception).
    ``background`` is unused here (kept for the async twin's signature): a late call is a
    daemon thread bounded by its client's socket timeout, and ``close()`` does not wait for it.
    """
    pending = object()
    outcomes: list[Any] = [pending] * len(fns)
    state = {"open": True, "left": len(fns)}
    cond = threading.Condition()

    def run(index: int, fn: Callable[[], Any]) -> None:
        try:
            outcome = fn()
        except BaseException as exc:
            outcome = exc
        with cond:
            in_time = state["open"]
            if in_time:
                outcomes[index] = outcome
                state["left"] -= 1
                cond.notify()
        if not in_time and late is not None:
            try:
                late(index, outcome)
            except Exception:
                logger.exception("%s: late reply handler failed", background.name)

    for index, fn in enumerate(fns):
        threading.Thread(
            target=run, args=(index, fn), name=f"redkit {background.name} call", daemon=True
        ).start()
    with cond:
        try:
            cond.wait_for(lambda: state["left"] == 0, timeout=budget)
        finally:
            state["open"] = False
    return [
        TimeoutError(f"no answer within {budget}s") if outcome is pending else outcome
        for outcome in outcomes
    ]


class Gate:
    """Lets at most ``limit`` threads in at once; the others wait their turn, for at most
    ``timeout`` seconds (None: as long as it takes), then get ``queue.Empty`` (the store
    translates it to :class:`~redkit.errors.BackendBusy`).

    The permits live in a ``queue.SimpleQueue`` (implemented in C): taking and returning one
    costs about a tenth of a ``threading.BoundedSemaphore`` round. ``with gate:`` calls that
    queue's ``get`` and ``put`` directly (``__enter__`` and ``__exit__`` hand out the C
    methods), so no Python line runs between taking a permit and entering
    the block, or between leaving it and returning the permit: an exception from a signal
    handler can never land there and leak a permit.
    """

    __slots__ = ("_put", "_take", "_tokens", "limit", "timeout")

    # Properties over C attribute getters: ``with`` looks both up before taking a permit,
    # then calls what they return (C methods: the queue's get, with the timeout, and put,
    # which takes the exception triple as its item, block and timeout, and ignores the last
    # two).
    __enter__: Any = property(operator.attrgetter("_take"))
    __exit__: Any = property(operator.attrgetter("_put"))

    def __init__(self, limit: int, timeout: float | None = None) -> None:
        self.limit = limit
        self.timeout = timeout
        self._tokens: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._take = functools.partial(self._tokens.get, True, timeout)
        self._put = self._tokens.put
        for _ in range(limit):
            self._tokens.put(None)


class Event:
    """A flag that threads can wait for, with an optional timeout."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._event.set()

    def clear(self) -> None:
        """Clear the flag."""
        self._event.clear()

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` seconds pass; whether it is set."""
        return self._event.wait(timeout)


class Background:
    """Background work owned by one object: started with :meth:`spawn`, ended by :meth:`close`.

    ``spawn`` runs ``fn()`` in a daemon thread; ``cleanup`` runs inline (a thread cannot be
    cancelled halfway, so its caller can finish the job itself). Errors are logged. ``close``
    waits for the threads: their functions must watch a stop event the owner sets first.
    """

    __slots__ = ("_lock", "_threads", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def spawn(self, fn: Callable[[], Any], what: str) -> None:
        """Run ``fn()`` in a background thread."""
        thread = threading.Thread(
            target=self._guard, args=(fn, what), name=f"redkit {self.name} {what}", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def cleanup(self, fn: Callable[[], Any], what: str) -> None:
        """Run ``fn()`` now, logging (not raising) its failure."""
        try:
            fn()
        except Exception:
            logger.exception("%s: %s failed", self.name, what)

    def shielded(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``'s result (a thread is not cancelled halfway: it simply runs ``fn``)."""
        return fn()

    @property
    def running(self) -> int:
        """How many background threads have not finished yet."""
        with self._lock:
            return len(self._threads)

    def drain(self) -> None:
        """Wait for the background threads running now (and those they start) to finish."""
        while True:
            with self._lock:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            if not threads:
                return
            for thread in threads:
                thread.join()

    def close(self) -> None:
        """Wait until every background thread has ended (their owner has told them to stop)."""
        self.drain()

    def _guard(self, fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except Exception:
            logger.exception("%s: background %s failed", self.name, what)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())


class SharedCall(Generic[T]):
    """One call of ``fn`` that several threads await together (single-flight).

    The first thread to join runs ``fn`` itself; the others wait for its result (or its
    exception). ``on_done`` is called with the call once it has ended. ``background`` is
    unused here (the call runs in a caller's thread), kept for the async twin's signature.

    Interrupts: the threads queue on a lock entered with ``with``, whose release is a C call
    that no exception can skip, so waiters are always let through. A call whose thread was
    interrupted (an exception from a signal handler that is not an ``Exception``, such as
    KeyboardInterrupt, at any line) has not ended: the next waiter runs ``fn`` itself.
    """

    __slots__ = ("_busy", "_ended", "_error", "_fn", "_on_done", "_result")

    def __init__(
        self,
        fn: Callable[[], T],
        on_done: Callable[[SharedCall[T]], None],
        background: Background,
    ) -> None:
        self._fn = fn
        self._on_done = on_done
        self._busy = threading.Lock()
        self._ended = False
        self._result: Any = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        """Whether the call has ended (a caller that finds it so starts a new one)."""
        return self._ended

    def join(self) -> T:
        """The call's result (or its exception), shared with every other caller."""
        with self._busy:
            if not self._ended:
                try:
                    self._result = self._fn()
                except Exception as exc:
                    self._error = exc
                self._ended = True
                self._on_done(self)
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[no-any-return]
