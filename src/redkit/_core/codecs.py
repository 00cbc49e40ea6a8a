"""Turning values into the bytes stored in Redis and back.

An entry is one header byte followed by the payload. The header says how to read the rest:

* ``0x00`` plain serializer bytes
* ``0x01`` zlib-compressed serializer bytes
* ``0x02`` a negative entry: the source said "no such thing" (``None``)
* ``0x04`` flag: a 4-byte big-endian compute time in milliseconds (for early refresh)
  follows the header, before the payload

``max_value_size`` bounds an entry as it would be stored uncompressed: header plus serializer
bytes. Encoding refuses a larger value (``ValueTooLarge``, nothing is sent), even when it would
compress below the limit, so that whatever is written can be read back. Decoding treats a
stored entry above the limit, or a compressed payload that would inflate beyond it, as corrupt
(``CorruptEntry``, a miss); decompression stops at the limit, so a hostile entry costs memory
in proportion to ``max_value_size`` (the parser's working set included), never to what it would
inflate to. ``max_value_size=None`` removes both bounds.

Serializers: JSON via orjson (default), msgpack, raw bytes/str, and pickle — pickle only when
chosen by name, and never for data that another party can write to Redis (unpickling runs code).
A serializer refuses (``SerializationError``) what it could not read back, rather than store it
changed beyond its documented normalisations:

* JSON: no NaN or infinity anywhere (orjson writes them as ``null``); no dict whose keys collide
  once made strings (``{1: "a", "1": "b"}``). Normalised: tuples read back as lists, non-str
  keys as str (``{1: x}`` as ``{"1": x}``), datetimes, dates, times and UUIDs as their ISO /
  canonical strings, dataclasses as dicts, enums as their values, str/int/dict/list subclasses
  as the base type.
* msgpack (``pip install 'redkit[msgpack]'``, imported only when chosen): no dict key that
  would read back unhashable (a tuple, a namedtuple). Normalised: tuples read back as lists,
  bytearray as bytes, subclasses (IntEnum, StrEnum, OrderedDict, ...) as the base type.
* raw: bytes and str only (str subclasses read back as str), str must encode as UTF-8.
* pickle: anything picklable, read back as pickle does.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import pickle
import struct
import sys
import zlib
from typing import Any, Final, Literal, Protocol

import orjson

from redkit.errors import ConfigurationError, CorruptEntry, SerializationError, ValueTooLarge

PLAIN: Final = 0x00
COMPRESSED: Final = 0x01
NEGATIVE_TAG: Final = 0x02
HAS_DELTA: Final = 0x04

DEFAULT_MAX_VALUE_SIZE: Final = 8 * 1024 * 1024

_PLAIN_HEAD: Final = bytes((PLAIN,))
_NEGATIVE_ENTRY: Final = bytes((NEGATIVE_TAG,))
_DELTA = struct.Struct(">I")


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


# -- JSON ----------------------------------------------------------------------------------------


def _reject(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _json_key(key: Any) -> bytes:
    """The JSON text orjson gives ``key`` as a dict key (OPT_NON_STR_KEYS)."""
    return orjson.dumps({key: 0}, option=orjson.OPT_NON_STR_KEYS)


def _json_trouble(value: Any, path: str) -> str | None:
    """Why ``value`` would not read back from JSON as written, or None.

    Walks what orjson walks: dicts, lists, tuples, dataclasses, enums. Only called when the
    cheap signs (a ``null`` in the output, a non-str dict key) say it may be needed.
    """
    if type(value) is float:
        if not math.isfinite(value):
            return f"{value!r} at {path} (JSON has no NaN or infinity; it would read back as null)"
        return None
    if isinstance(value, dict):
        str_keys = True
        for key, item in value.items():
            if type(key) is not str:
                str_keys = False
                if isinstance(key, float) and not math.isfinite(key):
                    return f"the key {key!r} of {path} (JSON has no NaN or infinity)"
            trouble = _json_trouble(item, f"{path}[{key!r}]")
            if trouble:
                return trouble
        if not str_keys:
            seen: dict[bytes, Any] = {}
            for key in value:
                other = seen.setdefault(_json_key(key), key)
                if other is not key:
                    return (
                        f"the keys {other!r} and {key!r} of {path} become the same JSON key"
                        " (only one would be kept)"
                    )
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            trouble = _json_trouble(item, f"{path}[{index}]")
            if trouble:
                return trouble
        return None
    if isinstance(value, enum.Enum):
        return _json_trouble(value.value, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        attrs = getattr(value, "__dict__", None)
        names = list(attrs) if attrs is not None else [f.name for f in dataclasses.fields(value)]
        for name in names:
            trouble = _json_trouble(getattr(value, name), f"{path}.{name}")
            if trouble:
                return trouble
    return None


def _has_non_finite(value: Any) -> bool:
    """Whether a NaN or an infinity hides among ``value``'s dict values and list items.

    The lean twin of :func:`_json_trouble` for the case where every dict key is a str: exact
    builtin types are checked inline, anything else (subclasses, dataclasses, enums) by the
    full walk.
    """
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if kind is float:
            if item - item != 0:  # inf - inf and nan - nan are nan
                return True
        elif kind is dict:
            push(item.values())
        elif kind is list or kind is tuple:
            push(item)
        elif _json_trouble(item, "value") is not None:
            return True
    return False


class JsonSerializer:
    """JSON via orjson: dicts, lists, str, numbers, bool, None, datetimes, dataclasses, UUIDs."""

    name = "json"
    loads = staticmethod(orjson.loads)

    def dumps(self, value: Any) -> bytes:
        try:
            data = orjson.dumps(value, default=_reject)
        except TypeError:
            # A non-str dict key (or a real error): retry allowing such keys, then check them.
            data = self._dumps_any_keys(value)
            trouble = _json_trouble(value, "value")
        else:
            # orjson writes NaN and infinity as null: only then is a walk worth it. (rfind:
            # CPython 3.11 searches backwards about twice as fast as forwards here.)
            trouble = None
            if data.rfind(b"null") >= 0 and _has_non_finite(value):
                trouble = _json_trouble(value, "value")
        if trouble:
            raise SerializationError(f"cannot store this value as JSON: {trouble}")
        return data

    @staticmethod
    def _dumps_any_keys(value: Any) -> bytes:
        try:
            return orjson.dumps(value, default=_reject, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            raise SerializationError(
                f"cannot serialise a value of type {_offender(exc, value)} as JSON"
            ) from exc


def _offender(exc: TypeError, value: Any) -> str:
    """The type orjson choked on: our ``default`` hook puts its name in the message."""
    name = str(exc).rsplit(":", 1)[-1].strip()
    return name if name.isidentifier() else f"{type(value).__name__} ({exc})"


# -- msgpack ---------------------------------------------------------------------------------------


class _NotExact(Exception):
    """Raised by the strict packer's hook: the value holds a tuple or a subclass."""


