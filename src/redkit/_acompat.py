"""Async primitives: the few pieces hand-written twice (see ``_compat`` for the sync twins).

Everything in ``redkit._async`` is written against these names; the sync face, generated from
it, imports the same names from ``redkit._compat``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

sleep = asyncio.sleep
Lock = asyncio.Lock


async def call_fetcher(fetcher: Callable[..., Any], *args: Any) -> Any:
    """Call a fetcher that may be a plain function or a coroutine function."""
    result = fetcher(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class AsyncSingleFlight:
    """Runs one call per key at a time in this process; concurrent callers share its result."""

    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Future[Any]] = {}

    async def do(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        """The result of ``fn()``, run once for all callers that arrive while it runs."""
        running = self._calls.get(key)
        if running is not None:
            return await asyncio.shield(running)  # type: ignore[no-any-return]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[key] = future
        try:
            result = await fn()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: followers may be none
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._calls[key]


class AsyncReadBatcher:
    """Auto-pipelining GET: reads issued in the same event-loop turn go out as one MGET.

    Concurrent reads of one key share one request in flight. Each caller waits on its own
    future, so cancelling one caller never disturbs the others. ``forget(key)`` detaches a key
    from reads already in flight, so a read that follows a write never returns older bytes.
    """

    def __init__(self, client: Any, *, cluster: bool, max_batch: int = 1000) -> None:
        self._client = client
        self._cluster = cluster
        self._max_batch = max_batch
        self._pending: dict[str, list[asyncio.Future[bytes | None]]] = {}
        self._inflight: dict[str, list[asyncio.Future[bytes | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> bytes | None:
        """The bytes at ``key`` (None when missing), fetched with whatever else is waiting."""
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

    def forget(self, key: str) -> None:
        """Make later reads of ``key`` go to Redis instead of joining one already in flight."""
        self._inflight.pop(key, None)

    def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        self._inflight.update(batch)
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: dict[str, list[asyncio.Future[bytes | None]]]) -> None:
        keys = list(batch)
        try:
            if len(keys) == 1:
                values = [await self._client.get(keys[0])]
            elif self._cluster:
                values = await self._client.mget_nonatomic(keys)
            else:
                values = await self._client.mget(keys)
        except BaseException as exc:
            for key, waiters in batch.items():
                self._settle(key, waiters)
                for future in waiters:
                    if not future.done():
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (key, waiters), value in zip(batch.items(), values, strict=True):
            self._settle(key, waiters)
            for future in waiters:
                if not future.done():
                    future.set_result(value)

    def _settle(self, key: str, waiters: list[asyncio.Future[bytes | None]]) -> None:
        if self._inflight.get(key) is waiters:
            del self._inflight[key]
