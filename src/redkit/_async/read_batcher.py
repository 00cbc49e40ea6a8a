"""Read batching: concurrent GETs leave together as one MGET (auto-pipelining).

On the async face, reads issued in the same event-loop turn go out as one MGET (grouped by
slot on a Cluster). Concurrent reads of one key share one request. Each caller waits on its
own future, so cancelling one never disturbs the others.

:meth:`ReadBatcher.detach` is the read side of the write barrier: a write calls it for its keys
once it has returned from Redis, so a read that starts after the write can no longer join a
request sent before it (which may carry the old bytes). Reads still being collected need no
detaching: they are sent after the write.
"""

from __future__ import annotations

from typing import Any

from redkit._acompat import ASYNC, Gate

if ASYNC:
    import asyncio

    from redkit.errors import BackendUnavailable

    _Waiters = list[asyncio.Future[bytes | None]]


class ReadBatcher:
    """Batches the GETs of one client. ``max_batch`` caps the keys of one MGET."""

    def __init__(self, client: Any, *, cluster: bool, gate: Gate, max_batch: int = 1000) -> None:
        self._client = client
        self._cluster = cluster
        self._gate = gate
        self._max_batch = max_batch
        if ASYNC:
            self._pending: dict[str, _Waiters] = {}
            self._inflight: dict[str, _Waiters] = {}
            self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> bytes | None:
        """The bytes at ``key`` (None when missing); redis-py errors are raised as they are."""
        if ASYNC:
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
        else:
            with self._gate:
                return self._client.get(key)  # type: ignore[no-any-return]

    def detach(self, key: str) -> None:
        """Make later reads of ``key`` go to Redis instead of joining one already sent."""
        if ASYNC:
            self._inflight.pop(key, None)

    async def aclose(self) -> None:
        """Stop the batches in flight; their callers get BackendUnavailable."""
        if ASYNC:
            while self._tasks:
                tasks = list(self._tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    if ASYNC:

        def _flush(self) -> None:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            self._inflight.update(batch)
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        async def _run(self, batch: dict[str, _Waiters]) -> None:
            keys = list(batch)
            try:
                async with self._gate:
                    if len(keys) == 1:
                        values = [await self._client.get(keys[0])]
                    elif self._cluster:
                        values = await self._client.mget_nonatomic(keys)
                    else:
                        values = await self._client.mget(keys)
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
