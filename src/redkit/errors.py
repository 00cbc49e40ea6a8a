"""The exceptions redkit raises.

Everything redkit raises on purpose derives from :class:`RedkitError`; errors from
redis-py are translated into this tree in one place (:func:`redkit._core.translate.translate`)
so callers never have to catch ``redis.exceptions`` types::

    RedkitError
    ├── ConfigurationError          bad URL, unknown option, invalid argument (also ValueError)
    │   └── InvalidKey              empty id, wrong id type, bad prefix (also TypeError for types)
    ├── SerializationError          a value the codec cannot encode (also TypeError)
    │   └── ValueTooLarge           encoded value above max_value_size, nothing sent
    ├── CorruptEntry                bytes in Redis that do not decode
    ├── BackendError                Redis answered with an error (script error, wrong type, ...)
    │   └── BackendUnavailable      Redis cannot be reached (connection refused, timeout, ...)
    ├── EmbeddedServerError         the bundled valkey-server failed to start or to answer
    └── RepositoryError             the source of truth failed (database write or read)
"""

from __future__ import annotations


class RedkitError(Exception):
    """Base class of every error redkit raises on purpose."""


class ConfigurationError(RedkitError, ValueError):
    """A bad URL, an unknown option or an argument outside its allowed range."""


class InvalidKey(ConfigurationError, TypeError):
    """An id or prefix that cannot form a safe key (empty, wrong type, glob in prefix)."""


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
    """Redis answered with an error (a script error, a wrong-type operation, ...)."""


class BackendUnavailable(BackendError):
    """Redis could not be reached: connection refused, reset or timed out."""


class EmbeddedServerError(RedkitError):
    """The bundled valkey-server could not be started, configured or reached."""


class RepositoryError(RedkitError):
    """The repository (the source of truth) failed to read or write."""


__all__ = [
    "BackendError",
    "BackendUnavailable",
    "ConfigurationError",
    "CorruptEntry",
    "EmbeddedServerError",
    "InvalidKey",
    "RedkitError",
    "RepositoryError",
    "SerializationError",
    "ValueTooLarge",
]
