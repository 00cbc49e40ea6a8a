"""5. The event sink's cost: one ``emit`` against one cache hit, on each face.

Every hit reports one event (``hit``). The sink must cost under 2% of a hit: an emit must be
at least 50 times as fast as a whole hit. The sync face counts under a lock (exact under
threads); the async face counts from one event loop without one. Timed in the same run as
the hits they are compared with.
"""

from __future__ import annotations

import asyncio
import time

import redis
import redis.asyncio as aredis

import redkit
import redkit.asyncio as akit
from redkit._core.events import Event, Events

from ._common import Comparison, Row, Settings, Target, best_rates, make_value

EMITS = 200_000
SYNC_EMIT = "Events.emit, sync face (locked)"
ASYNC_EMIT = "Events.emit, async face"
SYNC_HIT = "sync CacheAside.get hit"
ASYNC_HIT = "async CacheAside.get hit, 50 tasks"


def _emits(events: Events) -> float:
    emit, hit = events.emit, Event.HIT
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(EMITS):
            emit(hit)
        best = min(best, time.perf_counter() - start)
    return EMITS / best


async def _async_hits(cfg: Settings) -> float:
    client = aredis.Redis.from_url(cfg.url)
    cache = akit.CacheAside(client, "bench:sink")
    await cache.set_many({i: make_value(i) for i in range(50)})
    per_task = cfg.async_per_task
    best = float("inf")
    for _ in range(cfg.runs):
        start = time.perf_counter()

        async def body(i: int) -> None:
            for _ in range(per_task):
                await cache.get(i)

        await asyncio.gather(*(body(i) for i in range(50)))
        best = min(best, time.perf_counter() - start)
    await cache.aclose()
    await client.aclose()
    return 50 * per_task / best


def run(cfg: Settings) -> Comparison:
    client = redis.Redis.from_url(cfg.url)
    cache = redkit.CacheAside(client, "bench:sink")
    cache.set(1, make_value(1))
    ops = cfg.sync_ops
    get = cache.get

    def hits() -> None:
        for _ in range(ops // 20):
            get(1)

    sync_hit = best_rates(ops, {SYNC_HIT: hits}, cfg.runs)[SYNC_HIT]
    comparison = Comparison("5. Event sink cost: one emit vs one hit", SYNC_HIT)
    comparison.rows += [
        Row(SYNC_HIT, sync_hit),
        Row(SYNC_EMIT, _emits(Events("bench", "sync", threadsafe=True))),
        Row(ASYNC_HIT, asyncio.run(_async_hits(cfg))),
        Row(ASYNC_EMIT, _emits(Events("bench", "async", threadsafe=False))),
    ]
    comparison.targets += [
        Target("sink < 2% of a sync hit (emit >= 50x a hit)", SYNC_EMIT, SYNC_HIT, 50.0),
        Target("sink < 2% of an async hit (emit >= 50x a hit)", ASYNC_EMIT, ASYNC_HIT, 50.0),
    ]
    for emit_name, hit_name in ((SYNC_EMIT, SYNC_HIT), (ASYNC_EMIT, ASYNC_HIT)):
        share = comparison.rate(hit_name) / comparison.rate(emit_name)
        comparison.notes.append(f"{emit_name}: {share:.2%} of a {hit_name}")
    client.close()
    return comparison
