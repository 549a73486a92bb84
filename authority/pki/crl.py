"""Certificate revocation lists (RFC 5280 §5) and the revocation reasons they carry."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from authority.errors import ConfigurationError, InvalidInput
from authority.pki.keystore import Signer
from authority.pki.x509sign import sign_crl

__all__ = [
    "RevocationReason",
    "RevokedEntry",
    "build_crl",
    "parse_reason",
    "parse_revocation_reason",
]


class RevocationReason(enum.Enum):
    """CRLReason (RFC 5280 §5.3.1); each value is the RFC's name for the reason."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    REMOVE_FROM_CRL = "removeFromCRL"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    AA_COMPROMISE = "aACompromise"

    @property
    def code(self) -> int:
        """The CRLReason ENUMERATED value (7 is unused)."""
        return _CODES[self]

    @property
    def flag(self) -> x509.ReasonFlags:
        """The matching cryptography ``ReasonFlags`` member."""
        return x509.ReasonFlags(self.value)

    @classmethod
    def from_code(cls, code: int) -> RevocationReason:
        """The reason with CRLReason value ``code``."""
        for reason, value in _CODES.items():
            if value == code:
                return reason
        raise InvalidInput(f"{code} is not a CRLReason value (RFC 5280 §5.3.1)")


_CODES = {
    RevocationReason.UNSPECIFIED: 0,
    RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.CA_COMPROMISE: 2,
    RevocationReason.AFFILIATION_CHANGED: 3,
    RevocationReason.SUPERSEDED: 4,
    RevocationReason.CESSATION_OF_OPERATION: 5,
    RevocationReason.CERTIFICATE_HOLD: 6,
    RevocationReason.REMOVE_FROM_CRL: 8,
    RevocationReason.PRIVILEGE_WITHDRAWN: 9,
    RevocationReason.AA_COMPROMISE: 10,
}


def parse_reason(name: str) -> RevocationReason:
    """The reason named ``name`` as RFC 5280 spells it (e.g. ``keyCompromise``).

    Raises :class:`InvalidInput` naming the valid reasons otherwise.
    """
    try:
        return RevocationReason(name)
    except ValueError:
        valid = ", ".join(r.value for r in RevocationReason)
        raise InvalidInput(
            f"unknown revocation reason {name!r}; valid reasons: {valid}", valid=valid.split(", ")
        ) from None


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate as a CRL lists it."""

    serial: int
    revoked_at: datetime
    reason: RevocationReason = RevocationReason.UNSPECIFIED


def _utc(label: str, moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{label} must be timezone-aware")
    # RFC 5280 §5.1.2.4/§4.1.2.5: times carry whole seconds only.
    return moment.astimezone(UTC).replace(microsecond=0)


def build_crl(
    issuer_cert: x509.Certificate,
    signer: Signer,
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    revoked: Iterable[RevokedEntry],
) -> bytes:
    """A complete (non-delta) v2 CRL of ``issuer_cert``, signed by ``signer``, as DER.

    ``number`` is the cRLNumber: RFC 5280 §5.2.3 requires it to increase
    monotonically for each CRL the issuer publishes, and only the caller,
    who stores the last number, can guarantee that.
    """
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if signer.public_key.public_bytes(*fmt) != issuer_cert.public_key().public_bytes(*fmt):
        raise ConfigurationError(f"key {signer.handle!r} is not the key of the CRL issuer")
    # RFC 5280 §5.2.3: cRLNumber is a non-negative integer of at most 20 octets.
    if not 0 <= number < 1 << 159:
        raise InvalidInput("CRL number must be non-negative and fit in 20 octets")
    start = _utc("this_update", this_update)
    end = _utc("next_update", next_update)
    # RFC 5280 §5.1.2.5: conforming issuers MUST include nextUpdate, later than thisUpdate.
    if end <= start:
        raise InvalidInput("next_update must be later than this_update")
    try:
        issuer_ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)  # RFC 5280 §5.1.2.3: the issuer's subject, byte for byte
        .last_update(start)
        .next_update(end)
        # RFC 5280 §5.2.1: conforming CRL issuers MUST use the AKI extension in all CRLs.
        .add_extension(aki, critical=False)
        # RFC 5280 §5.2.3: conforming CRL issuers MUST include the (non-critical) cRLNumber.
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    seen: set[int] = set()
    for entry in revoked:
        if entry.serial in seen:
            raise InvalidInput(f"serial {entry.serial:x} listed twice")
        seen.add(entry.serial)
        if entry.reason is RevocationReason.REMOVE_FROM_CRL:
            # RFC 5280 §5.3.1: removeFromCRL is only for delta CRLs.
            raise InvalidInput("removeFromCRL may appear only in delta CRLs")
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(_utc("revoked_at", entry.revoked_at))
        )
        if entry.reason is not RevocationReason.UNSPECIFIED:
            # RFC 5280 §5.3.1: reasonCode SHOULD be absent rather than "unspecified";
            # it MUST be non-critical.
            item = item.add_extension(x509.CRLReason(entry.reason.flag), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    crl = sign_crl(builder, signer)
    return crl.public_bytes(serialization.Encoding.DER)


def parse_revocation_reason(name: str) -> RevocationReason:
    """A reason a revocation here may give: final ones only.

    ``removeFromCRL`` exists only in delta CRLs, and ``certificateHold`` needs a
    release this authority does not offer (a held seal is revoked, or left good).
    """
    reason = parse_reason(name)
    if reason in (RevocationReason.REMOVE_FROM_CRL, RevocationReason.CERTIFICATE_HOLD):
        raise InvalidInput(
            f"{reason.value} cannot be used here: revocation is final; use e.g. "
            "keyCompromise, cessationOfOperation, superseded or affiliationChanged"
        )
    return reason
