"""The Repository protocol: the source of truth behind write-through and write-behind."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from redkit._core.keys import KeyId

Entity = dict[str, Any]


@runtime_checkable
class Repository(Protocol):
    """Stores entities (mappings with an id field) durably; redkit caches in front of it."""

    async def find_by_id(self, id: KeyId) -> Entity | None:
        """The entity with ``id``, or None when there is none."""
        ...

    async def create(self, entity: Mapping[str, Any]) -> Entity:
        """Insert ``entity`` and return it as stored (with a generated id if it had none)."""
        ...

    async def update(self, id: KeyId, changes: Mapping[str, Any]) -> Entity | None:
        """Apply ``changes`` to entity ``id``; the entity as stored, or None when missing."""
        ...

    async def delete(self, id: KeyId) -> bool:
        """Delete entity ``id``; whether it existed."""
        ...

    async def upsert_many(self, entities: Iterable[Mapping[str, Any]]) -> int:
        """Insert or replace every entity in one transaction; how many were written."""
        ...
