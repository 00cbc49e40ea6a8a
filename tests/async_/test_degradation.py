"""The degradation policy against real server failures (the sync twin is generated).

An outage opens the breaker; a busy server (pool exhausted, READONLY during a failover, a
slot moving) and a refused fill degrade the one call and keep the breaker closed; a refused
password is a configuration error that no fallback hides.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from redkit.asyncio import CacheAside, connect
from redkit.embedded import EmbeddedServer
from redkit.errors import AuthenticationFailed, BackendBusy, BackendRejected
from tests._acompat import Gated, start, wait_until
from tests.servers import flush_all, primaries


def breaker_opened(cache: CacheAside) -> int:
    return cache.stats.snapshot().get("breaker_open", 0)


@pytest.fixture
def private_server() -> Iterator[EmbeddedServer]:
    """A standalone server of its own, for tests that change its configuration."""
    with EmbeddedServer() as server:
        yield server


async def test_a_replica_answering_readonly_degrades_without_opening_the_breaker(
    sentinel_server: EmbeddedServer,
) -> None:
    replica = connect(f"redis://127.0.0.1:{sentinel_server.ports[1]}/0")
    try:
        cache = CacheAside(replica, "readonly")
        assert await cache.get_or_fetch("k", lambda: "from source") == "from source"
        assert cache.stats.errors == 1 and breaker_opened(cache) == 0
        assert await cache.get_or_fetch("k", lambda: "again") == "again"  # Redis still asked
        assert cache.stats.errors == 2
        with pytest.raises(BackendBusy, match="READONLY"):
            await cache.set("k", 1)
        await cache.aclose()
    finally:
        await replica.aclose()


async def test_out_of_memory_on_the_fill_still_returns_the_fetched_value(
    private_server: EmbeddedServer,
) -> None:
    client = connect(private_server.url)
    admin = redis.Redis.from_url(private_server.url)
    try:
        cache = CacheAside(client, "oom")
        fetch = Gated({"big": "x" * 1000})
        reader = start(lambda: cache.get_or_fetch("k", fetch))
        await fetch.started.wait()  # the fill lock is taken: now memory runs out
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        fetch.release.set()
        assert await reader.result() == {"big": "x" * 1000}
        assert cache.stats.snapshot().get("fill_failed") == 1 and breaker_opened(cache) == 0
        with pytest.raises(BackendRejected, match="OutOfMemory"):
            await cache.set("other", 1)
        await cache.store.background.drain()
        assert not admin.exists("oom:{k}:lock"), "the failed fill kept its lock"
        await cache.aclose()
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        await client.aclose()


async def test_a_refused_password_raises_even_with_the_fallback(
    private_server: EmbeddedServer,
) -> None:
    admin = redis.Redis.from_url(private_server.url)
    admin.config_set("requirepass", "right-password")
    wrong = connect(private_server.url, password="wrong-password")
    try:
        cache = CacheAside(wrong, "auth", on_error="fallback")
        with pytest.raises(AuthenticationFailed) as info:
            await cache.get_or_fetch("k", lambda: "must not be served")
        assert "wrong-password" not in str(info.value)
        with pytest.raises(AuthenticationFailed):
            await cache.get("k")
        with pytest.raises(AuthenticationFailed):
            await cache.get_many(["k"])
        assert breaker_opened(cache) == 0 and cache.stats.fetches == 0
        await cache.aclose()
    finally:
        await wrong.aclose()
        admin.execute_command("AUTH", "right-password")
        admin.config_set("requirepass", "")
        admin.close()


async def test_an_exhausted_pool_is_not_an_outage(standalone_server: EmbeddedServer) -> None:
    flush_all(standalone_server.url)
    client = connect(standalone_server.url, max_connections=2, pool_timeout=0.2)
    admin = redis.Redis.from_url(standalone_server.url)
    try:
        admin.delete("queue")
        cache = CacheAside(client, "pool")
        await cache.set("k", "cached")
        # the application holds both connections in blocking pops
        holders = [start(lambda: client.blpop(["queue"], timeout=10)) for _ in range(2)]
        await wait_until(lambda: int(admin.info("clients")["blocked_clients"]) == 2)
        assert await cache.get_or_fetch("k", lambda: "from source") == "from source"
        assert breaker_opened(cache) == 0
        admin.rpush("queue", "a", "b")
        for holder in holders:
            await holder.result()
        assert await cache.get_or_fetch("k", lambda: "from source") == "cached"
        await cache.aclose()
    finally:
        admin.close()
        await client.aclose()


async def test_a_slot_that_never_settles_degrades_the_read(
    cluster_server: EmbeddedServer,
) -> None:
    """A half-configured slot move: the owner sends ASK to a node that is not importing,
    which sends MOVED back; redis-py gives up ("TTL exhausted")."""
    flush_all(cluster_server.url)
    client = connect(cluster_server.url, max_redirections=3)
    cache = CacheAside(client, "moving")
    key = cache.keys.key("k")
    slot = redis.cluster.key_slot(key.encode())
    nodes = primaries(cluster_server.url)
    owner = _owner_of(cluster_server.url, slot)
    other = next(node for node in nodes if node != owner)
    with redis.Redis(*owner) as owner_client, redis.Redis(*other) as other_client:
        other_id = other_client.execute_command("CLUSTER", "MYID")
        owner_client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", other_id)
        try:
            assert await cache.get_or_fetch("k", lambda: "from source") == "from source"
            assert cache.stats.errors >= 1 and breaker_opened(cache) == 0
        finally:
            owner_client.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
    assert await cache.get_or_fetch("k", lambda: "again") in ("again", "from source")
    await cache.aclose()
    await client.aclose()


def _owner_of(url: str, slot: int) -> tuple[str, int]:
    host, port = primaries(url)[0]
    with redis.Redis(host, port) as probe:
        for start_slot, end_slot, primary, *_ in probe.execute_command("CLUSTER", "SLOTS"):
            if start_slot <= slot <= end_slot:
                return primary[0].decode(), int(primary[1])
    raise AssertionError(f"slot {slot} has no owner")
