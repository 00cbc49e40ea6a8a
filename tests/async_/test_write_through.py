"""WriteThrough over a real SQLite database and a real server (the sync twin is generated)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.schema import CreateTable

from redkit.asyncio import CacheAside, WriteThrough, connect
from redkit.errors import BackendError, InvalidationPending, InvalidKey, SerializationError
from redkit.integrations.sqlalchemy import AsyncSQLAlchemyRepository
from tests._acompat import Event, run_concurrently, start, wait_until
from tests.netproxy import Proxy
from tests.servers import flush_all

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100)),
    sa.Column("score", sa.Integer),
)


class GatedReads(AsyncSQLAlchemyRepository):
    """The real repository; while ``hold`` is set, a read waits after reading its row until
    ``release`` is set (``read_done`` tells the test it has read): a read that straddles
    the writes around it, staged with events."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold = False
        self.read_done = Event()
        self.release = Event()
        self.reads = 0

    async def find_by_id(self, id: Any) -> Any:
        row = await super().find_by_id(id)
        self.reads += 1
        if self.hold:
            self.hold = False
            self.read_done.set()
            await self.release.wait()
        return row


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[GatedReads]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/users.db")
    async with engine.begin() as conn:
        await conn.execute(CreateTable(users))
    yield GatedReads(engine, users)
    await engine.dispose()


async def test_crud_goes_to_the_database_first_and_the_cache_follows(
    client: Any, repo: GatedReads
) -> None:
    store = WriteThrough(client, "wt", repo, ttl=60)
    raw = CacheAside(client, "wt")
    created = await store.create({"id": 1, "name": "Ada", "score": 1})
    assert created == {"id": 1, "name": "Ada", "score": 1}
    assert await repo.find_by_id(1) == created
    assert await raw.get(1) == created

    updated = await store.update(1, {"score": 2})
    assert updated == {"id": 1, "name": "Ada", "score": 2}
    assert await raw.get(1) == updated
    assert await store.get(1) == updated
    assert store.stats.hits == 1

    assert await store.delete(1) is True
    assert await repo.find_by_id(1) is None
    assert await raw.get(1, default="absent") == "absent", "a deleted row must not stay cached"
    assert await store.get(1) is None
    assert await store.update(1, {"score": 3}) is None


async def test_read_through_caches_on_a_miss(client: Any, repo: GatedReads) -> None:
    await repo.create({"id": 5, "name": "Grace", "score": 9})
    store = WriteThrough(client, "wt", repo)
    assert await store.get(5) == {"id": 5, "name": "Grace", "score": 9}
    await repo.update(5, {"score": 10})  # behind the cache's back: the cache still serves 9
    assert (await store.get(5))["score"] == 9
    assert store.stats.hits == 1 and store.stats.fetches == 1


@pytest.mark.parametrize("bad", [1.0, True, None, b"1", ""])
async def test_a_bad_id_is_refused_before_the_database_is_touched(
    client: Any, repo: GatedReads, bad: Any
) -> None:
    await repo.create({"id": 1, "name": "kept", "score": 0})
    store = WriteThrough(client, "wt", repo)
    with pytest.raises(InvalidKey):
        await store.update(bad, {"name": "changed"})
    with pytest.raises(InvalidKey):
        await store.delete(bad)
    with pytest.raises(InvalidKey):
        await store.create({"id": bad, "name": "new", "score": 0})
    assert await repo.find_by_id(1) == {"id": 1, "name": "kept", "score": 0}


async def test_a_slow_reader_cannot_overwrite_a_newer_write(client: Any, repo: GatedReads) -> None:
    await repo.create({"id": 1, "name": "v0", "score": 0})
    store = WriteThrough(client, "wt", repo)
    repo.hold = True
    reader = start(lambda: store.get(1))  # reads v0 from the database, then is held
    await repo.read_done.wait()
    await store.update(1, {"name": "v1"})  # commits v1 and refills the cache with it
    repo.release.set()
    assert (await reader.result())["name"] == "v0"  # that caller asked before the update
    assert await CacheAside(client, "wt").get(1) == {"id": 1, "name": "v1", "score": 0}
    assert store.stats.refused_fills == 1


