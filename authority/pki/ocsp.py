"""An RFC 6960 OCSP responder: DER request in, signed DER response out.

The responder is a delegated one (RFC 6960 §4.2.2.2): its certificate is
issued by each CA it answers for and carries id-kp-OCSPSigning. Certificate
status comes from a lookup callable, so the responder knows nothing of where
revocations are stored. Transport (GET/POST, content types) is the web
layer's; :func:`parse_get_path` decodes the GET form for it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import logging
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from authority.errors import ConfigurationError, InvalidInput, Unavailable
from authority.pki.crl import RevocationReason
from authority.pki.keystore import Signer
from authority.pki.x509sign import check_signature

__all__ = [
    "OCSP_NONCE_MAX_OCTETS",
    "OCSP_REQUEST_MAX_BYTES",
    "OCSP_REQUEST_MEDIA_TYPE",
    "OCSP_RESPONSE_MEDIA_TYPE",
    "CertState",
    "CertStatus",
    "MalformedOcspRequest",
    "OcspResponder",
    "error_response",
    "parse_get_path",
]

log = logging.getLogger(__name__)

# Largest request accepted, in DER octets (and in characters of the GET form).
# A request for one certificate is ~100 octets; 64 KiB leaves room for signed
# requests carrying certificates while bounding parsing work per call.
OCSP_REQUEST_MAX_BYTES = 64 * 1024
OCSP_REQUEST_MEDIA_TYPE = "application/ocsp-request"  # RFC 6960 Appendix C.1
OCSP_RESPONSE_MEDIA_TYPE = "application/ocsp-response"  # RFC 6960 Appendix C.2

# Nonce ::= OCTET STRING (SIZE(1..128)) per RFC 9654 §2.1, which obsoletes RFC 8954
# (SIZE(1..32)); a nonce of 0 or more than 128 octets MUST get malformedRequest.
OCSP_NONCE_MAX_OCTETS = 128
_SIGNATURE_ALGORITHMS = {"sha256": "sha256_ecdsa", "sha384": "sha384_ecdsa"}
_CERTID_HASHES = {"sha1", "sha256", "sha384", "sha512"}


class MalformedOcspRequest(InvalidInput):
    """The bytes presented are not an OCSP request this responder can read."""

    slug = "malformed-ocsp-request"
    title = "Malformed OCSP request"
    status = 400


class CertState(enum.Enum):
    """The three answers of RFC 6960 §2.2."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CertStatus:
    """What the lookup knows of one certificate."""

    state: CertState
    revoked_at: datetime | None = None
    reason: RevocationReason | None = None

    def __post_init__(self) -> None:
        if (self.state is CertState.REVOKED) != (self.revoked_at is not None):
            raise ValueError("revoked_at is required for, and only for, a revoked status")
        if self.revoked_at is not None and self.revoked_at.tzinfo is None:
            raise ValueError("revoked_at must be timezone-aware")

    @classmethod
    def good(cls) -> CertStatus:
        """Issued by us and not revoked."""
        return cls(CertState.GOOD)

    @classmethod
    def revoked(
        cls, revoked_at: datetime, reason: RevocationReason = RevocationReason.UNSPECIFIED
    ) -> CertStatus:
        """Revoked (or on hold) since ``revoked_at`` for ``reason``."""
        return cls(CertState.REVOKED, revoked_at, reason)

    @classmethod
    def unknown(cls) -> CertStatus:
        """Not a certificate this responder knows."""
        return cls(CertState.UNKNOWN)


StatusLookup = Callable[[x509.Certificate, int], CertStatus]


def error_response(status: str) -> bytes:
    """An unsigned OCSPResponse with an error ``status`` and no responseBytes.

    ``status`` is an asn1crypto name: ``malformed_request``, ``internal_error``,
    ``try_later``, ``sign_required`` or ``unauthorized`` (RFC 6960 §4.2.1).
    """
    return bytes(asn1_ocsp.OCSPResponse({"response_status": status}).dump())


def parse_get_path(path_segment: str) -> bytes:
    """The DER request carried by an OCSP GET URL's last segment (RFC 6960 Appendix A.1).

    The segment is the URL-encoding of the base64 encoding of the DER
    request. Padding may be missing and the URL-safe alphabet is tolerated,
    as some clients send either. Raises :class:`MalformedOcspRequest`.
    """
    if len(path_segment) > OCSP_REQUEST_MAX_BYTES * 2:
        raise MalformedOcspRequest("OCSP GET request too long")
    text = urllib.parse.unquote(path_segment).strip().replace("-", "+").replace("_", "/")
    if not text or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", text):
        raise MalformedOcspRequest("OCSP GET path is not base64")
    text = text.rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedOcspRequest("OCSP GET path is not base64") from None
    if not der or len(der) > OCSP_REQUEST_MAX_BYTES:
        raise MalformedOcspRequest("OCSP GET request empty or too long")
    return der


