"""SQLAlchemyRepository on a real SQLite file: CRUD, upserts, and errors that say what is wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import aiosqlite as sqlite_driver
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateTable

from redkit._async.repository import Repository
from redkit._async.sqlalchemy_repository import SQLAlchemyRepository
from redkit.errors import ConfigurationError, RepositoryError

METADATA = sa.MetaData()
USERS = sa.Table(
    "users",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("email", sa.String, unique=True),
    sa.Column("score", sa.Integer),
)


def sqlite_url(path: Path) -> str:
    """A SQLite URL for ``path`` on this face's driver (aiosqlite here, pysqlite when sync)."""
    return f"sqlite+{sqlite_driver.dialect.driver}:///{path}"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh SQLite file holding an empty ``users`` table."""
    engine = create_async_engine(sqlite_url(tmp_path / "app.db"))
    async with engine.begin() as conn:
        await conn.execute(CreateTable(USERS))
    yield engine
    await engine.dispose()


@pytest.fixture
def repo(engine: AsyncEngine) -> SQLAlchemyRepository:
    return SQLAlchemyRepository(engine, USERS)


async def stored(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every row of ``users``, read back on a fresh connection, by id."""
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(USERS).order_by(USERS.c.id))
        return [dict(row) for row in result.mappings()]


def ada(**overrides: Any) -> dict[str, Any]:
    return {"id": 1, "name": "Ada", "email": "ada@example.org", "score": 10, **overrides}


async def test_is_a_repository(repo: SQLAlchemyRepository) -> None:
    assert isinstance(repo, Repository)


async def test_crud_round_trip(repo: SQLAlchemyRepository, engine: AsyncEngine) -> None:
    assert await repo.create(ada()) == ada()
    assert await stored(engine) == [ada()]
    assert await repo.find_by_id(1) == ada()
    assert await repo.find_by_id("1") == ada()

    assert await repo.update(1, {"score": 11, "name": "Ada L."}) == ada(score=11, name="Ada L.")
    assert await stored(engine) == [ada(score=11, name="Ada L.")]

    assert await repo.delete(1) is True
    assert await stored(engine) == []
    assert await repo.find_by_id(1) is None
    assert await repo.delete(1) is False


async def test_create_without_id_returns_the_generated_id(
    repo: SQLAlchemyRepository, engine: AsyncEngine
) -> None:
    first = await repo.create({"name": "Ada", "email": "a@x", "score": None})
    second = await repo.create({"name": "Grace", "email": "g@x"})
    assert isinstance(first["id"], int)
    assert second["id"] != first["id"]
    assert second == {"id": second["id"], "name": "Grace", "email": "g@x", "score": None}
    assert await stored(engine) == [first, second]


async def test_without_returning_rows_are_read_back(
    repo: SQLAlchemyRepository, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.dialect, "insert_returning", False)
    monkeypatch.setattr(engine.dialect, "update_returning", False)
    created = await repo.create({"name": "Ada", "email": "a@x", "score": 1})
    assert created == {"id": created["id"], "name": "Ada", "email": "a@x", "score": 1}
    assert await repo.update(created["id"], {"score": 2}) == {**created, "score": 2}
    assert await repo.update(999, {"score": 2}) is None
    assert await stored(engine) == [{**created, "score": 2}]


async def test_duplicate_id_on_create(repo: SQLAlchemyRepository, engine: AsyncEngine) -> None:
    await repo.create(ada())
    with pytest.raises(RepositoryError, match="id 1 already exists") as info:
        await repo.create(ada(email="other@example.org", name="Impostor"))
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    assert await stored(engine) == [ada()]


async def test_other_constraint_on_create(repo: SQLAlchemyRepository, engine: AsyncEngine) -> None:
    await repo.create(ada())
    with pytest.raises(RepositoryError, match="UNIQUE") as info:
        await repo.create({"id": 2, "name": "Twin", "email": "ada@example.org"})
    assert "already exists" not in str(info.value)
    assert await stored(engine) == [ada()]


async def test_unknown_columns_are_refused(repo: SQLAlchemyRepository, engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError, match="age, nick"):
        await repo.create({"id": 1, "name": "Ada", "nick": "a", "age": 36})
    assert await stored(engine) == []
    await repo.create(ada())
    with pytest.raises(ConfigurationError, match="nick"):
        await repo.update(1, {"name": "Ada L.", "nick": "a"})
    with pytest.raises(ConfigurationError, match="nick"):
        await repo.upsert_many([ada(id=2, email="b@x"), {"id": 3, "nick": "c"}])
    assert await stored(engine) == [ada()]


