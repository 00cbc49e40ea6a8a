"""The codec's edge cases: values a serializer would silently change, bounded decoding, options.

Each test here failed on the codec as it was before issue 6 (NaN stored as null, msgpack tuple
keys written but unreadable, unbounded decompression, raw TypeErrors for bad options).
"""

from __future__ import annotations

import dataclasses
import enum
import subprocess
import sys
import tracemalloc
import zlib
from collections import OrderedDict, namedtuple
from typing import Any

import pytest

from redkit._core.codecs import Codec
from redkit.errors import ConfigurationError, CorruptEntry, SerializationError, ValueTooLarge

NAN, INF = float("nan"), float("inf")


@dataclasses.dataclass
class Reading:
    sensor: str
    value: float


class Level(enum.Enum):
    UNKNOWN = NAN


# -- JSON: no NaN or infinity, no keys that collide once made strings -------------------------


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (NAN, "value"),
        (INF, "value"),
        (-INF, "value"),
        ({"f": INF}, "value['f']"),
        ([1, [2, NAN]], "value[1][1]"),
        ({"a": {"b": (-INF,)}}, "value['a']['b'][0]"),
        (Reading("t1", NAN), "value.value"),
        ([Level.UNKNOWN], "value[0]"),
        ({NAN: 1}, "value"),
    ],
)
def test_json_refuses_nan_and_infinity_naming_where(value: Any, where: str) -> None:
    with pytest.raises(SerializationError, match="JSON") as info:
        Codec().encode(value, key="k")
    assert where in str(info.value)
    assert any(word in str(info.value) for word in ("nan", "inf"))


def test_json_still_stores_nulls_and_the_word_null() -> None:
    codec = Codec()
    value = {"deleted_at": None, "word": "null", "list": [None, 1.5, -0.0]}
    assert codec.decode(codec.encode(value)) == value


@pytest.mark.parametrize(
    "value", [{1: "a", "1": "b"}, [{None: 1, "null": 2}], {True: 1, "true": 0}]
)
def test_json_refuses_keys_that_collide_as_strings(value: Any) -> None:
    with pytest.raises(SerializationError, match="same JSON key"):
        Codec().encode(value)


def test_json_non_string_keys_read_back_as_strings() -> None:
    codec = Codec()
    assert codec.decode(codec.encode({1: "a", 2.5: "b", None: "c"})) == {
        "1": "a",
        "2.5": "b",
        "null": "c",
    }


# -- msgpack: only values that read back ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({(1, 2): "x"}, "value"),
        ({"a": [{"b": {(1,): 2}}]}, "value['a'][0]['b']"),
        ([namedtuple("P", "x y")(1, 2), {namedtuple("Q", "z")(3): 1}], "value[1]"),
    ],
)
def test_msgpack_refuses_map_keys_that_cannot_be_read_back(value: Any, where: str) -> None:
    with pytest.raises(SerializationError, match="msgpack") as info:
        Codec("msgpack").encode(value)
    assert where in str(info.value) and "key" in str(info.value)


def test_msgpack_documented_normalisations() -> None:
    class Colour(enum.IntEnum):
        RED = 1

    codec = Codec("msgpack")
    value = OrderedDict(t=(1, (2, 3)), e=Colour.RED, b=bytearray(b"x"), k={1: 2, 2.5: None})
    assert codec.decode(codec.encode(value)) == {
        "t": [1, [2, 3]],
        "e": 1,
        "b": b"x",
        "k": {1: 2, 2.5: None},
    }


