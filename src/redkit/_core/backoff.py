"""Retry delays: capped exponential (or linear) backoff with jitter, and redis-py ``Retry`` objects.

Pure: no I/O, and the random source is injected so tests can pin it::

    Backoff.default()                       # min(n * 50ms, 2s), minus up to 10% jitter
    Backoff.exponential(base=0.05, cap=2.0)  # min(50ms * 2**(n-1), 2s), full jitter
    retry_policy(3, Backoff.default())      # a redis.retry.Retry using it

:class:`Backoff` implements redis-py's :class:`redis.backoff.AbstractBackoff`, so it plugs into
``redis.retry.Retry`` and ``redis.asyncio.retry.Retry`` alike. ``compute(failures)`` takes the
number of failures so far (1 for the first retry) and returns a delay in seconds.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

from redis.backoff import AbstractBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import AbstractRetry, Retry

from redkit.errors import ConfigurationError

Jitter = Literal["full", "equal", "none"] | float
Growth = Literal["exponential", "linear"]

#: The errors a retry policy retries: the connection dropped, was refused, or timed out.
#: redis-py wraps socket errors in its own types; the builtin ones are there for safety.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    socket.timeout,
    ConnectionError,
)
#: The same for ``redis.asyncio.retry.Retry``, whose errors must be ``RedisError`` types.
ASYNC_RETRYABLE_ERRORS: tuple[type[RedisError], ...] = (RedisConnectionError, RedisTimeoutError)

_MAX_EXPONENT = 62


class Backoff(AbstractBackoff):
    """A capped backoff with jitter, usable as redis-py's ``AbstractBackoff``.

    The un-jittered delay after ``n`` failures is ``min(cap, base * 2**(n-1))`` (``growth=
    "exponential"``) or ``min(cap, base * n)`` (``growth="linear"``). Jitter then draws from it:

    - ``"full"``: uniform in ``[0, d)`` (AWS "full jitter": best at spreading a herd),
    - ``"equal"``: uniform in ``[d/2, d)``,
    - ``"none"``: exactly ``d``,
    - a float ``f`` in ``[0, 1]``: uniform in ``(d * (1 - f), d]`` ("a little jitter").

    ``rng`` returns floats in ``[0, 1)``; it defaults to :func:`random.random`. A Backoff holds no
    state, so copies (redis-py deep-copies its ``Retry`` for every connection) share the same
    random source rather than each replaying one copied sequence.
    """

    def __init__(
        self,
        base: float = 0.05,
        cap: float = 2.0,
        *,
        growth: Growth = "exponential",
        jitter: Jitter = "full",
        rng: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(base, bool) or not isinstance(base, int | float) or base < 0:
            raise ConfigurationError(f"backoff base must be a number >= 0, got {base!r}")
        if isinstance(cap, bool) or not isinstance(cap, int | float) or cap < 0:
            raise ConfigurationError(f"backoff cap must be a number >= 0, got {cap!r}")
        if growth not in ("exponential", "linear"):
            raise ConfigurationError(
                f"backoff growth must be 'exponential' or 'linear', got {growth!r}"
            )
        if isinstance(jitter, str):
            if jitter not in ("full", "equal", "none"):
                raise ConfigurationError(
                    f"backoff jitter must be 'full', 'equal', 'none' or a fraction, got {jitter!r}"
                )
        elif (
            isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1
        ):
            raise ConfigurationError(f"backoff jitter fraction must be in [0, 1], got {jitter!r}")
        if rng is not None and not callable(rng):
            raise ConfigurationError(
                f"backoff rng must be a callable returning [0, 1), got {rng!r}"
            )
        self.base = float(base)
        self.cap = float(cap)
        self.growth: Growth = growth
        self.jitter: Jitter = jitter
        self._rng: Callable[[], float] = rng if rng is not None else random.random

    @classmethod
    def default(cls, rng: Callable[[], float] | None = None) -> Backoff:
        """``min(n * 50ms, 2s)`` (ioredis's default ``retryStrategy``) less up to 10% jitter."""
        return cls(0.05, 2.0, growth="linear", jitter=0.1, rng=rng)

    @classmethod
    def exponential(
        cls,
        base: float = 0.05,
        cap: float = 2.0,
        *,
        jitter: Jitter = "full",
        rng: Callable[[], float] | None = None,
    ) -> Backoff:
        """``min(base * 2**(n-1), cap)`` with ``jitter`` ("full" by default)."""
        return cls(base, cap, growth="exponential", jitter=jitter, rng=rng)

    def ceiling(self, failures: int) -> float:
        """The delay before jitter after ``failures`` failures (0 for ``failures <= 0``)."""
        if failures <= 0:
            return 0.0
        if self.growth == "linear":
            return min(self.cap, self.base * failures)
        return min(self.cap, self.base * float(2 ** min(failures - 1, _MAX_EXPONENT)))

    def compute(self, failures: int) -> float:
        """The delay in seconds before the retry that follows ``failures`` failures."""
        ceiling = self.ceiling(failures)
        if ceiling <= 0:
            return 0.0
        jitter = self.jitter
        if jitter == "none":
            return ceiling
        u = self._rng()
        if jitter == "full":
            return ceiling * u
        if jitter == "equal":
            return ceiling / 2 + (ceiling / 2) * u
        assert not isinstance(jitter, str)
        return ceiling * (1 - jitter * u)

    def reset(self) -> None:
        """Nothing to reset: the delay depends only on the failure count."""

    def __copy__(self) -> Backoff:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Backoff:
        return self

    def __repr__(self) -> str:
        return (
            f"Backoff(base={self.base}, cap={self.cap}, growth={self.growth!r}, "
            f"jitter={self.jitter!r})"
        )


R = TypeVar("R", bound=AbstractRetry[Any])


@overload
def retry_policy(retries: int = ..., backoff: AbstractBackoff | None = ...) -> Retry: ...


@overload
def retry_policy(retries: int, backoff: AbstractBackoff | None, retry_class: type[R]) -> R: ...


def retry_policy(
    retries: int = 3,
    backoff: AbstractBackoff | None = None,
    retry_class: type[Any] = Retry,
) -> Any:
    """A redis-py ``Retry``: up to ``retries`` retries of connection and timeout errors.

    ``backoff`` defaults to :meth:`Backoff.default`. ``retry_class`` is ``redis.retry.Retry``
    (the default) or ``redis.asyncio.retry.Retry``; redis-py 8 builds both as
    ``Retry(backoff, retries, supported_errors)``.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"retries must be an int >= 0, got {retries!r}")
    if backoff is None:
        backoff = Backoff.default()
    elif not isinstance(backoff, AbstractBackoff):
        raise ConfigurationError(
            f"backoff must be a redkit Backoff (or redis.backoff.AbstractBackoff), got {backoff!r}"
        )
    errors = RETRYABLE_ERRORS if issubclass(retry_class, Retry) else ASYNC_RETRYABLE_ERRORS
    return retry_class(backoff, retries, errors)


__all__ = ["ASYNC_RETRYABLE_ERRORS", "RETRYABLE_ERRORS", "Backoff", "retry_policy"]
