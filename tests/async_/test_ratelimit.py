"""The five limiters' contract, on standalone and Cluster (the sync twin is generated).

Every limiter passes the same tests: hit / peek / reset, costs, validation, keys with a hash
tag and an expiry, 64 concurrent clients against a limit of 100, the server's clock, and the
decorator. Failure behaviour (a stopped server) is in ``test_ratelimit_degradation.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from redkit.asyncio import (
    DecidedBy,
    FixedWindowLimiter,
    GCRALimiter,
    SlidingWindowCounterLimiter,
    SlidingWindowLogLimiter,
    TokenBucketLimiter,
    rate_limited,
)
from redkit.errors import ConfigurationError, InvalidArgument, InvalidKey, RateLimitExceeded
from tests._acompat import FACE, run_concurrently
from tests.limiter_cases import a_coroutine_function

MakeLimiter = Callable[..., Any]

#: Each limiter with ``limit`` units and no replenishment during a test: the exact algorithms
#: must then admit exactly ``limit``.
KINDS: dict[str, MakeLimiter] = {
    "fixed_window": lambda client, limit, **kw: FixedWindowLimiter(client, limit, 600, **kw),
    "sliding_window_log": lambda client, limit, **kw: SlidingWindowLogLimiter(
        client, limit, 600, **kw
    ),
    "sliding_window_counter": lambda client, limit, **kw: SlidingWindowCounterLimiter(
        client, limit, 600, **kw
    ),
    "token_bucket": lambda client, limit, **kw: TokenBucketLimiter(client, limit, 1 / 3600, **kw),
    "gcra": lambda client, limit, **kw: GCRALimiter(client, limit, 3600.0, **kw),
}


@pytest.fixture(params=sorted(KINDS))
def make(request: pytest.FixtureRequest) -> MakeLimiter:
    """Each of the five limiters in turn."""
    return KINDS[request.param]


async def test_hits_are_admitted_up_to_the_limit_then_denied(client: Any, make: Any) -> None:
    limiter = make(client, 3)
    results = [await limiter.hit("user") for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert all(r.limit == 3 and r.decided_by == DecidedBy.REDIS for r in results)
    assert all(r.retry_after == 0.0 and r.reset_after > 0 for r in results[:3])
    denied = results[3]
    assert denied.retry_after is not None and denied.retry_after > 0
    assert denied.reset_after >= denied.retry_after
    assert (await limiter.hit("someone else")).remaining == 2  # keys are independent
    assert limiter.stats.allowed == 4 and limiter.stats.denied == 1


async def test_peek_takes_nothing(client: Any, make: Any) -> None:
    limiter = make(client, 3)
    fresh = await limiter.peek("user")
    assert fresh.allowed and fresh.remaining == 3 and fresh.reset_after == 0
    assert not await client.exists(limiter.keys.key("user")), "a peek wrote a key"
    await limiter.hit("user", 2)
    for _ in range(3):
        assert (await limiter.peek("user")).remaining == 1
    assert not (await limiter.peek("user", 2)).allowed
    assert (await limiter.hit("user")).allowed


async def test_reset_gives_the_full_allowance_back(client: Any, make: Any) -> None:
    limiter = make(client, 2)
    await limiter.hit("user", 2)
    assert not (await limiter.hit("user")).allowed
    assert await limiter.reset("user") is True
    assert await limiter.reset("user") is False
    assert (await limiter.hit("user")).remaining == 1


async def test_a_cost_above_the_limit_is_never_admitted_and_changes_nothing(
    client: Any, make: Any
) -> None:
    limiter = make(client, 5)
    result = await limiter.hit("empty", 6)
    assert not result.allowed and result.retry_after is None and result.remaining == 5
    assert not await client.exists(limiter.keys.key("empty"))
    await limiter.hit("used", 2)
    key = limiter.keys.key("used")
    before = await _raw_state(client, key)
    result = await limiter.hit("used", 1000)
    assert not result.allowed and result.retry_after is None and result.remaining == 3
    assert await _raw_state(client, key) == before
    assert (await limiter.hit("used", 3)).allowed  # the rest is still there


async def test_a_zero_cost_is_a_free_look(client: Any, make: Any) -> None:
    limiter = make(client, 1)
    await limiter.hit("user")
    result = await limiter.hit("user", 0)
    assert result.allowed and result.remaining == 0


@pytest.mark.parametrize("cost", [-1, 1.5, True, "1", None])
async def test_a_bad_cost_raises_invalid_argument(client: Any, make: Any, cost: Any) -> None:
    limiter = make(client, 3)
    with pytest.raises(InvalidArgument, match="cost"):
        await limiter.hit("user", cost)
    with pytest.raises(InvalidArgument, match="cost"):
        await limiter.peek("user", cost)


@pytest.mark.parametrize(
    "build, option",
    [
        (lambda c: FixedWindowLimiter(c, 0, 1), "limit"),
        (lambda c: FixedWindowLimiter(c, 10, 0), "window"),
        (lambda c: FixedWindowLimiter(c, 2.5, 1), "limit"),
        (lambda c: SlidingWindowLogLimiter(c, 10, -1), "window"),
        (lambda c: SlidingWindowLogLimiter(c, True, 1), "limit"),
        (lambda c: SlidingWindowCounterLimiter(c, 10, math.nan), "window"),
        (lambda c: SlidingWindowCounterLimiter(c, 10, 1e-9), "window"),
        (lambda c: TokenBucketLimiter(c, 0, 1.0), "capacity"),
        (lambda c: TokenBucketLimiter(c, 10, 0), "refill_rate"),
        (lambda c: TokenBucketLimiter(c, 10, 1.0, 0), "refill_interval"),
        (lambda c: GCRALimiter(c, 10, 0), "period"),
        (lambda c: GCRALimiter(c, 10, 1.0, 0), "burst"),
        (lambda c: GCRALimiter(c, 10**9, 10**9, 10**9), "too large"),
    ],
)
async def test_bad_parameters_raise_invalid_argument(client: Any, build: Any, option: str) -> None:
    with pytest.raises(InvalidArgument, match=option):
        build(client)


async def test_a_bad_key_or_option_is_refused(client: Any, make: Any) -> None:
    limiter = make(client, 3)
    with pytest.raises(InvalidKey):
        await limiter.hit("")
    with pytest.raises(ConfigurationError, match="on_error"):
        make(client, 3, on_error="ignore")
    with pytest.raises(ConfigurationError, match="fallback"):
        make(client, 3, on_error="fallback")
    with pytest.raises(ConfigurationError, match="same algorithm"):
        make(client, 3, fallback=object())


async def test_every_key_has_a_hash_tag_and_an_expiry(client: Any, make: Any) -> None:
    limiter = make(client, 5)
    ids: list[Any] = ["alice", 42, "a}b", "with:colons", "%7D"]
    for id in ids:
        await limiter.hit(id, 2)
        await limiter.hit(id, 4)  # denied
    keys = [limiter.keys.key(id) for id in ids]
    assert len(set(keys)) == len(ids)
    for id, key in zip(ids, keys, strict=True):
        assert key.startswith(f"{limiter.keys.prefix}:{{") and key.endswith("}")
        # the key lives as long as its state matters: until the allowance is full again
        reset_ms = (await limiter.peek(id)).reset_after * 1000
        assert 0 < await client.pttl(key) <= math.ceil(reset_ms) + 1, key


async def test_64_concurrent_clients_never_get_more_than_the_limit(client: Any, make: Any) -> None:
    """64 clients, 4 hits each, against a limit of 100 with no replenishment meanwhile: the
    exact algorithms admit exactly 100, and every admitted hit saw its own remaining count.
    The sliding counter starts from an empty previous window, where its estimate is exact."""
    limiter = make(client, 100)

    async def client_hits(_: int) -> list[Any]:
        return [await limiter.hit("shared") for _ in range(4)]

    results = [r for rs in await run_concurrently(64, client_hits) for r in rs]
    allowed = [r for r in results if r.allowed]
    assert len(allowed) == 100
    assert sorted(r.remaining for r in allowed) == list(range(100))
    assert all(r.retry_after and r.retry_after > 0 for r in results if not r.allowed)


async def test_decisions_follow_the_servers_clock_not_the_clients(
    client: Any, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client whose clock runs an hour ahead (or behind) gets the same decisions: the
    scripts read TIME on the server and no client time is ever sent."""
    limiter = make(client, 2)
    await limiter.hit("user", 2)
    real_time = time.time
    for skew in (3600.0, -3600.0):
        monkeypatch.setattr(time, "time", lambda skew=skew: real_time() + skew)
        monkeypatch.setattr(time, "time_ns", lambda skew=skew: int((real_time() + skew) * 1e9))
        result = await limiter.hit("user")
        assert not result.allowed and result.retry_after and result.retry_after > 1


