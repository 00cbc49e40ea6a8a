"""WriteBehind over a real SQLite database and a real server (the sync twin is generated)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.schema import CreateTable

from redkit import Backoff
from redkit._core.write_behind import GROUP
from redkit._scripts import script
from redkit.asyncio import WriteBehind, connect
from redkit.errors import (
    BackendRejected,
    BackpressureError,
    ConfigurationError,
    InvalidArgument,
    RepositoryError,
)
from redkit.integrations.sqlalchemy import AsyncSQLAlchemyRepository
from tests._acompat import Event, pause, run_concurrently, start
from tests.memory_limit import capped_memory
from tests.netproxy import Proxy
from tests.servers import flush_all

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100)),
    sa.Column("seq", sa.Integer, sa.CheckConstraint("seq >= 0", name="seq_not_negative")),
    sa.Column("version", sa.BigInteger),
)

FAST = Backoff.exponential(0.001, 0.005, jitter="none")

#: What a test opened, closed after it even when it fails (a flusher left running would
#: write into the next test's keys).
_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
async def _close_what_the_test_opened() -> AsyncIterator[None]:
    yield
    for repo in [o for o in _OPEN if isinstance(o, Repo)]:
        repo.release.set()  # a flusher stuck in a gated commit
    while _OPEN:
        opened = _OPEN.pop()
        if isinstance(opened, WriteBehind):
            await opened.aclose()


class Repo(AsyncSQLAlchemyRepository):
    """The real repository, with switches for the tests.

    ``down``: every call raises ConnectionError (the database is unreachable). ``gate``: the
    next upsert signals ``entered`` and waits for ``release`` before writing (a slow commit,
    or a paused process, staged with events). ``refuse``: ids whose upsert is refused.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _OPEN.append(self)
        self.down = False
        self.gate = False
        self.entered = Event()
        self.release = Event()
        self.refuse: set[int] = set()
        self.upserts: list[list[int]] = []

    async def upsert_many(self, entities: Any) -> int:
        rows = list(entities)
        if self.down:
            raise ConnectionError("database unreachable")
        if self.gate:
            self.gate = False
            self.entered.set()
            await self.release.wait()
        bad = [row["id"] for row in rows if row["id"] in self.refuse]
        if bad:
            raise RepositoryError(f"refused ids {bad}")
        self.upserts.append([row["id"] for row in rows])
        return await super().upsert_many(rows)

    async def find_by_id(self, id: Any) -> Any:
        if self.down:
            raise ConnectionError("database unreachable")
        return await super().find_by_id(id)

    async def rows(self) -> dict[int, dict[str, Any]]:
        async with self.engine.connect() as conn:
            result = await conn.execute(sa.select(users))
            return {row.id: dict(row._mapping) for row in result}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Any]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/users.db")
    async with engine.begin() as conn:
        await conn.execute(CreateTable(users))
    yield engine
    await engine.dispose()


@pytest.fixture
def repo(engine: Any) -> Repo:
    return Repo(engine, users)


@pytest.fixture
def versioned(engine: Any) -> Repo:
    return Repo(engine, users, version_column="version")


def behind(client: Any, repo: Any, **options: Any) -> WriteBehind:
    """A WriteBehind without background flusher unless asked (tests call flush())."""
    options.setdefault("flusher", False)
    options.setdefault("retry_backoff", FAST)
    wb = WriteBehind(client, "wb", repo, **options)
    _OPEN.append(wb)
    return wb


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until ``await check()`` holds, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pause(0.002)


async def test_writes_are_in_redis_when_write_returns_and_reach_the_database_on_flush(
    client: Any, repo: Repo
) -> None:
    wb = behind(client, repo)
    await wb.write({"id": 1, "name": "Ada", "seq": 0})
    layout = wb.layout
    shard = layout.shard_of("1")
    entries = await client.xrange(layout.stream(shard))
    assert [fields[b"i"] for _, fields in entries] == [b"1"]
    entry = await client.get(layout.entry(shard, "1"))
    assert entry == entries[0][1][b"d"], "the stream and the cache hold the same write"
    assert await client.pttl(layout.entry(shard, "1")) == -1, "an unflushed entry must not expire"
    assert await wb.get(1) == {"id": 1, "name": "Ada", "seq": 0}
    assert await repo.rows() == {}
    assert await wb.backlog() == 1

    assert await wb.flush() == 1
    assert (await repo.rows())[1]["name"] == "Ada"
    assert await wb.backlog() == 0
    assert await client.xlen(layout.stream(shard)) == 0, "flushed entries are deleted"
    assert 0 < await client.pttl(layout.entry(shard, "1")) <= 3600_000
    await wb.aclose()


