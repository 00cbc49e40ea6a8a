"""A Repository over one SQLAlchemy Core table (SQLite by default, any SQLAlchemy 2.x dialect)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from redkit._async.repository import Entity
from redkit._core.keys import KeyId
from redkit.errors import ConfigurationError, RepositoryError

#: Key sets of entities already checked against the columns, remembered up to this many.
_KNOWN_LIMIT = 1024


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn a database error raised while doing ``action`` into RepositoryError."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise RepositoryError(f"could not {action}: {exc}") from exc


class SQLAlchemyRepository:
    """The Repository protocol over ``table`` (SQLAlchemy Core), rows as plain dicts.

    Every method runs in its own transaction. Keys that are not columns of the table raise
    ConfigurationError (nothing is silently dropped); database failures raise RepositoryError
    with the driver's error chained as the cause.

    ``version_column`` (an integer column) makes :meth:`upsert_many` conditional: a row is
    replaced only by an entity whose version is at least the row's, so a late, older write
    never overwrites a newer one (WriteBehind fills it in: see its ``version_field``).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: sa.Table,
        id_column: str = "id",
        *,
        version_column: str | None = None,
    ) -> None:
        for role, column in (("id", id_column), ("version", version_column)):
            if column is not None and column not in table.c:
                raise ConfigurationError(
                    f"table {table.name!r} has no {role} column {column!r}"
                    f" (columns: {', '.join(table.c.keys())})"
                )
        if version_column == id_column:
            raise ConfigurationError("the version column cannot be the id column")
        self.engine = engine
        self.table = table
        self.id_column = id_column
        self.version_column = version_column
        self._id = table.c[id_column]
        self._version = None if version_column is None else table.c[version_column]
        self._known: set[tuple[Any, ...]] = set()

    @classmethod
    def from_url(
        cls,
        url: str,
        table: sa.Table,
        id_column: str = "id",
        *,
        version_column: str | None = None,
        **engine_options: Any,
    ) -> SQLAlchemyRepository:
        """A repository on a new engine for ``url``; call :meth:`dispose` when done."""
        return cls(
            create_async_engine(url, **engine_options),
            table,
            id_column,
            version_column=version_column,
        )

    async def dispose(self) -> None:
        """Close the engine's pooled connections."""
        await self.engine.dispose()

    async def find_by_id(self, id: KeyId) -> Entity | None:
        """The row with ``id`` as a dict, or None when there is none."""
        with _translated(f"read id {id!r} from {self.table.name!r}"):
            async with self.engine.connect() as conn:
                return await self._select(conn, self._coerce_id(id))

    async def create(self, entity: Mapping[str, Any]) -> Entity:
        """Insert ``entity``; the row as stored, with its generated id if it had none."""
        values = self._checked(entity)
        try:
            async with self.engine.begin() as conn:
                stmt = sa.insert(self.table).values(values)
                if conn.dialect.insert_returning:
                    row = (await conn.execute(stmt.returning(*self.table.c))).mappings().one()
                    return dict(row)
                result = await conn.execute(stmt)
                if self.id_column in values:
                    key = values[self.id_column]
                else:
                    key = (result.inserted_primary_key or [None])[0]
                stored = await self._select(conn, key)
        except IntegrityError as exc:
            raise await self._create_conflict(values, exc) from exc
        except SQLAlchemyError as exc:
            raise RepositoryError(f"could not create a row in {self.table.name!r}: {exc}") from exc
        if stored is None:
            raise RepositoryError(f"the row inserted in {self.table.name!r} could not be read back")
        return stored

    async def _create_conflict(self, values: Entity, exc: IntegrityError) -> RepositoryError:
        """The error for an insert that broke a constraint: says so when the id exists."""
        id = values.get(self.id_column)
        if id is not None and await self.find_by_id(id) is not None:
            return RepositoryError(
                f"cannot create: id {id!r} already exists in {self.table.name!r}"
            )
        return RepositoryError(f"cannot create a row in {self.table.name!r}: {exc.orig}")

    async def update(self, id: KeyId, changes: Mapping[str, Any]) -> Entity | None:
        """Apply ``changes`` to row ``id``; the row as stored, or None when there is none.

        ``changes`` may repeat the row's own id but not change it (ConfigurationError).
        """
        key = self._coerce_id(id)
        values = self._checked(changes)
        if self.id_column in values:
            if values[self.id_column] != key:
                raise ConfigurationError(
                    f"update cannot change the id column {self.id_column!r}"
                    f" (from {key!r} to {values[self.id_column]!r})"
                )
            del values[self.id_column]
        with _translated(f"update id {key!r} in {self.table.name!r}"):
            async with self.engine.begin() as conn:
                if not values:
                    return await self._select(conn, key)
                stmt = sa.update(self.table).where(self._id == key).values(values)
                if conn.dialect.update_returning:
                    row = (await conn.execute(stmt.returning(*self.table.c))).mappings().first()
                    return None if row is None else dict(row)
                if (await conn.execute(stmt)).rowcount == 0:
                    return None
                return await self._select(conn, key)

    async def delete(self, id: KeyId) -> bool:
        """Delete row ``id``; whether it existed."""
        key = self._coerce_id(id)
        with _translated(f"delete id {key!r} from {self.table.name!r}"):
            async with self.engine.begin() as conn:
                result = await conn.execute(sa.delete(self.table).where(self._id == key))
                return bool(result.rowcount)

    async def upsert_many(self, entities: Iterable[Mapping[str, Any]]) -> int:
        """Insert or update every entity in one transaction; how many were written.

        SQLite and PostgreSQL use INSERT ... ON CONFLICT (id) DO UPDATE of the columns each
        entity carries; other dialects update each row and insert it when none matched.
        An empty iterable returns 0 without touching the database. With a version column,
        every entity must carry a version, and a row with a higher one is left as it is.
        """
        rows = [self._checked(entity) for entity in entities]
        version = self.version_column
        if version is not None:
            for row in rows:
                if not isinstance(row.get(version), int):
                    raise ConfigurationError(
                        f"every entity upserted into {self.table.name!r} needs an int in its "
                        f"version column {version!r}, got {row.get(version)!r}"
                    )
        if not rows:
            return 0
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)
        with _translated(f"upsert {len(rows)} rows into {self.table.name!r}"):
            async with self.engine.begin() as conn:
                for columns, group in groups.items():
                    stmt = self._upsert_statement(conn.dialect.name, columns)
                    if stmt is not None:
                        await conn.execute(stmt, group)  # one executemany per column set
                    else:
                        for row in group:
                            await self._update_or_insert(conn, row)
        return len(rows)

    def _upsert_statement(self, dialect: str, columns: tuple[str, ...]) -> sa.Executable | None:
        """INSERT ... ON CONFLICT (id) DO UPDATE of ``columns`` on SQLite/PostgreSQL, else None."""
        stmt: sqlite.Insert | postgresql.Insert
        if dialect == "sqlite":
            stmt = sqlite.insert(self.table)
        elif dialect == "postgresql":
            stmt = postgresql.insert(self.table)
        else:
            return None
        others = {k: stmt.excluded[k] for k in columns if k != self.id_column}
        if not others:
            return stmt.on_conflict_do_nothing(index_elements=[self._id])
        if self._version is None:
            return stmt.on_conflict_do_update(index_elements=[self._id], set_=others)
        newer = sa.or_(self._version.is_(None), self._version <= stmt.excluded[self._version.key])
        return stmt.on_conflict_do_update(index_elements=[self._id], set_=others, where=newer)

    async def _update_or_insert(self, conn: AsyncConnection, row: dict[str, Any]) -> None:
        """Update the row with ``row``'s id, or insert ``row`` when none matched."""
        if self.id_column in row:
            others = {k: v for k, v in row.items() if k != self.id_column}
            stmt = sa.update(self.table).where(self._id == row[self.id_column])
            if self._version is not None:
                version = row[self.version_column]  # type: ignore[index]
                newer = sa.or_(self._version.is_(None), self._version <= version)
                updated = (await conn.execute(stmt.where(newer).values(others))).rowcount
                if updated:
                    return
                exists = sa.select(self._id).where(self._id == row[self.id_column])
                if (await conn.execute(exists)).first() is not None:
                    return  # the row holds a newer version
            elif others:
                updated = (await conn.execute(stmt.values(others))).rowcount
            else:
                exists = sa.select(self._id).where(self._id == row[self.id_column])
                updated = int((await conn.execute(exists)).first() is not None)
            if updated:
                return
        await conn.execute(sa.insert(self.table).values(row))

    async def _select(self, conn: AsyncConnection, key: Any) -> Entity | None:
        """Row ``key`` read on ``conn``, as a dict, or None."""
        result = await conn.execute(sa.select(self.table).where(self._id == key))
        row = result.mappings().first()
        return None if row is None else dict(row)

    def _checked(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        """``entity`` as a dict, or ConfigurationError naming its keys that are not columns."""
        values = dict(entity)
        names = tuple(values)
        if names not in self._known:  # rows of a batch share their keys: check them once
            unknown = sorted(str(k) for k in names if k not in self.table.c)
            if unknown:
                raise ConfigurationError(
                    f"unknown column(s) for table {self.table.name!r}: {', '.join(unknown)}"
                )
            if len(self._known) < _KNOWN_LIMIT:
                self._known.add(names)
        if self.id_column in values:
            values[self.id_column] = self._coerce_id(values[self.id_column])
        return values

    def _coerce_id(self, id: Any) -> Any:
        """``id`` converted to an int for an integer id column (``"7"`` -> 7)."""
        if isinstance(id, str) and isinstance(self._id.type, sa.Integer):
            try:
                return int(id)
            except ValueError:
                raise ConfigurationError(
                    f"id {id!r} is not an integer, as column {self.id_column!r} requires"
                ) from None
        return id


__all__ = ["SQLAlchemyRepository"]
