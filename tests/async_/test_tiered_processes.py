"""Two processes' L1s never serve a value older than an invalidation they received.

Two processes read one key through their TieredCache as fast as they can while versions
1, 2, 3... are written in turn by a plain redis-py client and by each process's
``TieredCache.set``; every so often the invalidation connections are killed (CLIENT KILL)
and a version is written while they are down, which no process hears of. Each read checks
that its value is at least the number of invalidations the process had received when it
started (write n stores n and causes invalidation n); after each reconnection each process
must read the version written while it was deaf. See ``tests/workers.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.cluster

from redkit import Codec
from tests._acompat import FACE
from tests.servers import primaries
from tests.workers import start_tiered_processes

NAMES = ["a", "b"]
ROUNDS = 90
KILL_EVERY = 30
_DEADLINE = 60.0


@pytest.fixture
def plain(redis_url: str) -> Iterator[Any]:
    if redis_url.startswith("redis+cluster://"):
        host, port = primaries(redis_url)[0]
        client: Any = redis.cluster.RedisCluster(host=host, port=port)
    else:
        client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _states(plain: Any, prefix: str) -> list[tuple[int, int, int]]:
    """(live, sessions, invalidations) of each process, as it last published them."""
    states = []
    for name in NAMES:
        raw = plain.get(f"{prefix}-state-{name}")
        live, sessions, invalidations = (raw or b"0:0:0").decode().split(":")
        states.append((int(live), int(sessions), int(invalidations)))
    return states


def _wait(plain: Any, prefix: str, what: str, condition: Any) -> None:
    deadline = time.monotonic() + _DEADLINE
    while not condition(_states(plain, prefix)):
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what}: {_states(plain, prefix)}"
        )
        time.sleep(0.005)


def _command(plain: Any, prefix: str, name: str, command: str) -> None:
    """Have process ``name`` run ``command`` and wait until it has."""
    plain.rpush(f"{prefix}-cmd-{name}", command)
    assert plain.blpop([f"{prefix}-ack-{name}"], timeout=_DEADLINE) is not None, command


def _kill_invalidation_connections(url: str) -> None:
    for host, port in primaries(url):
        with redis.Redis(host=host, port=port) as admin:
            admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")


async def test_two_processes_never_serve_a_value_older_than_an_invalidation_they_received(
    redis_url: str, plain: Any
) -> None:
    prefix = f"mp-{FACE}"
    codec = Codec()
    running = start_tiered_processes(redis_url, FACE, prefix, NAMES)
    _wait(plain, prefix, "both listeners", lambda s: all(live for live, _, _ in s))
    version = 0
    for round in range(1, ROUNDS + 1):
        version += 1
        writer = round % 3
        if writer == 0:
            plain.set(f"{prefix}:{{k}}", codec.encode(version))
        else:
            name = NAMES[writer - 1]
            _command(plain, prefix, name, f"set:{version}")
        if round % KILL_EVERY == 0:
            sessions = [s for _, s, _ in _states(plain, prefix)]
            _kill_invalidation_connections(redis_url)
            version += 1
            plain.set(f"{prefix}:{{k}}", codec.encode(version))  # while they are deaf
            _wait(
                plain,
                prefix,
                "reconnection",
                lambda s, before=sessions: all(
                    live and now > old for (live, now, _), old in zip(s, before, strict=True)
                ),
            )
            for name in NAMES:  # L1 was emptied when the channel went: no older version
                _command(plain, prefix, name, f"check:{version}")
    for name in NAMES:
        plain.rpush(f"{prefix}-cmd-{name}", "stop")
    reports = running.get(timeout=_DEADLINE)
    for name, report in zip(NAMES, reports, strict=True):
        assert report["violations"] == [], f"process {name} served older values"
        assert report["final"] == version, name
        # one per write, but for those written just before or while the channel was down
        assert ROUNDS - ROUNDS // KILL_EVERY <= report["invalidations"] <= version, name
        assert report["l1_hits"] > 0, f"process {name} never read from L1"
        assert report["reads"] > report["l1_hits"] / 2