def test_msgpack_is_imported_only_when_chosen() -> None:
    code = (
        "import sys, redkit, redkit.asyncio\n"
        "redkit.Codec(); redkit.Codec('pickle')\n"
        "assert 'msgpack' not in sys.modules, 'msgpack imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_msgpack_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # makes `import msgpack` fail
    with pytest.raises(ConfigurationError, match=r"pip install 'redkit\[msgpack\]'"):
        Codec("msgpack")


def test_raw_refuses_strings_that_are_not_utf8() -> None:
    with pytest.raises(SerializationError, match="UTF-8"):
        Codec("raw").encode("\ud800")


# -- decoding is bounded by max_value_size -----------------------------------------------------


def _bomb(size: int) -> bytes:
    """A compressed JSON string entry that inflates to ``size`` bytes."""
    stream = zlib.compressobj(9)
    chunk = b"a" * (1 << 20)
    parts = [stream.compress(b'"')]
    for _ in range(size // len(chunk)):
        parts.append(stream.compress(chunk))
    parts.append(stream.compress(b'"') + stream.flush())
    return b"\x01" + b"".join(parts)


@pytest.mark.parametrize("with_delta", [False, True])
def test_a_compressed_entry_cannot_inflate_beyond_max_value_size(with_delta: bool) -> None:
    bomb = _bomb(64 << 20)
    if with_delta:
        bomb = b"\x05\x00\x00\x00\x10" + bomb[1:]
    assert len(bomb) < 100_000
    codec = Codec(max_value_size=1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptEntry, match="max_value_size"):
            codec.decode(bomb, "k")
        with pytest.raises(CorruptEntry, match="max_value_size"):
            codec.decode_entry(bomb, "k")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 << 20, f"decoding used {peak} bytes"


@pytest.mark.parametrize("header", [b"\x00", b"\x04\x00\x00\x00\x01"])
def test_a_plain_entry_above_max_value_size_is_corrupt(header: bytes) -> None:
    data = header + b'"' + b"a" * 200 + b'"'
    with pytest.raises(CorruptEntry, match="max_value_size"):
        Codec(max_value_size=100).decode(data, "k")
    assert Codec(max_value_size=len(data)).decode(data) == "a" * 200


@pytest.mark.parametrize("threshold", [None, 0])
def test_an_entry_exactly_at_the_limit_round_trips(threshold: int | None) -> None:
    value = "a" * 1000  # 1002 bytes of JSON: 1003 stored plain, 1007 with a compute time
    codec = Codec(compress_threshold=threshold, max_value_size=1003)
    assert codec.decode(codec.encode(value)) == value
    with pytest.raises(ValueTooLarge):
        codec.encode(value, delta_ms=7)
    codec = Codec(compress_threshold=threshold, max_value_size=1007)
    assert codec.decode_entry(codec.encode(value, delta_ms=7)) == (value, 7)


def test_max_value_size_bounds_the_value_before_compression() -> None:
    # What is written must be readable: the inflated size is what decoding bounds.
    with pytest.raises(ValueTooLarge) as info:
        Codec(compress_threshold=10, max_value_size=100).encode("a" * 500, key="k")
    assert (info.value.size, info.value.limit) == (503, 100)


@pytest.mark.parametrize(
    "data",
    [b"\x01" + zlib.compress(b'"abc"')[:-3], b"\x01" + zlib.compress(b'"abc"') + b"tail"],
)
def test_truncated_or_trailing_compressed_data_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptEntry):
        Codec().decode(data)


def test_incompressible_values_are_stored_plain() -> None:
    codec = Codec(compress_threshold=0)
    assert codec.encode("x")[0] == 0
    assert codec.encode("x" * 100)[0] == 1


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "bad"),
    [
        (option, bad)
        for option in ("compress_threshold", "max_value_size", "compress_level")
        for bad in ("5", 5.0, True, False, -1, [5])
    ]
    + [("max_value_size", 0), ("compress_level", 10), ("compress_level", None)],
)
def test_bad_codec_options_name_the_option(option: str, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=option) as info:
        Codec(**{option: bad})
    assert repr(bad) in str(info.value)


def test_good_codec_options() -> None:
    codec = Codec(compress_threshold=0, max_value_size=1, compress_level=0)
    assert (codec.compress_threshold, codec.max_value_size, codec.compress_level) == (0, 1, 0)
    assert Codec(compress_threshold=None, max_value_size=None).max_value_size is None
