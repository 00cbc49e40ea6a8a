"""``redkit worker``: a flusher process over a reflected SQLite table, on standalone and Cluster."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import redkit
from redkit.cli import main
from redkit.errors import BackendRejected
from tests.memory_limit import capped_memory

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, seq INTEGER)"


class NoRepository:
    def find_by_id(self, id: Any) -> None:
        raise AssertionError("not read")

    def upsert_many(self, entities: Any) -> int:
        raise AssertionError("not flushed here")


def rows(db: Path) -> dict[int, tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return {id: (email, seq) for id, email, seq in conn.execute("SELECT * FROM users")}


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def worker_args(url: str, db: Path) -> list[str]:
    return [
        "worker",
        "--url",
        url,
        "--prefix",
        "cliwb",
        "--repository",
        f"sqlite:///{db}",
        "--table",
        "users",
        "--flush-interval",
        "0.05",
        "--max-attempts",
        "1",
        "--report-every",
        "0",
    ]


def test_the_worker_flushes_dead_letters_replay_and_sigterm_drains(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute(SCHEMA)
        conn.execute("INSERT INTO users VALUES (999, 'taken@example.com', 0)")
    process = subprocess.Popen(
        [sys.executable, "-m", "redkit.cli", *worker_args(redis_url, db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "flushing 'cliwb'" in process.stdout.readline()
        client = redkit.connect(redis_url)
        writer = redkit.WriteBehind(client, "cliwb", NoRepository(), flusher=False)
        for id in range(100):
            writer.write({"id": id, "email": f"user{id}@example.com", "seq": 1})
        writer.write({"id": 5000, "email": "taken@example.com", "seq": 1})  # refused: UNIQUE
        wait_for(lambda: len(rows(db)) == 101 and writer.dead_letters() == 1)

        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM users WHERE id = 999")
        assert main([*worker_args(redis_url, db), "--replay-dead-letters"]) == 0
        assert "1 dead letters replayed" in capsys.readouterr().out
        wait_for(lambda: 5000 in rows(db))
        assert writer.dead_letters() == 0

        for id in range(100, 120):  # left for the drain: the worker stops after writing them
            writer.write({"id": id, "email": f"user{id}@example.com", "seq": 1})
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output
        assert "stopped" in output
        assert set(range(120)) <= set(rows(db))
        assert writer.backlog() == 0
        writer.close()
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_worker_starts_and_drains_when_the_backlog_has_filled_redis(
    redis_url: str, tmp_path: Path
) -> None:
    """Redis is full (maxmemory, noeviction) of unflushed writes: a worker started now must
    come up and drain them (it is what frees memory); then writes are taken again."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute(SCHEMA)
    client = redkit.connect(redis_url)
    writer = redkit.WriteBehind(
        client, "cliwb", NoRepository(), flusher=False, max_backlog=None, shards=4
    )
    process = None
    try:
        with capped_memory(redis_url):
            taken, refused, id = [], set(), 0
            while len(refused) < 4:
                assert id < 200_000, "Redis never ran out of memory"
                try:
                    writer.write({"id": id, "email": f"{id}@{'x' * 1000}", "seq": 1})
                except BackendRejected:
                    refused.add(writer.layout.shard_of(str(id)))
                else:
                    taken.append(id)
                id += 1
            process = subprocess.Popen(
                [sys.executable, "-m", "redkit.cli", *worker_args(redis_url, db), "--shards", "4"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert process.stdout is not None
            assert "flushing 'cliwb'" in process.stdout.readline()
            wait_for(lambda: len(rows(db)) == len(taken), timeout=60)
            assert sorted(rows(db)) == taken
            wait_for(lambda: writer.backlog() == 0)
            writer.write({"id": -1, "email": "after@example.com", "seq": 1})
            wait_for(lambda: -1 in rows(db))
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
            assert process.returncode == 0, output
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        writer.close()
        client.close()


def test_a_missing_table_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "empty.db"
    args = worker_args("redis://127.0.0.1:1/0", db)
    assert main(args) == 2
    assert "cannot use table 'users'" in capsys.readouterr().out


def test_bad_options_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute(SCHEMA)
    assert main([*worker_args("redis://127.0.0.1:1/0", db), "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().out
