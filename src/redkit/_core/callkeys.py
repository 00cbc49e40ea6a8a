"""Cache ids for the calls of a ``@cached`` function.

:func:`call_key` gives one call a short id, ``"<name>:<24 hex digits>"``: the function's name and
a BLAKE2b digest (96 bits) of a canonical, type-tagged encoding of the arguments. The encoding
depends on nothing but the arguments (no ``hash()``, no set iteration order), so the key is the
same in every process and every Python run.

What "equal" means. Two calls get the same key when their positional arguments pair up equal and
their keyword arguments have the same names with equal values (in any order). Two values are
equal when they have the same type (exactly: ``1``, ``1.0``, ``True`` and ``"1"`` are four keys)
and:

* ``None``, ``bool``, ``int``, ``str``, ``bytes``, ``bytearray``, ``UUID``, ``date``,
  ``timedelta``, ``Fraction``: equal values;
* ``float``, ``complex``: the same ``repr``. Every NaN is one key; ``inf`` and ``-inf`` are
  their own keys; ``-0.0`` and ``0.0`` are two keys (functions such as ``math.copysign`` tell them
  apart, and a cache must never answer one with the other's result);
* ``Decimal``: the same ``str``: ``Decimal("1.0")`` and ``Decimal("1.00")`` are two keys;
* ``datetime``, ``time``: the same fields, ``fold`` and time zone (its class, zone name, UTC
  offset and ``tzname`` at that moment). The same instant in two zones is two keys; a datetime is
  never its ISO string, nor a date its datetime;
* ``tuple``, ``list``: equal items in the same order (a tuple is never a list);
* ``dict``, ``set``, ``frozenset``: equal contents in any order;
* ``Enum`` members: the same member of the same class (its module and qualified name): an
  ``IntEnum`` or ``StrEnum`` member is never its value;
* namedtuples and dataclass instances: the same class and equal fields (all dataclass fields).

Anything else (other classes, subclasses of the types above, functions) raises
:class:`~redkit.errors.SerializationError` asking for ``key=`` in ``cached()``. Keyword and
positional spellings of one call (``f(1, 2)`` and ``f(1, b=2)``) are two keys: normalising
them needs the signature, which costs more than the second entry it saves.

Calls whose arguments are all ``str``, ``int``, ``bool``, ``None`` or finite ``float`` (the common
case, and the fast one) hash the same bytes as the first version of ``cached`` did, so their cache
entries keep their keys.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
from collections.abc import Callable, Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final
from uuid import UUID

import orjson

from redkit.errors import SerializationError

__all__ = ["call_key"]

_SORT_KEYS: Final = orjson.OPT_SORT_KEYS
_dumps: Final = orjson.dumps
_blake2b: Final = hashlib.blake2b
# The scalars that stand for themselves in the encoding (JSON scalars; finite floats as well, which
# orjson always writes with a "." or an exponent and in their shortest exact form, so never as an
# int and never two floats alike): every other value is a JSON array whose first item is a tag
# naming its type, so no two types can meet.
_NATIVE: Final = frozenset((str, int, bool, type(None)))
# The int range orjson writes as a number; beyond it an int is tagged.
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


class _Unsupported(Exception):
    """A value with no stable key; carries the value so the caller can say where it was."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


def call_key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The id of calling ``name`` with ``args`` and ``kwargs``: ``"<name>:<digest>"``.

    Equal calls (as the module docstring defines it) get the same id, distinct calls distinct
    ids. SerializationError for an argument with no stable key (pass ``key=`` to ``cached()``).
    """
    data = None
    # The common case inline: str, int, bool, None and finite floats stand for themselves.
    native = _NATIVE
    for arg in args:
        kind = type(arg)
        if kind not in native and (kind is not float or arg - arg != 0):
            break
    else:
        if kwargs:
            for arg in kwargs.values():
                kind = type(arg)
                if kind not in native and (kind is not float or arg - arg != 0):
                    break
            else:
                data = _plain(args, kwargs)
        else:
            data = _plain(args, kwargs)
    if data is None:
        data = _tagged(name, args, kwargs)
    return f"{name}:{_blake2b(data, digest_size=12).hexdigest()}"


def _plain(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes | None:
    """The encoding of native-only arguments; None for those orjson cannot write as they are
    (an int beyond 64 bits, a str with lone surrogates), which the tagged path handles."""
    try:
        return _dumps((args, kwargs), option=_SORT_KEYS)
    except TypeError:
        return None


def _tagged(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The encoding of any arguments, with every non-native value tagged by its type."""
    try:
        return _dumps(
            ([_convert(arg) for arg in args], {k: _convert(v) for k, v in kwargs.items()}),
            option=_SORT_KEYS,
        )
    except _Unsupported as exc:
        where = _locate(exc.value, args, kwargs) or "an argument"
        raise SerializationError(
            f"the arguments of {name} cannot form a cache key: {where} is a"
            f" {type(exc.value).__qualname__}, which has no stable key; pass key=... to cached()"
        ) from None
    except (RecursionError, TypeError) as exc:  # TypeError: orjson's own nesting limit
        raise SerializationError(
            f"the arguments of {name} cannot form a cache key: they are nested too deeply or"
            f" contain themselves ({exc}); pass key=... to cached()"
        ) from None


