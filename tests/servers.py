"""Helpers for tests that talk to the servers started by the fixtures in ``conftest.py``.

They take the redkit URL of an :class:`~redkit.embedded.EmbeddedServer` (``redis://``,
``redis+cluster://`` or ``redis+sentinel://``) and work on every primary behind it, with
short-lived sync redis-py connections so they never share state with the client under test.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import redis
from redis.sentinel import Sentinel

from redkit.embedded import find_server_binary

ENV_VAR = "REDKIT_TEST_SERVER"
DEFAULT_KIND = "valkey"
_TIMEOUT = 5.0


def server_kind() -> str:
    """The server binary the suite runs on: ``$REDKIT_TEST_SERVER`` or ``"valkey"``."""
    return os.environ.get(ENV_VAR, "").strip() or DEFAULT_KIND


def server_version(binary: str) -> str:
    """The first line of ``binary --version`` (e.g. ``Valkey server v=9.1.2 ...``)."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError as exc:
        return f"unknown ({exc})"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def describe_server(kind: str) -> str:
    """One line naming the binary behind ``kind`` and its version, for the pytest header."""
    binary = find_server_binary(kind)
    return f"{binary} ({server_version(binary)})"


def _split_nodes(netloc: str) -> list[tuple[str, int]]:
    nodes = []
    for item in netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":")
        nodes.append((host or "127.0.0.1", int(port or 6379)))
    return nodes


def primaries(url: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` of every primary behind ``url``.

    For a cluster they are read from ``CLUSTER SLOTS`` on the first seed node, for a
    Sentinel group asked of the sentinels.
    """
    parts = urlsplit(url)
    nodes = _split_nodes(parts.netloc)
    if parts.scheme == "redis+cluster":
        with _connect(*nodes[0]) as client:
            slots = client.execute_command("CLUSTER SLOTS")
        found = {(str(_text(entry[2][0]) or nodes[0][0]), int(entry[2][1])) for entry in slots}
        return sorted(found) or nodes
    if parts.scheme == "redis+sentinel":
        service = parts.path.strip("/") or "mymaster"
        sentinel = Sentinel(nodes, socket_timeout=_TIMEOUT)
        try:
            host, port = sentinel.discover_master(service)
        finally:
            for conn in sentinel.sentinels:
                conn.close()
        return [(str(host), int(port))]
    return nodes[:1]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def _connect(host: str, port: int) -> Iterator[redis.Redis]:
    client = redis.Redis(host=host, port=port, socket_timeout=_TIMEOUT, protocol=2)
    try:
        yield client
    finally:
        client.close()


def flush_all(url: str) -> None:
    """``FLUSHALL`` on every primary behind ``url`` (synchronous, so it is done on return)."""
    for host, port in primaries(url):
        with _connect(host, port) as client:
            client.flushall()


def reset_commandstats(url: str) -> None:
    """``CONFIG RESETSTAT`` on every primary, so :func:`commandstats` counts from zero."""
    for host, port in primaries(url):
        with _connect(host, port) as client:
            client.config_resetstat()


def commandstats(url: str) -> dict[str, int]:
    """Calls per command (``"get"``, ``"client|setname"``, ...) summed over every primary.

    Counts since the server started or the last :func:`reset_commandstats`; tests use it to
    prove a command (``KEYS``, say) was never issued.
    """
    totals: dict[str, int] = {}
    for host, port in primaries(url):
        with _connect(host, port) as client:
            stats = client.info("commandstats")
        for name, fields in stats.items():
            command = name.removeprefix("cmdstat_").lower()
            totals[command] = totals.get(command, 0) + int(fields["calls"])
    return totals
