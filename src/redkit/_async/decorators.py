"""``cached``: memoise a function's (or a method's) results in a CacheAside."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from redkit._acompat import ASYNC
from redkit._async.cache_aside import CacheAside
from redkit._core.callkeys import call_key
from redkit._core.keys import KeyId
from redkit.errors import ConfigurationError

if ASYNC:
    pass
else:
    import inspect

P = ParamSpec("P")
R = TypeVar("R")
KeyFunc = Callable[..., KeyId]


class Cached(Generic[P, R]):
    """A function whose results are cached: call it as you would call the function.

    ``cache`` is the CacheAside; ``key(*args, **kwargs)`` the id a call uses;
    ``invalidate(*args, **kwargs)`` removes that call's entry. Used on a method, the id leaves
    ``self`` out (instances share entries: the result must depend only on the arguments, or
    pass ``key=``), and ``obj.method.key(...)``/``obj.method.invalidate(...)`` work too.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        cache: CacheAside,
        ttl: float | None,
        key: KeyFunc | None,
        instance: Any = None,
    ) -> None:
        self.__wrapped__ = fn
        self.cache = cache
        self.ttl = ttl
        self._key = key
        self._instance = instance
        self._name = f"{fn.__module__}.{fn.__qualname__}"
        functools.update_wrapper(self, fn)

    def key(self, *args: Any, **kwargs: Any) -> KeyId:
        """The cache id of the call with these arguments (``self`` left out for a method)."""
        if self._key is not None:
            return self._key(*args, **kwargs)
        return call_key(self._name, args, kwargs)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        id = self.key(*args, **kwargs)
        fn = self.__wrapped__
        if self._instance is not None:
            instance = self._instance
            return await self.cache.get_or_fetch(  # type: ignore[no-any-return]
                id, lambda: fn(instance, *args, **kwargs), self.ttl
            )
        return await self.cache.get_or_fetch(id, lambda: fn(*args, **kwargs), self.ttl)  # type: ignore[no-any-return]

    async def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Remove the entry of the call with these arguments; whether one existed."""
        return await self.cache.invalidate(self.key(*args, **kwargs))

    def __get__(self, instance: Any, owner: type | None = None) -> Cached[..., R]:
        if instance is None:
            return self
        return Cached(self.__wrapped__, self.cache, self.ttl, self._key, instance)

    def __repr__(self) -> str:
        return f"<cached {self._name} in {self.cache.keys.namespace!r}>"


class CacheDecorator:
    """What :func:`cached` returns: apply it to a function or a method."""

    def __init__(self, cache: CacheAside, ttl: float | None, key: KeyFunc | None) -> None:
        if not isinstance(cache, CacheAside):
            raise ConfigurationError(
                f"cached() needs a CacheAside of this face, got {type(cache).__name__}"
            )
        if key is not None and not callable(key):
            raise ConfigurationError(f"key must be a callable returning an id, got {key!r}")
        self.cache = cache
        self.ttl = ttl
        self.key = key

    if ASYNC:

        @overload
        def __call__(self, fn: Callable[P, Awaitable[R]]) -> Cached[P, R]: ...

        @overload
        def __call__(self, fn: Callable[P, R]) -> Cached[P, R]: ...

        def __call__(self, fn: Callable[P, Any]) -> Cached[P, Any]:
            return Cached(fn, self.cache, self.ttl, self.key)
    else:

        def __call__(self, fn: Callable[P, R]) -> Cached[P, R]:
            if inspect.iscoroutinefunction(fn):
                raise ConfigurationError(
                    f"{fn.__qualname__} is a coroutine function: use redkit.asyncio.cached"
                )
            return Cached(fn, self.cache, self.ttl, self.key)


def cached(
    cache: CacheAside, ttl: float | None = None, key: KeyFunc | None = None
) -> CacheDecorator:
    """Decorate a function or method so its results are cached in ``cache`` for ``ttl`` seconds.

    The id of a call is ``key(*args, **kwargs)`` when given, else the function's qualified name
    and a digest of its type-tagged arguments, stable across processes: distinct arguments
    (``1``, ``1.0``, ``"1"``, ``nan``, ``None``, a datetime and its ISO string) get distinct
    ids (see :func:`redkit._core.callkeys.call_key`). The wrapper exposes ``.cache``,
    ``.key(...)`` and ``.invalidate(...)``.
    """
    return CacheDecorator(cache, ttl, key)
