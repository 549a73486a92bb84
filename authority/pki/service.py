"""The authority's PKI as one unit of work: hierarchy, seals, revocation, CRL, OCSP, TSA.

:class:`Pki` binds a database session, a key store and the PKI settings. It
owns the records (``authority.pki.models``) and delegates the protocols to
``profiles``, ``crl``, ``ocsp`` and ``tsa``, which know nothing of storage.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.db.base import utcnow
from authority.errors import Conflict, NotFound
from authority.pki import profiles
from authority.pki.crl import RevocationReason, RevokedEntry, build_crl
from authority.pki.keystore import KeyStore, Signer
from authority.pki.models import CertificateRecord, CertificateRole, CrlRecord
from authority.pki.ocsp import CertStatus, OcspResponder
from authority.pki.tsa import (
    TimeStampAuthority,
    build_request,
    new_nonce,
    token_from_response,
)

ROOT_NAME = "root"
SEAL_CA_NAME = "seal-ca"
TSA_NAME = "tsa"
OCSP_NAME = "ocsp"
TRUST_LIST_SEAL_NAME = "trust-list"
CA_NAMES = (ROOT_NAME, SEAL_CA_NAME)

CRL_VALIDITY = timedelta(days=1)
# A CRL is re-issued when it is requested with less than this left before nextUpdate,
# so relying parties never fetch one that is about to go stale.
CRL_REFRESH_MARGIN = timedelta(hours=12)
# `authority init` renews these certificates when this little validity is left.
OCSP_RENEWAL_MARGIN = timedelta(days=30)
SEAL_RENEWAL_MARGIN = timedelta(days=90)  # the trust-list seal
TSA_RENEWAL_MARGIN = timedelta(days=365)  # tokens outlive the unit's signing period
# Names agencies may not take: they name the authority's own certificates and URLs.
RESERVED_NAMES = frozenset(
    {ROOT_NAME, SEAL_CA_NAME, TSA_NAME, OCSP_NAME, TRUST_LIST_SEAL_NAME, "authority"}
)


@dataclass(frozen=True)
class PkiSettings:
    """What the PKI needs from the configuration."""

    base_url: str
    name: str
    organisation: str
    country: str

    @property
    def identity(self) -> profiles.AuthorityIdentity:
        """The names of the authority's own certificates."""
        return profiles.AuthorityIdentity(self.name, self.organisation, self.country)


class PkiNotInitialised(NotFound):
    """The CA hierarchy does not exist yet: run `authority init`."""

    slug = "pki-not-initialised"
    title = "PKI not initialised"
    status = 503


class NoActiveSeal(NotFound):
    """The agency has no valid seal certificate (revoked, or never issued)."""

    slug = "no-active-seal"
    title = "No active seal"


def serial_hex(serial: int) -> str:
    """The canonical text form of a certificate serial number: lowercase hex."""
    return format(serial, "x")


def load_certificate(record: CertificateRecord) -> x509.Certificate:
    """The X.509 certificate a record holds."""
    return x509.load_der_x509_certificate(record.der)


def certificate_pem(record: CertificateRecord) -> str:
    """The certificate of ``record`` in PEM form."""
    return load_certificate(record).public_bytes(serialization.Encoding.PEM).decode("ascii")


def timestamp_serial() -> int:
    """A unique RFC 3161 serial: nanoseconds since the epoch, then 64 random bits.

    RFC 3161 §2.4.2 requires uniqueness per TSA; the time prefix keeps serials
    ordered and the random part keeps concurrent workers apart without a
    shared counter. The result is under 2^127, well within 160 bits.
    """
    return (time.time_ns() << 64) | secrets.randbits(64)


class TimeStampingUnits:
    """The TSA of the current time-stamping certificate, kept between requests.

    :meth:`current` looks the certificate up on every call, in the caller's unit of
    work, and reuses the TSA built for that same certificate: a renewed or revoked
    certificate stops being used once its change is committed. What it saves is
    loading the certificates, checking the key with a signature and encoding the
    token's fixed pieces: most of a ``/pki/tsa`` request's time (docs/performance.md).
    """

    def __init__(self) -> None:
        self._held: tuple[int, TimeStampAuthority] | None = None

    def current(self, pki: Pki) -> TimeStampAuthority:
        """The TSA of the current time-stamping certificate."""
        tsu = pki.current(CertificateRole.TSA, TSA_NAME)
        held = self._held  # replaced whole, never changed: no lock needed
        if held is not None and held[0] == tsu.id:
            return held[1]
        authority = pki.time_stamp_authority(tsu)
        self._held = (tsu.id, authority)
        return authority


