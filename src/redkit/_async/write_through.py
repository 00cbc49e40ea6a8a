"""Write-through: every write goes to the repository first, then the cache is refreshed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from redkit._async.cache_aside import CacheAside, OnError
from redkit._async.repository import Entity, Repository
from redkit._core.keys import KeyId
from redkit.errors import ConfigurationError, RedkitError, SerializationError

logger = logging.getLogger("redkit.cache")


class WriteThrough:
    """A repository with a cache in front that never ends up older than the repository.

    After each write, the entry is invalidated (revoking fills in flight) and refilled from
    a fresh read of the repository under the entry's fill lock. A refill that raced with a
    newer write is refused by Redis, so concurrent writers cannot leave an older value cached
    (the naive "write the database, then SET the cache" can). If the cache cannot be written
    after the database was, the entry is invalidated; with ``on_error="raise"`` the write then
    raises BackendUnavailable (the database write stands).
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        repository: Repository,
        ttl: float = 3600,
        *,
        id_field: str = "id",
        on_error: OnError = "fallback",
        **cache_options: Any,
    ) -> None:
        for name in ("find_by_id", "create", "update", "delete"):
            if not callable(getattr(repository, name, None)):
                raise ConfigurationError(f"repository has no {name}() method")
        self.repository = repository
        self.id_field = id_field
        self.on_error: OnError = on_error
        self.cache = CacheAside(client, prefix, ttl, on_error=on_error, **cache_options)

    async def get(self, id: KeyId) -> Entity | None:
        """The entity ``id`` from the cache, read through from the repository on a miss."""
        return await self.cache.get_or_fetch(id, lambda: self.repository.find_by_id(id))  # type: ignore[no-any-return]

    async def create(self, entity: Mapping[str, Any]) -> Entity:
        """Insert ``entity`` in the repository, then cache it as stored."""
        created = await self.repository.create(entity)
        try:
            id = created[self.id_field]
        except KeyError:
            raise ConfigurationError(
                f"the repository returned an entity without its id field {self.id_field!r}"
            ) from None
        await self._refresh(id)
        return created

    async def update(self, id: KeyId, changes: Mapping[str, Any]) -> Entity | None:
        """Apply ``changes`` in the repository, then refresh the cache; None when missing."""
        updated = await self.repository.update(id, changes)
        await self._refresh(id)
        return updated

    async def delete(self, id: KeyId) -> bool:
        """Delete ``id`` from the repository, then from the cache; whether it existed."""
        deleted = await self.repository.delete(id)
        await self._refresh(id)
        return deleted

    async def _refresh(self, id: KeyId) -> None:
        """Bring the entry in line with the repository after a write to it."""
        try:
            await self.cache.refresh(id, lambda: self.repository.find_by_id(id))
        except SerializationError:
            raise
        except RedkitError as exc:
            try:
                await self.cache.invalidate(id)
            except RedkitError:
                logger.error(
                    "cache entry %r may be stale until its ttl: refresh and invalidation both "
                    "failed after the repository write (%s)",
                    id,
                    exc,
                )
            else:
                logger.warning("cache refresh of %r failed, entry invalidated: %s", id, exc)
            if self.on_error == "raise":
                raise
