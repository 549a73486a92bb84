"""What an agency's console reads: its licences by search, its types, its seal certificates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.licences.models import Licence, LicenceType
from authority.pki.models import CertificateRecord, CertificateRole

MAX_RESULTS = 50


def licence_types(session: Session, agency: Agency) -> Sequence[LicenceType]:
    """The licence types the agency issues, by code."""
    return session.scalars(
        select(LicenceType).where(LicenceType.agency_id == agency.id).order_by(LicenceType.code)
    ).all()


def search_licences(session: Session, agency: Agency, query: str) -> Sequence[Licence]:
    """The agency's licences whose number, holder id or holder name contains ``query``
    (the latest issued when ``query`` is empty), newest first, at most 50."""
    statement = select(Licence).where(Licence.agency_id == agency.id)
    text = query.strip()[:128]
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(
                Licence.number.ilike(pattern, escape="\\"),
                Licence.holder_id.ilike(pattern, escape="\\"),
                Licence.holder_name.ilike(pattern, escape="\\"),
            )
        )
    return session.scalars(
        statement.order_by(Licence.issued_at.desc(), Licence.number.desc()).limit(MAX_RESULTS)
    ).all()


@dataclass(frozen=True)
class SealCertificate:
    """One of the agency's seal certificates and its status today."""

    serial: str
    subject: str
    not_before: datetime
    not_after: datetime
    # good | superseded (rotated; still valid for what it sealed) | revoked | expired
    status: str
    revoked_at: datetime | None
    revocation_reason: str | None


def seal_certificates(session: Session, agency: Agency, now: datetime) -> list[SealCertificate]:
    """The agency's seal certificates, newest first."""
    records = session.scalars(
        select(CertificateRecord)
        .where(
            CertificateRecord.agency_id == agency.id,
            CertificateRecord.role == CertificateRole.SEAL.value,
        )
        .order_by(CertificateRecord.id.desc())
    ).all()
    return [
        SealCertificate(
            record.serial,
            record.subject,
            record.not_before,
            record.not_after,
            _status(record, now),
            record.revoked_at,
            record.revocation_reason,
        )
        for record in records
    ]


def _status(record: CertificateRecord, now: datetime) -> str:
    if record.revoked_at is not None:
        return "revoked"
    if record.not_after < now:
        return "expired"
    if record.superseded_at is not None:
        return "superseded"
    return "good"
