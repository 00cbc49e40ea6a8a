"""7-8. Write-behind: ``WriteBehind.write`` against a raw SET, and the flush into SQLite.

7. One sync connection, 1 KB JSON entities: ``WriteBehind.write`` (encode, one script that
   checks the backlog, appends to the stream and stores the cache entry) against redis-py
   ``SET`` of the same bytes, already encoded (the strictest baseline), and ``SET`` after
   ``orjson.dumps`` (what hand-written code does).
8. End to end flush into a SQLite file (sync face): read the stream through the consumer
   group, coalesce, ``upsert_many`` (one transaction per batch), acknowledge and delete.
   Distinct ids (nothing coalesces away): every entity is written. Each timed run starts
   from a fresh table and a full stream; the figure is entities per second of ``flush()``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import redkit
import redkit.asyncio
from redkit._core.write_behind import frame
from redkit._scripts import script
from redkit.integrations.sqlalchemy import AsyncSQLAlchemyRepository, SQLAlchemyRepository

from ._common import CHUNKS, Comparison, Row, Settings, Target, best_rates, make_value

KEYS = 1_000
_WRITE = script("wb_write")
FLUSH_TARGET = 30_000.0
RAW = "raw redis-py SET, same bytes pre-encoded"
RAW_DUMPS = "raw redis-py SET + orjson.dumps"
KIT = "redkit WriteBehind.write"


def _table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String),
        sa.Column("email", sa.String),
        sa.Column("active", sa.Boolean),
        sa.Column("score", sa.Float),
        sa.Column("bio", sa.String),
    )


class _Unused:
    def find_by_id(self, id: Any) -> None:
        raise AssertionError("not read")

    def upsert_many(self, entities: Any) -> int:
        raise AssertionError("not flushed")


def run_write(cfg: Settings) -> Comparison:
    client = redis.Redis.from_url(cfg.url)
    wb = redkit.WriteBehind(client, "bench:wbw", _Unused(), flusher=False, max_backlog=10**9)
    values = [make_value(i) for i in range(KEYS)]
    payloads = [b"\x00" + orjson.dumps(v) for v in values]
    keys = [f"bench:raw:{{{i}}}" for i in range(KEYS)]
    order = [i % KEYS for i in range(cfg.sync_ops // CHUNKS)]
    set_ = client.set
    dumps = orjson.dumps
    write = wb.write

    def raw() -> None:
        for i in order:
            set_(keys[i], payloads[i])

    def raw_dumps() -> None:
        for i in order:
            set_(keys[i], b"\x00" + dumps(values[i]))

    def kit() -> None:
        for i in order:
            write(values[i])

    for i in range(min(cfg.sync_ops, 2_000)):  # warm-up: connection, script cache
        set_(keys[i % KEYS], payloads[i % KEYS])
        write(values[i % KEYS])
    comparison = Comparison("7. WriteBehind.write, sync, one connection (1 KB JSON)", RAW)
    rates = best_rates(cfg.sync_ops, {RAW: raw, RAW_DUMPS: raw_dumps, KIT: kit}, cfg.runs)
    for name, rate in rates.items():
        comparison.rows.append(Row(name, rate))
    comparison.targets.append(Target("WriteBehind.write >= 0.80x raw SET", KIT, RAW, 0.80))
    comparison.notes.append(
        "each write is one EVALSHA: backlog check (XLEN), XADD of the entity, SET of the "
        "cache entry; the stream keeps every write (nothing flushes here)"
    )
    for shard in range(wb.layout.shards):
        client.delete(wb.layout.stream(shard))
    for i in range(KEYS):
        client.delete(wb.layout.entry(wb.layout.shard_of(str(i)), str(i)), keys[i])
    client.delete(wb.layout.meta)
    client.close()
    return comparison


def _row(i: int) -> dict[str, Any]:
    """A 1 KB user row: make_value's fields as scalar columns (its tags go into the bio)."""
    value = make_value(i % KEYS)
    value["bio"] = " ".join(value.pop("tags")) + " " + value["bio"]
    value["id"] = i
    return value