async def test_update_of_a_missing_id(repo: SQLAlchemyRepository, engine: AsyncEngine) -> None:
    assert await repo.update(42, {"name": "Nobody"}) is None
    assert await repo.update(42, {}) is None
    assert await stored(engine) == []


async def test_update_cannot_change_the_id(repo: SQLAlchemyRepository, engine: AsyncEngine) -> None:
    await repo.create(ada())
    with pytest.raises(ConfigurationError, match="cannot change the id"):
        await repo.update(1, {"id": 2, "name": "Moved"})
    assert await stored(engine) == [ada()]
    # Repeating the row's own id is allowed.
    assert await repo.update(1, {"id": 1, "score": 12}) == ada(score=12)
    assert await repo.update("1", {"id": 1}) == ada(score=12)


async def test_upsert_many_inserts_and_updates_in_one_call(
    repo: SQLAlchemyRepository, engine: AsyncEngine
) -> None:
    await repo.create(ada())
    count = await repo.upsert_many(
        iter(
            [
                {"id": 1, "score": 99},  # partial: other columns are kept
                {"id": 2, "name": "Grace", "email": "g@x", "score": 5},
                {"id": 3, "name": "Linus", "email": "l@x", "score": 7},
            ]
        )
    )
    assert count == 3
    assert await stored(engine) == [
        ada(score=99),
        {"id": 2, "name": "Grace", "email": "g@x", "score": 5},
        {"id": 3, "name": "Linus", "email": "l@x", "score": 7},
    ]


async def test_upsert_many_fallback_for_other_dialects(
    repo: SQLAlchemyRepository, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repo, "_upsert_statement", lambda dialect, row: None)
    await repo.create(ada())
    rows = [{"id": 1, "score": 99}, {"id": 2, "name": "Grace", "email": "g@x"}, {"id": 1}]
    assert await repo.upsert_many(rows) == 3
    assert await stored(engine) == [
        ada(score=99),
        {"id": 2, "name": "Grace", "email": "g@x", "score": None},
    ]


async def test_upsert_many_is_one_transaction(
    repo: SQLAlchemyRepository, engine: AsyncEngine
) -> None:
    await repo.create(ada())
    with pytest.raises(RepositoryError, match="upsert 2 rows"):
        await repo.upsert_many(
            [
                {"id": 2, "name": "Grace", "email": "g@x"},
                {"id": 3, "name": "Twin", "email": "ada@example.org"},  # unique violation
            ]
        )
    assert await stored(engine) == [ada()]


async def test_upsert_many_of_nothing_does_not_touch_the_database(tmp_path: Path) -> None:
    repo = SQLAlchemyRepository.from_url(sqlite_url(tmp_path / "missing" / "dir.db"), USERS)
    try:
        assert await repo.upsert_many([]) == 0
        assert await repo.upsert_many(iter([])) == 0
        with pytest.raises(RepositoryError):  # while any real query fails
            await repo.find_by_id(1)
    finally:
        await repo.dispose()


async def test_database_errors_become_repository_errors(tmp_path: Path) -> None:
    repo = SQLAlchemyRepository.from_url(sqlite_url(tmp_path / "empty.db"), USERS)
    try:
        with pytest.raises(RepositoryError, match="no such table: users") as info:
            await repo.find_by_id(1)
        assert isinstance(info.value.__cause__, sa.exc.SQLAlchemyError)
        with pytest.raises(RepositoryError, match="no such table"):
            await repo.create(ada())
        with pytest.raises(RepositoryError, match="no such table"):
            await repo.delete(1)
    finally:
        await repo.dispose()


async def test_from_url_round_trip(tmp_path: Path, engine: AsyncEngine) -> None:
    repo = SQLAlchemyRepository.from_url(sqlite_url(tmp_path / "app.db"), USERS)
    try:
        await repo.create(ada())
    finally:
        await repo.dispose()
    assert await stored(engine) == [ada()]


def test_bad_id_column(engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError, match="no id column 'user_id'"):
        SQLAlchemyRepository(engine, USERS, id_column="user_id")


async def test_non_integer_id_for_integer_column(repo: SQLAlchemyRepository) -> None:
    with pytest.raises(ConfigurationError, match="not an integer"):
        await repo.find_by_id("abc")
