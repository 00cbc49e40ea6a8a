"""The sync face's read batcher across threads: what only threads and processes can show.

Reads that arrive while one is in flight leave together; reads of one key share a request;
an interrupted sending thread, ``close()`` and a lost answer release every waiter; a child
made by ``os.fork()`` starts clean.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.cluster

import redkit
from redkit._compat import Gate
from redkit._sync.read_batcher import ReadBatcher
from redkit.errors import BackendUnavailable
from tests._compat import Event, hold_first_get, intercept, start, wait_until
from tests.servers import commandstats, flush_all, reset_commandstats

pytestmark = pytest.mark.protocols


@pytest.fixture
def sclient(redis_url: str, protocol: int | None) -> Iterator[Any]:
    """redkit's client (redis-py's default protocol), or a redis-py client asking for
    ``protocol`` (RESP3: maintenance notifications on, so no lanes)."""
    if protocol is None:
        client = redkit.connect(redis_url)
    elif redis_url.startswith("redis+cluster://"):
        host, port = redis_url.split("://")[1].split(",")[0].rsplit(":", 1)
        client = redis.cluster.RedisCluster(host=host, port=int(port), protocol=protocol)
    else:
        client = redis.Redis.from_url(redis_url, protocol=protocol)
    yield client
    client.close()


def held(client: Any) -> tuple[Event, Event]:
    """Make the client's next GET wait (after the server answered) until released."""
    answered, release, _ = hold_first_get(client)
    return answered, release


def test_reads_arriving_meanwhile_leave_as_one_mget(sclient: Any, redis_url: str) -> None:
    cache = redkit.CacheAside(sclient, "together")
    cache.set_many({i: i for i in range(20)} | {"first": 0})
    answered, release = held(sclient)
    first = start(lambda: cache.get("first"))
    answered.wait()
    reset_commandstats(redis_url)
    readers = [start(lambda i=i: cache.get(i % 10)) for i in range(1, 31)]
    wait_until(lambda: len(cache.store._reader._pending) == 10)  # type: ignore[union-attr]
    release.set()
    assert first.result() == 0
    assert [r.result() for r in readers] == [i % 10 for i in range(1, 31)]
    stats = commandstats(redis_url)
    # thirty reads of ten keys, all waiting on the first: one request (one per slot group)
    assert stats.get("get", 0) == 0
    assert 1 <= stats.get("mget", 0) <= 10


def test_an_interrupted_sending_thread_releases_everyone(sclient: Any) -> None:
    entered, release = Event(), Event()

    class Interrupting:
        def get(self, key: str) -> Any:
            entered.set()
            release.wait()
            raise KeyboardInterrupt

        def mget(self, keys: list[str]) -> Any:
            return [b"value"] * len(keys)

    batcher = ReadBatcher(Interrupting(), cluster=False, gate=Gate(10))
    sender = start(lambda: batcher.get("a"))
    entered.wait()
    waiters = [start(lambda i=i: batcher.get(f"b{i}")) for i in range(5)]
    joined = start(lambda: batcher.get("a"))
    wait_until(lambda: len(batcher._pending) == 5)
    release.set()
    with pytest.raises(KeyboardInterrupt):
        sender.result()
    with pytest.raises(BackendUnavailable, match="stopped"):
        joined.result()
    assert [w.result() for w in waiters] == [b"value"] * 5, "the next batch must still go out"


class Interrupted(Exception):
    pass


def test_a_waiting_thread_interrupted_never_strands_the_others(sclient: Any) -> None:
    """The threads of a batch are woken one by one, each waking the next: a thread that was
    interrupted while waiting must leave the chain, or every thread after it waits forever."""
    sclient.mset({"k": "v"})
    answered, release = held(sclient)
    batcher = ReadBatcher(sclient, cluster=False, gate=Gate(10), wait_timeout=30)
    sender = start(lambda: batcher.get("first"))
    answered.wait()
    others = [start(lambda: batcher.get("k")) for _ in range(5)]
    wait_until(lambda: "k" in batcher._pending and len(batcher._pending["k"].waiters) == 5)

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            batcher.get("k")  # this (main) thread waits last: it would be woken first
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    release.set()
    assert sender.result() is None
    assert [other.result(timeout=5) for other in others] == [b"v"] * 5


def interrupt_once_woken(woken: Any) -> Any:
    """A SIGALRM handler for the main thread, blocked in a batched read: it lets the held
    request return (``release``, set by ``woken``), waits until ``woken()`` says this thread's
    wake-up happened, then raises: the thread is interrupted after it was woken."""

    def handler(signum: int, frame: Any) -> None:
        wait_until(woken, timeout=5)
        raise Interrupted

    return handler


def alarm_in_main_thread(handler: Any, call: Any) -> None:
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_thread_interrupted_once_picked_to_send_fails_the_batch_for_the_others(
    sclient: Any,
) -> None:
    answered, release = held(sclient)
    batcher = ReadBatcher(sclient, cluster=False, gate=Gate(10), wait_timeout=30)
    sender = start(lambda: batcher.get("first"))
    answered.wait()
    # the main thread waits on "k" first (it will be picked to send), then another thread
    joiner = start(
        lambda: (
            wait_until(lambda: "k" in batcher._pending and len(batcher._pending["k"].waiters) == 1),
            batcher.get("k"),
        )[1]
    )

    def picked() -> bool:
        if "k" in batcher._pending and len(batcher._pending["k"].waiters) == 2:
            release.set()
        slot = batcher._inflight.get("k")
        return slot is not None and slot.runner is not None

    alarm_in_main_thread(interrupt_once_woken(picked), lambda: batcher.get("k"))
    with pytest.raises(BackendUnavailable, match="stopped"):
        joiner.result(timeout=5)
    assert sender.result() is None
    assert batcher.get("k") is None, "the batcher works again"


