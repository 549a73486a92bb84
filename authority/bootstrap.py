"""`authority init`: bring an instance to a state where it can serve. Idempotent."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from authority.audit import operator, record
from authority.audit.checkpoints import make_checkpoint
from authority.audit.configuration import record_configuration
from authority.audit.trail import INITIALISED
from authority.config import Environment, KeyStoreKind
from authority.db.base import utcnow
from authority.db.migrate import current_revision, upgrade
from authority.db.models import Installation
from authority.errors import AuthorityError, ConfigurationError
from authority.instance import (
    Instance,
    development_passphrase_path,
    ensure_directory,
    keystore_passphrase,
)
from authority.oidc.tokens import TOKEN_PURPOSE, ensure_signing_key
from authority.pki.service import Pki, PkiSettings

log = logging.getLogger("authority.init")


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


def _ensure_development_passphrase(instance: Instance) -> bool:
    """Generate the file store passphrase into var/ when none is configured (development)."""
    settings = instance.settings
    if settings.keystore is not KeyStoreKind.FILE or keystore_passphrase(settings):
        return False
    if settings.env is Environment.PRODUCTION:  # pragma: no cover - config refuses this
        raise ConfigurationError("AUTHORITY_KEYSTORE_PASSPHRASE is required in production")
    path = development_passphrase_path(settings)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    log.warning(
        "WARNING: no AUTHORITY_KEYSTORE_PASSPHRASE is set; generated one into %s. Anyone who "
        "can read that file can use every key in %s. Fine for development; in production set "
        "AUTHORITY_KEYSTORE_PASSPHRASE (or use AUTHORITY_KEYSTORE=pkcs11).",
        path,
        settings.keys_dir,
    )
    return True


def pki_for(instance: Instance, session: Session) -> Pki:
    """The PKI of ``instance`` within ``session``."""
    settings = instance.settings
    return Pki(
        session,
        instance.keystore,
        PkiSettings(
            base_url=settings.issuer,
            name=settings.pki_name,
            organisation=settings.pki_organisation,
            country=settings.pki_country,
        ),
    )


def ensure_service_keys(instance: Instance, session: Session, now: datetime) -> list[str]:
    """Create the CA hierarchy and the token-signing key where missing; say what was made."""
    created = pki_for(instance, session).ensure_hierarchy(now)
    if ensure_signing_key(session, instance.keystore, TOKEN_PURPOSE, now) is not None:
        created.append("token signing key")
    return created


def initialise(instance: Instance) -> InitReport:
    """Create directories, migrate the schema, create keys and the CA hierarchy."""
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
    # Only once the database answers: a failed init leaves no passphrase behind.
    if _ensure_development_passphrase(instance):
        created.append(f"development key store passphrase in {settings.var_dir}")
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
        created += ensure_service_keys(instance, session, utcnow())
        if created:
            details = {"created": list(created)}
            record(session, INITIALISED, operator(), f"instance:{instance_id}", details)
        record_configuration(session, settings, operator())
    # The first checkpoint anchors the trail from the start (`audit.schedule` adds more).
    with instance.database.transaction() as session:
        if make_checkpoint(pki_for(instance, session), utcnow()) is not None:
            created.append("audit checkpoint")
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
