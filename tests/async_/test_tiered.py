"""TieredCache on real servers (the sync twin is generated).

L1 is filled only from Redis reads under a valid ticket, dropped by every write Redis reports
(redkit's, a plain client's, an expiry, FLUSHALL), emptied and bypassed while the
invalidation channel is down, and bounded with least-recently-used eviction. Races are
staged with held reads and gated reconnections, never with sleeps.

Every write under the prefix comes back to a listening cache as an invalidation, this
process's own writes included, at a moment of the server's choosing: a test starts the
listener first (``listening``) and lets the echoes of its writes arrive (``warm(...,
echoes=n)``) before it counts on what L1 holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.cluster

from redkit._acompat import ASYNC
from redkit.asyncio import TieredCache, connect
from redkit.embedded import EmbeddedServer
from redkit.errors import BackendRejected, ConfigurationError, InvalidKey
from tests._acompat import Event, Gated, hold_first_get, start, wait_until
from tests.netproxy import Proxy
from tests.servers import flush_all, primaries


@pytest.fixture
def plain(redis_url: str) -> Iterator[Any]:
    """A plain sync redis-py client that knows nothing of redkit."""
    if redis_url.startswith("redis+cluster://"):
        host, port = primaries(redis_url)[0]
        client: Any = redis.cluster.RedisCluster(host=host, port=port)
    else:
        client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


async def listening(cache: TieredCache) -> TieredCache:
    """``cache`` with its invalidation channel up (a read of Redis starts it); stats zeroed."""
    await cache.get("listen")
    await wait_until(lambda: cache.l1.live)
    cache.stats.reset()
    return cache


async def warm(cache: TieredCache, *ids: Any, echoes: int = 0) -> None:
    """Once ``echoes`` invalidations have arrived (those of the test's writes so far), read
    ``ids`` into L1."""
    await wait_until(lambda: cache.stats.invalidations >= echoes)
    for id in ids:
        await cache.get(id)
        assert id in cache.l1, f"{id!r} did not reach L1"


def kill_invalidation_connections(url: str) -> int:
    """CLIENT KILL every invalidation connection (the only pub/sub clients) on every primary."""
    killed = 0
    for host, port in primaries(url):
        with redis.Redis(host=host, port=port) as admin:
            killed += int(admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
    return killed


async def test_reads_go_to_redis_then_to_l1_and_stats_split_the_tiers(client: Any) -> None:
    cache = await listening(TieredCache(client, "tiers"))
    await cache.set("k", {"v": 1})
    await warm(cache, "k", echoes=1)
    before = cache.stats.l2_hits
    for _ in range(5):
        assert await cache.get("k") == {"v": 1}
    assert cache.stats.l1_hits == 5 and cache.stats.l2_hits == before
    assert await cache.get("absent") is None
    assert cache.stats.misses == 1
    assert cache.stats.hits == cache.stats.l1_hits + cache.stats.l2_hits
    assert cache.stats.l1_size == 1
    await cache.aclose()


async def test_a_write_by_a_plain_redis_py_client_invalidates_l1(client: Any, plain: Any) -> None:
    cache = await listening(TieredCache(client, "plainwrite"))
    await cache.set(1, "old")
    await warm(cache, 1, echoes=1)
    plain.set("plainwrite:{1}", cache.codec.encode("written by plain redis-py"))
    await wait_until(lambda: 1 not in cache.l1)
    assert await cache.get(1) == "written by plain redis-py"
    assert cache.stats.invalidations == 2
    plain.delete("plainwrite:{1}")
    await wait_until(lambda: 1 not in cache.l1)
    assert await cache.get(1) is None
    await cache.aclose()


async def test_another_instance_writing_invalidates_this_one(client: Any) -> None:
    reader, writer = await listening(TieredCache(client, "pair")), TieredCache(client, "pair")
    await writer.set("k", "v1")
    await warm(reader, "k", echoes=1)
    await writer.set("k", "v2")
    await wait_until(lambda: "k" not in reader.l1)
    assert await reader.get("k") == "v2"
    await writer.invalidate("k")
    await wait_until(lambda: "k" not in reader.l1)
    assert await reader.get("k") is None
    await reader.aclose()
    await writer.aclose()


async def test_this_process_reads_its_own_writes_at_once(client: Any) -> None:
    cache = await listening(TieredCache(client, "own"))
    await cache.set("k", "v1")
    await warm(cache, "k", echoes=1)
    await cache.set("k", "v2")
    assert await cache.get("k") == "v2"  # no waiting for the invalidation to come round
    await warm(cache, "k", echoes=2)
    assert await cache.invalidate("k") is True
    assert await cache.get("k") is None
    await cache.aclose()


async def test_a_read_sent_before_an_invalidation_never_fills_l1_after_it(
    client: Any, plain: Any
) -> None:
    cache = await listening(TieredCache(client, "race"))
    await cache.set("k", "old")
    await cache.set("other", "x")
    await warm(cache, "other", echoes=2)  # "k" is not in L1
    # held once the server has answered (a read of Redis: value and PTTL, one script)
    answered, release, undo = hold_first_get(client, "EVALSHA")
    read = start(lambda: cache.get("k"))
    await answered.wait()
    undo()
    plain.set("race:{k}", cache.codec.encode("new"))
    await wait_until(lambda: cache.stats.invalidations == 3)  # this process knows
    release.set()
    assert await read.result() == "old"  # it was read before the write: fine to return
    assert "k" not in cache.l1, "an older value entered L1 after its invalidation"
    assert await cache.get("k") == "new"
    await cache.aclose()


async def test_a_killed_invalidation_connection_empties_l1_until_it_is_back(
    client: Any, plain: Any, redis_url: str
) -> None:
    cache = await listening(TieredCache(client, "killed"))
    await cache.set("k", "v1")
    await warm(cache, "k", echoes=1)
    gate = Event()
    subscribe = cache.invalidations._subscribe

    async def gated_subscribe(conn: Any) -> None:
        await gate.wait()
        await subscribe(conn)

    cache.invalidations._subscribe = gated_subscribe  # type: ignore[method-assign]
    flushes = cache.stats.l1_flushes
    assert kill_invalidation_connections(redis_url) >= 1
    await wait_until(lambda: not cache.l1.live)
    assert len(cache.l1) == 0 and cache.stats.l1_flushes == flushes + 1
    plain.set("killed:{k}", cache.codec.encode("v2"))  # nobody hears of this write
    hits = cache.stats.l1_hits
    for _ in range(3):
        assert await cache.get("k") == "v2"  # from Redis, every time
    assert cache.stats.l1_hits == hits and len(cache.l1) == 0, "L1 filled while deaf"
    gate.set()
    await wait_until(lambda: cache.l1.live)
    await warm(cache, "k")
    assert await cache.get("k") == "v2"
    plain.set("killed:{k}", cache.codec.encode("v3"))
    await wait_until(lambda: "k" not in cache.l1)  # invalidations flow again
    assert await cache.get("k") == "v3"
    await cache.aclose()


async def test_a_silent_invalidation_channel_empties_l1_until_it_answers_again(
    standalone_server: EmbeddedServer,
) -> None:
    """A partition (packets dropped: nothing closed, nothing refused) leaves the invalidation
    connection open and silent; its health check gets no answer, so L1 is emptied and
    bypassed, and it fills again only once a channel answers."""
    flush_all(standalone_server.url)
    direct = redis.Redis.from_url(standalone_server.url)
    with Proxy("127.0.0.1", standalone_server.port) as proxy:
        client = connect(
            proxy.url_for(standalone_server.url), socket_timeout=1, socket_connect_timeout=1
        )
        cache = await listening(TieredCache(client, "silent", health_check_interval=0.5))
        try:
            await cache.set("k", "v1")
            await wait_until(lambda: cache.stats.invalidations >= 1)
            for _ in range(100):  # a loaded machine may miss a health check: read again
                await wait_until(lambda: cache.l1.live)
                if await cache.get("k") == "v1" and "k" in cache.l1:
                    break
            assert "k" in cache.l1
            flushes = cache.stats.l1_flushes
            proxy.partition()
            direct.set("silent:{k}", cache.codec.encode("v2"))  # its invalidation is lost
            await wait_until(lambda: not cache.l1.live, timeout=20)
            assert len(cache.l1) == 0 and cache.stats.l1_flushes == flushes + 1
            proxy.heal()
            await wait_until(lambda: cache.l1.live, timeout=20)
            assert await cache.get("k") == "v2"
        finally:
            proxy.heal()
            await cache.aclose()
            await client.aclose()
            direct.close()


async def test_flushall_and_expiry_reach_l1(client: Any, redis_url: str, plain: Any) -> None:
    cache = await listening(TieredCache(client, "flushes"))
    await cache.set("a", 1)
    await cache.set("b", 2, ttl=1)
    await warm(cache, "a", "b", echoes=2)
    await wait_until(lambda: "b" not in cache.l1)  # Redis expired it and said so
    assert "a" in cache.l1
    for host, port in primaries(redis_url):
        with redis.Redis(host=host, port=port) as admin:
            admin.flushall()
    await wait_until(lambda: len(cache.l1) == 0)
    assert await cache.get("a") is None
    await cache.aclose()


async def test_l1_evicts_the_least_recently_used_entry(client: Any) -> None:
    cache = await listening(TieredCache(client, "lru", l1_max_size=3))
    for id in (1, 2, 3, 4):
        await cache.set(id, id * 10)
    await warm(cache, 1, 2, 3, echoes=4)
    assert await cache.get(1) == 10  # 1 is used again: 2 is now the least recently used
    await warm(cache, 4)
    assert cache.l1.keys() == [3, 1, 4]
    assert cache.stats.l1_evictions == 1
    await cache.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


async def test_an_l1_entry_lives_l1_ttl_seconds(client: Any) -> None:
    clock = Clock()
    cache = await listening(TieredCache(client, "l1ttl", l1_ttl=5, clock=clock))
    await cache.set("k", "v")
    await warm(cache, "k", echoes=1)
    clock.now += 4.9
    hits = cache.stats.l1_hits
    assert await cache.get("k") == "v" and cache.stats.l1_hits == hits + 1
    clock.now += 0.1
    assert await cache.get("k") == "v"
    assert cache.stats.l1_hits == hits + 1, "an expired L1 entry was served"
    await cache.aclose()


async def test_an_l1_entry_never_outlives_the_redis_ttl_it_was_read_with(client: Any) -> None:
    # Redis announces an expiry only when it deletes the key, which for a key nobody reads
    # on the server can take minutes: L1 must stop serving it on its own, even with a longer
    # l1_ttl and no invalidation arriving (the fake clock runs ahead of the server's).
    clock = Clock()
    cache = await listening(TieredCache(client, "pttl", l1_ttl=60, clock=clock))
    await cache.set("short", "s", ttl=30)
    await cache.set("fetched", "f", ttl=30)
    await warm(cache, "short", echoes=2)
    assert await cache.get_or_fetch("fetched", lambda: "never") == "f"
    assert "fetched" in cache.l1
    clock.now += 29.5
    hits = cache.stats.l1_hits
    assert await cache.get("short") == "s" and await cache.get_or_fetch("fetched", list) == "f"
    assert cache.stats.l1_hits == hits + 2
    clock.now += 0.5
    assert "short" not in cache.l1 and "fetched" not in cache.l1
    assert await cache.get("short") == "s"  # from Redis: it is still there
    assert await cache.get_or_fetch("fetched", lambda: "never") == "f"
    assert cache.stats.l1_hits == hits + 2, "L1 served an entry past its Redis TTL"
    await cache.aclose()


async def test_ids_of_either_type_are_invalidated_and_bad_ids_never_hit(
    client: Any, plain: Any
) -> None:
    cache = await listening(TieredCache(client, "idtypes"))
    await cache.set(1, "one")
    await warm(cache, 1, "1", echoes=1)
    for bad in (True, 1.0, [1], "", None):
        with pytest.raises(InvalidKey):
            await cache.get(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidKey):
            await cache.get_or_fetch(bad, lambda: "never")  # type: ignore[arg-type]
    plain.set("idtypes:{1}", cache.codec.encode("uno"))
    await wait_until(lambda: 1 not in cache.l1 and "1" not in cache.l1)
    assert await cache.get(1) == "uno" and await cache.get("1") == "uno"
    await cache.aclose()


async def test_negative_entries_are_served_from_l1(client: Any) -> None:
    cache = await listening(TieredCache(client, "negative"))
    fetch = Gated(None)
    fetch.release.set()
    assert await cache.get_or_fetch("nobody", fetch) is None
    await warm(cache, "nobody", echoes=1)  # the fill's echo
    assert await cache.get_or_fetch("nobody", fetch) is None
    assert await cache.get("nobody", "default") == "default"
    assert fetch.calls == 1
    await cache.aclose()


async def test_get_or_fetch_fetches_once_and_the_next_read_fills_l1(client: Any) -> None:
    cache = await listening(TieredCache(client, "fetch"))
    fetch = Gated({"from": "source"})
    callers = [start(lambda: cache.get_or_fetch("k", fetch)) for _ in range(5)]
    await fetch.started.wait()
    await wait_until(lambda: cache.stats.misses == 5)
    fetch.release.set()
    assert [await c.result() for c in callers] == [{"from": "source"}] * 5
    assert fetch.calls == 1
    assert "k" not in cache.l1, "a fetched value reaches L1 only through a read of Redis"
    await warm(cache, "k", echoes=1)  # the fill's echo
    assert await cache.get_or_fetch("k", fetch) == {"from": "source"} and fetch.calls == 1
    await cache.aclose()


@pytest.fixture
def private_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


async def test_a_value_redis_rejected_never_enters_l1(private_server: EmbeddedServer) -> None:
    client = connect(private_server.url)
    admin = redis.Redis.from_url(private_server.url)
    try:
        cache = await listening(TieredCache(client, "rejected"))
        await cache.set("k", "old")
        await warm(cache, "k", echoes=1)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        with pytest.raises(BackendRejected, match="OutOfMemory"):
            await cache.set("k", "x" * 1000)
        assert "k" not in cache.l1
        assert await cache.get("k") == "old"  # what Redis holds, and so may L1
        await cache.aclose()
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        await client.aclose()


@pytest.fixture
def private_sentinel() -> Iterator[EmbeddedServer]:
    """A Sentinel group of its own: the test fails it over."""
    with EmbeddedServer(sentinel=True) as server:
        yield server


def _master(sentinel: Any) -> tuple[str, int]:
    host, port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
    return host.decode(), int(port)


async def test_after_a_sentinel_failover_l1_follows_the_new_master(
    private_sentinel: EmbeddedServer,
) -> None:
    client = connect(private_sentinel.url)
    first_sentinel = private_sentinel.url.split("//")[1].split(",")[0]
    sentinel = redis.Redis.from_url(f"redis://{first_sentinel}")
    try:
        cache = await listening(TieredCache(client, "failover", health_check_interval=0.2))
        await cache.set(1, "v1")
        await warm(cache, 1, echoes=1)
        old = _master(sentinel)
        sentinel.execute_command("SENTINEL", "FAILOVER", "mymaster")
        await wait_until(lambda: _master(sentinel) != old)
        host, port = _master(sentinel)
        with redis.Redis(host=host, port=port) as new_master:
            # the old master may still be up, unaware: nobody tells it of this write
            new_master.set("failover:{1}", cache.codec.encode("v2"))
            await wait_until(lambda: 1 not in cache.l1, timeout=3)
            assert await cache.get(1) == "v2"
            # The channel comes back on the new master (whether the echo of v2 arrives
            # depends on when: read until L1 holds v2 for good)
            await wait_until(lambda: cache.l1.live)
            deadline = time.monotonic() + 5
            while 1 not in cache.l1:
                assert time.monotonic() < deadline, "L1 never filled on the new master"
                await cache.get(1)
            new_master.set("failover:{1}", cache.codec.encode("v3"))
            await wait_until(lambda: 1 not in cache.l1, timeout=3)
        assert await cache.get(1) == "v3"
        await cache.aclose()
    finally:
        sentinel.close()
        await client.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"l1_max_size": 0}, "l1_max_size must be a positive int"),
        ({"l1_max_size": True}, "l1_max_size must be a positive int"),
        ({"l1_max_size": 10.5}, "l1_max_size must be a positive int"),
        ({"l1_ttl": 0}, "l1_ttl must be a positive number"),
        ({"l1_ttl": "60"}, "l1_ttl must be a number"),
        ({"l2_ttl": -1}, "l2_ttl must be a positive number"),
        ({"health_check_interval": 0}, "health_check_interval must be a positive"),
        ({"negative_ttl": -1}, "negative_ttl must be >= 0"),
        ({"on_error": "ignore"}, "on_error must be one of"),
    ],
)
async def test_bad_options_are_typed_errors(
    client: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TieredCache(client, "bad", **options)


async def test_close_stops_the_listener_and_reads_still_work(client: Any) -> None:
    cache = await listening(TieredCache(client, "closing"))
    await cache.set("k", "v")
    await warm(cache, "k", echoes=1)
    assert cache.store.background.running >= 1
    await cache.aclose()
    assert cache.store.background.running == 0
    assert len(cache.l1) == 0 and not cache.l1.live
    await cache.get("k")  # a read after close never starts the listener again
    assert "k" not in cache.l1 and cache.store.background.running == 0
    if not ASYNC:
        import threading

        assert not [t for t in threading.enumerate() if "closing" in t.name]


async def test_a_listener_whose_loop_ended_starts_again_on_the_next_read(client: Any) -> None:
    if not ASYNC:
        pytest.skip("a thread has no event loop to lose")
    cache = await listening(TieredCache(client, "restart"))
    await cache.set("k", 1)
    await warm(cache, "k", echoes=1)
    await cache.store.background.close()  # what an event loop's shutdown does to its tasks
    assert not cache.l1.live and len(cache.l1) == 0
    await listening(cache)  # the next read starts a listener again
    await warm(cache, "k")
    assert cache.invalidations.sessions == 2
    await cache.aclose()


async def test_it_is_a_context_manager(client: Any) -> None:
    async with TieredCache(client, "ctx") as cache:
        await listening(cache)
        await cache.set("k", 1)
        await warm(cache, "k", echoes=1)
    assert cache.store.background.running == 0
