"""The contract every read path passes (the sync twin is generated).

A read path is one way of reading a cached value: ``get``, ``get_or_fetch``, ``get_many``,
``cached``, ``WriteThrough.get``, ``AdaptiveTTLCache.get``/``get_or_fetch`` and
``TieredCache.get``/``get_or_fetch`` today; the coming patterns add theirs by writing a small
:class:`ReadPath` adapter and appending it to ``PATHS``. Each inherits the whole suite below:
falsy values are hits, negative entries, corrupt bytes, fallback when Redis is down, the
breaker, ``on_error="raise"``, and a pending invalidation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.schema import CreateTable

from redkit.asyncio import (
    AdaptiveTTLCache,
    CacheAside,
    TieredCache,
    WriteBehind,
    WriteThrough,
    cached,
    connect,
)
from redkit.errors import BackendUnavailable
from redkit.integrations.sqlalchemy import AsyncSQLAlchemyRepository

SOURCE = {"id": 1, "from": "source"}


class ReadPath:
    """Drives one read path. ``fetches``: whether a miss asks the source of truth."""

    name = "?"
    fetches = True

    def __init__(self, client: Any, tmp_path: Path, **options: Any) -> None:
        self.client = client
        self.tmp_path = tmp_path
        self.options = options
        self.source_calls = 0
        self.cache: Any = self.make_cache(client, **options)

    def make_cache(self, client: Any, **options: Any) -> Any:
        """The cache this path reads through."""
        return CacheAside(client, "contract", **options)

    async def prepare(self) -> None:
        """Create whatever the path needs beyond the cache."""

    async def close(self) -> None:
        await self.cache.aclose()

    async def source(self) -> Any:
        self.source_calls += 1
        return SOURCE

    def key(self) -> str:
        """The Redis key the path reads."""
        return self.cache.keys.key(self.id())

    def id(self) -> Any:
        return 1

    async def seed(self, value: Any) -> None:
        """Cache ``value`` where this path reads."""
        await self.cache.set(self.id(), value)

    async def read(self) -> Any:
        """Read through the path; a miss without a source reads as ``None``."""
        raise NotImplementedError

    def miss(self) -> Any:
        """What a read returns when Redis has nothing usable."""
        return SOURCE if self.fetches else None


class Get(ReadPath):
    name = "get"
    fetches = False

    async def read(self) -> Any:
        return await self.cache.get(self.id())


class GetOrFetch(ReadPath):
    name = "get_or_fetch"

    async def read(self) -> Any:
        return await self.cache.get_or_fetch(self.id(), self.source)


class GetMany(ReadPath):
    name = "get_many"
    fetches = False

    async def read(self) -> Any:
        return (await self.cache.get_many([self.id(), "absent"])).get(self.id())


class Cached(ReadPath):
    name = "cached"

    async def prepare(self) -> None:
        @cached(self.cache)
        async def load(user_id: int) -> Any:
            return await self.source()

        self.fn = load

    def id(self) -> Any:
        return self.fn.key(1)

    async def read(self) -> Any:
        return await self.fn(1)


class WriteThroughGet(ReadPath):
    name = "WriteThrough.get"

    async def prepare(self) -> None:
        table = sa.Table(
            "things",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("from", sa.String(20)),
        )
        self.engine = create_async_engine(f"sqlite+aiosqlite:///{self.tmp_path}/things.db")
        async with self.engine.begin() as conn:
            await conn.execute(CreateTable(table))
        source = self

        class CountingRepository(AsyncSQLAlchemyRepository):
            async def find_by_id(self, id: Any) -> Any:
                source.source_calls += 1
                return await super().find_by_id(id)

        self.repository = CountingRepository(self.engine, table)
        await self.repository.create(SOURCE)
        self.store = WriteThrough(self.client, "contract", self.repository, **self.options)
        self.cache = self.store.cache

    async def close(self) -> None:
        await self.store.aclose()
        await self.engine.dispose()

    async def read(self) -> Any:
        return await self.store.get(self.id())


class WriteBehindGet(ReadPath):
    """``WriteBehind.get``: entities ``{"id": 1, "value": v}`` are written (no flusher, so
    the database keeps ``SOURCE``); a read returns the entity's value, or what the database
    holds on a miss."""

    name = "WriteBehind.get"

    async def prepare(self) -> None:
        table = sa.Table(
            "things",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("from", sa.String(20)),
            sa.Column("value", sa.JSON),
        )
        self.engine = create_async_engine(f"sqlite+aiosqlite:///{self.tmp_path}/things.db")
        async with self.engine.begin() as conn:
            await conn.execute(CreateTable(table))
        source = self

        class CountingRepository(AsyncSQLAlchemyRepository):
            async def find_by_id(self, id: Any) -> Any:
                source.source_calls += 1
                return await super().find_by_id(id)

        self.repository = CountingRepository(self.engine, table)
        await self.repository.create(SOURCE)
        await self.cache.aclose()
        self.store = WriteBehind(
            self.client, "contract", self.repository, flusher=False, **self.options
        )
        self.cache = _Entries(self.store)

    async def close(self) -> None:
        await self.store.aclose()
        await self.engine.dispose()

    def key(self) -> str:
        layout = self.store.layout
        return layout.entry(layout.shard_of("1"), "1")

    async def seed(self, value: Any) -> None:
        await self.store.write({"id": self.id(), "value": value})

    async def read(self) -> Any:
        entity = await self.store.get(self.id())
        if entity is None or entity.get("from") is None:  # written through the store
            return None if entity is None else entity["value"]
        return {"id": entity["id"], "from": entity["from"]}  # the database's row


class _Entries:
    """What the contract needs of a write-behind's cache: its stats, and dropping an entry."""

    def __init__(self, store: WriteBehind) -> None:
        self.store = store
        self.stats = store.stats

    async def invalidate(self, id: Any) -> None:
        layout = self.store.layout
        await self.store.client.delete(layout.entry(layout.shard_of(str(id)), str(id)))


