"""Child processes of the write-behind crash test (``python -m tests.write_behind_workers``).

``producer URL FACE LOG``: writes ``{"id", "seq", "name"}`` entities for ever (no flusher).
``seq`` comes from a Redis counter, so it grows across restarts, for every id; half the
writes go to ``IDS`` hot ids, half to a new id each. Each write
whose ``write`` call returned is appended to LOG (``id seq``) with one ``os.write``: a
SIGKILL cannot leave half a line, and a line is only there if ``write`` returned.

``flusher URL FACE DB``: a background flusher into the SQLite file DB, for ever.

``incr URL FACE COUNT``: ``COUNT`` increments of ``seq`` of id 0 of prefix ``counter``, then
exits (the atomic-update test runs several at once).

Both print ``ready`` once they run; the test kills them with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from typing import Any

import sqlalchemy as sa

PREFIX = "crash"
IDS = 12
FRESH = 1_000_000
COUNTER = "crash-seq"
OPTIONS: dict[str, Any] = {
    "batch_size": 10,
    "flush_interval": 0.01,
    # Generous: a live flusher starved on a loaded machine must not lose its lease mid-commit
    # (without a version column an older value could then win); dead ones lapse after it.
    "claim_after": 2.0,
}


def table() -> sa.Table:
    return sa.Table(
        "items",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer),
        sa.Column("name", sa.String(40)),
    )


SCHEMA = """
CREATE TABLE items (id INTEGER PRIMARY KEY, seq INTEGER, name TEXT);
CREATE TABLE regressions (id INTEGER, old_seq INTEGER, new_seq INTEGER);
CREATE TRIGGER no_regression BEFORE UPDATE ON items WHEN NEW.seq < OLD.seq
BEGIN INSERT INTO regressions VALUES (OLD.id, OLD.seq, NEW.seq); END;
"""


def _entity(rng: random.Random, seq: int) -> dict[str, Any]:
    """Half the writes go to a few hot ids (order matters), half to a new id each (a lost
    write cannot hide behind a later write of its id)."""
    id = rng.randrange(IDS) if seq % 2 else FRESH + seq
    return {"id": id, "seq": seq, "name": f"w{seq}"}


def produce_sync(url: str, log: str) -> None:
    import redkit

    client = redkit.connect(url)
    wb = redkit.WriteBehind(client, PREFIX, _NoRepository(), flusher=False, **OPTIONS)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    rng = random.Random()
    print("ready", flush=True)
    while True:
        entity = _entity(rng, int(client.incr(COUNTER)))
        wb.write(entity)
        os.write(fd, f"{entity['id']} {entity['seq']}\n".encode())


async def produce_async(url: str, log: str) -> None:
    import redkit.asyncio

    client = redkit.asyncio.connect(url)
    wb = redkit.asyncio.WriteBehind(client, PREFIX, _NoRepository(), flusher=False, **OPTIONS)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    rng = random.Random()
    print("ready", flush=True)
    while True:
        entity = _entity(rng, int(await client.incr(COUNTER)))
        await wb.write(entity)
        os.write(fd, f"{entity['id']} {entity['seq']}\n".encode())


def flush_sync(url: str, db: str) -> None:
    import redkit
    from redkit.integrations.sqlalchemy import SQLAlchemyRepository

    repo = SQLAlchemyRepository(sa.create_engine(f"sqlite:///{db}"), table())
    wb = redkit.WriteBehind(redkit.connect(url), PREFIX, repo, **OPTIONS)
    wb.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


async def flush_async(url: str, db: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    import redkit.asyncio
    from redkit.integrations.sqlalchemy import AsyncSQLAlchemyRepository

    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    repo = AsyncSQLAlchemyRepository(engine, table())
    wb = redkit.asyncio.WriteBehind(redkit.asyncio.connect(url), PREFIX, repo, **OPTIONS)
    await wb.start()
    print("ready", flush=True)
    while True:
        await asyncio.sleep(3600)


def incr_sync(url: str, count: int) -> None:
    import redkit

    client = redkit.connect(url)
    wb = redkit.WriteBehind(client, "counter", _NoRows(), flusher=False)
    for _ in range(count):
        wb.incr(0, "seq")
    wb.close()
    client.close()


async def incr_async(url: str, count: int) -> None:
    import redkit.asyncio

    client = redkit.asyncio.connect(url)
    wb = redkit.asyncio.WriteBehind(client, "counter", _NoRowsAsync(), flusher=False)
    for _ in range(count):
        await wb.incr(0, "seq")
    await wb.aclose()
    await client.aclose()


class _NoRows:
    """A repository without rows: the counter starts from nothing."""

    def find_by_id(self, id: Any) -> None:
        return None

    def upsert_many(self, entities: Any) -> int:
        raise AssertionError("the incrementer does not flush")


class _NoRowsAsync(_NoRows):
    async def find_by_id(self, id: Any) -> None:  # type: ignore[override]
        return None


class _NoRepository:
    """The producer never flushes nor reads."""

    def find_by_id(self, id: Any) -> None:
        raise AssertionError("the producer does not read")

    def upsert_many(self, entities: Any) -> int:
        raise AssertionError("the producer does not flush")


def main(argv: list[str]) -> None:
    role, url, face, path = argv
    if role == "incr":
        if face == "async":
            asyncio.run(incr_async(url, int(path)))
        else:
            incr_sync(url, int(path))
    elif role == "producer":
        if face == "async":
            asyncio.run(produce_async(url, path))
        else:
            produce_sync(url, path)
    elif face == "async":
        asyncio.run(flush_async(url, path))
    else:
        flush_sync(url, path)


if __name__ == "__main__":
    main(sys.argv[1:])
