"""Script batching: concurrent script runs leave together as one pipeline (auto-pipelining).

Async face: the scripts run by callers in the same event-loop turn go out as one
non-transactional pipeline of EVALSHA (grouped by node on a Cluster); each caller waits on its
own future, so cancelling one never disturbs the others. A lone call is a plain EVALSHA. Each
script still runs atomically on the server; only the round trips are shared.

Sync face: each call is sent at once (threads share no event-loop turn).

Errors come back translated (:func:`redkit._translate.translate`), one per caller: a script
that failed fails its own caller only; a failed request fails every caller in it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redkit._acompat import ASYNC, Gate
from redkit._scripts import LuaScript
from redkit._translate import REDIS_ERRORS, translate

if ASYNC:
    import asyncio
    from collections.abc import Awaitable

    from redis.exceptions import NoScriptError

    from redkit.errors import BackendUnavailable

    Eval = Callable[[LuaScript, Sequence[str], Sequence[Any]], Awaitable[Any]]
    _Call = tuple[LuaScript, Sequence[str], Sequence[Any], asyncio.Future[Any]]

    class ScriptBatcher:
        """Batches the script runs of one store. ``max_batch`` caps one pipeline.

        ``eval`` runs one script (loading it first if needed); ``load`` makes sure a script is
        known to the server before a pipeline uses it by SHA.
        """

        def __init__(
            self,
            client: Any,
            *,
            gate: Gate,
            eval: Eval,
            load: Callable[[LuaScript], Awaitable[None]],
            max_batch: int = 1000,
        ) -> None:
            self._client = client
            self._gate = gate
            self._eval = eval
            self._load = load
            self._max_batch = max_batch
            self._pending: list[_Call] = []
            self._tasks: set[asyncio.Task[None]] = set()

        async def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
            """``script``'s result, sent with the other calls of this loop turn."""
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            if not self._pending:
                loop.call_soon(self._flush)
            self._pending.append((script, keys, args, future))
            if len(self._pending) >= self._max_batch:
                self._flush()
            return await future

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
            batch, self._pending = self._pending, []
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        async def _send(self, batch: list[_Call]) -> None:
            try:
                async with self._gate:
                    if len(batch) == 1:
                        script, keys, args, future = batch[0]
                        _settle(future, await self._eval(script, keys, args))
                        return
                    for script in {call[0] for call in batch}:
                        await self._load(script)
                    pipe = self._client.pipeline(transaction=False)
                    for script, keys, args, _ in batch:
                        # Through execute_command: redis-py's Cluster pipeline blocks its
                        # evalsha() method (scripts are per node).
                        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                    results: list[Any] = await pipe.execute(raise_on_error=False)
                    for (script, keys, args, future), result in zip(batch, results, strict=True):
                        if isinstance(result, NoScriptError):  # never ran: run it on its own
                            result = await self._eval(script, keys, args)
                        _settle(future, result)
            except BaseException as exc:
                error: BaseException = translate(exc) if isinstance(exc, REDIS_ERRORS) else exc
                if isinstance(exc, asyncio.CancelledError):
                    error = BackendUnavailable("the call was abandoned: its owner was closed")
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise

    def _settle(future: asyncio.Future[Any], result: Any) -> None:
        if future.done():  # its caller was cancelled
            return
        if isinstance(result, BaseException):
            future.set_exception(translate(result))
        else:
            future.set_result(result)

else:

    class ScriptBatcher:
        """Sync face: each call is sent at once (see the module docstring)."""

        def __init__(
            self,
            client: Any,
            *,
            gate: Gate,
            eval: Callable[[LuaScript, Sequence[str], Sequence[Any]], Any],
            load: Callable[[LuaScript], None],
            max_batch: int = 1000,
        ) -> None:
            self._gate = gate
            self._eval = eval

        def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
            """``script``'s result; errors translated."""
            try:
                with self._gate:
                    return self._eval(script, keys, args)
            except REDIS_ERRORS as exc:
                raise translate(exc) from exc

        def close(self) -> None:
            """Nothing to stop on the sync face."""
