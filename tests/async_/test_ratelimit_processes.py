"""Limiters across processes: 64 clients in 4 processes against a limit of 100, and clients
killed mid-call (SIGKILL) never leave a key without an expiry, unlike the source article's
INCR-then-EXPIRE fixed window."""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any

from tests._acompat import FACE
from tests.limiter_workers import KINDS, hit_forever, naive_fixed_window_hit, run_hammer


async def test_64_clients_in_4_processes_admit_exactly_the_limit(redis_url: str) -> None:
    admitted = run_hammer(redis_url, FACE, "procs", limit=100, processes=4, clients=16, attempts=4)
    assert admitted == dict.fromkeys(KINDS, 100)


async def test_the_naive_incr_then_expire_leaves_a_key_that_never_expires(
    client: Any, redis_url: str
) -> None:
    """The article's version: a process that dies between INCR and EXPIRE leaves a counter
    without an expiry, and that user is limited for ever once it reaches the limit."""
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=naive_fixed_window_hit, args=(redis_url, "naive:{u}", 60))
    child.start()
    child.join(30)
    assert child.exitcode == 1
    assert await client.get("naive:{u}") == b"1"
    assert await client.pttl("naive:{u}") == -1  # immortal


async def test_clients_killed_mid_call_never_leave_a_key_without_an_expiry(
    client: Any, redis_url: str
) -> None:
    """Each limiter writes its state and the key's expiry in one command of one script: a
    client killed at any point leaves either nothing or a key that expires."""
    context = multiprocessing.get_context("spawn")
    for round in range(3):
        ready = context.Event()
        child = context.Process(target=hit_forever, args=(redis_url, FACE, f"killed{round}", ready))
        child.start()
        assert ready.wait(30), "the child never got going"
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(10)
    seen = 0
    async for key in _scan(client, "killed*"):
        seen += 1
        assert await client.pttl(key) > 0, key
    assert seen >= 3 * len(KINDS)


async def _scan(client: Any, match: str) -> Any:
    async for key in client.scan_iter(match=match, count=1000):
        yield key
