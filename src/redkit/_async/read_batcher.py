"""Read batching: concurrent GETs leave together as one MGET (auto-pipelining).

Async face: reads issued in the same event-loop turn go out as one MGET. Each caller waits
on its own future, so cancelling one never disturbs the others.

Sync face: the reads of concurrent threads. While one request is in flight, reads that
arrive wait and leave together as the next MGET, sent by one of them; an uncontended read is
a plain GET with no extra round trip and no timer. When a request returns, the next batch is
handed to one of its waiting threads first, then the request's threads are woken one by one
(each woken thread wakes the next, so they do not all contend for the GIL at once).

On both faces concurrent reads of one key share one request, a Cluster's MGET is grouped by
slot, and a failed request reaches every reader waiting on it. :meth:`ReadBatcher.detach` is
the read side of the write barrier: a write calls it for its keys once it has returned from
Redis, so a read that starts after the write can no longer join a request sent before it
(which may carry the old bytes). Reads still waiting to be sent need no detaching: they leave
after the write.
"""

from __future__ import annotations

from typing import Any

from redkit._acompat import ASYNC, Gate
from redkit.errors import BackendUnavailable

if ASYNC:
    import asyncio

    _Waiters = list[asyncio.Future[bytes | None]]
else:
    import os
    import threading
    import weakref
    from _thread import LockType, allocate_lock

    from redkit._lanes import lanes_for


async def _send(client: Any, cluster: bool, keys: list[str]) -> list[bytes | None]:
    """One GET, or one MGET (grouped by slot on a Cluster), for ``keys``."""
    if len(keys) == 1:
        return [await client.get(keys[0])]
    if cluster:
        return await client.mget_nonatomic(keys)  # type: ignore[no-any-return]
    return await client.mget(keys)  # type: ignore[no-any-return]


