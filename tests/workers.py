"""Code that runs in child processes for the cross-process tests (both faces)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

import redkit
import redkit.asyncio

_DEADLINE = 60.0


def _wait_for_count(url: str, key: str, target: int) -> None:
    """Block until the counter ``key`` reaches ``target`` (a barrier across processes)."""
    probe = redis.Redis.from_url(url) if "cluster" not in url else None
    cluster = redkit.connect(url) if probe is None else None
    client: Any = probe or cluster
    deadline = time.monotonic() + _DEADLINE
    try:
        while int(client.get(key) or 0) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{key} never reached {target}")
            time.sleep(0.001)
    finally:
        client.close()


def stampede(url: str, face: str, prefix: str, tasks: int, processes: int) -> list[Any]:
    """Miss one key from ``tasks`` concurrent callers in this process.

    Every process waits at a barrier (``<prefix>-ready``) before its callers start; the one
    fetch (counted in ``<prefix>-fetches``) does not return before every caller of every
    process has arrived (``<prefix>-arrived``), so all of them overlap with it.
    """
    total = tasks * processes
    if face == "async":
        return asyncio.run(_stampede_async(url, prefix, tasks, processes, total))
    client = redkit.connect(url)
    cache = redkit.CacheAside(client, prefix, lock_wait=_DEADLINE)

    def fetch() -> dict[str, str]:
        client.incr(f"{prefix}-fetches")
        _wait_for_count(url, f"{prefix}-arrived", total)
        return {"value": "expensive"}

    def call(_: int) -> Any:
        client.incr(f"{prefix}-arrived")
        return cache.get_or_fetch("hot", fetch)

    client.incr(f"{prefix}-ready")
    _wait_for_count(url, f"{prefix}-ready", processes)
    with ThreadPoolExecutor(tasks) as pool:
        results = list(pool.map(call, range(tasks)))
    client.close()
    return results


async def _stampede_async(
    url: str, prefix: str, tasks: int, processes: int, total: int
) -> list[Any]:
    client = redkit.asyncio.connect(url)
    cache = redkit.asyncio.CacheAside(client, prefix, lock_wait=_DEADLINE)

    async def fetch() -> dict[str, str]:
        await client.incr(f"{prefix}-fetches")
        await asyncio.to_thread(_wait_for_count, url, f"{prefix}-arrived", total)
        return {"value": "expensive"}

    async def call() -> Any:
        await client.incr(f"{prefix}-arrived")
        return await cache.get_or_fetch("hot", fetch)

    await client.incr(f"{prefix}-ready")
    await asyncio.to_thread(_wait_for_count, url, f"{prefix}-ready", processes)
    results = await asyncio.gather(*(call() for _ in range(tasks)))
    await cache.aclose()
    await client.aclose()
    return list(results)


def run_stampede(url: str, face: str, prefix: str, processes: int, tasks: int) -> list[Any]:
    """Run :func:`stampede` in ``processes`` fresh interpreters at once; all their results."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        per_process = pool.starmap(
            stampede, [(url, face, prefix, tasks, processes)] * processes, chunksize=1
        )
    return [result for results in per_process for result in results]


def lock_worker(url: str, face: str, name: str, rounds: int) -> list[tuple[int, int, int]]:
    """Take lock ``name`` ``rounds`` times; the history of (enter, exit, fencing token)."""
    if face == "async":
        return asyncio.run(_lock_worker_async(url, name, rounds))
    client = redkit.connect(url)
    lock = redkit.Lock(client, name, ttl=10)
    history = []
    for _ in range(rounds):
        with lock:
            entered = time.monotonic_ns()
            history.append((entered, time.monotonic_ns(), lock.fencing_token))
    client.close()
    return history


async def _lock_worker_async(url: str, name: str, rounds: int) -> list[tuple[int, int, int]]:
    client = redkit.asyncio.connect(url)
    lock = redkit.asyncio.Lock(client, name, ttl=10)
    history = []
    for _ in range(rounds):
        async with lock:
            entered = time.monotonic_ns()
            await asyncio.sleep(0)
            history.append((entered, time.monotonic_ns(), lock.fencing_token))
    await lock.aclose()
    await client.aclose()
    return history


def run_lock_workers(
    url: str, face: str, name: str, processes: int, rounds: int
) -> list[tuple[int, int, int]]:
    """Run :func:`lock_worker` in ``processes`` fresh interpreters at once; merged history."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        per_process = pool.starmap(
            lock_worker, [(url, face, name, rounds)] * processes, chunksize=1
        )
    return [section for history in per_process for section in history]
