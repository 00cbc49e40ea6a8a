"""What the limiters keep in Redis (the sync twin is generated): whose state each key is, and
how much of it one hit may write.

- Limiters with different parameters or algorithms never share a key: a per-second and a
  per-minute log on one id, or a fixed window and a token bucket under one explicit prefix,
  would otherwise read (and trim) each other's state.
- A sliding-log hit writes one entry whatever its cost, so a large cost cannot block the
  server.
- The sliding counter's key outlives its window: the previous window's count weighs on the
  next one.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from redkit.asyncio import (
    FixedWindowLimiter,
    GCRALimiter,
    SlidingWindowCounterLimiter,
    SlidingWindowLogLimiter,
    TokenBucketLimiter,
)
from redkit.errors import InvalidArgument
from tests._acompat import pause


async def _server_seconds(client: Any) -> float:
    seconds, micros = await client.time()
    return float(seconds) + micros / 1_000_000


async def _wait_for_server_time(client: Any, at: float) -> None:
    """Wait until the server's clock reads ``at`` (polled, so no bound can be missed)."""
    while await _server_seconds(client) < at:
        await pause(0.05)


async def test_a_per_second_log_does_not_trim_a_per_minute_log_on_the_same_id(
    client: Any,
) -> None:
    """5 per second and 10 per minute on one id: once the minute's 10 are used, the
    per-second limiter's hits 1.1 s later must not give the minute limiter room again."""
    per_minute = SlidingWindowLogLimiter(client, 10, 60)
    per_second = SlidingWindowLogLimiter(client, 5, 1)
    began = await _server_seconds(client)
    assert all([(await per_minute.hit("user")).allowed for _ in range(10)])
    assert not (await per_minute.hit("user")).allowed
    await _wait_for_server_time(client, began + 1.1)
    assert (await per_second.hit("user")).allowed  # its own allowance, untouched
    extra = [(await per_minute.hit("user")).allowed for _ in range(9)]
    assert sum(extra) == 0, f"{sum(extra)} admitted over the minute's limit"


async def test_a_fixed_window_and_a_token_bucket_under_one_prefix_keep_apart(
    client: Any,
) -> None:
    fixed = FixedWindowLimiter(client, 3, 60, prefix="api")
    bucket = TokenBucketLimiter(client, 3, 1 / 3600, prefix="api")
    assert all([(await fixed.hit("user")).allowed for _ in range(3)])
    assert (await bucket.hit("user")).remaining == 2  # a full bucket of its own
    assert not (await fixed.hit("user")).allowed  # still the window's 3
    assert all([(await bucket.hit("user")).allowed for _ in range(2)])
    assert not (await bucket.hit("user")).allowed
    assert fixed.keys.key("user") != bucket.keys.key("user")


async def test_the_key_names_the_algorithm_and_its_parameters(client: Any) -> None:
    limiters = [
        (FixedWindowLimiter(client, 10, 60), "ratelimit:fixed_window:10/60s"),
        (SlidingWindowLogLimiter(client, 10, 0.5), "ratelimit:sliding_window_log:10/500ms"),
        (SlidingWindowCounterLimiter(client, 7, 1e-3), "ratelimit:sliding_window_counter:7/1ms"),
        (TokenBucketLimiter(client, 10, 0.5), "ratelimit:token_bucket:10:0.5/1s"),
        (TokenBucketLimiter(client, 10, 2, 0.0025), "ratelimit:token_bucket:10:2.0/2500us"),
        (GCRALimiter(client, 10, 60, burst=3), "ratelimit:gcra:10/60s:3"),
        (FixedWindowLimiter(client, 10, 60, prefix="api"), "api:fixed_window:10/60s"),
    ]
    for limiter, prefix in limiters:
        assert limiter.keys.prefix == prefix
        assert limiter.keys.key("u") == prefix + ":{u}"  # the id stays the hash tag
    versioned = GCRALimiter(client, 10, 60, version=2)
    assert versioned.keys.key("u") == "ratelimit:gcra:10/60s:10:v2:{u}"


