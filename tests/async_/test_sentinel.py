"""The caches through a Sentinel group, and across a failover (the sync twin is generated)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.schema import CreateTable

from redkit.asyncio import CacheAside, WriteThrough, connect
from redkit.embedded import EmbeddedServer
from redkit.errors import BackendError
from redkit.integrations.sqlalchemy import AsyncSQLAlchemyRepository
from tests._acompat import pause

_FAILOVER_BOUND = 30.0

users = sa.Table(
    "users",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100)),
)


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[AsyncSQLAlchemyRepository]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/users.db")
    async with engine.begin() as conn:
        await conn.execute(CreateTable(users))
    yield AsyncSQLAlchemyRepository(engine, users)
    await engine.dispose()


@pytest.fixture
def group(server_kind: str) -> Iterator[EmbeddedServer]:
    """A Sentinel group of its own: these tests kill its primary."""
    with EmbeddedServer(sentinel=True, binary=server_kind) as server:
        yield server


async def test_write_through_through_a_sentinel_master(
    sentinel_server: EmbeddedServer, repo: AsyncSQLAlchemyRepository
) -> None:
    client = connect(sentinel_server.url)
    try:
        await client.flushall()
        store = WriteThrough(client, "sentinel-wt", repo)
        await store.create({"id": 1, "name": "Ada"})
        assert await CacheAside(client, "sentinel-wt").get(1) == {"id": 1, "name": "Ada"}
        await store.update(1, {"name": "Ada L."})
        assert await store.get(1) == {"id": 1, "name": "Ada L."}
        assert store.stats.hits == 1
        await store.aclose()
    finally:
        await client.aclose()


async def test_a_failover_degrades_reads_then_writes_resume_on_the_new_primary(
    group: EmbeddedServer, repo: AsyncSQLAlchemyRepository
) -> None:
    old_primary, replica = group.ports
    client = connect(group.url, socket_timeout=0.5, socket_connect_timeout=0.5, retries=1)
    try:
        store = WriteThrough(client, "failover", repo, breaker=0.2)
        await store.create({"id": 1, "name": "before"})
        assert await store.get(1) == {"id": 1, "name": "before"}
        await client.wait(1, 5000)  # the replica has the entry too
        group.kill(old_primary)

        # no primary for a while: reads are served from the repository, never an error
        assert await store.get(1) == {"id": 1, "name": "before"}

        deadline = time.monotonic() + _FAILOVER_BOUND
        attempt = 0
        while True:  # writes fail (typed) until the sentinels promote the replica
            attempt += 1
            try:
                await store.update(1, {"name": f"after {attempt}"})
                break
            except BackendError:
                assert time.monotonic() < deadline, "writes never resumed"
                await pause(0.2)
        # that write invalidated the old entry on the new primary (its refill may have been
        # refused while the failover settled); the next write is cached there as usual
        await store.update(1, {"name": "settled"})
        promoted = connect(f"redis://127.0.0.1:{replica}/0")
        try:
            assert (await promoted.info("replication"))["role"] == "master"
            cached = await CacheAside(promoted, "failover").get(1)
            assert cached == {"id": 1, "name": "settled"}, "the write went elsewhere"
        finally:
            await promoted.aclose()
        assert await store.get(1) == {"id": 1, "name": "settled"}
        await store.aclose()
    finally:
        await client.aclose()