def test_a_thread_interrupted_once_woken_still_wakes_the_next(sclient: Any) -> None:
    sclient.mset({"k": "v"})
    answered, release = held(sclient)
    batcher = ReadBatcher(sclient, cluster=False, gate=Gate(10), wait_timeout=30)
    sender = start(lambda: batcher.get("first"))
    answered.wait()
    # three threads wait on "k" (the first will send), then the main thread: woken first
    others = []
    for count in (1, 2, 3):
        others.append(start(lambda: batcher.get("k")))
        wait_until(lambda c=count: len(batcher._pending["k"].waiters) == c)  # type: ignore[misc]
    slot = batcher._pending["k"]

    def woken() -> bool:
        if len(slot.waiters) == 4:
            release.set()
        if slot.chain is None:
            return False
        with batcher._lock:  # the chain's first wake-up (this thread's) has been made
            return True

    alarm_in_main_thread(interrupt_once_woken(woken), lambda: batcher.get("k"))
    assert sender.result() is None
    assert [other.result(timeout=5) for other in others] == [b"v"] * 3


def test_close_releases_every_waiting_thread(sclient: Any) -> None:
    answered, release = held(sclient)
    batcher = ReadBatcher(sclient, cluster=False, gate=Gate(10))
    sender = start(lambda: batcher.get("a"))
    answered.wait()
    waiters = [start(lambda i=i: batcher.get(f"b{i}")) for i in range(5)]
    wait_until(lambda: len(batcher._pending) == 5)
    batcher.close()
    for waiter in waiters:
        with pytest.raises(BackendUnavailable, match="closed"):
            waiter.result(timeout=2)
    release.set()
    assert sender.result() is None
    with pytest.raises(BackendUnavailable, match="closed"):
        batcher.get("later")


def test_a_waiter_gives_up_if_no_answer_ever_comes(sclient: Any) -> None:
    answered, release = held(sclient)
    batcher = ReadBatcher(sclient, cluster=False, gate=Gate(10), wait_timeout=0.2)
    sender = start(lambda: batcher.get("a"))
    answered.wait()
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="no answer"):
        batcher.get("b")
    assert time.monotonic() - started < 2
    release.set()
    assert sender.result() is None
    assert batcher.get("b") is None, "the batcher works again once the sender is back"


def test_a_child_process_starts_with_a_clean_batcher(sclient: Any) -> None:
    """Fork while another thread's read is in flight (gunicorn --preload forks a loaded app):
    the child must not wait for a sender that does not exist there."""
    cache = redkit.CacheAside(sclient, "fork")
    cache.set("k", "value")
    answered, release = held(sclient)
    in_flight = start(lambda: cache.get("k"))
    answered.wait()
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if a read works, within 5 s
        signal.alarm(5)
        try:
            os._exit(0 if cache.get("k") == "value" else 1)
        except BaseException:
            os._exit(2)
    release.set()
    assert in_flight.result() == "value"
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_many_threads_reading_one_key_share_requests(sclient: Any, redis_url: str) -> None:
    cache = redkit.CacheAside(sclient, "one-key")
    cache.set("hot", "v")
    answered, release = held(sclient)
    first = start(lambda: cache.get("hot"))
    answered.wait()
    reset_commandstats(redis_url)
    readers = [start(lambda: cache.get("hot")) for _ in range(20)]
    wait_until(lambda: threading.active_count() >= 21)
    release.set()
    assert first.result() == "v" and [r.result() for r in readers] == ["v"] * 20
    stats = commandstats(redis_url)
    assert stats.get("get", 0) + stats.get("mget", 0) <= 1


def test_no_request_carries_more_than_max_batch_keys(standalone_server: Any) -> None:
    """Reads that queued up behind a request leave as several MGETs of at most ``max_batch``
    keys each."""
    flush_all(standalone_server.url)
    client = redkit.connect(standalone_server.url)
    client.mset({f"k{i}": i for i in range(10)})
    sizes: list[int] = []

    def recording(real: Any) -> Any:
        def send(*args: Any, **kwargs: Any) -> Any:
            if args[0] == "MGET":
                sizes.append(len(args) - 1)
            return real(*args, **kwargs)

        return send

    answered, release = held(client)
    intercept(client, recording)
    batcher = ReadBatcher(client, cluster=False, gate=Gate(10), max_batch=4)
    first = start(lambda: batcher.get("first"))
    answered.wait()
    readers = [start(lambda i=i: batcher.get(f"k{i}")) for i in range(10)]
    wait_until(lambda: len(batcher._pending) == 10)
    release.set()
    assert first.result() is None
    assert [r.result() for r in readers] == [str(i).encode() for i in range(10)]
    assert sum(sizes) == 10 and max(sizes) <= 4, f"MGET sizes {sizes}"
    client.close()
