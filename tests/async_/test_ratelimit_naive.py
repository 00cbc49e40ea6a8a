"""The source article's limiters fail where redkit's hold (the sync twin is generated).

- Its sliding window log checks in one round trip and adds in another: concurrent callers
  that all checked before any added are all admitted. Staged here with a barrier between the
  two steps, so the interleaving under test is the one that happens.
- Its token bucket takes ``now`` from the client: a client whose clock runs ahead refills the
  bucket for everyone.
(Its INCR-then-EXPIRE fixed window is in ``test_ratelimit_processes.py``: it needs a process
that dies.)
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from redkit._acompat import Gate
from redkit.asyncio import SlidingWindowLogLimiter, TokenBucketLimiter
from tests._acompat import Event, run_concurrently

CLIENTS = 64
LIMIT = 10

# The article's token bucket script, with the client's clock in ARGV[5] (milliseconds).
NAIVE_BUCKET = """
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'last_refill')
local size, rate, interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local tokens = tonumber(bucket[1]) or size
local last_refill = tonumber(bucket[2]) or now
local refills = math.floor((now - last_refill) / interval)
tokens = math.min(size, tokens + refills * rate)
last_refill = last_refill + refills * interval
if tokens >= need then
  redis.call('HSET', KEYS[1], 'tokens', tokens - need, 'last_refill', last_refill)
  redis.call('EXPIRE', KEYS[1], 3600)
  return 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'last_refill', last_refill)
redis.call('EXPIRE', KEYS[1], 3600)
return 0
"""


class NaiveSlidingLog:
    """The article's sliding window log: trim and count, then (another round trip) add."""

    def __init__(self, client: Any, limit: int, window_ms: int, between: Any) -> None:
        self.client, self.limit, self.window_ms, self.between = client, limit, window_ms, between
        self.gate = Gate(8)

    async def is_allowed(self, key: str, caller: int) -> bool:
        now = int(time.time() * 1000)
        # At most 8 commands in flight: 64 connections opened at once on a loaded machine
        # trip a redis-py asyncio Cluster bug ("'NoneType' object has no attribute
        # 'writelines'"), and the race under test needs no more than two steps per caller.
        async with self.gate:
            await self.client.zremrangebyscore(key, 0, now - self.window_ms)
            count = await self.client.zcard(key)
        await self.between()
        if count >= self.limit:
            return False
        async with self.gate:
            await self.client.zadd(key, {f"{now}:{caller}": now})
            await self.client.expire(key, self.window_ms // 1000)
        return True


def _barrier(parties: int) -> Any:
    """An awaitable that returns once ``parties`` callers have reached it."""
    arrived = itertools.count(1)
    everyone = Event()

    async def wait() -> None:
        if next(arrived) == parties:
            everyone.set()
        assert await everyone.wait(60), "not everyone arrived"

    return wait


async def test_the_naive_sliding_log_overshoots_when_checks_race(client: Any) -> None:
    naive = NaiveSlidingLog(client, LIMIT, 60_000, _barrier(CLIENTS))
    await client.zcard("naive:{log}")  # a warm client: no cold concurrent start (FIELD-NOTES)
    admitted = await run_concurrently(CLIENTS, lambda i: naive.is_allowed("naive:{log}", i))
    assert sum(admitted) == CLIENTS  # every one of them, against a limit of 10


async def test_redkits_sliding_log_admits_exactly_the_limit_under_the_same_race(
    client: Any,
) -> None:
    limiter = SlidingWindowLogLimiter(client, LIMIT, 60)
    results = await run_concurrently(CLIENTS, lambda _: limiter.hit("log"))
    assert sum(r.allowed for r in results) == LIMIT
    assert await client.zcard(limiter.keys.key("log")) == LIMIT


async def test_the_naive_token_bucket_trusts_a_client_clock_that_runs_ahead(
    client: Any,
) -> None:
    now_ms = int(time.time() * 1000)
    ahead_ms = now_ms + 3_600_000  # a client whose clock is an hour fast

    async def take(clock_ms: int) -> int:
        return int(await client.eval(NAIVE_BUCKET, 1, "naive:{bucket}", 5, 1, 1000, 1, clock_ms))

    admitted = [await take(now_ms) for _ in range(5)]
    admitted += [await take(ahead_ms) for _ in range(5)]
    assert sum(admitted) == 10  # twice the capacity, at once


async def test_redkits_token_bucket_uses_the_servers_clock(client: Any) -> None:
    """No client time is sent: whatever the clients' clocks say, 5 tokens admit 5 hits."""
    limiter = TokenBucketLimiter(client, 5, 1.0)
    other = TokenBucketLimiter(client, 5, 1.0)  # another client process's view
    results = [await limiter.hit("bucket") for _ in range(5)]
    results += [await other.hit("bucket") for _ in range(5)]
    assert sum(r.allowed for r in results) == 5
