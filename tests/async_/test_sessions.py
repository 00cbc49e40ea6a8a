"""SessionStore: sliding expiry in one round trip, an exact per-user index, no resurrection,
the Cluster write order, reads while Redis refuses writes, re-sent commands (the sync twin
is generated)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redkit._acompat import ASYNC
from redkit._scripts import script
from redkit.asyncio import SessionStore, connect
from redkit.embedded import EmbeddedServer
from redkit.errors import BackendUnavailable, InvalidArgument, InvalidKey
from tests._acompat import pause, run_concurrently, wait_until
from tests.netproxy import Proxy
from tests.servers import commandstats, flush_all, reset_commandstats


async def test_create_get_update_and_ids_from_256_bits(client: Any) -> None:
    store = SessionStore(client, ttl=60)
    ids = {await store.create("alice", {"cart": [1, 2], "n": 0}) for _ in range(20)}
    assert len(ids) == 20 and all(len(i) == 43 for i in ids)
    sid = ids.pop()
    session = await store.get(sid)
    assert session is not None
    assert session.user_id == "alice" and session.data == {"cart": [1, 2], "n": 0}
    assert session.created_at <= session.last_accessed_at <= time.time() + 1
    assert await store.update(sid, {"n": 1, "theme": None}, remove=["cart"])
    assert (await store.get(sid)).data == {"n": 1, "theme": None}  # type: ignore[union-attr]
    assert await store.get("x" * 43) is None and await store.get("not an id") is None
    with pytest.raises(InvalidKey):
        await store.get(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        await store.update(sid, {1: "x"})  # type: ignore[dict-item]


async def test_get_slides_the_expiry_in_one_round_trip(client: Any, redis_url: str) -> None:
    store = SessionStore(client, ttl=60)
    sid = await store.create("bob")
    key = f"session:{{{sid}}}"
    await store.get(sid)  # the server learns the script (a first EVALSHA may need an EVAL)
    await client.pexpire(key, 200)  # nearly expired
    reset_commandstats(redis_url)
    assert await store.get(sid) is not None
    stats = commandstats(redis_url)
    sent = {name: n for name, n in stats.items() if name in ("evalsha", "eval", "hgetall")}
    assert sent.get("evalsha", 0) + sent.get("eval", 0) == 1, stats
    assert await client.pttl(key) > 50_000


async def test_destroy_does_not_extend_first(client: Any, redis_url: str) -> None:
    store = SessionStore(client, ttl=60)
    sid = await store.create("carol")
    reset_commandstats(redis_url)
    assert await store.destroy(sid)
    stats = commandstats(redis_url)
    assert not {"expire", "pexpire", "pexpireat", "expireat"} & set(stats), stats
    assert await store.get(sid) is None and not await store.destroy(sid)
    assert await store.count("carol") == 0


async def test_an_update_racing_a_destroy_never_resurrects(client: Any) -> None:
    store = SessionStore(client, ttl=60)
    for _ in range(20):
        sid = await store.create("dave", {"v": 0})

        async def racer(i: int, sid: str = sid) -> None:
            if i == 3:
                await store.destroy(sid)
            else:
                await store.update(sid, {f"f{i}": i})

        await run_concurrently(8, racer)
        assert await store.get(sid) is None
        assert not await client.exists(f"session:{{{sid}}}")
        assert not await store.update(sid, {"late": 1})
        assert not await client.exists(f"session:{{{sid}}}")


async def test_concurrent_updates_of_different_fields_all_land(client: Any) -> None:
    store = SessionStore(client, ttl=60)
    sid = await store.create("erin", {"base": True})

    async def writer(i: int) -> None:
        await store.update(sid, {f"field{i}": i})

    await run_concurrently(16, writer)
    data = (await store.get(sid)).data  # type: ignore[union-attr]
    assert data == {"base": True, **{f"field{i}": i for i in range(16)}}


async def test_destroy_all_count_and_list_per_user(client: Any) -> None:
    store = SessionStore(client, ttl=60)
    alice = [await store.create("alice", {"i": i}) for i in range(5)]
    bob = [await store.create("bob") for _ in range(2)]
    anonymous = await store.create(None, {"guest": True})
    assert await store.count("alice") == 5 and await store.count("bob") == 2
    assert sorted(s.id for s in await store.list("alice")) == sorted(alice)
    assert await store.destroy_all("alice") == 5
    assert await store.count("alice") == 0 and await store.list("alice") == []
    assert not await client.exists("session:user:{alice}")
    assert await store.count("bob") == 2
    assert (await store.get(anonymous)).user_id is None  # type: ignore[union-attr]
    assert await store.destroy(bob[0]) and await store.count("bob") == 1


async def test_rotate_moves_the_session_and_the_old_id_stops_working(client: Any) -> None:
    store = SessionStore(client, ttl=60)
    old = await store.create(None, {"cart": [1]})
    new = await store.rotate(old, user_id="frank")  # login
    assert new is not None and new != old
    assert await store.get(old) is None and not await store.update(old, {"x": 1})
    session = await store.get(new)
    assert session is not None and session.user_id == "frank" and session.data == {"cart": [1]}
    assert [s.id for s in await store.list("frank")] == [new]
    again = await store.rotate(new)
    assert [s.id for s in await store.list("frank")] == [again]
    assert await store.rotate(new) is None


async def test_the_index_is_exact_after_1000_sessions_expire_unread(
    client: Any, admin: Any
) -> None:
    store = SessionStore(client, ttl=3.0)
    began = time.monotonic()
    if ASYNC:
        await run_concurrently(1000, lambda i: store.create("grace", {"i": i}))
    else:
        for i in range(1000):
            store.create("grace", {"i": i})
    kept = [await store.create("grace", {"kept": i}) for i in range(10)]
    index = "session:user:{grace}"
    if time.monotonic() - began < store.ttl:  # (a very slow machine: some expired already)
        assert await store.count("grace") == 1010
    # the 1,000 expire unread; the 10 stay alive by being read (their horizon is lifted)
    deadline = time.monotonic() + 10
    while await store.count("grace") != 10:
        assert time.monotonic() < deadline, "the expired sessions are still counted"
        for sid in kept:
            assert await store.get(sid) is not None
        await pause(0.05)
    assert sorted(s.id for s in await store.list("grace")) == sorted(kept)
    assert admin.zcard(index) == 10, "dead entries left in the index after a read"
    assert store.events.snapshot().get("session_index_lifted", 0) >= 10
    # now nobody reads: every key ends by itself, the index too, with nothing left over
    # (scan_iter visits every primary; a Cluster client's dbsize() answers for one node)
    await wait_until(lambda: next(iter(admin.scan_iter(count=1000)), None) is None, timeout=5)
    assert await store.count("grace") == 0 and await store.list("grace") == []


async def test_a_crash_between_index_and_session_leaves_only_an_entry_the_next_read_trims(
    client: Any, admin: Any
) -> None:
    """The Cluster order: the index entry is written first; a creator that stops (or
    stalls past the margin) leaves an entry without session, which is never counted and is
    trimmed by the next read once no session can appear for it."""
    store = SessionStore(client, ttl=0.8)
    orphan = "o" * 43
    index = store._index("heidi")
    horizon = await store.store.run(
        _script("session_index_add"), [index], [orphan, store.span_ms, store.margin_ms]
    )
    assert await store.count("heidi") == 0
    await pause(store.window_ms / 1000 + 0.05)  # the creator stalled past its window
    refused = await store.store.run(
        _script("session_create"),
        [f"session:{{{orphan}}}"],
        [horizon, store.ttl_ms, store.margin_ms, store.span_ms, store.window_ms, "heidi", ""],
    )
    assert refused == 0, "a late session write must be refused, or it could outlive its entry"
    assert await store.count("heidi") == 0
    assert admin.zcard(index) == 0, "the orphan entry was not trimmed by the read"


async def test_a_crash_inside_destroy_leaves_an_entry_the_next_read_trims(
    client: Any, admin: Any
) -> None:
    store = SessionStore(client, ttl=4)
    sid = await store.create("ivan")
    await client.delete(f"session:{{{sid}}}")  # destroy's first step, then the crash
    assert await store.count("ivan") == 0
    await pause(store.window_ms / 1000 + 0.05)  # no session can appear for it any more
    assert await store.count("ivan") == 0
    assert admin.zcard(store._index("ivan")) == 0


async def test_sessions_never_pretend_when_redis_is_down(unused_tcp_port: int) -> None:
    dead = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0)
    store = SessionStore(dead)
    sid = "s" * 43
    for call in (
        lambda: store.create("u"),
        lambda: store.get(sid),
        lambda: store.update(sid, {"a": 1}),
        lambda: store.destroy(sid),
        lambda: store.count("u"),
        lambda: store.list("u"),
        lambda: store.destroy_all("u"),
        lambda: store.rotate(sid),
    ):
        with pytest.raises(BackendUnavailable):
            await call()
    await store.aclose()
    await dead.aclose()


def _script(name: str) -> Any:
    return script(name)


# -- reads while Redis refuses writes -----------------------------------------------------------


@pytest.fixture(scope="module")
def primary_and_replica(server_kind: str) -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    """Two dedicated servers, the second a (read-only) replica of the first: their config is
    changed by the tests (maxmemory), so they are not the suite's shared servers."""
    with EmbeddedServer(binary=server_kind) as primary, EmbeddedServer(binary=server_kind) as rep:
        with redis.Redis.from_url(rep.url) as replica:
            replica.replicaof("127.0.0.1", primary.port)
        yield primary, rep


