"""Rate limiting: five algorithms, each one Lua script on the server's clock, one round trip.

Every limiter has ``hit(key, cost=1)``, ``peek(key, cost=1)`` and ``reset(key)``; ``hit`` and
``peek`` return a :class:`~redkit._core.ratelimit.RateLimitResult`. Keys are
``prefix:<algorithm>:<parameters>:{id}`` (``ratelimit:fixed_window:100/60s:{alice}``; the id
is the hash tag), so limiters that differ in algorithm or parameters never share state, and
limiters configured alike share it on purpose. Each key expires once its state no longer
matters. The arithmetic lives in ``redkit/lua/ratelimit_*.lua``; its in-process twin in
:mod:`redkit._core.ratelimit_algorithms` serves the ``fallback=`` limiters.

When Redis fails, the degradation policy decides (``on_error``): ``"raise"`` (default) raises
``BackendUnavailable`` (or the error at hand), ``"allow"`` admits (fail open), ``"deny"``
refuses (fail closed), and a ``fallback=`` in-process limiter of the same algorithm decides
until Redis is back. After an outage, decisions skip Redis for ``breaker`` seconds instead of
waiting out a timeout each. Each result's ``decided_by`` says which path decided.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

from redkit._acompat import ASYNC, call_fetcher
from redkit._async.lifecycle import Closeable
from redkit._async.store import Store
from redkit._core.clock import SYSTEM_CLOCK, Clock
from redkit._core.degradation import LIMITER_ON_ERROR_CHOICES, Degradation, LimiterOnError
from redkit._core.events import Event, Events
from redkit._core.keys import LIMITER_ENTRY, Companion, KeyId, KeySpace
from redkit._core.ratelimit import (
    DecidedBy,
    LimiterStats,
    LocalLimiter,
    RateLimitResult,
    result_of,
)
from redkit._core.ratelimit_algorithms import (
    GCRA,
    Algorithm,
    FixedWindow,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
    check_cost,
    positive_number,
)
from redkit._core.ttl import non_negative
from redkit._scripts import script
from redkit.errors import ConfigurationError, RateLimitExceeded, RedkitError

if ASYNC:
    pass
else:
    import inspect

logger = logging.getLogger("redkit.ratelimit")

#: A hit's record is ``<key>:hit:<random id>`` (see :attr:`Limiter.resend_window`).
_HIT = f":{Companion.HIT.value}:"

P = ParamSpec("P")
R = TypeVar("R")


class Limiter(Closeable):
    """What the five limiters share; see the module docstring. Not made directly."""

    #: the algorithm's name (its script is ``ratelimit_<kind>``)
    kind = ""
    #: The default :attr:`resend_window`, seconds.
    RESEND_WINDOW = 30.0

    def __init__(
        self,
        client: Any,
        algorithm: Algorithm,
        *,
        prefix: str | None,
        version: int | str | None,
        on_error: LimiterOnError | None,
        fallback: LocalLimiter | None,
        breaker: float,
        clock: Clock,
    ) -> None:
        self.algorithm = algorithm
        #: the prefix given (or ``"ratelimit"``); keys are ``prefix:<algorithm tag>:{id}``
        self.prefix = "ratelimit" if prefix is None else KeySpace(prefix).prefix
        # The algorithm and its parameters are part of every key: limiters that differ in
        # either never read (or trim) each other's state, whatever prefix they were given.
        self.keys = KeySpace(f"{self.prefix}:{algorithm.tag}", version, kind=LIMITER_ENTRY)
        self.fallback = self._check_fallback(fallback, on_error)
        if on_error is None:
            on_error = "raise" if fallback is None else "fallback"
        if ASYNC:
            threadsafe = False
        else:
            threadsafe = True
        self.events = Events("ratelimit", self.keys.prefix, threadsafe=threadsafe)
        self.stats = LimiterStats(self.events)
        self.policy: Degradation[LimiterOnError] = Degradation(
            on_error,
            breaker=non_negative(breaker, "breaker"),
            clock=clock,
            events=self.events,
            logger=logger,
            name=f"{type(self).__name__} {self.keys.prefix!r}",
            choices=LIMITER_ON_ERROR_CHOICES,
        )
        self.store = Store(
            client, self.keys, pattern=type(self).__name__, events=self.events, batch_reads=False
        )
        self.client = client
        self._script = script(f"ratelimit_{algorithm.name}")
        self.resend_window = self.RESEND_WINDOW
        self._params = algorithm.args()
        self._limit = algorithm.capacity

    @property
    def limit(self) -> int:
        """The most that can be taken at once (limit, capacity or burst)."""
        return self._limit

    @property
    def quota(self) -> tuple[int, float]:
        """The policy as (quota, window in seconds), as the RateLimit-Policy field states it."""
        return self.algorithm.policy

    @property
    def resend_window(self) -> float:
        """Seconds an admitted hit is remembered, so that redis-py re-sending it after a lost
        reply does not count it twice (30 by default; 0 turns the records off).

        Each admitted hit leaves a small key in its id's slot (about 130 bytes, and some
        server time: see the README). Re-sends come within ``(retries + 1) *
        socket_timeout`` plus backoff, about 16 s with :func:`~redkit.connect`'s defaults;
        raise this for clients that wait longer.
        """
        return self._resend_ms / 1000

    @resend_window.setter
    def resend_window(self, seconds: float) -> None:
        if seconds == 0 and not isinstance(seconds, bool):
            self._resend_ms = 0
        else:
            self._resend_ms = max(1, round(positive_number(seconds, "resend_window") * 1000))

    @property
    def on_error(self) -> LimiterOnError:
        """What a Redis failure does: ``"raise"``, ``"allow"``, ``"deny"`` or ``"fallback"``."""
        return self.policy.on_error

    async def hit(self, key: KeyId, cost: int = 1) -> RateLimitResult:
        """Take ``cost`` from ``key``'s allowance if it fits: one script, one round trip.

        A denied hit takes nothing. A cost above :attr:`limit` is denied with
        ``retry_after=None`` and leaves the key as it was. A hit is counted once even when
        redis-py re-sends it after a lost reply, within :attr:`resend_window`.
        """
        if type(cost) is not int or cost < 0:
            cost = check_cost(cost)
        rkey = self.keys.key(key)
        if self.policy.is_open():
            return self._without_redis(rkey, cost, True, self.policy.on_error)
        keys: tuple[str, ...] = (rkey,)
        args: tuple[int | str, ...] = (*self._params, cost, 1)
        if 0 < cost <= self._limit and self._resend_ms:
            # A random id per hit: the script keeps a record of an admitted hit, and a re-send
            # of the same command (redis-py retries one whose reply timed out) takes nothing.
            keys = (rkey, f"{rkey}{_HIT}{os.urandom(8).hex()}")
            args = (*args, self._resend_ms)
        try:
            reply = await self.store.run_batched(self._script, keys, args)
        except RedkitError as exc:
            return self._without_redis(rkey, cost, True, self.policy.decision_failed(exc))
        result = result_of(reply, self._limit)
        self.events.emit(Event.ALLOWED if result.allowed else Event.DENIED)
        return result

    async def peek(self, key: KeyId, cost: int = 1) -> RateLimitResult:
        """Whether ``cost`` would be admitted now, and what remains; takes nothing."""
        cost = check_cost(cost)
        rkey = self.keys.key(key)
        if self.policy.is_open():
            return self._without_redis(rkey, cost, False, self.policy.on_error)
        try:
            reply = await self.store.run_batched(self._script, (rkey,), (*self._params, cost, 0))
        except RedkitError as exc:
            return self._without_redis(rkey, cost, False, self.policy.decision_failed(exc))
        return result_of(reply, self._limit)

    async def reset(self, key: KeyId) -> bool:
        """Give ``key`` its full allowance back; whether it had any state in Redis.

        Resets the fallback's state of ``key`` too. Raises when Redis fails (a reset that
        silently did nothing would leave the key limited).
        """
        rkey = self.keys.key(key)
        if self.fallback is not None:
            self.fallback.reset(rkey)
        return bool(await self.store.call("DEL", rkey))

    def _without_redis(
        self, rkey: str, cost: int, consume: bool, path: LimiterOnError
    ) -> RateLimitResult:
        """The decision when Redis cannot make it: by ``path`` (never ``"raise"`` here)."""
        if path == "fallback" and self.fallback is not None:
            fallback = self.fallback
            result = fallback.hit(rkey, cost) if consume else fallback.peek(rkey, cost)
            event = Event.FALLBACK
        elif cost > self._limit:
            decided = DecidedBy.FAIL_OPEN if path == "allow" else DecidedBy.FAIL_CLOSED
            result = RateLimitResult(False, self._limit, 0, 0.0, None, decided)
            event = Event.FAILED_OPEN if path == "allow" else Event.FAILED_CLOSED
        elif path == "allow":
            result = RateLimitResult(True, self._limit, 0, 0.0, 0.0, DecidedBy.FAIL_OPEN)
            event = Event.FAILED_OPEN
        else:
            wait = self.policy.breaker or 1.0
            result = RateLimitResult(False, self._limit, 0, wait, wait, DecidedBy.FAIL_CLOSED)
            event = Event.FAILED_CLOSED
        if consume:
            self.events.emit(event)
            self.events.emit(Event.ALLOWED if result.allowed else Event.DENIED)
        return result

    def _check_fallback(
        self, fallback: LocalLimiter | None, on_error: LimiterOnError | None
    ) -> LocalLimiter | None:
        name = type(self).__name__
        if fallback is None:
            if on_error == "fallback":
                raise ConfigurationError(
                    f"{name}: on_error='fallback' needs fallback=, an in-process limiter "
                    f"(redkit.Local{name})"
                )
            return None
        if not isinstance(fallback, LocalLimiter) or fallback.algorithm.name != self.algorithm.name:
            raise ConfigurationError(
                f"{name}: fallback must be an in-process limiter of the same algorithm "
                f"(redkit.Local{name}), got {fallback!r}"
            )
        if on_error not in (None, "fallback"):
            raise ConfigurationError(
                f"{name}: fallback= decides when Redis fails, so on_error={on_error!r} would "
                "never apply; give one or the other"
            )
        return fallback

    # -- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop this limiter's background work (none today); the client stays open."""
        await self.store.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.keys.namespace!r} limit={self._limit}>"


