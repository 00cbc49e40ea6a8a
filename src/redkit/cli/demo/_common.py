"""What every demo section shares: its context, marks and small formatting helpers."""

from __future__ import annotations

import argparse
import random
from contextlib import ExitStack
from dataclasses import dataclass

from rich.console import Console

import redkit

#: Every key the demo writes starts with this (the demo removes them when it ends).
PREFIX = "redkit-demo"
OK, BAD = "[green]✓[/green]", "[red]✗[/red]"


@dataclass
class Context:
    """What a section gets: where to print, the server, a seeded rng, the options, and an
    ExitStack for what it must clean up."""

    console: Console
    url: str
    rng: random.Random
    args: argparse.Namespace
    stack: ExitStack


def remove_keys(url: str, prefix: str) -> None:
    """Unlink every key starting with ``prefix`` (SCAN, never KEYS): a section's leftovers,
    such as the short-lived companions that answer re-sent commands."""
    client = redkit.connect(url)
    try:
        for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
            client.unlink(key)
    finally:
        client.close()


def ms(seconds: float) -> str:
    """``seconds`` as milliseconds, for tables."""
    return f"{seconds * 1000:.3f} ms"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]