async def test_a_read_succeeds_when_redis_is_full_and_says_the_slide_failed(
    primary_and_replica: tuple[EmbeddedServer, EmbeddedServer],
) -> None:
    """maxmemory with noeviction: writes that grow memory are refused (OOM). A read whose
    horizon must be lifted still answers; the expiry stays capped before the horizon."""
    primary, _ = primary_and_replica
    flush_all(primary.url)
    client = connect(primary.url)
    admin = redis.Redis.from_url(primary.url)
    store = SessionStore(client, ttl=60)
    try:
        sid = await store.create("olga", {"cart": [1, 2]})
        key = f"session:{{{sid}}}"
        seconds, micros = admin.time()
        now = seconds * 1000 + micros // 1000
        admin.hset(key, "h", now + store.ttl_ms)  # the next read must lift the horizon
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # used_memory is far above: writes are refused
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            admin.set("probe", 1)
        session = await store.get(sid)
        assert session is not None and session.data == {"cart": [1, 2]}
        assert session.user_id == "olga"
        assert store.stats.slide_failures == 1
        assert store.events.snapshot()["session_slide_failed"] == 1
        assert 0 < admin.pttl(key) <= store.ttl_ms - store.margin_ms
        admin.config_set("maxmemory", 0)
        assert await store.get(sid) is not None  # writable again: the horizon is lifted
        assert store.stats.index_lifts == 1 and store.stats.slide_failures == 1
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        await store.aclose()
        await client.aclose()


