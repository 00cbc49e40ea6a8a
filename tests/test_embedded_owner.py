"""Servers die with their owner, however it started them; dead owners' folders are swept.

The owner is a real Python child process that starts every topology from the main thread, a
thread that stays alive, or a thread that has already exited, prints the server pids and is
then killed with SIGKILL (no atexit, no finally).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from redkit.embedded import EmbeddedServer
from redkit.embedded.workdir import (
    OWNER_FILE,
    PREFIX,
    make_workdir,
    owner_alive,
    owner_record,
    sweep,
)

_GONE_WITHIN = 10.0  # seconds; in practice a few milliseconds

_OWNER = r"""
import json, sys, threading
from redkit.embedded import EmbeddedServer

how, kind = sys.argv[1], sys.argv[2]
servers = []
started = threading.Event()

def start_all():
    for options in ({}, {"cluster": 3}, {"sentinel": True}):
        servers.append(EmbeddedServer(binary=kind, **options).start())
    started.set()

if how == "main":
    start_all()
elif how == "thread":  # a thread that is still alive when the owner is killed
    threading.Thread(target=lambda: (start_all(), threading.Event().wait()), daemon=True).start()
else:  # "exited-thread": the thread that started them has ended
    thread = threading.Thread(target=start_all)
    thread.start()
    thread.join()
started.wait()
print(json.dumps({
    "pids": [pid for s in servers for pid in s.pids.values()],
    "folders": [str(s.directory) for s in servers],
    "ports": [s.port for s in servers],
}), flush=True)
threading.Event().wait()
"""


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet (it no longer runs)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def _wait_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + _GONE_WITHIN
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if not _gone(pid)]
        if alive:
            time.sleep(0.01)
    return alive


@pytest.mark.parametrize("how", ["main", "thread", "exited-thread"])
def test_servers_die_with_a_killed_owner_and_its_folders_are_swept(
    how: str, server_kind: str
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, how, server_kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = owner.stdout.readline() if owner.stdout else ""
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout:
            owner.stdout.close()
    started = json.loads(line)
    pids, folders = started["pids"], [Path(f) for f in started["folders"]]
    assert len(pids) == 1 + 3 + 5
    survivors = _wait_gone(pids)
    for pid in survivors:  # a red run must not leave orphans behind
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], "server processes outlived their owner"
    for port in started["ports"]:
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=port, socket_connect_timeout=1, retry=None).ping()
    assert all(folder.is_dir() for folder in folders), "a killed owner cannot clean up"
    with EmbeddedServer(binary=server_kind):
        assert not any(folder.exists() for folder in folders)


def _native_thread_gone(native_id: int) -> bool:
    return not Path(f"/proc/self/task/{native_id}").exists()


def test_servers_outlive_the_thread_that_started_them(server_kind: str) -> None:
    """The death signal follows the forking thread: a server must not die with a worker."""
    servers: list[EmbeddedServer] = []
    thread = threading.Thread(
        target=lambda: servers.append(EmbeddedServer(binary=server_kind).start())
    )
    thread.start()
    thread.join()
    assert thread.native_id is not None
    deadline = time.monotonic() + _GONE_WITHIN
    while not _native_thread_gone(thread.native_id):  # join() returns before the OS thread ends
        assert time.monotonic() < deadline
        time.sleep(0.001)
    (server,) = servers
    try:
        client = redis.Redis(port=server.port, socket_timeout=5, retry=None)
        assert client.ping() is True
        client.close()
        assert server.running
    finally:
        server.stop()


# ---------------------------------------------------------------------- the sweep itself


def _folder(parent: Path, name: str, record: object | None) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "server-1").mkdir()
    if record is not None:
        text = record if isinstance(record, str) else json.dumps(record)
        (folder / OWNER_FILE).write_text(text)
    return folder


def _start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_owner_record_names_this_process() -> None:
    folder = make_workdir()
    try:
        record = json.loads((folder / OWNER_FILE).read_text())
    finally:
        (folder / OWNER_FILE).unlink()
        folder.rmdir()
    assert record == owner_record()
    assert record["pid"] == os.getpid()
    assert isinstance(record["start_time"], int)
    assert isinstance(record["boot_id"], str)
    assert owner_alive(record)


def test_sweep_removes_only_folders_of_dead_owners(tmp_path: Path) -> None:
    me = owner_record()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while not _gone(zombie.pid):  # exited, deliberately not reaped yet
        time.sleep(0.001)
    dead = {
        "dead": {**me, "pid": _dead_pid()},
        "zombie": {**me, "pid": zombie.pid, "start_time": _start_time(zombie.pid)},
        "reused-pid": {**me, "start_time": int(me["start_time"]) + 1},  # type: ignore[call-overload]
        "other-boot": {**me, "boot_id": "not-this-boot"},
    }
    kept = {
        "live": me,
        "no-record": None,
        "garbage": "{not json",
        "not-a-dict": "[1, 2]",
        "odd-pid": {**me, "pid": "12"},
    }
    folders = {
        name: _folder(tmp_path, PREFIX + name, rec) for name, rec in {**dead, **kept}.items()
    }
    foreign = _folder(tmp_path, "other-" + "dead", {**me, "pid": _dead_pid()})
    if os.geteuid() == 0:  # only root can give a folder to another user
        others = _folder(tmp_path, PREFIX + "another-user", {**me, "pid": _dead_pid()})
        os.chown(others, 65534, 65534)
        kept["another-user"] = None
        folders["another-user"] = others
    (tmp_path / (PREFIX + "file")).write_text(json.dumps({**me, "pid": _dead_pid()}))
    elsewhere = _folder(tmp_path, "elsewhere", {**me, "pid": _dead_pid()})
    (tmp_path / (PREFIX + "link")).symlink_to(elsewhere)
    try:
        removed = sweep(tmp_path)
    finally:
        zombie.wait()
    assert sorted(p.name for p in removed) == sorted(PREFIX + name for name in dead)
    for name in dead:
        assert not folders[name].exists()
    for name in kept:
        assert folders[name].is_dir()
        assert (folders[name] / "server-1").is_dir()
    assert foreign.is_dir()
    assert (tmp_path / (PREFIX + "file")).is_file()
    assert (tmp_path / (PREFIX + "link")).is_symlink()
    assert elsewhere.is_dir()
