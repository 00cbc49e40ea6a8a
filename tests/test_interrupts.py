"""Interrupts on the sync face: an exception from a signal handler (KeyboardInterrupt, a
SIGALRM job timeout, Celery's soft time limit) can land between any two steps of redkit's
code. Shared state (the read batcher, the connection gate, the lanes, single-flight calls,
a lock's holds) must stay usable afterwards, for every thread.

The storm is deterministic: a ``sys.settrace`` hook in the main thread raises at the N-th
signal point inside redkit's own code (N drawn from a seeded generator; see ``Injector``),
while other threads keep using the same objects. Afterwards every pattern must answer
from several threads within a bounded join.
"""

from __future__ import annotations

import dis
import functools
import itertools
import linecache
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import pytest
import redis

import redkit
from redkit._lanes import lanes_for
from redkit.errors import RedkitError
from tests._compat import wait_until
from tests.servers import flush_all

SRC = str(Path(redkit.__file__).parent)
SEEDS = [1, 2, 3]
#: Injected interrupts per storm; each storm is also bounded in time (STORM_SECONDS).
INTERRUPTS = 1000
STORM_SECONDS = 12.0
#: How long one operation may take before the storm counts it as hung.
HANG_SECONDS = 10.0


class Interrupt(BaseException):
    """Like KeyboardInterrupt: not an Exception, so ``except Exception`` does not catch it."""


class SoftTimeLimit(Exception):
    """Like Celery's SoftTimeLimitExceeded: an Exception."""


class Hung(BaseException):
    """Raised by the watchdog alarm in an operation that did not return in time."""


@functools.cache
def _signal_points(code: CodeType) -> frozenset[int]:
    """The offsets in ``code`` where a signal handler can run: right after a call returns
    and at a backward jump (CPython checks for pending signals there, and at function entry,
    which the injector sees as a ``call`` event)."""
    table = dis._parse_exception_table(code)  # type: ignore[attr-defined]

    def handler(offset: int) -> int | None:
        return next((e.target for e in table if e.start <= offset < e.end), None)

    ops = list(dis.get_instructions(code))
    # The exception is raised at the instruction after the call: kept only where that has
    # the call's own handler (CPython reports it at the call, so a `return f()` inside a
    # `with` block still runs __exit__).
    found = {
        b.offset
        for a, b in itertools.pairwise(ops)
        if a.opname.startswith("CALL") and handler(a.offset) == handler(b.offset)
    }
    found.update(op.offset for op in ops if op.opname.startswith("JUMP_BACKWARD"))
    return frozenset(found)


