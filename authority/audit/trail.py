"""Appending to the hash-chained audit trail, in the transaction of the change it records.

:func:`record` queues an event on the caller's session; the queue is written
when that session commits (``before_commit``), inside the same transaction:
a rolled-back change leaves no entry and a committed change always has one.
Writing last also means the audit lock is held only from the append to the
commit, and is the last lock a transaction takes (no lock-order deadlocks).

Each entry's ``hash`` is SHA-256 over the RFC 8785 canonical JSON of its
fields and the previous entry's hash (``prev``). Appends are serialised: on
PostgreSQL by a transaction-scoped advisory lock, on SQLite by the database
write lock; the primary key on ``seq`` refuses a fork even if that failed.
"""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from authority.audit.models import AuditEntry
from authority.canonical import canonical_json
from authority.db.base import utcnow
from authority.db.bulk import insert_rows
from authority.oidc.models import OAuthClient

GENESIS = "0" * 64
# pg_advisory_xact_lock key of the audit trail (ASCII "audi"); released at commit.
AUDIT_LOCK_KEY = 0x61756469
_PENDING = "authority.audit.pending"
# Largest integer RFC 8785 (I-JSON, RFC 7493 §2.2) represents exactly.
_MAX_SAFE_INTEGER = 2**53 - 1

# The events recorded today; other modules add theirs through `record` with a new name.
LICENCE_ISSUED = "licence.issued"
LICENCE_STATUS = {
    "revoke": "licence.revoked",
    "suspend": "licence.suspended",
    "reinstate": "licence.reinstated",
}
SEAL_CREATED = "seal.created"
SEAL_ROTATED = "seal.rotated"
SEAL_REVOKED = "seal.revoked"
CLIENT_REGISTERED = "client.registered"
AGENCY_CREATED = "agency.created"
KEY_ROTATED = "key.rotated"
INITIALISED = "authority.initialised"
LOGIN_SUCCEEDED = "login.succeeded"
LOGIN_FAILED = "login.failed"
LOGIN_THROTTLED = "login.throttled"
CONSENT_GIVEN = "consent.given"
CONSENT_WITHDRAWN = "consent.withdrawn"


def operator() -> str:
    """The actor of a command-line action: the operating-system user who ran it."""
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "operator"


@dataclass(frozen=True)
class Event:
    """An event waiting for its session to commit."""

    event: str
    actor: str
    subject: str
    details: dict[str, Any]


def record(
    session: Session, event: str, actor: str, subject: str, details: dict[str, Any] | None = None
) -> None:
    """Append ``event`` to the audit trail when ``session`` commits (never if it rolls back).

    ``actor`` names who acted (``client:ID``, ``operator:USER``, ``citizen:ID``,
    ``system``), ``subject`` what was acted on. ``details`` is JSON without
    floats and must never hold a secret: the trail is exported and read by
    auditors. Raises ``ValueError`` for values the trail cannot hold.
    """
    limits = (("event", event, 64), ("actor", actor, 128), ("subject", subject, 256))
    for name, value, limit in limits:
        if not 0 < len(value) <= limit:
            raise ValueError(f"audit {name} must be 1-{limit} characters")
    details = dict(details or {})
    _check_json(details)
    pending: list[Event] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        sa_event.listen(session, "before_commit", _append_pending)
        sa_event.listen(session, "after_rollback", _discard_pending)
    pending.append(Event(event, actor, subject, details))


def record_client(session: Session, client: OAuthClient, actor: str) -> None:
    """Record a registered OAuth client: what it may do, never its secret."""
    details = {
        "name": client.name,
        "auth_method": client.auth_method,
        "grant_types": list(client.grant_types),
        "scopes": list(client.scopes),
        "redirect_uris": list(client.redirect_uris),
    }
    if client.sector_identifier_uri:
        details["sector_identifier_uri"] = client.sector_identifier_uri
    record(session, CLIENT_REGISTERED, actor, f"client:{client.client_id}", details)


def _check_json(value: Any) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise ValueError("audit details hold an integer beyond 2^53")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_json(item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("audit details keys must be strings")
            _check_json(item)
        return
    raise ValueError(f"audit details cannot hold {type(value).__name__} values")


def _discard_pending(session: Session) -> None:
    session.info.get(_PENDING, []).clear()


def _append_pending(session: Session) -> None:
    pending: list[Event] = session.info.get(_PENDING, [])
    if not pending:
        return
    events = list(pending)
    pending.clear()
    append(session, events)


def lock(session: Session) -> None:
    """Take the audit lock until the transaction ends (PostgreSQL; SQLite's write lock
    already serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


# Built once (every audited unit of work runs it): cheaper than building it each time.
_HEAD = select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)


def head(session: Session) -> tuple[int, str]:
    """The sequence number and hash of the last entry; ``(0, GENESIS)`` when empty."""
    row = session.execute(_HEAD).first()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def append(session: Session, events: list[Event]) -> None:
    """Chain ``events`` after the current head, now, in ``session``'s transaction."""
    lock(session)
    seq, prev = head(session)
    at = utcnow()
    at_text = timestamp(at)  # what each entry's hash covers: the same for the whole append
    rows = []
    for item in events:
        seq += 1
        hashed = {
            "seq": seq,
            "at": at_text,
            "event": item.event,
            "actor": item.actor,
            "subject": item.subject,
            "details": item.details,
            "prev": prev,
        }
        prev = hashlib.sha256(canonical_json(hashed)).hexdigest()
        rows.append({**hashed, "at": at, "hash": prev})
    insert_rows(session, cast(Table, AuditEntry.__table__), rows)


def timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``: the text an entry's hash covers."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical(entry: dict[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON of an entry's hashed fields."""
    return canonical_json(
        {
            "seq": entry["seq"],
            "at": timestamp(entry["at"]) if isinstance(entry["at"], datetime) else entry["at"],
            "event": entry["event"],
            "actor": entry["actor"],
            "subject": entry["subject"],
            "details": entry["details"],
            "prev": entry["prev"],
        }
    )


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 (hex) of the entry's canonical form: what the next entry's ``prev`` holds."""
    return hashlib.sha256(canonical(entry)).hexdigest()


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the export writes it (``at`` as RFC 3339 text)."""
    return {
        "seq": entry.seq,
        "at": timestamp(entry.at),
        "event": entry.event,
        "actor": entry.actor,
        "subject": entry.subject,
        "details": entry.details,
        "prev": entry.prev,
        "hash": entry.hash,
    }


def entries(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    """Every entry in sequence order, read in batches (the trail may be long)."""
    after = 0
    while True:
        chunk = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)
        ).all()
        if not chunk:
            return
        yield from chunk
        after = chunk[-1].seq
