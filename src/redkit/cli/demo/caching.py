"""Demo section: a user service with and without redkit's caches, measured side by side.

A SQLite database of users and their orders; one Zipf-distributed workload of "profile" reads
(the user row, order count, total spent and 5 most recent orders: three SQL queries) with ~5%
user updates, run twice: straight to the database, then with profiles in
:class:`redkit.CacheAside` and users in :class:`redkit.WriteThrough` (each update also
invalidates the user's profile). Compares SQL statements and read latency, and checks that
updated users' cache entries equal the database.
"""

from __future__ import annotations

import itertools
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

import redkit
from redkit.cli.demo._common import BAD, OK, PREFIX, Context, ms, percentile
from redkit.integrations.sqlalchemy import SQLAlchemyRepository

TITLE = "caching"

ZIPF_S = 1.1
ORDERS_PER_USER = 20
ORDERS_ZIPF_S = 0.8
RECENT_ORDERS = 5
UPDATE_FRACTION = 0.05
CONSISTENCY_SAMPLE = 20
CACHE_TTL = 600
ORDERS_END = datetime(2025, 1, 1)
ORDERS_SPAN_SECONDS = 2 * 365 * 24 * 3600

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
_MISSING = object()


# -- the source of truth --------------------------------------------------------------------


class QueryLog:
    """Counts every SQL statement the engine sends to the database, by purpose."""

    def __init__(self, engine: sa.Engine) -> None:
        self.counts: Counter[str] = Counter()
        self._purpose = "other"
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        self.counts[self._purpose] += 1

    @contextmanager
    def purpose(self, name: str) -> Iterator[None]:
        """Count the statements sent inside the block as ``name``."""
        outer, self._purpose = self._purpose, name
        try:
            yield
        finally:
            self._purpose = outer


class CountingRepository(SQLAlchemyRepository):
    """The real SQLAlchemy repository, its statements counted as user updates or re-reads."""

    def __init__(self, engine: sa.Engine, table: sa.Table, log: QueryLog) -> None:
        super().__init__(engine, table)
        self.log = log

    def find_by_id(self, id: Any) -> dict[str, Any] | None:
        with self.log.purpose("user re-read"):
            return super().find_by_id(id)

    def update(self, id: Any, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        with self.log.purpose("user update"):
            return super().update(id, changes)

    def upsert_many(self, entities: Iterable[Mapping[str, Any]]) -> int:
        with self.log.purpose("load"):
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


def orders_table(metadata: sa.MetaData) -> sa.Table:
    """Orders; ``amount`` in cents. The index serves both the aggregates and "most recent"."""
    return sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Index("ix_orders_user_id_created_at", "user_id", "created_at"),
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


def make_orders(users: int, rng: random.Random) -> list[dict[str, Any]]:
    """~ORDERS_PER_USER orders per user, owners drawn from their own Zipf ranking."""
    owners = zipf_sampler(users, ORDERS_ZIPF_S, rng)(users * ORDERS_PER_USER)
    return [
        {
            "id": id,
            "user_id": user_id,
            "amount": rng.randrange(500, 50_000),
            "created_at": ORDERS_END - timedelta(seconds=rng.randrange(ORDERS_SPAN_SECONDS)),
        }
        for id, user_id in enumerate(owners, start=1)
    ]


@dataclass
class Database:
    engine: sa.Engine
    users: sa.Table
    orders: sa.Table
    log: QueryLog
    repo: CountingRepository
    queries: ProfileQueries
    orders_loaded: int = 0
    load_seconds: float = 0.0


def create_database(directory: Path, users: int, rng: random.Random) -> Database:
    """A SQLite file with ``users`` users (one upsert_many) and their orders (one executemany)."""
    engine = sa.create_engine(f"sqlite:///{directory / 'shop.db'}")
    sa.event.listen(engine, "connect", _configure_sqlite)
    metadata = sa.MetaData()
    users_t, orders_t, log = users_table(metadata), orders_table(metadata), QueryLog(engine)
    metadata.create_all(engine)
    repo = CountingRepository(engine, users_t, log)
    db = Database(engine, users_t, orders_t, log, repo, ProfileQueries.build(users_t, orders_t))
    started = time.perf_counter()
    db.repo.upsert_many(make_users(users, rng))
    orders = make_orders(users, rng)
    with db.log.purpose("load"), engine.begin() as conn:
        conn.execute(sa.insert(db.orders), orders)
    db.orders_loaded, db.load_seconds = len(orders), time.perf_counter() - started
    return db


@dataclass(frozen=True)
class ProfileQueries:
    """The profile endpoint's three statements, built once, run with ``{"user_id": id}``."""

    user: sa.Select[Any]
    totals: sa.Select[Any]
    recent: sa.Select[Any]

    @classmethod
    def build(cls, users: sa.Table, orders: sa.Table) -> ProfileQueries:
        user_id: sa.BindParameter[int] = sa.bindparam("user_id", type_=sa.Integer)
        mine = orders.c.user_id == user_id
        return cls(
            user=sa.select(users).where(users.c.id == user_id),
            totals=sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(orders.c.amount), 0)
            ).where(mine),
            recent=sa.select(orders.c.id, orders.c.amount, orders.c.created_at)
            .where(mine)
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .limit(RECENT_ORDERS),
        )