class Injector:
    """Raises an interrupt at the N-th signal point in redkit's code, in this thread: at a
    function's entry, after a call to a C function returns, at a loop's backward jump. Those
    are the only places where CPython 3.11 runs a signal handler (and so where its exception
    can appear); redis-py's own code is left alone (its pool has windows of its own)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.injected = 0
        self._countdown = 0
        self._error: BaseException = Interrupt()
        self.where: tuple[str, int, str] | None = None
        self._python_callers: set[FrameType] = set()

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            called_python = frame in self._python_callers
            if called_python:
                self._python_callers.discard(frame)
            # after a call to a Python function the interpreter does not check for signals
            if called_python or frame.f_lasti not in _signal_points(frame.f_code):
                return self._local
        elif event != "call":
            return self._local
        self._countdown -= 1
        if self._countdown == 0:
            sys.settrace(None)
            frame.f_trace = None
            self.injected += 1
            self.where = (frame.f_code.co_filename, frame.f_lineno, event)
            raise self._error
        return self._local

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_back is not None:
            self._python_callers.add(frame.f_back)
        if not frame.f_code.co_filename.startswith(SRC):
            return None
        frame.f_trace_opcodes = True
        return self._local(frame, event, arg)

    def run(self, op: Callable[[], Any]) -> None:
        """Run ``op`` with one interrupt armed somewhere in it (it may finish first)."""
        self._countdown = self.rng.randrange(1, 400)
        self._error = Interrupt() if self.rng.random() < 0.5 else SoftTimeLimit()
        self._python_callers.clear()
        sys.settrace(self._global)
        try:
            op()
        except (Interrupt, SoftTimeLimit, RedkitError):
            pass
        finally:
            sys.settrace(None)


STACKS: list[str] = []


def _hung(signum: int, frame: Any) -> None:
    STACKS.append("".join(traceback.format_stack(frame)[-8:]))
    for ident, other in sys._current_frames().items():
        if ident != threading.get_ident():
            STACKS[-1] += f"--- thread {ident}\n" + "".join(traceback.format_stack(other)[-6:])
    raise Hung


@pytest.fixture
def url(standalone_server: Any) -> Iterator[str]:
    flush_all(standalone_server.url)
    previous = signal.signal(signal.SIGALRM, _hung)
    yield str(standalone_server.url)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


class Patterns:
    """One of each pattern on one client, and the operations the storm runs on them."""

    def __init__(self, client: Any) -> None:
        self.cache = redkit.CacheAside(client, "storm", on_error="raise")
        self.cache.set_many({i: i for i in range(20)})
        self.lock = redkit.Lock(client, "storm", ttl=0.5, timeout=2.0)
        self.limiter = redkit.FixedWindowLimiter(client, 1_000_000, 60)
        self.ops: list[Callable[[int], Any]] = [
            lambda i: self.cache.get(i % 20),
            lambda i: self.cache.get_or_fetch(100 + i % 5, lambda: i),
            lambda i: self.cache.set(i % 20, i % 20),
            lambda i: self.cache.get_many([i % 20, (i + 1) % 20]),
            lambda i: self.cache.invalidate(100 + i % 5),
            self.locked,
            lambda i: self.limiter.hit(f"k{i % 3}"),
        ]

    def locked(self, i: int) -> bool:
        if not self.lock.acquire():
            return False
        try:
            return True
        finally:
            self.lock.release()

    def check(self, i: int) -> None:
        """Every pattern answers, with the right value where there is one."""
        assert self.cache.get(i % 20) == i % 20
        assert self.cache.get_or_fetch(200 + i, lambda: i) == i
        self.cache.set(i % 20, i % 20)
        assert self.cache.get_many([i % 20]) == {i % 20: i % 20}
        assert self.locked(i)
        assert self.limiter.hit("check").allowed


def storm(seed: int, patterns: Patterns) -> tuple[int, list[str]]:
    """Interrupt the main thread's operations while helper threads run the same ones."""
    injector = Injector(seed)
    stop = threading.Event()
    problems: list[str] = []

    def helper(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        while not stop.is_set():
            op = rng.choice(patterns.ops)
            try:
                op(rng.randrange(1000))
            except (RedkitError, SoftTimeLimit):  # SoftTimeLimit: a flight led by the main thread
                pass
            except BaseException as exc:  # reported: the test fails on it
                problems.append(f"helper {n}: {exc!r}")
                return

    helpers = [threading.Thread(target=helper, args=(n,), daemon=True) for n in range(3)]
    for thread in helpers:
        thread.start()
    deadline = time.monotonic() + STORM_SECONDS
    try:
        while injector.injected < INTERRUPTS and time.monotonic() < deadline:
            op = injector.rng.choice(patterns.ops)
            signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
            try:
                injector.run(lambda op=op: op(injector.rng.randrange(1000)))  # type: ignore[misc]
            except Hung:
                problems.append(f"an operation hung after {injector.injected} interrupts")
                problems.extend(STACKS[-1:])
                break
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        stop.set()
        for thread in helpers:
            thread.join(HANG_SECONDS * 2)
            if thread.is_alive():
                stack = sys._current_frames().get(thread.ident or 0)
                where = "".join(traceback.format_stack(stack)[-8:]) if stack else ""
                problems.append(f"a helper thread hung:\n{where}")
    return injector.injected, problems


def answers_from_threads(patterns: Patterns, threads: int = 4) -> list[str]:
    """Run every pattern's check in several threads; what failed or did not end in time."""
    problems: list[str] = []

    def run(n: int) -> None:
        try:
            for i in range(5):
                patterns.check(n * 10 + i)
        except BaseException as exc:  # reported: the test fails on it
            problems.append(f"thread {n}: {exc!r}")

    workers = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 20
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            problems.append(f"{worker.name} did not answer within 20 s")
    return problems


def idle_connections(pool: Any) -> list[Any]:
    """The connections waiting in ``pool``: redis-py's pool, or the one that waits."""
    if isinstance(pool, redis.BlockingConnectionPool):
        return [conn for conn in pool.pool.queue if conn is not None]
    return list(pool._available_connections)


def in_use(pool: Any) -> int:
    """How many of ``pool``'s connections are checked out (lanes included)."""
    if isinstance(pool, redis.BlockingConnectionPool):
        return len(pool._connections) - len(idle_connections(pool))
    return len(pool._in_use_connections)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_pattern_answers_after_interrupts_at_random_moments(url: str, seed: int) -> None:
    client = redkit.connect(url)
    try:
        patterns = Patterns(client)
        injected, problems = storm(seed, patterns)
        assert problems == [], "\n".join(problems)
        # every connection and every permit is back (lanes idle or in the pool; gate full)
        pool, lanes, gate = client.connection_pool, lanes_for(client), patterns.cache.store.gate
        assert lanes is not None
        wait_until(lambda: in_use(pool) == len(lanes._idle), timeout=5)
        assert gate._tokens.qsize() == gate.limit, "a permit of the gate leaked"
        assert injected > 200, "too few interrupts landed: the storm tested little"
        late = answers_from_threads(patterns)
        assert late == [], "\n".join(late)
        patterns.check(0)  # the interrupted thread itself too
    finally:
        client.close()


def test_a_disconnect_interrupted_halfway_leaves_no_broken_connection(url: str) -> None:
    """redis-py's ``disconnect()`` resets the parser before it drops the socket: an interrupt
    in between leaves a connection that looks open and cannot read. redkit's connections
    finish such a disconnect, so the pool never hands that connection out."""
    from redis._parsers import _RESP3Parser

    client = redkit.connect(url)
    # the pure-Python parser: hiredis's happens to refuse a read without its reader
    client.connection_pool.connection_kwargs["parser_class"] = _RESP3Parser
    try:
        assert client.ping()
        conn = idle_connections(client.connection_pool)[0]

        def tracer(frame: FrameType, event: str, arg: Any) -> Any:
            if frame.f_code.co_name != "disconnect" or "redis" not in frame.f_code.co_filename:
                return None

            def local(frame: FrameType, event: str, arg: Any) -> Any:
                line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
                if event == "line" and "conn_sock = self._sock" in line:
                    sys.settrace(None)
                    raise Interrupt
                return local

            return local

        sys.settrace(tracer)
        try:
            with pytest.raises(Interrupt):
                conn.disconnect()
        finally:
            sys.settrace(None)
        for _ in range(3):
            assert client.ping()
            assert client.get("k") is None
    finally:
        client.close()
