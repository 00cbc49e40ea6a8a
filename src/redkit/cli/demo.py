"""``redkit demo``: a user service with and without redkit, measured side by side.

1. Start the bundled Valkey (or use ``--url``) and a SQLite database of users.
2. Run one Zipf-distributed workload (reads with ~5% updates) twice: straight to the database,
   then through :class:`redkit.WriteThrough`; compare database queries and read latency, and
   check that every updated user's cache entry equals its database row.
3. Stampede: 100 concurrent misses of one key fetch once with redkit, 100 times naively.

Exit code 0 when the consistency and stampede checks pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

import redkit
import redkit.asyncio
from redkit.integrations.sqlalchemy import SQLAlchemyRepository

ZIPF_S = 1.1
UPDATE_FRACTION = 0.05
CONSISTENCY_SAMPLE = 20
STAMPEDE_CALLS = 100
STAMPEDE_INSTANCES = 4
FETCH_DELAY = 0.05
CACHE_TTL = 600
PREFIX = "redkit-demo"

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
_MISSING = object()


def add_parser(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=[parent],
        help="a user service with and without redkit, measured side by side",
        description="Run a Zipf workload against SQLite with and without redkit's "
        "write-through cache, then a cache-stampede test.",
    )
    parser.add_argument("--users", type=_positive, default=10_000, help="users in the database")
    parser.add_argument("--reads", type=_positive, default=20_000, help="reads in the workload")
    parser.add_argument("--seed", type=int, default=7, help="random seed for data and workload")
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


# -- the source of truth --------------------------------------------------------------------


class CountingRepository(SQLAlchemyRepository):
    """The real SQLAlchemy repository, counting the queries each method makes."""

    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        super().__init__(engine, table)
        self.calls: Counter[str] = Counter()

    @property
    def queries(self) -> int:
        return sum(self.calls.values())

    def find_by_id(self, id: Any) -> dict[str, Any] | None:
        self.calls["find_by_id"] += 1
        return super().find_by_id(id)

    def create(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        self.calls["create"] += 1
        return super().create(entity)

    def update(self, id: Any, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        self.calls["update"] += 1
        return super().update(id, changes)

    def delete(self, id: Any) -> bool:
        self.calls["delete"] += 1
        return super().delete(id)

    def upsert_many(self, entities: Iterable[Mapping[str, Any]]) -> int:
        self.calls["upsert_many"] += 1
        return super().upsert_many(entities)


def users_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
    )


def make_users(count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for id in range(1, count + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        yield {
            "id": id,
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{id}@example.com",
            "score": rng.randrange(100_000),
        }


# -- the workload ---------------------------------------------------------------------------


@dataclass
class Workload:
    """Operations in order: ``(id, None)`` reads and ``(id, changes)`` updates."""

    ops: list[tuple[int, dict[str, Any] | None]]
    reads: int
    updates: int
    updated_ids: list[int]


def zipf_sampler(n: int, s: float, rng: random.Random) -> Callable[[int], list[int]]:
    """Draw ids 1..n with P(rank k) ~ 1/k**s; ranks are shuffled so hot ids are scattered."""
    ids = list(range(1, n + 1))
    rng.shuffle(ids)
    cum_weights = list(itertools.accumulate(1.0 / rank**s for rank in range(1, n + 1)))
    return lambda k: rng.choices(ids, cum_weights=cum_weights, k=k)


def make_workload(users: int, reads: int, rng: random.Random) -> Workload:
    sample = zipf_sampler(users, ZIPF_S, rng)
    updates = max(1, round(reads * UPDATE_FRACTION))
    kinds = [False] * reads + [True] * updates
    rng.shuffle(kinds)
    ids = sample(len(kinds))
    ops = [
        (id, {"score": rng.randrange(100_000)} if is_update else None)
        for id, is_update in zip(ids, kinds, strict=True)
    ]
    updated_ids = sorted({id for id, changes in ops if changes is not None})
    return Workload(ops, reads, updates, updated_ids)


@dataclass
class RunResult:
    label: str
    elapsed: float = 0.0
    read_latencies: list[float] = field(default_factory=list)
    hit_latencies: list[float] = field(default_factory=list)
    miss_latencies: list[float] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)

    @property
    def queries(self) -> int:
        return sum(self.calls.values())


def run_uncached(repo: CountingRepository, workload: Workload) -> RunResult:
    """Every read and update goes to the database."""
    result = RunResult("database only")
    repo.calls.clear()
    started = time.perf_counter()
    for id, changes in workload.ops:
        if changes is None:
            t0 = time.perf_counter()
            repo.find_by_id(id)
            result.read_latencies.append(time.perf_counter() - t0)
        else:
            repo.update(id, changes)
    result.elapsed = time.perf_counter() - started
    result.calls = repo.calls.copy()
    return result


def run_cached(
    users: redkit.WriteThrough, repo: CountingRepository, workload: Workload
) -> RunResult:
    """Reads through the cache (read-through on a miss), updates through WriteThrough."""
    result = RunResult("with redkit")
    repo.calls.clear()
    stats = users.cache.stats
    stats.reset()
    started = time.perf_counter()
    for id, changes in workload.ops:
        if changes is None:
            misses = stats.misses
            t0 = time.perf_counter()
            users.get(id)
            latency = time.perf_counter() - t0
            result.read_latencies.append(latency)
            (result.miss_latencies if stats.misses > misses else result.hit_latencies).append(
                latency
            )
        else:
            users.update(id, changes)
    result.elapsed = time.perf_counter() - started
    result.calls = repo.calls.copy()
    return result


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


# -- sections -------------------------------------------------------------------------------


def print_intro(console: Console, url: str, embedded: bool, users: int, seconds: float) -> None:
    where = "the bundled Valkey, started for this demo" if embedded else "your server, --url"
    console.print(
        Panel(
            f"Redis/Valkey: [bold]{url}[/bold] ({where})\n"
            f"Database:     SQLite, {users:,} users loaded with one upsert_many in {seconds:.2f} s",
            title="redkit demo: a user service",
            expand=False,
        )
    )


def print_workload(console: Console, workload: Workload, users: int) -> None:
    console.rule("1. Workload")
    console.print(
        f"{workload.reads:,} reads and {workload.updates:,} updates of {users:,} users, "
        f"ids drawn from a Zipf distribution (s={ZIPF_S}), the same sequence for both runs; "
        f"{len(workload.updated_ids):,} distinct users are updated."
    )


def print_queries(
    console: Console, baseline: RunResult, cached: RunResult, hit_rate: float
) -> None:
    console.rule("2. Database queries")
    table = Table(title="Queries sent to the database")
    table.add_column("run")
    for name in ("reads (find_by_id)", "writes (update)", "total", "time"):
        table.add_column(name, justify="right")
    for run in (baseline, cached):
        table.add_row(
            run.label,
            f"{run.calls['find_by_id']:,}",
            f"{run.calls['update']:,}",
            f"{run.queries:,}",
            f"{run.elapsed:.2f} s",
        )
    console.print(table)
    saved = baseline.queries - cached.queries
    share = saved / baseline.queries if baseline.queries else 0.0
    console.print(
        f"cache hit rate: [bold]{hit_rate:.1%}[/bold]   "
        f"queries saved: [bold]{saved:,}[/bold] of {baseline.queries:,} ({share:.1%})"
    )
    console.print(
        "[dim]WriteThrough re-reads each updated row to refresh its entry, so cached reads "
        "include one find_by_id per update.[/dim]"
    )


def print_latency(console: Console, baseline: RunResult, cached: RunResult) -> None:
    console.rule("3. Read latency")
    table = Table(title="Per-read latency (time.perf_counter)")
    table.add_column("reads")
    for name in ("count", "p50", "p99"):
        table.add_column(name, justify="right")
    rows = [
        ("database only", baseline.read_latencies),
        ("with redkit: all", cached.read_latencies),
        ("with redkit: hits", cached.hit_latencies),
        ("with redkit: misses", cached.miss_latencies),
    ]
    for label, values in rows:
        table.add_row(
            label, f"{len(values):,}", _ms(percentile(values, 50)), _ms(percentile(values, 99))
        )
    console.print(table)
    base_p50, cached_p50 = (
        percentile(baseline.read_latencies, 50),
        percentile(cached.read_latencies, 50),
    )
    if base_p50 and cached_p50:
        ratio = base_p50 / cached_p50
        verdict = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        console.print(f"cached reads at p50: [bold]{verdict}[/bold] than database reads")
    console.print(
        "[dim]SQLite runs inside this process, so a database read costs no network round trip "
        "here; against a database server, every query saved also saves one.[/dim]"
    )


def check_consistency(
    console: Console,
    users: redkit.WriteThrough,
    repo: SQLAlchemyRepository,
    workload: Workload,
    rng: random.Random,
) -> bool:
    """Every sampled updated user's cache entry equals its database row."""
    console.rule("4. Consistency after updates")
    ids = sorted(
        rng.sample(workload.updated_ids, min(CONSISTENCY_SAMPLE, len(workload.updated_ids)))
    )
    table = Table(title=f"Cache vs database for {len(ids)} updated users")
    table.add_column("id", justify="right")
    table.add_column("score in cache", justify="right")
    table.add_column("score in database", justify="right")
    table.add_column("ok", justify="center")
    good = 0
    for id in ids:
        cached = users.cache.get(id, default=_MISSING)
        row = repo.find_by_id(id)
        if cached is _MISSING:  # no entry: the next read goes to the database, never stale
            ok, shown = True, "(not cached)"
        else:
            ok, shown = (
                cached == row,
                str(cached.get("score") if isinstance(cached, dict) else cached),
            )
        good += ok
        table.add_row(
            str(id),
            shown,
            str(row["score"] if row else None),
            "[green]✓[/green]" if ok else "[red]✗[/red]",
        )
    console.print(table)
    passed = good == len(ids)
    mark = "[green]✓[/green]" if passed else "[red]✗[/red]"
    console.print(f"consistency: {good}/{len(ids)} cache entries equal their database rows {mark}")
    return passed


