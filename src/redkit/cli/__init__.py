"""The ``redkit`` command: ``redkit demo``, ``redkit server``, ``redkit worker`` (more to come).

Each subcommand lives in its own module with two functions: ``add_parser(subparsers, parent)``
declares its options and ``run(args) -> int`` does the work. :func:`main` parses ``argv``
and returns the exit code instead of raising ``SystemExit``, so it can be called in-process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from redkit import __version__
from redkit.cli import demo, server, worker

__all__ = ["build_parser", "main"]

_SUBCOMMANDS = (demo, server, worker)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="redkit",
        description="Caching and coordination patterns for Redis and Valkey.",
    )
    parser.add_argument("--version", action="version", version=f"redkit {__version__}")
    parser.add_argument(
        "--url",
        default=None,
        help="the Redis/Valkey server to use (redis://, redis+cluster://, ...); "
        "default: start the bundled Valkey",
    )
    # Accept --url after the subcommand as well; SUPPRESS keeps a value given before it.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _SUBCOMMANDS:
        module.add_parser(subparsers, parent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``redkit`` command with ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("redkit: error: choose a command (redkit --help lists them)", file=sys.stderr)
        return 2
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code