async def test_concurrent_updates_leave_the_cache_equal_to_the_database(
    client: Any, repo: GatedReads
) -> None:
    await repo.create({"id": 1, "name": "start", "score": 0})
    store = WriteThrough(client, "wt", repo)
    rng = random.Random(7)
    plans = [[rng.random() < 0.3 for _ in range(8)] for _ in range(12)]

    async def worker(i: int) -> None:
        for step, read in enumerate(plans[i]):
            if read:
                await store.get(1)
            else:
                await store.update(1, {"name": f"w{i}-{step}", "score": i * 100 + step})

    await run_concurrently(12, worker)
    in_db = await repo.find_by_id(1)
    # the last update's refill cannot be revoked by a read: the entry is exactly the row
    assert await CacheAside(client, "wt").get(1) == in_db
    assert await store.get(1) == in_db


async def test_unserialisable_entity_is_refused_after_invalidating(
    client: Any, tmp_path: Path
) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/blobs.db")
    blobs = sa.Table(
        "blobs",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("data", sa.LargeBinary),
    )
    async with engine.begin() as conn:
        await conn.execute(CreateTable(blobs))
    try:
        store = WriteThrough(
            client, "blob", AsyncSQLAlchemyRepository(engine, blobs), max_value_size=64
        )
        await CacheAside(client, "blob").set(1, "stale")
        with pytest.raises(SerializationError):
            await store.create({"id": 1, "data": b"\x00" * 10})
        assert await client.exists("blob:{1}") == 0, "the stale entry must be gone"
    finally:
        await engine.dispose()


async def test_redis_refusing_connections_after_the_database_write(
    repo: GatedReads, unused_tcp_port: int
) -> None:
    dead = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0)
    try:
        await repo.create({"id": 1, "name": "before", "score": 0})
        store = WriteThrough(dead, "wt", repo)
        with pytest.raises(InvalidationPending) as info:
            await store.update(1, {"name": "after"})
        assert info.value.id == 1
        assert info.value.result == {"id": 1, "name": "after", "score": 0}
        assert isinstance(info.value, BackendError)
        assert (await repo.find_by_id(1))["name"] == "after", "the database write stands"
        assert await store.get(1) == {"id": 1, "name": "after", "score": 0}  # from the database
        with pytest.raises(InvalidationPending):
            await store.delete(1)
        await store.aclose()
    finally:
        await dead.aclose()


async def test_a_partition_during_a_write_raises_and_the_stale_entry_goes_when_it_heals(
    standalone_server: Any, repo: GatedReads
) -> None:
    """The network breaks (no answers, no refusals) between the database write and the
    invalidation: the write says so, and the entry is removed once the network heals."""
    flush_all(standalone_server.url)
    direct = connect(standalone_server.url)
    with Proxy("127.0.0.1", standalone_server.port) as proxy:
        client = connect(
            proxy.url_for(standalone_server.url),
            retries=0,
            socket_timeout=0.3,
            socket_connect_timeout=0.3,
        )
        try:
            await repo.create({"id": 1, "name": "old", "score": 0})
            store = WriteThrough(client, "wt", repo, ttl=3600)
            assert (await store.get(1))["name"] == "old"  # cached for an hour
            proxy.partition()
            with pytest.raises(InvalidationPending) as info:
                await store.update(1, {"name": "new"})
            assert info.value.result["name"] == "new"
            # the stale entry is still in Redis, but this process does not serve it
            assert await CacheAside(direct, "wt").get(1) == {"id": 1, "name": "old", "score": 0}
            assert (await store.get(1))["name"] == "new"
            proxy.heal()
            await wait_until(lambda: len(store.cache.store.pending) == 0, timeout=10)
            assert await CacheAside(direct, "wt").get(1, default="gone") == "gone"
            assert (await store.get(1))["name"] == "new"
            assert store.stats.snapshot()["invalidation_pending"] == 1
        finally:
            await store.aclose()
            await client.aclose()
            await direct.aclose()
