"""Property-based tests of the codec, for every serializer, with and without compression and a
recorded compute time (XFetch delta).

* Any value either reads back exactly as the serializer's documented normalisation says
  (:func:`expected`), or is refused on write with SerializationError (a TypeError), or with
  ValueTooLarge when it is above ``max_value_size``: never stored changed.
* Any bytes either decode or raise CorruptEntry, never another exception, and decoding never
  inflates beyond ``max_value_size``: hostile entries cost memory in proportion to the limit.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import operator
import tracemalloc
import zlib
from collections import namedtuple
from datetime import UTC
from functools import cache
from typing import Any
from uuid import UUID

import msgpack
import orjson
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from redkit._core.codecs import NEGATIVE, Codec
from redkit.errors import ConfigurationError, CorruptEntry, SerializationError, ValueTooLarge

Point = namedtuple("Point", "x y")


@dataclasses.dataclass(frozen=True)
class Item:
    name: str
    qty: int


class Colour(enum.Enum):
    RED = 1


class Refused(Exception):
    """The model says: this serializer must refuse the value."""


NAN, INF = float("nan"), float("inf")
SURROGATES = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
# Values some serializer once stored changed: drawn often, so modest example counts meet them.
TRICKY = st.sampled_from(
    [NAN, INF, -INF, -0.0, 2**64, 2**64 - 1, -(2**63) - 1, "\ud800", "null", (1, 2), b"", "",
     {(1, 2): "x"}, {1: "a", "1": "b"}, {None: 1, "null": 2}, {NAN: 1}, {"f": INF}, [None, NAN],
     Point(1, (2,)), {1.5: None, True: 0}]
)  # fmt: skip
SCALARS = st.one_of(
    TRICKY,
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(),
    st.text(max_size=10),
    st.text(max_size=3000),
    SURROGATES,
    st.binary(max_size=10),
    st.datetimes(timezones=st.sampled_from([None, UTC])),
    st.uuids(),
    st.decimals(allow_nan=False),
    st.just(Colour.RED),
    st.builds(Item, st.text(max_size=3), st.integers(-3, 3)),
)
KEYS = st.one_of(
    st.text(max_size=4),
    st.sampled_from(["1", "true", "null", "1.5", "-0.0"]),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.none(),
    st.booleans(),
    st.tuples(st.integers(0, 2)),
    st.binary(max_size=2),
)
VALUES = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.lists(kids, max_size=4).map(tuple)
        | st.dictionaries(KEYS, kids, max_size=4)
        | st.builds(Point, kids, kids)
        | st.frozensets(st.integers() | st.text(max_size=3), max_size=3)
    ),
    max_leaves=12,
)

# Tricky values nested in one another, drawn often enough that modest example counts meet each.
TRICKY_TREES = st.recursive(
    TRICKY,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=2), kids, max_size=3)
    ),
    max_leaves=4,
)
# Long and repetitive: compression pays, and the sizes straddle max_value_size.
COMPRESSIBLE = st.one_of(
    st.builds(operator.mul, st.sampled_from(["a", "ab", b"z"]), st.integers(0, 3000)),
    st.lists(st.sampled_from(["spam", 1, None, (2.5,)]), max_size=600),
)

INT_RANGE = range(-(2**63), 2**64)


def _utf8(text: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise Refused from None
    return text


def json_model(value: Any) -> Any:
    """What JSON reads back: tuples as lists, keys as strings, datetimes as ISO strings, ..."""
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is int:
        if value not in INT_RANGE:
            raise Refused
        return value
    if kind is float:
        if not math.isfinite(value):
            raise Refused
        return value
    if kind is str:
        return _utf8(value)
    if kind in (list, tuple):
        return [json_model(item) for item in value]
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            text = _json_key(key)
            if text in out:
                raise Refused  # two keys that become one
            out[text] = json_model(item)
        return out
    if kind is Item:
        return {"name": json_model(value.name), "qty": value.qty}
    if kind is Colour:
        return value.value
    if kind is UUID:
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise Refused  # bytes, Decimal, frozenset, namedtuple


def _json_key(key: Any) -> str:
    if type(key) is str:
        return _utf8(key)
    if key is None or type(key) is bool:
        return orjson.dumps(key).decode()
    if type(key) is int:
        return str(key)
    if type(key) is float:
        if not math.isfinite(key):
            raise Refused
        return orjson.dumps(key).decode()  # orjson's shortest exact form, e.g. "1e+16"
    raise Refused  # tuple, bytes


def msgpack_model(value: Any) -> Any:
    """What msgpack reads back: tuples (and namedtuples) as lists, maps keep their key types."""
    kind = type(value)
    if value is None or kind in (bool, float, bytes):
        return value
    if kind is int:
        if value not in INT_RANGE:
            raise Refused
        return value
    if kind is str:
        return _utf8(value)
    if kind in (list, tuple, Point):
        return [msgpack_model(item) for item in value]
    if kind is dict:
        if any(type(key) is tuple for key in value):
            raise Refused  # would read back as an unhashable list
        return {msgpack_model(key): msgpack_model(item) for key, item in value.items()}
    raise Refused  # datetime, UUID, Decimal, Enum, dataclass, frozenset


def raw_model(value: Any) -> Any:
    if type(value) is bytes:
        return value
    if type(value) is str:
        return _utf8(value)
    raise Refused


MODELS = {"json": json_model, "msgpack": msgpack_model, "raw": raw_model, "pickle": lambda v: v}


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down; NaN equals NaN, -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):  # pairwise, as NaN keys are never == one another
        rest = list(b.items())
        for pair in a.items():
            match = next((other for other in rest if all(map(same, pair, other))), None)
            if match is None:
                return False
            rest.remove(match)
        return not rest
    return bool(a == b)


@pytest.mark.parametrize("serializer", sorted(MODELS))
@given(
    threshold=st.sampled_from([None, 0, 64]),
    delta=st.none() | st.integers(-5, 2**33),
    limit=st.none() | st.integers(1, 4096),
    value=st.one_of(TRICKY, TRICKY_TREES, VALUES, COMPRESSIBLE, st.text(max_size=3000))
    | st.one_of(st.binary(max_size=3000), SURROGATES),
)
def test_a_value_reads_back_as_documented_or_is_refused(
    serializer: str, threshold: int | None, delta: int | None, limit: int | None, value: Any
) -> None:
    codec = Codec(serializer, compress_threshold=threshold, max_value_size=limit)  # type: ignore[arg-type]
    if value is None:
        assert codec.decode(codec.encode(value, delta_ms=delta)) is NEGATIVE
        return
    try:
        want = MODELS[serializer](value)
    except Refused:
        want = Refused
    try:
        data = codec.encode(value, delta_ms=delta)
    except ValueTooLarge as exc:
        event(f"{serializer}: too large")
        assert want is not Refused, "a value the serializer must refuse was serialised"
        assert limit is not None and exc.size > limit
        return
    except SerializationError as exc:
        event(f"{serializer}: refused")
        assert isinstance(exc, TypeError)
        assert want is Refused, f"refused a value that reads back: {exc}"
        return
    event(f"{serializer}: stored" + (" compressed" if data[0] & 1 else ""))
    assert want is not Refused, "stored a value that does not read back as written"
    assert limit is None or len(data) <= limit
    got, got_delta = codec.decode_entry(data)
    assert same(got, want), (got, want)
    assert got_delta == (0 if delta is None else min(max(delta, 0), 2**32 - 1))
    assert same(codec.decode(data), want)


@cache
def bomb(size: int, body: bytes) -> bytes:
    """A zlib stream inflating to a JSON document of about ``size`` bytes."""
    stream = zlib.compressobj(9)
    parts = [stream.compress(b"[" if body == b"0," else b'"')]
    parts += [stream.compress(body * (size // len(body)))]
    parts.append(stream.compress(b"0]" if body == b"0," else b'"') + stream.flush())
    return b"".join(parts)


DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=3), kids, max_size=5)
    ),
    max_leaves=30,
)
BODIES = st.one_of(
    st.binary(max_size=5000),
    DOCUMENTS.map(lambda v: orjson.dumps(v, default=str)),
    DOCUMENTS.map(lambda v: msgpack.packb(v, use_bin_type=True, default=str)),
    st.tuples(st.sampled_from([b"b", b"s"]), st.binary(max_size=300)).map(b"".join),
)
BOMBS = st.builds(
    bomb, st.sampled_from([100, 5000, 1 << 20, 2 << 20]), st.sampled_from([b"a", b"0,"])
)


@st.composite
def entries(draw: st.DrawFn) -> bytes:
    """Bytes as found under a key: mostly well-framed entries with a hostile payload."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=5000))  # anything at all
    tag = draw(st.sampled_from([0x00, 0x01, 0x01, 0x04, 0x05, 0x05, 0x02, 0x08, 0xFF]))
    delta = draw(st.binary(min_size=4, max_size=4)) if tag & 0x04 else b""
    if tag & 0x01:
        payload = draw(BOMBS | BODIES.map(zlib.compress) | st.binary(max_size=100))
    else:
        payload = draw(BODIES)
    cut = draw(st.none() | st.integers(0, 8))  # sometimes cut short
    data = bytes((tag,)) + delta + payload
    return data if cut is None else data[: len(data) - cut]