async def test_limiters_configured_alike_share_an_allowance(client: Any) -> None:
    one, other = FixedWindowLimiter(client, 2, 60), FixedWindowLimiter(client, 2, 60.0)
    assert (await one.hit("user")).allowed and (await other.hit("user")).allowed
    assert not (await one.hit("user")).allowed
    assert not (await FixedWindowLimiter(client, 2, 60, prefix="ratelimit").hit("user")).allowed
    assert (await FixedWindowLimiter(client, 3, 60).hit("user")).remaining == 2


class Pinger:
    """PINGs the server from a thread until stopped; the slowest answer it waited for."""

    def __init__(self, admin: Any) -> None:
        self.admin, self.slowest, self.pings = admin, 0.0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            self.admin.ping()
            self.slowest = max(self.slowest, time.monotonic() - began)
            self.pings += 1

    def finish(self) -> float:
        self.stop.set()
        self.thread.join(60)
        return self.slowest


async def test_a_huge_sliding_log_cost_is_one_entry_and_does_not_block_the_server(
    client: Any, admin: Any
) -> None:
    """Costs of a million against a limit of ten million: one sorted-set entry each, and
    another client's PING meanwhile is answered at once (it waited seconds when each unit
    was an entry)."""
    limiter = SlidingWindowLogLimiter(client, 10_000_000, 600)
    key = limiter.keys.key("upload")
    await limiter.hit("upload")  # the script is loaded and the key exists
    pinger = Pinger(admin)
    results = [await limiter.hit("upload", 1_000_000) for _ in range(3)]
    slowest = pinger.finish()
    assert [r.remaining for r in results] == [8_999_999, 7_999_999, 6_999_999]
    assert slowest < 0.5, f"a PING waited {slowest:.2f}s behind the hits"
    assert await client.zcard(key) == 4
    assert (await limiter.hit("upload", 6_999_999)).remaining == 0  # every unit counts
    assert not (await limiter.hit("upload")).allowed


async def test_the_sliding_counters_key_lives_through_the_next_window(client: Any) -> None:
    """The previous window's count weighs on the whole next window, so the key must live
    two windows from the current window's start (with one, up to twice the limit passes)."""
    limiter = SlidingWindowCounterLimiter(client, 10, 600)
    result = await limiter.hit("user", 10)
    key = limiter.keys.key("user")
    pttl = await client.pttl(key)
    assert pttl > 600_000, "the key would expire before the next window ends"
    assert pttl <= math.ceil(result.reset_after * 1000) + 1


async def test_an_admitted_hit_leaves_a_short_lived_record_in_its_ids_slot(
    client: Any, admin: Any
) -> None:
    """The record that makes a re-sent hit count once: beside the id's key (its hash tag),
    expiring within ``resend_window``; a denied hit, a free hit and a peek leave none."""
    limiter = FixedWindowLimiter(client, 2, 600)
    limiter.resend_window = 5.0
    key = limiter.keys.key("a}b")
    await limiter.hit("a}b", 2)
    await limiter.hit("a}b")  # denied
    await limiter.hit("a}b", 0)
    await limiter.peek("a}b")
    records = sorted(admin.scan_iter(match=f"{key}:hit:*"))
    assert len(records) == 1
    assert records[0].decode().startswith(key + ":hit:")
    assert 0 < admin.pttl(records[0]) <= 5000


async def test_resend_window_zero_turns_the_records_off_and_bad_values_are_refused(
    client: Any, admin: Any
) -> None:
    limiter = GCRALimiter(client, 5, 60)
    assert limiter.resend_window == 30.0
    limiter.resend_window = 0
    await limiter.hit("user", 2)
    assert list(admin.scan_iter(match=f"{limiter.keys.key('user')}:hit:*")) == []
    assert (await limiter.peek("user")).remaining == 3
    for bad in (-1, math.nan, math.inf, True, "5"):
        with pytest.raises(InvalidArgument, match="resend_window"):
            limiter.resend_window = bad
