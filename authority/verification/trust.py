"""What a verification trusts: the root, the certificates and their status, the licences' status.

Online, all of it comes from this installation's database (the PKI's
certificates with their live revocation status, and the licence register).
Offline, it comes from a trust list whose seal verified against a pinned root:
certificate status and the licences' revocations and suspensions as of the
list's ``issued_at``.

Online, a :class:`~authority.verification.cache.StatusCache` may keep what was
read for a few seconds (see that module); the report then says when it was read.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.licences.models import Licence, LicenceType
from authority.licences.pdf import field_labels
from authority.licences.service import licence_fields, status_at
from authority.pki.models import CertificateRecord, CertificateRole
from authority.pki.service import PkiNotInitialised
from authority.pki.trust_list import VerifiedTrustList
from authority.seals.qr import qr_key_id
from authority.verification.cache import NotCached, StatusCache
from authority.verification.paths import PathValidator, ValidPath
from authority.verification.report import Check, Outcome, Report

_DER = serialization.Encoding.DER


@dataclass(frozen=True, eq=False)
class KnownCertificate:
    """A certificate of the authority's PKI and its revocation status as known."""

    certificate: x509.Certificate
    role: str
    name: str
    agency: str | None
    revoked_at: datetime | None
    revocation_reason: str | None
    record_id: int | None = None  # the PKI's row (online only)

    @cached_property
    def der(self) -> bytes:
        """The certificate's DER."""
        return self.certificate.public_bytes(_DER)

    @cached_property
    def key_id(self) -> bytes:
        """The key id a QR seal names this certificate by."""
        return qr_key_id(self.certificate)


@dataclass(frozen=True)
class RegisteredLicence:
    """A licence as the register holds it (online only)."""

    fields: dict[str, Any]
    status: str  # valid, suspended, revoked or expired, as of now
    status_since: datetime | None
    issued_at: datetime
    seal_certificate_id: int  # the PKI's row of the certificate that sealed it
    document: bytes
    read_at: datetime  # when its status was read from the register


@dataclass(frozen=True)
class _StatusRow:
    """A licence's row as the register held it at ``read_at`` (what the cache keeps)."""

    licence_id: str
    stored: str
    since: datetime | None
    valid_until: datetime
    issued_at: datetime
    seal_certificate_id: int
    read_at: datetime


@dataclass(frozen=True)
class PkiState:
    """The PKI's certificates and their status as read at ``read_at`` (online)."""

    certificates: tuple[KnownCertificate, ...]
    root: x509.Certificate
    paths: PathValidator
    read_at: datetime


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
    #: Checks made on the context itself (the trust list), reported first.
    preliminary: list[Check] = field(default_factory=list)
    #: When the certificates' status was read (online, when a cache kept it), else ``as_of``.
    certificates_as_of: datetime | None = None
    #: Keeps the register's answers for a few seconds (online; see cache.py).
    cache: StatusCache | None = None

    def new_report(self, form: str, now: datetime) -> Report:
        """An empty report of ``form`` in this context, with its preliminary checks."""
        report = Report(form=form, mode=self.mode, verified_at=now)
        report.checks.extend(self.preliminary)
        return report

    def validate_path(
        self, certificate: x509.Certificate, moment: datetime, check: str
    ) -> ValidPath:
        """:meth:`PathValidator.validate`; from memory alone when online without a session."""
        memory_only = self.mode == "online" and self.session is None
        return self.paths.validate(certificate, moment, check, build=not memory_only)

    def find(self, certificate: x509.Certificate) -> KnownCertificate | None:
        """The PKI's record of exactly this certificate."""
        same = next((k for k in self.certificates if k.certificate is certificate), None)
        if same is not None:
            return same
        der = certificate.public_bytes(_DER)
        return next((k for k in self.certificates if k.der == der), None)

    def seals_with_key_id(self, key_id: bytes) -> list[KnownCertificate]:
        """The seal certificates a QR seal's key id can name."""
        return [
            k
            for k in self.certificates
            if k.role == CertificateRole.SEAL.value and k.agency is not None and k.key_id == key_id
        ]

    def registered(self, number: str) -> RegisteredLicence | None:
        """The register's licence ``number`` (online), else None.

        Its status is read now, or kept from a read at most a few seconds ago
        when the context has a cache; what the licence states never changes
        once sealed, so that part is kept in memory by licence id. Raises
        :class:`NotCached` when the answer needs the database and the context
        has no session.
        """
        if self.mode != "online" or not number or len(number) > 64:
            return None
        if self.session is None and self.cache is None:
            return None
        if self.cache is None:
            row = self._status_row(number)
        else:
            # Others' statuses are read along only with a session (never from memory alone).
            many = None if self.session is None else self._status_rows
            row = self.cache.licence(number, lambda: self._status_row(number), many)
        if row is None:
            return None
        sealed = _sealed_parts.get(row.licence_id)
        if sealed is None:
            sealed = self._load_sealed(row.licence_id)
        return RegisteredLicence(
            fields=sealed[0],
            status=status_at(row.stored, row.valid_until, self.as_of),
            status_since=row.since,
            issued_at=row.issued_at,
            seal_certificate_id=row.seal_certificate_id,
            document=sealed[1],
            read_at=row.read_at,
        )

    def _session(self) -> Session:
        if self.session is None:
            raise NotCached("the register must be read")
        return self.session

    def _status_row(self, number: str) -> _StatusRow | None:
        # Core, not ORM, execution: plain columns, and the ORM layer was a third of the read.
        row = self._session().connection().execute(_STATUS, {"number": number}).one_or_none()
        return None if row is None else _StatusRow(*row, read_at=self.as_of)

    def _status_rows(self, numbers: Sequence[str]) -> dict[str, _StatusRow]:
        rows = self._session().connection().execute(_STATUSES, {"numbers": list(numbers)})
        return {row[6]: _StatusRow(*row[:6], read_at=self.as_of) for row in rows}

    def _load_sealed(self, licence_id: str) -> tuple[dict[str, Any], bytes]:
        licence, licence_type, agency = (
            self._session().execute(_REGISTERED, {"id": licence_id}).one()
        )
        fields = {
            **licence_fields(licence, licence_type, agency),
            "labels": field_labels(licence_type.schema),
        }
        sealed = (fields, licence.document)
        if len(_sealed_parts) >= _SEALED_CACHE_LIMIT:
            _sealed_parts.clear()
        _sealed_parts[licence_id] = sealed
        return sealed


