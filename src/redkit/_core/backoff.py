"""Retry delays: capped exponential (or linear) backoff with jitter.

Pure: no I/O, no redis-py, and the random source is injected so tests can pin it::

    Backoff.default()                       # min(n * 50ms, 2s), minus up to 10% jitter
    Backoff.exponential(base=0.05, cap=2.0)  # min(50ms * 2**(n-1), 2s), full jitter

A :class:`Backoff` has the two methods redis-py's ``Retry`` calls on its backoff,
``compute(failures)`` (the number of failures so far, 1 for the first retry; returns a delay in
seconds) and ``reset()``, so it plugs into ``redis.retry.Retry`` and ``redis.asyncio.retry.Retry``
alike; :mod:`redkit._redis_compat` builds those. Any object with these two methods (such as
redis-py's own ``ExponentialBackoff``) is a :class:`BackoffPolicy` and is accepted too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from redkit.errors import ConfigurationError

Jitter = Literal["full", "equal", "none"] | float
Growth = Literal["exponential", "linear"]

_MAX_EXPONENT = 62


@runtime_checkable
class BackoffPolicy(Protocol):
    """What a retry policy needs from a backoff (redis-py's ``AbstractBackoff`` fits)."""

    def compute(self, failures: int) -> float:
        """The delay in seconds before the retry that follows ``failures`` failures."""
        ...

    def reset(self) -> None:
        """Called before each retried operation."""
        ...


class Backoff:
    """A capped backoff with jitter, usable as the backoff of redis-py's ``Retry``.

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


__all__ = ["Backoff", "BackoffPolicy"]
