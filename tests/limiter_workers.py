"""Code that runs in child processes for the cross-process limiter tests (both faces)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redkit
import redkit.asyncio

_DEADLINE = 60.0
#: Each limiter with ``limit`` units and no replenishment during a test.
KINDS = {
    "fixed_window": lambda m, c, limit, prefix: m.FixedWindowLimiter(c, limit, 600, prefix=prefix),
    "sliding_window_log": lambda m, c, limit, prefix: m.SlidingWindowLogLimiter(
        c, limit, 600, prefix=prefix
    ),
    "sliding_window_counter": lambda m, c, limit, prefix: m.SlidingWindowCounterLimiter(
        c, limit, 600, prefix=prefix
    ),
    "token_bucket": lambda m, c, limit, prefix: m.TokenBucketLimiter(
        c, limit, 1 / 3600, prefix=prefix
    ),
    "gcra": lambda m, c, limit, prefix: m.GCRALimiter(c, limit, 3600.0, prefix=prefix),
}


def _barrier(client: Any, key: str, target: int) -> None:
    """Count this process in at ``key`` and wait until ``target`` processes have."""
    client.incr(key)
    deadline = time.monotonic() + _DEADLINE
    while int(client.get(key) or 0) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} never reached {target}")
        time.sleep(0.001)


def hammer(
    url: str, face: str, prefix: str, limit: int, clients: int, attempts: int, processes: int
) -> dict[str, int]:
    """For each limiter kind: ``clients`` concurrent clients in this process make ``attempts``
    hits each on one shared key, all processes starting together; admitted hits per kind."""
    admin = redkit.connect(url)
    admitted = {}
    try:
        for kind, make in KINDS.items():
            _barrier(admin, f"{prefix}-{kind}-ready", processes)
            if face == "async":
                admitted[kind] = asyncio.run(
                    _hammer_async(url, kind, prefix, limit, clients, attempts)
                )
                continue
            client = redkit.connect(url)
            limiter = make(redkit, client, limit, f"{prefix}:{kind}")

            def one_client(_: int, limiter: Any = limiter) -> int:
                return sum(limiter.hit("shared").allowed for _ in range(attempts))

            with ThreadPoolExecutor(clients) as pool:
                admitted[kind] = sum(pool.map(one_client, range(clients)))
            client.close()
    finally:
        admin.close()
    return admitted


async def _hammer_async(
    url: str, kind: str, prefix: str, limit: int, clients: int, attempts: int
) -> int:
    client = redkit.asyncio.connect(url)
    limiter = KINDS[kind](redkit.asyncio, client, limit, f"{prefix}:{kind}")

    async def one_client() -> int:
        return sum([(await limiter.hit("shared")).allowed for _ in range(attempts)])

    counts = await asyncio.gather(*(one_client() for _ in range(clients)))
    await client.aclose()
    return sum(counts)


def run_hammer(
    url: str, face: str, prefix: str, *, limit: int, processes: int, clients: int, attempts: int
) -> dict[str, int]:
    """:func:`hammer` in ``processes`` fresh interpreters at once; admitted hits per kind."""
    context = multiprocessing.get_context("spawn")
    args = (url, face, prefix, limit, clients, attempts, processes)
    with context.Pool(processes) as pool:
        per_process = pool.starmap(hammer, [args] * processes, chunksize=1)
    return {kind: sum(counts[kind] for counts in per_process) for kind in KINDS}


def hit_forever(url: str, face: str, prefix: str, ready: Any) -> None:
    """Hit every limiter kind on many keys in a loop until killed (SIGKILL, mid-call)."""
    if face == "async":
        asyncio.run(_hit_forever_async(url, prefix, ready))
        return
    client = redkit.connect(url, retries=0)
    limiters = [make(redkit, client, 5, f"{prefix}:{kind}") for kind, make in KINDS.items()]
    n = 0
    while True:
        for limiter in limiters:
            limiter.hit(f"user-{n % 200}", 1 + n % 3)
        n += 1
        if n == 20:
            ready.set()


async def _hit_forever_async(url: str, prefix: str, ready: Any) -> None:
    client = redkit.asyncio.connect(url, retries=0)
    limiters = [make(redkit.asyncio, client, 5, f"{prefix}:{kind}") for kind, make in KINDS.items()]
    n = 0
    while True:
        await asyncio.gather(*(lim.hit(f"user-{n % 200}", 1 + n % 3) for lim in limiters))
        n += 1
        if n == 20:
            ready.set()


def naive_fixed_window_hit(url: str, key: str, window: int) -> None:
    """The source article's fixed window (INCR, then EXPIRE when the count is 1), in a process
    that dies between the two commands, as a crash or a deploy would kill it."""
    client = redkit.connect(url)
    current = client.incr(key)
    if current == 1:
        os._exit(1)  # the EXPIRE below never runs
        client.expire(key, window)
