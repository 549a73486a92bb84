"""The published trust list: every certificate of the PKI and its status, sealed.

The document is the DESIGN.md shape plus one member, ``seal``: a JWS in
compact serialisation with a detached payload (RFC 7515 Appendix F). The
payload is the RFC 8785 canonical JSON of the document without ``seal``. The
JWS header carries ``alg`` (ES256), ``typ`` (``trust-list+jws``) and ``x5c``:
the trust-list seal certificate and the seal CA, which chain to the root.

An offline verifier pins the root (its SHA-256 fingerprint, obtained out of
band), checks the chain in ``x5c`` up to it, verifies the JWS, and then
trusts the certificates the list names. ``docs/pki.md`` states this for
third parties.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from sqlalchemy import select

from authority.agencies.models import Agency
from authority.errors import InvalidInput
from authority.licences.models import Licence
from authority.pki.models import CertificateRecord, CertificateRole
from authority.pki.profiles import TRUST_LIST_POLICY_OID
from authority.pki.service import (
    Pki,
    certificate_pem,
    load_certificate,
)

TRUST_LIST_VALIDITY = timedelta(hours=24)
JWS_TYPE = "trust-list+jws"


class TrustListInvalid(InvalidInput):
    """A trust list's seal does not verify, or does not chain to the pinned root."""

    slug = "trust-list-invalid"
    title = "Trust list invalid"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def iso(moment: datetime) -> str:
    """RFC 3339 UTC timestamp with a ``Z``, to the second."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _entry(record: CertificateRecord, agencies: dict[int, Agency]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "role": record.role,
        "name": record.subject,
        "serial": record.serial,
        "pem": certificate_pem(record),
        "status": "revoked" if record.revoked_at else "good",
        "not_before": iso(record.not_before),
        "not_after": iso(record.not_after),
    }
    if record.agency_id is not None:
        entry["agency"] = agencies[record.agency_id].code
    if record.revoked_at is not None:
        entry["revoked_at"] = iso(record.revoked_at)
        entry["revocation_reason"] = record.revocation_reason
    return entry


def _withdrawn_licences(pki: Pki) -> list[dict[str, Any]]:
    """Licences revoked or suspended, so an offline verifier knows (licence numbers only)."""
    rows = pki.session.execute(
        select(Licence.number, Licence.status, Licence.status_changed_at)
        .where(Licence.status.in_(("revoked", "suspended")))
        .order_by(Licence.number)
    )
    return [
        {"number": number, "status": status, **({"since": iso(since)} if since else {})}
        for number, status, since in rows
    ]


def build_trust_list(pki: Pki, now: datetime) -> dict[str, Any]:
    """The sealed trust list as of ``now``."""
    records = pki.all_certificates()
    agencies = {a.id: a for a in pki.session.query(Agency).all()}
    document: dict[str, Any] = {
        "issuer": pki.settings.base_url,
        "issued_at": iso(now),
        "next_update": iso(now + TRUST_LIST_VALIDITY),
        "certificates": [_entry(r, agencies) for r in records],
        "licences": _withdrawn_licences(pki),
    }
    seal = pki.trust_list_seal()
    document["seal"] = seal_document(pki, document, seal)
    return document


def seal_document(pki: Pki, document: dict[str, Any], seal: CertificateRecord) -> str:
    """The detached ES256 JWS over ``document``'s canonical form, by ``seal``'s key."""
    issuer = pki.session.get(CertificateRecord, seal.issuer_id)
    assert issuer is not None
    header = {
        "alg": "ES256",
        "typ": JWS_TYPE,
        "x5c": [base64.b64encode(r.der).decode("ascii") for r in (seal, issuer)],
    }
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(canonical(document))}"
    der_signature = pki.signer(seal).sign(signing_input.encode("ascii"))
    r, s = decode_dss_signature(der_signature)
    # RFC 7518 §3.4: ES256 signatures are R || S, each 32 octets big-endian.
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    protected = signing_input.split(".", 1)[0]
    return f"{protected}..{_b64url(raw)}"


def canonical(document: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of ``document`` without its ``seal`` member."""
    return rfc8785.dumps({k: v for k, v in document.items() if k != "seal"})


def fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint of a certificate, lowercase hex."""
    return certificate.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class VerifiedTrustList:
    """A trust list whose seal verified against a pinned root."""

    document: dict[str, Any]
    root: x509.Certificate
    sealed_by: x509.Certificate


def verify_trust_list(document: dict[str, Any], root: x509.Certificate) -> VerifiedTrustList:
    """Check ``document``'s seal chains to ``root`` and covers its content.

    Raises :class:`TrustListInvalid` saying what failed.
    """
    seal = document.get("seal")
    if not isinstance(seal, str) or seal.count(".") != 2:
        raise TrustListInvalid("the trust list has no seal (a detached JWS in `seal`)")
    protected, detached, signature = seal.split(".")
    if detached:
        raise TrustListInvalid("the seal's payload must be detached")
    try:
        header = json.loads(_b64url_decode(protected))
        chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
        raw = _b64url_decode(signature)
    except (ValueError, KeyError, TypeError) as exc:
        raise TrustListInvalid(f"the seal is malformed: {exc}") from None
    if header.get("alg") != "ES256" or header.get("typ") != JWS_TYPE or len(raw) != 64:
        raise TrustListInvalid("the seal must be an ES256 JWS of type trust-list+jws")
    if not chain:
        raise TrustListInvalid("the seal carries no certificate")
    try:
        for child, parent in zip(chain, [*chain[1:], root], strict=True):
            child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        raise TrustListInvalid("the seal's certificates do not chain to the pinned root") from None
    if not has_policy(chain[0], TRUST_LIST_POLICY_OID):
        # Every agency seal chains to the same root: only the trust-list policy
        # distinguishes the authority's own seal.
        raise TrustListInvalid("the seal's certificate is not the authority's trust-list seal")
    now = datetime.now(UTC)
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise TrustListInvalid(f"certificate {cert.subject.rfc4514_string()} is not valid now")
    signing_input = f"{protected}.{_b64url(canonical(document))}".encode("ascii")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key = chain[0].public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise TrustListInvalid("the seal certificate's key is not an EC key")
    try:
        public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise TrustListInvalid("the seal does not match the trust list's content") from None
    return VerifiedTrustList(document=document, root=root, sealed_by=chain[0])


def has_policy(certificate: x509.Certificate, policy: str) -> bool:
    """Whether ``certificate`` asserts certificate policy ``policy`` (an OID, dotted)."""
    try:
        policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies)
    except x509.ExtensionNotFound:
        return False
    return any(p.policy_identifier.dotted_string == policy for p in policies.value)


def root_of(document: dict[str, Any]) -> x509.Certificate:
    """The root certificate a trust list names (to compare with a pinned fingerprint)."""
    for entry in document.get("certificates", []):
        if entry.get("role") == CertificateRole.ROOT.value:
            return x509.load_pem_x509_certificate(entry["pem"].encode("ascii"))
    raise TrustListInvalid("the trust list names no root certificate")


def pem_of(certificate: x509.Certificate) -> str:
    """PEM text of a certificate."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


__all__ = [
    "TrustListInvalid",
    "VerifiedTrustList",
    "build_trust_list",
    "canonical",
    "fingerprint",
    "has_policy",
    "load_certificate",
    "pem_of",
    "root_of",
    "verify_trust_list",
]
