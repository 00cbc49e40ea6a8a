"""What a pattern does when Redis fails: one policy, shared by every pattern.

Errors arrive already classified (:mod:`redkit._translate`):

- ``AuthenticationFailed`` (and any other configuration error) is always raised: a wrong
  password must never look like a slow cache.
- With ``on_error="raise"`` every backend error is raised.
- With ``on_error="fallback"`` (caches): a failed read is served by the source of truth, a
  failed fill is logged and counted and the fetched value is still returned.
- Limiters (:meth:`Degradation.decision_failed`) choose among ``"raise"``, ``"allow"`` (fail
  open), ``"deny"`` (fail closed) and ``"fallback"`` (an in-process limiter decides): the
  method returns the path to take, and the limiter tags its result with it.
- ``BackendUnavailable`` (an outage) opens the breaker, when one is configured: reads skip
  Redis for ``breaker`` seconds instead of waiting out a timeout each. ``BackendBusy`` (pool
  exhausted, READONLY, a moving slot) and ``BackendRejected`` (OOM...) degrade the one call
  but do not open it: Redis is up.

Writes never degrade: a pattern raises when a write fails, because a silently lost write or
invalidation leaves stale data behind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Generic, Literal, TypeVar

from redkit._core.clock import Clock
from redkit._core.events import Event, Events
from redkit.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    RedkitError,
)

OnError = Literal["fallback", "raise"]
ON_ERROR_CHOICES: tuple[OnError, ...] = ("fallback", "raise")
#: What a limiter does when Redis fails (``"fallback"`` needs an in-process limiter).
LimiterOnError = Literal["raise", "allow", "deny", "fallback"]
LIMITER_ON_ERROR_CHOICES: tuple[LimiterOnError, ...] = ("raise", "allow", "deny", "fallback")

Mode = TypeVar("Mode", bound=str)

#: At most one warning per this many seconds for repeated failures of one kind.
_LOG_EVERY = 10.0


class Degradation(Generic[Mode]):
    """One pattern instance's policy: ``on_error`` plus an optional breaker.

    ``logger`` receives the warnings (the pattern's own logger); ``name`` identifies the
    instance in them. ``clock`` is a seam for tests. ``choices`` are the ``on_error`` values
    the pattern accepts (the caches' by default; :data:`LIMITER_ON_ERROR_CHOICES` for limiters).
    """

    __slots__ = (
        "_logged_at",
        "_open_until",
        "breaker",
        "clock",
        "events",
        "logger",
        "name",
        "on_error",
    )

    def __init__(
        self,
        on_error: Mode,
        *,
        breaker: float,
        clock: Clock,
        events: Events,
        logger: logging.Logger,
        name: str,
        choices: Sequence[str] = ON_ERROR_CHOICES,
    ) -> None:
        if on_error not in choices:
            raise ConfigurationError(
                f"on_error must be one of {', '.join(map(repr, choices))}, got {on_error!r}"
            )
        self.on_error: Mode = on_error
        self.breaker = breaker
        self.clock = clock
        self.events = events
        self.logger = logger
        self.name = name
        self._open_until = 0.0
        self._logged_at: dict[str, float] = {}

    def is_open(self, count: int = 1) -> bool:
        """Whether reads should skip Redis now (the breaker is open); counts the skips."""
        if not self._open_until:
            return False
        if self.clock.monotonic() < self._open_until:
            self.events.emit(Event.SKIPPED, count)
            return True
        self._open_until = 0.0
        return False

    def read_failed(self, error: RedkitError, count: int = 1) -> None:
        """A read could not use Redis. Raises ``error``, or returns: serve from the source."""
        self.events.emit(Event.ERROR, count)
        self._raise_unless_degradable(error)
        if self.breaker and isinstance(error, BackendUnavailable):
            self._open_until = self.clock.monotonic() + self.breaker
            self.events.emit(Event.BREAKER_OPEN)
            self.logger.warning(
                "%s serves from its source for %.1fs: %s", self.name, self.breaker, error
            )
        else:
            self._warn("read", "%s degraded to its source: %s", error)

    def fill_failed(self, error: RedkitError) -> None:
        """Storing a fetched value failed. Raises ``error``, or returns: the value stands."""
        self.events.emit(Event.FILL_FAILED)
        self._raise_unless_degradable(error)
        if self.breaker and isinstance(error, BackendUnavailable):
            self._open_until = self.clock.monotonic() + self.breaker
            self.events.emit(Event.BREAKER_OPEN)
        self._warn("fill", "%s could not store a fetched value: %s", error)

    def decision_failed(self, error: RedkitError) -> Mode:
        """A limiter's decision could not be made on Redis. Raises ``error``, or returns
        ``on_error``: the path that decides instead (``"allow"``, ``"deny"``, ``"fallback"``).

        An outage opens the breaker (when configured): decisions skip Redis for ``breaker``
        seconds, then Redis is tried again.
        """
        self.events.emit(Event.ERROR)
        self._raise_unless_degradable(error)
        if self.breaker and isinstance(error, BackendUnavailable):
            self._open_until = self.clock.monotonic() + self.breaker
            self.events.emit(Event.BREAKER_OPEN)
            self.logger.warning(
                "%s decides without Redis (%s) for %.1fs: %s",
                self.name,
                self.on_error,
                self.breaker,
                error,
            )
        else:
            self._warn("decision", f"%s decided without Redis ({self.on_error}): %s", error)
        return self.on_error

    def _raise_unless_degradable(self, error: RedkitError) -> None:
        if not isinstance(error, BackendError) or self.on_error == "raise":
            raise error

    def _warn(self, kind: str, message: str, error: RedkitError) -> None:
        """Log ``message`` unless a warning of this kind went out in the last few seconds."""
        now = self.clock.monotonic()
        last = self._logged_at.get(kind)
        if last is not None and now - last < _LOG_EVERY:
            self.logger.debug(message, self.name, error)
            return
        self._logged_at[kind] = now
        self.logger.warning(message, self.name, error)
