"""Stampede protection across processes: one fetch for 32 misses from 4 processes."""

from __future__ import annotations

from typing import Any

from tests._acompat import FACE
from tests.workers import run_stampede


async def test_one_fetch_for_32_concurrent_misses_across_4_processes(
    client: Any, redis_url: str
) -> None:
    results = run_stampede(redis_url, FACE, "stampede", processes=4, tasks=8)
    assert results == [{"value": "expensive"}] * 32
    assert int(await client.get("stampede-fetches")) == 1
