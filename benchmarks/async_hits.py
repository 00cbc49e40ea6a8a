"""2. Async hits from 50 concurrent tasks on distinct keys: redkit vs raw redis.asyncio vs peers.

Each task loops ``await <cache>.get(its own key)``; every contender reads the same 1 KB JSON
document per key. Every client is built the same way (``from_url`` defaults: one pool that
opens connections on demand), so the raw client may use up to 50 connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import orjson
import redis.asyncio as aredis

import redkit.asyncio as akit

from ._common import (
    CHUNKS,
    Comparison,
    Row,
    Settings,
    Target,
    abest_rates,
    gather_tasks,
    make_value,
)

Read = Callable[[int], Awaitable[Any]]
Close = Callable[[], Awaitable[None]]

RAW = "raw redis.asyncio get + orjson"
KIT = "redkit async CacheAside.get"
CASHEWS = "cashews Cache.get (redis backend)"
AIOCACHE = "aiocache RedisCache.get (json)"


def _loop(tasks: int, per_task: int, read: Read) -> Callable[[], Any]:
    async def body(i: int) -> None:
        for _ in range(per_task):
            await read(i)

    return lambda: gather_tasks(tasks, body)


async def _contenders(
    cfg: Settings, key_of: Callable[[int], int]
) -> tuple[dict[str, Read], list[Close], list[str]]:
    """Each contender's read for task ``i`` (id ``key_of(i)``), the clean-ups and notes."""
    ids = sorted({key_of(i) for i in range(cfg.async_tasks)})
    values = {i: make_value(i) for i in ids}
    closers: list[Close] = []
    notes: list[str] = []
    loops: dict[str, Read] = {}

    # redkit and raw read the very same entries (written through redkit)
    kit_client = aredis.Redis.from_url(cfg.url)
    raw_client = aredis.Redis.from_url(cfg.url)
    closers += [kit_client.aclose, raw_client.aclose]
    cache = akit.CacheAside(kit_client, "bench:async")
    await cache.set_many(values)
    keys = {i: cache.keys.key(i) for i in ids}
    assert await cache.get(ids[0]) == values[ids[0]]

    raw_get, loads = raw_client.get, orjson.loads

    async def raw_read(i: int) -> Any:
        return loads((await raw_get(keys[key_of(i)]))[1:])

    async def kit_read(i: int) -> Any:
        return await cache.get(key_of(i))

    loops[RAW] = raw_read
    loops[KIT] = kit_read

    try:
        from cashews import Cache
    except ImportError:
        notes.append("cashews not installed: skipped")
    else:
        cashews = Cache()
        cashews.setup(cfg.url)
        await cashews.init()
        for i, value in values.items():
            await cashews.set(f"bench:cashews:{i}", value, expire=3600)
        assert await cashews.get(f"bench:cashews:{ids[0]}") == values[ids[0]]
        cget = cashews.get

        async def cashews_read(i: int) -> Any:
            return await cget(f"bench:cashews:{key_of(i)}")

        loops[CASHEWS] = cashews_read
        closers.append(cashews.close)

    try:
        from aiocache import RedisCache
    except ImportError:
        notes.append("aiocache not installed: skipped")
    else:
        url = urlparse(cfg.url)
        aio = RedisCache(endpoint=url.hostname or "127.0.0.1", port=url.port or 6379)
        for i, value in values.items():
            await aio.set(f"bench:aiocache:{i}", value, ttl=3600)
        assert await aio.get(f"bench:aiocache:{ids[0]}") == values[ids[0]]
        aget = aio.get

        async def aiocache_read(i: int) -> Any:
            return await aget(f"bench:aiocache:{key_of(i)}")

        loops[AIOCACHE] = aiocache_read
        closers.append(aio.close)
    return loops, closers, notes


async def _measure(cfg: Settings, title: str, key_of: Callable[[int], int]) -> Comparison:
    reads, closers, notes = await _contenders(cfg, key_of)
    tasks, per = cfg.async_tasks, cfg.async_per_task
    try:
        for read in reads.values():  # warm-up: open the pools' connections
            await _loop(tasks, 20, read)()
        loops = {name: _loop(tasks, per // CHUNKS, read) for name, read in reads.items()}
        rates = await abest_rates(tasks * per, loops, cfg.runs)
    finally:
        for close in closers:
            await close()
    comparison = Comparison(title, RAW, notes=notes)
    comparison.rows = [Row(name, rate) for name, rate in rates.items()]
    return comparison


def run(cfg: Settings) -> Comparison:
    title = f"2. Async hits, {cfg.async_tasks} tasks on distinct keys (1 KB JSON)"
    comparison = asyncio.run(_measure(cfg, title, key_of=lambda i: i))
    comparison.targets.append(Target("redkit async get >= 3x raw redis.asyncio", KIT, RAW, 3.0))
    if any(row.name == CASHEWS for row in comparison.rows):
        comparison.targets.append(Target("redkit async get >= 5x cashews", KIT, CASHEWS, 5.0))
    return comparison


def run_hot_key(cfg: Settings) -> Comparison:
    title = f"4. Hot key: {cfg.async_tasks} tasks reading one key (1 KB JSON)"
    comparison = asyncio.run(_measure(cfg, title, key_of=lambda i: 0))
    comparison.notes.append("no target set; reported for information")
    return comparison
