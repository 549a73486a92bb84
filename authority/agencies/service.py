"""Registering agencies and managing their seals."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.audit.trail import AGENCY_CREATED, CLIENT_REGISTERED, SEAL_CREATED, record
from authority.errors import Conflict, InvalidInput, NotFound
from authority.pki.crl import RevocationReason
from authority.pki.models import CertificateRecord
from authority.pki.service import RESERVED_NAMES, Pki

AGENCY_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
MAX_NAME = 64  # ub-organization-name (RFC 5280 Appendix A.1): it becomes the seal's O and CN


def find_agency(session: Session, code: str) -> Agency:
    """The agency with ``code``; raise :class:`NotFound` if there is none."""
    agency = session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise NotFound(f"no agency with code {code!r}")
    return agency


def create_agency(
    pki: Pki, code: str, name: str, now: datetime
) -> tuple[Agency, CertificateRecord]:
    """Register an agency and issue its first seal key and certificate."""
    if not AGENCY_CODE.match(code):
        raise InvalidInput(
            f"agency code {code!r} must be 1-32 characters of A-Z a-z 0-9 _ - "
            "starting with a letter or digit"
        )
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"agency name must be 1-{MAX_NAME} characters")
    if code.lower() in RESERVED_NAMES:
        raise InvalidInput(f"agency code {code!r} is reserved for the authority's own use")
    # Codes differing only in case would share one organizationIdentifier (GV:CN-<CODE>).
    existing = pki.session.scalar(select(Agency).where(func.lower(Agency.code) == code.lower()))
    if existing is not None:
        raise Conflict(f"an agency with code {existing.code!r} already exists")
    agency = Agency(code=code, name=name, created_at=now)
    pki.session.add(agency)
    pki.session.flush()
    return agency, pki.issue_agency_seal(agency, now)


def audit_new_agency(
    session: Session, agency: Agency, seal: CertificateRecord, client_id: str, actor: str
) -> None:
    """Record a new agency in the audit trail: the agency, its first seal, its API client."""
    subject = f"agency:{agency.code}"
    record(session, AGENCY_CREATED, actor, subject, {"name": agency.name})
    record(session, SEAL_CREATED, actor, subject, {"serial": seal.serial})
    record(session, CLIENT_REGISTERED, actor, f"client:{client_id}", {"agency": agency.code})


def rotate_seal(
    pki: Pki, code: str, now: datetime
) -> tuple[CertificateRecord | None, CertificateRecord]:
    """A new seal key and certificate for agency ``code``; the old one stays valid."""
    agency = find_agency(pki.session, code)
    previous = next(iter(pki._agency_seals(agency)), None)
    return previous, pki.issue_agency_seal(agency, now)


def revoke_seal(
    pki: Pki, code: str, reason: RevocationReason, now: datetime, serial: str | None = None
) -> CertificateRecord:
    """Revoke agency ``code``'s current seal certificate (or the one with ``serial``)."""
    agency = find_agency(pki.session, code)
    record: CertificateRecord | None
    if serial is None:
        record = pki.agency_seal(agency)
    else:
        record = pki.session.scalar(
            select(CertificateRecord).where(
                CertificateRecord.agency_id == agency.id,
                CertificateRecord.serial == serial.lower().removeprefix("0x"),
            )
        )
        if record is None:
            raise NotFound(f"agency {code} has no seal certificate with serial {serial}")
    return pki.revoke(record, reason, now)
