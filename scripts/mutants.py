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
        "                    _SET,\n",
        '                    script("plain_set"),\n',
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
        "~= string.sub(fields['d'], 1, 8) then",
        "== nil then",
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
        "        except ResponseError:\n            self._put_back(conn)",
        "        except ResponseError:\n            conn.disconnect()\n"
        "            self._pool.release(conn)",
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
        "            if not self._owns(conn):",
        "            if False:",
        ("tests/sync/test_tiered.py",),
    ),
    Mutant(
        "a woken thread does not wake the next",
        "src/redkit/_async/read_batcher.py",
        "                        )\n            self._pass_on(slot)",
        "                        )",
        ("tests/test_thread_batching.py", "tests/sync/test_read_batching.py"),
    ),
    Mutant(
        "a woken thread interrupted stops the chain",
        "src/redkit/_async/read_batcher.py",
        "            if woken:\n                self._pass_on(slot)",
        "            if woken:\n                pass",
        ("tests/test_thread_batching.py",),
    ),
    Mutant(
        "an interrupted sender leaves its batch unsent",
        "src/redkit/_async/read_batcher.py",
        "                    self._complete(slot.batch, None, error)",
        "                    pass",
        ("tests/test_thread_batching.py",),
    ),
    Mutant(
        "an interrupted waiter stays in the chain",
        "src/redkit/_async/read_batcher.py",
        "                self._abandon(slot, waiter, exc)\n",
        "                pass\n",
        ("tests/test_thread_batching.py",),
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
        "for i = 3, #KEYS do",
        "for i = 3, 2 do",
        _ADAPTIVE,
    ),
    Mutant(
        "a set does not align the statistics' expiry",
        "src/redkit/lua/cache_set.lua",
        "for i = 3, #KEYS do",
        "for i = 3, 2 do",
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

_PLAIN_SET = ROOT / "src/redkit/lua/plain_set.lua"


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
