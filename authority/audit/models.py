"""The audit trail's rows: hash-chained entries and the sealed checkpoints that anchor them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from authority.db.base import Base


class AuditEntry(Base):
    """One event, committing to the entry before it by ``prev`` (its ``hash``)."""

    __tablename__ = "audit_entries"

    # Assigned by the appender under the audit lock: 1, 2, 3 ... without gaps.
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    # SHA-256 (hex) of the previous entry's canonical form; 64 zeros for the first.
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditCheckpoint(Base):
    """A signed, time-stamped statement of the chain head after ``size`` entries."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(unique=True)
    head: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    # The RFC 8785 canonical statement and its detached CAdES-B-T seal (DER).
    document: Mapped[bytes] = mapped_column(LargeBinary)
    seal: Mapped[bytes] = mapped_column(LargeBinary)