def _fill(client: Any, prefix: str, count: int) -> None:
    """Write ``count`` rows (ids 0..count-1) as WriteBehind.write does, pipelined (untimed)."""
    writer = redkit.WriteBehind(client, prefix, _Unused(), flusher=False, max_backlog=None)
    writer.write(_row(0))
    layout, encode = writer.layout, writer.codec.encode
    for first in range(1, count, 500):
        calls = []
        for i in range(first, min(first + 500, count)):
            text = str(i)
            shard = layout.shard_of(text)
            entry = layout.entry(shard, text)
            write = frame(encode(_row(i)))
            calls.append((_WRITE, [layout.stream(shard), entry], [text, write, 0]))
        writer.store.run_many(calls)
    writer.close()


def _wal(dbapi_connection: Any, _: Any) -> None:
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _engine(url: str, wal: bool) -> Any:
    engine = sa.create_engine(url)
    if wal:
        sa.event.listen(engine, "connect", _wal)
    return engine


def _flush_sync(cfg: Settings, batch_size: int, wal: bool, folder: Path) -> float:
    """Best entities/s of ``flush()`` over ``cfg.runs`` fresh tables and full streams."""
    count = 5_000 if cfg.quick else 20_000
    client = redis.Redis.from_url(cfg.url)
    best = 0.0
    for run in range(cfg.runs):
        name = f"sync-{batch_size}-{wal}-{run}"
        engine = _engine(f"sqlite:///{folder}/{name}.db", wal)
        metadata = sa.MetaData()
        table = _table(metadata)
        metadata.create_all(engine)
        prefix = f"bench:wbf:{name}"
        _fill(client, prefix, count)
        wb = redkit.WriteBehind(
            client,
            prefix,
            SQLAlchemyRepository(engine, table),
            batch_size=batch_size,
            flusher=False,
            max_backlog=None,
        )
        started = time.perf_counter()
        written = wb.flush()
        elapsed = time.perf_counter() - started
        assert written == count, (written, count)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == count
        best = max(best, count / elapsed)
        wb.close()
        _clean(client, wb.layout)
        engine.dispose()
    client.close()
    return best


def _clean(client: Any, layout: Any) -> None:
    """Drop what a flush run left in Redis (its cache entries and shard count)."""
    pipe = client.pipeline(transaction=False)
    pipe.unlink(layout.meta)
    for i in range(20_000):
        pipe.unlink(layout.entry(layout.shard_of(str(i)), str(i)))
    pipe.execute()


async def _flush_async(cfg: Settings, batch_size: int, folder: Path) -> float:
    count = 5_000 if cfg.quick else 20_000
    client = redkit.asyncio.connect(cfg.url)
    sync_client = redis.Redis.from_url(cfg.url)
    best = 0.0
    for run in range(cfg.runs):
        name = f"async-{batch_size}-{run}"
        engine = create_async_engine(f"sqlite+aiosqlite:///{folder}/{name}.db")
        sa.event.listen(engine.sync_engine, "connect", _wal)
        metadata = sa.MetaData()
        table = _table(metadata)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        prefix = f"bench:wbf:{name}"
        _fill(sync_client, prefix, count)
        wb = redkit.asyncio.WriteBehind(
            client,
            prefix,
            AsyncSQLAlchemyRepository(engine, table),
            batch_size=batch_size,
            flusher=False,
            max_backlog=None,
        )
        started = time.perf_counter()
        written = await wb.flush()
        elapsed = time.perf_counter() - started
        assert written == count, (written, count)
        best = max(best, count / elapsed)
        await wb.aclose()
        _clean(sync_client, wb.layout)
        await engine.dispose()
    await client.aclose()
    sync_client.close()
    return best