async def test_writes_of_one_id_coalesce_and_the_last_one_wins(client: Any, repo: Repo) -> None:
    wb = behind(client, repo)
    for seq in range(10):
        await wb.write({"id": 7, "name": f"v{seq}", "seq": seq})
    await wb.write({"id": 8, "name": "other", "seq": 0})
    assert await wb.get(7) == {"id": 7, "name": "v9", "seq": 9}
    assert await wb.flush() == 2
    rows = await repo.rows()
    assert rows[7]["seq"] == 9 and rows[8]["name"] == "other"
    assert sorted(id for batch in repo.upserts for id in batch) == [7, 8]
    assert wb.stats.coalesced == 9
    assert wb.stats.flushed == 2
    await wb.aclose()


async def test_batches_hold_at_most_batch_size_entities(client: Any, repo: Repo) -> None:
    wb = behind(client, repo, batch_size=7, shards=1)
    for id in range(30):
        await wb.write({"id": id, "seq": 0})
    assert await wb.flush() == 30
    assert max(len(batch) for batch in repo.upserts) == 7
    assert len(await repo.rows()) == 30
    await wb.aclose()


async def test_get_falls_back_to_the_repository_without_the_version_field(
    client: Any, versioned: Repo
) -> None:
    wb = behind(client, versioned)
    assert wb.version_field == "version"
    await versioned.upsert_many([{"id": 3, "name": "db", "seq": 1, "version": 5}])
    assert await wb.get(3) == {"id": 3, "name": "db", "seq": 1}
    assert await wb.get(4) is None
    assert wb.stats.misses == 2
    await wb.write({"id": 3, "name": "new", "seq": 2})
    assert await wb.flush() == 1
    row = (await versioned.rows())[3]
    assert row["name"] == "new" and row["version"] > 5
    await wb.aclose()


async def test_a_failing_database_acknowledges_nothing_and_the_batch_waits(
    client: Any, repo: Repo
) -> None:
    wb = behind(client, repo, max_attempts=1)
    for id in range(5):
        await wb.write({"id": id, "seq": 1})
    repo.down = True
    assert await wb.flush() == 0
    assert await wb.backlog() == 5
    assert wb.stats.dead_letters == 0, "an outage must not dead-letter anything"
    assert wb.stats.failed_batches >= 1
    repo.down = False

    async def flushed() -> bool:
        await wb.flush()
        return len(await repo.rows()) == 5

    await eventually(flushed)
    assert await wb.backlog() == 0
    await wb.aclose()


async def test_a_poisoned_entity_goes_to_the_dead_letter_stream_while_the_others_are_written(
    client: Any, repo: Repo, caplog: pytest.LogCaptureFixture
) -> None:
    wb = behind(client, repo, max_attempts=3, shards=1)
    for id in range(20):
        await wb.write({"id": id, "name": f"u{id}", "seq": -1 if id == 13 else id})
    with caplog.at_level(logging.WARNING, logger="redkit.write_behind"):
        assert await wb.flush() == 19
        rows = await repo.rows()
        assert sorted(rows) == [i for i in range(20) if i != 13]

        async def dead() -> bool:
            await wb.flush()
            return await wb.dead_letters() == 1

        await eventually(dead)
    assert wb.stats.dead_letters == 1
    assert await wb.backlog() == 0
    [(_, letter)] = await client.xrange(wb.layout.dead(0))
    assert letter[b"i"] == b"13"
    assert b"seq_not_negative" in letter[b"e"] or b"CHECK" in letter[b"e"]
    assert letter[b"a"] == b"3"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "13" in errors[0].getMessage()
    assert 13 not in await repo.rows()
    await wb.aclose()


async def test_backpressure_refuses_writes_past_the_backlog_and_trims_nothing(
    client: Any, repo: Repo
) -> None:
    wb = behind(client, repo, max_backlog=5, shards=1)
    for id in range(5):
        await wb.write({"id": id, "seq": 0})
    with pytest.raises(BackpressureError, match="max_backlog=5"):
        await wb.write({"id": 99, "seq": 0})
    assert wb.stats.refused_writes == 1
    assert await wb.backlog() == 5
    entries = await client.xrange(wb.layout.stream(0))
    assert [int(fields[b"i"]) for _, fields in entries] == [0, 1, 2, 3, 4]
    assert await client.get(wb.layout.entry(0, "99")) is None, "a refused write stores nothing"
    assert await wb.get(99) is None
    assert await wb.flush() == 5
    await wb.write({"id": 99, "seq": 0})
    await wb.aclose()


