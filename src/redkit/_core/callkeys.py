"""Stable ids for function calls, for the ``cached`` decorator (provisional: being hardened)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from redkit.errors import SerializationError


def call_key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A stable id for one call: the function's name and a digest of its arguments."""
    try:
        encoded = orjson.dumps([args, kwargs], option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise SerializationError(
            f"the arguments of {name} cannot form a cache key ({exc}); pass key=... to cached()"
        ) from exc
    return f"{name}:{hashlib.blake2b(encoded, digest_size=12).hexdigest()}"
