"""Detached CAdES-B-T seals on licence documents (ETSI EN 319 122-1).

A seal is a DER ContentInfo holding a CMS SignedData (RFC 5652) over the
document's exact bytes, which it does not carry, served as
``application/pkcs7-signature``. It meets the baseline B-B level (content-type,
message-digest, signing-time and ESS signing-certificate-v2 signed) and B-T
with an RFC 3161 signature time-stamp over the signature value.

Sealing encodes everything that depends only on the certificate once, in
:class:`DocumentSealer`, and assembles each seal from DER pieces. Verification
(:func:`verify_document_seal`) checks the seal and its time-stamp
cryptographically; certificate path validation and revocation are the
caller's, with the chain and times returned.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from authority.errors import AuthorityError, ConfigurationError, InvalidInput
from authority.pki.asn1 import der_child, der_span, original_bytes
from authority.pki.asn1 import der_tlv as _tlv
from authority.pki.keystore import Signer
from authority.pki.x509sign import check_key

__all__ = [
    "SEAL_MAX_BYTES",
    "SEAL_MEDIA_TYPE",
    "DocumentSealer",
    "MalformedSeal",
    "SealAlgorithmRejected",
    "SealDigestMismatch",
    "SealInfo",
    "SealSignatureInvalid",
    "SealTimestamp",
    "SealTimestampError",
    "SigningCertificateMismatch",
    "TimestampInvalid",
    "seal_document",
    "verify_document_seal",
]

SEAL_MEDIA_TYPE = "application/pkcs7-signature"  # RFC 5751 §3.2.1
# Largest seal accepted for verification: ours are ~3-5 KiB; the bound limits parsing work.
SEAL_MAX_BYTES = 1 << 20

Timestamper = Callable[[bytes], bytes]
#: Time-stamps a list of signature values at once: one token each, in order.
BatchTimestamper = Callable[[Sequence[bytes]], list[bytes]]
_DER = serialization.Encoding.DER
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
_DIGESTS: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()
}  # fmt: skip


def _oid(name: str) -> bytes:
    return bytes(core.ObjectIdentifier(name).dump())


_OID_DATA = _oid("1.2.840.113549.1.7.1")
_OID_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_OID_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
_OID_SIGNING_TIME = _oid("1.2.840.113549.1.9.5")
_OID_SIGNATURE_TST = _oid("1.2.840.113549.1.9.16.2.14")  # id-aa-signatureTimeStampToken
_OID_SIGNING_CERTIFICATE_V2 = _oid("1.2.840.113549.1.9.16.2.47")  # RFC 5035 §3
_VERSION_1 = b"\x02\x01\x01"


class SealInvalid(InvalidInput):
    """A seal failed verification; ``indication``/``subindication`` in EN 319 102-1 terms."""

    indication: ClassVar[str] = "TOTAL_FAILED"
    subindication: ClassVar[str] = "GENERIC"


class MalformedSeal(SealInvalid):
    """Not a readable detached CAdES baseline seal.

    EN 319 102-1 §5.2.2 (format checking): TOTAL_FAILED/FORMAT_FAILURE.
    """

    slug = "seal-malformed"
    title = "Malformed seal"
    subindication = "FORMAT_FAILURE"


class SealAlgorithmRejected(SealInvalid):
    """A digest or signature algorithm not accepted (e.g. SHA-1).

    EN 319 102-1 §5.2.8 (signature acceptance, cryptographic constraints):
    INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE_NO_POE.
    """

    slug = "seal-algorithm-rejected"
    title = "Seal algorithm not accepted"
    indication = "INDETERMINATE"
    subindication = "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"


class SigningCertificateMismatch(SealInvalid):
    """No certificate in the seal is both its signer and the one signing-certificate-v2 names.

    EN 319 102-1 §5.2.3 (identification of the signing certificate):
    INDETERMINATE/NO_SIGNING_CERTIFICATE_FOUND.
    """

    slug = "seal-signing-certificate-mismatch"
    title = "Seal signing certificate mismatch"
    indication = "INDETERMINATE"
    subindication = "NO_SIGNING_CERTIFICATE_FOUND"


class SealDigestMismatch(SealInvalid):
    """The document is not the one sealed: EN 319 102-1 §5.2.7 TOTAL_FAILED/HASH_FAILURE."""

    slug = "seal-digest-mismatch"
    title = "Document does not match its seal"
    subindication = "HASH_FAILURE"


class SealSignatureInvalid(SealInvalid):
    """The signature does not verify: EN 319 102-1 §5.2.7 TOTAL_FAILED/SIG_CRYPTO_FAILURE."""

    slug = "seal-signature-invalid"
    title = "Seal signature invalid"
    subindication = "SIG_CRYPTO_FAILURE"


class TimestampInvalid(SealInvalid):
    """A signature time-stamp is unreadable, not over this signature, or not validly signed.

    EN 319 102-1 §5.4 fails the token itself (FORMAT_FAILURE, HASH_FAILURE for a
    wrong imprint, SIG_CRYPTO_FAILURE); reported as TOTAL_FAILED/HASH_FAILURE, the
    common case. §5.5.4 then gives the seal no proof of existence from it.
    """

    slug = "seal-timestamp-invalid"
    title = "Seal time-stamp invalid"
    subindication = "HASH_FAILURE"


class SealTimestampError(AuthorityError):
    """While sealing, the time-stamping authority returned a token not over our signature."""

    slug = "seal-timestamp-unusable"
    title = "Time-stamp token unusable"
    status = 502


@dataclass(frozen=True)
class SealTimestamp:
    """A verified signature time-stamp (RFC 3161 token) of a seal."""

    gen_time: datetime
    tsa_certificate: x509.Certificate
    token: bytes


@dataclass(frozen=True)
class SealInfo:
    """What a cryptographically verified seal states; trust in its chain is still to be checked."""

    signer_certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    signing_time: datetime
    timestamp: SealTimestamp | None
    digest_algorithm: str


# --------------------------------------------------------------------------- sealing


@functools.lru_cache(maxsize=64)
def _time_der(moment: datetime) -> bytes:
    """The signing-time value (RFC 5652 §11.3), truncated to whole seconds."""
    moment = moment.astimezone(UTC)
    if 1950 <= moment.year <= 2049:
        # RFC 5652 §11.3: 1950-2049 MUST be UTCTime, Zulu, with seconds (YYMMDDHHMMSSZ).
        return _tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    # RFC 5652 §11.3: other years MUST be GeneralizedTime without fractional seconds.
    return _tlv(0x18, f"{moment.year:04d}{moment:%m%d%H%M%S}Z".encode())


class DocumentSealer:
    """Seals documents with one key and certificate; what they fix is encoded once.

    ``chain`` holds the issuing CA certificates to carry in the seal (the root
    may be left out). ``timestamp``, if given, receives the signature value and
    returns a DER TimeStampToken over it, which makes the seal B-T; ``stamp_many``,
    if given, does the same for a list of signatures at once (for :meth:`seal_many`).
    Each token's imprint is checked against the signature, unless
    ``timestamp_in_process`` says the tokens come from this process's own TSA,
    stamped over the digest computed here. Instances are immutable and may be
    shared between threads.
    """

    def __init__(
        self,
        signer: Signer,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
        timestamp: Timestamper | None = None,
        *,
        stamp_many: BatchTimestamper | None = None,
        timestamp_in_process: bool = False,
    ) -> None:
        if signer.public_key.public_bytes(*_SPKI) != certificate.public_key().public_bytes(*_SPKI):
            raise ConfigurationError(f"key {signer.handle!r} is not the seal certificate's key")
        digest = signer.algorithm.hash_algorithm.name
        if digest not in ("sha256", "sha384"):
            raise ConfigurationError(f"unsupported seal hash {digest}")
        self._signer = signer
        self._digest = digest
        self._timestamp = timestamp
        self._stamp_many = stamp_many if timestamp is not None else None
        self._check_imprints = not timestamp_in_process
        der = certificate.public_bytes(_DER)
        tbs = asn1_x509.Certificate.load(der)["tbs_certificate"]
        issuer, serial = original_bytes(tbs["issuer"]), original_bytes(tbs["serial_number"])
        # RFC 5035 §4 ESSCertIDv2: hashAlgorithm DEFAULT sha256, so absent in DER (X.690
        # §11.5); issuerSerial names the issuer as a directoryName ([4] EXPLICIT).
        ess_cert_id = _tlv(0x04, hashlib.sha256(der).digest()) + _tlv(
            0x30, _tlv(0x30, _tlv(0xA4, issuer)) + serial
        )
        ess = _tlv(0x30, _tlv(0x30, _tlv(0x30, ess_cert_id)))  # SigningCertificateV2
        self._fixed_attributes = [
            # RFC 5652 §11.1, EN 319 122-1 §5.1.1: content-type MUST be present, = eContentType.
            bytes(cms.CMSAttribute({"type": "content_type", "values": ["data"]}).dump()),
            # EN 319 122-1 §5.2.2.3 and §6.3: ESS signing-certificate-v2 shall be present.
            _tlv(0x30, _OID_SIGNING_CERTIFICATE_V2 + _tlv(0x31, ess)),
        ]
        # RFC 5754 §2: SHA-2 AlgorithmIdentifiers MUST be generated with absent parameters.
        digest_algorithm = algos.DigestAlgorithm({"algorithm": digest, "parameters": None})
        digest_der = bytes(digest_algorithm.dump())
        # RFC 5652 §5.3: version 1 with a sid of issuerAndSerialNumber (§10.2.4).
        sid = _tlv(0x30, issuer + serial)
        self._signer_info_head = _VERSION_1 + sid + digest_der
        # RFC 5753 §2.1.1, RFC 5758 §3.2: ecdsa-with-SHA256/384 with parameters absent.
        algorithm = algos.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"})
        self._signature_algorithm = bytes(algorithm.dump())
        certificates = {der, *(c.public_bytes(_DER) for c in chain)}
        self._signed_data_head = (
            # RFC 5652 §5.1: version 1 (id-data, only X.509 certificates, v1 SignerInfo).
            _VERSION_1
            + _tlv(0x31, digest_der)
            # RFC 5652 §5.2: detached, so eContent is absent and only eContentType remains.
            + _tlv(0x30, _OID_DATA)
            # EN 319 122-1 §6.3: the signing certificate is carried; CertificateSet is a
            # SET OF, sorted for DER (X.690 §11.6).
            + _tlv(0xA0, b"".join(sorted(certificates)))
        )
        # One signature checked against the certificate's key here, not one per seal:
        # a store that answers with another key is caught before anything is sealed.
        check_key(signer)

    def seal(self, content: bytes, signing_time: datetime) -> bytes:
        """The DER detached seal of ``content``, dated ``signing_time`` (whole seconds)."""
        return self.seal_many([content], signing_time)[0]

    def seal_many(self, contents: Sequence[bytes], signing_time: datetime) -> list[bytes]:
        """:meth:`seal` of each of ``contents``, in order.

        The signatures are made one after the other, then the time-stamps (together,
        with ``stamp_many``), and only then is each seal assembled: a batch grouped by
        kind of work issues faster than one sealed licence by licence
        (docs/performance.md, "Before and after").
        """
        if signing_time.tzinfo is None:
            raise ValueError("signing_time must be timezone-aware")
        signing_time_attribute = (
            # EN 319 122-1 §5.2.1 and §6.3: signing-time shall be present in B-B.
            _tlv(0x30, _OID_SIGNING_TIME + _tlv(0x31, _time_der(signing_time)))
        )
        bodies = []
        for content in contents:
            digest = hashlib.new(self._digest, content).digest()
            attributes = [
                *self._fixed_attributes,
                # RFC 5652 §11.2: message-digest MUST be present (EN 319 122-1 §5.1.2).
                _tlv(0x30, _OID_MESSAGE_DIGEST + _tlv(0x31, _tlv(0x04, digest))),
                signing_time_attribute,
            ]
            # RFC 5652 §5.3: signedAttrs MUST be DER, so the SET OF is sorted (X.690 §11.6).
            bodies.append(b"".join(sorted(attributes)))
        # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF (0x31).
        to_sign = [_tlv(0x31, body) for body in bodies]
        sign = self._signer.sign
        signatures = [sign(data) for data in to_sign]
        return [
            self._assemble(body, signature, token)
            for body, signature, token in zip(
                bodies, signatures, self._time_stamps(signatures), strict=True
            )
        ]

    def _time_stamps(self, signatures: list[bytes]) -> Sequence[bytes | None]:
        """The time-stamp token over each signature value (None each for B-B)."""
        if self._timestamp is None:
            return [None] * len(signatures)
        if self._stamp_many is not None:
            tokens = self._stamp_many(signatures)
            if len(tokens) != len(signatures):
                raise SealTimestampError("the time-stamper answered a different number of tokens")
        else:
            tokens = [self._timestamp(signature) for signature in signatures]
        if self._check_imprints:
            for token, signature in zip(tokens, signatures, strict=True):
                _check_token_imprint(token, signature)
        return tokens

    def _assemble(self, attributes_body: bytes, signature: bytes, token: bytes | None) -> bytes:
        unsigned = b""
        if token is not None:
            # EN 319 122-1 §5.3, RFC 3161 Appendix A: the time-stamp is an unsigned attribute.
            unsigned = _tlv(0xA1, _tlv(0x30, _OID_SIGNATURE_TST + _tlv(0x31, token)))
        signer_info = _tlv(
            0x30,
            self._signer_info_head
            + _tlv(0xA0, attributes_body)
            + self._signature_algorithm
            + _tlv(0x04, signature)
            + unsigned,
        )
        signed_data = _tlv(0x30, self._signed_data_head + _tlv(0x31, signer_info))
        return _tlv(0x30, _OID_SIGNED_DATA + _tlv(0xA0, signed_data))


def seal_document(
    content: bytes,
    signer: Signer,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    *,
    signing_time: datetime,
    timestamp: Timestamper | None,
) -> bytes:
    """The DER detached CAdES seal of ``content`` (B-T with ``timestamp``, else B-B)."""
    return DocumentSealer(signer, certificate, chain, timestamp).seal(content, signing_time)


def _check_token_imprint(token: bytes, signature: bytes) -> None:
    """Raise :class:`SealTimestampError` unless ``token`` time-stamps ``signature``.

    Reads only the path to the imprint (ContentInfo, SignedData, encapContentInfo,
    TSTInfo, messageImprint), without asn1crypto: verification reads the rest.
    """
    try:
        _, start, end = der_span(token)
        _, start, end = der_child(token, start, end, 1)  # ContentInfo: contentType, [0]
        _, start, end = der_span(token, start, end)  # SignedData
        # version, digestAlgorithms, encapContentInfo (certificates are not read)
        _, start, end = der_child(token, start, end, 2)
        _, start, end = der_child(token, start, end, 1)  # eContentType, [0] EXPLICIT
        _, start, end = der_span(token, start, end)  # OCTET STRING
        _, start, end = der_span(token, start, end)  # TSTInfo
        _, start, end = der_child(token, start, end, 2)  # version, policy, messageImprint
        _, algorithm_start, algorithm_end = der_child(token, start, end, 0)
        _, hashed_start, hashed_end = der_child(token, start, end, 1)
        _, oid_start, oid_end = der_child(token, algorithm_start, algorithm_end, 0)
        if hashed_end != end:
            raise ValueError("messageImprint has more than two fields")
    except ValueError as exc:
        raise SealTimestampError(f"unreadable time-stamp token: {exc}") from None
    oid, hashed = token[oid_start:oid_end], token[hashed_start:hashed_end]
    name = _IMPRINT_OIDS.get(oid)
    # RFC 3161 Appendix A: the imprint is a hash of the SignerInfo's signature value.
    if name is None or hashlib.new(name, signature).digest() != hashed:
        raise SealTimestampError("the time-stamp token is not over the seal's signature")


_IMPRINT_OIDS = {bytes(algos.DigestAlgorithmId(name).contents): name for name in _DIGESTS}


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class _Cert:
    der: bytes
    issuer: bytes
    serial: int
    cert: x509.Certificate


class _CertRef(NamedTuple):
    """One ESSCertIDv2 (RFC 5035 §4)."""

    hash_algorithm: str
    cert_hash: bytes
    issuers: tuple[bytes, ...] | None
    serial: int | None


@dataclass(frozen=True)
class _SignedData:
    """The parts of a one-signer SignedData that verification reads, as plain values."""

    content_type: str
    content: bytes | None
    certificates: tuple[_Cert, ...]
    sid: tuple[bytes, int]
    digest_algorithm: str
    signature_algorithm: str
    signed_attrs: bytes
    attributes: dict[str, Any]
    signature: bytes
    timestamps: tuple[bytes, ...]


class _Failures(NamedTuple):
    algorithm: type[InvalidInput]
    certificate: type[InvalidInput]
    digest: type[InvalidInput]
    signature: type[InvalidInput]


_SEAL_FAILURES = _Failures(
    SealAlgorithmRejected, SigningCertificateMismatch, SealDigestMismatch, SealSignatureInvalid
)
_TOKEN_FAILURES = _Failures(TimestampInvalid, TimestampInvalid, TimestampInvalid, TimestampInvalid)
_SINGLE_VALUED = {"content_type", "message_digest", "signing_time"}  # RFC 5652 §11.1-11.3


def _read_cert_ref(ref: Any) -> _CertRef:
    algorithm = ref["hash_algorithm"]["algorithm"].native
    issuer_serial = ref["issuer_serial"]
    if isinstance(issuer_serial, core.Void):
        return _CertRef(algorithm, ref["cert_hash"].native, None, None)
    names = tuple(original_bytes(n) for n in issuer_serial["issuer"] if n.name == "directory_name")
    return _CertRef(
        algorithm, ref["cert_hash"].native, names, issuer_serial["serial_number"].native
    )


def check_versions(signed_data: cms.SignedData) -> None:
    """Raise ValueError unless the version numbers are those RFC 5652 prescribes.

    Versions lie outside every signature: a verifier that did not hold them to the
    structure would accept a seal altered there. §5.3: a SignerInfo is version 1
    with an issuerAndSerialNumber sid and 3 with a subjectKeyIdentifier. §5.1: the
    SignedData is 5 with certificates or CRLs of an "other" format, else 4 with
    version 2 attribute certificates, else 3 with version 1 attribute
    certificates, a version 3 SignerInfo or content other than id-data, else 1.
    """
    signer_versions = []
    for signer in signed_data["signer_infos"]:
        version = signer["version"].native
        expected = "v1" if signer["sid"].name == "issuer_and_serial_number" else "v3"
        if version != expected:
            raise ValueError(f"SignerInfo {version} with a {signer['sid'].name} sid")
        signer_versions.append(version)
    certificates = {c.name for c in signed_data["certificates"] or []}
    crls = {c.name for c in signed_data["crls"] or []}
    content_type = signed_data["encap_content_info"]["content_type"].native
    if "other" in certificates or "other" in crls:
        expected = "v5"
    elif "v2_attr_cert" in certificates:
        expected = "v4"
    elif "v1_attr_cert" in certificates or "v3" in signer_versions or content_type != "data":
        expected = "v3"
    else:
        expected = "v1"
    if signed_data["version"].native != expected:
        raise ValueError(f"SignedData {signed_data['version'].native}, expected {expected}")


def _read_signed_data(der: bytes) -> _SignedData:
    """Parse ``der``; every asn1crypto access is here, so callers catch one boundary."""
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    signed_data = info["content"]
    check_versions(signed_data)
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise ValueError(f"{len(signer_infos)} SignerInfos, expected one")
    signer = signer_infos[0]
    encap = signed_data["encap_content_info"]
    content = encap["content"]
    certificates = []
    for choice in signed_data["certificates"]:
        if choice.name == "certificate":
            der = original_bytes(choice.chosen)
            parsed = asn1_x509.Certificate.load(der)
            tbs = parsed["tbs_certificate"]
            issuer, serial = original_bytes(tbs["issuer"]), tbs["serial_number"].native
            cert = x509.load_der_x509_certificate(der)
            certificates.append(_Cert(der, issuer, serial, cert))
    sid = signer["sid"]
    if sid.name != "issuer_and_serial_number":  # the only sid we issue
        raise ValueError(f"SignerInfo with a {sid.name} sid")
    sid_value = original_bytes(sid.chosen["issuer"]), sid.chosen["serial_number"].native
    signed_attrs = signer["signed_attrs"]
    if isinstance(signed_attrs, core.Void):
        raise ValueError("no signed attributes")
    raw_attrs = original_bytes(signed_attrs)
    attributes: dict[str, Any] = {}
    encodings = []
    for attribute in signed_attrs:
        encodings.append(original_bytes(attribute))
        name = attribute["type"].native
        values = attribute["values"]
        if name in attributes:
            # RFC 5652 §11.1-11.3: no second content-type, message-digest or signing-time;
            # this profile refuses any repeated attribute type.
            raise ValueError(f"duplicate signed attribute {name}")
        if name in _SINGLE_VALUED and len(values) != 1:
            raise ValueError(f"signed attribute {name} has {len(values)} values")
        if name == "signing_certificate_v2":
            attributes[name] = tuple(_read_cert_ref(r) for r in values[0]["certs"])
        else:
            attributes[name] = values[0].native if name in _SINGLE_VALUED else None
    # RFC 5652 §5.4: the signature is over the SET OF tag (0x31), not the [0] IMPLICIT one.
    signed = b"\x31" + raw_attrs[1:]
    # RFC 5652 §5.3: signedAttrs MUST be DER: sorted SET OF (X.690 §11.6), minimal lengths.
    if encodings != sorted(encodings) or signed != _tlv(0x31, b"".join(encodings)):
        raise ValueError("signed attributes are not DER encoded")
    timestamps: list[bytes] = []
    unsigned_attrs = signer["unsigned_attrs"]
    for attribute in [] if isinstance(unsigned_attrs, core.Void) else unsigned_attrs:
        if attribute["type"].native == "signature_time_stamp_token":
            timestamps.extend(original_bytes(v) for v in attribute["values"])
    return _SignedData(
        content_type=encap["content_type"].native,
        content=None if isinstance(content, core.Void) else bytes(content),
        certificates=tuple(certificates),
        sid=sid_value,
        digest_algorithm=signer["digest_algorithm"]["algorithm"].native,
        signature_algorithm=signer["signature_algorithm"]["algorithm"].native,
        signed_attrs=signed,
        attributes=attributes,
        signature=bytes(signer["signature"].native),
        timestamps=tuple(timestamps),
    )


def _same_name(a: bytes, b: bytes) -> bool:
    """Whether two DER Names match under RFC 5280 §7.1 (byte equality first: it is common)."""
    if a == b:
        return True
    try:
        return bool(asn1_x509.Name.load(a).hashable == asn1_x509.Name.load(b).hashable)
    except Exception:  # asn1crypto raises many types on hostile input
        return False


def _refers_to(ref: _CertRef, cert: _Cert) -> bool:
    """Whether an ESSCertID(v2) names ``cert`` (RFC 5035 §4: hash, and issuerSerial if given)."""
    if ref.hash_algorithm not in _DIGESTS:
        return False
    if hashlib.new(ref.hash_algorithm, cert.der).digest() != ref.cert_hash:
        return False
    if ref.issuers is None:  # RFC 5035 §3: issuerSerial MAY be absent
        return True
    return cert.serial == ref.serial and any(_same_name(n, cert.issuer) for n in ref.issuers)


def _verify_signer(
    data: _SignedData, pool: Sequence[_Cert], content: bytes, fail: _Failures
) -> _Cert:
    """Check the algorithms, signer certificate, message-digest and signature; return the signer."""
    # Only ECDSA with the SignerInfo's own digest (RFC 5753 §2.1.1, RFC 5758 §3.2).
    if data.digest_algorithm not in _DIGESTS or data.signature_algorithm != (
        f"{data.digest_algorithm}_ecdsa"
    ):
        raise fail.algorithm(
            f"digest {data.digest_algorithm} with signature {data.signature_algorithm} not accepted"
        )
    refs = data.attributes.get("signing_certificate_v2")
    if not refs:
        raise fail.certificate("no signing-certificate-v2 attribute names the signer")
    issuer, serial = data.sid
    candidates = [c for c in pool if c.serial == serial and _same_name(c.issuer, issuer)]
    # RFC 5035 §3: the first ESSCertIDv2 MUST identify the signing certificate.
    signer = next((c for c in candidates if _refers_to(refs[0], c)), None)
    if signer is None:
        raise fail.certificate(
            "no certificate matches both the signer identifier and signing-certificate-v2"
            if candidates
            else "the signer certificate is not in the signature"
        )
    # RFC 5652 §11.2: message-digest MUST equal the digest of the content.
    digest = hashlib.new(data.digest_algorithm, content).digest()
    if data.attributes.get("message_digest") != digest:
        raise fail.digest(f"{data.digest_algorithm} of the content does not match message-digest")
    try:
        key = signer.cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise fail.algorithm("the signer's key is not an elliptic curve key")
    try:
        key.verify(data.signature, data.signed_attrs, ec.ECDSA(_DIGESTS[data.digest_algorithm]))
    except InvalidSignature:
        raise fail.signature("the signature does not verify with the signer's key") from None
    return signer


def _verify_timestamp(token: bytes, signature: bytes, pool: Sequence[_Cert]) -> SealTimestamp:
    """Verify a signature time-stamp token over ``signature`` (RFC 3161, EN 319 122-1 §5.3)."""
    try:
        data = _read_signed_data(token)
        if data.content_type != "tst_info" or data.content is None:
            raise ValueError("the token does not encapsulate a TSTInfo")
        tst_info = tsp.TSTInfo.load(data.content, strict=True)
        imprint = tst_info["message_imprint"]
        imprint_algorithm = imprint["hash_algorithm"]["algorithm"].native
        imprint_value = imprint["hashed_message"].native
        gen_time = tst_info["gen_time"].native
    except Exception as exc:  # asn1crypto raises many types on hostile input
        raise TimestampInvalid(f"unreadable signature time-stamp: {str(exc)[:200]}") from None
    # RFC 3161 Appendix A, EN 319 122-1 §5.3: the imprint is over the signature value.
    if imprint_algorithm not in _DIGESTS:
        raise TimestampInvalid(f"time-stamp imprint hash {imprint_algorithm} not accepted")
    if hashlib.new(imprint_algorithm, signature).digest() != imprint_value:
        raise TimestampInvalid("the time-stamp is not over this seal's signature value")
    # RFC 5652 §11.1: content-type MUST equal eContentType.
    if data.attributes.get("content_type") != "tst_info":
        raise TimestampInvalid("time-stamp content-type attribute is not id-ct-TSTInfo")
    # RFC 3161 §2.4.1 (RFC 5816 §2.2.1): the token names its TSA by ESS signing-certificate-v2
    # (the older signing-certificate, with SHA-1, is not accepted).
    candidates = [*data.certificates, *pool]
    tsa = _verify_signer(data, candidates, data.content, _TOKEN_FAILURES)
    try:
        usage = tsa.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        ok = usage.critical and list(usage.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    except (x509.ExtensionNotFound, ValueError):
        ok = False
    if not ok:
        # RFC 3161 §2.3: the TSA certificate MUST have one critical EKU, id-kp-timeStamping.
        raise TimestampInvalid("the time-stamp signer is not a time-stamping certificate")
    return SealTimestamp(gen_time=gen_time, tsa_certificate=tsa.cert, token=token)


def verify_document_seal(content: bytes, seal_der: bytes) -> SealInfo:
    """Verify the detached seal ``seal_der`` over ``content``; path validation excluded.

    Checks the CAdES baseline structure, the signing certificate reference, the
    message-digest, the signature and every signature time-stamp; the earliest
    time-stamp is returned. Raises a :class:`~authority.errors.InvalidInput`
    subclass naming the failure, and only those, whatever the input.
    """
    if not seal_der or len(seal_der) > SEAL_MAX_BYTES:
        raise MalformedSeal("empty or oversized seal")
    try:
        data = _read_signed_data(seal_der)
    except Exception as exc:  # asn1crypto raises many types on hostile input
        raise MalformedSeal(f"unreadable seal: {str(exc)[:200]}") from None
    # RFC 5652 §5.2: a detached signature has no eContent; our documents are id-data.
    if data.content_type != "data" or data.content is not None:
        raise MalformedSeal("not a detached signature over id-data")
    # RFC 5652 §11.1: content-type MUST be present and equal eContentType.
    if data.attributes.get("content_type") != "data":
        raise MalformedSeal("content-type attribute missing or not id-data")
    # EN 319 122-1 §6.3 (B-B): message-digest, signing-time, signing-certificate-v2 present.
    for name in ("message_digest", "signing_time", "signing_certificate_v2"):
        if name not in data.attributes:
            raise MalformedSeal(f"signed attribute {name} missing")
    signer = _verify_signer(data, data.certificates, content, _SEAL_FAILURES)
    stamps = [_verify_timestamp(t, data.signature, data.certificates) for t in data.timestamps]
    return SealInfo(
        signer_certificate=signer.cert,
        chain=tuple(c.cert for c in data.certificates if c is not signer),
        signing_time=data.attributes["signing_time"],
        timestamp=min(stamps, key=lambda s: s.gen_time, default=None),
        digest_algorithm=data.digest_algorithm,
    )