async def test_backpressure_is_split_over_the_shards(client: Any, repo: Repo) -> None:
    wb = behind(client, repo, max_backlog=8, shards=4)
    written = 0
    with pytest.raises(BackpressureError):
        for id in range(100):
            await wb.write({"id": id, "seq": 0})
            written += 1
    assert 2 <= written <= 8
    for shard in range(4):
        assert await client.xlen(wb.layout.stream(shard)) <= 2
    await wb.aclose()


async def test_a_write_waits_for_room_up_to_backpressure_timeout(client: Any, repo: Repo) -> None:
    wb = behind(client, repo, max_backlog=1, shards=1, backpressure_timeout=10)
    await wb.write({"id": 1, "seq": 0})
    waiting = start(lambda: wb.write({"id": 2, "seq": 0}))
    await eventually(lambda: _refused_once(wb))
    assert not waiting.done()
    first = await wb.flush()  # makes room (and may write the waiting one too)
    await waiting.result()
    assert first + await wb.flush() == 2
    assert sorted(await repo.rows()) == [1, 2]

    quick = behind(client, repo, max_backlog=1, shards=1, backpressure_timeout=0.02)
    await quick.write({"id": 3, "seq": 0})
    with pytest.raises(BackpressureError):
        await quick.write({"id": 4, "seq": 0})
    await wb.aclose()
    await quick.aclose()


async def _refused_once(wb: WriteBehind) -> bool:
    """Whether a write was refused and waits for room (it wakes the flusher to make some)."""
    return wb.flusher._wake.is_set()


async def test_a_dead_flushers_pending_entries_are_claimed_in_order(
    client: Any, repo: Repo
) -> None:
    wb = behind(client, repo, shards=1, claim_after=30)
    stream, lease = wb.layout.stream(0), wb.layout.lease(0)
    await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for id in range(10):
        await wb.write({"id": id, "name": "old", "seq": 1})
    # A flusher that read them (they are pending for it) and died holding its lease.
    read = await client.xreadgroup(GROUP, "dead-flusher", {stream: ">"}, count=100)
    assert len(read[0][1]) == 10
    await client.set(lease, "dead-flusher", px=60_000)
    for id in range(5):
        await wb.write({"id": id, "name": "new", "seq": 2})

    assert await wb.flush() == 0, "the lease is still the dead flusher's"
    assert await repo.rows() == {}
    await client.delete(lease)  # it lapses
    assert await wb.flush() == 15
    assert wb.stats.claimed == 10
    rows = await repo.rows()
    assert {id: row["name"] for id, row in rows.items()} == {
        **{id: "new" for id in range(5)},
        **{id: "old" for id in range(5, 10)},
    }
    assert repo.upserts[0] == list(range(10)), "the claimed entries go first"
    assert (await client.xpending(stream, GROUP))["pending"] == 0
    assert await wb.backlog() == 0
    await wb.aclose()


async def test_a_live_flusher_keeps_its_shards_during_a_slow_commit(
    client: Any, repo: Repo
) -> None:
    """Without leases (or without the heartbeat), B would write id 1's newer value while A
    still commits the older one, and A's late commit would overwrite it.

    The lease is generous (3 s, renewed every second) so that a loaded machine does not lose
    it; the test watches the heartbeat push its expiry back twice while A commits."""
    a = behind(client, repo, shards=1, claim_after=3.0, flusher=True, flush_interval=0.01)
    b = behind(client, repo, shards=1, claim_after=3.0)
    lease = a.layout.lease(0)
    repo.gate = True
    await a.write({"id": 1, "name": "older", "seq": 1})
    await repo.entered.wait()
    await b.write({"id": 1, "name": "newer", "seq": 2})
    renewals, last = 0, await client.pttl(lease)
    deadline = time.monotonic() + 30
    while renewals < 2:
        assert time.monotonic() < deadline, "the heartbeat did not renew the lease"
        assert await b.flush() == 0, "B took the shard while A commits"
        assert await client.get(lease) == a.flusher.token.encode()
        ttl = await client.pttl(lease)
        renewals += ttl > last
        last = ttl
        await pause(0.02)
    repo.release.set()

    async def newest_written() -> bool:
        return (await repo.rows()).get(1, {}).get("name") == "newer"

    await eventually(newest_written)
    assert [row for batch in repo.upserts for row in batch] == [1, 1]
    await a.aclose()
    await b.aclose()


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_a_flusher_whose_lease_was_taken_over_does_not_write_its_held_batch(
    client: Any, repo: Repo
) -> None:
    """A holds a batch for a retry; its lease lapses (on an injected clock) and B takes the
    shard over and writes newer values. A hears nothing of it (its heartbeat is late, as on
    a loaded machine): only its own lease check keeps it from writing the older batch."""
    clock = ManualClock()
    a = behind(
        client, repo, shards=1, claim_after=600, flusher=True, flush_interval=600, clock=clock
    )

    async def late_heartbeat() -> None:
        return None

    a.flusher._heartbeat = late_heartbeat  # type: ignore[method-assign]
    b = behind(client, repo, shards=1, claim_after=600)
    repo.down = True
    await a.write({"id": 1, "name": "older", "seq": 1})

    async def held() -> bool:
        a.flusher.wake()
        return a.stats.failed_batches >= 1

    await eventually(held)
    assert a.flusher.shards == [0]
    await client.delete(a.layout.lease(0))  # A's lease lapses...
    repo.down = False
    await b.write({"id": 1, "name": "newer", "seq": 2})
    assert await b.flush() == 2  # ...and B takes the shard over: A's entry, then the newer
    assert (await repo.rows())[1]["name"] == "newer"
    upserts = len(repo.upserts)

    clock.now += 601  # past A's lease, by A's own clock
    a.flusher.wake()

    async def a_moved_on() -> bool:
        a.flusher.wake()
        return not a.flusher.shards or len(repo.upserts) > upserts

    await eventually(a_moved_on)
    assert len(repo.upserts) == upserts, "A wrote a batch after its lease ran out"
    assert (await repo.rows())[1]["name"] == "newer"
    await a.aclose()
    await b.aclose()


