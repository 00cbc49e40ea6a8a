"""Key naming: ``prefix[:vVERSION]:{id}`` with the id as the Cluster hash tag.

The id sits in braces so that every companion key of an entry (``...:{id}:lock``,
``...:{id}:gen``) hashes to the same Cluster slot and one Lua script may touch them all.
Companions are suffixes of the entry key, so even an id holding ``}`` keeps them together.
"""

from __future__ import annotations

import re

from redkit.errors import InvalidKey

KeyId = str | int

_GLOB = re.compile(r"([*?\[\]\\])")


def escape_glob(text: str) -> str:
    """``text`` with Redis glob characters escaped, so SCAN MATCH treats them literally."""
    return _GLOB.sub(r"\\\1", text)


class KeySpace:
    """Builds the keys of one namespace (a prefix and an optional version)."""

    __slots__ = ("namespace", "prefix", "version")

    def __init__(self, prefix: str, version: int | str | None = None) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidKey(f"prefix must be a non-empty str, got {prefix!r}")
        if "{" in prefix or "}" in prefix:
            raise InvalidKey(
                f"prefix {prefix!r} contains a brace; redkit places the hash tag itself "
                "(around the id) so that an entry and its companion keys share a Cluster slot"
            )
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int | str)
        ):
            raise InvalidKey(f"version must be an int or str, got {type(version).__name__}")
        self.prefix = prefix
        self.version = version
        self.namespace = f"{prefix}:" if version is None else f"{prefix}:v{version}:"

    def key(self, id: KeyId) -> str:
        """The Redis key of ``id``; raises InvalidKey for an empty or non str/int id."""
        if type(id) is str:
            if id:
                return f"{self.namespace}{{{id}}}"
            raise InvalidKey("id must not be empty")
        if type(id) is int:
            return f"{self.namespace}{{{id}}}"
        raise InvalidKey(f"id must be a str or int, got {type(id).__name__}: {id!r}")

    def keys(self, ids: list[KeyId]) -> list[str]:
        """The Redis keys of ``ids``, in order (the batch form of :meth:`key`)."""
        for id in ids:
            kind = type(id)
            if not ((kind is str and id) or kind is int):
                self.key(id)  # raises the precise InvalidKey
        namespace = self.namespace
        return [f"{namespace}{{{id}}}" for id in ids]

    def match(self, pattern: str) -> str:
        """A SCAN MATCH pattern for the ids matching glob ``pattern`` in this namespace only."""
        if not isinstance(pattern, str) or not pattern:
            raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        return f"{escape_glob(self.namespace)}{{{pattern}}}"


def companion(key: str, role: str) -> str:
    """The key of ``key``'s companion ``role`` (same hash tag, same slot)."""
    return f"{key}:{role}"
