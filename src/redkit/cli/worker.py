"""``redkit worker``: flush a write-behind prefix into a SQL table until stopped.

    redkit worker --url redis://... --prefix users --repository sqlite:///app.db --table users

Runs the sync WriteBehind flusher (threads) over a ``SQLAlchemyRepository`` of the existing
table (reflected from the database). Several workers (in several processes or machines)
share a prefix's shards; a worker that dies has its shards and pending entries taken over by
the others after ``--claim-after`` seconds. SIGINT/SIGTERM stop it after a final drain.

``--replay-dead-letters`` puts the prefix's dead letters back on their streams and exits
(the running workers then flush them); a dead letter superseded by a newer write of its id
is dropped instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.console import Console

from redkit.cli.server import _signals_stop
from redkit.errors import RedkitError

_DEFAULT_REPORT = 10.0


def add_parser(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "worker",
        parents=[parent],
        help="flush a write-behind prefix into a SQL table until stopped",
        description="Flush the writes of a WriteBehind prefix into a table of a SQL database "
        "(any SQLAlchemy URL; the table must exist). The server is --url, else REDIS_URL "
        "(as redkit.connect()). Stop with Ctrl-C or SIGTERM: the worker drains, then exits.",
    )
    parser.add_argument("--prefix", required=True, help="the WriteBehind prefix")
    parser.add_argument(
        "--repository", required=True, metavar="URL", help="SQLAlchemy URL, e.g. sqlite:///app.db"
    )
    parser.add_argument("--table", required=True, help="the table the entities go to")
    parser.add_argument("--id-column", default="id", help="the table's id column (default id)")
    parser.add_argument(
        "--version-column",
        default=None,
        help="an integer column that receives each write's version; with it an older value "
        "never replaces a newer one, even from a paused worker",
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--flush-interval", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--shards", type=int, default=16, help="as the writers' (default 16)")
    parser.add_argument("--claim-after", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--max-attempts", type=int, default=5)
    parser.add_argument(
        "--report-every",
        type=float,
        default=_DEFAULT_REPORT,
        metavar="SECONDS",
        help="print the counters this often (0: only at the end)",
    )
    parser.add_argument(
        "--replay-dead-letters",
        action="store_true",
        help="put the dead letters back on their streams, then exit",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    import redkit
    from redkit.integrations.sqlalchemy import SQLAlchemyRepository

    console = Console(file=sys.stdout, width=100)
    try:
        engine = sa.create_engine(args.repository)
        table = sa.Table(args.table, sa.MetaData(), autoload_with=engine)
    except (SQLAlchemyError, ValueError) as exc:
        console.print(f"[red]cannot use table {args.table!r} of {args.repository}:[/red] {exc}")
        return 2
    try:
        repository = SQLAlchemyRepository(
            engine, table, args.id_column, version_column=args.version_column
        )
        client = redkit.connect(getattr(args, "url", None))
        store = redkit.WriteBehind(
            client,
            args.prefix,
            repository,
            batch_size=args.batch_size,
            flush_interval=args.flush_interval,
            max_attempts=args.max_attempts,
            shards=args.shards,
            claim_after=args.claim_after,
            flusher=not args.replay_dead_letters,
        )
    except RedkitError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    try:
        if args.replay_dead_letters:
            return _replay(console, store)
        return _work(console, store, args.report_every)
    except RedkitError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    finally:
        client.close()
        engine.dispose()


def _replay(console: Console, store: Any) -> int:
    replayed = store.replay_dead_letters()
    superseded = store.stats.snapshot().get("replay_superseded", 0)
    console.print(
        f"{replayed} dead letters replayed onto {store.layout.prefix!r}; "
        f"{superseded} dropped (a newer write of their id supersedes them)"
    )
    store.close()
    return 0


def _work(console: Console, store: Any, report_every: float) -> int:
    with _signals_stop():
        try:
            store.start()
            console.print(
                f"worker {store.flusher.token} flushing {store.layout.prefix!r} "
                f"({store.layout.shards} shards); Ctrl-C to stop"
            )
            sys.stdout.flush()
            while True:
                time.sleep(report_every if report_every > 0 else 3600)
                _report(console, store)
        except KeyboardInterrupt:
            console.print("stopping: draining the backlog")
        finally:
            store.close()
    _report(console, store)
    console.print("stopped")
    return 0


def _report(console: Console, store: Any) -> None:
    stats = store.stats
    console.print(
        f"flushed {stats.flushed} in {stats.batches} batches, coalesced {stats.coalesced}, "
        f"dead letters {stats.dead_letters}, shards held {len(store.flusher.shards)}"
    )
    sys.stdout.flush()