@pytest.mark.parametrize("version_column", [True, False], ids=["versioned", "unversioned"])
async def test_a_paused_flusher_that_lost_its_lease_cannot_overwrite_a_newer_value(
    client: Any, engine: Any, version_column: bool
) -> None:
    """A flusher paused past its lease wakes up and commits an older batch: the version
    column is what keeps the newer value (without it, the older value wins: the test
    stages the race for real)."""
    repo = Repo(engine, users, version_column="version" if version_column else None)
    a = behind(client, repo, shards=1, claim_after=30)
    b = behind(client, repo, shards=1, claim_after=30)
    await a.write({"id": 1, "name": "older", "seq": 1})
    repo.gate = True
    paused = start(a.flush)
    await repo.entered.wait()
    # A is paused inside its commit; its lease lapses (no heartbeat: no background flusher).
    await client.delete(a.layout.lease(0))
    await b.write({"id": 1, "name": "newer", "seq": 2})
    assert await b.flush() == 2  # claims A's pending entry, then the newer one
    assert (await repo.rows())[1]["name"] == "newer"
    repo.release.set()
    await paused.result()
    expected = "newer" if version_column else "older"
    assert (await repo.rows())[1]["name"] == expected
    await a.aclose()
    await b.aclose()


async def test_dead_letters_replay_unless_superseded(client: Any, repo: Repo) -> None:
    wb = behind(client, repo, max_attempts=1, shards=1)
    repo.refuse = {1, 2}
    await wb.write({"id": 1, "name": "first", "seq": 1})
    await wb.write({"id": 2, "name": "second", "seq": 1})
    await wb.write({"id": 3, "name": "third", "seq": 1})
    assert await wb.flush() == 1
    assert await wb.dead_letters() == 2
    repo.refuse = set()
    await wb.write({"id": 2, "name": "second, again", "seq": 2})
    assert await wb.flush() == 1

    assert await wb.replay_dead_letters() == 1
    assert wb.stats.snapshot()["replay_superseded"] == 1
    assert await wb.dead_letters() == 0
    assert await wb.flush() == 1
    rows = await repo.rows()
    assert {id: row["name"] for id, row in rows.items()} == {
        1: "first",
        2: "second, again",
        3: "third",
    }
    await wb.aclose()


