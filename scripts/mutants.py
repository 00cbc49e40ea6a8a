"""Break each kernel guard on purpose and check that the suite notices.

Usage: ``python scripts/mutants.py [NAME ...]``. Each mutant is a text replacement in the
async source; the sync face is regenerated, the named tests run (both faces, standalone and
Cluster), and the source is restored. A mutant the tests do not kill is reported and the
script exits 1. Not part of ``make test`` (it takes a few minutes): run it after touching a
guard.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant(
        "no single-flight",
        "src/redkit/_async/store.py",
        "        if ASYNC:\n            call = self._flights.get(key)",
        "        return await fn()\n        if ASYNC:\n            call = self._flights.get(key)",
        ("tests/async_/test_kernel.py", "tests/sync/test_kernel.py"),
    ),
    Mutant(
        "write barrier does not detach reads",
        "src/redkit/_async/store.py",
        "                    reader.detach(key)",
        "                    pass",
        (
            "tests/async_/test_kernel.py::test_a_read_that_starts_after_a_write_never_joins_an_older_read",
        ),
    ),
    Mutant(
        "write barrier does not detach single-flight calls",
        "src/redkit/_async/store.py",
        "                self._flights.pop(key, None)",
        "                pass",
        (
            "tests/async_/test_kernel.py::test_a_fetch_that_starts_after_an_invalidation_never_joins_an_older_fetch",
        ),
    ),
    Mutant(
        "corrupt entries not logged",
        "src/redkit/_async/loader.py",
        '        self.logger.warning("corrupt cache entry %s treated as a miss: %s", key, exc)',
        "        pass",
        ("tests/async_/test_kernel.py", "tests/sync/test_kernel.py"),
    ),
    Mutant(
        "set_many does not revoke fill locks",
        "src/redkit/_async/cache_aside.py",
        "            calls.append((_SET, *set_call(",
        '            calls.append((script("plain_set"), *set_call(',
        ("tests/async_/test_kernel.py", "tests/sync/test_kernel.py"),
    ),
    Mutant(
        "fill ignores its lease",
        "src/redkit/lua/cache_fill.lua",
        "if redis.call('GET', KEYS[2]) ~= ARGV[1] then",
        "if false then",
        ("tests/async_/test_kernel.py", "tests/async_/test_write_through.py"),
    ),
    Mutant(
        "a cancelled fetch keeps its lock",
        "src/redkit/_async/loader.py",
        "            await self.release(lock, token)\n            raise\n        if value is None",
        "            raise\n        if value is None",
        ("tests/test_async_cancellation.py",),
    ),
    Mutant(
        "write-behind: no backlog check",
        "src/redkit/lua/wb_write.lua",
        "if limit > 0 and",
        "if false and",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: an unflushed entry expires",
        "src/redkit/lua/wb_write.lua",
        "redis.call('SET', KEYS[2], ARGV[2])",
        "redis.call('SET', KEYS[2], ARGV[2], 'PX', 60000)",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: acknowledged before the commit",
        "src/redkit/_async/write_behind_flusher.py",
        "            self._drop(shard)\n            return 0\n        try:",
        "            self._drop(shard)\n            return 0\n"
        "        await self._acknowledge(shard, batch, items)\n        try:",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: a held lease is taken",
        "src/redkit/lua/wb_lease.lua",
        "if holder or ARGV[4] ~= 'take' then",
        "if ARGV[4] ~= 'take' then",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: leases not renewed during a commit",
        "src/redkit/_async/write_behind_flusher.py",
        "        if not shards:\n            return\n        sent",
        "        if shards:\n            return\n        sent",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: new entries before claimed ones",
        "src/redkit/_async/write_behind_flusher.py",
        "        self.claiming = True",
        "        self.claiming = False",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: the first write of a batch wins",
        "src/redkit/_core/write_behind.py",
        "            found.payload = payload",
        "            pass",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: no version check in the upsert",
        "src/redkit/_async/sqlalchemy_repository.py",
        "set_=others, where=newer)",
        "set_=others)",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: an outage dead-letters",
        "src/redkit/_async/write_behind_flusher.py",
        "        if _transient(exc) or not await",
        "        if False and not await",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: a refused batch is not split",
        "src/redkit/_async/write_behind_flusher.py",
        "        if len(items) == 1:\n            pending = items[0][0]",
        "        if True:\n            pending = items[0][0]",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: flushing gives a newer write's entry its TTL",
        "src/redkit/lua/wb_ack.lua",
        "== ARGV[1 + n + k] then",
        "~= nil then",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: replay ignores newer writes",
        "src/redkit/lua/wb_replay.lua",
        "if redis.call('GETRANGE', KEYS[3], 0, 7) == string.sub(fields['d'], 1, 8) then",
        "if true then",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
]

MUTANTS.append(
    Mutant(
        "the thread batcher ignores the write barrier",
        "src/redkit/_async/read_batcher.py",
        "            with self._lock:\n                self._inflight.pop(key, None)",
        "            pass",
        ("tests/sync/test_kernel.py", "tests/sync/test_read_batching.py"),
    )
)
MUTANTS.append(
    Mutant(
        "only an outage degrades",
        "src/redkit/_core/degradation.py",
        '        if not isinstance(error, BackendError) or self.on_error == "raise":',
        '        if not isinstance(error, BackendUnavailable) or self.on_error == "raise":',
        ("tests/async_/test_degradation.py",),
    )
)

# The sync face's lanes and the chained wake-up of batched threads.
_LANES = ("tests/test_lanes.py",)
MUTANTS += [
    Mutant(
        "an error reply costs the lane its connection",
        "src/redkit/_lanes.py",
        "keep = self._keep(conn)  # an error reply is a complete reply",
        "keep = False  # an error reply is a complete reply",
        _LANES,
    ),
    Mutant(
        "a forked child keeps the parent's lanes",
        "src/redkit/_lanes.py",
        "            self._idle = []  # the parent's sockets",
        "            pass  # the parent's sockets",
        _LANES,
    ),
    Mutant(
        "lanes hold a small pool's connections",
        "src/redkit/_lanes.py",
        "min(MAX_IDLE, pool_size(client) // 8)",
        "MAX_IDLE",
        ("tests/sync/test_degradation.py",),
    ),
    Mutant(
        "an idle lane is used unprobed",
        "src/redkit/_lanes.py",
        "                _probe(conn)",
        "                pass",
        _LANES,
    ),
    Mutant(
        "a lane outlives a Sentinel failover",
        "src/redkit/_lanes.py",
        "if not self._owns(conn) or marked_for_reconnect(conn):",
        "if marked_for_reconnect(conn):",
        ("tests/sync/test_tiered.py",),
    ),
    Mutant(
        "a woken thread does not wake the next",
        "src/redkit/_async/read_batcher.py",
        "            self._pass_on(slot, waiter)\n            return None",
        "            return None",
        ("tests/test_thread_batching.py", "tests/sync/test_read_batching.py"),
    ),
    Mutant(
        "a woken thread interrupted stops the chain",
        "src/redkit/_async/read_batcher.py",
        "                self._pass_on(slot, waiter)  # it may have been woken",
        "                pass  # it may have been woken",
        ("tests/test_thread_batching.py",),
    ),
    Mutant(
        "an interrupted sender leaves its batch unsent",
        "src/redkit/_async/read_batcher.py",
        "                self._complete(batch, None, error)",
        "                pass",
        ("tests/test_thread_batching.py",),
    ),
    Mutant(
        "an interrupted waiter stays in the chain",
        "src/redkit/_async/read_batcher.py",
        "                self._recover(slot, waiter, batch, exc)\n",
        "                pass\n",
        ("tests/test_thread_batching.py",),
    ),
]

# The read batchers' cap on the keys of one MGET.
MUTANTS += [
    Mutant(
        "the async read batcher ignores max_batch",
        "src/redkit/_async/read_batcher.py",
        "            if len(self._pending) >= self._max_batch:\n                self._flush()",
        "            pass",
        ("tests/test_read_batcher.py::test_no_request_carries_more_than_max_batch_keys",),
    ),
    Mutant(
        "the thread read batcher ignores max_batch",
        "src/redkit/_async/read_batcher.py",
        "                    keys = list(pending)[: self._max_batch]",
        "                    keys = list(pending)",
        ("tests/test_thread_batching.py::test_no_request_carries_more_than_max_batch_keys",),
    ),
]

# Lanes and RESP3 maintenance notifications.
MUTANTS += [
    Mutant(
        "lanes with RESP3 maintenance notifications",
        "src/redkit/_redis_compat.py",
        "    return not (callable(notifications) and notifications())",
        "    return True",
        ("tests/test_lanes.py",),
    ),
    Mutant(
        "a lane marked for reconnection keeps its connection",
        "src/redkit/_lanes.py",
        "if not self._owns(conn) or marked_for_reconnect(conn):",
        "if not self._owns(conn):",
        ("tests/test_lanes.py",),
    ),
]

# Interrupts on the sync face (tests/test_interrupts.py: a seeded storm of exceptions at
# the points where CPython runs signal handlers, then every pattern must answer).
_STORM = ("tests/test_interrupts.py",)
MUTANTS += [
    Mutant(
        "the sync gate takes and returns its permit in Python",
        "src/redkit/_compat.py",
        '    __enter__: Any = property(operator.attrgetter("_take"))\n'
        '    __exit__: Any = property(operator.attrgetter("_put"))\n',
        "    def __enter__(self) -> None:\n        self._take()\n\n"
        "    def __exit__(self, *exc: object) -> None:\n        self._put(None)\n",
        _STORM,
    ),
    Mutant(
        "the sync gate has no timeout",
        "src/redkit/_compat.py",
        "functools.partial(self._tokens.get, True, timeout)",
        "functools.partial(self._tokens.get, True, None)",
        ("tests/sync/test_kernel.py::test_a_command_kept_waiting_at_the_gate_gets_backend_busy",),
    ),
    Mutant(
        "the async gate has no timeout",
        "src/redkit/_acompat.py",
        "await asyncio.wait_for(asyncio.shield(waiter), self.timeout)",
        "await waiter",
        ("tests/async_/test_kernel.py::test_a_command_kept_waiting_at_the_gate_gets_backend_busy",),
    ),
    Mutant(
        "a lane is taken off the idle list by a call",
        "src/redkit/_lanes.py",
        "conn, since = self._idle[-1]\n                del self._idle[-1]",
        "conn, since = self._idle.pop()",
        _STORM,
    ),
    Mutant(
        "an interrupted lane command leaves its connection out",
        "src/redkit/_lanes.py",
        "        finally:\n            # One statement",
        "        else:\n            # One statement",
        _STORM,
    ),
    Mutant(
        "a connection that owes replies is handed out again",
        "src/redkit/_redis_compat.py",
        "            if not self._redkit_owed:\n                return\n",
        "            return\n",
        _STORM,
    ),
    Mutant(
        "an interrupted hand-over of a read batch is not resumed",
        "src/redkit/_async/read_batcher.py",
        "                batch = self._handing\n",
        "                batch = self._handing = None\n",
        _STORM,
    ),
    Mutant(
        "a disconnect interrupted halfway is left half done",
        "src/redkit/_redis_compat.py",
        "            if _sync_connected(self):\n                _finish_disconnect(self)",
        "            if False:\n                _finish_disconnect(self)",
        (
            "tests/test_interrupts.py::"
            "test_a_disconnect_interrupted_halfway_leaves_no_broken_connection",
        ),
    ),
    Mutant(
        "a hold whose release was interrupted blocks its thread for good",
        "src/redkit/_async/lock.py",
        "        if hold is not None and expired and not self.auto_extend:",
        "        if False:",
        _STORM,
    ),
]

# TieredCache and AdaptiveTTLCache guards.
_TIERED = ("tests/async_/test_tiered.py", "tests/sync/test_tiered.py")
_PROCESSES = (
    "tests/async_/test_tiered_processes.py",
    "tests/sync/test_tiered_processes.py",
)
_ADAPTIVE = ("tests/async_/test_adaptive_ttl.py", "tests/sync/test_adaptive_ttl.py")
MUTANTS += [
    Mutant(
        "an L1 fill ignores its ticket",
        "src/redkit/_core/l1.py",
        "            if not ticket.valid:  # voided",
        "            if False:  # voided",
        _TIERED,
    ),
    Mutant(
        "a lost invalidation channel leaves L1 as it is",
        "src/redkit/_core/l1.py",
        "        with self._lock:\n            self.data.clear()\n            for ticket",
        "        with self._lock:\n            for ticket",
        _TIERED,
    ),
    Mutant(
        "a lost invalidation channel leaves L1 as it is (two processes)",
        "src/redkit/_core/l1.py",
        "        with self._lock:\n            self.data.clear()\n            for ticket",
        "        with self._lock:\n            for ticket",
        _PROCESSES,
    ),
    Mutant(
        "invalidations from Redis are ignored (two processes)",
        "src/redkit/_async/tiered.py",
        "        if names:\n            cache.l1.invalidate(names)",
        "        if False:\n            cache.l1.invalidate(names)",
        _PROCESSES,
    ),
    Mutant(
        "L1 fills while the channel is down",
        "src/redkit/_core/l1.py",
        "            if not self.live:\n                return VOID",
        "            if False:\n                return VOID",
        _TIERED,
    ),
    Mutant(
        "set leaves this process's L1 entry",
        "src/redkit/_async/tiered.py",
        "            self.l1.invalidate(self._names(key))\n\n    async def invalidate",
        "            pass\n\n    async def invalidate",
        _TIERED,
    ),
    Mutant(
        "an invalidation misses the int alias of an id",
        "src/redkit/_async/tiered.py",
        "        return [text, int(text)]",
        "        return [text]",
        _TIERED,
    ),
    Mutant(
        "an L1 hit does not count as use (FIFO)",
        "src/redkit/_async/tiered.py",
        "        self._l1_touch = self.l1.data.move_to_end",
        "        self._l1_touch = lambda key: None",
        _TIERED,
    ),
    Mutant(
        "invalidations stay on the old master after a Sentinel failover",
        "src/redkit/_async/tracking.py",
        "            if self._sentinel is not None:",
        "            if False:",
        ("tests/async_/test_tiered.py::test_after_a_sentinel_failover_l1_follows_the_new_master",),
    ),
    Mutant(
        "a listener that ended without stop() is never started again",
        "src/redkit/_async/tracking.py",
        "            if not self._stopping.is_set():\n                self.started = False",
        "            if False:\n                self.started = False",
        ("tests/async_/test_tiered.py",),
    ),
    Mutant(
        "a forked child keeps its parent's L1",
        "src/redkit/_async/tiered.py",
        "        for cache in list(_CACHES):\n            cache._after_fork()",
        "        for cache in list(_CACHES):\n            pass",
        ("tests/test_tiered_threads.py",),
    ),
    Mutant(
        "an interrupt connects a connection another thread is setting up",
        "src/redkit/_async/tracking.py",
        "                    if self._subscribed and is_connected(conn):",
        "                    if True:",
        ("tests/test_tiered_threads.py",),
    ),
    Mutant(
        "an L1 entry outlives the Redis TTL it was read with",
        "src/redkit/_async/tiered.py",
        "            expires_at = sent + pttl / 1000",
        "            expires_at = None",
        _TIERED,
    ),
    Mutant(
        "a silent invalidation connection stays trusted",
        "src/redkit/_async/tracking.py",
        "                if last < asked:",
        "                if False:",
        ("tests/async_/test_tiered.py", "tests/sync/test_tiered.py"),
    ),
    Mutant(
        "a re-sent get-or-lock waits for its own lock",
        "src/redkit/lua/cache_get_or_lock.lua",
        "if holder == ARGV[1] then",
        "if false then",
        (
            "tests/async_/test_cache_aside.py::test_a_re_sent_get_or_lock_recognises_its_own_lock",
            "tests/sync/test_cache_aside.py::test_a_re_sent_get_or_lock_recognises_its_own_lock",
        ),
    ),
    Mutant(
        "a re-sent fill is counted as refused",
        "src/redkit/lua/cache_fill.lua",
        "  if redis.call('GET', KEYS[1]) == ARGV[2] then",
        "  if false then",
        (
            "tests/async_/test_cache_aside.py::test_a_re_sent_fill_is_not_counted_as_refused",
            "tests/sync/test_cache_aside.py::test_a_re_sent_fill_is_not_counted_as_refused",
        ),
    ),
    Mutant(
        "a fill whose lock is gone stores anyway",
        "src/redkit/lua/cache_fill.lua",
        "    return 1\n  end\n  return 0\nend",
        "  end\nend",
        (
            "tests/async_/test_cache_aside.py::test_a_re_sent_fill_never_stores_over_a_newer_write",
            "tests/sync/test_cache_aside.py::test_a_re_sent_fill_never_stores_over_a_newer_write",
        ),
    ),
    Mutant(
        "a re-sent set overwrites a later set",
        "src/redkit/lua/cache_set.lua",
        "if redis.call('LPOS', KEYS[3], ARGV[3]) then",
        "if false then",
        (
            "tests/async_/test_cache_aside.py::test_a_re_sent_set_never_overwrites_a_later_set",
            "tests/sync/test_cache_aside.py::test_a_re_sent_set_never_overwrites_a_later_set",
        ),
    ),
    Mutant(
        "a fill does not align the statistics' expiry",
        "src/redkit/lua/cache_fill.lua",
        "for i = 4, #KEYS do",
        "for i = 4, 3 do",
        _ADAPTIVE,
    ),
    Mutant(
        "a set does not align the statistics' expiry",
        "src/redkit/lua/cache_set.lua",
        "for i = 4, #KEYS do",
        "for i = 4, 3 do",
        _ADAPTIVE,
    ),
    Mutant(
        "statistics recreated by a hit never expire",
        "src/redkit/lua/adaptive_get.lua",
        "  if hits == 1 and redis.call('PTTL', KEYS[2]) < 0 then",
        "  if false then",
        _ADAPTIVE,
    ),
    Mutant(
        "statistics of an absent entry never expire",
        "src/redkit/lua/adaptive_get.lua",
        "if redis.call('PTTL', KEYS[2]) < 0 then\n  redis.call('PEXPIRE', KEYS[2], ARGV[1])",
        "if false then\n  redis.call('PEXPIRE', KEYS[2], ARGV[1])",
        _ADAPTIVE,
    ),
]

# connect()'s pool.
_POOL_TESTS = ("tests/async_/test_connection.py", "tests/sync/test_connection.py")
MUTANTS += [
    Mutant(
        "connect() keeps the pool that fails at once",
        "src/redkit/_async/connection.py",
        "    waits = options.pool_timeout != 0\n    kwargs = _client_kwargs(options, retry)",
        "    waits = False\n    kwargs = _client_kwargs(options, retry)",
        _POOL_TESTS,
    ),
    Mutant(
        "a Sentinel master's pool fails at once",
        "src/redkit/_async/connection.py",
        "    waits = options.pool_timeout != 0\n    kwargs.update(",
        "    waits = False\n    kwargs.update(",
        _POOL_TESTS,
    ),
    Mutant(
        "a sync Cluster node's pool fails at once",
        "src/redkit/_async/connection.py",
        '            kwargs["connection_pool_class"] = waiting_pool_class(options.pool_timeout)',
        "            pass",
        ("tests/sync/test_connection.py",),
    ),
    Mutant(
        "a sync pool's timeout looks like a dead server",
        "src/redkit/_redis_pools.py",
        "            if isinstance(exc.__context__, queue.Empty):",
        "            if False:",
        ("tests/sync/test_connection.py",),
    ),
    Mutant(
        "an asyncio pool's timeout looks like a dead server",
        "src/redkit/_redis_pools.py",
        "            if isinstance(exc.__cause__, asyncio.TimeoutError):",
        "            if False:",
        ("tests/async_/test_connection.py",),
    ),
]

# SessionStore guards (the ASGI middleware's are below them).
_SESSIONS = "tests/async_/test_sessions.py::"
MUTANTS += [
    Mutant(
        "sessions: a refused lift fails the read",
        "src/redkit/_async/sessions.py",
        "        except (BackendBusy, BackendRejected):\n",
        "        except ():\n",
        (_SESSIONS + "test_a_read_succeeds_when_redis_is_full_and_says_the_slide_failed",),
    ),
    Mutant(
        "sessions: a refused slide fails the read",
        "src/redkit/lua/session_get.lua",
        "local slid = redis.pcall('PEXPIREAT'",
        "local slid = redis.call('PEXPIREAT'",
        (_SESSIONS + "test_a_read_on_a_read_only_replica_answers_without_sliding",),
    ),
    Mutant(
        "sessions: a re-sent create makes a second session",
        "src/redkit/_async/sessions.py",
        "            if written != 0:",
        "            if written > 0:",
        (_SESSIONS + "test_a_re_sent_create_makes_one_session",),
    ),
    Mutant(
        "sessions: a re-sent rotation finds nothing to move",
        "src/redkit/lua/session_take.lua",
        "if redis.call('HGET', KEYS[2], 't') == ARGV[1] then",
        "if false then",
        (_SESSIONS + "test_a_re_sent_rotate_keeps_the_new_id",),
    ),
    Mutant(
        "sessions: a re-sent rotation writes a second new session",
        "src/redkit/_async/sessions.py",
        "            if await self._write_session(new_id, user, created, pairs) != 0:",
        "            if await self._write_session(new_id, user, created, pairs) > 0:",
        (_SESSIONS + "test_a_re_sent_rotate_keeps_the_new_id",),
    ),
    Mutant(
        "sessions: a re-sent destroy says missing",
        "src/redkit/lua/session_destroy.lua",
        "    if string.sub(gone, 1, #prefix) == prefix then",
        "    if false then",
        (_SESSIONS + "test_a_re_sent_destroy_says_it_destroyed",),
    ),
    Mutant(
        "sessions: an entry inside its creation window is trimmed",
        "src/redkit/_async/sessions.py",
        "        return now > horizon - self.span_ms + self.window_ms",
        "        return True",
        (_SESSIONS + "test_an_entry_whose_session_is_still_being_written_is_kept",),
    ),
]

_ASGI = "src/redkit/integrations/asgi/sessions.py"
_ASGI_TESTS = ("tests/test_asgi_sessions.py",)
MUTANTS += [
    Mutant(
        "asgi sessions: a bare cookie name breaks the header",
        _ASGI,
        '        if "=" in chunk:\n            key, value = chunk.split("=", 1)\n        else:\n'
        '            key, value = "", chunk\n',
        '        key, value = chunk.split("=", 1)\n',
        _ASGI_TESTS,
    ),
    Mutant(
        "asgi sessions: changes compared shallowly",
        _ASGI,
        "if not isinstance(k, str) or k not in loaded or loaded[k] != encode(v, key=k)",
        "if not isinstance(k, str) or k not in loaded",
        _ASGI_TESTS,
    ),
    Mutant(
        "asgi sessions: the cookie points back at an id rotated away",
        _ASGI,
        "        if not live or self.max_age is None:",
        "        if self.max_age is None:",
        _ASGI_TESTS,
    ),
    Mutant(
        "asgi sessions: a browser-session cookie is re-sent",
        _ASGI,
        "        if not live or self.max_age is None:",
        "        if not live:",
        _ASGI_TESTS,
    ),
    Mutant(
        "asgi sessions: a cleared session lives on",
        _ASGI,
        "        if not session and session.user_id is None:  # cleared",
        "        if False:  # cleared",
        _ASGI_TESTS,
    ),
    Mutant(
        "asgi sessions: max_age 0 accepted",
        _ASGI,
        "max_age <= 0",
        "max_age < 0",
        _ASGI_TESTS,
    ),
]

_FAULTS = "tests/{face}/test_lock_faults.py::test_"
_LOCK = "tests/{face}/test_lock.py::test_"


def _both(*names: str) -> tuple[str, ...]:
    """The tests ``names`` (``"test_lock_faults.py::test_x"`` style stems) on both faces."""
    return tuple(name.format(face=face) for face in ("async_", "sync") for name in names)


MUTANTS += [
    Mutant(
        "watchdog never declares an outage",
        "src/redkit/_async/lock.py",
        'self._lose(hold, f"Redis did not answer for a whole ttl: {exc}")\n                return',
        "continue",
        _both(
            _FAULTS + "the_watchdog_keeps_the_lock_through_a_short_outage_and_loses_it_after_a_ttl"
        ),
    ),
    Mutant(
        "watchdog loses the lock at the first failed extension",
        "src/redkit/_async/lock.py",
        "if self.clock.monotonic() - confirmed + interval < self.ttl:",
        "if False:",
        _both(
            _FAULTS + "the_watchdog_keeps_the_lock_through_a_short_outage_and_loses_it_after_a_ttl"
        ),
    ),
    Mutant(
        "a re-sent acquire does not know its own token",
        "src/redkit/lua/lock_acquire.lua",
        "if redis.call('GET', KEYS[1]) == ARGV[1] then\n  return tonumber",
        "if false then\n  return tonumber",
        _both(_FAULTS + "a_re_sent_acquire_recognises_its_own_token"),
    ),
    Mutant(
        "a re-sent acquire counts the fence twice",
        "src/redkit/lua/lock_acquire.lua",
        "return tonumber(redis.call('GET', KEYS[2])) or mint()",
        "return mint()",
        _both(_FAULTS + "a_re_sent_acquire_recognises_its_own_token"),
    ),
    Mutant(
        "a re-sent release does not know its marker",
        "src/redkit/lua/lock_release.lua",
        "  if redis.call('GET', KEYS[3]) == ARGV[1] then",
        "  if false then",
        _both(_FAULTS + "a_re_sent_release_reports_the_release_it_made"),
    ),
    Mutant(
        "fencing tokens without the clock floor",
        "src/redkit/lua/lock_acquire.lua",
        "  if fence < clock then",
        "  if false then",
        _both(_LOCK + "fencing_tokens_never_decrease_when_the_counter_is_lost"),
    ),
    Mutant(
        "the fencing counter never expires",
        "src/redkit/lua/lock_acquire.lua",
        "string.format('%d', fence),\n    'PX', tonumber(ARGV[2]) + tonumber(ARGV[3]))",
        "string.format('%d', fence))",
        _both(_LOCK + "an_idle_lock_name_leaves_no_key_for_ever"),
    ),
    Mutant(
        "extend does not keep the fencing counter alive",
        "src/redkit/lua/lock_extend.lua",
        "if redis.call('PTTL', KEYS[2]) < keep then",
        "if false then",
        _both(_LOCK + "an_idle_lock_name_leaves_no_key_for_ever"),
    ),
    Mutant(
        "redlock fence raise does not lift the counter",
        "src/redkit/lua/lock_fence_raise.lua",
        "if (tonumber(redis.call('GET', KEYS[2])) or 0) < tonumber(ARGV[2]) then",
        "if false then",
        _both("tests/{face}/test_redlock.py::test_fencing_tokens_grow_across_different_majorities"),
    ),
    Mutant(
        "redlock waits for every server without a budget",
        "src/redkit/_async/redlock.py",
        "            self._budget(deadline),\n",
        "            None,\n",
        _both(_FAULTS + "two_partitioned_masters_cost_one_budget_not_a_socket_timeout_each"),
    ),
    Mutant(
        "redlock budgets are not cut at the deadline",
        "src/redkit/_async/redlock.py",
        "        return max(0.0, min(self.server_timeout, deadline - self.clock.monotonic()))",
        "        return self.server_timeout",
        _both(_FAULTS + "the_timeout_is_kept_with_partitioned_masters"),
    ),
    Mutant(
        "redlock leaves a late acquire held",
        "src/redkit/_async/redlock.py",
        "                late=lambda s, _: self._release_unless_held(s, token),\n",
        "                late=None,\n",
        _both(_FAULTS + "two_partitioned_masters_cost_one_budget_not_a_socket_timeout_each"),
    ),
]

# -- rate limiters --
_LIMITER_STATE = (
    "tests/async_/test_ratelimit_state.py",
    "tests/sync/test_ratelimit_state.py",
)
_RESEND = ("tests/async_/test_ratelimit_resend.py", "tests/sync/test_ratelimit_resend.py")

MUTANTS += [
    Mutant(
        "limiter keys leave out the parameters",
        "src/redkit/_async/ratelimit.py",
        'KeySpace(f"{self.prefix}:{algorithm.tag}", version',
        'KeySpace(f"{self.prefix}:{algorithm.name}", version',
        _LIMITER_STATE,
    ),
    Mutant(
        "limiter keys leave out the algorithm under an explicit prefix",
        "src/redkit/_async/ratelimit.py",
        'KeySpace(f"{self.prefix}:{algorithm.tag}", version',
        "KeySpace(self.prefix, version",
        _LIMITER_STATE,
    ),
    Mutant(
        "the sliding counter's key lives one window",
        "src/redkit/lua/ratelimit_sliding_window_counter.lua",
        "'PX', math.ceil((start + 2 * window - now) / 1000))",
        "'PX', math.ceil((start + window - now) / 1000))",
        _LIMITER_STATE,
    ),
    Mutant(
        "a sliding-log hit removes every expired entry at once",
        "src/redkit/lua/ratelimit_sliding_window_log.lua",
        "local removed = math.min(expired, 1000)",
        "local removed = expired",
        ("tests/test_ratelimit_twins.py",),
    ),
    Mutant(
        "the sliding log's retry skips the entry that makes room",
        "src/redkit/lua/ratelimit_sliding_window_log.lua",
        "mid, mid)[1]) >= target then",
        "mid, mid)[1]) > target then",
        ("tests/test_ratelimit_twins.py",),
    ),
    Mutant(
        "hits carry no id (a re-send counts again)",
        "src/redkit/_async/ratelimit.py",
        "        if 0 < cost <= self._limit and self._resend_ms:",
        "        if False:",
        _RESEND,
    ),
    Mutant(
        "a re-sent fixed-window hit counts again",
        "src/redkit/lua/ratelimit_fixed_window.lua",
        "if consume and KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then",
        "if false then",
        _RESEND,
    ),
    Mutant(
        "a re-sent sliding-log hit counts again",
        "src/redkit/lua/ratelimit_sliding_window_log.lua",
        "if consume and KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then",
        "if false then",
        _RESEND,
    ),
    Mutant(
        "an admitted GCRA hit leaves no record",
        "src/redkit/lua/ratelimit_gcra.lua",
        "if KEYS[2] then redis.call('SET', KEYS[2], '1', 'PX', ARGV[6]) end",
        "",
        _RESEND,
    ),
    Mutant(
        "forwarded_for takes the left-most entry",
        "src/redkit/integrations/asgi/ratelimit.py",
        "ip = _ip(entries[-count])",
        "ip = _ip(entries[0])",
        ("tests/test_ratelimit_asgi.py",),
    ),
    Mutant(
        "forwarded_for trusts the header from any peer",
        "src/redkit/integrations/asgi/ratelimit.py",
        "if peer_ip is None or not _inside(peer_ip, networks):",
        "if False:",
        ("tests/test_ratelimit_asgi.py",),
    ),
    Mutant(
        "header() keys by X-Forwarded-For",
        "src/redkit/integrations/asgi/ratelimit.py",
        "if name.strip().lower() in _FORWARDED_HEADERS:",
        "if False:",
        ("tests/test_ratelimit_asgi.py",),
    ),
]

_PLAIN_SET = ROOT / "src/redkit/lua/plain_set.lua"

# Write-behind (h/wb): dead letters, start-up under OOM, re-sends, the lease check.
_WB_RESEND = (
    "tests/async_/test_write_behind.py::test_a_re_sent_write_does_not_pass_a_newer_write",
    "tests/async_/test_write_behind.py::test_a_re_sent_increment_counts_once",
    "tests/async_/test_write_behind.py::test_re_sent_flusher_scripts_act_once",
    "tests/async_/test_write_behind.py::test_a_re_sent_attempt_counts_once",
    "tests/sync/test_write_behind.py::test_a_re_sent_write_does_not_pass_a_newer_write",
    "tests/sync/test_write_behind.py::test_a_re_sent_increment_counts_once",
    "tests/sync/test_write_behind.py::test_re_sent_flusher_scripts_act_once",
    "tests/sync/test_write_behind.py::test_a_re_sent_attempt_counts_once",
)
_WB_OOM = (
    "tests/async_/test_write_behind.py::"
    "test_a_flusher_starts_and_drains_when_the_backlog_has_filled_redis",
    "tests/sync/test_write_behind.py::"
    "test_a_flusher_starts_and_drains_when_the_backlog_has_filled_redis",
)
MUTANTS += [
    Mutant(
        "write-behind: a dead letter keeps serving the refused value",
        "src/redkit/lua/wb_dead.lua",
        "  redis.call('SET', KEYS[4], token)",
        "  redis.call('GET', KEYS[4])",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: a replay leaves the cache entry cut",
        "src/redkit/lua/wb_replay.lua",
        "redis.call('SET', KEYS[3], fields['d'])",
        "redis.call('GET', KEYS[3])",
        ("tests/async_/test_write_behind.py", "tests/sync/test_write_behind.py"),
    ),
    Mutant(
        "write-behind: the lease needs free memory",
        "src/redkit/lua/wb_lease.lua",
        "#!lua flags=allow-oom\n",
        "",
        _WB_OOM,
    ),
    Mutant(
        "write-behind: registering needs free memory",
        "src/redkit/lua/wb_members.lua",
        "#!lua flags=allow-oom\n",
        "",
        _WB_OOM,
    ),
    Mutant(
        "write-behind: the layout check needs free memory",
        "src/redkit/_async/write_behind.py",
        "            except BackendRejected:",
        "            except ZeroDivisionError:",
        _WB_OOM,
    ),
    Mutant(
        "write-behind: a re-sent write is applied again",
        "src/redkit/lua/wb_write.lua",
        "local done = redis.call('HGET', KEYS[3], token)",
        "local done = false",
        _WB_RESEND,
    ),
    Mutant(
        "write-behind: a re-sent increment is applied again",
        "src/redkit/lua/wb_update.lua",
        "if done then",
        "if false then",
        _WB_RESEND,
    ),
    Mutant(
        "write-behind: a re-sent dead letter is moved again",
        "src/redkit/lua/wb_dead.lua",
        "if #redis.call('XRANGE', KEYS[1], last, last) == 0 then",
        "if false then",
        _WB_RESEND,
    ),
    Mutant(
        "write-behind: a re-sent replay reports nothing replayed",
        "src/redkit/lua/wb_replay.lua",
        "local done = redis.call('HGET', KEYS[4], ARGV[2])",
        "local done = false",
        _WB_RESEND,
    ),
    Mutant(
        "write-behind: a re-sent failed attempt counts twice",
        "src/redkit/lua/wb_attempt.lua",
        "local done = redis.call('HGET', KEYS[2], ARGV[2])",
        "local done = false",
        _WB_RESEND,
    ),
    Mutant(
        "write-behind: an increment is read and written back (not atomic)",
        "src/redkit/_async/write_behind.py",
        "        entity = await self.update(id, {field: by})\n        return entity[field]",
        "        entity = dict(await self.get(id) or {self.id_field: id})\n"
        "        entity[field] = entity.get(field, 0) + by\n"
        "        await self.write(entity)\n        return entity[field]",
        (
            "tests/async_/test_write_behind.py::test_concurrent_increments_are_never_lost",
            "tests/sync/test_write_behind.py::test_concurrent_increments_are_never_lost",
        ),
    ),
    Mutant(
        "write-behind: a held batch is written without checking the lease",
        "src/redkit/_async/write_behind_flusher.py",
        "        if self.clock.monotonic() >= shard.valid_until:",
        "        if False:",
        (
            "tests/async_/test_write_behind.py::"
            "test_a_flusher_whose_lease_was_taken_over_does_not_write_its_held_batch",
            "tests/sync/test_write_behind.py::"
            "test_a_flusher_whose_lease_was_taken_over_does_not_write_its_held_batch",
        ),
    ),
]


def run(mutant: Mutant) -> bool:
    """Apply ``mutant``, run its tests, restore; whether the tests failed (mutant killed)."""
    path = ROOT / mutant.path
    original = path.read_text()
    if mutant.old not in original:
        raise SystemExit(f"{mutant.name}: the text to mutate is gone from {mutant.path}")
    _PLAIN_SET.write_text(
        "-- KEYS[1] entry, KEYS[2] lock (ignored); ARGV[1] bytes, ARGV[2] ttl ms\n"
        "-- Returns 1\nredis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\nreturn 1\n"
    )
    try:
        path.write_text(original.replace(mutant.old, mutant.new, 1))
        subprocess.run(
            [sys.executable, "scripts/gen_sync.py"], cwd=ROOT, check=True, capture_output=True
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                *mutant.tests,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        path.write_text(original)
        _PLAIN_SET.unlink(missing_ok=True)
        subprocess.run(
            [sys.executable, "scripts/gen_sync.py"], cwd=ROOT, check=True, capture_output=True
        )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "?"
    killed = result.returncode != 0
    print(f"{'killed  ' if killed else 'SURVIVED'} {mutant.name}: {summary}")
    return killed


def main(names: list[str]) -> int:
    chosen = [m for m in MUTANTS if not names or m.name in names]
    survivors = [m.name for m in chosen if not run(m)]
    if survivors:
        print(f"{len(survivors)} mutant(s) survived: {', '.join(survivors)}")
        return 1
    print(f"all {len(chosen)} mutants killed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