if ASYNC:

    class ReadBatcher:
        """Batches the GETs of one client. ``max_batch`` caps the keys of one MGET."""

        def __init__(
            self, client: Any, *, cluster: bool, gate: Gate, max_batch: int = 1000
        ) -> None:
            self._client = client
            self._cluster = cluster
            self._gate = gate
            self._max_batch = max_batch
            self._pending: dict[str, _Waiters] = {}
            self._inflight: dict[str, _Waiters] = {}
            self._tasks: set[asyncio.Task[None]] = set()

        async def get(self, key: str) -> bytes | None:
            """The bytes at ``key`` (None when missing); redis-py errors are raised as they are."""
            loop = asyncio.get_running_loop()
            future: asyncio.Future[bytes | None] = loop.create_future()
            waiters = self._inflight.get(key) or self._pending.get(key)
            if waiters is None:
                if not self._pending:
                    loop.call_soon(self._flush)
                waiters = self._pending[key] = []
            waiters.append(future)
            if len(self._pending) >= self._max_batch:
                self._flush()
            return await future

        def detach(self, key: str) -> None:
            """Make later reads of ``key`` go to Redis instead of joining one already sent."""
            self._inflight.pop(key, None)

        async def aclose(self) -> None:
            """Stop the batches in flight; their callers get BackendUnavailable."""
            while self._tasks:
                tasks = list(self._tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        def _flush(self) -> None:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            self._inflight.update(batch)
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        async def _run(self, batch: dict[str, _Waiters]) -> None:
            try:
                async with self._gate:
                    values = await _send(self._client, self._cluster, list(batch))
            except BaseException as exc:
                error = exc
                if isinstance(exc, asyncio.CancelledError):
                    error = BackendUnavailable("the read was abandoned: its cache was closed")
                for key, waiters in batch.items():
                    self._settle(key, waiters)
                    for future in waiters:
                        if not future.done():
                            future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise
                return
            for (key, waiters), value in zip(batch.items(), values, strict=True):
                self._settle(key, waiters)
                for future in waiters:
                    if not future.done():
                        future.set_result(value)

        def _settle(self, key: str, waiters: _Waiters) -> None:
            if self._inflight.get(key) is waiters:
                del self._inflight[key]

else:

    class _Slot:
        """The reads of one key in one batch: the outcome, and the locks their threads wait on.

        ``runner`` is set on the slot whose first waiter must send the batch ``batch``;
        ``chain``, once the outcome is in, holds the batch's threads still to be woken.
        """

        __slots__ = ("batch", "chain", "error", "runner", "value", "waiters")

        def __init__(self) -> None:
            self.value: bytes | None = None
            self.error: BaseException | None = None
            self.waiters: list[LockType] = []
            self.runner: LockType | None = None
            self.chain: list[LockType] | None = None
            self.batch: dict[str, _Slot] | None = None

    _BATCHERS: weakref.WeakSet[ReadBatcher] = weakref.WeakSet()

    class ReadBatcher:
        """Batches the GETs of one client's threads. ``max_batch`` caps the keys of one MGET.

        ``wait_timeout`` bounds how long a thread waits for a request another thread sent
        (None: as long as it takes); the sender always reports, so it is only a safety net.
        """

        def __init__(
            self,
            client: Any,
            *,
            cluster: bool,
            gate: Gate,
            max_batch: int = 1000,
            wait_timeout: float | None = 60.0,
        ) -> None:
            self._client = client
            self._cluster = cluster
            self._gate = gate
            self._max_batch = max_batch
            self._wait_timeout = -1 if wait_timeout is None else wait_timeout
            self._lanes = lanes_for(client)
            self._reset()
            _BATCHERS.add(self)

        def _reset(self) -> None:
            """Fresh state: at creation, and in a child process after ``os.fork()``."""
            self._lock = threading.Lock()
            self._running = False
            self._closed = False
            self._pending: dict[str, _Slot] = {}
            self._inflight: dict[str, _Slot] = {}

        def get(self, key: str) -> bytes | None:
            """The bytes at ``key`` (None when missing); redis-py errors are raised as they are."""
            with self._lock:
                if self._closed:
                    raise BackendUnavailable("the read was abandoned: its cache was closed")
                slot = self._inflight.get(key) or self._pending.get(key)
                if slot is None and not self._running:
                    self._running = True  # nothing in flight: send this read right away
                    slot = self._inflight[key] = _Slot()
                    waiter = None
                else:
                    if slot is None:
                        slot = self._pending[key] = _Slot()
                    waiter = allocate_lock()
                    waiter.acquire()
                    slot.waiters.append(waiter)
            if waiter is None:
                return self._run_alone(key, slot)
            batch = self._wait(slot, waiter)
            if batch is not None:
                self._run(batch)
            if slot.error is not None:
                raise slot.error
            return slot.value

        def _run_alone(self, key: str, slot: _Slot) -> bytes | None:
            """The uncontended read: a plain GET, then hand over what arrived meanwhile."""
            try:
                with self._gate:
                    value = self._send([key])[0]
            except BaseException as exc:
                self._complete({key: slot}, None, exc)  # every joined reader gets it too
                raise
            with self._lock:
                if self._inflight.get(key) is slot:
                    del self._inflight[key]
                if slot.waiters:
                    self._finish(slot, value, None)
                if self._pending:
                    self._hand_over()
                else:
                    self._running = False
            return value

        def detach(self, key: str) -> None:
            """Make later reads of ``key`` go to Redis instead of joining one already sent."""
            with self._lock:
                self._inflight.pop(key, None)

        def close(self) -> None:
            """Fail every waiting read with BackendUnavailable; later reads fail too."""
            error = BackendUnavailable("the read was abandoned: its cache was closed")
            with self._lock:
                self._closed = True
                for slot in (*self._pending.values(), *self._inflight.values()):
                    self._finish(slot, None, error)
                self._pending = {}
                self._inflight = {}

        def _wait(self, slot: _Slot, waiter: LockType) -> dict[str, _Slot] | None:
            """Wait for the slot's outcome; the batch to send if this thread was picked."""
            try:
                woken = waiter.acquire(timeout=self._wait_timeout)
            except BaseException as exc:  # interrupted (KeyboardInterrupt, in the main thread)
                self._abandon(slot, waiter, exc)
                raise
            if not woken:
                with self._lock:
                    if not waiter.acquire(blocking=False) and not self._off_chain(slot, waiter):
                        self._leave(slot, waiter)  # no answer yet: give up
                        raise BackendUnavailable(
                            f"a batched read got no answer within {self._wait_timeout}s"
                        )
            self._pass_on(slot)
            if slot.runner is waiter:
                return slot.batch
            return None

        def _pass_on(self, slot: _Slot) -> None:
            """Wake the next thread of a completed batch. Each woken thread wakes one more, so
            they take the GIL one after another instead of all contending for it at once."""
            chain = slot.chain
            if chain:
                try:  # noqa: SIM105 (a hot path: contextlib.suppress costs a context manager)
                    chain.pop().release()
                except IndexError:
                    pass

        def _off_chain(self, slot: _Slot, waiter: LockType) -> bool:
            """Whether the slot's outcome is in; if so, take ``waiter`` off the wake-up chain
            (or, if a thread has just popped it, wait for that thread's release)."""
            chain = slot.chain
            if chain is None:
                return False
            try:
                chain.remove(waiter)
            except ValueError:
                waiter.acquire()
            return True

        def _abandon(self, slot: _Slot, waiter: LockType, exc: BaseException) -> None:
            """A waiting thread was interrupted: the others must not wait on it."""
            with self._lock:
                woken = waiter.acquire(blocking=False) or self._off_chain(slot, waiter)
                if not woken:
                    self._leave(slot, waiter)
            if woken:
                self._pass_on(slot)
                if slot.runner is waiter and slot.batch is not None:  # picked to send
                    error = BackendUnavailable(
                        f"the thread picked to send the read stopped: {exc!r}"
                    )
                    self._complete(slot.batch, None, error)

        def _leave(self, slot: _Slot, waiter: LockType) -> None:
            """Take a waiter that gave up off its slot; drop a pending slot nobody waits on."""
            if waiter in slot.waiters:
                slot.waiters.remove(waiter)
            if not slot.waiters:
                for key, pending in list(self._pending.items()):
                    if pending is slot:
                        del self._pending[key]

        def _run(self, batch: dict[str, _Slot]) -> None:
            """Send ``batch``, hand its outcome to its readers, pass the next batch on."""
            values: list[bytes | None] | None = None
            error: BaseException | None = None
            try:
                with self._gate:
                    values = self._send(list(batch))
            except BaseException as exc:
                error = exc
            self._complete(batch, values, error)
            if error is not None and not isinstance(error, Exception):
                raise error

        def _send(self, keys: list[str]) -> list[bytes | None]:
            """:func:`_send`, on the client's lanes when it has them."""
            if self._lanes is None:
                return _send(self._client, self._cluster, keys)
            if len(keys) == 1:
                return [self._lanes.execute("GET", keys[0])]
            return self._lanes.execute("MGET", *keys)  # type: ignore[no-any-return]

        def _complete(
            self,
            batch: dict[str, _Slot],
            values: list[bytes | None] | None,
            error: BaseException | None,
        ) -> None:
            """Record the outcome of a sent batch and hand the next one over."""
            if error is None or isinstance(error, Exception):
                shared = error
            else:  # KeyboardInterrupt, SystemExit...: raised in the sending thread only
                shared = BackendUnavailable(f"the thread sending the read stopped: {error!r}")
            with self._lock:
                chain: list[LockType] = []  # the readers to wake: see _pass_on
                for index, (key, slot) in enumerate(batch.items()):
                    if self._inflight.get(key) is slot:
                        del self._inflight[key]
                    slot.value = None if values is None else values[index]
                    slot.error = shared
                    slot.chain = chain
                    chain.extend(slot.waiters)
                    slot.waiters = []
                self._hand_over()
                if chain:
                    chain.pop().release()

        def _finish(self, slot: _Slot, value: bytes | None, error: BaseException | None) -> None:
            """Record a slot's outcome and wake its waiting threads (under the lock)."""
            slot.value, slot.error = value, error
            for waiter in slot.waiters:
                waiter.release()
            slot.waiters = []

        def _hand_over(self) -> None:
            """Give the reads that arrived meanwhile to one of their threads (under the lock)."""
            if not self._pending or self._closed:
                self._running = False
                return
            if len(self._pending) <= self._max_batch:
                batch, self._pending = self._pending, {}
            else:
                keys = list(self._pending)[: self._max_batch]
                batch = {key: self._pending.pop(key) for key in keys}
            self._inflight.update(batch)
            first = next(iter(batch.values()))
            first.runner = first.waiters.pop(0)
            first.batch = batch
            first.runner.release()

    def _reset_after_fork() -> None:
        for batcher in list(_BATCHERS):
            batcher._reset()

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_after_fork)