async def test_a_dead_lettered_write_is_not_served_and_a_replay_serves_it_again(
    client: Any, repo: Repo
) -> None:
    """Readers see what the database holds once it refused a write; a replay brings the
    intended value back (cache and database); a newer write is not hidden by an older
    dead letter."""
    wb = behind(client, repo, max_attempts=1, shards=1)
    await wb.write({"id": 1, "name": "stored", "seq": 1})
    await wb.write({"id": 2, "name": "other", "seq": 1})
    assert await wb.flush() == 2
    repo.refuse = {1, 2}
    await wb.write({"id": 1, "name": "refused", "seq": 2})
    await wb.write({"id": 2, "name": "refused too", "seq": 2})
    assert await wb.flush() == 0
    assert await wb.dead_letters() == 2
    assert (await wb.get(1))["name"] == "stored", "the refused value must not be served"
    assert await client.exists(wb.layout.entry(0, "1")), "the entry still marks the write"
    assert await client.pttl(wb.layout.entry(0, "1")) == -1
    await wb.write({"id": 2, "name": "newer", "seq": 3})  # supersedes the dead letter
    assert (await wb.get(2))["name"] == "newer"

    repo.refuse = set()
    assert await wb.replay_dead_letters() == 1
    assert (await wb.get(1))["name"] == "refused", "a replay serves the intended value"
    assert (await wb.get(2))["name"] == "newer"
    assert await wb.flush() == 2
    rows = await repo.rows()
    assert (rows[1]["name"], rows[2]["name"]) == ("refused", "newer")
    assert (await wb.get(1))["name"] == "refused"
    await wb.aclose()


async def test_several_flushers_share_the_shards(client: Any, repo: Repo) -> None:
    options = {"claim_after": 3.0, "flusher": True, "flush_interval": 0.01}
    a = behind(client, repo, **options)
    b = behind(client, repo, **options)
    await a.start()
    await b.start()

    async def shared() -> bool:
        sa_, sb = set(a.flusher.shards), set(b.flusher.shards)
        return bool(sa_ and sb and not sa_ & sb and len(sa_ | sb) == 16)

    await eventually(shared)
    for id in range(300):
        await (a if id % 2 else b).write({"id": id, "seq": id})

    async def all_written() -> bool:  # committed, then acknowledged (counted)
        return a.stats.flushed + b.stats.flushed == 300

    await eventually(all_written)
    assert len(await repo.rows()) == 300
    assert a.stats.flushed > 0 and b.stats.flushed > 0
    await a.aclose()

    async def b_took_over() -> bool:
        return len(b.flusher.shards) == 16

    await eventually(b_took_over)
    await b.aclose()


async def fill_redis(wb: WriteBehind) -> list[int]:
    """Write 1 KB entities until Redis refuses one on every shard (out of memory); the ids
    whose write was taken."""
    taken: list[int] = []
    refused: set[int] = set()
    id = 0
    while len(refused) < wb.layout.shards:
        assert id < 200_000, "Redis never ran out of memory"
        try:
            await wb.write({"id": id, "name": "x" * 1000, "seq": 0})
        except BackendRejected as exc:
            assert "maxmemory" in str(exc)
            refused.add(wb.layout.shard_of(str(id)))
        else:
            taken.append(id)
        id += 1
    return taken


async def test_a_flusher_starts_and_drains_when_the_backlog_has_filled_redis(
    client: Any, repo: Repo, redis_url: str
) -> None:
    """The flusher is what frees memory: with Redis full (maxmemory, noeviction) it must
    start (register, take its leases, create the consumer groups) and drain, after which
    writes are taken again."""
    writer = behind(client, repo, shards=4, max_backlog=None)
    with capped_memory(redis_url):
        taken = await fill_redis(writer)
        assert taken, "nothing was written before Redis filled up"
        # Nor can the shard count be recorded (a prefix whose count is not recorded yet).
        await client.delete(writer.layout.meta)
        drainer = behind(client, repo, shards=4, flusher=True, flush_interval=0.01)
        await drainer.start()

        async def drained() -> bool:
            return await drainer.backlog() == 0

        await eventually(drained, timeout=30)
        assert sorted(await repo.rows()) == taken
        await writer.write({"id": -1, "name": "after", "seq": 0})
        assert await writer.flush() in (0, 1)  # the drainer may have written it already
        await drainer.aclose()
    assert (await repo.rows())[-1]["name"] == "after"


async def test_closing_drains_the_backlog(client: Any, repo: Repo) -> None:
    async with behind(client, repo, flusher=True, flush_interval=60) as wb:
        for id in range(50):
            await wb.write({"id": id, "seq": id})
    assert len(await repo.rows()) == 50
    assert await wb.backlog() == 0
    members = await client.zrange(wb.layout.registry, 0, -1)
    assert wb.flusher.token.encode() not in members, "a stopped flusher leaves the registry"
    with pytest.raises(ConfigurationError, match="closed"):
        await wb.write({"id": 1, "seq": 1})


async def test_every_writer_and_flusher_of_a_prefix_uses_one_shard_count(
    client: Any, repo: Repo
) -> None:
    await behind(client, repo, shards=4).write({"id": 1, "seq": 0})
    other = behind(client, repo, shards=8)
    with pytest.raises(ConfigurationError, match="4 shards"):
        await other.write({"id": 1, "seq": 0})
    with pytest.raises(ConfigurationError, match="4 shards"):
        await other.flush()


