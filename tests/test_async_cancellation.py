"""Cancellation on the async face (threads cannot be cancelled, so there is no sync twin)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redkit.asyncio import CacheAside, connect
from tests._acompat import Gated, wait_until


@pytest.fixture
async def aclient(redis_url: str) -> AsyncIterator[Any]:
    client = connect(redis_url)
    yield client
    await client.aclose()


async def test_cancelling_the_first_caller_does_not_cancel_the_others(aclient: Any) -> None:
    cache = CacheAside(aclient, "cancel-leader")
    fetch = Gated({"v": 1})
    leader = asyncio.ensure_future(cache.get_or_fetch("k", fetch))
    await fetch.started.wait()
    followers = [asyncio.ensure_future(cache.get_or_fetch("k", fetch)) for _ in range(5)]
    await wait_until(lambda: cache.stats.misses == 6)
    leader.cancel()
    await asyncio.sleep(0)
    fetch.release.set()
    assert await asyncio.gather(*followers) == [{"v": 1}] * 5
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert fetch.calls == 1
    assert await cache.get("k") == {"v": 1}


async def test_when_every_caller_is_cancelled_the_fetch_stops_and_releases_its_lock(
    aclient: Any,
) -> None:
    cache = CacheAside(aclient, "cancel-all", lock_wait=5.0)
    never = Gated("never")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(cache.get_or_fetch("k", never), 0.2)
    await cache.store.background.drain()
    assert not await aclient.exists("cancel-all:{k}:lock")
    started = time.monotonic()
    assert await cache.get_or_fetch("k", lambda: "fresh") == "fresh"
    assert time.monotonic() - started < 1.0, "the next caller waited out the abandoned lock"


@pytest.mark.parametrize("timeout", [0.0, 0.0002, 0.0005, 0.001, 0.002, 0.004, 0.008])
async def test_a_cancellation_landing_anywhere_leaves_no_lock_behind(
    aclient: Any, timeout: float
) -> None:
    """Cancel after ``timeout``: in the read, in the lock script, in the fetch or the fill."""
    cache = CacheAside(aclient, "cancel-sweep", lock_wait=5.0)
    for i in range(10):
        key = f"k{i}"

        async def fetch(key: str = key) -> str:
            await asyncio.sleep(0.001)
            return key

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(cache.get_or_fetch(key, fetch), timeout)
        await cache.store.background.drain()
        assert not await aclient.exists(f"cancel-sweep:{{{key}}}:lock"), f"lock left ({key})"
        started = time.monotonic()
        assert await cache.get_or_fetch(key, fetch) == key
        assert time.monotonic() - started < 1.0
    await cache.aclose()


async def test_a_cancelled_reader_does_not_disturb_the_others(aclient: Any) -> None:
    cache = CacheAside(aclient, "cancel-read")
    await cache.set("k", "v")
    first = asyncio.ensure_future(cache.get("k"))
    second = asyncio.ensure_future(cache.get("k"))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "v"
    with pytest.raises(asyncio.CancelledError):
        await first