@pytest.mark.parametrize("serializer", ["json", "msgpack", "raw"])
@given(limit=st.integers(1, 64) | st.integers(1, 4096), data=entries())
def test_any_bytes_decode_or_raise_corrupt_entry_within_bounded_memory(
    serializer: str, limit: int, data: bytes
) -> None:
    # pickle is left out on purpose: unpickling bytes someone else wrote runs code and can
    # allocate without bound (a LONG_BINPUT memo index grows the memo to 2**32 slots); the
    # codec's docstring says never to use it for data another party can write.
    codec = Codec(serializer, max_value_size=limit)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        for decode in (codec.decode, codec.decode_entry):
            try:
                decode(data, "k")
            except CorruptEntry:
                event("corrupt")
            else:
                event("decoded")
                # Only a negative entry (one header byte says it all) may be above the limit.
                assert len(data) <= limit or data[0] == 0x02, "decoded an entry above the limit"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A decoded object may take some tens of bytes per input byte (an empty list per byte of
    # msgpack); an inflated bomb would take its full size.
    assert peak < 100 * limit + (256 << 10), f"decoding {len(data)} bytes took {peak} bytes"


@given(
    limit=st.integers(1, 1 << 16),
    size=st.integers(0, 1 << 16) | st.integers(0, 1 << 21),
    with_delta=st.booleans(),
)
def test_a_compressed_entry_decodes_only_when_it_fits(
    limit: int, size: int, with_delta: bool
) -> None:
    head = b"\x05\x00\x00\x00\x09" if with_delta else b"\x01"
    entry = head + zlib.compress(b'"' + b"a" * size + b'"', 9)
    fits = len(entry) <= limit and len(head) + size + 2 <= limit
    codec = Codec(max_value_size=limit)
    got: Any = None
    tracemalloc.start()
    try:
        try:
            got = codec.decode_entry(entry)
        except CorruptEntry as exc:
            got = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if fits:
        assert got == ("a" * size, 9 if with_delta else 0)
    else:
        assert isinstance(got, CorruptEntry) and "max_value_size" in str(got)
    # Memory follows the limit, never the inflated size: orjson's parser takes about 13 bytes
    # per input byte while it works, zlib a fixed 32 KB window and some state.
    assert peak < 16 * limit + (256 << 10), f"{peak} bytes to decode {len(entry)} ({size} inflated)"


@pytest.mark.parametrize("serializer", ["json", "msgpack", "raw", "pickle"])
@pytest.mark.parametrize("threshold", [None, 0])
def test_every_truncation_of_an_entry_is_corrupt(serializer: str, threshold: int | None) -> None:
    codec = Codec(serializer, compress_threshold=threshold)  # type: ignore[arg-type]
    value = "value " * 20 if serializer == "raw" else {"a": [1, 2.5, "text " * 20]}
    entry = codec.encode(value, delta_ms=3)
    assert entry[0] & 0x01 == (threshold is not None)
    for cut in range(len(entry)):
        if serializer == "raw" and threshold is None and cut > 5:
            assert codec.decode_entry(entry[:cut]) == (value[: cut - 6], 3)  # raw has no framing
            continue
        with pytest.raises(CorruptEntry):
            codec.decode_entry(entry[:cut])


@pytest.mark.parametrize("option", ["compress_threshold", "max_value_size", "compress_level"])
@given(
    value=st.one_of(st.integers(-3, 12), st.floats(), st.booleans(), st.none(), st.text(max_size=2))
)
def test_an_option_is_an_int_in_range_or_a_configuration_error(option: str, value: Any) -> None:
    low, high = {"compress_threshold": (0, None), "max_value_size": (1, None)}.get(option, (0, 9))
    valid = type(value) is int and value >= low and (high is None or value <= high)
    if value is None and option != "compress_level":
        valid = True  # None: no compression, no size limit
    try:
        codec = Codec(**{option: value})
    except ConfigurationError as exc:
        assert not valid and option in str(exc) and repr(value) in str(exc)
    else:
        assert valid and getattr(codec, option) == value