def _not_exact(value: Any) -> Any:
    raise _NotExact


_MSGPACK_KEY_TYPES: Final = (str, bytes, int, float)


def _msgpack_trouble(value: Any, path: str) -> str | None:
    """Where ``value`` has a dict key msgpack would read back unhashable, or None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key is not None and not isinstance(key, _MSGPACK_KEY_TYPES):
                return (
                    f"the key {key!r} of {path} is a {type(key).__name__}: it would read back"
                    " as a list, which cannot be a dict key"
                )
            trouble = _msgpack_trouble(item, f"{path}[{key!r}]")
            if trouble:
                return trouble
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            trouble = _msgpack_trouble(item, f"{path}[{index}]")
            if trouble:
                return trouble
    return None


class MsgpackSerializer:
    """MessagePack: compact binary; dicts, lists, str, bytes, numbers, bool, None."""

    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError:
            raise ConfigurationError(
                "the msgpack serializer needs the msgpack package: pip install 'redkit[msgpack]'"
            ) from None
        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def dumps(self, value: Any) -> bytes:
        # Exact builtin types only: the common case, one pass. A tuple (possibly a dict key,
        # which would read back as an unhashable list) or a subclass sends us the slow way.
        try:
            return self._packb(  # type: ignore[no-any-return]
                value, use_bin_type=True, strict_types=True, default=_not_exact
            )
        except _NotExact:
            pass
        except (TypeError, ValueError, OverflowError) as exc:
            raise self._error(value, exc) from exc
        try:
            data: bytes = self._packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self._error(value, exc) from exc
        trouble = _msgpack_trouble(value, "value")
        if trouble:
            raise SerializationError(f"cannot store this value as msgpack: {trouble}")
        return data

    @staticmethod
    def _error(value: Any, exc: Exception) -> SerializationError:
        return SerializationError(
            f"cannot serialise a value of type {type(value).__name__} as msgpack: {exc}"
        )

    def loads(self, data: bytes) -> Any:
        return self._unpackb(data, raw=False, strict_map_key=False)


# -- raw and pickle ------------------------------------------------------------------------------


class RawSerializer:
    """bytes and str stored as they are (str as UTF-8), each read back as its own type."""

    name = "raw"

    def dumps(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return b"b" + value
        if isinstance(value, str):
            try:
                return b"s" + value.encode()
            except UnicodeEncodeError as exc:
                raise SerializationError(
                    f"the raw serializer stores str as UTF-8; this one is not valid UTF-8: {exc}"
                ) from exc
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


def resolve_serializer(serializer: SerializerName | Serializer) -> Serializer:
    """A serializer instance from a name or an object with ``dumps``/``loads``."""
    if isinstance(serializer, str):
        try:
            factory = SERIALIZERS[serializer]
        except KeyError:
            raise ConfigurationError(
                f"unknown serializer {serializer!r}; choose one of {sorted(SERIALIZERS)}"
            ) from None
        return factory()
    if not (
        callable(getattr(serializer, "dumps", None))
        and callable(getattr(serializer, "loads", None))
    ):
        raise ConfigurationError(
            "a serializer needs dumps(value) -> bytes and loads(bytes) methods"
        )
    return serializer


# -- the codec -------------------------------------------------------------------------------------


def _int_option(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` if it is an int (not a bool) in ``low..high``; else ConfigurationError."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and value >= low and (high is None or value <= high):
        return int(value)
    wanted = f"an int from {low} to {high}" if high is not None else f"an int >= {low}"
    raise ConfigurationError(f"{name} must be {wanted}, got {value!r}")


class Codec:
    """Encodes entries (header + payload) and decodes them, enforcing size limits."""

    __slots__ = (
        "_limit",
        "_loads",
        "compress_level",
        "compress_threshold",
        "max_value_size",
        "serializer",
    )

    def __init__(
        self,
        serializer: SerializerName | Serializer = "json",
        *,
        compress_threshold: int | None = None,
        compress_level: int = 1,
        max_value_size: int | None = DEFAULT_MAX_VALUE_SIZE,
    ) -> None:
        self.compress_threshold = (
            None
            if compress_threshold is None
            else _int_option("compress_threshold", compress_threshold, 0)
        )
        self.max_value_size = (
            None if max_value_size is None else _int_option("max_value_size", max_value_size, 1)
        )
        self.compress_level = _int_option("compress_level", compress_level, 0, 9)
        self.serializer = resolve_serializer(serializer)
        self._loads = self.serializer.loads
        self._limit = sys.maxsize if self.max_value_size is None else self.max_value_size

    def encode(self, value: Any, *, key: str | None = None, delta_ms: int | None = None) -> bytes:
        """The stored bytes of ``value`` (``None`` becomes a negative entry)."""
        if value is None:
            return _NEGATIVE_ENTRY
        payload = self.serializer.dumps(value)
        if delta_ms is None:
            tag, head = PLAIN, b""
        else:
            tag, head = HAS_DELTA, _DELTA.pack(min(max(delta_ms, 0), 0xFFFFFFFF))
        size = 1 + len(head) + len(payload)
        if size > self._limit:
            raise ValueTooLarge(size, self._limit, key)
        threshold = self.compress_threshold
        if threshold is not None and len(payload) > threshold:
            packed = zlib.compress(payload, self.compress_level)
            if len(packed) < len(payload):  # else stored plain: compression would not pay
                payload = packed
                tag |= COMPRESSED
        if tag == PLAIN:
            return _PLAIN_HEAD + payload
        return bytes((tag,)) + head + payload

    @staticmethod
    def encode_negative() -> bytes:
        """The stored bytes of a negative entry."""
        return _NEGATIVE_ENTRY

    def decode(self, data: bytes, key: str | None = None) -> Any:
        """The value in ``data``, ``NEGATIVE`` for a negative entry; CorruptEntry if unreadable."""
        if data and data[0] == PLAIN and len(data) <= self._limit:
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
        if len(data) > self._limit:
            raise CorruptEntry(
                f"entry is {len(data)} bytes, above max_value_size={self._limit}", key
            )
        offset, delta = 1, 0
        if tag & HAS_DELTA:
            if len(data) < 5:
                raise CorruptEntry("entry is cut short inside its compute time", key)
            (delta,) = _DELTA.unpack_from(data, 1)
            offset = 5
        payload = data[offset:]
        if tag & COMPRESSED:
            payload = self._inflate(payload, self._limit - offset, key)
        try:
            return self._loads(payload), delta
        except Exception as exc:
            raise CorruptEntry(f"entry does not decode: {exc}", key) from exc

    def _inflate(self, payload: bytes, room: int, key: str | None) -> bytes:
        """``payload`` decompressed, refused as corrupt past ``room`` bytes."""
        inflater = zlib.decompressobj()
        bounded = self.max_value_size is not None
        try:
            # One byte more than the room: output that fills it proves the entry too big.
            data = inflater.decompress(payload, room + 1 if bounded else 0)
        except zlib.error as exc:
            raise CorruptEntry(f"entry does not decompress: {exc}", key) from exc
        if bounded and len(data) > room:
            raise CorruptEntry(
                f"compressed entry inflates beyond max_value_size={self._limit}", key
            )
        if not inflater.eof or inflater.unused_data:
            raise CorruptEntry("compressed entry is cut short or has bytes after its end", key)
        return data
