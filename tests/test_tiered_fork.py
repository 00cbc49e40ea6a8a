"""A TieredCache in a process made by ``os.fork()`` (gunicorn --preload): no listener runs
there, so the child's L1 starts empty and fills only once its own listener is up."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import redkit
from tests._compat import wait_until


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
