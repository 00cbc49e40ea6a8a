"""``redkit server``: run the bundled Valkey (standalone, a Cluster or a Sentinel group) until
Ctrl-C (or SIGTERM / SIGHUP)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from rich.console import Console
from rich.text import Text

from redkit.embedded import EmbeddedServer
from redkit.errors import ConfigurationError, RedkitError

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
        "--sentinel",
        action="store_true",
        help="start a Sentinel group (a primary, a replica, three sentinels) instead",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the IP address to listen on (default 127.0.0.1; ::1 for IPv6)",
    )
    parser.add_argument(
        "--binary",
        default=None,
        help="'valkey' (bundled, default), 'redis' (redis-server on PATH) or a path",
    )
    parser.set_defaults(run=run)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt inside, previous handlers after.

    ``atexit`` hooks do not run on SIGTERM/SIGHUP, so without this the server processes
    would outlive us; SIGINT is set too because a shell may start a background job with it
    ignored. Only the main thread can set handlers; elsewhere this does nothing.
    """
    if not _is_main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    console = Console(file=sys.stdout, width=100)
    if getattr(args, "url", None):
        console.print("[red]redkit server starts its own server; --url does not apply[/red]")
        return 2
    try:
        server = EmbeddedServer(
            cluster=args.cluster, sentinel=args.sentinel, host=args.host, binary=args.binary
        )
    except ConfigurationError as exc:
        _error(console, "bad option", exc)
        return 2
    except RedkitError as exc:
        _error(console, "could not start the server", exc)
        return 1
    with _signals_stop():
        try:
            server.start()
        except RedkitError as exc:
            _error(console, "could not start the server", exc)
            return 1
        except KeyboardInterrupt:  # start() has already stopped what it started
            return 130
        try:
            return _serve(console, server)
        except KeyboardInterrupt:
            console.print("stopping")
            return 0
        finally:
            if _is_main_thread():  # a second Ctrl-C must not cut the shutdown short
                for sig in _STOP_SIGNALS:
                    signal.signal(sig, signal.SIG_IGN)
            server.stop()


def _error(console: Console, title: str, exc: Exception) -> None:
    """``title: message`` with the message as plain text (a log tail may hold ``[...]``)."""
    console.print(Text.assemble((f"{title}: ", "red"), str(exc)), highlight=False)


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _serve(console: Console, server: EmbeddedServer) -> int:
    """Print where the server is and wait while it runs; 1 if it dies by itself."""
    console.print(f"[bold]{server.topology}[/bold] server running at", end=" ")
    console.print(server.url, markup=False, highlight=False, soft_wrap=True)
    console.print(f"try: redkit demo --url {server.url}", markup=False, soft_wrap=True)
    console.print("press Ctrl-C to stop")
    sys.stdout.flush()
    while server.running:
        time.sleep(_POLL_SECONDS)
    console.print("[red]the server stopped unexpectedly[/red]")
    return 1
