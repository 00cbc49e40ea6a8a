"""TieredCache: L1 hits against cachetools, and invalidation latency between processes.

- ``tiered_hits``: ``TieredCache.get`` served from L1 (one thread, one core), sync and
  async, against ``cachetools.TTLCache`` holding the same 1 KB documents. Targets: sync at
  least 1,500,000 ops/s and at least 2x ``cachetools.TTLCache.get``; async at least
  1,000,000 ops/s.
- ``tiered_invalidation``: a write in this process (``TieredCache.set``) until another
  process's L1 has dropped the entry (measured inside that process, on the machine's
  monotonic clock, which both processes share). One write at a time: the next one starts
  when the reader has the key in L1 again. Targets: p50 under 0.5 ms and p99 under 2 ms, for
  a reader of each face.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from typing import Any

import redis
import redis.asyncio as aredis

import redkit
import redkit.asyncio as akit
from redkit import Event

from ._common import CHUNKS, Check, Comparison, Row, Settings, Target, abest_rates, best_rates
from ._common import make_value as _make_value

KEYS = 1_000
SYNC = "redkit TieredCache.get, L1 hit (sync)"
ASYNC = "redkit TieredCache.get, L1 hit (async)"
TTLCACHE_GET = "cachetools TTLCache.get"
TTLCACHE_ITEM = "cachetools TTLCache getitem"
SYNC_FLOOR = 1_500_000
ASYNC_FLOOR = 1_000_000


def _wait_live(cache: Any) -> None:
    deadline = time.monotonic() + 10
    while not cache.l1.live:
        if time.monotonic() > deadline:
            raise RuntimeError("the invalidation channel never came up")
        time.sleep(0.001)


async def _await_live(cache: Any) -> None:
    deadline = time.monotonic() + 10
    while not cache.l1.live:
        if time.monotonic() > deadline:
            raise RuntimeError("the invalidation channel never came up")
        await asyncio.sleep(0.001)


def _sync_contenders(cfg: Settings, order: list[int]) -> tuple[dict[str, Any], list[Any]]:
    import cachetools

    client = redis.Redis.from_url(cfg.url)
    cache = redkit.TieredCache(client, "bench:tiered", l1_max_size=KEYS * 2)
    values = {i: _make_value(i) for i in range(KEYS)}
    for i, value in values.items():
        cache.set(i, value)
    cache.get(0)
    _wait_live(cache)
    for i in range(KEYS):
        assert cache.get(i) == values[i]
        assert i in cache.l1
    ttl: Any = cachetools.TTLCache(KEYS * 2, 60)
    for i, value in values.items():
        ttl[i] = value

    def kit() -> None:
        get = cache.get
        for i in order:
            get(i)

    def ttl_get() -> None:
        get = ttl.get
        for i in order:
            get(i)

    def ttl_item() -> None:
        for i in order:
            ttl[i]

    hits = cache.stats.l1_hits
    return {SYNC: kit, TTLCACHE_GET: ttl_get, TTLCACHE_ITEM: ttl_item}, [
        cache,
        client,
        hits,
    ]


async def _async_rate(cfg: Settings, order: list[int], ops: int) -> tuple[float, int]:
    client = aredis.Redis.from_url(cfg.url)
    cache = akit.TieredCache(client, "bench:tiered", l1_max_size=KEYS * 2)
    await cache.get(0)
    await _await_live(cache)
    for i in range(KEYS):
        await cache.get(i)
        assert i in cache.l1
    before = cache.stats.l1_hits

    async def kit() -> None:
        get = cache.get
        for i in order:
            await get(i)

    rates = await abest_rates(ops, {ASYNC: kit}, runs=cfg.runs)
    served = cache.stats.l1_hits - before
    await cache.aclose()
    await client.aclose()
    return rates[ASYNC], served


def run_hits(cfg: Settings) -> Comparison:
    ops = cfg.sync_ops * (10 if cfg.quick else 100)
    order = [(i * 7919) % KEYS for i in range(ops // CHUNKS)]
    contenders, (cache, client, hits_before) = _sync_contenders(cfg, order)
    rates = best_rates(ops, contenders, runs=cfg.runs)
    sync_hits = cache.stats.l1_hits - hits_before
    cache.close()
    client.close()
    async_rate, async_hits = asyncio.run(_async_rate(cfg, order, ops))
    comparison = Comparison(
        "TieredCache.get from L1, one thread (1 KB JSON documents)", TTLCACHE_GET
    )
    comparison.rows = [Row(name, rate) for name, rate in rates.items()]
    comparison.rows.append(Row(ASYNC, async_rate))
    comparison.targets.append(
        Target("sync TieredCache.get >= 2x cachetools TTLCache.get", SYNC, TTLCACHE_GET, 2.0)
    )
    comparison.checks += [
        Check(
            f"sync TieredCache.get >= {SYNC_FLOOR:,} ops/s",
            f"{rates[SYNC]:,.0f} ops/s",
            rates[SYNC] >= SYNC_FLOOR,
        ),
        Check(
            f"async TieredCache.get >= {ASYNC_FLOOR:,} ops/s",
            f"{async_rate:,.0f} ops/s",
            async_rate >= ASYNC_FLOOR,
        ),
    ]
    per_run = ops // CHUNKS * CHUNKS
    comparison.notes += [
        f"L1 hits counted: sync {sync_hits:,} for {per_run * cfg.runs:,} timed reads, "
        f"async {async_hits:,} for {per_run * cfg.runs:,} (every read was an L1 hit)",
        f"{SYNC} vs cachetools TTLCache getitem: "
        f"{rates[SYNC] / rates[TTLCACHE_ITEM]:.2f}x (no target)",
    ]
    return comparison


# -- 8. invalidation latency -----------------------------------------------------------------


def _reader(url: str, face: str, prefix: str, writes: int, pipe: Any) -> list[int]:
    """Another process: keep ``k`` in L1, note when each invalidation dropped it."""
    if face == "async":
        return asyncio.run(_areader(url, prefix, writes, pipe))
    client = redkit.connect(url)
    cache = redkit.TieredCache(client, prefix)
    dropped: list[int] = []
    got = threading.Event()

    def listener(emitted: Any) -> None:
        if emitted.event == Event.INVALIDATION_RECEIVED:
            dropped.append(time.monotonic_ns())  # L1 has just dropped the entry
            got.set()

    cache.events.listen(listener)
    cache.get("k")
    _wait_live(cache)
    for _ in range(writes + 1):
        while "k" not in cache.l1:
            cache.get("k")
        pipe.send("ready")
        if len(dropped) == writes:
            break
        got.wait()
        got.clear()
    cache.close()
    client.close()
    return dropped


async def _areader(url: str, prefix: str, writes: int, pipe: Any) -> list[int]:
    client = akit.connect(url)
    cache = akit.TieredCache(client, prefix)
    dropped: list[int] = []
    got = asyncio.Event()

    def listener(emitted: Any) -> None:
        if emitted.event == Event.INVALIDATION_RECEIVED:
            dropped.append(time.monotonic_ns())
            got.set()

    cache.events.listen(listener)
    await cache.get("k")
    await _await_live(cache)
    for _ in range(writes + 1):
        while "k" not in cache.l1:
            await cache.get("k")
        pipe.send("ready")
        if len(dropped) == writes:
            break
        await got.wait()
        got.clear()
    await cache.aclose()
    await client.aclose()
    return dropped


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _latencies(url: str, face: str, writes: int) -> list[float]:
    """Milliseconds from the start of each write here to the drop in a ``face`` reader."""
    prefix = f"bench:inval:{face}"
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    client = redkit.connect(url)
    writer = redkit.TieredCache(client, prefix)
    writer.set("k", 0)
    with context.Pool(1) as pool:
        result = pool.apply_async(_reader, (url, face, prefix, writes, theirs))
        started: list[int] = []
        for i in range(writes):
            if not ours.poll(30):
                raise RuntimeError("the reader process stopped answering")
            ours.recv()
            started.append(time.monotonic_ns())
            writer.set("k", i + 1)
        dropped = result.get(60)
    writer.close()
    client.close()
    return [(end - start) / 1e6 for start, end in zip(started, dropped, strict=True)]


def run_invalidation(cfg: Settings) -> Comparison:
    writes = 200 if cfg.quick else 1_000
    comparison = Comparison(
        f"Invalidation latency, a write here to another process's L1 ({writes:,} writes; "
        "microseconds, ratios vs the sync p50)",
        "sync reader p50",
    )
    for face in ("sync", "async"):
        latencies = _latencies(cfg.url, face, writes)
        p50, p90, p99 = (_percentile(latencies, q) for q in (50, 90, 99))
        for name, value in (("p50", p50), ("p90", p90), ("p99", p99), ("max", max(latencies))):
            comparison.rows.append(Row(f"{face} reader {name}", value * 1000, "us"))
        comparison.checks += [
            Check(f"{face} reader p50 < 0.5 ms", f"{p50:.3f} ms", p50 < 0.5),
            Check(f"{face} reader p99 < 2 ms", f"{p99:.3f} ms", p99 < 2.0),
        ]
    return comparison
