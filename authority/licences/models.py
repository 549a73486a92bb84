"""Licence types, licences, their lifecycle events and the number counters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authority.db.base import Base, utcnow


class LicenceType(Base):
    """A kind of licence an agency issues (an item of its service inventory)."""

    __tablename__ = "licence_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128))
    # JSON Schema (draft 2020-12) of the licence's data fields.
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    validity_days: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LicenceCounter(Base):
    """The last number issued for a type in a year; incremented under a row lock."""

    __tablename__ = "licence_counters"
    __table_args__ = (UniqueConstraint("type_id", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("licence_types.id"))
    year: Mapped[int]
    last: Mapped[int] = mapped_column(default=0)


class Licence(Base):
    """An issued licence: its canonical document, seal and QR seal, and its status."""

    __tablename__ = "licences"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("licence_types.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    holder_kind: Mapped[str] = mapped_column(String(8))
    holder_id: Mapped[str] = mapped_column(String(18), index=True)
    holder_name: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    # valid | suspended | revoked (expiry is derived from valid_until, never stored).
    status: Mapped[str] = mapped_column(String(16), default="valid")
    status_changed_at: Mapped[datetime | None]
    # The exact bytes sealed (RFC 8785 canonical JSON) and their detached CAdES seal.
    document: Mapped[bytes] = mapped_column(LargeBinary)
    seal: Mapped[bytes] = mapped_column(LargeBinary)
    seal_certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"))
    qr_payload: Mapped[str] = mapped_column(Text)
    # The sealed PDF, made on first download (PAdES-B-LT embeds revocation data then).
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    issued_by: Mapped[str] = mapped_column(String(64))


class LicenceEvent(Base):
    """A lifecycle change: who did what to a licence, when and why."""

    __tablename__ = "licence_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    licence_id: Mapped[str] = mapped_column(ForeignKey("licences.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(512))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
