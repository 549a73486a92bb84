"""Migrations and models agree, and revisions go both ways, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from authority.config import load_settings
from authority.db import Database
from authority.db.migrate import current_revision, downgrade, head_revision, upgrade
from authority.db.models import metadata


def test_upgrade_head_reaches_the_newest_revision(database: Database) -> None:
    assert current_revision(database) == head_revision()


def test_models_and_migrations_agree(database: Database) -> None:
    with database.session() as session:
        context = MigrationContext.configure(session.connection(), opts={"compare_type": True})
        drift = compare_metadata(context, metadata)
    assert drift == []


def test_downgrade_to_base_and_back(fresh_database_url: str) -> None:
    database = Database.from_url(
        load_settings({"AUTHORITY_DATABASE_URL": fresh_database_url}).database_url
    )
    try:
        upgrade(database)
        tables = set(inspect(database.bind).get_table_names())
        assert set(metadata.tables) <= tables
        downgrade(database, "base")
        assert current_revision(database) is None
        assert set(inspect(database.bind).get_table_names()) <= {"alembic_version"}
        upgrade(database)
        assert current_revision(database) == head_revision()
    finally:
        database.dispose()
