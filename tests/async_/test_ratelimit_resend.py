"""A hit whose reply is lost is re-sent by redis-py, and must still count once (the sync twin
is generated).

redis-py re-sends a command after a socket timeout even when the server already ran it. The
limiter's client goes through a proxy that holds back the reply to the first EVALSHA longer
than the client's ``socket_timeout``; the client's retry re-sends the hit on a new
connection, the server runs the script a second time, and exactly one unit must be gone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from redkit.asyncio import (
    FixedWindowLimiter,
    GCRALimiter,
    SlidingWindowCounterLimiter,
    SlidingWindowLogLimiter,
    TokenBucketLimiter,
    connect,
)
from tests.netproxy import Proxy

#: Each limiter with ``limit`` units and no replenishment during a test.
KINDS: dict[str, Any] = {
    "fixed_window": lambda client, limit: FixedWindowLimiter(client, limit, 600),
    "sliding_window_log": lambda client, limit: SlidingWindowLogLimiter(client, limit, 600),
    "sliding_window_counter": lambda client, limit: SlidingWindowCounterLimiter(client, limit, 600),
    "token_bucket": lambda client, limit: TokenBucketLimiter(client, limit, 1 / 3600),
    "gcra": lambda client, limit: GCRALimiter(client, limit, 3600.0),
}


@pytest.fixture
def proxy(standalone_server: Any, admin: Any) -> Iterator[Proxy]:
    """A proxy in front of the standalone server (flushed by ``admin``'s fixture)."""
    with Proxy("127.0.0.1", standalone_server.port) as proxy:
        yield proxy


@pytest.fixture
def topology() -> str:
    return "standalone"  # the proxy fronts one server; a Cluster client would go around it


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_a_hit_resent_after_a_lost_reply_counts_once(
    proxy: Proxy, standalone_server: Any, kind: str
) -> None:
    client = connect(proxy.url_for(standalone_server.url), socket_timeout=1.0, retries=5)
    limiter = KINDS[kind](client, 10)
    try:
        assert (await limiter.peek("user")).remaining == 10  # the script is loaded
        hold = threading.Event()
        proxy.delay_reply(b"EVALSHA", hold)
        try:
            result = await limiter.hit("user", 3)
        finally:
            hold.set()
        assert proxy.delayed.is_set(), "no reply was held back: nothing was re-sent"
        assert result.allowed and result.remaining == 7  # the re-send's answer: a look
        assert (await limiter.peek("user")).remaining == 7, "the re-sent hit counted twice"
        assert (await limiter.hit("user", 7)).allowed
        assert not (await limiter.hit("user")).allowed
    finally:
        await client.aclose()
