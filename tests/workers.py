"""Code that runs in child processes for the cross-process tests (both faces)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
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


def adaptive_reader(url: str, face: str, prefix: str, reads: int) -> int:
    """Read ``k`` ``reads`` times through an AdaptiveTTLCache; how many reads were hits."""
    if face == "async":
        return asyncio.run(_adaptive_reader_async(url, prefix, reads))
    client = redkit.connect(url)
    cache = redkit.AdaptiveTTLCache(client, prefix)
    hits = sum(cache.get("k") is not None for _ in range(reads))
    client.close()
    return hits


async def _adaptive_reader_async(url: str, prefix: str, reads: int) -> int:
    client = redkit.asyncio.connect(url)
    cache = redkit.asyncio.AdaptiveTTLCache(client, prefix)
    hits = 0
    for _ in range(reads):
        hits += await cache.get("k") is not None
    await cache.aclose()
    await client.aclose()
    return hits


def run_adaptive_readers(url: str, face: str, prefix: str, processes: int, reads: int) -> list[int]:
    """Run :func:`adaptive_reader` in ``processes`` fresh interpreters; their hit counts."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        return pool.starmap(adaptive_reader, [(url, face, prefix, reads)] * processes)


# -- TieredCache across processes ------------------------------------------------------------
#
# Each process keeps reading one key through its TieredCache and checks, on every read, that
# the value (a version number: write n stores n) is at least the number of invalidations the
# process had received when the read started: invalidation n is the one write n caused, so a
# smaller value is one older than an invalidation already received. Commands arrive on a
# Redis list (``<prefix>-cmd-<name>``: ``set:<n>``, ``check:<n>`` (a read must give n: no
# write is in flight) or ``stop``), answered on ``<prefix>-ack-<name>``; the process publishes its
# state (live, sessions, invalidations) in ``<prefix>-state-<name>`` for the test to wait on.


def _tiered_state(cache: Any) -> str:
    stats = cache.stats
    return f"{int(cache.l1.live)}:{cache.invalidations.sessions}:{stats.invalidations}"


def tiered_process(url: str, face: str, prefix: str, name: str) -> dict[str, Any]:
    """Run one process of the two-process TieredCache test (see above); its report."""
    if face == "async":
        return asyncio.run(_tiered_process_async(url, prefix, name))
    client = redkit.connect(url)
    cache = redkit.TieredCache(client, prefix)
    report: dict[str, Any] = {"violations": [], "reads": 0}
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen = cache.stats.invalidations
            value = cache.get("k")
            report["reads"] += 1
            if (value or 0) < seen:
                report["violations"].append((value, seen))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        while True:
            client.set(f"{prefix}-state-{name}", _tiered_state(cache))
            popped = client.blpop([f"{prefix}-cmd-{name}"], timeout=0.05)
            if popped is None:
                continue
            command = popped[1].decode()
            if command == "stop":
                break
            verb, version = command.split(":")
            if verb == "set":
                cache.set("k", int(version))
            elif cache.get("k") != int(version):
                report["violations"].append(("check", version, cache.get("k")))
            client.rpush(f"{prefix}-ack-{name}", command)
    finally:
        stop.set()
        reader.join()
    report.update(
        l1_hits=cache.stats.l1_hits, invalidations=cache.stats.invalidations, final=cache.get("k")
    )
    cache.close()
    client.close()
    return report


async def _tiered_process_async(url: str, prefix: str, name: str) -> dict[str, Any]:
    client = redkit.asyncio.connect(url)
    cache = redkit.asyncio.TieredCache(client, prefix)
    report: dict[str, Any] = {"violations": [], "reads": 0}
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            seen = cache.stats.invalidations
            value = await cache.get("k")
            report["reads"] += 1
            if (value or 0) < seen:
                report["violations"].append((value, seen))
            await asyncio.sleep(0)  # L1 hits never yield: let the listener run

    reader = asyncio.ensure_future(read())
    try:
        while True:
            await client.set(f"{prefix}-state-{name}", _tiered_state(cache))
            popped = await client.blpop([f"{prefix}-cmd-{name}"], timeout=0.05)
            if popped is None:
                continue
            command = popped[1].decode()
            if command == "stop":
                break
            verb, version = command.split(":")
            if verb == "set":
                await cache.set("k", int(version))
            elif (value := await cache.get("k")) != int(version):
                report["violations"].append(("check", version, value))
            await client.rpush(f"{prefix}-ack-{name}", command)
    finally:
        stop.set()
        await reader
    report.update(
        l1_hits=cache.stats.l1_hits,
        invalidations=cache.stats.invalidations,
        final=await cache.get("k"),
    )
    await cache.aclose()
    await client.aclose()
    return report


class Running:
    """Processes started by :func:`start_tiered_processes`."""

    def __init__(self, pool: Any, result: Any) -> None:
        self._pool = pool
        self._result = result

    def get(self, timeout: float) -> list[dict[str, Any]]:
        """Their reports, once they have all stopped (they stop on their ``stop`` command)."""
        try:
            return self._result.get(timeout)  # type: ignore[no-any-return]
        finally:
            self._pool.terminate()
            self._pool.join()


def start_tiered_processes(url: str, face: str, prefix: str, names: list[str]) -> Running:
    """Start :func:`tiered_process` for each of ``names`` in fresh interpreters."""
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(len(names))
    result = pool.starmap_async(tiered_process, [(url, face, prefix, name) for name in names])
    pool.close()  # no more tasks
    return Running(pool, result)


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