# Built once: statement construction costs more than running these small queries.
_STATUS = select(
    Licence.id,
    Licence.status,
    Licence.status_changed_at,
    Licence.valid_until,
    Licence.issued_at,
    Licence.seal_certificate_id,
).where(Licence.number == bindparam("number"))
_STATUSES = select(*_STATUS.selected_columns, Licence.number).where(
    Licence.number.in_(bindparam("numbers", expanding=True))
)
_REGISTERED = (
    select(Licence, LicenceType, Agency)
    .join(LicenceType, LicenceType.id == Licence.type_id)
    .join(Agency, Agency.id == Licence.agency_id)
    .where(Licence.id == bindparam("id"))
)
#: What each licence states (immutable once sealed), by licence id; bounded.
_sealed_parts: dict[str, tuple[dict[str, Any], bytes]] = {}
_SEALED_CACHE_LIMIT = 20_000
_CERTIFICATES = (
    select(
        CertificateRecord.id,
        CertificateRecord.der,
        CertificateRecord.role,
        CertificateRecord.name,
        Agency.code,
        CertificateRecord.revoked_at,
        CertificateRecord.revocation_reason,
    )
    .outerjoin(Agency, Agency.id == CertificateRecord.agency_id)
    .order_by(CertificateRecord.id)
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


_known_rows: dict[tuple[Any, ...], KnownCertificate] = {}


def _known(row: tuple[Any, ...]) -> KnownCertificate:
    """The certificate of a PKI row, the same object while the row is unchanged."""
    known = _known_rows.get(row)
    if known is None:
        if len(_known_rows) > 10_000:
            _known_rows.clear()
        record_id, der, role, name, agency, revoked_at, reason = row
        known = KnownCertificate(
            _certificate(der), role, name, agency, revoked_at, reason, record_id
        )
        _known_rows[row] = known
    return known


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


def pki_state(session: Session, now: datetime) -> PkiState:
    """The PKI's certificates and their status, read now."""
    rows = session.execute(_CERTIFICATES).all()
    known = tuple(_known(tuple(row)) for row in rows)
    roots = [k.certificate for k in known if k.role == CertificateRole.ROOT.value]
    if not roots:
        raise PkiNotInitialised("the PKI has no root yet: run `authority init`")
    root = roots[-1]
    return PkiState(known, root, path_validator(root, _intermediates(known)), now)


def online_context(
    session: Session | None, issuer: str, now: datetime, cache: StatusCache | None = None
) -> TrustContext:
    """The context of this installation: its PKI's certificates and its register, as of now.

    Without ``cache``, certificate and licence status are read afresh for every
    context; with it, they may be a few seconds old (cache.py). Parsed
    certificates and validated paths (immutable) are kept between contexts.
    With ``session`` None, only what ``cache`` holds is used: :class:`NotCached`
    is raised where the database would be needed.
    """

    def read() -> PkiState:
        if session is None:
            raise NotCached("the PKI's certificates must be read")
        return pki_state(session, now)

    state = read() if cache is None else cache.pki(read)
    return TrustContext(
        mode="online",
        root=state.root,
        certificates=state.certificates,
        as_of=now,
        paths=state.paths,
        session=session,
        issuer=issuer,
        certificates_as_of=state.read_at,
        cache=cache,
    )


def _moment(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def offline_context(verified: VerifiedTrustList, pinned: bool, now: datetime) -> TrustContext:
    """The context a verified trust list gives: its certificates and licence states.

    ``pinned`` says whether the root was checked against a fingerprint given
    out of band; the report says so either way.
    """
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
    as_of = _moment(document.get("issued_at")) or now
    next_update = _moment(document.get("next_update"))
    preliminary = [
        Check(
            "trust-anchor",
            Outcome.PASSED if pinned else Outcome.WARNING,
            f"root {verified.root.fingerprint(hashes.SHA256()).hex()}"
            + (
                " matches the pinned fingerprint"
                if pinned
                else ", taken from the trust list itself"
            ),
        ),
        Check(
            "trust-list",
            Outcome.WARNING if next_update is not None and now > next_update else Outcome.PASSED,
            f"sealed trust list of {document.get('issued_at')}, next update "
            f"{document.get('next_update')}",
        ),
    ]
    return TrustContext(
        mode="offline",
        root=verified.root,
        certificates=known,
        as_of=as_of,
        paths=path_validator(verified.root, _intermediates(known)),
        licence_states=states,
        preliminary=preliminary,
    )
