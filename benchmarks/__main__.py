"""``python -m benchmarks [--quick] [--url URL] [--only NAME ...]``: run the comparisons."""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
from collections.abc import Callable, Iterator

import redis

from ._common import Comparison, Settings, settings

SCENARIOS = (
    "sync_hit",
    "async_hits",
    "get_many",
    "hot_key",
    "event_sink",
    "threads",
    # TieredCache and AdaptiveTTLCache
    "l1_stores",
    "tiered_hits",
    "tiered_invalidation",
    "adaptive_ttl",
    "locks",
    "lock_handoff",
    "sessions",
    "ratelimit",
    "ratelimit_async",
    "wb_write",
    "wb_flush",
)


def _scenario(name: str) -> Callable[[Settings], Comparison]:
    if name == "sync_hit":
        from .sync_hit import run
    elif name == "async_hits":
        from .async_hits import run
    elif name == "get_many":
        from .get_many import run
    elif name == "event_sink":
        from .event_sink import run
    elif name == "threads":
        from .threads import run
    elif name == "l1_stores":
        from .l1_stores import run
    elif name == "tiered_hits":
        from .tiered import run_hits as run
    elif name == "tiered_invalidation":
        from .tiered import run_invalidation as run
    elif name == "adaptive_ttl":
        from .adaptive_ttl import run
    elif name == "locks":
        from .locks import run
    elif name == "lock_handoff":
        from .locks import run_handoff as run
    elif name == "sessions":
        from .sessions import run
    elif name == "ratelimit":
        from .ratelimit import run
    elif name == "ratelimit_async":
        from .ratelimit import run_async as run
    elif name == "wb_write":
        from .write_behind import run_write as run
    elif name == "wb_flush":
        from .write_behind import run_flush as run
    else:
        from .async_hits import run_hot_key as run
    return run


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from redkit.embedded import EmbeddedServer

    with EmbeddedServer() as server:
        yield server.url


def _server_note(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
    finally:
        client.close()
    name = info.get("server_name", "redis")
    version = info.get(f"{name}_version") or info.get("redis_version")
    return f"{name} {version}"


def _print(comparison: Comparison) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency, but stay plain-friendly
        _print_plain(comparison)
        return
    base = comparison.rate(comparison.baseline)
    table = Table(title=comparison.title, title_justify="left")
    table.add_column("contender")
    table.add_column("rate", justify="right")
    table.add_column("vs raw", justify="right")
    for row in comparison.rows:
        table.add_row(row.name, f"{row.rate:,.0f} {row.unit}", f"{row.rate / base:.2f}x")
    console = Console()
    console.print(table)
    for target, ratio, ok in comparison.verdicts():
        verdict = "[green]PASS[/green]" if ok else "[red]FAIL[/red]"
        console.print(f"  target: {target.description}: measured {ratio:.2f}x  {verdict}")
    for check in comparison.checks:
        verdict = "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]"
        console.print(f"  target: {check.description}: measured {check.measured}  {verdict}")
    for note in comparison.notes:
        console.print(f"  note: {note}")
    console.print()


def _print_plain(comparison: Comparison) -> None:
    base = comparison.rate(comparison.baseline)
    print(comparison.title)
    for row in comparison.rows:
        print(f"  {row.name:<40} {row.rate:>12,.0f} {row.unit:<8} {row.rate / base:6.2f}x")
    for target, ratio, ok in comparison.verdicts():
        print(f"  target: {target.description}: {ratio:.2f}x {'PASS' if ok else 'FAIL'}")
    for check in comparison.checks:
        print(f"  target: {check.description}: {check.measured} {'PASS' if check.ok else 'FAIL'}")
    for note in comparison.notes:
        print(f"  note: {note}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--url", help="server to use (default: start the embedded Valkey)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per contender (best)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these")
    args = parser.parse_args(argv)
    failed = 0
    with _server(args.url) as url:
        cfg = settings(url, args.quick, max(1, args.runs))
        print(
            f"server: {_server_note(url)} at {url}; redis-py {redis.__version__}; "
            f"Python {platform.python_version()}; {'quick' if cfg.quick else 'full'} run; "
            f"best of {cfg.runs} interleaved runs\n"
        )
        for name in args.only or SCENARIOS:
            comparison = _scenario(name)(cfg)
            _print(comparison)
            failed += sum(not ok for _, _, ok in comparison.verdicts())
            failed += sum(not check.ok for check in comparison.checks)
            failed += getattr(comparison, "failed", 0)
    print(f"{failed} target(s) failed" if failed else "all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
