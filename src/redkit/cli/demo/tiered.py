"""Demo section: a tiered cache, in-process L1 in front of Redis, invalidated across processes.

A Zipf workload reads 2,000 entries through a TieredCache whose L1 holds 500: the table shows
how reads split between L1, Redis and misses, and the time per read of each tier. Then a
second process keeps one entry in its own L1 while this one writes it 200 times: each write
reaches the other process's L1 (dropped, measured inside that process) within the latencies
shown, and the other process never reads an older value afterwards.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from rich.table import Table

import redkit
from redkit.cli.demo._common import BAD, OK, PREFIX, Context, percentile
from redkit.cli.demo.caching import zipf_sampler

TITLE = "tiered"
ENTRIES = 2_000
L1_SIZE = 500
READS = 50_000
ZIPF_S = 1.1
WRITES = 200
_DEADLINE = 30.0


def _wait_live(cache: Any) -> None:
    deadline = time.monotonic() + _DEADLINE
    while not cache.l1.live:
        if time.monotonic() > deadline:
            raise RuntimeError("the invalidation channel never came up")
        time.sleep(0.001)


def _other_process(url: str, prefix: str, writes: int, pipe: Any) -> tuple[list[int], int]:
    """The second process: keep ``k`` in L1; note when each write's invalidation dropped it.

    Returns the drop times (monotonic ns) and the value read after the last write.
    """
    client = redkit.connect(url)
    cache = redkit.TieredCache(client, prefix)
    dropped: list[int] = []
    got = threading.Event()

    def listener(emitted: Any) -> None:
        if emitted.event == redkit.Event.INVALIDATION_RECEIVED:
            dropped.append(time.monotonic_ns())
            got.set()

    cache.events.listen(listener)
    cache.get("k")
    _wait_live(cache)
    while len(dropped) < writes:
        while "k" not in cache.l1:
            cache.get("k")
        pipe.send("ready")
        got.wait(_DEADLINE)
        got.clear()
    final = cache.get("k")
    cache.close()
    client.close()
    return dropped, final


def _split(ctx: Context, client: Any, prefix: str) -> tuple[Any, float, float]:
    """The L1/L2 split of a Zipf workload; the cache's stats and the mean time per read."""
    cache = redkit.TieredCache(client, prefix, l1_max_size=L1_SIZE)
    ctx.stack.callback(cache.close)
    for id in range(1, ENTRIES + 1):
        cache.set(id, {"id": id, "name": f"item {id}"})
    cache.get(1)
    _wait_live(cache)
    cache.stats.reset()
    workload = zipf_sampler(ENTRIES, ZIPF_S, ctx.rng)(READS)
    started = time.perf_counter()
    for id in workload:
        cache.get(id)
    elapsed = time.perf_counter() - started
    aside = redkit.CacheAside(client, prefix)
    sample = workload[:2_000]
    started = time.perf_counter()
    for id in sample:
        aside.get(id)
    redis_only = (time.perf_counter() - started) / len(sample)
    return cache.stats, elapsed / READS, redis_only


def _latencies(url: str, prefix: str) -> tuple[list[float], int]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    client = redkit.connect(url)
    writer = redkit.TieredCache(client, prefix)
    writer.set("k", 0)
    started: list[int] = []
    with context.Pool(1) as pool:
        result = pool.apply_async(_other_process, (url, prefix, WRITES, theirs))
        for version in range(1, WRITES + 1):
            if not ours.poll(_DEADLINE):
                raise RuntimeError("the other process stopped answering")
            ours.recv()
            started.append(time.monotonic_ns())
            writer.set("k", version)
        dropped, final = result.get(_DEADLINE)
    writer.invalidate("k")
    writer.close()
    client.close()
    return [(end - start) / 1e6 for start, end in zip(started, dropped, strict=True)], final


def run(ctx: Context) -> bool:
    """Whether L1 served most reads and every write reached the other process's L1."""
    console = ctx.console
    console.rule("Tiered cache (L1 in-process, L2 Redis)")
    client = redkit.connect(ctx.url)
    ctx.stack.callback(client.close)
    prefix = f"{PREFIX}:tiered"
    cleaner = redkit.CacheAside(client, prefix)
    cleaner.invalidate_pattern("*")
    ctx.stack.callback(cleaner.invalidate_pattern, "*")
    console.print(
        f"{READS:,} Zipf reads (s={ZIPF_S}) of {ENTRIES:,} entries through a TieredCache "
        f"whose L1 holds {L1_SIZE} (least recently used out first)."
    )
    stats, per_read, redis_only = _split(ctx, client, prefix)
    table = Table(title="Where the reads were served")
    for column in ("tier", "reads", "share"):
        table.add_column(column, justify="right")
    for tier, count in (("L1 (in process)", stats.l1_hits), ("L2 (Redis)", stats.l2_hits)):
        table.add_row(tier, f"{count:,}", f"{count / READS:.1%}")
    table.add_row("misses", f"{stats.misses:,}", f"{stats.misses / READS:.1%}")
    console.print(table)
    console.print(
        f"mean time per read {per_read * 1e6:,.1f} us (CacheAside.get, Redis only: "
        f"{redis_only * 1e6:,.1f} us); L1 evictions: {stats.l1_evictions:,}"
    )
    console.print(
        f"a second process keeps one entry in its L1 while this one writes it {WRITES} times…"
    )
    latencies, final = _latencies(ctx.url, f"{prefix}:shared")
    table = Table(title="A write here until the other process's L1 dropped the entry")
    for column in ("p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")
    table.add_row(
        *(f"{percentile(latencies, q):.3f} ms" for q in (50, 90, 99)),
        f"{max(latencies):.3f} ms",
    )
    console.print(table)
    served = stats.l1_hits > stats.l2_hits
    reached = len(latencies) == WRITES and final == WRITES
    console.print(
        f"L1 served most reads {OK if served else BAD}; all {WRITES} writes reached the other "
        f"process's L1, which then read the last one ({final}) {OK if reached else BAD}"
    )
    return served and reached
