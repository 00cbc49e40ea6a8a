"""AdaptiveTTLCache on real servers (the sync twin is generated).

Statistics live in Redis next to the entry, are updated by the read itself (one round trip),
expire with the entry and are shared by every process; the TTL the policy gives follows them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from redkit._scripts import script
from redkit.asyncio import AdaptiveTTLCache, KeyMetrics, connect
from redkit.errors import ConfigurationError, InvalidKey
from tests._acompat import FACE, Gated, intercept, start, wait_until
from tests.netproxy import Proxy
from tests.servers import commandstats, flush_all, reset_commandstats
from tests.workers import run_adaptive_readers


async def test_reads_are_counted_in_redis_next_to_the_entry(client: Any) -> None:
    cache = AdaptiveTTLCache(client, "adapt")
    assert await cache.get("k") is None
    await cache.set("k", {"v": 1})
    for _ in range(3):
        assert await cache.get("k") == {"v": 1}
    metrics = await cache.metrics("k")
    assert (metrics.hits, metrics.misses) == (3, 1)
    assert metrics.last_hit is not None and abs(metrics.last_hit - time.time()) < 60
    raw = await client.hgetall("adapt:{k}:stats")
    assert raw[b"hits"] == b"3" and raw[b"misses"] == b"1"
    assert cache.stats.hits == 3 and cache.stats.misses == 1
    await cache.aclose()


async def test_one_round_trip_per_read(client: Any, redis_url: str) -> None:
    cache = AdaptiveTTLCache(client, "trips")
    await cache.set("hit", "v")
    await cache.get("warm-up")  # the script is loaded: EVALSHA from now on
    sent: list[tuple[Any, ...]] = []

    def counted(real: Any) -> Any:
        async def send(*args: Any, **kwargs: Any) -> Any:
            sent.append(args)
            return await real(*args, **kwargs)

        return send

    undo = intercept(client, counted)
    reset_commandstats(redis_url)
    try:
        for _ in range(10):
            assert await cache.get("hit") == "v"
            assert await cache.get("miss") is None
    finally:
        undo()
    assert len(sent) == 20, sent
    stats = commandstats(redis_url)
    assert stats.get("evalsha") == 20 and "eval" not in stats
    # the statistics were updated inside those scripts
    assert stats.get("hincrby") == 20
    assert (await cache.metrics("hit")).hits == 10
    assert (await cache.metrics("miss")).misses == 10
    await cache.aclose()


async def test_statistics_expire_with_their_entry(client: Any) -> None:
    cache = AdaptiveTTLCache(client, "expiring")
    await cache.set("k", "v", ttl=60)
    await cache.get("k")
    entry_ttl = await client.pttl("expiring:{k}")
    stats_ttl = await client.pttl("expiring:{k}:stats")
    assert 0 < stats_ttl <= 60_000 and abs(stats_ttl - entry_ttl) < 1000
    await cache.set("k", "v", ttl=0.05)  # a new life: the statistics follow its expiry
    assert 0 < await client.pttl("expiring:{k}:stats") <= 50
    await wait_until_gone(client, "expiring:{k}", "expiring:{k}:stats")
    await cache.aclose()


async def wait_until_gone(client: Any, *keys: str) -> None:
    """Wait until ``keys`` have expired (each EXISTS lets the server expire them)."""
    deadline = time.monotonic() + 10
    while await client.exists(*keys):
        assert time.monotonic() < deadline, f"{keys} never expired"


async def test_statistics_of_an_absent_entry_live_min_ttl(client: Any) -> None:
    cache = AdaptiveTTLCache(client, "absent", min_ttl=30)
    assert await cache.get("nobody") is None
    assert 0 < await client.pttl("absent:{nobody}:stats") <= 30_000
    await cache.aclose()


async def test_statistics_recreated_by_a_hit_never_outlive_the_entry(client: Any) -> None:
    cache = AdaptiveTTLCache(client, "recreated", max_ttl=500)
    await client.set("recreated:{a}", b"\x00" + b'"written by someone else"', px=20_000)
    await client.set("recreated:{b}", b"\x00" + b'"no expiry"')
    assert await cache.get("a") == "written by someone else"
    assert await cache.get("b") == "no expiry"
    assert 19_000 < await client.pttl("recreated:{a}:stats") <= 20_000
    assert 0 < await client.pttl("recreated:{b}:stats") <= 500_000, "bounded by max_ttl"
    await cache.aclose()


async def test_hot_keys_get_longer_ttls_than_cold_ones(client: Any) -> None:
    cache = AdaptiveTTLCache(client, "hotcold", min_ttl=60, max_ttl=86400, base_ttl=3600)
    await cache.set("hot", 1)
    await cache.set("cold", 1)
    assert await cache.ttl_for("cold") == 3600
    for _ in range(20):
        await cache.get("hot")
    await cache.get("cold")
    await cache.get("cold-miss")  # statistics of a miss
    hot_ttl = await cache.set("hot", 2)
    assert hot_ttl == pytest.approx(3600 * (1 + 20 / 21) * 1.5, abs=0.002)
    assert 0 < (await client.pttl("hotcold:{hot}")) / 1000 - hot_ttl + 1 <= 1
    assert await cache.ttl_for("cold") == pytest.approx(3600 * 1.5 * 1.5)
    await cache.aclose()


async def test_a_replaced_policy_sees_the_shared_metrics_and_the_server_clock(
    client: Any,
) -> None:
    seen: list[tuple[KeyMetrics, float]] = []

    def policy(metrics: KeyMetrics, now: float) -> float:
        seen.append((metrics, now))
        return 10_000 + metrics.hits

    cache = AdaptiveTTLCache(client, "custom", max_ttl=10_002, policy=policy)
    await cache.set("k", "v")
    await cache.get("k")
    await cache.get("k")
    await cache.get("k")
    assert await cache.set("k", "w") == 10_002, "clamped to max_ttl"
    (first, _), (second, now) = seen
    assert first == KeyMetrics()
    assert second.hits == 3 and second.last_hit is not None
    assert abs(now - time.time()) < 60 and 0 <= now - second.last_hit < 5
    await cache.aclose()


async def test_a_policy_returning_garbage_is_a_typed_error(client: Any) -> None:
    cache = AdaptiveTTLCache(client, "garbage", policy=lambda metrics, now: "one hour")  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="must return a number of seconds"):
        await cache.set("k", "v")
    assert not await client.exists("garbage:{k}")
    await cache.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_ttl": 0}, "min_ttl must be a positive"),
        ({"max_ttl": -1}, "max_ttl must be a positive"),
        ({"base_ttl": "1h"}, "base_ttl must be a number"),
        ({"min_ttl": 100, "max_ttl": 10}, "must not exceed max_ttl"),
        ({"policy": 3600}, "policy must be a function"),
        ({"negative_ttl": -1}, "negative_ttl must be >= 0"),
        ({"lock_wait": -1}, "lock_wait must be >= 0"),
        ({"on_error": "ignore"}, "on_error must be one of"),
    ],
)
async def test_bad_options_are_typed_errors(
    client: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AdaptiveTTLCache(client, "bad", **options)


async def test_bad_ids_are_typed_errors(client: Any) -> None:
    cache = AdaptiveTTLCache(client, "ids")
    for bad in ("", True, 1.5, None):
        with pytest.raises(InvalidKey):
            await cache.get(bad)  # type: ignore[arg-type]
    await cache.aclose()


async def test_get_or_fetch_fills_with_the_policy_ttl_and_aligns_the_statistics(
    client: Any,
) -> None:
    cache = AdaptiveTTLCache(client, "fill", base_ttl=1000)
    assert await cache.get_or_fetch("k", lambda: {"from": "source"}) == {"from": "source"}
    assert await cache.get_or_fetch("k", lambda: "not asked") == {"from": "source"}
    entry_ttl = await client.pttl("fill:{k}")
    assert 999_000 < entry_ttl <= 1_000_000
    assert abs(await client.pttl("fill:{k}:stats") - entry_ttl) < 1000
    assert (await cache.metrics("k")).misses == 1
    assert cache.stats.fetches == 1
    await cache.aclose()


async def test_concurrent_misses_fetch_once_and_a_set_revokes_the_fill(client: Any) -> None:
    cache = AdaptiveTTLCache(client, "lease")
    fetch = Gated("stale")
    callers = [start(lambda: cache.get_or_fetch("k", fetch)) for _ in range(5)]
    await fetch.started.wait()
    await wait_until(lambda: cache.stats.misses == 5)  # every caller has missed
    await cache.set("k", "fresh")  # a write while the fetch is in flight
    fetch.release.set()
    assert [await c.result() for c in callers] == ["stale"] * 5
    assert fetch.calls == 1
    assert await cache.get("k") == "fresh", "the older fetch's fill must have been refused"
    await cache.aclose()


async def test_invalidate_removes_the_entry_and_its_statistics(client: Any) -> None:
    cache = AdaptiveTTLCache(client, "inval")
    await cache.set("k", 1)
    await cache.get("k")
    assert await cache.invalidate("k") is True
    assert not await client.exists("inval:{k}", "inval:{k}:stats", "inval:{k}:lock")
    assert await cache.invalidate("k") is False
    await cache.aclose()


async def test_statistics_are_shared_by_two_processes_and_expire_with_their_key(
    client: Any, redis_url: str
) -> None:
    cache = AdaptiveTTLCache(client, "shared")
    await cache.set("k", "v", ttl=120)
    results = run_adaptive_readers(redis_url, FACE, "shared", processes=2, reads=25)
    assert results == [25, 25]  # every read of each process was a hit
    metrics = await cache.metrics("k")
    assert metrics.hits == 50 and metrics.misses == 0
    await cache.set("k", "v", ttl=0.05)  # the entry ends soon; so must its statistics
    await wait_until_gone(client, "shared:{k}", "shared:{k}:stats")
    assert await cache.metrics("k") == KeyMetrics()
    await cache.aclose()


async def test_a_re_sent_read_is_counted_twice(standalone_server: Any) -> None:
    """Documented: a read whose reply timed out is re-sent by redis-py and counted again in
    the shared statistics (a tolerated over-count; it only nudges the TTL chosen)."""
    flush_all(standalone_server.url)
    released = threading.Event()
    with Proxy("127.0.0.1", standalone_server.port) as proxy:
        client = connect(proxy.url_for(standalone_server.url), socket_timeout=0.5, retries=3)
        cache = AdaptiveTTLCache(client, "adapt")
        try:
            await cache.set("k", "v", ttl=60)
            proxy.delay_reply(script("adaptive_get").sha.encode(), released)
            assert await cache.get("k") == "v"
            assert proxy.delayed.is_set()  # the first run's reply was held
            assert (await cache.metrics("k")).hits == 2
        finally:
            released.set()
            await cache.aclose()
            await client.aclose()
