"""``cached``: memoise a function's results in a CacheAside."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from redkit._async.cache_aside import CacheAside
from redkit._core.keys import KeyId
from redkit.errors import SerializationError

F = TypeVar("F", bound=Callable[..., Any])
KeyFunc = Callable[..., KeyId]


def call_key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A stable id for one call: the function's name and a digest of its JSON-encoded arguments."""
    try:
        encoded = orjson.dumps([args, kwargs], option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise SerializationError(
            f"the arguments of {name} cannot form a cache key ({exc}); pass key=... to cached()"
        ) from exc
    return f"{name}:{hashlib.blake2b(encoded, digest_size=12).hexdigest()}"


def cached(
    cache: CacheAside, ttl: float | None = None, key: KeyFunc | None = None
) -> Callable[[F], F]:
    """Decorate a function so its results are cached in ``cache`` for ``ttl`` seconds.

    The id of a call is ``key(*args, **kwargs)`` when given, else the function's qualified name
    and a digest of its JSON-encoded arguments (stable across processes). The wrapper has an
    ``invalidate(*args, **kwargs)`` method removing the entry of those arguments.
    """

    def decorate(fn: F) -> F:
        name = f"{fn.__module__}.{fn.__qualname__}"

        def id_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> KeyId:
            return key(*args, **kwargs) if key is not None else call_key(name, args, kwargs)

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await cache.get_or_fetch(id_of(args, kwargs), lambda: fn(*args, **kwargs), ttl)

        async def invalidate(*args: Any, **kwargs: Any) -> bool:
            return await cache.invalidate(id_of(args, kwargs))

        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
