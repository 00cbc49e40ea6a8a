"""The kernel's guards, each with a test that fails without it (the sync twin is generated).

The write barrier (reads and single-flight calls), the in-process single-flight, fill-lock
revocation by every write path, corrupt-entry reporting, the connection gate, and the client
checks. Races are staged with gated fetchers and a held read, never with sleeps.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from redkit._acompat import ASYNC
from redkit.asyncio import CacheAside, connect
from redkit.errors import ConfigurationError
from tests._acompat import FACE, Gated, hold_first_get, run_concurrently, start, wait_until
from tests.servers import commandstats, reset_commandstats


async def test_a_read_that_starts_after_a_write_never_joins_an_older_read(client: Any) -> None:
    cache = CacheAside(client, "barrier")
    await cache.set("k", "old")
    executed, release, undo = hold_first_get(client)  # held once the server has answered
    early = start(lambda: cache.get("k"))
    await executed.wait()
    undo()
    await cache.set("k", "new")
    late = start(lambda: cache.get("k"))
    if ASYNC:
        # the late read must have gone to Redis on its own, not joined the held one
        await wait_until(late.done, timeout=3)
    release.set()
    assert await early.result() == "old"
    assert await late.result() == "new"


async def test_a_fetch_that_starts_after_an_invalidation_never_joins_an_older_fetch(
    client: Any,
) -> None:
    cache = CacheAside(client, "barrier-flight")
    old = Gated("old")
    first = start(lambda: cache.get_or_fetch("k", old))
    await old.started.wait()
    await cache.invalidate("k")
    new = Gated("new")
    new.release.set()
    second = start(lambda: cache.get_or_fetch("k", new))
    assert await second.result() == "new", "joined a fetch that began before the invalidation"
    old.release.set()
    assert await first.result() == "old"
    assert await cache.get("k") == "new", "the older fetch's fill must have been refused"


async def test_concurrent_misses_in_one_process_share_one_fill_lock_request(
    client: Any, redis_url: str
) -> None:
    cache = CacheAside(client, "flight")
    await cache.get_or_fetch("warm-up", lambda: 0)  # scripts loaded: EVALSHA from now on
    cache.stats.reset()
    reset_commandstats(redis_url)
    fetch = Gated({"v": 1})
    callers = [start(lambda: cache.get_or_fetch("hot", fetch)) for _ in range(20)]
    await wait_until(lambda: cache.stats.misses == 20)
    fetch.release.set()
    assert [await c.result() for c in callers] == [{"v": 1}] * 20
    stats = commandstats(redis_url)
    # one cache_get_or_lock + one cache_fill for twenty callers
    assert stats.get("evalsha", 0) + stats.get("eval", 0) == 2
    assert fetch.calls == 1


@pytest.mark.parametrize("writer", ["set", "set_many", "invalidate", "invalidate_pattern"])
async def test_every_write_path_revokes_a_fill_in_progress(client: Any, writer: str) -> None:
    cache = CacheAside(client, "revoke")
    stale = Gated("stale")
    reader = start(lambda: cache.get_or_fetch("k", stale))
    await stale.started.wait()
    if writer == "set":
        await cache.set("k", "fresh")
    elif writer == "set_many":
        await cache.set_many({"k": "fresh", "other": 1})
    elif writer == "invalidate":
        await cache.invalidate("k")
    else:
        await cache.invalidate_pattern("k*")
    stale.release.set()
    assert await reader.result() == "stale"  # that caller asked before the write
    expected = "fresh" if writer.startswith("set") else None
    assert await cache.get("k") == expected, f"{writer} did not revoke the fill"
    assert cache.stats.refused_fills == 1


async def test_a_corrupt_entry_is_reported_exactly_once(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = CacheAside(client, "corrupt-once")
    await client.set("corrupt-once:{k}", b"\x00{not json")
    await client.set("corrupt-once:{j}", b"\x09bad header")
    with caplog.at_level(logging.WARNING, logger="redkit.cache"):
        for _ in range(5):
            assert await cache.get("k", default="miss") == "miss"
            assert await cache.get_many(["k", "j"]) == {}
    reports = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert sum("corrupt-once:{k}" in m for m in reports) == 1
    assert sum("corrupt-once:{j}" in m for m in reports) == 1
    assert cache.stats.snapshot()["corrupt"] == 15


async def test_many_concurrent_misses_on_distinct_keys_never_exhaust_the_pool(
    client: Any,
) -> None:
    # redis-py's pools hold 100 connections; redkit's gate keeps its own commands below that.
    count = 1000 if FACE == "async" else 250
    cache = CacheAside(client, "load")

    async def miss(i: int) -> Any:
        return await cache.get_or_fetch(i, lambda: {"n": i})

    results = await run_concurrently(count, miss)
    assert results == [{"n": i} for i in range(count)]
    snapshot = cache.stats.snapshot()
    assert snapshot.get("error", 0) == 0 and snapshot.get("breaker_open", 0) == 0
    assert cache.stats.fetches == count
    assert len(await cache.get_many(range(count))) == count


async def test_a_client_of_the_other_face_is_refused(redis_url: str) -> None:
    if ASYNC:
        import redkit

        other: Any = redkit.connect(redis_url)
        with pytest.raises(ConfigurationError, match="sync redis-py client"):
            CacheAside(other, "faces")
        other.close()
    else:
        import redkit.asyncio

        other = redkit.asyncio.connect(redis_url)
        with pytest.raises(ConfigurationError, match="asyncio client"):
            CacheAside(other, "faces")
    with pytest.raises(ConfigurationError, match="needs"):
        CacheAside(object(), "faces")


async def test_a_client_that_decodes_responses_is_refused(redis_url: str) -> None:
    decoding = connect(redis_url, decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            CacheAside(decoding, "decoding")
    finally:
        await decoding.aclose()


async def test_a_failed_early_refresh_serves_the_cached_value(client: Any) -> None:
    cache = CacheAside(client, "xfail", ttl=10, beta=1.0, rng=lambda: 0.9999)
    # an entry whose value took 60 s to compute and has 5 s left: XFetch refreshes it now
    await client.set("xfail:{k}", cache.codec.encode("cached", delta_ms=60_000), px=5000)

    async def failing() -> Any:
        raise RuntimeError("source down")

    assert await cache.get_or_fetch("k", failing) == "cached"
    await cache.store.background.drain()
    assert cache.stats.snapshot().get("early_refresh_failed") == 1
    assert cache.stats.fetches == 1
    assert not await client.exists("xfail:{k}:lock"), "the failed refresh left its lock"


async def test_close_stops_background_work_and_the_cache_is_a_context_manager(
    client: Any,
) -> None:
    async with CacheAside(client, "life") as cache:
        assert await cache.get_or_fetch("k", lambda: 1) == 1
    assert cache.store.background.running == 0


async def test_the_gate_follows_the_pool_and_is_capped(redis_url: str) -> None:
    small = connect(redis_url, max_connections=8)
    # redis-py before 8 defaults to this (a pool that never waits: one that does refuses it)
    huge = connect(redis_url, max_connections=2**31, pool_timeout=0)
    try:
        assert CacheAside(small, "gate").store.gate.limit == 6
        assert CacheAside(huge, "gate").store.gate.limit == 1024
    finally:
        await small.aclose()
        await huge.aclose()


async def test_a_command_kept_waiting_at_the_gate_gets_backend_busy(client: Any) -> None:
    """The gate keeps redkit's commands within the pool; one that waits longer than the
    gate's timeout for its turn gets a typed error instead of waiting forever."""
    from redkit._acompat import Gate
    from redkit.errors import BackendBusy

    cache = CacheAside(client, "gate", batch_reads=False, on_error="raise")
    gate = cache.store.gate = Gate(1, timeout=0.05)
    async with gate:  # every permit taken: the next command waits
        waiting = start(lambda: cache.get("k"))
        with pytest.raises(BackendBusy, match="came free"):
            await waiting.result(timeout=10)
    assert await cache.get("k") is None, "the gate works again"