async def test_the_limit_and_quota_describe_each_algorithm(client: Any) -> None:
    assert FixedWindowLimiter(client, 10, 60).quota == (10, 60.0)
    assert SlidingWindowLogLimiter(client, 10, 0.5).quota == (10, 0.5)
    assert TokenBucketLimiter(client, 10, 2.0).quota == (10, 5.0)
    gcra = GCRALimiter(client, 10, 60, burst=3)
    assert gcra.limit == 3 and gcra.quota == (10, 60.0)
    assert repr(gcra) == "<GCRALimiter 'ratelimit:gcra:10/60s:3:' limit=3>"


# -- the decorator ---------------------------------------------------------------------------


async def test_rate_limited_raises_with_retry_after_and_does_not_run(
    client: Any, make: Any
) -> None:
    limiter = make(client, 2)
    calls = []

    @rate_limited(limiter, key=lambda user, amount: user, cost=lambda user, amount: amount)
    def transfer(user: str, amount: int) -> str:
        calls.append((user, amount))
        return f"{user} moved {amount}"

    assert await transfer("ada", 1) == "ada moved 1"
    assert await transfer("ada", 1) == "ada moved 1"
    with pytest.raises(RateLimitExceeded) as denied:
        await transfer("ada", 1)
    assert denied.value.retry_after is not None and denied.value.retry_after > 0
    assert "ada" in str(denied.value)
    with pytest.raises(RateLimitExceeded) as never:
        await transfer("bob", 3)
    assert never.value.retry_after is None
    assert calls == [("ada", 1), ("ada", 1)]
    assert transfer.limiter is limiter  # type: ignore[attr-defined]