class WindowLimiter(Limiter):
    """What the three window limiters share: at most ``limit`` per ``window`` seconds, each by
    its :attr:`algorithm_type`. Not made directly."""

    algorithm_type: type[FixedWindow | SlidingWindowLog | SlidingWindowCounter]

    def __init__(
        self,
        client: Any,
        limit: int,
        window: float,
        *,
        prefix: str | None = None,
        version: int | str | None = None,
        on_error: LimiterOnError | None = None,
        fallback: LocalLimiter | None = None,
        breaker: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(
            client,
            self.algorithm_type(limit, window),
            prefix=prefix,
            version=version,
            on_error=on_error,
            fallback=fallback,
            breaker=breaker,
            clock=clock,
        )


class FixedWindowLimiter(WindowLimiter):
    """At most ``limit`` hits per ``window`` seconds; a window starts with the first hit after
    the previous one ended. The count and its expiry are written by one script, so no crash
    can leave a key that never expires. Cheap, exact within a window; up to ``2 * limit`` can
    pass around a window's end."""

    kind = "fixed_window"
    algorithm_type = FixedWindow


class SlidingWindowLogLimiter(WindowLimiter):
    """At most ``limit`` in any span of ``window`` seconds, exactly: one sorted-set entry per
    admitted hit, whatever its cost (memory grows with the hits in a window; a hit's server
    time is O(log n) however large its cost). Expired entries are removed, the rest counted
    and the new one added in one script, so concurrent callers never overshoot."""

    kind = "sliding_window_log"
    algorithm_type = SlidingWindowLog


class SlidingWindowCounterLimiter(WindowLimiter):
    """The weighted two-window estimate in O(1) memory per key.

    Error bound: at most ``limit`` in each window; in any span of ``window`` seconds at most
    ``limit + previous * elapsed_share``, below ``2 * limit`` and reached only when the
    previous window's hits all came at its very end; exact for evenly spread traffic.
    """

    kind = "sliding_window_counter"
    algorithm_type = SlidingWindowCounter


class TokenBucketLimiter(Limiter):
    """A bucket of ``capacity`` tokens, refilled continuously at ``refill_rate`` tokens per
    ``refill_interval`` seconds (fractional refill: rates below one per second work); a hit
    takes ``cost`` tokens."""

    kind = "token_bucket"

    def __init__(
        self,
        client: Any,
        capacity: int,
        refill_rate: float,
        refill_interval: float = 1.0,
        *,
        prefix: str | None = None,
        version: int | str | None = None,
        on_error: LimiterOnError | None = None,
        fallback: LocalLimiter | None = None,
        breaker: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(
            client,
            TokenBucket(capacity, refill_rate, refill_interval),
            prefix=prefix,
            version=version,
            on_error=on_error,
            fallback=fallback,
            breaker=breaker,
            clock=clock,
        )


class GCRALimiter(Limiter):
    """The generic cell rate algorithm: ``limit`` per ``period`` seconds, evenly spaced, with up
    to ``burst`` (default ``limit``) at once; one small value per key."""

    kind = "gcra"

    def __init__(
        self,
        client: Any,
        limit: int,
        period: float,
        burst: int | None = None,
        *,
        prefix: str | None = None,
        version: int | str | None = None,
        on_error: LimiterOnError | None = None,
        fallback: LocalLimiter | None = None,
        breaker: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(
            client,
            GCRA(limit, period, burst),
            prefix=prefix,
            version=version,
            on_error=on_error,
            fallback=fallback,
            breaker=breaker,
            clock=clock,
        )


# -- the decorator -------------------------------------------------------------------------

KeyFunc = Callable[..., KeyId]
CostFunc = Callable[..., int]


class RateLimitDecorator:
    """What :func:`rate_limited` returns: apply it to a function or a method."""

    def __init__(self, limiter: Limiter, key: KeyId | KeyFunc | None, cost: int | CostFunc) -> None:
        if not isinstance(limiter, Limiter):
            raise ConfigurationError(
                f"rate_limited() needs a limiter of this face, got {type(limiter).__name__}"
            )
        if not callable(cost):
            check_cost(cost)
        self.limiter = limiter
        self.key = key
        self.cost = cost

    if ASYNC:

        @overload
        def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...

        @overload
        def __call__(self, fn: Callable[P, R]) -> Callable[P, Awaitable[R]]: ...

        def __call__(self, fn: Callable[P, Any]) -> Callable[P, Awaitable[Any]]:
            return self._wrap(fn)
    else:

        def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
            if inspect.iscoroutinefunction(fn):
                raise ConfigurationError(
                    f"{fn.__qualname__} is a coroutine function: use redkit.asyncio.rate_limited"
                )
            return self._wrap(fn)

    def _wrap(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        limiter, key, cost = self.limiter, self.key, self.cost
        default_key = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> Any:
            if key is None:
                id: KeyId = default_key
            elif callable(key):
                id = key(*args, **kwargs)
            else:
                id = key
            amount = cost(*args, **kwargs) if callable(cost) else cost
            result = await limiter.hit(id, amount)
            if not result.allowed:
                wait = result.retry_after
                raise RateLimitExceeded(
                    f"rate limit of {fn.__qualname__} exceeded for {id!r}: "
                    + ("the cost exceeds the limit" if wait is None else f"retry in {wait:.3f}s"),
                    retry_after=wait,
                )
            return await call_fetcher(lambda: fn(*args, **kwargs))

        limited.limiter = limiter  # type: ignore[attr-defined]
        return limited


def rate_limited(
    limiter: Limiter, key: KeyId | KeyFunc | None = None, cost: int | CostFunc = 1
) -> RateLimitDecorator:
    """Decorate a function so each call takes ``cost`` from ``limiter`` first.

    ``key``: the limited id, or a function of the call's arguments returning it (for a
    method it receives ``self`` too); by default the function's qualified name (one
    allowance shared by every call). ``cost``: an int, or a function of the arguments.
    A denied call raises :class:`~redkit.errors.RateLimitExceeded` carrying ``retry_after``
    (None when the cost can never fit) and does not run. The wrapper's ``limiter`` is the
    limiter.
    """
    return RateLimitDecorator(limiter, key, cost)
