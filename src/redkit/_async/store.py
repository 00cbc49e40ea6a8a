"""The store: a pattern's view of Redis, and the one door its commands go through.

A pattern owns one :class:`Store`. The store

- checks the client once (the right face, bytes responses),
- owns the key layout (a :class:`~redkit._core.keys.KeySpace`; companions are declared in
  ``keys.py``),
- reads through the read batcher, runs Lua scripts on the client or in a pipeline (EVALSHA,
  EVAL on NOSCRIPT), and translates every redis-py error at one point into ``redkit.errors``,
- keeps redkit's own commands within the client's connection pool (a gate per client), so a
  burst of misses waits its turn instead of exhausting the pool,
- runs single-flight calls, and
- is the write barrier: :meth:`write` and :meth:`write_many` detach the written keys from
  reads and single-flight calls already in flight, so whatever starts after a write returns
  never receives data from before it.

Background work (clean-ups after a cancelled call, retries) runs on :attr:`background` and
stops in :meth:`aclose`.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from redkit._acompat import ASYNC, Background, Gate, SharedCall
from redkit._async.invalidations import PendingInvalidations
from redkit._async.read_batcher import ReadBatcher
from redkit._async.script_batcher import ScriptBatcher
from redkit._core.events import Events
from redkit._core.keys import KeySpace
from redkit._redis_compat import decode_responses_of, pool_size
from redkit._scripts import LuaScript, script
from redkit._translate import REDIS_ERRORS, translate
from redkit.errors import BackendUnavailable, ConfigurationError

if ASYNC:
    import redis
    import redis.cluster

    _FACE = "redkit.asyncio"
    _EXPECTED = "a redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster"
    _OTHER_FACE: tuple[type, ...] = (redis.Redis, redis.cluster.RedisCluster)
    _OTHER_HINT = "a sync redis-py client: use the sync face (redkit.X) or redkit.asyncio.connect()"
else:
    import threading

    import redis.asyncio
    import redis.asyncio.cluster

    from redkit._lanes import lanes_for

    _FACE = "redkit"
    _EXPECTED = "a redis.Redis or redis.cluster.RedisCluster"
    _OTHER_FACE: tuple[type, ...] = (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster)
    _OTHER_HINT = "an asyncio client: use redkit.asyncio.X or redkit.connect()"

T = TypeVar("T")

if ASYNC:
    #: What :meth:`Store.flight` runs: a coroutine function on this face, a plain one on the other.
    Call = Callable[[], Awaitable[T]]
else:
    Call = Callable[[], T]

#: Share of a client's connection pool that redkit's commands may hold at once, and a cap
#: for pools that are unbounded in practice (redis-py before 8 defaults to 2**31).
_POOL_SHARE = 0.75
_MAX_GATE = 1024
#: Seconds a command may wait for its turn at the gate before BackendBusy.
GATE_TIMEOUT = 30.0
_GATES: weakref.WeakKeyDictionary[Any, Gate] = weakref.WeakKeyDictionary()
#: SHA1s of the scripts loaded (SCRIPT LOAD on every primary) through each client.
_LOADED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_SCAN_COUNT = 1000
_INVALIDATE = script("cache_invalidate")


def check_client(client: Any, pattern: str) -> bool:
    """Refuse a client this face cannot use; whether it is a Cluster client.

    A sync pattern given an asyncio client (or the reverse) would return without doing
    anything; a client that decodes responses would hand str where redkit needs bytes.
    """
    if isinstance(client, _OTHER_FACE):
        raise ConfigurationError(f"{_FACE}.{pattern} was given {_OTHER_HINT}")
    if not isinstance(client, Redis | RedisCluster):
        raise ConfigurationError(
            f"{_FACE}.{pattern} needs {_EXPECTED} (e.g. from {_FACE}.connect()), "
            f"got {type(client).__module__}.{type(client).__qualname__}"
        )
    if decode_responses_of(client):
        raise ConfigurationError(
            f"{_FACE}.{pattern} needs a client that returns bytes: this one was made with "
            "decode_responses=True; connect without it (redkit decodes values itself)"
        )
    return isinstance(client, RedisCluster)


def _gate_for(client: Any) -> Gate:
    """The gate shared by every redkit pattern on ``client``."""
    gate = _GATES.get(client)
    if gate is None:
        limit = min(_MAX_GATE, max(1, int(pool_size(client) * _POOL_SHARE)))
        gate = _GATES[client] = Gate(limit, timeout=GATE_TIMEOUT)
    return gate


class Store:
    """One pattern instance's view of Redis (see the module docstring).

    ``pattern`` names the pattern in errors; ``events`` is the pattern's event sink;
    ``batch_reads=False`` sends one GET per read.
    """

    def __init__(
        self,
        client: Any,
        keys: KeySpace,
        *,
        pattern: str,
        events: Events,
        batch_reads: bool = True,
    ) -> None:
        self.cluster = check_client(client, pattern)
        self.client = client
        self.keys = keys
        self.gate = _gate_for(client)
        self.background = Background(f"{pattern} {keys.prefix!r}")
        self.pending = PendingInvalidations(
            self._invalidate_now, background=self.background, events=events
        )
        self._pending_keys = self.pending.keys
        self._reader = (
            ReadBatcher(client, cluster=self.cluster, gate=self.gate) if batch_reads else None
        )
        self._flights: dict[str, SharedCall[Any]] = {}
        # redis-py's asyncio Cluster client routes its first commands before it has read
        # the slot map: concurrent first commands get MOVED, and the re-initialisation that
        # follows disconnects connections other commands are using (they fail, and replies
        # can go astray). The store initialises the client once, before its first command.
        self._cold = self.cluster
        self._loaded = _LOADED.setdefault(client, set())
        self._scripts = ScriptBatcher(client, gate=self.gate, eval=self._eval, load=self._load)
        if ASYNC:
            pass
        else:
            self._flights_lock = threading.Lock()
            self._lanes = lanes_for(client)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The bytes at ``key``, None when missing."""
        if self._pending_keys and key in self._pending_keys:
            await self._settle(key)
        if self._cold:
            await self._warm()
        try:
            if self._reader is not None:
                return await self._reader.get(key)
            async with self.gate:
                return await self.client.get(key)  # type: ignore[no-any-return]
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The bytes at each of ``keys``, in order, in one round trip (one per slot group)."""
        if self._pending_keys:
            for key in keys:
                if key in self._pending_keys:
                    await self._settle(key)
        if self._cold:
            await self._warm()
        try:
            async with self.gate:
                if self.cluster:
                    return await self.client.mget_nonatomic(keys)  # type: ignore[no-any-return]
                return await self.client.mget(keys)  # type: ignore[no-any-return]
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc

    async def scan(self, match: str) -> AsyncIterator[bytes]:
        """Every key matching ``match`` on every primary (SCAN, never KEYS)."""
        try:
            async for key in self.client.scan_iter(match=match, count=_SCAN_COUNT):
                yield key
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc

    # -- commands and scripts -----------------------------------------------------------------

    async def call(self, *command: Any) -> Any:
        """Run one command (``"SET", key, value, ...``) on the node owning its key."""
        if self._cold:
            await self._warm()
        try:
            async with self.gate:
                return await self.client.execute_command(*command)
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc

    async def _warm(self) -> None:
        """Initialise an asyncio Cluster client before the first command (see __init__)."""
        if ASYNC:
            try:
                await self.client.initialize()
            except REDIS_ERRORS as exc:
                raise translate(exc) from exc
        self._cold = False

    async def call_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run several commands in one pipeline (non-transactional, any slots); their
        results in order. An error answer to one is raised after the whole pipeline ran."""
        if not commands:
            return []
        if self._cold:
            await self._warm()
        try:
            async with self.gate:
                pipe = self.client.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)
                results: list[Any] = await pipe.execute(raise_on_error=False)
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc
        for result in results:
            if isinstance(result, BaseException):
                raise translate(result) from result
        return results

    async def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Run ``script`` atomically on the node owning ``keys`` (which share a slot)."""
        if self._cold:
            await self._warm()
        try:
            async with self.gate:
                return await self._eval(script, keys, args)
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc

    async def run_many(
        self, calls: Sequence[tuple[LuaScript, Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """Run several scripts in one pipeline (non-transactional); their results in order.

        A script the server does not know yet (NOSCRIPT) never ran: it is run again on its
        own, which loads it. Any other error is raised after the whole pipeline has run.
        """
        if not calls:
            return []
        if self._cold:
            await self._warm()
        try:
            for script, _, _ in calls:
                await self._load(script)
            async with self.gate:
                pipe = self.client.pipeline(transaction=False)
                for script, keys, args in calls:
                    # Through execute_command: redis-py's Cluster pipeline blocks its evalsha()
                    # method (scripts are per node); the NOSCRIPT re-run below loads them.
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                results: list[Any] = await pipe.execute(raise_on_error=False)
                for index, result in enumerate(results):
                    if isinstance(result, NoScriptError):
                        script, keys, args = calls[index]
                        results[index] = await self._eval(script, keys, args)
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc
        for result in results:
            if isinstance(result, BaseException):
                raise translate(result) from result
        return results

    async def run_batched(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[Any] = ()
    ) -> Any:
        """:meth:`run`, sent in one pipeline with the other calls of this event-loop turn
        (async face; see :mod:`redkit._async.script_batcher`); the sync face sends it at once.
        For hot paths where many callers run short scripts concurrently (rate limits)."""
        if self._cold:
            await self._warm()
        return await self._scripts.run(script, keys, args)

    async def _load(self, script: LuaScript) -> None:
        """Load ``script`` on every primary before its first EVALSHA through this client:
        concurrent first calls would otherwise all answer NOSCRIPT, and a burst of NOSCRIPT
        errors breaks redis-py's asyncio Cluster connections ("'NoneType' object has no
        attribute 'writelines'")."""
        if script.sha not in self._loaded:
            await self.client.script_load(script.source)
            self._loaded.add(script.sha)

    async def _eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        await self._load(script)
        try:
            if not ASYNC:  # noqa: SIM102 (a face block: gen_sync keeps its body, sync only)
                if self._lanes is not None:
                    return self._lanes.execute("EVALSHA", script.sha, len(keys), *keys, *args)
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.client.eval(script.source, len(keys), *keys, *args)

    # -- the write barrier --------------------------------------------------------------------

    async def write(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[Any] = (),
        *,
        entries: Sequence[str],
    ) -> Any:
        """Run a script that changes the entries ``entries``, then detach them (the barrier).

        The keys are detached even when the write fails or is cancelled: it may have
        reached Redis all the same.
        """
        try:
            return await self.run(script, keys, args)
        finally:
            self.detach(entries)

    async def write_many(
        self,
        calls: Sequence[tuple[LuaScript, Sequence[str], Sequence[Any]]],
        *,
        entries: Sequence[str],
    ) -> list[Any]:
        """:meth:`run_many` for scripts that change ``entries``, then detach them."""
        try:
            return await self.run_many(calls)
        finally:
            self.detach(entries)

    async def unlink(self, keys: Sequence[str | bytes], *, entries: Sequence[str]) -> int:
        """UNLINK ``keys`` (any slots), then detach ``entries``; how many existed."""
        if not keys:
            return 0
        try:
            async with self.gate:
                return int(await self.client.unlink(*keys))
        except REDIS_ERRORS as exc:
            raise translate(exc) from exc
        finally:
            self.detach(entries)

    def invalidate_later(self, key: str) -> bool:
        """Keep removing entry ``key`` (and its companions) in the background until Redis
        answers; whether it is remembered (False past the limit: see PendingInvalidations)."""
        return self.pending.add(key)

    async def _invalidate_now(self, key: str) -> None:
        await self.write(_INVALIDATE, [key, *self.keys.companions(key)], entries=[key])

    async def _settle(self, key: str) -> None:
        """Settle ``key``'s pending invalidation before reading it, or refuse to read it."""
        if not await self.pending.settle(key):
            raise BackendUnavailable(
                f"cache entry {key!r} may be stale and Redis still cannot be reached to remove it"
            )

    def detach(self, entries: Sequence[str]) -> None:
        """Make reads and single-flight calls that start now ignore those already in flight."""
        reader = self._reader
        if ASYNC:
            for key in entries:
                if reader is not None:
                    reader.detach(key)
                self._flights.pop(key, None)
        else:
            with self._flights_lock:
                for key in entries:
                    if reader is not None:
                        reader.detach(key)
                    self._flights.pop(key, None)

    # -- single-flight ------------------------------------------------------------------------

    async def flight(self, key: str, fn: Call[T]) -> T:
        """``fn()``'s result, computed once for every caller that asks for ``key`` meanwhile.

        Cancelling one caller does not cancel the call for the others; a write to ``key``
        (the barrier) makes later callers start a call of their own.
        """
        if ASYNC:
            call = self._flights.get(key)
            if call is None:
                call = self._flights[key] = SharedCall(fn, self._landed(key), self.background)
        else:
            with self._flights_lock:
                call = self._flights.get(key)
                if call is None or call.done:  # done: its clean-up was interrupted
                    call = self._flights[key] = SharedCall(fn, self._landed(key), self.background)
        return await call.join()  # type: ignore[no-any-return]

    def _landed(self, key: str) -> Callable[[SharedCall[Any]], None]:
        def landed(call: SharedCall[Any]) -> None:
            if ASYNC:
                if self._flights.get(key) is call:
                    del self._flights[key]
            else:
                with self._flights_lock:
                    if self._flights.get(key) is call:
                        del self._flights[key]

        return landed

    # -- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the read batches and background work of this store (not the client)."""
        self.pending.stop()
        if self._reader is not None:
            await self._reader.aclose()
        await self._scripts.aclose()
        await self.background.close()
