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

from redkit.asyncio import CacheAside, WriteThrough
from redkit.errors import SerializationError
from redkit.integrations.sqlalchemy import AsyncSQLAlchemyRepository
from tests._acompat import pause, run_concurrently

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100)),
    sa.Column("score", sa.Integer),
)


class SlowReads(AsyncSQLAlchemyRepository):
    """The real repository, with reads that take ``read_delay`` seconds plus up to ``jitter``
    more (to widen the races between a read and the writes around it)."""

    read_delay = 0.0
    jitter = 0.0
    rng = random.Random(11)

    async def find_by_id(self, id: Any) -> Any:
        row = await super().find_by_id(id)
        delay = self.read_delay + self.jitter * self.rng.random()
        if delay:
            await pause(delay)
        return row


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[SlowReads]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/users.db")
    async with engine.begin() as conn:
        await conn.execute(CreateTable(users))
    yield SlowReads(engine, users)
    await engine.dispose()


async def test_crud_goes_to_the_database_first_and_the_cache_follows(
    client: Any, repo: SlowReads
) -> None:
    store = WriteThrough(client, "wt", repo, ttl=60)
    created = await store.create({"id": 1, "name": "Ada", "score": 1})
    assert created == {"id": 1, "name": "Ada", "score": 1}
    assert await repo.find_by_id(1) == created
    assert await CacheAside(client, "wt").get(1) == created

    updated = await store.update(1, {"score": 2})
    assert updated == {"id": 1, "name": "Ada", "score": 2}
    assert await CacheAside(client, "wt").get(1) == updated
    assert await store.get(1) == updated

    assert await store.delete(1) is True
    assert await repo.find_by_id(1) is None
    assert await store.get(1) is None
    assert await store.update(1, {"score": 3}) is None


async def test_read_through_caches_on_a_miss(client: Any, repo: SlowReads) -> None:
    await repo.create({"id": 5, "name": "Grace", "score": 9})
    store = WriteThrough(client, "wt", repo)
    assert await store.get(5) == {"id": 5, "name": "Grace", "score": 9}
    await repo.update(5, {"score": 10})  # behind the cache's back: the cache still serves 9
    assert (await store.get(5))["score"] == 9
    assert store.cache.stats.hits == 1


async def test_slow_reader_cannot_overwrite_a_newer_write(client: Any, repo: SlowReads) -> None:
    await repo.create({"id": 1, "name": "v0", "score": 0})
    store = WriteThrough(client, "wt", repo)

    async def actor(i: int) -> None:
        if i == 0:  # a reader whose database read straddles the write
            repo.read_delay = 0.4
            await store.get(1)
        else:
            await pause(0.1)
            repo.read_delay = 0.0
            await store.update(1, {"name": "v1"})

    await run_concurrently(2, actor)
    assert (await repo.find_by_id(1))["name"] == "v1"
    cached_value = await CacheAside(client, "wt").get(1)
    assert cached_value is None or cached_value["name"] == "v1"


async def test_concurrent_updates_never_leave_the_cache_older_than_the_database(
    client: Any, repo: SlowReads
) -> None:
    await repo.create({"id": 1, "name": "start", "score": 0})
    store = WriteThrough(client, "wt", repo)
    repo.jitter = 0.03
    rng = random.Random(7)
    plans = [[rng.random() * 0.02 for _ in range(6)] for _ in range(12)]

    async def worker(i: int) -> None:
        for step, delay in enumerate(plans[i]):
            await pause(delay)
            if step % 3 == 2:
                await store.get(1)
            else:
                await store.update(1, {"name": f"w{i}-{step}", "score": i * 100 + step})

    await run_concurrently(12, worker)
    in_db = await repo.find_by_id(1)
    in_cache = await CacheAside(client, "wt").get(1)
    assert in_cache is None or in_cache == in_db
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


async def test_redis_down_after_the_database_write(repo: SlowReads, unused_tcp_port: int) -> None:
    from redkit.asyncio import connect
    from redkit.errors import BackendUnavailable

    dead = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0)
    try:
        await repo.create({"id": 1, "name": "before", "score": 0})
        lenient = WriteThrough(dead, "wt", repo)
        assert await lenient.update(1, {"name": "after"}) == {"id": 1, "name": "after", "score": 0}
        assert await lenient.get(1) == {"id": 1, "name": "after", "score": 0}  # from the database

        strict = WriteThrough(dead, "wt", repo, on_error="raise")
        with pytest.raises(BackendUnavailable):
            await strict.update(1, {"name": "strict"})
        assert (await repo.find_by_id(1))["name"] == "strict", "the database write stands"
    finally:
        await dead.aclose()
