"""``redkit server``: run the bundled Valkey (standalone or a Cluster) until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.console import Console

from redkit.embedded import EmbeddedServer
from redkit.errors import RedkitError

_POLL_SECONDS = 0.5


def add_parser(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "server",
        parents=[parent],
        help="run the bundled Valkey until Ctrl-C",
        description="Start the bundled Valkey (or another server binary), print its URL "
        "and keep it running until Ctrl-C.",
    )
    parser.add_argument(
        "--cluster",
        type=int,
        default=0,
        metavar="N",
        help="start a Cluster of N primaries instead of one standalone server",
    )
    parser.add_argument(
        "--binary",
        default=None,
        help="'valkey' (bundled, default), 'redis' (redis-server on PATH) or a path",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console(file=sys.stdout, width=100)
    if getattr(args, "url", None):
        console.print("[red]redkit server starts its own server; --url does not apply[/red]")
        return 2
    if args.cluster < 0:
        console.print("[red]--cluster must be 0 or a number of primaries[/red]")
        return 2
    try:
        server = EmbeddedServer(cluster=args.cluster, binary=args.binary).start()
    except RedkitError as exc:
        console.print(f"[red]could not start the server:[/red] {exc}")
        return 1
    try:
        console.print(f"[bold]{server.topology}[/bold] server running at", end=" ")
        console.print(server.url, markup=False, highlight=False, soft_wrap=True)
        console.print(f"try: redkit demo --url {server.url}", markup=False, soft_wrap=True)
        console.print("press Ctrl-C to stop")
        sys.stdout.flush()
        while server.running:
            time.sleep(_POLL_SECONDS)
        console.print("[red]the server stopped unexpectedly[/red]")
        return 1
    except KeyboardInterrupt:
        console.print("stopping")
        return 0
    finally:
        server.stop()