def _configure_sqlite(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL with synchronous=NORMAL, the usual setting for SQLite behind a service."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def fetch_profile(db: Database, id: int) -> dict[str, Any] | None:
    """The profile endpoint's data: the user row, order count, total spent, recent orders."""
    params, queries = {"user_id": id}, db.queries
    with db.log.purpose("profile"), db.engine.connect() as conn:
        user = conn.execute(queries.user, params).mappings().first()
        if user is None:
            return None
        count, spent = conn.execute(queries.totals, params).one()
        recent = conn.execute(queries.recent, params).all()
    return {
        "user": dict(user),
        "order_count": count,
        "total_spent": spent,
        "recent_orders": [
            {"id": order_id, "amount": amount, "created_at": created.isoformat()}
            for order_id, amount, created in recent
        ],
    }


# -- the workload ---------------------------------------------------------------------------


@dataclass
class Workload:
    """Operations in order: ``(id, None)`` profile reads and ``(id, changes)`` user updates."""

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


@dataclass
class Service:
    """The cached face of the user service: profiles (cache-aside) and users (write-through)."""

    db: Database
    profiles: redkit.CacheAside
    users: redkit.WriteThrough

    def profile(self, id: int) -> Any:
        return self.profiles.get_or_fetch(id, lambda: fetch_profile(self.db, id))

    def update(self, id: int, changes: Mapping[str, Any]) -> None:
        """Database first, then the user entry refreshed, then the profile invalidated."""
        self.users.update(id, changes)
        self.profiles.invalidate(id)


def run_uncached(db: Database, workload: Workload) -> RunResult:
    """Every profile read and user update goes to the database."""
    result = RunResult("database only")
    db.log.counts.clear()
    started = time.perf_counter()
    for id, changes in workload.ops:
        if changes is None:
            t0 = time.perf_counter()
            fetch_profile(db, id)
            result.read_latencies.append(time.perf_counter() - t0)
        else:
            db.repo.update(id, changes)
    result.elapsed = time.perf_counter() - started
    result.calls = db.log.counts.copy()
    return result


def run_cached(service: Service, workload: Workload) -> RunResult:
    """Profile reads through CacheAside, user updates through WriteThrough."""
    result = RunResult("with redkit")
    service.db.log.counts.clear()
    stats = service.profiles.stats
    stats.reset()
    started = time.perf_counter()
    for id, changes in workload.ops:
        if changes is None:
            misses = stats.misses
            t0 = time.perf_counter()
            service.profile(id)
            latency = time.perf_counter() - t0
            result.read_latencies.append(latency)
            (result.miss_latencies if stats.misses > misses else result.hit_latencies).append(
                latency
            )
        else:
            service.update(id, changes)
    result.elapsed = time.perf_counter() - started
    result.calls = service.db.log.counts.copy()
    return result


# -- sections -------------------------------------------------------------------------------


def print_intro(console: Console, db: Database, users: int) -> None:
    console.print(
        Panel(
            f"Database: SQLite, {users:,} users (one upsert_many) and "
            f"{db.orders_loaded:,} orders (one executemany) loaded in {db.load_seconds:.2f} s",
            title="redkit demo: a user service",
            expand=False,
        )
    )


def print_workload(console: Console, workload: Workload, users: int) -> None:
    console.rule("Workload")
    console.print(
        f"{workload.reads:,} profile reads and {workload.updates:,} user updates of "
        f"{users:,} users, ids drawn from a Zipf distribution (s={ZIPF_S}), the same sequence "
        f"for both runs; {len(workload.updated_ids):,} distinct users are updated."
    )
    console.print(
        "[dim]A profile is the user row, order count, total spent and the "
        f"{RECENT_ORDERS} most recent orders: three SQL queries. Updates change a user's "
        "score.[/dim]"
    )


_QUERY_COLUMNS = {
    "profile": "profile reads",
    "user update": "user updates",
    "user re-read": "user re-reads",
}


def print_queries(
    console: Console, baseline: RunResult, cached: RunResult, hit_rate: float
) -> None:
    console.rule("Database queries")
    table = Table(title="SQL statements sent to the database")
    table.add_column("run")
    for name in (*_QUERY_COLUMNS.values(), "total", "time"):
        table.add_column(name, justify="right")
    for run in (baseline, cached):
        counts = [f"{run.calls[purpose]:,}" for purpose in _QUERY_COLUMNS]
        table.add_row(run.label, *counts, f"{run.queries:,}", f"{run.elapsed:.2f} s")
    console.print(table)
    saved = baseline.queries - cached.queries
    share = saved / baseline.queries if baseline.queries else 0.0
    console.print(
        f"cache hit rate: [bold]{hit_rate:.1%}[/bold]   "
        f"queries saved: [bold]{saved:,}[/bold] of {baseline.queries:,} ({share:.1%})"
    )
    console.print(
        "[dim]Counted by a SQLAlchemy event on every statement. WriteThrough re-reads each "
        "updated user to refresh its entry; each update also invalidates that user's profile, "
        "so the next profile read is a miss.[/dim]"
    )


def print_latency(console: Console, baseline: RunResult, cached: RunResult) -> None:
    console.rule("Profile read latency")
    table = Table(title="Per-read latency (time.perf_counter)")
    table.add_column("profile reads")
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
            label, f"{len(values):,}", ms(percentile(values, 50)), ms(percentile(values, 99))
        )
    console.print(table)
    for q in (50, 99):
        base, fast = percentile(baseline.read_latencies, q), percentile(cached.read_latencies, q)
        if base and fast:
            ratio = base / fast
            verdict = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            console.print(f"cached profile reads at p{q}: [bold]{verdict}[/bold] than the database")
    console.print(
        "[dim]SQLite runs inside this process (WAL, indexed queries), so a profile costs "
        "about one Redis round trip here; a miss pays the queries plus the cache's lock and "
        "fill round trips. Against a database server, each of a profile's three queries adds "
        "a network round trip that a hit saves.[/dim]"
    )


