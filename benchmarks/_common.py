"""Shared pieces: the data set, the timing loops and the result tables."""

from __future__ import annotations

import asyncio
import random
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

VALUE_SIZE = 1024
RUNS = 3
CHUNKS = 20


@dataclass(frozen=True)
class Settings:
    """What one invocation measures: the server and how many operations per timed run."""

    url: str
    quick: bool
    sync_ops: int
    async_tasks: int
    async_per_task: int
    many_calls: int
    many_keys: int
    runs: int = RUNS


def settings(url: str, quick: bool, runs: int = RUNS) -> Settings:
    if quick:
        return Settings(url, True, 3_000, 50, 100, 200, 100, runs)
    return Settings(url, False, 20_000, 50, 400, 1_500, 100, runs)


def make_value(i: int, size: int = VALUE_SIZE) -> dict[str, Any]:
    """A JSON-able record whose orjson encoding is about ``size`` bytes."""
    rng = random.Random(i)
    value: dict[str, Any] = {
        "id": i,
        "name": f"user-{i}",
        "email": f"user{i}@example.com",
        "active": i % 2 == 0,
        "score": rng.random() * 1000,
        "tags": [rng.choice(string.ascii_lowercase) * 5 for _ in range(8)],
    }
    # pad with a bio so the encoded document lands near ``size`` bytes
    base = len(orjson.dumps(value)) + len(',"bio":""')
    value["bio"] = "".join(rng.choices(string.ascii_letters + " ", k=max(0, size - base)))
    return value


def _schedule(names: list[str], chunks: int) -> list[str]:
    """Contender order for one run: chunk by chunk, reversed every other chunk (ABBA...)."""
    order: list[str] = []
    for chunk in range(chunks):
        order += names if chunk % 2 == 0 else names[::-1]
    return order


def best_rates(
    ops: int, contenders: dict[str, Callable[[], object]], runs: int = RUNS, chunks: int = CHUNKS
) -> dict[str, float]:
    """Ops/s of each contender: best of ``runs`` timed runs of ``ops`` operations each.

    Each contender callable performs ``ops // chunks`` operations. A run interleaves the
    contenders chunk by chunk (A B B A A B ...), so a burst of load from another process on
    this small machine hits every contender alike instead of one whole run of one of them.
    """
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(runs):
        spent = dict.fromkeys(contenders, 0.0)
        for name in _schedule(list(contenders), chunks):
            start = time.perf_counter()
            contenders[name]()
            spent[name] += time.perf_counter() - start
        for name, seconds in spent.items():
            best[name] = min(best[name], seconds)
    return {name: (ops // chunks) * chunks / seconds for name, seconds in best.items()}


async def abest_rates(
    ops: int,
    contenders: dict[str, Callable[[], Awaitable[object]]],
    runs: int = RUNS,
    chunks: int = CHUNKS,
) -> dict[str, float]:
    """The async twin of :func:`best_rates` (each callable performs ``ops // chunks``)."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(runs):
        spent = dict.fromkeys(contenders, 0.0)
        for name in _schedule(list(contenders), chunks):
            start = time.perf_counter()
            await contenders[name]()
            spent[name] += time.perf_counter() - start
        for name, seconds in spent.items():
            best[name] = min(best[name], seconds)
    return {name: (ops // chunks) * chunks / seconds for name, seconds in best.items()}


async def gather_tasks(n: int, body: Callable[[int], Awaitable[None]]) -> None:
    """Run ``body(i)`` for i in range(n) as concurrent tasks and wait for all."""
    await asyncio.gather(*(body(i) for i in range(n)))


@dataclass
class Row:
    name: str
    rate: float
    unit: str = "ops/s"


@dataclass
class Target:
    """A claim: ``subject`` is at least ``minimum`` times ``against``."""

    description: str
    subject: str
    against: str
    minimum: float


@dataclass
class Check:
    """A claim that is not a ratio (a rate floor, a latency ceiling), judged by the scenario."""

    description: str
    measured: str
    ok: bool


@dataclass
class Comparison:
    title: str
    baseline: str
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def rate(self, name: str) -> float:
        return next(row.rate for row in self.rows if row.name == name)

    def verdicts(self) -> list[tuple[Target, float, bool]]:
        out = []
        for target in self.targets:
            ratio = self.rate(target.subject) / self.rate(target.against)
            out.append((target, ratio, ratio >= target.minimum))
        return out
