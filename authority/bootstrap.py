"""`authority init`: bring an instance to a state where it can serve. Idempotent."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import make_url

from authority.db.migrate import current_revision, upgrade
from authority.db.models import Installation
from authority.errors import AuthorityError
from authority.instance import Instance, ensure_directory


class NotInitialised(AuthorityError):
    """The database has not been initialised: run `authority init` first."""

    slug = "not-initialised"
    title = "Not initialised"
    status = 503


@dataclass
class InitReport:
    """What `authority init` found and did."""

    database: str
    schema_from: str | None
    schema_to: str
    instance_id: str
    created: list[str] = field(default_factory=list)


def redacted_url(url: str) -> str:
    """The database URL with any password hidden, fit for logs and output."""
    return make_url(url).render_as_string(hide_password=True)


def initialise(instance: Instance) -> InitReport:
    """Create directories, migrate the schema and record the installation."""
    settings = instance.settings
    created: list[str] = []
    for directory in (settings.var_dir, settings.keys_dir):
        if not directory.is_dir():
            ensure_directory(directory)
            created.append(f"directory {directory}")
    before = current_revision(instance.database)
    upgrade(instance.database)
    after = current_revision(instance.database)
    assert after is not None
    if before != after:
        created.append(f"schema {before or 'empty'} -> {after}")
    with instance.database.transaction() as session:
        installation = session.scalar(select(Installation))
        if installation is None:
            installation = Installation(issuer=settings.issuer)
            session.add(installation)
            created.append("installation record")
        elif installation.issuer != settings.issuer:
            installation.issuer = settings.issuer
            created.append(f"issuer changed to {settings.issuer}")
        session.flush()
        instance_id = installation.instance_id
    return InitReport(
        database=redacted_url(settings.database_url),
        schema_from=before,
        schema_to=after,
        instance_id=instance_id,
        created=created,
    )


def require_initialised(instance: Instance) -> Installation:
    """The installation record; raise :class:`NotInitialised` if there is none."""
    if current_revision(instance.database) is None:
        raise NotInitialised("the database has no schema: run `authority init` first")
    with instance.database.session() as session:
        installation: Installation | None = session.scalar(select(Installation))
    if installation is None:
        raise NotInitialised("the database is not initialised: run `authority init` first")
    return installation
