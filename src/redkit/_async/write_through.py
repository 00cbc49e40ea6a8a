"""Write-through: every write goes to the repository first, then the cache is refreshed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redkit._async.cache_aside import CacheAside
from redkit._async.lifecycle import Closeable
from redkit._async.repository import Entity, Repository
from redkit._core.degradation import OnError
from redkit._core.events import CacheStats
from redkit._core.keys import KeyId
from redkit.errors import ConfigurationError, InvalidationPending


class WriteThrough(Closeable):
    """A repository with a cache in front that never ends up older than the repository.

    Ids are checked before the repository is touched. After each write the entry is
    invalidated (revoking fills in flight) and refilled from a fresh read of the repository
    under the entry's fill lock; a refill that raced a newer write is refused by Redis, so
    concurrent writers cannot leave an older value cached (the naive "write the database,
    then SET the cache" can).

    The guarantee when Redis fails after the repository write: a write never reports plain
    success while the cache may hold an older value than the repository. If the entry cannot
    be invalidated, the write raises :class:`~redkit.errors.InvalidationPending` (the
    repository write stands: the exception carries ``id`` and the write's ``result``), and
    the invalidation is retried in the background until Redis answers, so the stale entry
    disappears as soon as the network heals; meanwhile reads of that id in this process go to
    the repository. If only the refill fails, the entry is already gone: with
    ``on_error="fallback"`` the write succeeds; with ``"raise"`` the refill's error is raised.
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
        if not isinstance(id_field, str) or not id_field:
            raise ConfigurationError(f"id_field must be a non-empty str, got {id_field!r}")
        self.repository = repository
        self.id_field = id_field
        self.cache = CacheAside(client, prefix, ttl, on_error=on_error, **cache_options)

    @property
    def stats(self) -> CacheStats:
        """The cache's counters (hits, misses, fetches from the repository, ...)."""
        return self.cache.stats

    async def get(self, id: KeyId) -> Entity | None:
        """The entity ``id`` from the cache, read through from the repository on a miss."""
        return await self.cache.get_or_fetch(id, lambda: self.repository.find_by_id(id))  # type: ignore[no-any-return]

    async def create(self, entity: Mapping[str, Any]) -> Entity:
        """Insert ``entity`` in the repository, then cache it as stored."""
        if self.id_field in entity:
            self.cache.keys.key(entity[self.id_field])  # a bad id fails before the database
        created = await self.repository.create(entity)
        try:
            id = created[self.id_field]
        except KeyError:
            raise ConfigurationError(
                f"the repository returned an entity without its id field {self.id_field!r}"
            ) from None
        await self._refresh(id, created)
        return created

    async def update(self, id: KeyId, changes: Mapping[str, Any]) -> Entity | None:
        """Apply ``changes`` in the repository, then refresh the cache; None when missing."""
        self.cache.keys.key(id)
        updated = await self.repository.update(id, changes)
        await self._refresh(id, updated)
        return updated

    async def delete(self, id: KeyId) -> bool:
        """Delete ``id`` from the repository, then from the cache; whether it existed."""
        self.cache.keys.key(id)
        deleted = await self.repository.delete(id)
        await self._refresh(id, deleted)
        return deleted

    async def aclose(self) -> None:
        """Stop the cache's background work (pending invalidations are logged, not lost
        silently); not the client or the repository."""
        await self.cache.aclose()

    async def _refresh(self, id: KeyId, result: Any) -> None:
        """Bring the entry in line with the repository after a write to it."""
        try:
            await self.cache.refresh(id, lambda: self.repository.find_by_id(id))
        except InvalidationPending as exc:
            raise InvalidationPending(
                f"the repository write of {id!r} succeeded, but its cache entry could not be "
                f"invalidated and may serve the previous value until Redis answers again "
                f"(retried in the background): {exc.__cause__}",
                id=id,
                result=result,
            ) from exc.__cause__
