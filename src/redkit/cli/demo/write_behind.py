"""Demo section: write-behind into SQLite, and a writer killed mid-stream with nothing lost.

A burst of user updates through :class:`redkit.WriteBehind` (each ``write`` returns once the
update is in Redis) while its background flusher upserts them into SQLite in batches: writes
per second, the backlog as it rises and drains, the flush batches. Then a writer in another
process is killed with SIGKILL mid-burst; the updates whose ``write`` had returned are all in
the database afterwards, with each user's last value.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.table import Table

import redkit
from redkit.cli.demo._common import BAD, OK, PREFIX, Context, remove_keys
from redkit.integrations.sqlalchemy import SQLAlchemyRepository

TITLE = "write-behind"
NAMESPACE = f"{PREFIX}:wb"
USERS = 2_000
BURST = 20_000
BATCH = 500
CRASH_AFTER = 0.6


def _table() -> sa.Table:
    return sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(40)),
        sa.Column("visits", sa.Integer),
    )


class _NoRepository:
    """The crashing writer only writes: the demo's own flusher flushes."""

    def find_by_id(self, id: Any) -> None:
        raise AssertionError("not read")

    def upsert_many(self, entities: Any) -> int:
        raise AssertionError("not flushed")


def _crashing_writer(url: str, log: str, ready: Any) -> None:
    """Write for ever (the demo kills it), logging each update whose write returned."""
    client = redkit.connect(url)
    repository: Any = _NoRepository()
    writer = redkit.WriteBehind(client, NAMESPACE, repository, flusher=False)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    ready.set()
    visits = 1_000_000
    while True:
        visits += 1
        user = visits % USERS
        writer.write({"id": user, "name": f"user {user}", "visits": visits})
        os.write(fd, f"{user} {visits}\n".encode())


def _burst(store: redkit.WriteBehind) -> tuple[float, int]:
    """Write BURST updates; (writes per second, highest backlog seen meanwhile)."""
    peak = 0
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, store.backlog())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    for i in range(BURST):
        user = i % USERS
        store.write({"id": user, "name": f"user {user}", "visits": i})
    elapsed = time.perf_counter() - started
    sampling = False
    sampler.join()
    return BURST / elapsed, peak


def _database(engine: sa.Engine, table: sa.Table) -> dict[int, int]:
    with engine.connect() as conn:
        return {row.id: row.visits for row in conn.execute(sa.select(table))}


def _wait_drained(store: redkit.WriteBehind, timeout: float = 30.0) -> float:
    started = time.perf_counter()
    while store.backlog():
        if time.perf_counter() - started > timeout:
            break
        time.sleep(0.01)
    return time.perf_counter() - started


def _crash(
    ctx: Context, store: redkit.WriteBehind, engine: sa.Engine, table: sa.Table, directory: Path
) -> tuple[int, int, int]:
    """Kill a writer process mid-burst; (its returned writes, ids, ids not up to date)."""
    log = directory / "crash.log"
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    writer = spawn.Process(target=_crashing_writer, args=(ctx.url, str(log), ready), daemon=True)
    writer.start()
    ready.wait(30)
    time.sleep(CRASH_AFTER)
    writer.kill()  # SIGKILL: no clean-up, mid-write
    writer.join()
    last: dict[int, int] = {}
    lines = log.read_text().splitlines() if log.exists() else []
    for line in lines:
        user, visits = map(int, line.split())
        last[user] = max(visits, last.get(user, 0))
    store.flush()
    _wait_drained(store)
    rows = _database(engine, table)
    behind = sum(1 for user, visits in last.items() if rows.get(user, -1) < visits)
    return len(lines), len(last), behind


def run(ctx: Context) -> bool:
    """Section 6; whether every returned write reached the database."""
    console = ctx.console
    console.rule("Write-behind")
    directory = Path(ctx.stack.enter_context(tempfile.TemporaryDirectory(prefix="redkit-wb-")))
    engine = sa.create_engine(f"sqlite:///{directory}/users.db")
    table = _table()
    table.metadata.create_all(engine)
    ctx.stack.callback(engine.dispose)
    ctx.stack.callback(remove_keys, ctx.url, NAMESPACE)
    client = redkit.connect(ctx.url)
    ctx.stack.callback(client.close)
    store = redkit.WriteBehind(
        client, NAMESPACE, SQLAlchemyRepository(engine, table), batch_size=BATCH, flush_interval=0.1
    )
    console.print(
        f"{BURST:,} updates of {USERS:,} users through WriteBehind.write (sync, one thread); "
        f"a background flusher upserts them into SQLite in batches of up to {BATCH}."
    )
    rate, peak = _burst(store)
    drained = _wait_drained(store)
    stats = store.stats
    rows = _database(engine, table)
    last = {i % USERS: i for i in range(BURST)}
    current = sum(1 for user, visits in last.items() if rows.get(user) == visits)
    table_view = Table(title="Write-behind burst")
    table_view.add_column("measure")
    table_view.add_column("value", justify="right")
    table_view.add_row("writes/s (each in Redis when write returns)", f"{rate:,.0f}")
    table_view.add_row("highest backlog seen (unflushed writes)", f"{peak:,}")
    table_view.add_row("drained after the burst in", f"{drained:.2f} s")
    table_view.add_row("flush batches (upsert_many calls)", f"{stats.batches:,}")
    table_view.add_row("rows upserted", f"{stats.flushed:,}")
    table_view.add_row(
        "writes coalesced away (a newer one was in the batch)", f"{stats.coalesced:,}"
    )
    table_view.add_row("users holding their last update in SQLite", f"{current:,} of {USERS:,}")
    console.print(table_view)

    console.print(
        f"A writer process updates users as fast as it can; after {CRASH_AFTER:.1f} s it is "
        "killed with SIGKILL. Every update whose write() had returned must reach SQLite."
    )
    returned, users, behind = _crash(ctx, store, engine, table, directory)
    store.close()
    passed = behind == 0 and current == USERS
    mark = OK if passed else BAD
    console.print(
        f"writer killed: {returned:,} writes had returned, {users:,} users; lost: {behind} {mark}"
    )
    return passed