async def test_an_entry_that_is_not_a_write_is_dead_lettered_not_dropped(
    client: Any, repo: Repo
) -> None:
    wb = behind(client, repo, shards=1)
    await wb.write({"id": 1, "seq": 0})
    await client.xadd(wb.layout.stream(0), {"foreign": "entry"})
    await wb.write({"id": 2, "seq": 0})
    assert await wb.flush() == 2
    [(_, letter)] = await client.xrange(wb.layout.dead(0))
    assert b"not a write-behind entry" in letter[b"e"]
    assert await wb.backlog() == 0
    await wb.aclose()


async def test_an_undecodable_write_is_dead_lettered(client: Any, repo: Repo) -> None:
    wb = behind(client, repo, shards=1)
    await client.xadd(wb.layout.stream(0), {"i": "5", "d": b"\x00{not json"})
    await wb.write({"id": 6, "seq": 0})
    assert await wb.flush() == 1
    [(_, letter)] = await client.xrange(wb.layout.dead(0))
    assert letter[b"i"] == b"5" and b"CorruptEntry" in letter[b"e"]
    await wb.aclose()


async def test_get_serves_the_newest_write_while_an_older_one_is_flushed(
    client: Any, repo: Repo
) -> None:
    wb = behind(client, repo, shards=1)
    entry = wb.layout.entry(0, "1")
    await wb.write({"id": 1, "name": "first", "seq": 1})
    repo.gate = True
    flushing = start(wb.flush)
    await repo.entered.wait()  # "first" is being committed
    await wb.write({"id": 1, "name": "second", "seq": 2})
    first_release, repo.release, repo.entered = repo.release, Event(), Event()
    repo.gate = True
    first_release.set()
    await repo.entered.wait()  # "first" was acknowledged; "second" is being committed
    assert (await repo.rows())[1]["name"] == "first"
    assert await client.pttl(entry) == -1, "the newer write's entry must not expire unflushed"
    assert (await wb.get(1))["name"] == "second"
    repo.release.set()
    assert await flushing.result() == 2
    assert (await repo.rows())[1]["name"] == "second"
    assert await client.pttl(entry) > 0
    await wb.aclose()


async def test_closing_with_redis_down_neither_hangs_nor_raises(
    repo: Repo, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    from redkit.asyncio import connect

    dead = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0)
    wb = WriteBehind(dead, "wb", repo, flusher=True, retry_backoff=FAST)
    wb.flusher.start()
    with caplog.at_level(logging.WARNING, logger="redkit.write_behind"):
        await pause(0.05)
        await wb.aclose()
    assert any("stopped without draining" in r.getMessage() for r in caplog.records)
    await dead.aclose()


# -- atomic updates ---------------------------------------------------------------------------


async def test_concurrent_increments_are_never_lost(client: Any, repo: Repo) -> None:
    """1,000 increments at once (50 tasks or threads of 20), on an id with a cached value
    and on one that exists nowhere yet: every one counts, in the cache and the database."""
    wb = behind(client, repo, shards=4)
    await wb.write({"id": 1, "name": "counter", "seq": 0})

    async def bump(worker: int) -> None:
        for _ in range(20):
            await wb.incr(1 if worker % 2 else 2, "seq")

    await run_concurrently(50, bump)
    assert await wb.get(1) == {"id": 1, "name": "counter", "seq": 500}
    assert await wb.get(2) == {"id": 2, "seq": 500}
    await wb.flush()
    rows = await repo.rows()
    assert (rows[1]["seq"], rows[1]["name"], rows[2]["seq"]) == (500, "counter", 500)
    await wb.aclose()


