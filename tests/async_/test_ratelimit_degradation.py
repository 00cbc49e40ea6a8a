"""Limiters when the server is stopped: raise, fail open, fail closed, or an in-process
fallback that serves until Redis is back (the sync twin is generated).

The limiter talks to a private server through a loopback proxy; stopping the server makes
every connection attempt fail at once (as a stopped server does), and pointing the proxy at a
new server brings "Redis" back on the same address.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from redkit.asyncio import (
    DecidedBy,
    FixedWindowLimiter,
    GCRALimiter,
    LocalFixedWindowLimiter,
    LocalGCRALimiter,
    LocalSlidingWindowCounterLimiter,
    LocalSlidingWindowLogLimiter,
    LocalTokenBucketLimiter,
    SlidingWindowCounterLimiter,
    SlidingWindowLogLimiter,
    TokenBucketLimiter,
    connect,
)
from redkit.embedded import EmbeddedServer
from redkit.errors import BackendUnavailable
from tests.netproxy import Proxy

PAIRS: dict[str, tuple[Any, Any]] = {
    "fixed_window": (
        lambda c, **kw: FixedWindowLimiter(c, 3, 60, **kw),
        lambda **kw: LocalFixedWindowLimiter(2, 60, **kw),
    ),
    "sliding_window_log": (
        lambda c, **kw: SlidingWindowLogLimiter(c, 3, 60, **kw),
        lambda **kw: LocalSlidingWindowLogLimiter(2, 60, **kw),
    ),
    "sliding_window_counter": (
        lambda c, **kw: SlidingWindowCounterLimiter(c, 3, 60, **kw),
        lambda **kw: LocalSlidingWindowCounterLimiter(2, 60, **kw),
    ),
    "token_bucket": (
        lambda c, **kw: TokenBucketLimiter(c, 3, 0.001, **kw),
        lambda **kw: LocalTokenBucketLimiter(2, 0.001, **kw),
    ),
    "gcra": (
        lambda c, **kw: GCRALimiter(c, 3, 3600, **kw),
        lambda **kw: LocalGCRALimiter(2, 3600, **kw),
    ),
}


class ManualClock:
    """A monotonic clock the test moves by hand (drives the breaker)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Outage:
    """A server behind a proxy: ``stop()`` it, then ``restore()`` a fresh one."""

    def __init__(self) -> None:
        self.server = EmbeddedServer().start()
        self.proxy = Proxy("127.0.0.1", self.server.port)
        self.url = self.proxy.url_for(self.server.url)

    def stop(self) -> None:
        self.server.stop()

    def restore(self) -> None:
        self.server = EmbeddedServer().start()
        self.proxy.upstream = ("127.0.0.1", self.server.port)

    def close(self) -> None:
        self.proxy.close()
        self.server.stop()


@pytest.fixture
def outage() -> Iterator[Outage]:
    outage = Outage()
    yield outage
    outage.close()


@pytest.fixture(params=sorted(PAIRS))
def pair(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    return PAIRS[request.param]


def _client(outage: Outage) -> Any:
    return connect(outage.url, retries=0, socket_connect_timeout=1.0, socket_timeout=1.0)


async def test_by_default_a_stopped_server_raises_backend_unavailable(
    outage: Outage, pair: Any
) -> None:
    client = _client(outage)
    limiter = pair[0](client)
    assert (await limiter.hit("user")).decided_by == DecidedBy.REDIS
    outage.stop()
    with pytest.raises(BackendUnavailable):
        await limiter.hit("user")
    with pytest.raises(BackendUnavailable):
        await limiter.peek("user")
    with pytest.raises(BackendUnavailable):
        await limiter.reset("user")  # a reset never pretends
    assert limiter.stats.errors == 2
    await client.aclose()


async def test_fail_open_admits_and_says_so(outage: Outage, pair: Any) -> None:
    client = _client(outage)
    limiter = pair[0](client, on_error="allow")
    outage.stop()
    results = [await limiter.hit("user") for _ in range(10)]
    assert all(r.allowed and r.decided_by == DecidedBy.FAIL_OPEN for r in results)
    never = await limiter.hit("user", 4)  # above the limit: no path admits it
    assert not never.allowed and never.retry_after is None
    assert limiter.stats.failed_open == 11 and limiter.stats.allowed == 10
    await client.aclose()


async def test_fail_closed_denies_with_a_retry_after(outage: Outage, pair: Any) -> None:
    client = _client(outage)
    limiter = pair[0](client, on_error="deny", breaker=2.5)
    outage.stop()
    for _ in range(3):
        result = await limiter.hit("user")
        assert not result.allowed and result.decided_by == DecidedBy.FAIL_CLOSED
        assert result.retry_after == 2.5 and result.remaining == 0
    assert limiter.stats.failed_closed == 3 and limiter.stats.denied == 3
    await client.aclose()


async def test_the_fallback_decides_until_redis_is_back(outage: Outage, pair: Any) -> None:
    """While the server is down the in-process limiter (2 per process here) decides; the
    breaker keeps decisions off Redis for ``breaker`` seconds; then Redis decides again,
    with the state it has (a fresh server: a full allowance)."""
    make_redis, make_local = pair
    clock = ManualClock()
    client = _client(outage)
    limiter = make_redis(client, fallback=make_local(clock=clock), breaker=5.0, clock=clock)
    assert limiter.on_error == "fallback"
    assert (await limiter.hit("user")).decided_by == DecidedBy.REDIS
    outage.stop()
    degraded = [await limiter.hit("user") for _ in range(3)]
    assert [r.allowed for r in degraded] == [True, True, False]
    assert all(r.decided_by == DecidedBy.FALLBACK and r.limit == 2 for r in degraded)
    assert limiter.stats.errors == 3 and limiter.stats.snapshot().get("breaker_open") == 1
    assert (await limiter.peek("user")).decided_by == DecidedBy.FALLBACK
    outage.restore()
    clock.now += 1.0  # the breaker is still open: Redis is not asked
    assert (await limiter.hit("user")).decided_by == DecidedBy.FALLBACK
    clock.now += 5.0
    back = await limiter.hit("user")
    assert back.decided_by == DecidedBy.REDIS and back.allowed and back.remaining == 2
    assert limiter.stats.fallback == 4
    await client.aclose()


async def test_without_a_breaker_every_decision_tries_redis_first(outage: Outage) -> None:
    client = _client(outage)
    limiter = FixedWindowLimiter(client, 3, 60, fallback=LocalFixedWindowLimiter(3, 60), breaker=0)
    outage.stop()
    for _ in range(3):
        assert (await limiter.hit("user")).decided_by == DecidedBy.FALLBACK
    assert limiter.stats.errors == 3 and limiter.stats.snapshot().get("breaker_open") is None
    outage.restore()
    assert (await limiter.hit("user")).decided_by == DecidedBy.REDIS
    await client.aclose()
