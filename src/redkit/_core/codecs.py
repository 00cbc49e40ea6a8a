"""Turning values into the bytes stored in Redis and back.

An entry is one header byte followed by the payload. The header says how to read the rest:

* ``0x00`` plain serializer bytes
* ``0x01`` zlib-compressed serializer bytes
* ``0x02`` a negative entry: the source said "no such thing" (``None``)
* ``0x04`` flag: a 4-byte big-endian compute time in milliseconds (for early refresh)
  follows the header, before the payload

Serializers: JSON via orjson (default), msgpack, raw bytes/str, and pickle — pickle only when
chosen by name, and never for data that another party can write to Redis (unpickling runs code).
"""

from __future__ import annotations

import pickle
import struct
import zlib
from typing import Any, Final, Literal, Protocol

import msgpack
import orjson

from redkit.errors import ConfigurationError, CorruptEntry, SerializationError, ValueTooLarge

PLAIN: Final = 0x00
COMPRESSED: Final = 0x01
NEGATIVE_TAG: Final = 0x02
HAS_DELTA: Final = 0x04

DEFAULT_MAX_VALUE_SIZE: Final = 8 * 1024 * 1024


class _Negative:
    """The decoded form of a negative entry (a cached ``None``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEGATIVE"


NEGATIVE: Final = _Negative()


class Serializer(Protocol):
    """Encodes values to bytes and back; ``dumps`` raises SerializationError for bad values."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


def _reject(value: Any) -> Any:
    raise TypeError(type(value).__name__)


class JsonSerializer:
    """JSON via orjson: dicts, lists, str, numbers, bool, None, datetimes, dataclasses, UUIDs."""

    name = "json"
    loads = staticmethod(orjson.loads)

    def dumps(self, value: Any) -> bytes:
        try:
            return orjson.dumps(value, default=_reject, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            raise SerializationError(
                f"cannot serialise a value of type {_offender(exc, value)} as JSON"
            ) from exc


class MsgpackSerializer:
    """MessagePack: compact binary; dicts, lists, str, bytes, numbers, bool, None."""

    name = "msgpack"

    def dumps(self, value: Any) -> bytes:
        try:
            return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"cannot serialise a value of type {type(value).__name__} as msgpack: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)


class RawSerializer:
    """bytes and str stored as they are (str as UTF-8), each read back as its own type."""

    name = "raw"

    def dumps(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return b"b" + value
        if isinstance(value, str):
            return b"s" + value.encode()
        raise SerializationError(
            f"the raw serializer stores bytes or str, not {type(value).__name__}"
        )

    def loads(self, data: bytes) -> Any:
        tag, body = data[:1], data[1:]
        if tag == b"b":
            return bytes(body)
        if tag == b"s":
            return bytes(body).decode()
        raise ValueError(f"unknown raw tag {tag!r}")


class PickleSerializer:
    """pickle: any picklable object. Never use it for data another party can write."""

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(
                f"cannot pickle a value of type {type(value).__name__}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


SERIALIZERS: dict[str, type[Serializer]] = {
    "json": JsonSerializer,
    "msgpack": MsgpackSerializer,
    "raw": RawSerializer,
    "pickle": PickleSerializer,
}

SerializerName = Literal["json", "msgpack", "raw", "pickle"]


def _offender(exc: TypeError, value: Any) -> str:
    """The type orjson choked on: our ``default`` hook puts its name in the message."""
    name = str(exc).rsplit(":", 1)[-1].strip()
    return name if name.isidentifier() else type(value).__name__


def resolve_serializer(serializer: SerializerName | Serializer) -> Serializer:
    """A serializer instance from a name or an object with ``dumps``/``loads``."""
    if isinstance(serializer, str):
        try:
            return SERIALIZERS[serializer]()
        except KeyError:
            raise ConfigurationError(
                f"unknown serializer {serializer!r}; choose one of {sorted(SERIALIZERS)}"
            ) from None
    if not (
        callable(getattr(serializer, "dumps", None))
        and callable(getattr(serializer, "loads", None))
    ):
        raise ConfigurationError(
            "a serializer needs dumps(value) -> bytes and loads(bytes) methods"
        )
    return serializer


class Codec:
    """Encodes entries (header + payload) and decodes them, enforcing size limits."""

    __slots__ = ("_loads", "compress_level", "compress_threshold", "max_value_size", "serializer")

    def __init__(
        self,
        serializer: SerializerName | Serializer = "json",
        *,
        compress_threshold: int | None = None,
        compress_level: int = 1,
        max_value_size: int | None = DEFAULT_MAX_VALUE_SIZE,
    ) -> None:
        if compress_threshold is not None and compress_threshold < 0:
            raise ConfigurationError(f"compress_threshold must be >= 0, got {compress_threshold}")
        if max_value_size is not None and max_value_size <= 0:
            raise ConfigurationError(f"max_value_size must be > 0, got {max_value_size}")
        if not 0 <= compress_level <= 9:
            raise ConfigurationError(f"compress_level must be 0..9, got {compress_level}")
        self.serializer = resolve_serializer(serializer)
        self.compress_threshold = compress_threshold
        self.compress_level = compress_level
        self.max_value_size = max_value_size
        self._loads = self.serializer.loads

    def encode(self, value: Any, *, key: str | None = None, delta_ms: int | None = None) -> bytes:
        """The stored bytes of ``value`` (``None`` becomes a negative entry)."""
        if value is None:
            return self.encode_negative()
        payload = self.serializer.dumps(value)
        tag = PLAIN
        threshold = self.compress_threshold
        if threshold is not None and len(payload) > threshold:
            payload = zlib.compress(payload, self.compress_level)
            tag = COMPRESSED
        if delta_ms is not None:
            head = bytes((tag | HAS_DELTA,)) + struct.pack(">I", min(max(delta_ms, 0), 0xFFFFFFFF))
        else:
            head = bytes((tag,))
        limit = self.max_value_size
        if limit is not None and len(payload) + len(head) > limit:
            raise ValueTooLarge(len(payload) + len(head), limit, key)
        return head + payload

    @staticmethod
    def encode_negative() -> bytes:
        """The stored bytes of a negative entry."""
        return bytes((NEGATIVE_TAG,))

    def decode(self, data: bytes, key: str | None = None) -> Any:
        """The value in ``data``, ``NEGATIVE`` for a negative entry; CorruptEntry if unreadable."""
        if data and data[0] == PLAIN:
            try:
                return self._loads(data[1:])
            except Exception as exc:
                raise CorruptEntry(f"entry does not decode: {exc}", key) from exc
        return self.decode_entry(data, key)[0]

    def decode_entry(self, data: bytes, key: str | None = None) -> tuple[Any, int]:
        """The value and its recorded compute time in ms (0 when none was recorded)."""
        if not data:
            raise CorruptEntry("entry is empty", key)
        tag = data[0]
        if tag == NEGATIVE_TAG:
            return NEGATIVE, 0
        if tag & ~(COMPRESSED | HAS_DELTA):
            raise CorruptEntry(f"entry has an unknown header byte 0x{tag:02x}", key)
        offset, delta = 1, 0
        try:
            if tag & HAS_DELTA:
                (delta,) = struct.unpack_from(">I", data, 1)
                offset = 5
            payload = data[offset:]
            if tag & COMPRESSED:
                payload = zlib.decompress(payload)
            return self._loads(payload), delta
        except Exception as exc:
            raise CorruptEntry(f"entry does not decode: {exc}", key) from exc