async def test_rate_limited_shares_one_key_by_default_and_works_on_methods(
    client: Any,
) -> None:
    limiter = FixedWindowLimiter(client, 1, 60)

    class Service:
        @rate_limited(limiter)
        def ping(self) -> str:
            return "pong"

    assert await Service().ping() == "pong"
    with pytest.raises(RateLimitExceeded):
        await Service().ping()  # another instance, the same function: one allowance


if FACE == "async":

    async def test_rate_limited_awaits_coroutine_functions(client: Any) -> None:
        limiter = FixedWindowLimiter(client, 1, 60)

        @rate_limited(limiter, key="fixed")
        async def work() -> int:
            return 7

        assert await work() == 7
        with pytest.raises(RateLimitExceeded):
            await work()

else:

    async def test_rate_limited_refuses_coroutine_functions_on_the_sync_face(
        client: Any,
    ) -> None:
        limiter = FixedWindowLimiter(client, 1, 60)
        with pytest.raises(ConfigurationError, match="is a coroutine function"):
            rate_limited(limiter)(a_coroutine_function)


async def test_rate_limited_refuses_what_is_not_a_limiter(client: Any) -> None:
    with pytest.raises(ConfigurationError, match="limiter"):
        rate_limited(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="cost"):
        rate_limited(FixedWindowLimiter(client, 1, 60), cost=-1)


async def _raw_state(client: Any, key: str) -> Any:
    kind = await client.type(key)
    if kind == b"zset":
        return await client.zrange(key, 0, -1, withscores=True)
    return await client.get(key)
