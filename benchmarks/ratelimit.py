"""Rate limiting: each ``hit`` is one round trip (sync), or shares one (async, batched).

redkit's five limiters against raw redis-py ``EVALSHA`` of a trivial script (the cost of one
round trip) and against the ``limits`` library's equivalent strategies (fixed window, moving
window = sliding log, sliding window counter) on the same server. Keys cycle over 1,000 ids
with limits high enough that every hit is admitted (the write path). Also prints the memory
per limited key (MEMORY USAGE) after 10,000 keys, per algorithm, and what an admitted hit's
re-send record costs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from limits import RateLimitItemPerHour, storage, strategies

import redkit
import redkit.asyncio

from ._common import CHUNKS, Comparison, Row, Settings, Target, abest_rates, best_rates

IDS = 1_000
MEMORY_KEYS = 10_000
BIG = 10**9  # a limit no benchmark reaches: every hit is admitted
TRIVIAL = "return 1"


def _limiters(client: Any, prefix: str) -> dict[str, Any]:
    return {
        "fixed_window": redkit.FixedWindowLimiter(client, BIG, 3600, prefix=f"{prefix}:fw"),
        "sliding_window_log": redkit.SlidingWindowLogLimiter(
            client, 100, 0.05, prefix=f"{prefix}:log"
        ),
        "sliding_window_counter": redkit.SlidingWindowCounterLimiter(
            client, BIG, 3600, prefix=f"{prefix}:swc"
        ),
        "token_bucket": redkit.TokenBucketLimiter(client, BIG, 1000.0, prefix=f"{prefix}:tb"),
        "gcra": redkit.GCRALimiter(client, 1_000_000, 1.0, prefix=f"{prefix}:gcra"),
    }


def run(cfg: Settings) -> Comparison:
    client = redis.Redis.from_url(cfg.url)
    client.flushall()
    sha = client.script_load(TRIVIAL)
    limiters = _limiters(client, "bench")
    store = storage.RedisStorage(cfg.url)
    peers = {
        "fixed_window": strategies.FixedWindowRateLimiter(store),
        "sliding_window_log": strategies.MovingWindowRateLimiter(store),
        "sliding_window_counter": strategies.SlidingWindowCounterRateLimiter(store),
    }
    items = {name: RateLimitItemPerHour(BIG, namespace=name.upper()) for name in peers}
    ids = [f"user-{i % IDS}" for i in range(cfg.sync_ops // CHUNKS)]
    evalsha = client.evalsha

    def raw() -> None:
        for id in ids:
            evalsha(sha, 1, id)

    fixed = limiters["fixed_window"]
    fixed_keys = [fixed.keys.key(id) for id in ids]
    fixed_args = fixed._params
    client.script_load(fixed._script.source)

    def raw_same_script() -> None:
        for key in fixed_keys:
            evalsha(fixed._script.sha, 1, key, *fixed_args, 1, 1)

    contenders: dict[str, Any] = {
        "raw redis-py EVALSHA 'return 1'": raw,
        "raw redis-py EVALSHA of redkit's fixed-window script": raw_same_script,
    }
    for name, limiter in limiters.items():

        def ours(hit: Any = limiter.hit) -> None:
            for id in ids:
                hit(id)

        contenders[f"redkit {name}"] = ours
    for name, peer in peers.items():

        def theirs(hit: Any = peer.hit, item: Any = items[name]) -> None:
            for id in ids:
                hit(item, id)

        contenders[f"limits {name}"] = theirs

        def theirs_with_stats(
            hit: Any = peer.hit, stats: Any = peer.get_window_stats, item: Any = items[name]
        ) -> None:
            for id in ids:
                hit(item, id)
                stats(item, id)

        contenders[f"limits {name} + get_window_stats"] = theirs_with_stats
    for fn in contenders.values():  # warm-up: connections, script caches
        fn()
    raw_name = "raw redis-py EVALSHA 'return 1'"
    comparison = Comparison("Rate limiting: sync hit, one connection", raw_name)
    for name, rate in best_rates(cfg.sync_ops, contenders, cfg.runs).items():
        comparison.rows.append(Row(name, rate, "hits/s"))
    _targets(comparison, raw_name, list(limiters), list(peers))
    comparison.notes.append(
        "sliding_window_log: redkit 100 per 50 ms, so entries expire as the run goes (every "
        "hit still admitted: the 1,000 ids cycle slower); limits' moving window 1e9 per hour"
    )
    comparison.notes.append(
        "'+ get_window_stats': limits' hit answers allowed or not; remaining and reset take "
        "a second call (two round trips, three commands for fixed_window), where redkit's "
        "hit returns them with retry_after in one"
    )
    comparison.notes += memory_notes(client)
    client.close()
    return comparison


def _targets(comparison: Comparison, raw: str, ours: list[str], peers: list[str]) -> None:
    for name in ours:
        comparison.targets.append(
            Target(f"redkit {name} >= 0.95x raw EVALSHA", f"redkit {name}", raw, 0.95)
        )
    for name in peers:
        comparison.targets.append(
            Target(f"redkit {name} >= 1.15x limits", f"redkit {name}", f"limits {name}", 1.15)
        )


def memory_notes(client: Any) -> list[str]:
    """Bytes per limited key (MEMORY USAGE, averaged over 10,000 keys) for each algorithm,
    each key hit once, and for the sliding log also filled to limits of 10 and 100."""
    client.flushall()
    notes = []
    cases: list[tuple[str, Any, int]] = [
        ("fixed_window", redkit.FixedWindowLimiter(client, 100, 3600, prefix="m:fw"), 1),
        (
            "sliding_window_counter",
            redkit.SlidingWindowCounterLimiter(client, 100, 3600, prefix="m:swc"),
            1,
        ),
        ("token_bucket", redkit.TokenBucketLimiter(client, 100, 1.0, prefix="m:tb"), 1),
        ("gcra", redkit.GCRALimiter(client, 100, 3600.0, prefix="m:gcra"), 1),
        (
            "sliding_window_log (1 entry)",
            redkit.SlidingWindowLogLimiter(client, 100, 3600, prefix="m:l1"),
            1,
        ),
        (
            "sliding_window_log (10 entries)",
            redkit.SlidingWindowLogLimiter(client, 100, 3600, prefix="m:l10"),
            10,
        ),
        (
            "sliding_window_log (a hit of cost 100)",
            redkit.SlidingWindowLogLimiter(client, 100, 3600, prefix="m:l100"),
            100,
        ),
    ]
    for label, limiter, cost in cases:
        pipe = client.pipeline(transaction=False)
        for i in range(MEMORY_KEYS):
            pipe.evalsha(limiter._script.sha, 1, limiter.keys.key(i), *limiter._params, cost, 1)
        client.script_load(limiter._script.source)
        pipe.execute()
        pipe = client.pipeline(transaction=False)
        for i in range(MEMORY_KEYS):
            pipe.memory_usage(limiter.keys.key(i), samples=0)
        sizes = pipe.execute()
        notes.append(
            f"memory per key, {label}: {sum(sizes) / len(sizes):.0f} bytes "
            f"(MEMORY USAGE over {MEMORY_KEYS:,} keys)"
        )
    client.flushall()
    limiter = redkit.FixedWindowLimiter(client, BIG, 3600, prefix="m:rec")
    for _ in range(MEMORY_KEYS):
        limiter.hit("one")
    pipe = client.pipeline(transaction=False)
    for record in client.scan_iter(match=f"{limiter.keys.key('one')}:hit:*", count=1000):
        pipe.memory_usage(record, samples=0)
    sizes = pipe.execute()
    notes.append(
        f"memory per admitted hit: its re-send record, kept {limiter.resend_window:.0f} s: "
        f"{sum(sizes) / len(sizes):.0f} bytes (MEMORY USAGE over {len(sizes):,} records)"
    )
    client.flushall()
    return notes


TASKS = 50


def run_async(cfg: Settings) -> Comparison:
    """The same hits from 50 concurrent asyncio tasks on one client each side."""
    return asyncio.run(_run_async(cfg))


async def _run_async(cfg: Settings) -> Comparison:
    import redis.asyncio
    from limits.aio import storage as aio_storage
    from limits.aio import strategies as aio_strategies

    client = redis.asyncio.Redis.from_url(cfg.url)
    await client.flushall()
    sha = await client.script_load(TRIVIAL)
    limiters = {
        "fixed_window": redkit.asyncio.FixedWindowLimiter(client, BIG, 3600, prefix="a:fw"),
        "sliding_window_log": redkit.asyncio.SlidingWindowLogLimiter(
            client, 100, 0.05, prefix="a:log"
        ),
        "sliding_window_counter": redkit.asyncio.SlidingWindowCounterLimiter(
            client, BIG, 3600, prefix="a:swc"
        ),
        "token_bucket": redkit.asyncio.TokenBucketLimiter(client, BIG, 1000.0, prefix="a:tb"),
        "gcra": redkit.asyncio.GCRALimiter(client, 1_000_000, 1.0, prefix="a:gcra"),
    }
    store = aio_storage.RedisStorage(f"async+{cfg.url}", implementation="redispy")
    peers = {
        "fixed_window": aio_strategies.FixedWindowRateLimiter(store),
        "sliding_window_log": aio_strategies.MovingWindowRateLimiter(store),
        "sliding_window_counter": aio_strategies.SlidingWindowCounterRateLimiter(store),
    }
    items = {name: RateLimitItemPerHour(BIG, namespace=f"A{name.upper()}") for name in peers}
    per_task = max(1, cfg.async_tasks * cfg.async_per_task // CHUNKS // TASKS)
    ops = per_task * TASKS * CHUNKS

    def gathered(one: Any) -> Any:
        async def chunk() -> None:
            async def task(t: int) -> None:
                for i in range(per_task):
                    await one(f"user-{(t * per_task + i) % IDS}")

            await asyncio.gather(*(task(t) for t in range(TASKS)))

        return chunk

    async def raw_one(id: str) -> None:
        await client.evalsha(sha, 1, id)

    raw_name = "raw redis.asyncio EVALSHA 'return 1'"
    contenders: dict[str, Any] = {raw_name: gathered(raw_one)}
    for name, limiter in limiters.items():
        contenders[f"redkit {name}"] = gathered(limiter.hit)
    for name, peer in peers.items():

        async def theirs(id: str, hit: Any = peer.hit, item: Any = items[name]) -> None:
            await hit(item, id)

        contenders[f"limits {name}"] = gathered(theirs)
    for fn in contenders.values():
        await fn()
    comparison = Comparison(f"Rate limiting: async hits, {TASKS} tasks, one client", raw_name)
    for name, rate in (await abest_rates(ops, contenders, cfg.runs)).items():
        comparison.rows.append(Row(name, rate, "hits/s"))
    _targets(comparison, raw_name, list(limiters), list(peers))
    comparison.notes.append(
        "redkit sends the hits of one event-loop turn as one pipeline (store.run_batched); "
        "each hit is still its own atomic script"
    )
    await client.aclose()
    return comparison