def _hand_written(cfg: Settings, folder: Path) -> float:
    """The floor: a plain loop over the same streams, redis-py and sqlite3 only (no
    SQLAlchemy, no coalescing, no leases, no cache-entry TTLs)."""
    import sqlite3

    count = 5_000 if cfg.quick else 20_000
    client = redis.Redis.from_url(cfg.url)
    columns = ["id", "name", "email", "active", "score", "bio"]
    others = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    sql = (
        f"INSERT INTO users ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT (id) DO UPDATE SET {others}"
    )
    best = 0.0
    for run in range(cfg.runs):
        prefix = f"bench:wbf:raw-{run}"
        _fill(client, prefix, count)
        layout = redkit.WriteBehind(client, prefix, _Unused(), flusher=False).layout
        db = sqlite3.connect(folder / f"raw-{run}.db")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, "
            "active BOOLEAN, score FLOAT, bio TEXT)"
        )
        for shard in range(layout.shards):
            client.xgroup_create(layout.stream(shard), "raw", id="0")
        started = time.perf_counter()
        done = 0
        for shard in range(layout.shards):
            stream = layout.stream(shard)
            while reply := client.xreadgroup("raw", "c", {stream: ">"}, count=1000):
                entries = reply[0][1]
                rows = []
                for _, fields in entries:
                    value = orjson.loads(fields[b"d"][9:])  # token, codec header
                    rows.append(tuple(value[c] for c in columns))
                db.executemany(sql, rows)
                db.commit()
                ids = [sid for sid, _ in entries]
                pipe = client.pipeline(transaction=False)
                pipe.xack(stream, "raw", *ids)
                pipe.xdel(stream, *ids)
                pipe.execute()
                done += len(entries)
        elapsed = time.perf_counter() - started
        assert done == count, (done, count)
        best = max(best, count / elapsed)
        db.close()
        for shard in range(layout.shards):
            client.unlink(layout.stream(shard))
        _clean(client, layout)
    client.close()
    return best


def run_flush(cfg: Settings) -> Comparison:
    target = f"target: {FLUSH_TARGET:,.0f} entities/s"
    main = "sync flush(), batch_size=1000, WAL"
    comparison = Comparison("8. Write-behind flush into SQLite, end to end (1 KB entities)", target)
    with tempfile.TemporaryDirectory(prefix="redkit-bench-") as tmp:
        folder = Path(tmp)
        comparison.rows += [
            Row(target, FLUSH_TARGET, "ent/s"),
            Row(main, _flush_sync(cfg, 1000, True, folder), "ent/s"),
            Row(
                "sync flush(), batch_size=1000, rollback journal",
                _flush_sync(cfg, 1000, False, folder),
                "ent/s",
            ),
            Row(
                "sync flush(), batch_size=100 (default), WAL",
                _flush_sync(cfg, 100, True, folder),
                "ent/s",
            ),
            Row(
                "async flush(), batch_size=1000, WAL",
                asyncio.run(_flush_async(cfg, 1000, folder)),
                "ent/s",
            ),
            Row(
                "hand-written loop: redis-py + sqlite3, WAL (floor)",
                _hand_written(cfg, folder),
                "ent/s",
            ),
        ]
    comparison.targets.append(
        Target(f"flush >= {FLUSH_TARGET:,.0f} entities/s (sync)", main, target, 1.0)
    )
    floor = comparison.rows[-1]
    comparison.notes.append(
        f"redkit's sync flush is {comparison.rate(main) / floor.rate:.2f}x the hand-written "
        "floor (which skips SQLAlchemy, coalescing, leases and the cache entries' TTLs)"
    )
    comparison.notes.append(
        "SQLite file in a temporary directory; WAL = journal_mode=WAL, synchronous=NORMAL "
        "(the usual setting for a written-to SQLite), else the default rollback journal with "
        "an fsync per commit; one transaction per batch; 1 KB rows of 6 scalar columns, "
        "distinct ids (every entity is upserted)"
    )
    return comparison
