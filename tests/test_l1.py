"""The in-process tier (pure): LRU order, per-entry TTL, fill tickets, and the hot counter."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redkit._core.events import Event, Events
from redkit._core.keys import KeySpace, id_text
from redkit._core.l1 import L1, VOID


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def make(max_size: int = 3, ttl: float = 10.0, *, threadsafe: bool = False) -> tuple[L1, FakeClock]:
    clock = FakeClock()
    l1 = L1(max_size, ttl, clock, threadsafe=threadsafe)
    l1.set_live()
    return l1, clock


def put(l1: L1, key: Any, value: Any) -> int:
    ticket = l1.begin(key)
    try:
        return l1.fill(key, value, ticket)
    finally:
        l1.end(key, ticket)


def test_the_least_recently_used_entry_goes_first() -> None:
    l1, _ = make(max_size=3)
    for key in "abc":
        put(l1, key, key.upper())
    assert l1.lookup("a") is not None  # a is now the most recently used
    assert put(l1, "d", "D") == 1
    assert l1.keys() == ["c", "a", "d"], "b, the least recently used, must have gone"
    assert put(l1, "e", "E") == 1
    assert l1.keys() == ["a", "d", "e"]
    assert l1.evictions == 2


def test_a_refill_counts_as_use_and_evicts_nothing() -> None:
    l1, _ = make(max_size=2)
    put(l1, "a", 1)
    put(l1, "b", 2)
    assert put(l1, "a", 3) == 0
    put(l1, "c", 4)
    assert l1.keys() == ["a", "c"]


def test_an_entry_expires_ttl_after_it_was_stored() -> None:
    l1, clock = make(ttl=10.0)
    put(l1, "a", 1)
    clock.now += 9.999
    assert l1.lookup("a") == (1, 1010.0)
    clock.now += 0.001
    assert l1.lookup("a") is None
    assert "a" not in l1.data, "an expired entry is dropped when found"


def test_an_invalidation_voids_a_read_in_flight() -> None:
    l1, _ = make()
    ticket = l1.begin("a")  # the read is sent
    l1.invalidate(["a"])  # the invalidation is applied before the reply arrives
    assert l1.fill("a", "old", ticket) == -1
    l1.end("a", ticket)
    assert l1.lookup("a") is None
    # a read that starts after the invalidation may fill
    assert put(l1, "a", "new") == 0
    assert l1.lookup("a") == ("new", 1010.0)


def test_an_invalidation_of_another_key_leaves_the_ticket_valid() -> None:
    l1, _ = make()
    ticket = l1.begin("a")
    l1.invalidate(["b"])
    assert l1.fill("a", 1, ticket) == 0


def test_concurrent_readers_of_one_key_share_the_voiding() -> None:
    l1, _ = make()
    first, second = l1.begin("a"), l1.begin("a")
    l1.invalidate(["a"])
    third = l1.begin("a")
    assert l1.fill("a", 1, first) == -1 and l1.fill("a", 1, second) == -1
    assert l1.fill("a", 2, third) == 0
    for ticket in (first, second, third):
        l1.end("a", ticket)
    assert not l1._reading, "tickets must not outlive their reads"


def test_a_flush_voids_every_read_and_a_lost_channel_refuses_fills() -> None:
    l1, _ = make()
    put(l1, "x", 0)
    ticket = l1.begin("a")
    l1.flush(live=False)
    assert len(l1) == 0
    assert l1.fill("a", 1, ticket) == -1
    assert l1.begin("b") is VOID, "a read that starts while the channel is down never fills"
    assert put(l1, "b", 1) == -1
    l1.set_live()
    assert put(l1, "b", 1) == 0


def test_a_ticket_taken_before_the_channel_came_back_stays_void() -> None:
    l1, _ = make()
    l1.flush(live=False)
    ticket = l1.begin("a")
    l1.set_live()
    assert l1.fill("a", 1, ticket) == -1


ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 6)),
        st.tuples(st.just("get"), st.integers(0, 6)),
        st.tuples(st.just("invalidate"), st.integers(0, 6)),
        st.tuples(st.just("tick"), st.sampled_from([0.5, 1.0, 3.0])),
    ),
    max_size=60,
)


@given(ops=ops, max_size=st.integers(1, 4))
def test_l1_behaves_as_a_reference_lru_with_ttl(ops: list[tuple[str, Any]], max_size: int) -> None:
    ttl = 4.0
    l1, clock = make(max_size=max_size, ttl=ttl)
    model: OrderedDict[int, tuple[int, float]] = OrderedDict()
    evictions = 0
    for step, (op, arg) in enumerate(ops):
        if op == "tick":
            clock.now += arg
            continue
        if op == "invalidate":
            l1.invalidate([arg])
            model.pop(arg, None)
            continue
        if op == "get":
            entry = model.get(arg)
            expected = None
            if entry is not None:
                if entry[1] > clock.now:
                    model.move_to_end(arg)
                    expected = entry
                else:
                    del model[arg]
            assert l1.lookup(arg) == expected
            continue
        model[arg] = (step, clock.now + ttl)
        model.move_to_end(arg)
        while len(model) > max_size:
            model.popitem(last=False)
            evictions += 1
        put(l1, arg, step)
        assert l1.keys() == list(model)
    assert l1.evictions == evictions


def test_the_hot_counter_is_exact_under_threads() -> None:
    events = Events("tiered", "t", threadsafe=True)
    count = events.counter(Event.L1_HIT)

    def hammer() -> None:
        for _ in range(50_000):
            count()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events.emit(Event.L1_HIT, 2)
    assert events.count(Event.L1_HIT) == 400_002
    assert events.snapshot()["l1_hit"] == 400_002
    events.reset()
    count()
    assert events.count(Event.L1_HIT) == 1 and events.snapshot() == {"l1_hit": 1}
    assert events.counter(Event.L1_HIT) is not None  # asking again shares the count
    events.counter(Event.L1_HIT)()
    assert events.count(Event.L1_HIT) == 2


ids = st.one_of(
    st.integers(-(10**20), 10**20),
    st.text(min_size=1).filter(lambda s: "\x00" not in s),
)


@given(id=ids)
def test_an_entry_key_gives_back_its_id_text(id: Any) -> None:
    keys = KeySpace("pre:fix", version=3)
    key = keys.key(id)
    assert keys.id_of(key.encode()) == id_text(id)
    assert keys.id_of(f"{key}:lock".encode()) is None
    assert KeySpace("pre:fix").id_of(key.encode()) is None


@pytest.mark.parametrize(
    "raw", [b"p:{", b"p:{}", b"p:{a}b}", b"p:x", b"q:{1}", b"p:{\xff}", b"p:{1}:stats"]
)
def test_keys_that_are_not_entries_give_no_id(raw: bytes) -> None:
    assert KeySpace("p").id_of(raw) is None


def test_an_entry_expires_at_the_sooner_of_its_ttl_and_its_source_expiry() -> None:
    l1, clock = make(ttl=10.0)
    for key, expires_at in (("soon", clock.now + 2), ("late", clock.now + 60), ("none", None)):
        ticket = l1.begin(key)
        l1.fill(key, key, ticket, expires_at)
        l1.end(key, ticket)
    clock.now += 1.999
    assert "soon" in l1 and "late" in l1 and "none" in l1
    clock.now += 0.001
    assert "soon" not in l1 and l1.lookup("soon") is None
    clock.now += 7.999
    assert "late" in l1 and "none" in l1
    clock.now += 0.001
    assert "late" not in l1 and "none" not in l1
