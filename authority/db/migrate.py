"""Schema migrations with Alembic, run from code (``authority init``) and tests."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from authority.db.session import Database


def migrations_dir() -> Path:
    """Where the Alembic environment is: inside the wheel, or the source checkout."""
    packaged = Path(str(files("authority"))) / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for our migrations, optionally on an open connection."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the repository always ships revisions
        raise RuntimeError("no migration revisions found")
    return head


def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    with database.session() as session:
        connection = session.connection()
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest), committing it."""
    with database.transaction() as session:
        command.upgrade(alembic_config(session.connection()), revision)


def downgrade(database: Database, revision: str) -> None:
    """Take the schema back to ``revision``, committing it."""
    with database.transaction() as session:
        command.downgrade(alembic_config(session.connection()), revision)