@dataclass(frozen=True)
class _Issuer:
    cert: x509.Certificate
    name_hashes: dict[str, bytes]
    key_hashes: dict[str, bytes]


def _key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (no tag, length or unused-bits octet)."""
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    return bytes(parsed.public_key["public_key"].contents[1:])


def _raw_subject(cert: x509.Certificate) -> bytes:
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    return bytes(parsed["tbs_certificate"]["subject"].dump())


def _has_ocsp_signing(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in eku


class _Malformed(Exception):
    """Internal: the request cannot be answered; reply malformedRequest."""


class OcspResponder:
    """Answers OCSP requests about certificates of ``issuers``."""

    def __init__(
        self,
        responder_cert: x509.Certificate,
        signer: Signer,
        issuers: Sequence[x509.Certificate],
        lookup: StatusLookup,
        *,
        validity: timedelta = timedelta(hours=1),
    ) -> None:
        fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if signer.public_key.public_bytes(*fmt) != responder_cert.public_key().public_bytes(*fmt):
            raise ConfigurationError(f"key {signer.handle!r} is not the OCSP responder's key")
        if signer.algorithm.hash_algorithm.name not in _SIGNATURE_ALGORITHMS:
            raise ConfigurationError(
                f"unsupported responder hash {signer.algorithm.hash_algorithm.name}"
            )
        if not issuers:
            raise ConfigurationError("an OCSP responder needs at least one issuer")
        if validity <= timedelta(0):
            raise ConfigurationError("OCSP response validity must be positive")
        for issuer in issuers:
            self._check_authorised(responder_cert, issuer)
        self._responder_der = responder_cert.public_bytes(serialization.Encoding.DER)
        # RFC 6960 §4.2.1: KeyHash is the SHA-1 hash of the responder's public key BIT STRING.
        self._responder_key_hash = hashlib.sha1(_key_bits(responder_cert)).digest()  # noqa: S324
        self._signer = signer
        self._lookup = lookup
        self._validity = validity
        self._issuers = [
            _Issuer(
                cert=issuer,
                name_hashes={
                    h: hashlib.new(h, _raw_subject(issuer)).digest() for h in _CERTID_HASHES
                },
                key_hashes={h: hashlib.new(h, _key_bits(issuer)).digest() for h in _CERTID_HASHES},
            )
            for issuer in issuers
        ]

    @staticmethod
    def _check_authorised(responder: x509.Certificate, issuer: x509.Certificate) -> None:
        """RFC 6960 §4.2.2.2: the signer MUST be the CA itself or a responder it certified."""
        if responder == issuer:
            return
        try:
            responder.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ConfigurationError(
                f"OCSP responder is not certified by {issuer.subject.rfc4514_string()}: {exc}"
            ) from None
        if not _has_ocsp_signing(responder):
            raise ConfigurationError("OCSP responder certificate lacks id-kp-OCSPSigning")

    def respond(self, request_der: bytes, now: datetime) -> bytes:
        """The DER OCSPResponse answering ``request_der`` as of ``now``."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        try:
            certids, nonce_ext = self._parse(request_der)
        except _Malformed as exc:
            log.info("malformed OCSP request: %s", exc)
            return error_response("malformed_request")
        # RFC 6960 §4.2.2.1 via RFC 5280 §4.1.2.5.2: GeneralizedTime in UTC, no fractions.
        now = now.astimezone(UTC).replace(microsecond=0)
        matches = [self._match(certid) for certid in certids]
        if all(issuer is None for issuer in matches):
            # RFC 6960 §2.3 / RFC 5019 §2.2.3: "unauthorized" when the responder
            # cannot answer authoritatively for any certificate asked about.
            return error_response("unauthorized")
        try:
            singles = [
                self._single(certid, issuer, now)
                for certid, issuer in zip(certids, matches, strict=True)
            ]
            return self._sign(singles, nonce_ext, now)
        except Unavailable:
            log.warning("OCSP status or key unavailable; answering tryLater", exc_info=True)
            return error_response("try_later")
        except Exception:
            log.exception("OCSP responder failed; answering internalError")
            return error_response("internal_error")

    def _parse(
        self, request_der: bytes
    ) -> tuple[list[asn1_ocsp.CertId], asn1_ocsp.ResponseDataExtension | None]:
        if not request_der or len(request_der) > OCSP_REQUEST_MAX_BYTES:
            raise _Malformed("empty or oversized request")
        try:
            request = asn1_ocsp.OCSPRequest.load(request_der, strict=True)
            request.native  # noqa: B018 - parses every field, so errors surface here
            tbs = request["tbs_request"]
            if tbs["version"].native != "v1":
                raise _Malformed("unsupported request version")
            requests = list(tbs["request_list"])
            if not requests:
                raise _Malformed("empty requestList")
            nonce_ext = None
            for ext in tbs["request_extensions"] if tbs["request_extensions"].native else []:
                name = ext["extn_id"].native
                if name == "nonce":
                    nonce = ext["extn_value"].parsed.native
                    if not 1 <= len(nonce) <= OCSP_NONCE_MAX_OCTETS:
                        raise _Malformed(f"nonce of {len(nonce)} octets (RFC 9654 §2.1)")
                    nonce_ext = asn1_ocsp.ResponseDataExtension(
                        {"extn_id": "nonce", "extn_value": core.OctetString(nonce)}
                    )
                elif ext["critical"].native:
                    # RFC 5280 §4.2 semantics, which RFC 6960 §4.4 extensions follow.
                    raise _Malformed(f"unsupported critical request extension {name}")
            certids = []
            for single in requests:
                for ext in (
                    single["single_request_extensions"]
                    if single["single_request_extensions"].native
                    else []
                ):
                    if ext["critical"].native:
                        raise _Malformed(f"unsupported critical extension {ext['extn_id'].native}")
                certids.append(single["req_cert"])
        except _Malformed:
            raise
        except Exception as exc:  # asn1crypto raises many types on hostile input
            raise _Malformed(str(exc)) from None
        return certids, nonce_ext

    def _match(self, certid: asn1_ocsp.CertId) -> _Issuer | None:
        algorithm = certid["hash_algorithm"]["algorithm"].native
        if algorithm not in _CERTID_HASHES:
            return None
        name_hash = bytes(certid["issuer_name_hash"].native)
        key_hash = bytes(certid["issuer_key_hash"].native)
        for issuer in self._issuers:
            if (
                issuer.name_hashes[algorithm] == name_hash
                and issuer.key_hashes[algorithm] == key_hash
            ):
                return issuer
        return None

    def _single(
        self, certid: asn1_ocsp.CertId, issuer: _Issuer | None, now: datetime
    ) -> asn1_ocsp.SingleResponse:
        # RFC 6960 §2.2: "unknown" for a certificate whose issuer this responder does not serve.
        status = (
            CertStatus.unknown()
            if issuer is None
            else self._lookup(issuer.cert, certid["serial_number"].native)
        )
        if status.state is CertState.GOOD:
            cert_status = asn1_ocsp.CertStatus(name="good", value=asn1_ocsp.StatusGood())
        elif status.state is CertState.UNKNOWN:
            cert_status = asn1_ocsp.CertStatus(name="unknown", value=asn1_ocsp.StatusUnknown())
        else:
            assert status.revoked_at is not None  # guaranteed by CertStatus.__post_init__
            info: dict[str, Any] = {
                "revocation_time": status.revoked_at.astimezone(UTC).replace(microsecond=0)
            }
            if status.reason is not None and status.reason is not RevocationReason.UNSPECIFIED:
                # RFC 6960 §4.2.1 revocationReason is OPTIONAL; like RFC 5280 §5.3.1 CRLs,
                # "unspecified" is expressed by its absence.
                info["revocation_reason"] = status.reason.code
            cert_status = asn1_ocsp.CertStatus(name="revoked", value=asn1_ocsp.RevokedInfo(info))
        return asn1_ocsp.SingleResponse(
            {
                # RFC 6960 §4.2.1: the CertID echoes the request's, hash algorithm included.
                "cert_id": certid.copy(),
                "cert_status": cert_status,
                "this_update": now,
                "next_update": now + self._validity,
            }
        )

    def _sign(
        self,
        singles: list[asn1_ocsp.SingleResponse],
        nonce_ext: asn1_ocsp.ResponseDataExtension | None,
        now: datetime,
    ) -> bytes:
        data = {
            "responder_id": asn1_ocsp.ResponderId(name="by_key", value=self._responder_key_hash),
            "produced_at": now,
            "responses": singles,
        }
        if nonce_ext is not None:
            # RFC 9654 §2.1 / RFC 6960 §4.4.1: the nonce is echoed in responseExtensions.
            data["response_extensions"] = [nonce_ext]
        tbs = asn1_ocsp.ResponseData(data)
        tbs_der = bytes(tbs.dump())
        signature = self._signer.sign(tbs_der)
        check_signature(self._signer, signature, tbs_der)
        basic = asn1_ocsp.BasicOCSPResponse(
            {
                "tbs_response_data": tbs,
                # RFC 5758 §3.2: ecdsa-with-SHA256/384, parameters absent.
                "signature_algorithm": {
                    "algorithm": _SIGNATURE_ALGORITHMS[self._signer.algorithm.hash_algorithm.name]
                },
                "signature": signature,
                # RFC 6960 §4.2.2.2: a delegated responder's certificate travels with the response.
                "certs": [asn1_x509.Certificate.load(self._responder_der)],
            }
        )
        response = asn1_ocsp.OCSPResponse(
            {
                "response_status": "successful",
                "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
            }
        )
        return bytes(response.dump())
