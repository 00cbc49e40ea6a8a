"""Lock: exclusion, fencing, ownership by task/thread, wake-ups, the watchdog (sync twin
generated).

Concurrency tests assert the invariant on a history of (enter, exit, fencing token) per
critical section, not only a final counter.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from redkit._async.lock import LINGER_MS
from redkit.asyncio import Lock, connect
from redkit.errors import (
    BackendUnavailable,
    ConfigurationError,
    LockError,
    LockNotAcquired,
    LockNotOwned,
)
from tests._acompat import FACE, Event, pause, run_concurrently, start, wait_until
from tests.history import assert_exclusive
from tests.servers import flush_all
from tests.workers import run_lock_workers


async def test_acquire_release_and_growing_fencing_tokens(client: Any) -> None:
    lock = Lock(client, "basic", ttl=5)
    tokens = []
    for _ in range(3):
        assert await lock.acquire()
        assert await lock.owned() and await lock.locked()
        tokens.append(lock.fencing_token)
        await lock.release()
        assert not await lock.locked()
    assert tokens == sorted(set(tokens)) and len(tokens) == 3
    assert 0 < await client.pttl("lock:{basic}:signal") <= 1000, "release wakes waiters"
    assert 5000 < await client.pttl("lock:{basic}:fence") <= 5000 + LINGER_MS
    with pytest.raises(LockNotOwned):
        lock.fencing_token  # noqa: B018


async def test_a_taken_lock_is_not_granted_and_timeouts_are_kept(client: Any) -> None:
    # A waiter that ignored its deadline would block up to a second (retry_interval=5 is
    # capped by the longest BLPOP): the upper bound catches that, with room for a loaded machine.
    holder = Lock(client, "taken", ttl=10)
    other = Lock(client, "taken", ttl=10, retry_interval=5)
    assert await holder.acquire()
    assert not await other.acquire(blocking=False)
    for timeout in (0.0, 0.05, 0.3):
        began = time.monotonic()
        assert not await other.acquire(timeout=timeout)
        waited = time.monotonic() - began
        assert timeout <= waited < timeout + 0.3, f"timeout={timeout} waited {waited:.3f}s"
    with pytest.raises(LockNotAcquired, match="taken"):
        async with Lock(client, "taken", timeout=0.05):
            pass
    await holder.release()


async def test_the_token_is_at_least_128_random_bits(client: Any) -> None:
    lock = Lock(client, "token")
    await lock.acquire()
    token = (await client.get("lock:{token}")).decode()
    assert len(token) >= 32 and int(token, 16) >= 0
    await lock.release()


async def test_a_released_or_expired_lock_cannot_be_released_and_never_frees_another(
    client: Any, admin: Any
) -> None:
    lock = Lock(client, "expired", ttl=0.05)
    with pytest.raises(LockNotOwned):
        await lock.release()
    await lock.acquire()
    await wait_until(lambda: not admin.exists("lock:{expired}"))
    other = Lock(client, "expired", ttl=10)
    assert await other.acquire(blocking=False)
    with pytest.raises(LockNotOwned, match="ttl"):
        await lock.release()
    with pytest.raises(LockNotOwned):
        await lock.extend()
    assert await other.owned(), "the other holder's lock was touched"
    await other.release()


async def test_extend_replaces_the_remaining_time(client: Any) -> None:
    lock = Lock(client, "extend", ttl=1)
    await lock.acquire()
    await lock.extend(60)
    assert 59_000 < await client.pttl("lock:{extend}") <= 60_000
    await lock.extend()
    assert await client.pttl("lock:{extend}") <= 1000
    await lock.release()


async def test_tasks_or_threads_sharing_a_lock_object_never_release_each_others_hold(
    client: Any,
) -> None:
    lock = Lock(client, "shared", ttl=10)
    taken, done = Event(), Event()

    async def holder() -> None:
        assert await lock.acquire()
        taken.set()
        await done.wait()
        await lock.release()

    held = start(holder)
    await taken.wait()
    assert not await lock.owned()
    with pytest.raises(LockNotOwned, match="does not hold"):
        await lock.release()
    with pytest.raises(LockNotOwned):
        await lock.extend()
    assert await lock.locked()
    assert not await lock.acquire(blocking=False)
    done.set()
    await held.result()
    assert not await lock.locked()


async def test_an_owner_whose_hold_expired_cannot_release_the_next_owners(client: Any) -> None:
    lock = Lock(client, "shared-expiry", ttl=30)
    first_took, second_took, first_done = Event(), Event(), Event()
    outcome: list[Any] = []

    async def first() -> None:
        await lock.acquire()
        first_took.set()
        await second_took.wait()
        try:
            await lock.release()
        except LockNotOwned as exc:
            outcome.append(exc)
        first_done.set()

    async def second() -> None:
        await first_took.wait()
        await client.pexpire("lock:{shared-expiry}", 1)  # the first hold's ttl runs out
        assert await lock.acquire(timeout=5)
        second_took.set()
        await first_done.wait()
        outcome.append(await lock.owned())
        await lock.release()

    runs = [start(first), start(second)]
    for run in runs:
        await run.result()
    assert isinstance(outcome[0], LockNotOwned) and outcome[1] is True


async def test_a_lock_is_not_reentrant(client: Any) -> None:
    lock = Lock(client, "reentrant")
    await lock.acquire()
    with pytest.raises(LockError, match="reentrant"):
        await lock.acquire(blocking=False)
    await lock.release()


async def test_a_waiter_is_woken_by_the_release_not_by_polling(client: Any, admin: Any) -> None:
    holder = Lock(client, "wake", ttl=30)
    waiter = Lock(client, "wake", ttl=30, retry_interval=20)
    await holder.acquire()

    async def wait_then_release() -> tuple[bool, float]:
        taken = await waiter.acquire(timeout=15)
        at = time.monotonic()
        await waiter.release()
        return taken, at

    waiting = start(wait_then_release)
    await wait_until(lambda: _blocked_clients(admin) >= 1)
    released = time.monotonic()
    await holder.release()
    taken, at = await waiting.result()
    assert taken and at - released < 1.0, "the waiter slept instead of being woken"


def _blocked_clients(admin: Any) -> int:
    infos = admin.info("clients")
    if "blocked_clients" in infos:
        return int(infos["blocked_clients"])
    return sum(int(node["blocked_clients"]) for node in infos.values())


async def test_a_waiter_takes_a_lock_whose_holder_died_when_it_expires(client: Any) -> None:
    dead = Lock(client, "crashed", ttl=0.1)
    await dead.acquire()  # never released, as if its process had died
    waiter = Lock(client, "crashed", ttl=5, retry_interval=30)
    began = time.monotonic()
    assert await waiter.acquire(timeout=5)
    # Not following the expiry costs the longest BLPOP (1 s): the bound leaves 0.8 s of room.
    assert time.monotonic() - began < 1.0, "the waiter did not follow the holder's expiry"
    await waiter.release()


async def test_fencing_rejects_a_holder_that_paused_past_its_ttl(client: Any, admin: Any) -> None:
    resource = FencedResource()
    slow = Lock(client, "fenced", ttl=0.1)
    await slow.acquire()
    slow_token = slow.fencing_token
    await wait_until(lambda: not admin.exists("lock:{fenced}"))  # the pause
    fast = Lock(client, "fenced", ttl=10)
    await fast.acquire()
    assert fast.fencing_token > slow_token
    assert resource.write(fast.fencing_token, "from the new holder")
    assert not resource.write(slow_token, "from the paused holder"), "stale write accepted"
    assert resource.value == "from the new holder"
    await fast.release()


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class FencedResource:
    """A store that accepts a write only with a token at least as large as any it has seen."""

    def __init__(self) -> None:
        self.highest = 0
        self.value: Any = None

    def write(self, token: int, value: Any) -> bool:
        if token < self.highest:
            return False
        self.highest = token
        self.value = value
        return True


async def test_fencing_tokens_never_decrease_when_the_counter_is_lost(
    client: Any, admin: Any, redis_url: str
) -> None:
    """The counter can vanish (FLUSHALL, eviction, a restart without persistence, a
    failover to a replica that missed it) or go back (a restore): the server's clock is
    the floor, so the next token is still larger."""
    lock = Lock(client, "lost-counter", ttl=5)
    counter = "lock:{lost-counter}:fence"
    tokens = []
    for loss in ("none", "deleted", "flushed", "restored from an old backup"):
        if loss == "deleted":
            admin.delete(counter)
        elif loss == "flushed":
            flush_all(redis_url)
        elif loss == "restored from an old backup":
            admin.set(counter, 7)
        assert await lock.acquire(blocking=False)
        tokens.append(lock.fencing_token)
        await lock.release()
    assert tokens == sorted(set(tokens)), f"a token went back: {tokens}"


async def test_a_counter_ahead_of_the_clock_still_counts_up(client: Any, admin: Any) -> None:
    """A clock that stepped back (or a counter from a faster clock) is covered by the counter."""
    ahead = 5 * 10**15  # a century ahead of the clock in microseconds (exact below 2**53)
    admin.set("lock:{ahead}:fence", ahead)
    lock = Lock(client, "ahead", ttl=5)
    for expected in (ahead + 1, ahead + 2):
        assert await lock.acquire(blocking=False)
        assert lock.fencing_token == expected
        await lock.release()


async def test_an_idle_lock_name_leaves_no_key_for_ever(client: Any, admin: Any) -> None:
    """Every key a lock writes expires: 100,000 per-order locks must not leave 100,000
    counters behind. A lock taken again while its counter lives gets a larger token."""
    lock = Lock(client, "order-17", ttl=5)
    await lock.acquire()
    assert 5_000 < admin.pttl("lock:{order-17}:fence") <= 5_000 + LINGER_MS
    await lock.extend(20)  # the counter lives as long as the lock, and its margin
    assert 5_000 + LINGER_MS < admin.pttl("lock:{order-17}:fence") <= 20_000 + LINGER_MS
    first = lock.fencing_token
    await lock.release()
    keys = ["lock:{order-17}", *lock.keys.companions("lock:{order-17}")]
    for key in keys:
        left = admin.pttl(key)
        assert left == -2 or 0 < left <= 20_000 + LINGER_MS, f"{key} lives {left} ms"
    for key in keys:
        admin.pexpire(key, 1)  # as if the margin had passed
    await wait_until(lambda: not any(admin.exists(key) for key in keys))
    await lock.acquire()
    assert lock.fencing_token > first
    await lock.release()


async def test_the_watchdog_extends_until_release_then_stops(client: Any) -> None:
    # A ttl of 1.5 s (a watchdog period of 0.5 s) leaves a renewal a second of delay on a
    # loaded 2-core machine before the lock would expire.
    lock = Lock(client, "watchdog", ttl=1.5, auto_extend=True)
    await lock.acquire()
    await wait_until(lambda: lock.events.snapshot().get("lock_extended", 0) >= 4)
    assert await lock.owned() and not lock.lost  # held for 4/3 of the ttl and more
    await lock.release()
    extended = lock.events.snapshot().get("lock_extended", 0)
    await pause(1.1)  # two more watchdog periods
    assert lock.events.snapshot().get("lock_extended", 0) == extended, "renewed after release"
    assert not await lock.locked()
    await lock.aclose()


async def test_the_watchdog_stops_after_max_extensions_and_at_max_hold(
    client: Any, admin: Any
) -> None:
    capped = Lock(client, "max-ext", ttl=1.0, auto_extend=True, max_extensions=2)
    await capped.acquire()
    await wait_until(lambda: not admin.exists("lock:{max-ext}"), timeout=10)
    assert capped.events.snapshot().get("lock_extended", 0) == 2
    clock = ManualClock()  # max_hold is measured on the injected clock
    held = Lock(client, "max-hold", ttl=1.0, auto_extend=True, max_hold=100, clock=clock)

    def extended() -> int:
        return held.events.snapshot().get("lock_extended", 0)

    await held.acquire()
    await wait_until(lambda: extended() >= 1)
    assert admin.pttl("lock:{max-hold}") > 400
    clock.now += 100 - 0.4  # 0.4 s of max_hold left
    renewals = extended()
    await wait_until(lambda: extended() > renewals)
    assert admin.pttl("lock:{max-hold}") <= 400, "the last extension went past max_hold"
    clock.now += 0.4  # max_hold reached: no more extensions, the lock expires
    await wait_until(lambda: not admin.exists("lock:{max-hold}"), timeout=5)
    for lock in (capped, held):
        with pytest.raises(LockNotOwned):
            await lock.release()
        await lock.aclose()


async def test_a_lost_lock_is_flagged_and_reported(client: Any) -> None:
    lost: list[Any] = []
    lock = Lock(client, "lost", ttl=0.3, auto_extend=True, on_lost=lost.append)
    await lock.acquire()
    await client.delete("lock:{lost}")  # an operator, a failover...
    await wait_until(lambda: bool(lost))
    assert lost == [lock]
    assert lock.lost  # read by the owner
    assert lock.events.snapshot().get("lock_lost") == 1
    with pytest.raises(LockNotOwned, match="lost"):
        await lock.release()
    await lock.aclose()


async def test_a_lock_never_pretends_when_redis_is_down(unused_tcp_port: int) -> None:
    dead = connect(f"redis://127.0.0.1:{unused_tcp_port}/0", retries=0)
    lock = Lock(dead, "down")
    for call in (lock.acquire, lambda: lock.acquire(blocking=False), lock.locked):
        with pytest.raises(BackendUnavailable):
            await call()
    with pytest.raises(BackendUnavailable):
        async with lock:
            pass
    assert not await lock.owned()  # nothing held, so nothing asked
    await lock.aclose()
    await dead.aclose()


async def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        Lock(object(), "x", ttl=0)


@pytest.mark.parametrize("shared", [False, True], ids=["own-objects", "shared-objects"])
async def test_no_overlap_among_16_workers_of_200_acquisitions(client: Any, shared: bool) -> None:
    objects = [Lock(client, "mutex", ttl=10) for _ in range(2 if shared else 16)]
    history: list[tuple[int, int, int]] = []
    counter = {"value": 0}

    async def worker(i: int) -> None:
        lock = objects[i % len(objects)]
        for _ in range(200):
            async with lock:
                entered = time.monotonic_ns()
                value = counter["value"]  # read-modify-write, unsafe without the lock
                if i % 4 == 0:
                    await pause(0)
                counter["value"] = value + 1
                history.append((entered, time.monotonic_ns(), lock.fencing_token))

    await run_concurrently(16, worker)
    assert counter["value"] == 3200
    assert_exclusive(history, expected=3200)


async def test_no_overlap_among_4_processes(redis_url: str) -> None:
    history = run_lock_workers(redis_url, FACE, "mutex-procs", processes=4, rounds=100)
    assert_exclusive(history, expected=400)
