"""Redlock over five independent servers: quorum, validity, fencing across majorities,
release everywhere on failure, never two holders (the sync twin is generated)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redkit.asyncio import Redlock, connect
from redkit.errors import BackendUnavailable, ConfigurationError, LockNotOwned
from tests._acompat import pause, run_concurrently
from tests.history import assert_exclusive


@pytest.fixture
async def clients(redlock_urls: list[str]) -> AsyncIterator[list[Any]]:
    made = [connect(url) for url in redlock_urls]
    yield made
    for client in made:
        await client.aclose()


@pytest.fixture
async def dead(unused_tcp_port_factory: Any) -> AsyncIterator[list[Any]]:
    """Clients of servers that are down (nothing listens on their ports)."""
    made = [
        connect(f"redis://127.0.0.1:{unused_tcp_port_factory()}/0", retries=0) for _ in range(3)
    ]
    yield made
    for client in made:
        await client.aclose()


async def test_acquire_on_all_with_validity_and_fencing(clients: list[Any]) -> None:
    clock = ManualClock()  # frozen: the validity is exactly ttl - drift
    lock = Redlock(clients, "order", ttl=2.0, drift_factor=0.01, server_timeout=1.0, clock=clock)
    assert lock.quorum == 3
    assert await lock.acquire()
    assert lock.validity == pytest.approx(2.0 - 0.02 - 0.002)
    clock.now += 0.5
    assert lock.validity == pytest.approx(1.5 - 0.02 - 0.002)
    assert await lock.owned() and await lock.locked()
    first = lock.fencing_token
    assert all([await c.get("lock:{order}") for c in clients])
    await lock.release()
    assert not any([await c.exists("lock:{order}") for c in clients])
    assert await lock.acquire() and lock.fencing_token > first
    await lock.extend(5)
    assert lock.validity == pytest.approx(5 - 0.05 - 0.002)
    clock.now += 5
    assert lock.validity == 0.0
    with pytest.raises(LockNotOwned):
        await lock.release()  # released everywhere, but after its validity
    assert not any([await c.exists("lock:{order}") for c in clients])


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_works_with_two_servers_down_and_refuses_with_three(
    clients: list[Any], dead: list[Any]
) -> None:
    two_down = Redlock([*clients[:3], *dead[:2]], "down", ttl=5, retry_count=0)
    assert await two_down.acquire()
    await two_down.extend()
    await two_down.release()
    three_down = Redlock([*clients[:2], *dead], "down", ttl=5, retry_count=1, retry_delay=0)
    with pytest.raises(BackendUnavailable, match="3 of 5"):
        await three_down.acquire()
    assert not any([await c.exists("lock:{down}") for c in clients[:2]]), "not released"


async def test_a_minority_is_released_everywhere(clients: list[Any]) -> None:
    for client in clients[:3]:
        await client.set("lock:{minority}", "someone else", px=10_000)
    lock = Redlock(clients, "minority", ttl=5, retry_count=2, retry_delay=0.01)
    assert not await lock.acquire()
    assert not any([await c.exists("lock:{minority}") for c in clients[3:]])
    assert [await c.get("lock:{minority}") for c in clients[:3]] == [b"someone else"] * 3


async def test_extend_needs_a_majority(clients: list[Any]) -> None:
    lock = Redlock(clients, "extend", ttl=5)
    await lock.acquire()
    for client in clients[:3]:
        await client.delete("lock:{extend}")  # lost on a majority
    with pytest.raises(LockNotOwned):
        await lock.extend()
    with pytest.raises(LockNotOwned):
        await lock.release()


async def test_fencing_tokens_grow_across_different_majorities(
    clients: list[Any], dead: list[Any]
) -> None:
    """Each server counts on its own; the second step lifts the granting servers'
    counters, so a later majority (sharing one server) hands out a larger token."""
    ahead = 5 * 10**15  # a counter far ahead of every server's clock (in microseconds)
    await clients[0].set("lock:{fence}:fence", ahead)
    first = Redlock([clients[0], clients[1], clients[2], dead[0], dead[1]], "fence")
    assert await first.acquire()
    assert first.fencing_token == ahead + 1
    await first.release()
    second = Redlock([dead[2], clients[1], clients[2], clients[3], clients[4]], "fence")
    assert await second.acquire()
    assert second.fencing_token > ahead + 1, "a later holder got a smaller token"
    await second.release()


async def test_fencing_tokens_never_decrease_when_every_counter_is_lost(
    clients: list[Any],
) -> None:
    lock = Redlock(clients, "wiped", ttl=5)
    assert await lock.acquire()
    first = lock.fencing_token
    await lock.release()
    for client in clients:
        await client.flushall()
    assert await lock.acquire()
    assert lock.fencing_token > first
    await lock.release()


async def test_never_two_holders(clients: list[Any]) -> None:
    history: list[tuple[int, int, int]] = []

    async def worker(i: int) -> None:
        lock = Redlock(
            clients, "mutex", ttl=5, retry_count=1000, retry_delay=0.001, retry_jitter=0.005
        )
        for _ in range(15):
            assert await lock.acquire()
            entered = time.monotonic_ns()
            await pause(0)
            history.append((entered, time.monotonic_ns(), lock.fencing_token))
            await lock.release()

    await run_concurrently(6, worker)
    assert_exclusive(history, expected=90)


async def test_bad_configurations_are_refused(clients: list[Any]) -> None:
    with pytest.raises(ConfigurationError):
        Redlock([], "x")
    with pytest.raises(ConfigurationError, match="same client"):
        Redlock([clients[0], clients[0]], "x")
    with pytest.raises(ConfigurationError, match="retry_count"):
        Redlock(clients, "x", retry_count=-1)
    for bad in (0, -1, float("nan"), "1"):
        with pytest.raises(ConfigurationError, match="server_timeout"):
            Redlock(clients, "x", server_timeout=bad)
    assert Redlock(clients, "x", ttl=30).server_timeout == 0.5
    assert Redlock(clients, "x", ttl=2).server_timeout == pytest.approx(0.2)
