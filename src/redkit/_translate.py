"""The one place where redis-py's exceptions become redkit's, classified for the policies.

The class chosen here decides how patterns degrade (see :mod:`redkit._core.degradation`):
``BackendUnavailable`` is an outage (the breaker may open), ``BackendBusy`` a transient refusal
of a reachable server, ``BackendRejected`` an error answer, ``AuthenticationFailed`` a
configuration mistake that no fallback may hide.
"""

from __future__ import annotations

import queue

from redis import exceptions as rx

from redkit.errors import (
    AuthenticationFailed,
    BackendBusy,
    BackendRejected,
    BackendUnavailable,
    RedkitError,
)

#: What callers catch around a redis-py call before handing it to :func:`translate`.
#: ``RedisClusterException`` (CROSSSLOT, slot not covered...) is not a ``RedisError``;
#: ``queue.Empty`` is the sync face's connection gate timing out (``redkit._compat.Gate``).
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    rx.RedisError,
    rx.RedisClusterException,
    OSError,
    queue.Empty,
)

# Checked in order: the first matching class wins (subclasses before their bases).
_CLASSES: tuple[tuple[tuple[type[BaseException], ...], type[RedkitError], str], ...] = (
    (
        (rx.AuthenticationError, rx.AuthenticationWrongNumberOfArgsError, rx.NoPermissionError),
        AuthenticationFailed,
        "Redis refused the credentials (check the username and password)",
    ),
    ((rx.MaxConnectionsError,), BackendBusy, "the connection pool is exhausted"),
    ((queue.Empty,), BackendBusy, "no connection of the pool came free in time (the gate)"),
    ((rx.BusyLoadingError,), BackendBusy, "Redis is loading its dataset"),
    ((rx.ReadOnlyError,), BackendBusy, "Redis answered READONLY (a failover in progress?)"),
    ((rx.TryAgainError, rx.AskError), BackendBusy, "a Cluster slot is moving"),
    ((rx.ClusterDownError, rx.SlotNotCoveredError), BackendUnavailable, "the Cluster is down"),
    ((rx.ClusterError,), BackendBusy, "the Cluster could not route the command"),
    ((rx.ConnectionError, rx.TimeoutError, OSError), BackendUnavailable, "Redis is unreachable"),
)


def translate(exc: BaseException) -> RedkitError:
    """The redkit error for a redis-py (or socket) error; redkit errors pass through."""
    if isinstance(exc, RedkitError):
        return exc
    for bases, kind, what in _CLASSES:
        if isinstance(exc, bases):
            return kind(f"{what}: {type(exc).__name__}: {exc}")
    return BackendRejected(f"Redis answered with an error: {type(exc).__name__}: {exc}")


__all__ = ["REDIS_ERRORS", "translate"]
