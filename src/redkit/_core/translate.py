"""The one place where redis-py's exceptions become redkit's."""

from __future__ import annotations

from redis import exceptions as rx

from redkit.errors import BackendError, BackendUnavailable, RedkitError

_UNAVAILABLE = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterDownError,
    rx.BusyLoadingError,
    rx.TryAgainError,
    rx.MasterDownError,
    OSError,
)

#: What callers catch around a redis-py call before handing it to :func:`translate`.
REDIS_ERRORS = (rx.RedisError, OSError)


def translate(exc: BaseException) -> RedkitError:
    """The redkit error for a redis-py (or socket) error; redkit errors pass through."""
    if isinstance(exc, RedkitError):
        return exc
    if isinstance(exc, _UNAVAILABLE):
        return BackendUnavailable(f"Redis is unreachable: {type(exc).__name__}: {exc}")
    return BackendError(f"Redis error: {type(exc).__name__}: {exc}")