class Pki:
    """The authority's PKI within one database session."""

    def __init__(self, session: Session, keystore: KeyStore, settings: PkiSettings) -> None:
        self.session = session
        self.keystore = keystore
        self.settings = settings

    # -- lookups ---------------------------------------------------------------------

    def current(self, role: CertificateRole, name: str) -> CertificateRecord:
        """The newest unrevoked, unsuperseded certificate with ``role`` and ``name``."""
        record = self.session.scalar(
            select(CertificateRecord)
            .where(
                CertificateRecord.role == role.value,
                CertificateRecord.name == name,
                CertificateRecord.superseded_at.is_(None),
                CertificateRecord.revoked_at.is_(None),
            )
            .order_by(CertificateRecord.id.desc())
            .limit(1)
        )
        if record is None:
            if role in (
                CertificateRole.ROOT,
                CertificateRole.CA,
                CertificateRole.TSA,
                CertificateRole.OCSP,
            ):
                raise PkiNotInitialised("the CA hierarchy does not exist: run `authority init`")
            raise NotFound(f"no current {role.value} certificate named {name!r}")
        return record

    def ca(self, name: str) -> CertificateRecord:
        """The current certificate of the CA ``name`` (``root`` or ``seal-ca``)."""
        if name not in CA_NAMES:
            raise NotFound(f"no CA named {name!r}; the CAs are {', '.join(CA_NAMES)}")
        role = CertificateRole.ROOT if name == ROOT_NAME else CertificateRole.CA
        return self.current(role, name)

    def by_serial(self, serial: int) -> CertificateRecord | None:
        """The certificate with ``serial``, if this PKI issued it."""
        return self.session.scalar(
            select(CertificateRecord).where(CertificateRecord.serial == serial_hex(serial))
        )

    def all_certificates(self) -> Sequence[CertificateRecord]:
        """Every certificate ever issued, oldest first."""
        return self.session.scalars(select(CertificateRecord).order_by(CertificateRecord.id)).all()

    def signer(self, record: CertificateRecord) -> Signer:
        """The key store signer of ``record``'s key."""
        return self.keystore.signer(record.key_handle)

    # -- issuing ---------------------------------------------------------------------

    def _store(
        self,
        certificate: x509.Certificate,
        role: CertificateRole,
        name: str,
        key_handle: str,
        issuer: CertificateRecord | None,
        agency: Agency | None = None,
    ) -> CertificateRecord:
        record = CertificateRecord(
            role=role.value,
            name=name,
            agency_id=agency.id if agency else None,
            issuer_id=issuer.id if issuer else None,
            serial=serial_hex(certificate.serial_number),
            subject=certificate.subject.rfc4514_string(),
            keystore=self.keystore.kind,
            key_handle=key_handle,
            der=certificate.public_bytes(serialization.Encoding.DER),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )
        self.session.add(record)
        self.session.flush()
        return record

    def _urls(self, issuer_name: str, *, ocsp: bool) -> profiles.PkiUrls:
        return profiles.PkiUrls.for_issuer(self.settings.base_url, issuer_name, ocsp=ocsp)

    def ensure_hierarchy(self, now: datetime) -> list[str]:
        """Create whatever of root, seal CA, TSA, OCSP responder and trust-list seal is
        missing, and renew an OCSP certificate near its end. Returns what was created."""
        identity = self.settings.identity
        created: list[str] = []
        existing = {(r.role, r.name): r for r in self._current_all()}

        root = existing.get((CertificateRole.ROOT.value, ROOT_NAME))
        if root is None:
            key = self.keystore.generate(f"{ROOT_NAME} CA")
            cert = profiles.root_ca_certificate(
                identity.root_subject(), self.keystore.signer(key.handle), not_before=now
            )
            root = self._store(cert, CertificateRole.ROOT, ROOT_NAME, key.handle, None)
            created.append("root CA")

        seal_ca = existing.get((CertificateRole.CA.value, SEAL_CA_NAME))
        if seal_ca is None:
            key = self.keystore.generate(f"{SEAL_CA_NAME} CA")
            cert = profiles.issuing_ca_certificate(
                identity.seal_ca_subject(),
                key.public_key,
                load_certificate(root),
                self.signer(root),
                self._urls(ROOT_NAME, ocsp=False),
                not_before=now,
            )
            seal_ca = self._store(cert, CertificateRole.CA, SEAL_CA_NAME, key.handle, root)
            created.append("seal CA")

        tsu = existing.get((CertificateRole.TSA.value, TSA_NAME))
        if tsu is None or tsu.not_after - now < TSA_RENEWAL_MARGIN:
            if tsu is not None:
                tsu.superseded_at = now
            key = self.keystore.generate("time-stamping unit")
            cert = profiles.tsa_certificate(
                identity.tsa_subject(),
                key.public_key,
                load_certificate(seal_ca),
                self.signer(seal_ca),
                self._urls(SEAL_CA_NAME, ocsp=True),
                not_before=now,
            )
            self._store(cert, CertificateRole.TSA, TSA_NAME, key.handle, seal_ca)
            created.append("time-stamping unit certificate")

        ocsp = existing.get((CertificateRole.OCSP.value, OCSP_NAME))
        if ocsp is None or ocsp.not_after - now < OCSP_RENEWAL_MARGIN:
            if ocsp is not None:
                ocsp.superseded_at = now
            key = self.keystore.generate("OCSP responder")
            cert = profiles.ocsp_responder_certificate(
                identity.ocsp_subject(),
                key.public_key,
                load_certificate(seal_ca),
                self.signer(seal_ca),
                self._urls(SEAL_CA_NAME, ocsp=False),
                not_before=now,
            )
            self._store(cert, CertificateRole.OCSP, OCSP_NAME, key.handle, seal_ca)
            created.append("OCSP responder certificate")

        trust_list_seal = self._trust_list_seal()
        if trust_list_seal is None or trust_list_seal.not_after - now < SEAL_RENEWAL_MARGIN:
            if trust_list_seal is not None:
                trust_list_seal.superseded_at = now
            seal = profiles.AgencySeal(
                code="AUTHORITY", name=self.settings.organisation, country=self.settings.country
            )
            self._issue_seal(
                seal,
                TRUST_LIST_SEAL_NAME,
                None,
                seal_ca,
                now,
                policy_oid=profiles.TRUST_LIST_POLICY_OID,
            )
            created.append("trust-list seal certificate")

        for ca in (root, seal_ca):
            if self._crl_record(ca) is None:
                self._publish_crl(ca, now)
        return created

    def _current_all(self) -> Sequence[CertificateRecord]:
        return self.session.scalars(
            select(CertificateRecord).where(
                CertificateRecord.superseded_at.is_(None), CertificateRecord.revoked_at.is_(None)
            )
        ).all()

    def _trust_list_seal(self) -> CertificateRecord | None:
        return self.session.scalar(
            select(CertificateRecord)
            .where(
                CertificateRecord.role == CertificateRole.SEAL.value,
                CertificateRecord.name == TRUST_LIST_SEAL_NAME,
                CertificateRecord.agency_id.is_(None),
                CertificateRecord.superseded_at.is_(None),
                CertificateRecord.revoked_at.is_(None),
            )
            .order_by(CertificateRecord.id.desc())
            .limit(1)
        )

    def trust_list_seal(self) -> CertificateRecord:
        """The authority's own seal for the trust list (never an agency's)."""
        record = self._trust_list_seal()
        if record is None:
            raise PkiNotInitialised("the trust-list seal does not exist: run `authority init`")
        return record

    def _issue_seal(
        self,
        seal: profiles.AgencySeal,
        name: str,
        agency: Agency | None,
        seal_ca: CertificateRecord,
        now: datetime,
        policy_oid: str = profiles.SEAL_POLICY_OID,
    ) -> CertificateRecord:
        key = self.keystore.generate(f"seal {name}")
        cert = profiles.seal_certificate(
            seal,
            key.public_key,
            load_certificate(seal_ca),
            self.signer(seal_ca),
            self._urls(SEAL_CA_NAME, ocsp=True),
            not_before=now,
            policy_oid=policy_oid,
        )
        return self._store(cert, CertificateRole.SEAL, name, key.handle, seal_ca, agency)

    def issue_agency_seal(self, agency: Agency, now: datetime) -> CertificateRecord:
        """A new key and seal certificate for ``agency``; a previous seal is superseded
        (it stays valid for what it sealed)."""
        seal_ca = self.ca(SEAL_CA_NAME)
        for previous in self._agency_seals(agency):
            previous.superseded_at = now
        seal = profiles.AgencySeal(
            code=agency.code, name=agency.name, country=self.settings.country
        )
        return self._issue_seal(seal, agency.code, agency, seal_ca, now)

    def agency_seal(self, agency: Agency) -> CertificateRecord:
        """The agency's current seal certificate."""
        seals = self._agency_seals(agency)
        if not seals:
            raise NoActiveSeal(
                f"agency {agency.code} has no valid seal: `authority seal rotate --agency "
                f"{agency.code}` issues one"
            )
        return seals[-1]

    def _agency_seals(self, agency: Agency) -> list[CertificateRecord]:
        return list(
            self.session.scalars(
                select(CertificateRecord)
                .where(
                    CertificateRecord.role == CertificateRole.SEAL.value,
                    CertificateRecord.agency_id == agency.id,
                    CertificateRecord.superseded_at.is_(None),
                    CertificateRecord.revoked_at.is_(None),
                )
                .order_by(CertificateRecord.id)
            )
        )

    # -- revocation ------------------------------------------------------------------

    def revoke(
        self, record: CertificateRecord, reason: RevocationReason, now: datetime
    ) -> CertificateRecord:
        """Revoke ``record`` and re-issue its CA's CRL at once."""
        if record.revoked_at is not None:
            raise Conflict(
                f"certificate {record.serial} was already revoked at "
                f"{record.revoked_at.isoformat()} ({record.revocation_reason})"
            )
        if record.issuer_id is None:
            raise Conflict("a root certificate cannot be revoked by its own CRL; retire it")
        record.revoked_at = now
        record.revocation_reason = reason.value
        self.session.flush()
        issuer = self.session.get(CertificateRecord, record.issuer_id)
        assert issuer is not None
        self._publish_crl(issuer, now)
        return record

    def status(self, issuer: x509.Certificate, serial: int) -> CertStatus:
        """OCSP status of ``serial`` as issued by ``issuer`` (RFC 6960 §2.2)."""
        record = self.by_serial(serial)
        if record is None or record.issuer_id is None:
            return CertStatus.unknown()
        issuer_record = self.session.get(CertificateRecord, record.issuer_id)
        if issuer_record is None or issuer_record.der != issuer.public_bytes(
            serialization.Encoding.DER
        ):
            return CertStatus.unknown()
        if record.revoked_at is None:
            return CertStatus.good()
        reason = RevocationReason(record.revocation_reason or "unspecified")
        return CertStatus.revoked(record.revoked_at, reason)

    # -- CRL -------------------------------------------------------------------------

    def _crl_record(self, ca: CertificateRecord) -> CrlRecord | None:
        return self.session.scalar(
            select(CrlRecord).where(CrlRecord.issuer_id == ca.id).with_for_update()
        )

    def _publish_crl(self, ca: CertificateRecord, now: datetime) -> CrlRecord:
        record = self._crl_record(ca)
        number = 1 if record is None else record.number + 1
        revoked = self.session.scalars(
            select(CertificateRecord).where(
                CertificateRecord.issuer_id == ca.id, CertificateRecord.revoked_at.is_not(None)
            )
        ).all()
        entries = [
            RevokedEntry(
                serial=int(r.serial, 16),
                revoked_at=r.revoked_at,
                reason=RevocationReason(r.revocation_reason or "unspecified"),
            )
            for r in revoked
            if r.revoked_at is not None
        ]
        der = build_crl(
            load_certificate(ca),
            self.signer(ca),
            number=number,
            this_update=now,
            next_update=now + CRL_VALIDITY,
            revoked=entries,
        )
        if record is None:
            record = CrlRecord(
                issuer_id=ca.id,
                number=number,
                this_update=now,
                next_update=now + CRL_VALIDITY,
                der=der,
            )
            self.session.add(record)
        else:
            record.number = number
            record.this_update = now
            record.next_update = now + CRL_VALIDITY
            record.der = der
        self.session.flush()
        return record

    def crl(self, ca_name: str, now: datetime) -> CrlRecord:
        """The current CRL of CA ``ca_name``, re-issued first if it is close to stale."""
        ca = self.ca(ca_name)
        record = self._crl_record(ca)
        if record is None or record.next_update - now < CRL_REFRESH_MARGIN:
            record = self._publish_crl(ca, now)
        return record

    # -- OCSP and time-stamping --------------------------------------------------------

    def ocsp_responder(self) -> OcspResponder:
        """The delegated responder, answering for the seal CA."""
        responder = self.current(CertificateRole.OCSP, OCSP_NAME)
        seal_ca = self.session.get(CertificateRecord, responder.issuer_id)
        assert seal_ca is not None
        return OcspResponder(
            load_certificate(responder),
            self.signer(responder),
            [load_certificate(seal_ca)],
            self.status,
        )

    def time_stamp_authority(self, tsu: CertificateRecord | None = None) -> TimeStampAuthority:
        """The time-stamping unit (the current one unless ``tsu`` is given), with its chain
        for ``certReq``."""
        tsu = tsu if tsu is not None else self.current(CertificateRole.TSA, TSA_NAME)
        issuer = self.session.get(CertificateRecord, tsu.issuer_id)
        assert issuer is not None
        return TimeStampAuthority(
            load_certificate(tsu),
            self.signer(tsu),
            serial_source=timestamp_serial,
            chain=[load_certificate(issuer)],
        )

    def timestamper(self) -> Callable[[bytes], bytes]:
        """Time-stamps a signature value with the in-process TSA: an RFC 3161 token (DER)."""
        tsa = self.time_stamp_authority()

        def timestamp(signature: bytes) -> bytes:
            request = build_request(signature, nonce=new_nonce(), cert_req=True)
            return token_from_response(tsa.respond(request, utcnow()))

        return timestamp
