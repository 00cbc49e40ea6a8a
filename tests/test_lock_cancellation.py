"""Locks under asyncio cancellation (threads cannot be cancelled: no sync twin)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redkit.asyncio import Lock, connect
from redkit.errors import LockNotOwned
from tests._acompat import wait_until


@pytest.fixture
async def aclient(redis_url: str) -> AsyncIterator[Any]:
    client = connect(redis_url)
    yield client
    await client.aclose()


@pytest.mark.parametrize("timeout", [0.0, 0.0002, 0.0005, 0.001, 0.002])
async def test_a_release_cancelled_anywhere_leaves_a_consistent_state(
    aclient: Any, timeout: float
) -> None:
    lock = Lock(aclient, "cancel-release", ttl=30, auto_extend=True)
    for _ in range(5):
        assert await lock.acquire(timeout=5)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # in this task (wait_for uses another on 3.11)
                await lock.release()
        if await lock.owned():  # cancelled before it started: still held, and consistent
            await lock.release()
        with pytest.raises(LockNotOwned):
            await lock.release()
        await lock.store.background.drain()  # a release cancelled midway ends in the background
        assert not await aclient.exists("lock:{cancel-release}")
    await lock.aclose()


@pytest.mark.parametrize("timeout", [0.0, 0.0002, 0.0005, 0.001, 0.002])
async def test_an_acquire_cancelled_anywhere_leaves_no_lock(aclient: Any, timeout: float) -> None:
    lock = Lock(aclient, "cancel-acquire", ttl=30)
    for _ in range(5):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await lock.acquire()
        if await lock.owned():
            await lock.release()
        await lock.store.background.drain()
        assert not await aclient.exists("lock:{cancel-acquire}")


async def test_no_renewal_after_the_owner_task_is_cancelled(aclient: Any) -> None:
    lock = Lock(aclient, "cancel-owner", ttl=0.3, auto_extend=True)
    taken = asyncio.Event()

    async def owner() -> None:
        await lock.acquire()
        taken.set()
        await asyncio.sleep(60)  # cancelled while holding, without releasing

    task = asyncio.ensure_future(owner())
    await taken.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await wait_until(lambda: lock.store.background.running == 0, timeout=2)
    renewals = lock.events.snapshot().get("lock_extended", 0)
    assert await aclient.pttl("lock:{cancel-owner}") <= 300
    await asyncio.sleep(0.4)
    assert not await aclient.exists("lock:{cancel-owner}"), "renewed after cancellation"
    assert lock.events.snapshot().get("lock_extended", 0) == renewals


async def test_a_hold_taken_through_wait_for_passes_to_the_awaiting_task(aclient: Any) -> None:
    """Before Python 3.12 wait_for runs the acquire in a task of its own, which ends at once."""
    lock = Lock(aclient, "wait-for", ttl=30)
    assert await asyncio.wait_for(lock.acquire(), 5)
    assert await lock.owned()
    await lock.release()
    assert not await aclient.exists("lock:{wait-for}")