async def test_a_read_on_a_read_only_replica_answers_without_sliding(
    primary_and_replica: tuple[EmbeddedServer, EmbeddedServer],
) -> None:
    primary, replica = primary_and_replica
    flush_all(primary.url)
    writer = connect(primary.url)
    reader = connect(replica.url)
    admin = redis.Redis.from_url(primary.url)
    try:
        sid = await SessionStore(writer, ttl=60).create("pia", {"theme": "dark"})
        key = f"session:{{{sid}}}"
        accessed = admin.hget(key, "a")
        with redis.Redis.from_url(replica.url) as copy:
            await wait_until(lambda: copy.exists(key) == 1)  # the replica has it
        store = SessionStore(reader, ttl=60)
        session = await store.get(sid)
        assert session is not None and session.data == {"theme": "dark"}
        assert session.user_id == "pia"
        assert store.stats.slide_failures == 1
        assert admin.hget(key, "a") == accessed
    finally:
        admin.close()
        await writer.aclose()
        await reader.aclose()


# -- commands that redis-py re-sends ------------------------------------------------------------


class _Resend:
    """A store whose client goes through a proxy that holds back one reply past the
    client's socket timeout, so redis-py re-sends a command the server already ran."""

    def __init__(self, url: str, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client = connect(proxy.url_for(url), socket_timeout=0.5, retries=3)
        self.store = SessionStore(self.client, ttl=60)
        self.hold = threading.Event()

    def arm(self, name: str) -> None:
        """Hold back the reply to the next run of script ``name``."""
        self.proxy.delay_reply(script(name).sha.encode(), self.hold)

    def check(self) -> None:
        """The reply was held back (so the command was re-sent); let it go."""
        assert self.proxy.delayed.is_set(), "no reply was held back"
        self.hold.set()

    async def aclose(self) -> None:
        self.hold.set()
        await self.store.aclose()
        await self.client.aclose()


@pytest.fixture
def resend(standalone_server: EmbeddedServer) -> Iterator[tuple[_Resend, Any]]:
    flush_all(standalone_server.url)
    with Proxy("127.0.0.1", standalone_server.port) as proxy:
        admin = redis.Redis.from_url(standalone_server.url)
        try:
            yield _Resend(standalone_server.url, proxy), admin
        finally:
            admin.close()


def _session_keys(admin: Any) -> list[bytes]:
    return sorted(k for k in admin.scan_iter("session:{*") if not k.endswith(b":gone"))


async def test_a_re_sent_create_makes_one_session(resend: tuple[_Resend, Any]) -> None:
    r, admin = resend
    try:
        await r.store.create("quinn")  # the server learns the script
        admin.flushall()
        r.arm("session_create_local")
        sid = await r.store.create("quinn", {"n": 1})
        r.check()
        assert _session_keys(admin) == [f"session:{{{sid}}}".encode()]
        assert admin.zrange("session:user:{quinn}", 0, -1) == [sid.encode()]
        assert await r.store.count("quinn") == 1
        assert (await r.store.get(sid)).data == {"n": 1}  # type: ignore[union-attr]
    finally:
        await r.aclose()


@pytest.mark.parametrize("step", ["session_take", "session_create"])
async def test_a_re_sent_rotate_keeps_the_new_id(resend: tuple[_Resend, Any], step: str) -> None:
    r, admin = resend
    try:
        await r.store.rotate(await r.store.create("rita"))  # the server learns the scripts
        admin.flushall()
        old = await r.store.create("rita", {"cart": [3]})
        r.arm(step)
        new = await r.store.rotate(old, user_id="sam")
        r.check()
        assert new is not None and new != old
        session = await r.store.get(new)
        assert session is not None and session.data == {"cart": [3]}
        assert session.user_id == "sam"
        assert await r.store.get(old) is None
        assert _session_keys(admin) == [f"session:{{{new}}}".encode()]
        assert [s.id for s in await r.store.list("sam")] == [new]
        assert await r.store.count("rita") == 0
    finally:
        await r.aclose()


async def test_a_re_sent_destroy_says_it_destroyed(resend: tuple[_Resend, Any]) -> None:
    r, admin = resend
    try:
        await r.store.destroy(await r.store.create("tom"))  # the server learns the script
        sid = await r.store.create("tom")
        r.arm("session_destroy")
        assert await r.store.destroy(sid) is True
        r.check()
        assert await r.store.get(sid) is None
        assert admin.zcard("session:user:{tom}") == 0, "the index entry was left behind"
        assert r.store.stats.destroyed == 2
        assert await r.store.destroy(sid) is False  # another call: nothing to destroy
    finally:
        await r.aclose()


async def test_a_re_sent_update_is_harmless(resend: tuple[_Resend, Any]) -> None:
    r, admin = resend
    try:
        sid = await r.store.create("uma", {"a": 1, "b": 2})
        await r.store.update(sid, {"a": 0})  # the server learns the script
        r.arm("session_update")
        assert await r.store.update(sid, {"a": 5}, remove=["b"]) is True
        r.check()
        assert (await r.store.get(sid)).data == {"a": 5}  # type: ignore[union-attr]
        assert _session_keys(admin) == [f"session:{{{sid}}}".encode()]
    finally:
        await r.aclose()


# -- the creation window ------------------------------------------------------------------------


async def test_an_entry_whose_session_is_still_being_written_is_kept(client: Any) -> None:
    """The Cluster order, staged step by step: the index entry is written, then (before the
    session is) the user's sessions are counted, listed and destroyed. None of these may
    trim the entry while its creation window is open, or the session, written next, would
    live outside its user's index (count and destroy_all would miss it)."""
    store = SessionStore(client, ttl=60)
    index = store._index("vera")
    for _ in range(5):  # (a machine too slow to stay inside the window: stage it again)
        sid = secrets.token_urlsafe(32)
        horizon = await store.store.run(
            _script("session_index_add"), [index], [sid, store.span_ms, store.margin_ms]
        )
        assert await store.count("vera") == 0
        assert await store.list("vera") == []
        assert await store.destroy_all("vera") == 0
        written = await store.store.run(
            _script("session_create"),
            [f"session:{{{sid}}}"],
            [horizon, store.ttl_ms, store.margin_ms, store.span_ms, store.window_ms, "vera", ""],
        )
        if written:
            break
    else:
        pytest.fail("every staging took longer than the creation window")
    assert await store.count("vera") == 1
    assert [s.id for s in await store.list("vera")] == [sid]
    assert await store.destroy_all("vera") == 1
