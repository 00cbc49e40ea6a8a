"""The sync TieredCache's listener thread: a process made by ``os.fork()`` (gunicorn
--preload) has none, so the child's L1 starts empty and fills only once its own listener is
up; and ending a session never touches a connection another thread is still setting up."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import redkit
import redkit._sync.tracking as tracking
from redkit._redis_compat import is_connected
from tests._compat import Event, start, wait_until


@pytest.fixture
def sclient(redis_url: str) -> Iterator[Any]:
    client = redkit.connect(redis_url)
    yield client
    client.close()


def _child(cache: Any, client: Any) -> int:
    if len(cache.l1) or cache.l1.live:
        return 1  # the parent's entries, with nobody to invalidate them here
    if cache.get("k") != "old":
        return 2
    deadline = time.monotonic() + 5
    while "k" not in cache.l1:  # the child's own listener comes up, then a read fills L1
        if time.monotonic() > deadline:
            return 3
        cache.get("k")
    client.set(cache.keys.key("k"), cache.codec.encode("new"))
    while "k" in cache.l1:
        if time.monotonic() > deadline:
            return 4
    return 0 if cache.get("k") == "new" else 5


def test_a_forked_child_starts_with_an_empty_l1_and_a_listener_of_its_own(
    sclient: Any,
) -> None:
    cache = redkit.TieredCache(sclient, "forked")
    cache.set("k", "old")
    cache.get("k")
    wait_until(lambda: cache.l1.live)
    cache.get("k")
    assert "k" in cache.l1
    pid = os.fork()
    if pid == 0:
        signal.alarm(10)
        try:
            os._exit(_child(cache, sclient))
        except BaseException:
            os._exit(9)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    cache.close()


def test_ending_a_session_never_connects_a_connection_being_set_up(
    sclient: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listener thread is inside a connection's connect (no socket yet) when the session
    is ended: the interrupt must not connect it from its own thread (it would then read the
    handshake's replies concurrently with the listener: a deadlock)."""
    connecting, proceed = Event(), Event()
    made: list[Any] = []
    real_make = tracking.tracking_connection

    def make(client: Any, address: Any = None) -> Any:
        conn = real_make(client, address)
        real_connect = conn._connect

        def held_connect() -> Any:
            connecting.set()
            proceed.wait(10)
            return real_connect()

        conn._connect = held_connect
        made.append(conn)
        return conn

    monkeypatch.setattr(tracking, "tracking_connection", make)
    cache = redkit.TieredCache(sclient, "setting-up")
    cache.set("k", 1)
    cache.get("k")  # starts the listener, which parks in the first connect
    assert connecting.wait(10)
    cache.invalidations._interrupt()  # what stop(), or another session's end, does
    assert not is_connected(made[0]), "the interrupt connected a connection being set up"
    proceed.set()
    closing = start(cache.close)
    assert closing.result(10) is None