async def test_an_update_changes_only_its_numbers(client: Any, repo: Repo) -> None:
    """The server patches the numbers into the cached JSON: every other value reads back
    exactly as written (floats to the last digit, big integers, empty lists, strings that
    look like JSON), integers stay integers, floats stay floats."""
    wb = behind(client, repo)
    entity = {
        "id": 5,
        "name": 'Zoë "q" /}{,:',
        "seq": 1,
        "ratio": 0.30000000000000004,
        "big": 2**60,
        "tags": [],
        "nested": {"seq": 100, "s": "},{\\"},
        "none": None,
    }
    await wb.write(entity)
    after = await wb.update(5, {"seq": 2, "ratio": 0.1, "hits": 3, "none": 1.5})
    expected = {**entity, "seq": 3, "ratio": 0.30000000000000004 + 0.1, "hits": 3, "none": 1.5}
    assert after == expected
    assert type(after["seq"]) is int and type(after["hits"]) is int
    assert await wb.get(5) == expected
    assert await wb.incr(5, "seq", by=-3) == 0
    assert await wb.incr(5, "ratio", by=1) == expected["ratio"] + 1
    assert await wb.incr(5, "half", by=0.5) == 0.5
    assert type(await wb.incr(5, "half", by=0.5)) is float

    with pytest.raises(InvalidArgument, match="not a number"):
        await wb.incr(5, "name")
    with pytest.raises(InvalidArgument, match="2\\*\\*53"):
        await wb.incr(5, "big")
    for bad in (True, "1", float("nan"), float("inf"), None):
        with pytest.raises(InvalidArgument):
            await wb.incr(5, "seq", by=bad)  # type: ignore[arg-type]
    for field in ("id", "", 3):
        with pytest.raises(InvalidArgument):
            await wb.update(5, {field: 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgument):
        await wb.update(5, {})
    assert (await wb.get(5))["seq"] == 0, "a refused update changes nothing"
    squeezed = behind(client, repo, compress_threshold=10)
    with pytest.raises(ConfigurationError, match="json"):
        await squeezed.incr(5, "seq")
    await wb.aclose()


async def test_an_update_starts_from_the_repository_when_nothing_is_cached(
    client: Any, versioned: Repo
) -> None:
    wb = behind(client, versioned, max_attempts=1)
    await versioned.upsert_many([{"id": 3, "name": "db", "seq": 41, "version": 1}])
    assert await wb.incr(3, "seq") == 42
    assert await wb.get(3) == {"id": 3, "name": "db", "seq": 42}
    assert await wb.flush() == 1
    assert (await versioned.rows())[3]["seq"] == 42
    # A dead-lettered write is not what the database holds: an update starts from the latter.
    versioned.refuse = {3}
    await wb.write({"id": 3, "name": "refused", "seq": 1000})
    await wb.flush()
    assert await wb.dead_letters() == 1
    versioned.refuse = set()
    assert await wb.incr(3, "seq") == 43
    assert await wb.replay_dead_letters() == 0, "the update superseded the dead letter"
    assert await wb.flush() == 1
    assert (await versioned.rows())[3]["seq"] == 43
    await wb.aclose()


# -- re-sent scripts (a reply held back by the proxy past the client's socket_timeout) -----


class Resend:
    """A WriteBehind whose client goes through a proxy that can hold back one reply, so that
    redis-py re-sends a script the server has already run; ``direct`` is a second one."""

    def __init__(self, server: Any, repo: Repo, **options: Any) -> None:
        flush_all(server.url)
        self.proxy = Proxy("127.0.0.1", server.port)
        self.slow_client = connect(self.proxy.url_for(server.url), socket_timeout=0.5, retries=3)
        self.direct_client = connect(server.url)
        self.slow = behind(self.slow_client, repo, shards=1, **options)
        self.direct = behind(self.direct_client, repo, shards=1, **options)
        self.hold = threading.Event()

    def hold_reply(self, name: str) -> None:
        """Hold back the reply to the next run of script ``name`` until ``release``."""
        self.proxy.delay_reply(script(name).sha.encode(), self.hold)

    async def held(self) -> None:
        async def delayed() -> bool:
            return self.proxy.delayed.is_set()

        await eventually(delayed)

    async def aclose(self) -> None:
        self.hold.set()
        await self.slow.aclose()
        await self.direct.aclose()
        await self.slow_client.aclose()
        await self.direct_client.aclose()
        self.proxy.close()


async def test_a_re_sent_write_does_not_pass_a_newer_write(
    standalone_server: Any, repo: Repo
) -> None:
    rig = Resend(standalone_server, repo)
    try:
        await rig.slow.write({"id": 1, "name": "zero", "seq": 0})  # scripts loaded
        rig.hold_reply("wb_write")
        first = start(lambda: rig.slow.write({"id": 1, "name": "first", "seq": 1}))
        await rig.held()  # "first" is in Redis; its reply is held back
        await rig.direct.write({"id": 1, "name": "second", "seq": 2})
        await first.result()  # returns after the re-send, which must change nothing
        assert (await rig.direct.get(1))["name"] == "second"
        assert await rig.direct.backlog() == 3
        assert await rig.direct.flush() == 1
        assert (await repo.rows())[1]["name"] == "second"
    finally:
        await rig.aclose()


async def test_a_re_sent_increment_counts_once(standalone_server: Any, repo: Repo) -> None:
    rig = Resend(standalone_server, repo)
    try:
        await rig.slow.write({"id": 1, "name": "n", "seq": 0})
        assert await rig.slow.incr(1, "seq") == 1  # scripts loaded
        rig.hold_reply("wb_update")
        assert await rig.slow.incr(1, "seq") == 2
        assert rig.proxy.delayed.is_set(), "the reply was not held back: nothing was re-sent"
        assert (await rig.direct.get(1))["seq"] == 2
        assert await rig.direct.flush() == 1
        assert (await repo.rows())[1]["seq"] == 2
    finally:
        await rig.aclose()


@pytest.mark.parametrize("name", ["wb_lease", "wb_ack", "wb_dead", "wb_replay"])
async def test_re_sent_flusher_scripts_act_once(
    standalone_server: Any, repo: Repo, name: str
) -> None:
    """Each flusher script, re-sent after the server ran it: one dead letter (not two), the
    backlog written once and emptied, the replayed value back in cache and database."""
    rig = Resend(standalone_server, repo, max_attempts=1)
    try:
        repo.refuse = {2}
        await rig.direct.write({"id": 1, "name": "one", "seq": 1})
        await rig.direct.write({"id": 2, "name": "two", "seq": 1})
        await rig.direct.replay_dead_letters()  # loads the scripts on the server
        await rig.slow.replay_dead_letters()
        rig.hold_reply(name)
        if name != "wb_replay":
            await rig.slow.flush()
        else:
            await rig.direct.flush()
        assert await rig.direct.dead_letters() == 1
        repo.refuse = set()
        if name == "wb_replay":
            assert await rig.slow.replay_dead_letters() == 1, "the re-send says what was done"
        else:
            assert await rig.direct.replay_dead_letters() == 1
        assert rig.proxy.delayed.is_set(), "the reply was not held back: nothing was re-sent"
        assert await rig.direct.dead_letters() == 0
        assert await rig.direct.backlog() == 1
        assert (await rig.direct.get(2))["name"] == "two"
        assert await rig.direct.flush() == 1
        rows = await repo.rows()
        assert (rows[1]["name"], rows[2]["name"]) == ("one", "two")
        assert await rig.direct.backlog() == 0
        stream = rig.direct.layout.stream(0)
        assert (await rig.direct_client.xpending(stream, GROUP))["pending"] == 0
    finally:
        await rig.aclose()


async def test_a_re_sent_attempt_counts_once(standalone_server: Any, repo: Repo) -> None:
    rig = Resend(standalone_server, repo, max_attempts=2)
    try:
        repo.refuse = {2}
        await rig.direct.write({"id": 2, "name": "two", "seq": 1})
        rig.hold_reply("wb_attempt")
        assert await rig.slow.flush() == 0
        assert rig.proxy.delayed.is_set(), "the reply was not held back: nothing was re-sent"
        counts = await rig.direct_client.hvals(rig.direct.layout.attempts(0))
        assert counts == [b"1"], "one refusal was counted twice"
        assert await rig.direct.dead_letters() == 0
    finally:
        await rig.aclose()


def _random_json(rng: Any, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.randint(-(2**62), 2**62)
    if kind == 1:
        return rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-12, 12)
    if kind == 2:
        return "".join(rng.choice('ab"\\{}[],: é\n\t/') for _ in range(rng.randrange(8)))
    if kind == 3:
        return rng.choice([None, True, False])
    if kind == 4:
        return rng.randint(-1000, 1000)
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return _random_object(rng, depth + 1)


def _random_object(rng: Any, depth: int) -> dict[str, Any]:
    keys = ("".join(rng.choice('ab"\\{}:, ') for _ in range(rng.randrange(1, 4))) for _ in "...")
    return {key: _random_json(rng, depth) for key in keys}


async def test_updates_of_random_entities_change_exactly_their_numbers(
    client: Any, repo: Repo
) -> None:
    import random

    rng = random.Random(20261202)
    wb = behind(client, repo)
    for id in range(150):
        entity = {"id": id, **_random_object(rng, 1)} if rng.random() < 0.9 else {"id": id}
        await wb.write(entity)
        numbers = [k for k, v in entity.items() if type(v) in (int, float) and k != "id"]
        numbers = [k for k in numbers if abs(entity[k]) < 2**53]
        field = rng.choice([*numbers, "new field", '"quoted\\'])
        by: int | float = rng.choice([1, -7, 0.25, 1e-3])
        expected = dict(entity)
        expected[field] = (expected.get(field) or 0) + by
        assert await wb.update(id, {field: by}) == expected, entity
        assert await wb.get(id) == expected
    await wb.aclose()
