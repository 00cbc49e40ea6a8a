"""Call keys for ``@cached``: distinct arguments give distinct keys, equal arguments the same key.

The pairs below collided under the old key (a digest of the arguments' JSON): ``f(nan)`` and
``f(inf)`` were ``f(None)``, ``f(datetime)`` and ``f(UUID)`` were the calls with their strings.
The hypothesis tests compare ``call_key`` with an independent statement of the documented
equality (:func:`reference`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import struct
import subprocess
import sys
from collections import Counter, namedtuple
from collections.abc import Hashable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redkit._core.callkeys import call_key
from redkit.errors import SerializationError

NAN, INF = float("nan"), float("inf")
OTHER_NAN = struct.unpack(">d", b"\xff\xf8\x00\x00\x00\x00\x00\x01")[0]
MOMENT = datetime(2024, 5, 17, 12, 30)
ID = UUID("12345678-1234-5678-1234-567812345678")
Point = namedtuple("Point", "x y")


class Colour(enum.Enum):
    RED = "red"
    CRIMSON = "red"  # an alias: the same member as RED


class Size(enum.IntEnum):
    ONE = 1


class Mode(enum.StrEnum):
    READ = "r"


@dataclasses.dataclass(frozen=True)
class Query:
    text: str
    limit: int = 10


def short(value: Any) -> str:
    """A test id: the start of the repr (which a 5000-digit int does not have); sets by
    their sorted reprs, so the id does not depend on hash randomisation (pytest-xdist's
    workers must collect the same ids)."""
    if type(value) is int:
        return f"int{value.bit_length()}"
    if isinstance(value, set | frozenset):
        return f"{type(value).__name__}({sorted(map(short, value))})"[:30]
    return repr(value)[:30]


def key(*args: Any, **kwargs: Any) -> str:
    return call_key("mod.f", args, kwargs)


# -- examples --------------------------------------------------------------------------------------

DISTINCT = [
    (NAN, None),
    (INF, None),
    (-INF, None),
    (NAN, INF),
    (INF, -INF),
    (NAN, "nan"),
    (-0.0, 0.0),
    (1, 1.0),
    (1, True),
    (0, False),
    (1, "1"),
    (None, "None"),
    (None, "null"),
    (MOMENT, MOMENT.isoformat()),
    (MOMENT, MOMENT.replace(tzinfo=UTC)),
    (MOMENT.replace(tzinfo=UTC), MOMENT.replace(tzinfo=ZoneInfo("UTC"))),
    (MOMENT, MOMENT.replace(fold=1)),
    (
        datetime(2024, 1, 1, 12, tzinfo=UTC),
        datetime(2024, 1, 1, 13, tzinfo=timezone(timedelta(hours=1))),
    ),
    (
        datetime(2024, 1, 1, 12, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2024, 1, 1, 12, tzinfo=ZoneInfo("Europe/Berlin")),
    ),
    (date(2024, 5, 17), datetime(2024, 5, 17)),
    (date(2024, 5, 17), "2024-05-17"),
    (time(12, 30), "12:30:00"),
    (timedelta(seconds=1), 1),
    (ID, str(ID)),
    (ID, ID.hex),
    ((1, 2), [1, 2]),
    ([], ()),
    (set(), frozenset()),
    ({}, []),
    ({"a": 1}, [["a", 1]]),
    (b"x", "x"),
    (b"x", bytearray(b"x")),
    (Decimal("1"), 1),
    (Decimal("1.0"), Decimal("1.00")),
    (Decimal("1.5"), 1.5),
    (Decimal("NaN"), NAN),
    (Decimal("NaN"), Decimal("sNaN")),
    (Decimal("0"), Decimal("-0")),
    (Fraction(1, 2), 0.5),
    (complex(1, 0), 1.0),
    (Colour.RED, "red"),
    (Size.ONE, 1),
    (Mode.READ, "r"),
    (Point(1, 2), (1, 2)),
    (Query("a"), {"text": "a", "limit": 10}),
    (Query("a"), Query("a", 11)),
    (2**64, 2**64 + 1),
    (2**64, str(2**64)),
    (-(2**63) - 1, str(-(2**63) - 1)),
    ("\ud800", "\ud801"),
    ({1: "a"}, {"1": "a"}),
    ({(1, 2): 0}, {(1, 2.0): 0}),
]


@pytest.mark.parametrize(("a", "b"), DISTINCT, ids=short)
def test_distinct_arguments_give_distinct_keys(a: Any, b: Any) -> None:
    assert key(a) != key(b)
    assert key(x=a) != key(x=b)
    assert key([a]) != key([b])
    assert key({"k": a}) != key({"k": b})


EQUAL = [
    (NAN, OTHER_NAN),
    (-NAN, NAN),
    (float("1e308") * 10, INF),
    (0.1 + 0.2, 0.30000000000000004),
    (Colour.RED, Colour.CRIMSON),
    (Colour.RED, Colour("red")),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ({1, "a", 2.5, b"z"}, {b"z", 2.5, "a", 1}),
    (frozenset({(1, 2), (3,)}), frozenset({(3,), (1, 2)})),
    ({"s": {1, 2}, 3: [NAN]}, {3: [OTHER_NAN], "s": {2, 1}}),
    (Decimal("1.50"), Decimal("1.50")),
    (
        datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Paris")),
    ),
    (Query("a"), Query("a", 10)),
    (Point(1, [2]), Point(1, [2])),
    (2**70, 2**70),
    (10**5000, 10**5000),
]


@pytest.mark.parametrize(("a", "b"), EQUAL, ids=short)
def test_equal_arguments_give_the_same_key(a: Any, b: Any) -> None:
    assert key(a) == key(b)


def test_keyword_order_does_not_matter_but_spelling_does() -> None:
    assert key(1, a=2, b=3) == key(1, b=3, a=2)
    assert key(1, 2) != key(1, b=2)  # documented: keyword and positional spellings differ
    assert key(1, 2) != key((1, 2))
    assert key() != key(None)


def test_the_key_names_the_function_and_is_short() -> None:
    k = key("x" * 10_000, list(range(1000)))
    assert k.startswith("mod.f:") and len(k) == len("mod.f:") + 24
    assert call_key("mod.g", (1,), {}) != key(1)


def test_plain_calls_keep_their_keys_from_before() -> None:
    # Calls with only str/int/bool/None/finite float arguments hash the same bytes as before.
    assert key(42) == "mod.f:8d793b3ea67c95d81db00170"
    assert key("user-42", 3, lang="en", active=True, x=None) == "mod.f:231eecb13ec0d329622932da"
    assert key("a", 2.5, None, -0.0, r=1e300) == "mod.f:03f3d21bb619e6274b9bebb6"


def test_keys_are_stable_across_processes_and_hash_seeds() -> None:
    code = (
        "from redkit._core.callkeys import call_key\n"
        "from datetime import datetime\n"
        "args = ({'a', 'b', 'c', 'd', 'e'}, frozenset({'x', 1, (2, 'y')}), {'q': 1, 'p': 2},"
        " 1.5, datetime(2024, 1, 1))\n"
        "print(call_key('mod.f', args, {'z': {'m', 'n', 'o'}}))\n"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(keys) == 1, keys


class Opaque:
    pass


class Name(str):
    pass


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ((Opaque(),), {}, "args[0]"),
        ((1, [2, {"k": Opaque()}]), {}, "args[1][1]['k']"),
        ((), {"when": {Opaque()}}, "kwargs['when']"),
        ((Name("x"),), {}, "args[0]"),
        ((lambda: 1,), {}, "args[0]"),
        (({1: Query(Opaque())},), {}, "args[0][1].text"),  # type: ignore[arg-type]
    ],
)
def test_unsupported_arguments_ask_for_key(args: Any, kwargs: Any, where: str) -> None:
    with pytest.raises(SerializationError, match=r"key=") as info:
        call_key("mod.f", args, kwargs)
    assert where in str(info.value) and "mod.f" in str(info.value)


def test_self_containing_arguments_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="key="):
        key(loop)


# -- properties ------------------------------------------------------------------------------------


def reference(value: Any) -> Hashable:
    """The documented equality, stated independently of the implementation."""
    kind = type(value)
    if kind is float:
        return ("float", "nan" if math.isnan(value) else struct.pack(">d", value))
    if kind is complex:
        return ("complex", reference(value.real), reference(value.imag))
    if kind is Decimal:
        return ("decimal", value.as_tuple())
    if kind in (datetime, time):
        tz = value.tzinfo
        zone = None
        if tz is not None:
            at = value if kind is datetime else None
            zone = (
                type(tz).__qualname__,
                getattr(tz, "key", None),
                tz.utcoffset(at),
                tz.tzname(at),
            )
        fields = [getattr(value, f) for f in ("hour", "minute", "second", "microsecond", "fold")]
        if kind is datetime:
            fields += [value.year, value.month, value.day]
        return (kind.__name__, tuple(fields), zone)
    if kind in (tuple, list):
        return (kind.__name__, tuple(map(reference, value)))
    if kind is dict:
        pairs = Counter((reference(k), reference(v)) for k, v in value.items())
        return ("dict", frozenset(pairs.items()))
    if kind in (set, frozenset):
        return (kind.__name__, frozenset(Counter(map(reference, value)).items()))
    if isinstance(value, enum.Enum):
        return ("enum", kind.__qualname__, value.name)
    if kind is Point:
        return ("Point", tuple(map(reference, value)))
    if kind is Query:
        return ("Query", reference(value.text), reference(value.limit))
    return (kind.__name__, value)


CONFUSABLES = st.sampled_from(
    [0, 0.0, -0.0, False, "0", b"0", None, "None", "null", 1, 1.0, True, "1", Decimal("1"),
     Decimal("1.0"), Decimal("NaN"), Decimal("-0"), Fraction(1), complex(1, 0), NAN,
     OTHER_NAN, INF, -INF, "nan", "inf",
     MOMENT, MOMENT.isoformat(), MOMENT.date(), MOMENT.time(), timedelta(0), ID, str(ID),
     Colour.RED, "red", Size.ONE, Mode.READ, "r", Point(1, 2), Query("a"), 2**64, "", b""]
)  # fmt: skip
ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=1)), ZoneInfo("UTC")])
SCALARS = st.one_of(
    CONFUSABLES,
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**66),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.decimals(allow_nan=False, places=None),
    st.fractions(max_denominator=9),
    st.complex_numbers(),
    st.datetimes(timezones=ZONES, allow_imaginary=False),
    st.dates(),
    st.times(timezones=ZONES),
    st.timedeltas(),
    st.uuids(),
    st.sampled_from(list(Colour) + list(Size) + list(Mode)),
)


def _hashables(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda kids: (
            st.lists(kids, max_size=3).map(tuple)
            | st.frozensets(kids, max_size=3)
            | st.builds(Point, kids, kids)
        ),
        max_leaves=6,
    )


HASHABLES = _hashables(SCALARS)
ARGS = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.lists(kids, max_size=3).map(tuple)
        | st.dictionaries(HASHABLES, kids, max_size=3)
        | st.sets(HASHABLES, max_size=3)
        | st.frozensets(HASHABLES, max_size=3)
        | st.builds(Point, kids, kids)
        | st.builds(Query, st.text(max_size=3), st.integers())
    ),
    max_leaves=10,
)
CALLS = st.tuples(
    st.lists(ARGS, max_size=3).map(tuple),
    st.dictionaries(st.sampled_from(["a", "b", "x"]), ARGS, max_size=2),
)


def call_reference(call: tuple[tuple[Any, ...], dict[str, Any]]) -> Hashable:
    args, kwargs = call
    return (tuple(map(reference, args)), frozenset((k, reference(v)) for k, v in kwargs.items()))


@given(CALLS, CALLS)
def test_keys_agree_with_the_documented_equality(a: Any, b: Any) -> None:
    same = call_reference(a) == call_reference(b)
    assert (call_key("mod.f", *a) == call_key("mod.f", *b)) is same


def clone(value: Any) -> Any:
    """An equal copy built anew: other objects, other insertion orders, other NaNs."""
    kind = type(value)
    if kind is float:
        bits = struct.pack(">d", OTHER_NAN if math.isnan(value) else value)
        return struct.unpack(">d", bits)[0]  # a new float object, another NaN
    if kind in (list, tuple):
        return kind(map(clone, value))
    if kind is dict:
        return {clone(k): clone(v) for k, v in reversed(list(value.items()))}
    if kind in (set, frozenset):
        return kind(map(clone, reversed(list(value))))
    if kind is Point:
        return Point(*map(clone, value))
    if kind is Query:
        return Query(clone(value.text), value.limit)
    if kind is str:
        return "".join(reversed(value[::-1]))
    return value


@given(CALLS)
def test_an_equal_call_built_anew_gets_the_same_key(call: Any) -> None:
    args, kwargs = call
    again = (clone(args), {k: clone(kwargs[k]) for k in reversed(list(kwargs))})
    assert call_reference(again) == call_reference(call)
    assert call_key("mod.f", *again) == call_key("mod.f", *call)


@given(ARGS, ARGS)
def test_nesting_keeps_keys_apart(a: Any, b: Any) -> None:
    if reference(a) != reference(b):
        assert key([a]) != key([b]) and key(x={"k": (a,)}) != key(x={"k": (b,)})
        assert key(a, b) != key(b, a)
