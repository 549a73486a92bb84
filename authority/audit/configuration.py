"""Configuration changes in the audit trail.

When `authority init` runs and whenever `authority serve` starts, the
security-relevant settings (never a secret: no passphrase, PIN or database
password) are compared with the last ones recorded; a difference is appended
as ``configuration.changed`` with the new values and the names that changed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from authority.audit.models import AuditEntry
from authority.audit.trail import lock, record
from authority.config import Settings

CONFIGURATION_CHANGED = "configuration.changed"
#: Settings whose change an auditor must see; secrets are left out on purpose.
RECORDED = (
    "env",
    "issuer",
    "keystore",
    "keys_dir",
    "pkcs11_module",
    "pkcs11_token",
    "pki_name",
    "pki_organisation",
    "pki_country",
    "max_body_bytes",
    "throttle_account",
    "throttle_address",
    "throttle_client",
    "audit_checkpoint_seconds",
    "log_level",
)


def snapshot(settings: Settings) -> dict[str, Any]:
    """The recorded settings as JSON values, and the database without its password."""
    values: dict[str, Any] = {}
    for name in RECORDED:
        value = getattr(settings, name)
        values[name] = value if isinstance(value, int | str) or value is None else str(value)
    values["database"] = make_url(settings.database_url).render_as_string(hide_password=True)
    return values


def record_configuration(session: Session, settings: Settings, actor: str) -> list[str]:
    """Append ``configuration.changed`` if the settings differ from the last recorded;
    the names that changed (every one the first time), or [] when none did."""
    lock(session)  # two workers starting together compare and append one after the other
    last = session.scalar(
        select(AuditEntry.details)
        .where(AuditEntry.event == CONFIGURATION_CHANGED)
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    )
    previous = last.get("settings", {}) if isinstance(last, dict) else {}
    current = snapshot(settings)
    changed = sorted(name for name in current if previous.get(name) != current[name])
    if changed:
        record(
            session,
            CONFIGURATION_CHANGED,
            actor,
            "configuration",
            {"settings": current, "changed": changed},
        )
    return changed
