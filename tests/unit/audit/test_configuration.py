"""Configuration changes are audited: the first settings, then only what changed."""

from __future__ import annotations

from sqlalchemy import select

from authority.audit.configuration import CONFIGURATION_CHANGED, record_configuration
from authority.audit.models import AuditEntry
from authority.config import Settings, load_settings
from authority.db.session import Database


def _recorded(database: Database, settings: Settings) -> list[str]:
    with database.transaction() as session:
        return record_configuration(session, settings, "operator:test")


def test_first_settings_then_only_changes(database: Database, settings: Settings) -> None:
    first = _recorded(database, settings)
    assert "issuer" in first and "throttle_account" in first and "database" in first
    assert _recorded(database, settings) == []
    changed = settings.model_copy(
        update={"issuer": "https://id.example.gov", "throttle_client": "5/20/10"}
    )
    assert _recorded(database, changed) == ["issuer", "throttle_client"]
    with database.session() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.event == CONFIGURATION_CHANGED)
        ).all()
    assert len(entries) == 2
    last = entries[-1].details
    assert last["settings"]["issuer"] == "https://id.example.gov"
    assert last["changed"] == ["issuer", "throttle_client"]


def test_no_secret_is_recorded(database: Database) -> None:
    settings = load_settings(
        {
            "AUTHORITY_DATABASE_URL": "postgresql://auditor:s3cret-pw@db.example/authority",
            "AUTHORITY_KEYSTORE_PASSPHRASE": "a passphrase that must stay secret",
        }
    )
    with database.transaction() as session:
        record_configuration(session, settings, "operator:test")
        session.flush()
    with database.session() as session:
        details = session.scalars(
            select(AuditEntry.details).where(AuditEntry.event == CONFIGURATION_CHANGED)
        ).all()
    text = repr(details)
    assert "s3cret-pw" not in text and "must stay secret" not in text
    assert "db.example" in text