def check_consistency(
    console: Console, service: Service, workload: Workload, rng: random.Random
) -> bool:
    """For sampled updated users, the cached user and the cached profile equal the database."""
    console.rule("Consistency after updates")
    ids = sorted(
        rng.sample(workload.updated_ids, min(CONSISTENCY_SAMPLE, len(workload.updated_ids)))
    )
    table = Table(title=f"Cache vs database for {len(ids)} updated users")
    table.add_column("id", justify="right")
    table.add_column("score in database", justify="right")
    table.add_column("user entry", justify="right")
    table.add_column("profile", justify="right")
    table.add_column("ok", justify="center")
    good = 0
    for id in ids:
        user_ok, user_shown = _check_user(service, id)
        profile_ok, profile_shown = _check_profile(service, id)
        row = service.db.repo.find_by_id(id)
        ok = user_ok and profile_ok
        good += ok
        score = str(row["score"] if row else None)
        table.add_row(str(id), score, user_shown, profile_shown, OK if ok else BAD)
    console.print(table)
    passed = good == len(ids)
    console.print(
        f"consistency: {good}/{len(ids)} updated users' cache entries (user and profile) "
        f"equal the database {OK if passed else BAD}"
    )
    return passed


def _check_user(service: Service, id: int) -> tuple[bool, str]:
    """Whether the cached user entity equals its row (no entry is never stale)."""
    cached = service.users.cache.get(id, default=_MISSING)
    row = service.db.repo.find_by_id(id)
    if cached is _MISSING:
        return True, "(not cached)"
    return cached == row, str(cached.get("score") if isinstance(cached, dict) else cached)


def _check_profile(service: Service, id: int) -> tuple[bool, str]:
    """Whether the profile served through the cache equals the one the database gives now."""
    misses = service.profiles.stats.misses
    served = service.profile(id)
    how = "filled" if service.profiles.stats.misses > misses else "hit"
    fresh = fetch_profile(service.db, id)
    score = served["user"]["score"] if isinstance(served, dict) else served
    return served == fresh, f"{score} ({how})"


def open_service(stack: ExitStack, url: str, db: Database) -> Service:
    """The caches on ``url``, emptied of earlier runs' entries now and of this run's on exit."""
    client = redkit.connect(url)
    stack.callback(client.close)
    profiles = redkit.CacheAside(client, f"{PREFIX}:profile", ttl=CACHE_TTL)
    users = redkit.WriteThrough(client, f"{PREFIX}:user", db.repo, ttl=CACHE_TTL)
    for cache in (profiles, users.cache):
        cache.invalidate_pattern("*")  # leftovers of an earlier run on the same server
        stack.callback(cache.invalidate_pattern, "*")
    return Service(db, profiles, users)


def run(ctx: Context) -> bool:
    """Sections 1-4; whether the consistency check passed."""
    console, rng, args = ctx.console, ctx.rng, ctx.args
    directory = Path(ctx.stack.enter_context(tempfile.TemporaryDirectory(prefix="redkit-demo-")))
    db = create_database(directory, args.users, rng)
    ctx.stack.callback(db.engine.dispose)
    print_intro(console, db, args.users)
    service = open_service(ctx.stack, ctx.url, db)
    workload = make_workload(args.users, args.reads, rng)
    print_workload(console, workload, args.users)
    console.print("running the workload against the database only…")
    baseline = run_uncached(db, workload)
    console.print("running it again through redkit.CacheAside and redkit.WriteThrough…")
    cached = run_cached(service, workload)
    print_queries(console, baseline, cached, service.profiles.stats.hit_rate)
    print_latency(console, baseline, cached)
    return check_consistency(console, service, workload, rng)