def _convert(value: Any) -> Any:
    """``value`` as a tree of JSON scalars and tagged arrays (see the module docstring)."""
    kind = type(value)
    if kind is str:
        return value if value.isascii() else _text(value)
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else ["int", hex(value)]
    if kind is float:
        # inf - inf and nan - nan are nan: those, which JSON writes as null, are tagged.
        return value if value - value == 0 else ["float", float.__repr__(value)]
    if kind is bool or value is None:
        return value
    convert = _CONVERTERS.get(kind)
    if convert is not None:
        return convert(value)
    if isinstance(value, enum.Enum):
        owner = f"{kind.__module__}.{kind.__qualname__}"
        if isinstance(value.name, str):
            return ["enum", owner, value.name]
        # Pseudo-members of a Flag may have no name: their value identifies them.
        return ["enum", owner, None, _convert(value.value)]
    if isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
        return ["namedtuple", f"{kind.__module__}.{kind.__qualname__}", *map(_convert, value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [[f.name, _convert(getattr(value, f.name))] for f in dataclasses.fields(value)]
        return ["dataclass", f"{kind.__module__}.{kind.__qualname__}", *fields]
    raise _Unsupported(value)


def _text(value: str) -> Any:
    """A non-ASCII str: itself when it is valid UTF-8, else tagged (lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return ["str", value.encode("utf-8", "surrogatepass").hex()]
    return value


def _unordered(tag: str, items: Iterable[Any]) -> list[Any]:
    """A tagged array of ``items`` in the order of their encodings: independent of hashing."""
    encoded = sorted(items, key=orjson.dumps)
    return [tag, *encoded]


def _zone(tz: dt.tzinfo | None, at: dt.datetime | None) -> Any:
    """What identifies a time zone: class, zone name (zoneinfo, pytz), offset and abbreviation."""
    if tz is None:
        return None
    zone = getattr(tz, "key", None) or getattr(tz, "zone", None)
    offset = tz.utcoffset(at)
    return [
        f"{type(tz).__module__}.{type(tz).__qualname__}",
        zone if isinstance(zone, str) else None,
        None if offset is None else _convert(offset),
        tz.tzname(at),
    ]


_CONVERTERS: Final[dict[type, Callable[[Any], Any]]] = {
    complex: lambda v: ["complex", complex.__repr__(v)],
    bytes: lambda v: ["bytes", v.hex()],
    bytearray: lambda v: ["bytearray", v.hex()],
    tuple: lambda v: ["tuple", *map(_convert, v)],
    list: lambda v: ["list", *map(_convert, v)],
    dict: lambda v: _unordered("dict", [[_convert(k), _convert(x)] for k, x in v.items()]),
    set: lambda v: _unordered("set", map(_convert, v)),
    frozenset: lambda v: _unordered("frozenset", map(_convert, v)),
    Decimal: lambda v: ["decimal", str(v)],
    Fraction: lambda v: ["fraction", _convert(v.numerator), _convert(v.denominator)],
    UUID: lambda v: ["uuid", v.hex],
    dt.datetime: lambda v: ["datetime", v.isoformat(), v.fold, _zone(v.tzinfo, v)],
    dt.date: lambda v: ["date", v.isoformat()],
    dt.time: lambda v: ["time", v.isoformat(), v.fold, _zone(v.tzinfo, None)],
    dt.timedelta: lambda v: ["timedelta", v.days, v.seconds, v.microseconds],
}


def _locate(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Where ``target`` sits among the arguments, e.g. ``args[1]['k'][0]``; for the error."""
    try:
        return _search(target, args, kwargs)
    except RecursionError:
        return None


def _search(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    for index, arg in enumerate(args):
        found = _find(target, arg, f"args[{index}]")
        if found:
            return found
    for name, arg in kwargs.items():
        found = _find(target, arg, f"kwargs[{name!r}]")
        if found:
            return found
    return None


def _find(target: Any, value: Any, path: str) -> str | None:
    if value is target:
        return path
    if isinstance(value, dict):
        # Inside a key (or a set's member) the container is as precise as a path gets.
        if any(_find(target, k, path) for k in value):
            return path
        children: Iterable[tuple[str, Any]] = ((f"[{k!r}]", x) for k, x in value.items())
    elif isinstance(value, set | frozenset):
        return path if any(_find(target, x, path) for x in value) else None
    elif isinstance(value, list | tuple):
        children = ((f"[{i}]", x) for i, x in enumerate(value))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = ((f".{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
    else:
        return None
    for step, child in children:
        found = _find(target, child, path + step)
        if found:
            return found
    return None
