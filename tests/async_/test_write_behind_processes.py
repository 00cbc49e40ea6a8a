"""The write-behind guarantee under SIGKILL: a producer and two flushers, killed at random.

Every round starts whatever is not running (a producer, two flusher processes), lets them
work a random moment and kills a random set of them with SIGKILL (mid-write, mid-commit,
holding leases and pending entries). Afterwards the backlog is drained and:

- every write whose ``write`` call returned is in the database, and every id holds its last
  written value (the one in its cache entry, which holds the newest write);
- no older value ever replaced a newer one (a trigger records every update that lowers an
  id's ``seq``, which grows with every write);
- nothing is pending, in the backlog or dead-lettered.

``REDKIT_WB_ROUNDS`` sets the rounds (20 by default; e.g. 300 for a deep run).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from redkit._core.write_behind import GROUP, unframe
from redkit.asyncio import WriteBehind
from redkit.integrations.sqlalchemy import AsyncSQLAlchemyRepository
from tests._acompat import FACE, pause
from tests.write_behind_workers import IDS, OPTIONS, PREFIX, SCHEMA, table

ROOT = Path(__file__).resolve().parent.parent.parent
ROUNDS = int(os.environ.get("REDKIT_WB_ROUNDS", "20"))


class Child:
    """One child process of tests.write_behind_workers."""

    def __init__(self, role: str, url: str, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.write_behind_workers", role, url, FACE, str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


def logged(log: Path) -> dict[int, int]:
    """The last seq of each id whose write returned, by the producer's log."""
    last: dict[int, int] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            id, seq = map(int, line.split())
            last[id] = max(seq, last.get(id, 0))
    return last


async def test_no_returned_write_is_lost_and_no_older_value_wins_under_sigkill(
    client: Any, redis_url: str, tmp_path: Path
) -> None:
    db, log = tmp_path / "items.db", tmp_path / "written.log"
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA)
    rng = random.Random(int(os.environ.get("REDKIT_WB_SEED", str(time.time_ns()))))
    roles = {"producer": log, "flusher-a": db, "flusher-b": db}
    children: dict[str, Child] = {}
    lines = 0
    try:
        for _ in range(ROUNDS):
            for name, path in roles.items():
                if name not in children or not children[name].alive():
                    children[name] = Child(name.split("-")[0], redis_url, path)
            deadline = time.monotonic() + 10
            # Wait for the producer to make progress, then kill at a random moment.
            while len(logged_lines(log)) <= lines and time.monotonic() < deadline:
                await pause(0.005)
            await pause(rng.uniform(0.0, 0.25))
            lines = len(logged_lines(log))
            doomed = rng.sample(sorted(children), rng.randint(1, len(children)))
            for name in doomed:
                children[name].kill()
                del children[name]
    finally:
        for child in children.values():
            child.kill()

    written = logged(log)
    assert sum(1 for _ in logged_lines(log)) > ROUNDS, "the producer barely wrote"

    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    repo = AsyncSQLAlchemyRepository(engine, table())
    wb = WriteBehind(client, PREFIX, repo, flusher=False, **OPTIONS)
    deadline = time.monotonic() + 30
    while await wb.backlog():  # the dead flushers' leases lapse after claim_after
        assert time.monotonic() < deadline, "the backlog never drained"
        await wb.flush()
        await pause(0.02)
    await wb.aclose()
    await engine.dispose()

    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT id, seq FROM items").fetchall())
        regressions = conn.execute("SELECT * FROM regressions").fetchall()
    assert regressions == [], "an older value overwrote a newer one"
    for id, seq in written.items():
        assert rows.get(id, -1) >= seq, f"id {id}: write {seq} returned but is not in the database"
    for id in range(IDS):
        shard = wb.layout.shard_of(str(id))
        data = await client.get(wb.layout.entry(shard, str(id)))
        if data is None:
            assert id not in written
            continue
        payload = unframe(data)
        assert payload is not None
        newest = wb.codec.decode(payload)
        assert rows[id] == newest["seq"], f"id {id}: the database does not hold its last write"
    for shard in range(wb.layout.shards):
        stream = wb.layout.stream(shard)
        if await client.exists(stream):
            assert (await client.xpending(stream, GROUP))["pending"] == 0
        assert await client.xlen(wb.layout.dead(shard)) == 0


def logged_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def test_increments_from_several_processes_are_never_lost(
    client: Any, redis_url: str
) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.write_behind_workers", "incr", redis_url, FACE, "100"],
            cwd=ROOT,
        )
        for _ in range(4)
    ]
    for child in children:
        assert child.wait(timeout=120) == 0
    wb = WriteBehind(client, "counter", NoRows(), flusher=False)
    assert await wb.get(0) == {"id": 0, "seq": 400}
    await wb.aclose()


class NoRows:
    async def find_by_id(self, id: Any) -> None:
        return None

    async def upsert_many(self, entities: Any) -> int:
        raise AssertionError("not flushed here")
