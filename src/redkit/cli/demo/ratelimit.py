"""Demo section: the five limiters side by side under the same bursty traffic.

Each limiter allows 10 requests per second (the bucket: 10 tokens refilled at 10 per second;
GCRA: 10 per second with a burst of 10). Every 50 ms two requests arrive, with bursts of 15
at 0 s and 1.5 s, for 3 seconds, against all five at once (async face, one client). The table
shows what each admitted and refused in each quarter second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.table import Table

import redkit.asyncio
from redkit.cli.demo._common import BAD, OK, PREFIX, Context, remove_keys

TITLE = "ratelimit"
RATE = 10
DURATION = 3.0
TICK = 0.05
STEADY = 2
BURSTS = {0: 15, 30: 15}  # tick -> extra requests
BUCKET = 0.25


_PREFIX = f"{PREFIX}:ratelimit"


def _limiters(client: Any) -> dict[str, Any]:
    prefix = _PREFIX
    return {
        "fixed window": redkit.asyncio.FixedWindowLimiter(client, RATE, 1, prefix=f"{prefix}:fw"),
        "sliding log": redkit.asyncio.SlidingWindowLogLimiter(
            client, RATE, 1, prefix=f"{prefix}:log"
        ),
        "sliding counter": redkit.asyncio.SlidingWindowCounterLimiter(
            client, RATE, 1, prefix=f"{prefix}:swc"
        ),
        "token bucket": redkit.asyncio.TokenBucketLimiter(
            client, RATE, RATE, prefix=f"{prefix}:tb"
        ),
        "GCRA": redkit.asyncio.GCRALimiter(client, RATE, 1.0, prefix=f"{prefix}:gcra"),
    }


async def _traffic(url: str) -> dict[str, list[tuple[float, bool]]]:
    client = redkit.asyncio.connect(url)
    limiters = _limiters(client)
    seen: dict[str, list[tuple[float, bool]]] = {name: [] for name in limiters}
    try:
        for limiter in limiters.values():
            await limiter.reset("demo-user")
        start = time.monotonic()
        for tick in range(round(DURATION / TICK)):
            delay = start + tick * TICK - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            count = STEADY + BURSTS.get(tick, 0)
            at = time.monotonic() - start
            for name, limiter in limiters.items():
                results = await asyncio.gather(*(limiter.hit("demo-user") for _ in range(count)))
                seen[name] += [(at, r.allowed) for r in results]
        for limiter in limiters.values():
            await limiter.reset("demo-user")
    finally:
        await client.aclose()
    return seen


def _most_in_any_second(times: list[float]) -> int:
    """The most admitted requests in any span shorter than one second (client-side times)."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 0.95:
            first += 1
        most = max(most, last - first + 1)
    return most


def run(ctx: Context) -> bool:
    """The section; whether the exact limiters kept to their limits."""
    console = ctx.console
    console.rule("Rate limiting: five algorithms, the same bursty traffic")
    console.print(
        f"{RATE} requests per second each; {STEADY} requests every {TICK * 1000:.0f} ms, "
        f"bursts of 15 at 0 s and 1.5 s, for {DURATION:.0f} s. Cells: admitted/refused."
    )
    ctx.stack.callback(remove_keys, ctx.url, _PREFIX)  # the hits' re-send records
    seen = asyncio.run(_traffic(ctx.url))
    table = Table(title="admitted/refused per quarter second")
    table.add_column("time", justify="right")
    for name in seen:
        table.add_column(name, justify="right")
    for index in range(round(DURATION / BUCKET)):
        low, high = index * BUCKET, (index + 1) * BUCKET
        cells = []
        for decisions in seen.values():
            inside = [allowed for at, allowed in decisions if low <= at < high]
            cells.append(f"{sum(inside)}/{len(inside) - sum(inside)}")
        table.add_row(f"{low:.2f}s", *cells)
    totals = [f"{sum(a for _, a in d)}/{sum(not a for _, a in d)}" for d in seen.values()]
    table.add_row("total", *totals, style="bold")
    console.print(table)
    log_most = _most_in_any_second([at for at, allowed in seen["sliding log"] if allowed])
    bucket_total = sum(allowed for _, allowed in seen["token bucket"])
    passed = log_most <= RATE and bucket_total <= RATE + RATE * (DURATION + 0.5)
    console.print(
        f"sliding log: at most {log_most} admitted in any second (limit {RATE}) "
        f"{OK if log_most <= RATE else BAD}; the fixed window lets up to {2 * RATE} through "
        "around a window's end; the counter's estimate smooths that; the bucket and GCRA "
        "admit a burst, then one request per 100 ms"
    )
    return passed
