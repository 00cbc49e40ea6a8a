"""The exceptions redkit raises.

Everything redkit raises on purpose derives from :class:`RedkitError`; errors from
redis-py are translated into this tree in one place (:func:`redkit._translate.translate`)
so callers never have to catch ``redis.exceptions`` types::

    RedkitError
    ├── ConfigurationError          bad URL, unknown option, invalid argument (also ValueError)
    │   ├── InvalidArgument         a bad argument to a call (a negative cost, a zero limit...)
    │   ├── InvalidKey              empty id, wrong id type, bad prefix (also TypeError)
    │   └── AuthenticationFailed    Redis refused the credentials: never retried, never
    │                               silently degraded
    ├── SerializationError          a value the codec cannot encode (also TypeError)
    │   └── ValueTooLarge           encoded value above max_value_size, nothing sent
    ├── CorruptEntry                bytes in Redis that do not decode
    ├── BackendError                Redis did not serve the request (one of those below)
    │   ├── BackendUnavailable      Redis could not be reached: refused, reset, timed out,
    │   │                           cluster down (an outage: the breaker opens)
    │   ├── BackendBusy             Redis was reachable but could not serve now: connection
    │   │                           pool exhausted, READONLY during a failover, a slot moving
    │   │                           (TRYAGAIN, redirections exhausted), still loading
    │   ├── BackendRejected         Redis answered with an error: out of memory, wrong type,
    │   │                           a script error, ...
    │   └── InvalidationPending     a write reached the source of truth but the cache entry
    │                               could not be invalidated; redkit keeps retrying
    ├── BackpressureError           write-behind: the backlog is full; the write was not taken
    ├── LockError                   a distributed lock could not be used as asked
    │   ├── LockNotAcquired         not acquired before the timeout
    │   └── LockNotOwned            released or extended by a holder that no longer owns it
    ├── RateLimitExceeded           a rate-limited call was denied (carries retry_after)
    ├── EmbeddedServerError         the bundled valkey-server failed to start or to answer
    └── RepositoryError             the source of truth failed (database write or read)

How the patterns react to each :class:`BackendError` (serve from the source, raise, open the
breaker) is their degradation policy: see :mod:`redkit._core.degradation`.
"""

from __future__ import annotations

from typing import Any


class RedkitError(Exception):
    """Base class of every error redkit raises on purpose."""


class ConfigurationError(RedkitError, ValueError):
    """A bad URL, an unknown option or an argument outside its allowed range."""


class InvalidArgument(ConfigurationError):
    """An argument to a call that can never be right (a negative cost, a zero window...)."""


class InvalidKey(ConfigurationError, TypeError):
    """An id or prefix that cannot form a safe key (empty, wrong type, brace in prefix)."""


class AuthenticationFailed(ConfigurationError):
    """Redis refused the credentials, or wants some: fix the configuration.

    Never retried and never hidden by a fallback: a cache that silently serves from its
    source because of a wrong password would hide the mistake until the source falls over.
    """


class SerializationError(RedkitError, TypeError):
    """A value the configured serializer cannot encode; the message names its type."""


class ValueTooLarge(SerializationError):
    """An encoded value larger than ``max_value_size``; nothing was sent to Redis."""

    def __init__(self, size: int, limit: int, key: str | None = None) -> None:
        where = f" for key {key!r}" if key else ""
        super().__init__(f"encoded value is {size} bytes{where}, above max_value_size={limit}")
        self.size = size
        self.limit = limit
        self.key = key


class CorruptEntry(RedkitError):
    """Bytes stored in Redis that do not decode with the configured codec."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message if key is None else f"{message} (key {key!r})")
        self.key = key


class BackendError(RedkitError):
    """Redis did not serve the request: unreachable, busy, or it answered with an error."""


class BackendUnavailable(BackendError):
    """Redis could not be reached: connection refused, reset or timed out, cluster down."""


class BackendBusy(BackendError):
    """Redis was reachable but could not serve the request now; retrying later may work.

    The connection pool was exhausted, a replica answered READONLY during a failover, a slot
    was moving (TRYAGAIN, or the Cluster redirections ran out), or the server was loading.
    Not an outage: the breaker stays closed.
    """


class BackendRejected(BackendError):
    """Redis answered with an error: out of memory, wrong type, a failing script, ..."""


class InvalidationPending(BackendError):
    """A write reached the source of truth, but its cache entry could not be invalidated.

    The cache may serve the previous value until redkit's background retry removes the entry
    (it keeps trying until Redis answers) or the entry's TTL ends. ``id`` is the entity's id,
    ``result`` what the write returned (the written entity, a bool for a delete).
    """

    def __init__(self, message: str, *, id: Any, result: Any) -> None:
        super().__init__(message)
        self.id = id
        self.result = result


class BackpressureError(RedkitError):
    """Write-behind's backlog is full (the database is down or slow): the write was refused,
    nothing was stored, and no unflushed entry was dropped to make room."""


class LockError(RedkitError):
    """A distributed lock could not be acquired, released or extended as asked."""


class LockNotAcquired(LockError):
    """The lock was not acquired before the timeout."""


class LockNotOwned(LockError):
    """The lock was released or extended by a holder that does not own it (any more): its
    TTL ran out, or another holder has it. Nothing of the other holder's was touched."""


class RateLimitExceeded(RedkitError):
    """A rate-limited call was denied. ``retry_after`` is the seconds to wait before a retry
    can succeed, or None when it never can (a cost above the capacity)."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EmbeddedServerError(RedkitError):
    """The bundled valkey-server could not be started, configured or reached."""


class RepositoryError(RedkitError):
    """The repository (the source of truth) failed to read or write."""


__all__ = [
    "AuthenticationFailed",
    "BackendBusy",
    "BackendError",
    "BackendRejected",
    "BackendUnavailable",
    "BackpressureError",
    "ConfigurationError",
    "CorruptEntry",
    "EmbeddedServerError",
    "InvalidArgument",
    "InvalidKey",
    "InvalidationPending",
    "LockError",
    "LockNotAcquired",
    "LockNotOwned",
    "RateLimitExceeded",
    "RedkitError",
    "RepositoryError",
    "SerializationError",
    "ValueTooLarge",
]
