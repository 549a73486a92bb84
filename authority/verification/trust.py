"""What a verification trusts: the root, the certificates and their status, the licences' status.

Online, all of it comes from this installation's database (the PKI's
certificates with their live revocation status, and the licence register).
Offline, it comes from a trust list whose seal verified against a pinned root:
certificate status and the licences' revocations and suspensions as of the
list's ``issued_at``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.licences.models import Licence, LicenceType
from authority.licences.service import effective_status, licence_fields
from authority.pki.models import CertificateRecord, CertificateRole
from authority.pki.trust_list import VerifiedTrustList
from authority.seals.qr import qr_key_id
from authority.verification.paths import PathValidator

_DER = serialization.Encoding.DER


@dataclass(frozen=True)
class KnownCertificate:
    """A certificate of the authority's PKI and its revocation status as known."""

    certificate: x509.Certificate
    role: str
    name: str
    agency: str | None
    revoked_at: datetime | None
    revocation_reason: str | None

    @property
    def der(self) -> bytes:
        """The certificate's DER."""
        return self.certificate.public_bytes(_DER)


@dataclass(frozen=True)
class RegisteredLicence:
    """A licence as the register holds it (online only)."""

    fields: dict[str, Any]
    status: str  # valid, suspended, revoked or expired, as of now
    status_since: datetime | None
    issued_at: datetime
    seal_certificate: bytes  # DER of the certificate that sealed it
    document: bytes
    qr_payload: str


@dataclass(frozen=True)
class LicenceState:
    """A licence's revocation or suspension as a trust list states it (offline)."""

    status: str  # revoked or suspended
    since: datetime | None


@dataclass
class TrustContext:
    """Everything one verification relies on besides the artefact itself."""

    mode: str  # "online" or "offline"
    root: x509.Certificate
    certificates: Sequence[KnownCertificate]
    as_of: datetime
    paths: PathValidator
    session: Session | None = None
    issuer: str | None = None
    licence_states: dict[str, LicenceState] = field(default_factory=dict)

    def find(self, certificate: x509.Certificate) -> KnownCertificate | None:
        """The PKI's record of exactly this certificate."""
        der = certificate.public_bytes(_DER)
        return next((k for k in self.certificates if k.der == der), None)

    def seals_with_key_id(self, key_id: bytes) -> list[KnownCertificate]:
        """The seal certificates a QR seal's key id can name."""
        return [
            k
            for k in self.certificates
            if k.role == CertificateRole.SEAL.value and qr_key_id(k.certificate) == key_id
        ]

    def registered(self, number: str) -> RegisteredLicence | None:
        """The register's licence ``number`` (online), else None."""
        if self.session is None or not number or len(number) > 64:
            return None
        row = self.session.execute(
            select(Licence, LicenceType, Agency, CertificateRecord.der)
            .join(LicenceType, LicenceType.id == Licence.type_id)
            .join(Agency, Agency.id == Licence.agency_id)
            .join(CertificateRecord, CertificateRecord.id == Licence.seal_certificate_id)
            .where(Licence.number == number)
        ).one_or_none()
        if row is None:
            return None
        licence, licence_type, agency, seal_der = row
        return RegisteredLicence(
            fields=licence_fields(licence, licence_type, agency),
            status=effective_status(licence, self.as_of),
            status_since=licence.status_changed_at,
            issued_at=licence.issued_at,
            seal_certificate=seal_der,
            document=licence.document,
            qr_payload=licence.qr_payload,
        )


_validators: dict[bytes, PathValidator] = {}
_validators_lock = threading.Lock()
_parsed: dict[bytes, x509.Certificate] = {}


def _certificate(der: bytes) -> x509.Certificate:
    cached = _parsed.get(der)
    if cached is None:
        if len(_parsed) > 10_000:
            _parsed.clear()
        cached = _parsed[der] = x509.load_der_x509_certificate(der)
    return cached


def path_validator(
    root: x509.Certificate, intermediates: Iterable[x509.Certificate]
) -> PathValidator:
    """A shared validator for this root and these CA certificates (its cache is kept)."""
    cas = tuple(intermediates)
    digest = hashlib.sha256()
    for cert in (root, *cas):
        digest.update(cert.public_bytes(_DER))
    key = digest.digest()
    with _validators_lock:
        validator = _validators.get(key)
        if validator is None:
            if len(_validators) > 64:
                _validators.clear()
            validator = _validators[key] = PathValidator(root, cas)
        return validator


def _intermediates(certificates: Iterable[KnownCertificate]) -> list[x509.Certificate]:
    return [k.certificate for k in certificates if k.role == CertificateRole.CA.value]


def online_context(session: Session, issuer: str, now: datetime) -> TrustContext:
    """The context of this installation: its PKI's certificates and its register, as of now."""
    agencies = {a.id: a.code for a in session.scalars(select(Agency))}
    known = [
        KnownCertificate(
            certificate=_certificate(record.der),
            role=record.role,
            name=record.name,
            agency=agencies.get(record.agency_id) if record.agency_id is not None else None,
            revoked_at=record.revoked_at,
            revocation_reason=record.revocation_reason,
        )
        for record in session.scalars(select(CertificateRecord).order_by(CertificateRecord.id))
    ]
    roots = [k.certificate for k in known if k.role == CertificateRole.ROOT.value]
    if not roots:
        from authority.pki.service import PkiNotInitialised

        raise PkiNotInitialised("the PKI has no root yet: run `authority init`")
    root = roots[-1]
    return TrustContext(
        mode="online",
        root=root,
        certificates=known,
        as_of=now,
        paths=path_validator(root, _intermediates(known)),
        session=session,
        issuer=issuer,
    )


def _moment(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def offline_context(verified: VerifiedTrustList) -> TrustContext:
    """The context a verified trust list gives: its certificates and licence states."""
    document = verified.document
    known: list[KnownCertificate] = []
    for entry in document.get("certificates", []):
        try:
            certificate = x509.load_pem_x509_certificate(str(entry["pem"]).encode("ascii"))
        except (KeyError, ValueError, TypeError):
            continue
        known.append(
            KnownCertificate(
                certificate=certificate,
                role=str(entry.get("role", "")),
                name=str(entry.get("name", "")),
                agency=entry.get("agency"),
                revoked_at=_moment(entry.get("revoked_at"))
                if entry.get("status") == "revoked"
                else None,
                revocation_reason=entry.get("revocation_reason"),
            )
        )
    states = {
        str(item["number"]): LicenceState(str(item["status"]), _moment(item.get("since")))
        for item in document.get("licences", [])
        if isinstance(item, dict) and item.get("status") in ("revoked", "suspended")
    }
    as_of = _moment(document.get("issued_at"))
    assert as_of is not None  # verify_trust_list checked the sealed content; issued_at is ours
    return TrustContext(
        mode="offline",
        root=verified.root,
        certificates=known,
        as_of=as_of,
        paths=path_validator(verified.root, _intermediates(known)),
        licence_states=states,
    )
