"""``redkit demo``: redkit's patterns at work on a real server, one section each.

Each section is a module of this package with a ``TITLE`` and ``run(ctx) -> bool`` (whether
its checks passed); :data:`SECTIONS` runs them in order. The server is the bundled Valkey,
started for the demo, or ``--url``. Exit code 0 when every section's checks pass, 1
otherwise. ``--only`` runs some sections.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.panel import Panel

import redkit
from redkit.cli.demo import (
    adaptive_ttl,
    caching,
    locks,
    ratelimit,
    sessions,
    stampede,
    tiered,
    write_behind,
)
from redkit.cli.demo._common import BAD, OK, Context

#: The sections, in the order they run.
SECTIONS: tuple[ModuleType, ...] = (
    caching,
    stampede,
    write_behind,
    locks,
    sessions,
    ratelimit,
    adaptive_ttl,
    tiered,
)


def add_parser(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=[parent],
        help="redkit's patterns at work, measured against doing without",
        description="Run each pattern against a real server (the bundled Valkey unless "
        "--url is given): a cached user service against SQLite, a cache stampede, ...",
    )
    parser.add_argument("--users", type=_positive, default=10_000, help="users in the database")
    parser.add_argument("--reads", type=_positive, default=20_000, help="reads in the workload")
    parser.add_argument("--seed", type=int, default=7, help="random seed for data and workload")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[section.TITLE for section in SECTIONS],
        help="run only these sections",
    )
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


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
    given_url = getattr(args, "url", None)
    chosen = [s for s in SECTIONS if not args.only or s.TITLE in args.only]
    results: dict[str, bool] = {}
    with ExitStack() as stack:
        url = stack.enter_context(redis_url(given_url))
        where = "the bundled Valkey, started for this demo" if not given_url else "--url"
        console.print(
            Panel(f"Redis/Valkey: [bold]{url}[/bold] ({where})", title="redkit demo", expand=False)
        )
        for section in chosen:
            with ExitStack() as section_stack:
                ctx = Context(console, url, random.Random(args.seed), args, section_stack)
                results[section.TITLE] = section.run(ctx)
    passed = all(results.values())
    summary = ", ".join(f"{title} {OK if ok else BAD}" for title, ok in results.items())
    console.print(
        Panel(
            ("[green]all checks passed[/green]" if passed else "[red]a check failed[/red]")
            + f"\n{summary}",
            expand=False,
        )
    )
    return 0 if passed else 1
