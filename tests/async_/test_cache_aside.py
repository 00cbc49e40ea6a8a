"""CacheAside on a real server, standalone and Cluster (the sync twin is generated)."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redkit._scripts import script
from redkit.asyncio import CacheAside, cached, connect
from redkit.errors import (
    BackendUnavailable,
    SerializationError,
    ValueTooLarge,
)
from tests._acompat import pause, start, wait_until
from tests.netproxy import Proxy
from tests.servers import commandstats, flush_all, reset_commandstats


class Counter:
    """A fetcher that counts its calls and returns a fixed value."""

    def __init__(self, value: Any, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        if self.delay:
            await pause(self.delay)
        return self.value


def must_not_fetch() -> Any:
    raise AssertionError("the fetcher ran on what should have been a hit")


@pytest.mark.parametrize("value", [0, "", [], {}, False, 0.0])
async def test_falsy_values_are_hits(client: Any, value: Any) -> None:
    cache = CacheAside(client, "falsy")
    await cache.set("k", value)
    assert await cache.get("k", default="MISSING") == value
    assert await cache.get_or_fetch("k", must_not_fetch) == value
    assert (cache.stats.hits, cache.stats.misses, cache.stats.fetches) == (2, 0, 0)


async def test_miss_fetches_once_then_hits(client: Any) -> None:
    cache = CacheAside(client, "users", ttl=30)
    fetch = Counter({"id": 1, "name": "Ada"})
    assert await cache.get_or_fetch(1, fetch) == {"id": 1, "name": "Ada"}
    assert await cache.get_or_fetch(1, fetch) == {"id": 1, "name": "Ada"}
    assert fetch.calls == 1
    assert cache.stats.hits == 1 and cache.stats.misses == 1 and cache.stats.fetches == 1
    assert 29_000 < await client.pttl("users:{1}") <= 30_000


async def test_none_is_cached_as_a_negative_entry(client: Any) -> None:
    cache = CacheAside(client, "neg", negative_ttl=5)
    fetch = Counter(None)
    assert await cache.get_or_fetch("ghost", fetch) is None
    assert await cache.get_or_fetch("ghost", fetch) is None
    assert fetch.calls == 1
    assert 0 < await client.pttl("neg:{ghost}") <= 5_000
    assert await cache.get("ghost", default="absent") == "absent"


async def test_negative_ttl_zero_does_not_cache_none(client: Any) -> None:
    cache = CacheAside(client, "neg0", negative_ttl=0)
    fetch = Counter(None)
    await cache.get_or_fetch("ghost", fetch)
    await cache.get_or_fetch("ghost", fetch)
    assert fetch.calls == 2
    assert await client.exists("neg0:{ghost}") == 0


async def test_json_handles_datetimes_dataclasses_uuids(client: Any) -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    cache = CacheAside(client, "json")
    moment = datetime.datetime(2026, 11, 26, 5, 0, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=7)
    await cache.set("v", {"at": moment, "p": Point(1, 2), "id": ident})
    assert await cache.get("v") == {
        "at": moment.isoformat(),
        "p": {"x": 1, "y": 2},
        "id": str(ident),
    }


@pytest.mark.parametrize("serializer", ["msgpack", "pickle"])
async def test_other_serializers_round_trip(client: Any, serializer: str) -> None:
    cache = CacheAside(client, f"ser-{serializer}", serializer=serializer)  # type: ignore[arg-type]
    await cache.set(1, {"a": [1, 2, 3], "b": "x"})
    assert await cache.get(1) == {"a": [1, 2, 3], "b": "x"}


async def test_raw_serializer_keeps_bytes_and_str_apart(client: Any) -> None:
    cache = CacheAside(client, "raw", serializer="raw")
    await cache.set("b", b"\x00\xff")
    await cache.set("s", "héllo")
    assert await cache.get("b") == b"\x00\xff"
    assert await cache.get("s") == "héllo"
    with pytest.raises(SerializationError, match="int"):
        await cache.set("i", 5)


async def test_compression_above_threshold(client: Any) -> None:
    cache = CacheAside(client, "zip", compress_threshold=100)
    big = {"text": "abc" * 1000}
    await cache.set("big", big)
    await cache.set("small", {"t": "x"})
    assert len(await client.get("zip:{big}")) < 300
    assert await cache.get("big") == big
    assert await cache.get("small") == {"t": "x"}


async def test_unserialisable_value_raises_typed_error_naming_the_type(client: Any) -> None:
    cache = CacheAside(client, "bad")
    with pytest.raises(SerializationError, match="set") as info:
        await cache.set("k", {"tags": {1, 2}})
    assert isinstance(info.value, TypeError)
    fetch = Counter(object())
    with pytest.raises(SerializationError, match="object"):
        await cache.get_or_fetch("k2", fetch)
    await cache.store.background.drain()  # the fill lock is released in the background
    assert await client.exists("bad:{k}", "bad:{k2}", "bad:{k2}:lock") == 0


async def test_oversized_value_raises_before_sending(client: Any) -> None:
    cache = CacheAside(client, "big", max_value_size=1024)
    with pytest.raises(ValueTooLarge, match="max_value_size=1024"):
        await cache.set("k", "x" * 2000)
    with pytest.raises(ValueTooLarge):
        await cache.set_many({"a": 1, "b": "y" * 5000})
    assert await client.exists("big:{k}", "big:{a}", "big:{b}") == 0


async def test_corrupt_bytes_are_a_miss_logged_once_and_overwritten(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = CacheAside(client, "corrupt")
    for raw in (b"\x00{not json", b"\x09unknown header", b""):
        await client.set("corrupt:{k}", raw)
        with caplog.at_level(logging.WARNING, logger="redkit.cache"):
            assert await cache.get("k", default="miss") == "miss"
            fetch = Counter({"fresh": True})
            assert await cache.get_or_fetch("k", fetch) == {"fresh": True}
        assert fetch.calls == 1
        assert await cache.get("k") == {"fresh": True}
        await cache.invalidate("k")
    assert sum("corrupt:{k}" in r.getMessage() for r in caplog.records) == 1


async def test_get_many_and_set_many(client: Any) -> None:
    cache = CacheAside(client, "many")
    await cache.set_many({i: {"n": i} for i in range(200)} | {"zero": 0, "none": None})
    found = await cache.get_many([*range(0, 300, 7), "zero", "none", "missing"])
    assert found == {i: {"n": i} for i in range(0, 200, 7)} | {"zero": 0}
    assert await cache.get_many([]) == {}
    assert 3590_000 < await client.pttl("many:{5}") <= 3600_000


async def test_invalidate(client: Any) -> None:
    cache = CacheAside(client, "inv")
    await cache.set("a", 1)
    assert await cache.invalidate("a") is True
    assert await cache.invalidate("a") is False
    assert await cache.get("a") is None


async def test_invalidate_pattern_uses_scan_and_stays_in_its_namespace(
    client: Any, redis_url: str
) -> None:
    users = CacheAside(client, "users")
    admins = CacheAside(client, "users:admin")
    globby = CacheAside(client, "we*rd[1]")
    other_version = CacheAside(client, "users", version=2)
    await users.set_many({f"u{i}": i for i in range(300)} | {"keep": "me"})
    await admins.set_many({f"u{i}": i for i in range(10)})
    await globby.set_many({f"u{i}": i for i in range(10)})
    await other_version.set("u1", "v2")
    weird_neighbour = CacheAside(client, "weXrd1")
    await weird_neighbour.set("u1", "neighbour")
    reset_commandstats(redis_url)

    assert await users.invalidate_pattern("u*") == 300
    assert await globby.invalidate_pattern("*") == 10

    assert commandstats(redis_url).get("keys", 0) == 0
    assert commandstats(redis_url).get("scan", 0) >= 1
    assert await users.get("keep") == "me"
    assert await users.get_many([f"u{i}" for i in range(300)]) == {}
    assert len(await admins.get_many([f"u{i}" for i in range(10)])) == 10
    assert await other_version.get("u1") == "v2"
    assert await weird_neighbour.get("u1") == "neighbour"


async def test_version_bump_invalidates_the_namespace(client: Any) -> None:
    v1 = CacheAside(client, "catalog", version=1)
    await v1.set("item", "old")
    v2 = CacheAside(client, "catalog", version=2)
    assert await v2.get("item") is None
    assert await v1.get("item") == "old"


async def test_fetcher_error_releases_the_lock(client: Any) -> None:
    cache = CacheAside(client, "boom")

    async def failing() -> Any:
        raise RuntimeError("source down")

    with pytest.raises(RuntimeError, match="source down"):
        await cache.get_or_fetch("k", failing)
    await cache.store.background.drain()
    assert await client.exists("boom:{k}:lock") == 0
    assert await cache.get_or_fetch("k", Counter(1)) == 1


async def test_falls_back_to_the_fetcher_when_redis_is_down(unused_tcp_port: int) -> None:
    dead = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0, socket_connect_timeout=0.5)
    try:
        cache = CacheAside(dead, "down", breaker=0)
        fetch = Counter({"from": "db"})
        assert await cache.get_or_fetch("k", fetch) == {"from": "db"}
        assert fetch.calls == 1
        assert await cache.get("k", default="miss") == "miss"
        assert cache.stats.errors == 2
        with pytest.raises(BackendUnavailable):
            await cache.set("k", 1)
        with pytest.raises(BackendUnavailable):
            await cache.invalidate("k")

        strict = CacheAside(dead, "down", on_error="raise")
        with pytest.raises(BackendUnavailable, match="unreachable"):
            await strict.get_or_fetch("k", fetch)
    finally:
        await dead.aclose()


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


async def test_breaker_skips_redis_for_a_while_after_it_is_found_down(
    unused_tcp_port: int,
) -> None:
    attempts: list[Any] = []
    dead = connect(
        f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0, on_connection_error=attempts.append
    )
    clock = ManualClock()
    try:
        cache = CacheAside(dead, "breaker", breaker=5.0, clock=clock)
        fetch = Counter("from source")
        assert await cache.get_or_fetch("k", fetch) == "from source"
        tried = len(attempts)
        assert tried >= 1
        for _ in range(10):
            assert await cache.get_or_fetch("k", fetch) == "from source"
            assert await cache.get("k", default="miss") == "miss"
        assert len(attempts) == tried, "Redis was tried again while the breaker was open"
        assert fetch.calls == 11 and cache.stats.errors == 21
        clock.now += 5.1
        assert await cache.get_or_fetch("k", fetch) == "from source"
        assert len(attempts) > tried, "Redis was not tried again after the breaker's time"
    finally:
        await dead.aclose()


async def test_early_refresh_recomputes_before_expiry(client: Any) -> None:
    # XFetch refreshes when -delta * beta * ln(U) >= time left. With U drawn near 0 every
    # time, a 300 ms recompute refreshes once ~2 s remain, and a 0 ms one never does.
    cache = CacheAside(client, "xfetch", ttl=10, beta=1.0, rng=lambda: 0.9999)
    slow = Counter("v1", delay=0.3)
    assert await cache.get_or_fetch("k", slow) == "v1"
    assert slow.calls == 1
    newer = Counter("v2")
    assert await cache.get_or_fetch("k", newer) == "v1"
    assert newer.calls == 0, "10 s left: too early to refresh"
    await client.pexpire("xfetch:{k}", 1500)
    results = [await cache.get_or_fetch("k", newer) for _ in range(10)]
    assert newer.calls == 1, "exactly one early refresh"
    assert results[0] == "v1"
    assert await cache.get("k") == "v2"
    assert await client.pttl("xfetch:{k}") > 9000


async def test_cached_decorator(client: Any) -> None:
    cache = CacheAside(client, "fn")
    calls: list[int] = []

    @cached(cache, ttl=60)
    async def square(n: int) -> int:
        calls.append(n)
        return n * n

    assert [await square(3), await square(3), await square(4)] == [9, 9, 16]
    assert calls == [3, 4]
    await square.invalidate(3)  # type: ignore[attr-defined]
    assert await square(3) == 9
    assert calls == [3, 4, 3]

    @cached(cache, key=lambda user_id: f"user-{user_id}")
    async def load(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    assert await load(7) == {"id": 7}
    assert await cache.get("user-7") == {"id": 7}

    @cached(cache)
    async def takes_object(thing: object) -> int:
        return 1

    with pytest.raises(SerializationError, match="key="):
        await takes_object(object())


async def test_cached_on_methods_leaves_self_out_and_exposes_its_parts(client: Any) -> None:
    cache = CacheAside(client, "methods")
    calls: list[tuple[str, int]] = []

    class Users:
        def __init__(self, name: str) -> None:
            self.name = name

        @cached(cache, ttl=60)
        async def load(self, user_id: int) -> dict[str, int]:
            calls.append((self.name, user_id))
            return {"id": user_id}

    first, second = Users("first"), Users("second")
    assert await first.load(1) == {"id": 1}
    assert await second.load(1) == {"id": 1}, "self is not part of the key"
    assert calls == [("first", 1)]
    assert first.load.key(1) == second.load.key(1) == Users.load.key(1)
    assert first.load.cache is cache
    assert await cache.get(first.load.key(1)) == {"id": 1}
    assert await second.load.invalidate(1) is True
    assert await first.load(1) == {"id": 1}
    assert calls == [("first", 1), ("first", 1)]


async def test_cached_keys_tell_arguments_apart(client: Any) -> None:
    cache = CacheAside(client, "argkeys")

    @cached(cache)
    async def echo(value: Any) -> Any:
        return repr(value)

    assert await echo(1) == "1"
    assert await echo("1") == "'1'"
    assert await echo(None) == "None"
    assert echo.key(1) != echo.key("1") != echo.key(None)
    assert echo.key(a=1) == echo.key(a=1)

    fetched: list[Any] = []

    @cached(cache)
    async def describe(value: Any) -> Any:
        fetched.append(value)
        return len(fetched)

    moment = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)
    arguments = [float("nan"), float("inf"), None, moment, moment.isoformat(), uuid.UUID(int=1)]
    arguments.append(str(arguments[-1]))
    results = [await describe(a) for a in arguments]
    assert results == list(range(1, len(arguments) + 1)), "two arguments shared an entry"
    assert [await describe(a) for a in arguments] == results, "equal arguments must hit"


async def test_works_through_a_sentinel_master(sentinel_server: Any) -> None:
    client = connect(sentinel_server.url)
    try:
        await client.flushall()
        cache = CacheAside(client, "sentinel")
        fetch = Counter({"via": "sentinel"})
        assert await cache.get_or_fetch(1, fetch) == {"via": "sentinel"}
        assert await cache.get_or_fetch(1, fetch) == {"via": "sentinel"}
        assert fetch.calls == 1
        assert await cache.invalidate_pattern("*") == 1
    finally:
        await client.aclose()


# -- commands re-sent after a timeout ------------------------------------------------------
# redis-py re-sends a command whose reply did not come within socket_timeout, though the
# server may have run it: the proxy holds back the first reply to one script until the test
# is over, so the client's retry re-sends it on a new connection. Each state-changing script
# must give the caller the answer its first run would have given.


class Resending:
    """A client through a proxy that holds back one reply (see ``hold``), a direct client."""

    def __init__(self, proxy: Proxy, url: str) -> None:
        self.proxy = proxy
        self.released = threading.Event()
        self.client = connect(proxy.url_for(url), socket_timeout=0.5, retries=3)
        self.direct = redis.Redis.from_url(url)
        self.url = url

    def hold(self, name: str) -> None:
        """Hold back the reply to the next run of script ``name`` (by its SHA1)."""
        self.proxy.delay_reply(script(name).sha.encode(), self.released)


@pytest.fixture
def resending(standalone_server: Any) -> Iterator[Resending]:
    flush_all(standalone_server.url)
    with Proxy("127.0.0.1", standalone_server.port) as proxy:
        setup = Resending(proxy, standalone_server.url)
        try:
            yield setup
        finally:
            setup.released.set()
            setup.direct.close()


async def test_a_re_sent_get_or_lock_recognises_its_own_lock(resending: Resending) -> None:
    cache = CacheAside(resending.client, "resent", lock_wait=0.5)
    resending.hold("cache_get_or_lock")
    fetch = Counter("fetched")
    try:
        assert await cache.get_or_fetch("k", fetch) == "fetched"
        assert resending.proxy.delayed.is_set(), "the first reply was not held back"
        assert fetch.calls == 1
        assert cache.stats.snapshot().get("lock_wait", 0) == 0, "it waited for its own lock"
        assert resending.direct.get("resent:{k}") is not None, "the fill was refused"
        assert resending.direct.exists("resent:{k}:lock") == 0
    finally:
        await cache.aclose()
        await resending.client.aclose()


async def test_a_re_sent_fill_is_not_counted_as_refused(resending: Resending) -> None:
    cache = CacheAside(resending.client, "resent")
    resending.hold("cache_fill")
    try:
        assert await cache.get_or_fetch("k", Counter("fetched")) == "fetched"
        assert resending.proxy.delayed.is_set(), "the first reply was not held back"
        assert cache.stats.refused_fills == 0, "its own fill was counted as refused"
        assert await cache.get_or_fetch("k", must_not_fetch) == "fetched"
    finally:
        await cache.aclose()
        await resending.client.aclose()


async def test_a_re_sent_fill_never_stores_over_a_newer_write(resending: Resending) -> None:
    """The fill ran, its reply was lost, a set replaced the entry: the re-sent fill is
    refused (the set's value stays)."""
    cache = CacheAside(resending.client, "resent")
    resending.hold("cache_fill")

    async def fetch_then_race() -> str:
        return "fetched"

    try:
        result = start(lambda: cache.get_or_fetch("k", fetch_then_race))
        await wait_until(resending.proxy.delayed.is_set)  # the fill ran; its reply is held
        resending.direct.set("resent:{k}", cache.codec.encode("newer"))
        assert await result.result() == "fetched"
        assert await cache.get("k") == "newer"
    finally:
        await cache.aclose()
        await resending.client.aclose()


async def test_a_re_sent_set_never_overwrites_a_later_set(resending: Resending) -> None:
    """A's set ran, its reply was lost, B set a newer value: A's re-send writes nothing."""
    cache = CacheAside(resending.client, "resent")
    other_client = connect(resending.url)
    other = CacheAside(other_client, "resent")
    resending.hold("cache_set")
    try:
        first = start(lambda: cache.set("k", "older"))
        await wait_until(resending.proxy.delayed.is_set)  # A's set ran; its reply is held
        await other.set("k", "newer")
        await first.result()  # A's re-send has run
        assert await other.get("k") == "newer"
    finally:
        await cache.aclose()
        await other.aclose()
        await resending.client.aclose()
        await other_client.aclose()


async def test_a_re_sent_invalidate_removes_the_entry_but_reports_false(
    resending: Resending,
) -> None:
    """Documented: invalidate's re-send finds nothing left to remove, so it reports False
    although the first run removed the entry (the entry is gone either way)."""
    cache = CacheAside(resending.client, "resent")
    try:
        await cache.set("k", "v")
        resending.hold("cache_invalidate")
        assert await cache.invalidate("k") is False
        assert resending.proxy.delayed.is_set()  # the first run's reply was held
        assert await cache.get("k") is None
    finally:
        await cache.aclose()
        await resending.client.aclose()
