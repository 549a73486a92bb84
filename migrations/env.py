"""Alembic environment: runs on the connection Authority hands it.

``authority init`` (authority.db.migrate) passes an open connection. Run
standalone (``alembic -c migrations/alembic.ini upgrade head``) it opens
``AUTHORITY_DATABASE_URL`` itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from authority.config import load_settings
from authority.db.models import metadata
from authority.db.session import create_database_engine


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode recreates the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = create_database_engine(load_settings().database_url)
    with engine.begin() as own_connection:
        run(own_connection)
    engine.dispose()
