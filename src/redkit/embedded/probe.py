"""Talking to the servers while a topology is built: short-lived redis-py connections.

Each call opens one RESP2 connection, sends a few commands and closes it. Commands go out
with their name split into words (``"CLUSTER", "INFO"``), which no redis-py reply parser is
registered for: the raw RESP2 reply comes back, the same on every redis-py version, and is
read by :func:`fields` and :func:`pairs`.

No retries: the caller polls. In :meth:`Probe.ask` a refused or reset connection, a timeout
or an error reply means "not ready yet", and :attr:`Probe.last_error` keeps the latest one
for the timeout message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redkit.errors import EmbeddedServerError

__all__ = ["Probe", "call", "fields", "pairs"]

_TIMEOUT = 1.0
_T = TypeVar("_T")


class Probe:
    """Short-lived connections to the nodes on ``host``; data nodes use ``password``."""

    def __init__(self, host: str, password: str | None) -> None:
        self.host = host
        self.password = password
        self.last_error: str = ""

    @contextmanager
    def client(self, port: int, *, data_node: bool = True) -> Iterator[redis.Redis]:
        """A client for one node (authenticated if ``data_node``), closed on exit."""
        client = redis.Redis(
            host=self.host,
            port=port,
            password=self.password if data_node else None,
            protocol=2,
            decode_responses=True,
            socket_timeout=_TIMEOUT,
            socket_connect_timeout=_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            yield client
        finally:
            client.close()

    def ask(
        self, port: int, question: Callable[[redis.Redis], _T], *, data_node: bool = True
    ) -> _T | None:
        """``question(client)`` on a fresh connection, or None if the node cannot answer yet."""
        try:
            with self.client(port, data_node=data_node) as client:
                return question(client)
        except (redis.RedisError, OSError) as exc:
            self.last_error = f"port {port}: {type(exc).__name__}: {exc}"
            return None

    def command(self, port: int, *args: str | int) -> Any:
        """Run one setup command on a data node; a failure is an EmbeddedServerError."""
        try:
            with self.client(port) as client:
                return call(client, *args)
        except (redis.RedisError, OSError) as exc:
            what = " ".join(str(a) for a in args[:2])
            raise EmbeddedServerError(
                f"{what} on port {port} failed: {type(exc).__name__}: {exc}"
            ) from None

    def is_process(self, port: int, pid: int, *, data_node: bool = True) -> bool:
        """Whether ``port`` is served by process ``pid`` (ours, not a squatter)."""

        def process_id(client: redis.Redis) -> object:
            return client.info("server").get("process_id")

        return self.ask(port, process_id, data_node=data_node) == pid


def call(client: redis.Redis, *args: str | int) -> Any:
    """Send one command and return its raw reply."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def fields(text: object) -> dict[str, str]:
    """The ``name:value`` lines of an INFO-style reply."""
    out: dict[str, str] = {}
    for line in str(text).splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            out[name.strip()] = value.strip()
    return out


def pairs(reply: object) -> dict[str, str]:
    """A flat ``[name, value, name, value, ...]`` reply as a dict."""
    items = reply if isinstance(reply, list) else []
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}
