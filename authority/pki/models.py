"""What the PKI remembers: every certificate it issued, and each CA's current CRL."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from authority.db.base import Base, utcnow


class CertificateRole(enum.StrEnum):
    """What a certificate is for (the trust list's ``role``)."""

    ROOT = "root"
    CA = "ca"
    SEAL = "seal"
    TSA = "tsa"
    OCSP = "ocsp"


class CertificateRecord(Base):
    """One issued certificate, its key's handle and its revocation status."""

    __tablename__ = "certificates"
    __table_args__ = (Index("ix_certificates_role_name", "role", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    # URL-safe name: "root", "seal-ca", "tsa", "ocsp", "trust-list", or the agency code.
    name: Mapped[str] = mapped_column(String(64))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    issuer_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    # RFC 5280 serial as lowercase hex; unique per issuer, and ours are random 159-bit.
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    subject: Mapped[str] = mapped_column(String(512))
    keystore: Mapped[str] = mapped_column(String(8))
    key_handle: Mapped[str] = mapped_column(String(64), index=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Replaced by a newer certificate for new signatures; stays valid for old ones.
    superseded_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(String(32))


class CrlRecord(Base):
    """The current CRL of one CA; ``number`` only ever grows (RFC 5280 §5.2.3)."""

    __tablename__ = "crls"

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), unique=True)
    number: Mapped[int]
    this_update: Mapped[datetime]
    next_update: Mapped[datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)