# -- stampede -------------------------------------------------------------------------------


@dataclass
class StampedeResult:
    label: str
    fetches: int
    elapsed: float
    correct: bool


class _Source:
    """A slow source of truth that counts how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(FETCH_DELAY)
        return {"id": 1, "name": "Ada Lovelace", "score": 0}


async def _naive_stampede(client: Any) -> StampedeResult:
    """GET, on a miss fetch and SET: every concurrent miss fetches."""
    key = f"{PREFIX}:naive:{{1}}"
    source = _Source()
    await client.delete(key)

    async def naive_get() -> Any:
        data = await client.get(key)
        if data is not None:
            return json.loads(data)
        value = await source.fetch()
        await client.set(key, json.dumps(value), ex=60)
        return value

    started = time.perf_counter()
    values = await asyncio.gather(*(naive_get() for _ in range(STAMPEDE_CALLS)))
    elapsed = time.perf_counter() - started
    await client.delete(key)
    correct = all(v == values[0] for v in values)
    return StampedeResult("naive GET / fetch / SET", source.calls, elapsed, correct)


async def _redkit_stampede(client: Any, instances: int) -> StampedeResult:
    """get_or_fetch from ``instances`` caches (as separate processes would have) at once."""
    caches = [redkit.asyncio.CacheAside(client, f"{PREFIX}:stampede") for _ in range(instances)]
    source = _Source()
    await caches[0].invalidate(1)
    started = time.perf_counter()
    values = await asyncio.gather(
        *(caches[i % instances].get_or_fetch(1, source.fetch) for i in range(STAMPEDE_CALLS))
    )
    elapsed = time.perf_counter() - started
    await caches[0].invalidate(1)
    correct = all(v == values[0] and v is not None for v in values)
    where = "one cache" if instances == 1 else f"{instances} caches sharing only Redis"
    return StampedeResult(f"redkit get_or_fetch, {where}", source.calls, elapsed, correct)


async def _stampedes(url: str) -> list[StampedeResult]:
    client = redkit.asyncio.connect(url)
    try:
        return [
            await _naive_stampede(client),
            await _redkit_stampede(client, 1),
            await _redkit_stampede(client, STAMPEDE_INSTANCES),
        ]
    finally:
        await client.aclose()


def check_stampede(console: Console, url: str) -> bool:
    console.rule("5. Cache stampede")
    console.print(
        f"{STAMPEDE_CALLS} concurrent reads of one invalidated key; "
        f"the source takes {FETCH_DELAY * 1000:.0f} ms per fetch (async face, asyncio.gather)."
    )
    naive, *protected = asyncio.run(_stampedes(url))
    table = Table(title="Fetches from the source")
    table.add_column("strategy")
    table.add_column("fetches", justify="right")
    table.add_column("wall time", justify="right")
    for result in (naive, *protected):
        table.add_row(result.label, str(result.fetches), _ms(result.elapsed))
    console.print(table)
    passed = all(r.fetches == 1 and r.correct for r in protected)
    mark = "[green]✓[/green]" if passed else "[red]✗[/red]"
    console.print(
        f"fetches: {protected[0].fetches} for {STAMPEDE_CALLS} concurrent misses {mark} "
        f"(naive: {naive.fetches})"
    )
    return passed


# -- main -----------------------------------------------------------------------------------


@contextmanager
def redis_url(url: str | None) -> Iterator[str]:
    """``url``, or the URL of a bundled Valkey started for the demo and stopped after it."""
    if url:
        yield url
        return
    with redkit.EmbeddedServer() as server:
        yield server.url


def run(args: argparse.Namespace) -> int:
    console = Console(file=sys.stdout, width=100)
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        url = stack.enter_context(redis_url(getattr(args, "url", None)))
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="redkit-demo-")))
        engine = sa.create_engine(f"sqlite:///{directory / 'users.db'}")
        stack.callback(engine.dispose)
        metadata = sa.MetaData()
        table = users_table(metadata)
        metadata.create_all(engine)
        repo = CountingRepository(engine, table)
        started = time.perf_counter()
        repo.upsert_many(make_users(args.users, rng))
        print_intro(
            console, url, not getattr(args, "url", None), args.users, time.perf_counter() - started
        )

        client = redkit.connect(url)
        stack.callback(client.close)
        users = redkit.WriteThrough(client, f"{PREFIX}:user", repo, ttl=CACHE_TTL)
        users.cache.invalidate_pattern("*")  # leftovers of an earlier run on the same server
        stack.callback(users.cache.invalidate_pattern, "*")

        workload = make_workload(args.users, args.reads, rng)
        print_workload(console, workload, args.users)
        console.print("running the workload against the database only…")
        baseline = run_uncached(repo, workload)
        console.print("running it again through redkit.WriteThrough…")
        cached = run_cached(users, repo, workload)
        print_queries(console, baseline, cached, users.cache.stats.hit_rate)
        print_latency(console, baseline, cached)
        consistent = check_consistency(console, users, repo, workload, rng)
        no_stampede = check_stampede(console, url)

    passed = consistent and no_stampede
    console.print(
        Panel(
            "[green]all checks passed[/green]" if passed else "[red]a check failed[/red]",
            expand=False,
        )
    )
    return 0 if passed else 1
