"""SQLAlchemy repositories: the source of truth behind WriteThrough and WriteBehind.

Both classes implement the Repository protocol over one SQLAlchemy Core table, rows as dicts.
Sync, on a ``sqlalchemy.Engine``::

    import sqlalchemy as sa
    from redkit.integrations.sqlalchemy import SQLAlchemyRepository

    metadata = sa.MetaData()
    users = sa.Table(
        "users", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String),
    )
    engine = sa.create_engine("sqlite:///app.db")
    metadata.create_all(engine)
    repo = SQLAlchemyRepository(engine, users)
    user = repo.create({"name": "Ada"})          # {"id": 1, "name": "Ada"}
    repo.update(user["id"], {"name": "Ada L."})

Async, on a ``sqlalchemy.ext.asyncio.AsyncEngine``::

    from sqlalchemy.ext.asyncio import create_async_engine
    from redkit.integrations.sqlalchemy import AsyncSQLAlchemyRepository

    engine = create_async_engine("sqlite+aiosqlite:///app.db")
    repo = AsyncSQLAlchemyRepository(engine, users)
    user = await repo.create({"name": "Ada"})
    await repo.upsert_many([{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}])
    await engine.dispose()

``from_url(url, table)`` builds the engine for you (then call ``dispose()`` when done).
"""

from __future__ import annotations

from redkit._async.sqlalchemy_repository import SQLAlchemyRepository as AsyncSQLAlchemyRepository
from redkit._sync.sqlalchemy_repository import SQLAlchemyRepository

__all__ = ["AsyncSQLAlchemyRepository", "SQLAlchemyRepository"]
