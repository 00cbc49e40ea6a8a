"""Read batching on both faces (the sync twin, on threads, is generated).

Concurrent reads leave together, a read never travels back in time past a write that
returned before it began, a failed request reaches every reader waiting on it, and
``batch_reads=False`` sends one GET per read.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis

from redkit._acompat import ASYNC
from redkit.asyncio import CacheAside
from redkit.errors import BackendUnavailable
from tests._acompat import Event, intercept, pause, run_concurrently, start, wait_until
from tests.servers import commandstats, reset_commandstats

KEYS = 8
WRITES_PER_KEY = 40
READERS = 16


async def test_reads_never_return_a_value_older_than_a_returned_write(
    client: Any, redis_url: str
) -> None:
    """A history check: one writer per key writes versions 1, 2, 3...; each reader notes the
    newest version whose write had returned before its read began and checks it got at
    least that."""
    cache = CacheAside(client, "history")
    await cache.set_many(dict.fromkeys(range(KEYS), 0))
    returned = dict.fromkeys(range(KEYS), 0)
    finished: list[int] = []
    reset_commandstats(redis_url)

    async def writer(key: int) -> list[str]:
        for version in range(1, WRITES_PER_KEY + 1):
            await cache.set(key, version)
            returned[key] = version
            await pause(0)
        finished.append(key)
        return []

    async def reader(seed: int) -> list[str]:
        rng = random.Random(seed)
        stale: list[str] = []
        reads = 0
        while len(finished) < KEYS or reads < 50:
            key = rng.randrange(KEYS)
            floor = returned[key]
            value = await cache.get(key)
            reads += 1
            if value < floor:
                stale.append(f"key {key}: read {value} after version {floor} had returned")
        return stale

    async def actor(i: int) -> list[str]:
        return await writer(i) if i < KEYS else await reader(i)

    results = await run_concurrently(KEYS + READERS, actor)
    assert [problem for found in results for problem in found] == []
    assert commandstats(redis_url).get("mget", 0) > 0, "no read was batched: the test saw nothing"


async def test_a_failed_request_reaches_every_reader_waiting_on_it(client: Any) -> None:
    cache = CacheAside(client, "failing", on_error="raise")
    entered, release = Event(), Event()

    def failing(real: Any) -> Any:
        async def send(*args: Any, **kwargs: Any) -> Any:
            if args[0] == "GET" and not entered.is_set():
                entered.set()
                await release.wait()
            if args[0] in ("GET", "MGET"):
                raise redis.ConnectionError("connection lost")
            return await real(*args, **kwargs)

        return send

    async def failing_mget(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("connection lost")

    intercept(client, failing)
    client.mget_nonatomic = failing_mget  # a Cluster's MGET goes out as a pipeline
    first = start(lambda: cache.get("first"))
    await entered.wait()
    others = [start(lambda i=i: cache.get(f"other-{i}")) for i in range(8)]
    if not ASYNC:
        # the eight wait for the first request to come back, then go out together
        wait_until(lambda: len(cache.store._reader._pending) == 8)  # type: ignore[union-attr]
    release.set()
    for reader in (first, *others):
        with pytest.raises(BackendUnavailable, match="connection lost"):
            await reader.result()


async def test_batch_reads_false_sends_one_get_per_read(client: Any, redis_url: str) -> None:
    cache = CacheAside(client, "solo", batch_reads=False)
    await cache.set_many({i: i for i in range(4)})
    reset_commandstats(redis_url)
    results = await run_concurrently(16, lambda i: cache.get(i % 4))
    assert results == [i % 4 for i in range(16)]
    stats = commandstats(redis_url)
    assert stats.get("get", 0) == 16 and stats.get("mget", 0) == 0
