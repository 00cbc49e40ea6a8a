"""Code that runs in child processes for the cross-process tests (both faces)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redkit
import redkit.asyncio

FETCH_DELAY = 0.3


def stampede(url: str, face: str, prefix: str, tasks: int, start_at: float) -> list[Any]:
    """Miss one key from ``tasks`` concurrent callers, all starting at wall time ``start_at``.

    The fetcher counts its calls in Redis (``<prefix>-fetches``) so the parent can total them
    across processes.
    """
    counter = f"{prefix}-fetches"
    if face == "async":
        return asyncio.run(_stampede_async(url, prefix, counter, tasks, start_at))
    client = redkit.connect(url)
    cache = redkit.CacheAside(client, prefix)

    def fetch() -> dict[str, str]:
        client.incr(counter)
        time.sleep(FETCH_DELAY)
        return {"value": "expensive"}

    time.sleep(max(0.0, start_at - time.time()))
    with ThreadPoolExecutor(tasks) as pool:
        results = list(pool.map(lambda _: cache.get_or_fetch("hot", fetch), range(tasks)))
    client.close()
    return results


async def _stampede_async(
    url: str, prefix: str, counter: str, tasks: int, start_at: float
) -> list[Any]:
    client = redkit.asyncio.connect(url)
    cache = redkit.asyncio.CacheAside(client, prefix)

    async def fetch() -> dict[str, str]:
        await client.incr(counter)
        await asyncio.sleep(FETCH_DELAY)
        return {"value": "expensive"}

    await asyncio.sleep(max(0.0, start_at - time.time()))
    results = await asyncio.gather(*(cache.get_or_fetch("hot", fetch) for _ in range(tasks)))
    await client.aclose()
    return list(results)


def run_stampede(url: str, face: str, prefix: str, processes: int, tasks: int) -> list[Any]:
    """Run :func:`stampede` in ``processes`` fresh interpreters at once; all their results."""
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 2.0
    with context.Pool(processes) as pool:
        per_process = pool.starmap(
            stampede, [(url, face, prefix, tasks, start_at)] * processes, chunksize=1
        )
    return [result for results in per_process for result in results]
