"""Demo section: a cache stampede, naive against redkit.

100 concurrent reads of one invalidated key; the source takes 50 ms per fetch. The naive
GET / fetch / SET fetches once per reader; redkit's ``get_or_fetch`` once in all, even from
several caches that share nothing but Redis (as separate processes would).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from rich.table import Table

import redkit.asyncio
from redkit.cli.demo._common import BAD, OK, PREFIX, Context, ms

TITLE = "stampede"
STAMPEDE_CALLS = 100
STAMPEDE_INSTANCES = 4
FETCH_DELAY = 0.05


@dataclass
class StampedeResult:
    label: str
    fetches: int
    elapsed: float
    correct: bool


class _Source:
    """A slow source of truth that counts how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(FETCH_DELAY)
        return {"id": 1, "name": "Ada Lovelace", "score": 0}


async def _naive_stampede(client: Any) -> StampedeResult:
    """GET, on a miss fetch and SET: every concurrent miss fetches."""
    key = f"{PREFIX}:naive:{{1}}"
    source = _Source()
    await client.delete(key)

    async def naive_get() -> Any:
        data = await client.get(key)
        if data is not None:
            return json.loads(data)
        value = await source.fetch()
        await client.set(key, json.dumps(value), ex=60)
        return value

    started = time.perf_counter()
    values = await asyncio.gather(*(naive_get() for _ in range(STAMPEDE_CALLS)))
    elapsed = time.perf_counter() - started
    await client.delete(key)
    correct = all(v == values[0] for v in values)
    return StampedeResult("naive GET / fetch / SET", source.calls, elapsed, correct)


async def _redkit_stampede(client: Any, instances: int) -> StampedeResult:
    """get_or_fetch from ``instances`` caches (as separate processes would have) at once."""
    caches = [redkit.asyncio.CacheAside(client, f"{PREFIX}:stampede") for _ in range(instances)]
    source = _Source()
    await caches[0].invalidate(1)
    started = time.perf_counter()
    values = await asyncio.gather(
        *(caches[i % instances].get_or_fetch(1, source.fetch) for i in range(STAMPEDE_CALLS))
    )
    elapsed = time.perf_counter() - started
    await caches[0].invalidate(1)
    correct = all(v == values[0] and v is not None for v in values)
    where = "one cache" if instances == 1 else f"{instances} caches sharing only Redis"
    return StampedeResult(f"redkit get_or_fetch, {where}", source.calls, elapsed, correct)


async def _stampedes(url: str) -> list[StampedeResult]:
    client = redkit.asyncio.connect(url)
    try:
        return [
            await _naive_stampede(client),
            await _redkit_stampede(client, 1),
            await _redkit_stampede(client, STAMPEDE_INSTANCES),
        ]
    finally:
        await client.aclose()


def run(ctx: Context) -> bool:
    """Section 5; whether redkit fetched once for every strategy."""
    console, url = ctx.console, ctx.url
    console.rule("Cache stampede")
    console.print(
        f"{STAMPEDE_CALLS} concurrent reads of one invalidated key; "
        f"the source takes {FETCH_DELAY * 1000:.0f} ms per fetch (async face, asyncio.gather)."
    )
    naive, *protected = asyncio.run(_stampedes(url))
    table = Table(title="Fetches from the source")
    table.add_column("strategy")
    table.add_column("fetches", justify="right")
    table.add_column("wall time", justify="right")
    for result in (naive, *protected):
        table.add_row(result.label, str(result.fetches), ms(result.elapsed))
    console.print(table)
    passed = all(r.fetches == 1 and r.correct for r in protected)
    mark = OK if passed else BAD
    console.print(
        f"fetches: {protected[0].fetches} for {STAMPEDE_CALLS} concurrent misses {mark} "
        f"(naive: {naive.fetches})"
    )
    return passed
