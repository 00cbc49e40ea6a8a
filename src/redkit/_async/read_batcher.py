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

        ``chain`` is None until the outcome is in; then it holds the slot's threads still to
        be woken (each woken thread wakes the next). ``runner`` is set on the slot whose
        waiter was picked to send the batch ``batch``.
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

        Interrupts: an exception from a signal handler (KeyboardInterrupt, a job timeout) can
        land between any two lines in the main thread. Every step that changes the shared
        state is idempotent and a thread that stops halfway finishes its share in
        ``_recover`` (the batch it was sending fails with BackendUnavailable; a waiter leaves
        its slot and wakes the next), so no read ever waits for a thread that has gone.
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
            self._handing: dict[str, _Slot] | None = None  # a hand-over not finished yet

        def get(self, key: str) -> bytes | None:
            """The bytes at ``key`` (None when missing); redis-py errors are raised as they are."""
            slot: _Slot | None = None
            waiter: LockType | None = None
            batch: dict[str, _Slot] | None = None  # the batch this thread must send
            try:
                with self._lock:
                    if self._closed:
                        raise BackendUnavailable("the read was abandoned: its cache was closed")
                    slot = self._inflight.get(key) or self._pending.get(key)
                    if slot is None and not self._running:
                        fresh = _Slot()  # nothing in flight: send this read right away
                        batch = {key: fresh}
                        self._inflight[key] = slot = fresh
                        self._running = True
                    elif slot is None or slot.chain is None:
                        # `waiter` is known before it is registered: see _recover
                        waiter = allocate_lock()
                        waiter.acquire()
                        if slot is None:
                            fresh = _Slot()
                            fresh.waiters.append(waiter)
                            self._pending[key] = slot = fresh
                        else:
                            slot.waiters.append(waiter)
                if waiter is not None:
                    batch = self._wait(slot, waiter)
                if batch is not None:
                    values = self._run(batch)
                    if values is not None:  # sent by this thread: its answer, whatever came since
                        return values[list(batch).index(key)]
            except BaseException as exc:
                self._recover(slot, waiter, batch, exc)
                raise
            if slot.error is not None:
                raise slot.error
            return slot.value

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
                    if slot.chain is None:
                        slot.value, slot.error = None, error
                        slot.chain = []
                    for waiter in slot.waiters:
                        _wake(waiter)
                self._pending = {}
                self._inflight = {}

        def _wait(self, slot: _Slot, waiter: LockType) -> dict[str, _Slot] | None:
            """Wait for the slot's outcome; the batch to send if this thread was picked."""
            if not waiter.acquire(timeout=self._wait_timeout):
                with self._lock:
                    if slot.chain is None and slot.runner is not waiter:
                        self._leave(slot, waiter)  # no answer yet: give up
                        raise BackendUnavailable(
                            f"a batched read got no answer within {self._wait_timeout}s"
                        )
            if slot.runner is waiter and slot.chain is None:
                return slot.batch
            self._pass_on(slot, waiter)
            return None

        def _pass_on(self, slot: _Slot, me: LockType | None = None) -> None:
            """Wake the next thread of a completed slot (``me``: the calling thread's lock,
            taken off the chain first). Each woken thread wakes one more, so they take the GIL
            one after another instead of all contending for it at once.

            The next thread is woken before it leaves the chain (an interrupt in between
            leaves it there, woken, to be woken again harmlessly); a woken thread takes
            itself off, so a wake-up is never spent on a thread that has already gone."""
            chain = slot.chain
            if not chain:
                return
            if me is not None:
                try:  # noqa: SIM105 (a hot path: contextlib.suppress costs a context manager)
                    chain.remove(me)
                except ValueError:
                    pass
            try:
                waiter = chain[-1]
            except IndexError:
                return
            _wake(waiter)
            try:  # noqa: SIM105 (as above)
                chain.remove(waiter)
            except ValueError:
                pass

        def _recover(
            self,
            slot: _Slot | None,
            waiter: LockType | None,
            batch: dict[str, _Slot] | None,
            exc: BaseException,
        ) -> None:
            """Finish the share of a thread that stopped halfway through :meth:`get`."""
            if batch is None and slot is not None and slot.runner is waiter is not None:
                batch = slot.batch  # picked to send: the batch is this thread's
            if batch is not None:
                error = BackendUnavailable(f"the thread picked to send the read stopped: {exc!r}")
                self._complete(batch, None, error)
            elif slot is not None and waiter is not None:
                with self._lock:
                    self._leave(slot, waiter)

        def _leave(self, slot: _Slot, waiter: LockType) -> None:
            """Take a waiter that gave up off its slot (under the lock): drop a pending slot
            nobody waits on; once the outcome is in, wake the next thread in its place."""
            if waiter in slot.waiters:
                slot.waiters.remove(waiter)
            if slot.chain is not None:
                self._pass_on(slot, waiter)  # it may have been woken: wake the next instead
            elif not slot.waiters:
                for key, pending in list(self._pending.items()):
                    if pending is slot:
                        del self._pending[key]

        def _run(self, batch: dict[str, _Slot]) -> list[bytes | None] | None:
            """Send ``batch``, hand its outcome to its readers, pass the next batch on; the
            values (None if the request failed: the error is on the slots)."""
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
            return values

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
            """Record the outcome of a sent batch, hand the next one over, wake the readers.

            Idempotent (a slot's outcome is recorded once; a second hand-over only adds a
            sender), so a thread interrupted halfway through can run it again."""
            if error is None or isinstance(error, Exception):
                shared = error
            else:  # KeyboardInterrupt, SystemExit...: raised in the sending thread only
                shared = BackendUnavailable(f"the thread sending the read stopped: {error!r}")
            with self._lock:
                for index, (key, slot) in enumerate(batch.items()):
                    if slot.chain is None:
                        slot.value = None if values is None else values[index]
                        slot.error = shared
                        slot.chain = [w for w in slot.waiters if w is not slot.runner]
                    if self._inflight.get(key) is slot:
                        del self._inflight[key]
                self._hand_over()
                for slot in batch.values():
                    self._pass_on(slot)  # see _pass_on

        def _hand_over(self) -> None:
            """Give the reads that arrived meanwhile to one of their threads (under the lock).

            Resumable: the batch is kept in ``_handing`` until its sender has been woken."""
            while True:
                batch = self._handing
                if batch is None:
                    pending = self._pending
                    if not pending or self._closed:
                        self._running = False
                        return
                    keys = list(pending)[: self._max_batch]
                    batch = self._handing = {key: pending[key] for key in keys}
                self._inflight.update({k: v for k, v in batch.items() if v.chain is None})
                for key in batch:
                    self._pending.pop(key, None)
                first = None
                for slot in batch.values():
                    if slot.waiters and slot.chain is None:
                        first = slot
                        break
                if first is None:  # every reader of it gave up: nothing to send
                    for key, slot in batch.items():
                        if self._inflight.get(key) is slot:
                            del self._inflight[key]
                    self._handing = None
                    continue
                if first.runner is None:
                    first.batch = batch
                    first.runner = first.waiters[0]
                _wake(first.runner)
                self._handing = None
                return

    def _wake(waiter: LockType) -> None:
        """Release a waiting thread's lock (once: a resumed step may try again)."""
        try:  # noqa: SIM105 (a hot path: contextlib.suppress costs a context manager)
            waiter.release()
        except RuntimeError:
            pass

    def _reset_after_fork() -> None:
        for batcher in list(_BATCHERS):
            batcher._reset()

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_after_fork)
