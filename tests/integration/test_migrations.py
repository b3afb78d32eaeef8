"""The Alembic migrations build exactly the schema the SQLModel tables declare,
on SQLite and PostgreSQL: a table or column added to one and not the other fails."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from cloud_service import tables  # noqa: F401  (registers the tables)
from cloud_service.database import make_engine, migrate


def test_migrations_match_the_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    finally:
        engine.dispose()
    # alembic's own bookkeeping table is the only thing the models do not declare.
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version")]
    assert diff == []
