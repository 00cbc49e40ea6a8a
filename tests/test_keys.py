"""Key naming: hash tags that no id can break, companions declared once (no server needed)."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from redkit._core.keys import (
    ADAPTIVE_ENTRY,
    CACHE_ENTRY,
    LIMITER_ENTRY,
    LOCK_ENTRY,
    SESSION_ENTRY,
    Companion,
    KeySpace,
    companion,
    encode_id,
    escape_glob,
    id_text,
)
from redkit.errors import InvalidKey


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 7


def test_keys_put_the_id_in_the_hash_tag() -> None:
    space = KeySpace("user")
    assert space.key(42) == "user:{42}"
    assert space.key("ada") == "user:{ada}"
    assert KeySpace("user", version=3).key("x") == "user:v3:{x}"
    assert companion(space.key(42), Companion.LOCK) == "user:{42}:lock"


@pytest.mark.parametrize("id", ["}x", "a}b", "}", "{", "{}", "x{y}z", "%7D", "%", "a%b}"])
def test_braces_in_ids_cannot_end_the_tag_early(id: str) -> None:
    space = KeySpace("user")
    key = space.key(id)
    tag = key[key.index("{") + 1 : key.index("}")]
    assert tag, f"{key!r} has an empty hash tag"
    assert key.endswith("}")
    for other in space.companions(key):
        assert key_slot(other.encode()) == key_slot(key.encode())


def test_encoding_keeps_distinct_ids_distinct() -> None:
    ids = ["}", "%7D", "%257D", "%", "%25", "a}", "a%7D"]
    assert len({encode_id(i) for i in ids}) == len(ids)


def test_enum_ids_are_keyed_by_their_value() -> None:
    space = KeySpace("p")
    assert space.key(Colour.RED) == space.key("red")
    assert space.key(Size.BIG) == space.key(7)


def test_int_and_str_subclasses_are_keyed_by_their_value() -> None:
    class MyInt(int):
        def __str__(self) -> str:
            return "not the value"

    class MyStr(str):
        def __str__(self) -> str:
            return "not the value"

    assert KeySpace("p").key(MyInt(5)) == "p:{5}"
    assert KeySpace("p").key(MyStr("ab")) == "p:{ab}"


@pytest.mark.parametrize("bad", ["", None, 1.5, b"x", True, False, ["a"], ("a",), Colour])
def test_bad_ids(bad: Any) -> None:
    with pytest.raises(InvalidKey):
        KeySpace("p").key(bad)
    with pytest.raises(InvalidKey):
        KeySpace("p").keys(["ok", bad])


@pytest.mark.parametrize("bad", ["", None, "a{b", "x}", 5])
def test_bad_prefixes(bad: Any) -> None:
    with pytest.raises(InvalidKey):
        KeySpace(bad)


@pytest.mark.parametrize("bad", ["1}", "{2", True, 1.5, b"v"])
def test_bad_versions(bad: Any) -> None:
    with pytest.raises(InvalidKey):
        KeySpace("p", version=bad)


def test_match_escapes_the_prefix_and_covers_companions() -> None:
    assert escape_glob("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"
    assert KeySpace("we*rd").match("u*") == "we\\*rd:{u*}*"
    assert KeySpace("p").match("a}*") == "p:{a%7D*}*"


def test_entry_of_recognises_entries_and_their_kinds_companions_only() -> None:
    space = KeySpace("p")
    entry = space.key("a").encode()
    assert space.entry_of(entry) == entry
    for role in CACHE_ENTRY:
        assert space.entry_of(companion(space.key("a"), role).encode()) == entry
    assert space.entry_of(b"p:{a}:unknown") is None
    for role in LOCK_ENTRY:  # a cache sweep never touches a lock's fencing counter
        assert space.entry_of(companion(space.key("a"), role).encode()) is None
    locks = KeySpace("p", kind=LOCK_ENTRY)
    assert locks.companions(locks.key("a")) == ["p:{a}:fence", "p:{a}:signal", "p:{a}:released"]


def test_every_companion_belongs_to_a_kind() -> None:
    kinds = (CACHE_ENTRY, ADAPTIVE_ENTRY, LOCK_ENTRY, SESSION_ENTRY, LIMITER_ENTRY)
    assert set(Companion) == set().union(*kinds)


@given(st.one_of(st.text(min_size=1), st.integers()))
def test_any_id_gives_one_slot_for_the_entry_and_its_companions(id: str | int) -> None:
    space = KeySpace("prop", version=2, kind=(*ADAPTIVE_ENTRY, *LOCK_ENTRY))
    key = space.key(id)
    slot = key_slot(key.encode())
    assert all(key_slot(c.encode()) == slot for c in space.companions(key))
    assert KeySpace("prop", version=2).entry_of(key.encode()) == key.encode()


@given(st.lists(st.one_of(st.text(min_size=1), st.integers()), unique=True, max_size=20))
def test_distinct_ids_give_distinct_keys(ids: list[str | int]) -> None:
    space = KeySpace("prop")
    texts = {id_text(i) for i in ids}  # 1 and "1" are the same id
    assert len(set(space.keys(ids))) == len(texts)
