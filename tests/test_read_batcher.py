"""The async face's auto-pipelining reader (a hand-written primitive, so tested directly)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redkit._acompat import Gate
from redkit._async.read_batcher import ReadBatcher
from redkit.asyncio import CacheAside, connect
from tests.servers import commandstats, reset_commandstats


@pytest.fixture
async def aclient(redis_url: str) -> AsyncIterator[Any]:
    client = connect(redis_url)
    yield client
    await client.aclose()


async def test_concurrent_reads_share_round_trips(
    aclient: Any, redis_url: str, topology: str
) -> None:
    cache = CacheAside(aclient, "batch")
    await cache.set_many({i: {"n": i} for i in range(50)})
    reset_commandstats(redis_url)
    results = await asyncio.gather(*(cache.get(i % 50) for i in range(200)))
    assert results == [{"n": i % 50} for i in range(200)]
    stats = commandstats(redis_url)
    assert stats.get("get", 0) == 0
    # one MGET (one per slot-group pipeline on a Cluster) instead of 200 GETs
    assert 1 <= stats.get("mget", 0) <= (1 if topology == "standalone" else 50)


async def test_hot_key_reads_share_one_request(aclient: Any, redis_url: str) -> None:
    cache = CacheAside(aclient, "hot")
    await cache.set("k", "v")
    reset_commandstats(redis_url)
    assert await asyncio.gather(*(cache.get("k") for _ in range(100))) == ["v"] * 100
    stats = commandstats(redis_url)
    assert stats.get("get", 0) + stats.get("mget", 0) == 1


async def test_a_cancelled_reader_does_not_disturb_the_others(aclient: Any) -> None:
    await aclient.set("k", b"v")
    batcher = ReadBatcher(aclient, cluster=False, gate=Gate(10))
    first = asyncio.ensure_future(batcher.get("k"))
    second = asyncio.ensure_future(batcher.get("k"))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == b"v"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_errors_reach_every_waiter(unused_tcp_port: int) -> None:
    dead = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0)
    batcher = ReadBatcher(dead, cluster=False, gate=Gate(10))
    results = await asyncio.gather(
        *(batcher.get(f"k{i}") for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, Exception) for r in results)
    await dead.aclose()


async def test_a_read_after_a_write_does_not_join_an_older_read(aclient: Any) -> None:
    cache = CacheAside(aclient, "rw")
    await cache.set("k", "old")

    async def reader() -> Any:
        return await cache.get("k")

    early = asyncio.ensure_future(reader())
    await asyncio.sleep(0)  # the early read is now in flight
    await cache.set("k", "new")
    assert await cache.get("k") == "new"
    assert await early in ("old", "new")


async def test_async_cached_also_wraps_plain_functions(aclient: Any) -> None:
    from redkit.asyncio import cached

    cache = CacheAside(aclient, "plain")
    calls: list[int] = []

    @cached(cache)
    def double(n: int) -> int:
        calls.append(n)
        return 2 * n

    assert await double(4) == 8
    assert await double(4) == 8
    assert calls == [4]


async def test_no_request_carries_more_than_max_batch_keys(standalone_server: Any) -> None:
    """Reads queued in one turn beyond ``max_batch`` leave as several MGETs, none larger."""
    from tests._acompat import intercept
    from tests.servers import flush_all

    flush_all(standalone_server.url)
    client = connect(standalone_server.url)
    await client.mset({f"k{i}": i for i in range(10)})
    sizes: list[int] = []

    def recording(real: Any) -> Any:
        async def send(*args: Any, **kwargs: Any) -> Any:
            if args[0] == "MGET":
                sizes.append(len(args) - 1)
            return await real(*args, **kwargs)

        return send

    intercept(client, recording)
    batcher = ReadBatcher(client, cluster=False, gate=Gate(10), max_batch=4)
    values = await asyncio.gather(*(batcher.get(f"k{i}") for i in range(10)))
    assert values == [str(i).encode() for i in range(10)]
    assert sum(sizes) == 10 and max(sizes) <= 4, f"MGET sizes {sizes}"
    await client.aclose()
