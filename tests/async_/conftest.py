"""Clients for the async tests, on each topology (``tests/sync`` gets the generated twin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from redkit.asyncio import connect


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Any]:
    """A client of the server for this test's topology (standalone or cluster), flushed."""
    redis = connect(redis_url)
    yield redis
    await redis.aclose()