class AdaptiveGet(ReadPath):
    name = "AdaptiveTTLCache.get"
    fetches = False

    def make_cache(self, client: Any, **options: Any) -> Any:
        return AdaptiveTTLCache(client, "contract", **options)

    async def read(self) -> Any:
        return await self.cache.get(self.id())


class AdaptiveGetOrFetch(AdaptiveGet):
    name = "AdaptiveTTLCache.get_or_fetch"
    fetches = True

    async def read(self) -> Any:
        return await self.cache.get_or_fetch(self.id(), self.source)


class TieredGet(ReadPath):
    name = "TieredCache.get"
    fetches = False

    def make_cache(self, client: Any, **options: Any) -> Any:
        return TieredCache(client, "contract", **options)

    async def read(self) -> Any:
        return await self.cache.get(self.id())


class TieredGetOrFetch(TieredGet):
    name = "TieredCache.get_or_fetch"
    fetches = True

    async def read(self) -> Any:
        return await self.cache.get_or_fetch(self.id(), self.source)


PATHS = [
    Get,
    GetOrFetch,
    GetMany,
    Cached,
    WriteThroughGet,
    WriteBehindGet,
    AdaptiveGet,
    AdaptiveGetOrFetch,
    TieredGet,
    TieredGetOrFetch,
]


@pytest.fixture(params=PATHS, ids=[p.name for p in PATHS])
def path_class(request: pytest.FixtureRequest) -> type[ReadPath]:
    return request.param  # type: ignore[no-any-return]


async def make(path_class: type[ReadPath], client: Any, tmp_path: Path, **options: Any) -> Any:
    path = path_class(client, tmp_path, **options)
    await path.prepare()
    return path


@pytest.mark.parametrize("value", [0, "", [], {}, False, 0.0])
async def test_falsy_values_are_hits(
    path_class: type[ReadPath], client: Any, tmp_path: Path, value: Any
) -> None:
    path = await make(path_class, client, tmp_path)
    await path.seed(value)
    assert await path.read() == value
    assert path.source_calls == 0
    assert path.cache.stats.hits == 1
    await path.close()


async def test_a_negative_entry_reads_as_none_without_asking_the_source(
    path_class: type[ReadPath], client: Any, tmp_path: Path
) -> None:
    path = await make(path_class, client, tmp_path)
    await path.seed(None)
    assert await path.read() is None
    assert path.source_calls == 0
    await path.close()


@pytest.mark.parametrize("garbage", [b"\x00{not json", b"\x09unknown header", b"", b"\x01zz"])
async def test_corrupt_bytes_are_a_miss_reported_once(
    path_class: type[ReadPath],
    client: Any,
    tmp_path: Path,
    garbage: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = await make(path_class, client, tmp_path)
    await client.set(path.key(), garbage)
    with caplog.at_level(logging.WARNING, logger="redkit.cache"):
        assert await path.read() == path.miss()
        await client.set(path.key(), garbage)
        assert await path.read() == path.miss()
    assert sum(path.key() in r.getMessage() for r in caplog.records) == 1
    assert path.cache.stats.snapshot()["corrupt"] >= 2
    await path.close()


async def test_redis_down_falls_back_to_the_source(
    path_class: type[ReadPath], tmp_path: Path, unused_tcp_port: int
) -> None:
    dead = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0)
    path = await make(path_class, dead, tmp_path, breaker=0)
    assert await path.read() == path.miss()
    assert await path.read() == path.miss()
    assert path.cache.stats.errors >= 2
    assert path.source_calls == (2 if path.fetches else 0)
    await path.close()
    await dead.aclose()


async def test_the_breaker_stops_asking_a_dead_redis(
    path_class: type[ReadPath], tmp_path: Path, unused_tcp_port: int
) -> None:
    attempts: list[Any] = []
    dead = connect(
        f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0, on_connection_error=attempts.append
    )
    path = await make(path_class, dead, tmp_path, breaker=60)
    assert await path.read() == path.miss()
    tried = len(attempts)
    assert tried >= 1
    for _ in range(5):
        assert await path.read() == path.miss()
    assert len(attempts) == tried, "Redis was asked again while the breaker was open"
    await path.close()
    await dead.aclose()


async def test_on_error_raise_raises(
    path_class: type[ReadPath], tmp_path: Path, unused_tcp_port: int
) -> None:
    dead = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0)
    path = await make(path_class, dead, tmp_path, on_error="raise")
    with pytest.raises(BackendUnavailable):
        await path.read()
    assert path.source_calls == 0
    await path.close()
    await dead.aclose()


async def test_a_read_after_a_write_sees_the_write(
    path_class: type[ReadPath], client: Any, tmp_path: Path
) -> None:
    path = await make(path_class, client, tmp_path)
    await path.seed("old")
    assert await path.read() == "old"
    await path.seed("new")
    assert await path.read() == "new"
    await path.cache.invalidate(path.id())
    assert await path.read() == path.miss()
    await path.close()
