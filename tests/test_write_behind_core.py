"""Write-behind's pure parts and argument checks (no server: clients point at a closed port)."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

import redkit
import redkit.asyncio
from redkit._core.keys import StreamLayout
from redkit._core.write_behind import (
    TOKEN_SIZE,
    coalesce,
    frame,
    owner,
    unframe,
    version_of,
)
from redkit.errors import ConfigurationError, InvalidArgument, InvalidKey, SerializationError

FACES = {"sync": redkit, "async": redkit.asyncio}
NOWHERE = "redis://127.0.0.1:1/0"


class Repo:
    """Enough of a repository for construction (never called: nothing reaches a server)."""

    def find_by_id(self, id: Any) -> None:
        raise AssertionError("not called")

    def upsert_many(self, entities: Any) -> int:
        raise AssertionError("not called")


# -- layout ------------------------------------------------------------------------------------


@given(st.one_of(st.text(min_size=1), st.integers().map(str)))
def test_an_entry_shares_its_streams_slot(text: str) -> None:
    layout = StreamLayout("users", 16)
    try:
        text.encode()
    except UnicodeEncodeError:
        return
    shard = layout.shard_of(text)
    assert 0 <= shard < 16
    slot = key_slot(layout.stream(shard).encode())
    for key in (layout.entry(shard, text), layout.dead(shard), layout.lease(shard)):
        assert key_slot(key.encode()) == slot
    assert key_slot(layout.attempts(shard).encode()) == slot
    for key in layout.write_keys(text, 12345):
        assert key_slot(key.encode()) == slot
    assert layout.shard_of(text) == shard, "the shard of an id never changes"


def test_shards_spread_over_slots_and_ids_over_shards() -> None:
    layout = StreamLayout("users", 16)
    assert len({key_slot(layout.stream(s).encode()) for s in range(16)}) == 16
    counts = [0] * 16
    for id in range(16_000):
        counts[layout.shard_of(str(id))] += 1
    assert min(counts) > 800 and max(counts) < 1200


def test_the_layout_is_stable_across_processes() -> None:
    # crc32("42") % 16, written out: the mapping must never depend on the process (hash()).
    assert StreamLayout("users", 16).shard_of("42") == 0x3224B088 % 16
    assert StreamLayout("users", 16).stream(3) == "users:{users:3}:stream"
    assert StreamLayout("users", 16).entry(3, "a:b") == "users:{users:3}:e:a:b"


@pytest.mark.parametrize("shards", [0, -1, 1025, 1.5, True, "4", None])
def test_bad_shard_counts(shards: Any) -> None:
    with pytest.raises(ConfigurationError, match="shards"):
        StreamLayout("users", shards)


@pytest.mark.parametrize("prefix", ["", "{users}", "a}b", None])
def test_bad_prefixes(prefix: Any) -> None:
    with pytest.raises(InvalidKey):
        StreamLayout(prefix, 4)


# -- versions, entries, coalescing, owners --------------------------------------------------------


@given(
    st.tuples(st.integers(0, 2**43 - 1), st.integers(0, 2**20 - 1)),
    st.tuples(st.integers(0, 2**43 - 1), st.integers(0, 2**20 - 1)),
)
def test_versions_order_as_stream_ids(a: tuple[int, int], b: tuple[int, int]) -> None:
    va, vb = version_of(f"{a[0]}-{a[1]}"), version_of(f"{b[0]}-{b[1]}".encode())
    assert (va < vb) == (a < b) and (va == vb) == (a == b)
    assert 0 <= va < 2**63


def test_a_huge_sequence_is_clamped_not_wrapped() -> None:
    assert version_of("5-2000000") == version_of(f"5-{2**20 - 1}") < version_of("6-0")


@pytest.mark.parametrize("bad", ["", "12", "a-1", "1-b", "-1", "1--2"])
def test_bad_stream_ids(bad: str) -> None:
    with pytest.raises(ValueError):
        version_of(bad)


def test_writes_are_framed_with_a_token_of_their_own() -> None:
    framed = [frame(b"\x00{}") for _ in range(1000)]
    assert all(unframe(f) == b"\x00{}" for f in framed)
    assert len({f[:TOKEN_SIZE] for f in framed}) == 1000
    assert unframe(b"12345678") is None
    assert unframe(b"") is None


def test_coalescing_keeps_the_last_write_of_each_id_in_stream_order() -> None:
    entries = [
        (b"1-0", {b"i": b"a", b"d": b"a1"}),
        (b"1-1", {b"i": b"b", b"d": b"b1"}),
        (b"2-0", {b"i": b"a", b"d": b"a2"}),
        (b"2-1", {b"x": b"?"}),
        (b"2-2", {b"i": b"", b"d": b"?"}),
        (b"2-3", {b"i": b"\xff", b"d": b"?"}),
        (b"3-0", {b"i": b"a", b"d": b"a3", b"v": b"0-9"}),
    ]
    batch = coalesce(entries)
    assert batch.entries == 7
    assert batch.pending["a"].payload == b"a3"
    assert batch.pending["a"].sids == [b"1-0", b"2-0", b"3-0"]
    assert batch.pending["a"].version == b"0-9", "a replayed entry keeps its version"
    assert batch.pending["b"].version == b"1-1"
    assert [sid for sid, _ in batch.malformed] == [b"2-1", b"2-2", b"2-3"]


def test_every_shard_has_one_owner_and_few_move_when_a_member_joins() -> None:
    members = ["a", "b", "c"]
    owners = {s: owner(s, members) for s in range(64)}
    assert set(owners.values()) == set(members)
    assert owner(5, []) is None
    grown = {s: owner(s, [*members, "d"]) for s in range(64)}
    moved = [s for s in range(64) if grown[s] != owners[s]]
    assert all(grown[s] == "d" for s in moved), "only shards won by the newcomer move"


# -- argument checks --------------------------------------------------------------------------


@pytest.fixture(params=list(FACES), ids=list(FACES))
def face(request: pytest.FixtureRequest) -> Any:
    return FACES[request.param]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("batch_size", 0),
        ("batch_size", -1),
        ("batch_size", 10_001),
        ("batch_size", 1.5),
        ("batch_size", True),
        ("flush_interval", 0),
        ("flush_interval", -1),
        ("flush_interval", float("nan")),
        ("ttl", -1),
        ("ttl", 0),
        ("max_attempts", 0),
        ("max_attempts", -3),
        ("max_backlog", 0),
        ("max_backlog", -5),
        ("max_backlog", "10"),
        ("shards", 0),
        ("shards", -2),
        ("claim_after", 0),
        ("claim_after", -1),
        ("backpressure_timeout", -1),
        ("stop_timeout", -1),
        ("breaker", -1),
        ("id_field", ""),
        ("version_field", ""),
        ("retry_backoff", 3),
    ],
)
def test_bad_options_are_refused_at_construction(face: Any, name: str, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        face.WriteBehind(face.connect(NOWHERE), "wb", Repo(), **{name: bad})


class ReadOnly:
    def find_by_id(self, id: Any) -> None:
        raise AssertionError("not called")


def test_a_repository_without_upsert_many_is_refused(face: Any) -> None:
    with pytest.raises(ConfigurationError, match="upsert_many"):
        face.WriteBehind(face.connect(NOWHERE), "wb", ReadOnly())


def test_the_version_field_cannot_be_the_id(face: Any) -> None:
    with pytest.raises(ConfigurationError, match="version_field"):
        face.WriteBehind(face.connect(NOWHERE), "wb", Repo(), version_field="id")


class Colour(enum.Enum):
    RED = object()


BAD_ENTITIES: list[tuple[Any, type[Exception]]] = [
    ([("id", 1)], InvalidArgument),
    ("id=1", InvalidArgument),
    (None, InvalidArgument),
    ({"name": "no id"}, InvalidArgument),
    ({"id": None}, InvalidKey),
    ({"id": 1.5}, InvalidKey),
    ({"id": ""}, InvalidKey),
    ({"id": True}, InvalidKey),
    ({"id": b"bytes"}, InvalidKey),
    ({"id": ("a",)}, InvalidKey),
    ({"id": "\ud800"}, InvalidKey),
    ({"id": Colour.RED}, InvalidKey),
    ({"id": 1, "when": object()}, SerializationError),
    ({"id": 1, "score": float("nan")}, SerializationError),
    ({"id": 1, "bio": "x" * 2_000_000}, SerializationError),
]


@pytest.mark.parametrize(("entity", "error"), BAD_ENTITIES)
def test_bad_entities_are_refused_before_sending_sync(entity: Any, error: type[Exception]) -> None:
    wb = redkit.WriteBehind(redkit.connect(NOWHERE), "wb", Repo(), max_value_size=1_000_000)
    with pytest.raises(error):
        wb.write(entity)


@pytest.mark.parametrize(("entity", "error"), BAD_ENTITIES)
async def test_bad_entities_are_refused_before_sending_async(
    entity: Any, error: type[Exception]
) -> None:
    wb = redkit.asyncio.WriteBehind(
        redkit.asyncio.connect(NOWHERE), "wb", Repo(), max_value_size=1_000_000
    )
    with pytest.raises(error):
        await wb.write(entity)


@pytest.mark.parametrize("bad_id", ["", None, 1.5, b"bytes", True, ("a",), "\ud800"])
def test_bad_ids_are_refused_by_get(bad_id: Any) -> None:
    wb = redkit.WriteBehind(redkit.connect(NOWHERE), "wb", Repo())
    with pytest.raises(InvalidKey):
        wb.get(bad_id)
