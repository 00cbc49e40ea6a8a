"""The I/O-free core: codecs, TTL validation, the script registry (keys: test_keys.py)."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from redkit._core.codecs import NEGATIVE, Codec
from redkit._core.ttl import seconds_to_ms
from redkit._scripts import all_scripts
from redkit.errors import (
    ConfigurationError,
    CorruptEntry,
    SerializationError,
    ValueTooLarge,
)


@pytest.mark.parametrize("serializer", ["json", "msgpack", "pickle"])
@pytest.mark.parametrize("value", [0, "", [], {}, False, {"a": [1, 2.5, "x"]}, "é" * 3000])
def test_codec_round_trips(serializer: Any, value: Any) -> None:
    for codec in (Codec(serializer), Codec(serializer, compress_threshold=10)):
        assert codec.decode(codec.encode(value)) == value
        assert codec.decode_entry(codec.encode(value, delta_ms=250)) == (value, 250)


def test_codec_negative_entries() -> None:
    codec = Codec()
    assert codec.decode(codec.encode(None)) is NEGATIVE


def test_compression_applies_above_the_threshold_only() -> None:
    codec = Codec(compress_threshold=100)
    small, big = codec.encode("x"), codec.encode("y" * 1000)
    assert small[0] == 0 and big[0] == 1
    assert len(big) < 100
    assert zlib.decompress(big[1:]) == b'"' + b"y" * 1000 + b'"'


@pytest.mark.parametrize(
    "data", [b"", b"\x00{", b"\x01not zlib", b"\x08", b"\x04\x00", b"\xff\x00\x00"]
)
def test_corrupt_bytes_raise_corrupt_entry(data: bytes) -> None:
    with pytest.raises(CorruptEntry):
        Codec().decode(data, "k")


def test_serialization_errors_name_the_type() -> None:
    with pytest.raises(SerializationError, match="set"):
        Codec().encode({"a": {1}})
    with pytest.raises(SerializationError, match="complex"):
        Codec("msgpack").encode(1j)
    with pytest.raises(ValueTooLarge) as info:
        Codec(max_value_size=10).encode("x" * 20, key="k")
    assert (info.value.size, info.value.limit, info.value.key) == (23, 10, "k")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"serializer": "yaml"},
        {"compress_threshold": -1},
        {"max_value_size": 0},
        {"compress_level": 12},
    ],
)
def test_codec_configuration_errors(kwargs: Any) -> None:
    with pytest.raises(ConfigurationError):
        Codec(**kwargs)


def test_ttls() -> None:
    assert seconds_to_ms(1.5) == 1500
    assert seconds_to_ms(0.0001) == 1
    for bad in (0, -1, float("inf"), float("nan"), "1", None, True):
        with pytest.raises(ConfigurationError):
            seconds_to_ms(bad)  # type: ignore[arg-type]


def test_every_script_has_a_contract_header() -> None:
    scripts = all_scripts()
    assert len(scripts) >= 5
    for script in scripts:
        lines = script.source.splitlines()
        if lines[0].startswith("#!lua"):  # flags (e.g. allow-oom) must come first
            lines = lines[1:]
        header = "\n".join(line for line in lines if line.startswith("--"))
        body = "\n".join(line for line in lines if not line.startswith("--"))
        assert lines[0].startswith(f"-- {script.name}:"), script.name
        assert "KEYS[1]" in header and "Returns" in header, script.name
        if "ARGV" in body:
            assert "ARGV[1]" in header, script.name
        assert "'KEYS'" not in body.upper().replace("KEYS[", ""), script.name


def test_both_faces_export_the_same_names() -> None:
    import redkit
    import redkit.asyncio

    assert set(redkit.__all__) - {"__version__"} == set(redkit.asyncio.__all__)
    for name in redkit.asyncio.__all__:
        sync_obj, async_obj = getattr(redkit, name), getattr(redkit.asyncio, name)
        assert sync_obj is not None and async_obj is not None
        if name in ("CacheAside", "WriteThrough", "connect", "cached"):
            assert sync_obj is not async_obj, f"{name} must differ between the faces"
