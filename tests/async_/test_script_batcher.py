"""Script batching (the sync twin is generated): concurrent script runs share round trips on
the async face, each caller gets its own result or error, and a cancelled caller disturbs no
one. The sync face sends each call at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redkit.asyncio import FixedWindowLimiter
from redkit.errors import BackendRejected
from tests._acompat import FACE, run_concurrently


class PipelineSpy:
    """Counts the pipelines a client opens (the client itself is real)."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = client.pipeline

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(client, "pipeline", pipeline)


async def test_concurrent_hits_share_round_trips(client: Any, monkeypatch: Any) -> None:
    limiter = FixedWindowLimiter(client, 100, 60)
    await limiter.hit("warm-up")  # loads the script
    spy = PipelineSpy(client, monkeypatch)
    results = await run_concurrently(50, lambda i: limiter.hit(f"user-{i % 5}"))
    assert sorted(r.remaining for r in results) == sorted([99 - n for n in range(10)] * 5)
    if FACE == "async":
        assert 1 <= spy.count <= 2  # one pipeline for the whole turn (rarely two)
    else:
        assert spy.count == 0  # the sync face sends each call at once


async def test_a_failing_script_fails_only_its_caller(client: Any) -> None:
    limiter = FixedWindowLimiter(client, 10, 60)
    await client.rpush(limiter.keys.key("a-list"), "x")  # wrong type for the script

    async def hit(i: int) -> Any:
        try:
            return await limiter.hit("a-list" if i == 3 else f"user-{i}")
        except BackendRejected as exc:
            return exc

    results = await run_concurrently(8, hit)
    assert isinstance(results[3], BackendRejected) and "WRONGTYPE" in str(results[3])
    assert all(r.allowed for i, r in enumerate(results) if i != 3)


if FACE == "async":

    async def test_a_cancelled_caller_disturbs_no_one(client: Any) -> None:
        limiter = FixedWindowLimiter(client, 10, 60)
        await limiter.hit("warm-up")
        tasks = [asyncio.ensure_future(limiter.hit(f"user-{i}")) for i in range(10)]
        await asyncio.sleep(0)  # all ten queued in this turn
        tasks[4].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[4], asyncio.CancelledError)
        assert all(r.allowed for i, r in enumerate(done) if i != 4)
