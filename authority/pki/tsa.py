"""An RFC 3161 time-stamping authority: DER TimeStampReq in, DER TimeStampResp out.

The token is a CMS SignedData (RFC 5652) over a TSTInfo, signed through a
:class:`~authority.pki.keystore.Signer`, with the ESS signing-certificate-v2
attribute (RFC 5035) naming the TSA certificate as RFC 3161 §2.4.1 requires.
Unique serial numbers come from the caller (e.g. a database sequence), which
is the only party that can keep them unique across processes and restarts.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from authority.errors import AuthorityError, ConfigurationError
from authority.pki.asn1 import der_integer, der_oid, der_tlv, original_bytes
from authority.pki.keystore import Signer
from authority.pki.profiles import TSA_POLICY_OID
from authority.pki.x509sign import check_key

__all__ = [
    "TSA_QUERY_MEDIA_TYPE",
    "TSA_REPLY_MEDIA_TYPE",
    "TSA_REQUEST_MAX_BYTES",
    "TimeStampAuthority",
    "TimeStampRejected",
    "TimeStampResp",
    "build_request",
    "new_nonce",
    "rejection",
    "token_from_response",
]

log = logging.getLogger(__name__)

# Largest TimeStampReq accepted, in DER octets. A request is ~60-120 octets;
# 16 KiB bounds parsing work while leaving room for extensions we then refuse.
TSA_REQUEST_MAX_BYTES = 16 * 1024
TSA_QUERY_MEDIA_TYPE = "application/timestamp-query"  # RFC 3161 §3.4
TSA_REPLY_MEDIA_TYPE = "application/timestamp-reply"  # RFC 3161 §3.4

# Message-imprint hashes accepted, with their digest lengths. SHA-1 is refused:
# its collisions let one imprint stand for two documents.
_IMPRINT_HASHES = {"sha256": 32, "sha384": 48, "sha512": 64}
_SIGNATURE_ALGORITHMS = {"sha256": "sha256_ecdsa", "sha384": "sha384_ecdsa"}
_VERSION_1 = b"\x02\x01\x01"
_VERSION_3 = b"\x02\x01\x03"
_GRANTED = b"\x30\x03\x02\x01\x00"  # PKIStatusInfo, status granted (0), RFC 3161 §2.4.2
_OID_SIGNED_DATA = der_oid("1.2.840.113549.1.7.2")
_OID_TST_INFO = der_oid("1.2.840.113549.1.9.16.1.4")  # id-ct-TSTInfo, RFC 3161 §2.4.2
_OID_CONTENT_TYPE = der_oid("1.2.840.113549.1.9.3")
_OID_MESSAGE_DIGEST = der_oid("1.2.840.113549.1.9.4")
_OID_SIGNING_CERTIFICATE_V2 = der_oid("1.2.840.113549.1.9.16.2.47")  # RFC 5035 §3


class TimeStampResp(core.Sequence):
    """TimeStampResp (RFC 3161 §2.4.2) with timeStampToken OPTIONAL.

    asn1crypto's own class makes the token mandatory, which cannot express a
    rejection.
    """

    _fields = [  # noqa: RUF012 - asn1crypto schema
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class TimeStampRejected(AuthorityError):
    """A time-stamping authority refused a request."""

    slug = "timestamp-rejected"
    title = "Time-stamp request rejected"
    status = 502


class _Reject(Exception):
    """Internal: answer with status rejection and this failInfo."""

    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


def new_nonce() -> int:
    """A random 64-bit nonce for a request (RFC 3161 §2.4.1)."""
    return secrets.randbits(64)


def build_request(
    data: bytes,
    *,
    nonce: int | None = None,
    cert_req: bool = True,
    hash_name: str = "sha256",
    policy: str | None = None,
) -> bytes:
    """A DER TimeStampReq for ``data`` hashed with ``hash_name``."""
    request: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": hash_name},
            "hashed_message": hashlib.new(hash_name, data).digest(),
        },
        "cert_req": cert_req,
    }
    if policy is not None:
        request["req_policy"] = policy
    if nonce is not None:
        request["nonce"] = nonce
    return bytes(tsp.TimeStampReq(request).dump())


def token_from_response(response_der: bytes) -> bytes:
    """The DER timeStampToken (a CMS ContentInfo) of a granted response.

    The token is extracted, not validated: its signature, certificate and
    imprint are the verifier's to check. Raises :class:`TimeStampRejected`
    with the status and failInfo otherwise.
    """
    try:
        response = TimeStampResp.load(response_der, strict=True)
        status = response["status"]["status"].native
        token = response["time_stamp_token"]
        # Testing for absence, not .native: parsing the whole token cost ~130 ms.
        if status in ("granted", "granted_with_mods") and not isinstance(token, core.Void):
            # The bytes as received: dump() may re-encode them (see pki.asn1).
            return original_bytes(token)
        fail = response["status"]["fail_info"].native
    except Exception as exc:  # asn1crypto raises many types on hostile input
        raise TimeStampRejected(f"unreadable time-stamp response: {exc}") from None
    raise TimeStampRejected(f"time-stamp request {status}: {', '.join(sorted(fail or []))}")


class TimeStampAuthority:
    """Answers RFC 3161 requests with tokens signed by one time-stamping unit."""

    def __init__(
        self,
        certificate: x509.Certificate,
        signer: Signer,
        *,
        serial_source: Callable[[], int],
        chain: Sequence[x509.Certificate] = (),
        policy_oid: str = TSA_POLICY_OID,
        accuracy: timedelta | None = timedelta(seconds=1),
    ) -> None:
        fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if signer.public_key.public_bytes(*fmt) != certificate.public_key().public_bytes(*fmt):
            raise ConfigurationError(f"key {signer.handle!r} is not the TSA certificate's key")
        try:
            eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        except x509.ExtensionNotFound:
            eku = None
        # RFC 3161 §2.3: the TSA certificate MUST carry one critical EKU: id-kp-timeStamping alone.
        if (
            eku is None
            or not eku.critical
            or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]
        ):
            raise ConfigurationError(
                "TSA certificate needs a critical EKU of id-kp-timeStamping only"
            )
        self._hash = signer.algorithm.hash_algorithm.name
        if self._hash not in _SIGNATURE_ALGORITHMS:
            raise ConfigurationError(f"unsupported TSA hash {self._hash}")
        if accuracy is not None and accuracy <= timedelta(0):
            raise ConfigurationError("TSA accuracy must be positive")
        der_oid(policy_oid)  # raises ValueError on a malformed OID
        self._signer = signer
        self._serial_source = serial_source
        self._policy = policy_oid
        self._accuracy = accuracy
        der = certificate.public_bytes(serialization.Encoding.DER)
        self._cert = asn1_x509.Certificate.load(der)
        self._cert_hash = hashlib.sha256(der).digest()
        tbs = self._cert["tbs_certificate"]
        signing_certificate = tsp.SigningCertificateV2(
            {
                "certs": [
                    {
                        # hashAlgorithm DEFAULT sha256 (RFC 5035 §5.4): absent in DER.
                        "hash_algorithm": {"algorithm": "sha256"},
                        "cert_hash": self._cert_hash,
                        "issuer_serial": {
                            "issuer": [
                                asn1_x509.GeneralName(
                                    name="directory_name", value=tbs["issuer"].copy()
                                )
                            ],
                            "serial_number": tbs["serial_number"].native,
                        },
                    }
                ]
            }
        )
        # Everything a token repeats is encoded once here; _sign joins it around the
        # per-token parts (see DocumentSealer, which does the same for seals).
        self._signing_certificate_attribute = der_tlv(
            0x30, _OID_SIGNING_CERTIFICATE_V2 + der_tlv(0x31, bytes(signing_certificate.dump()))
        )
        self._content_type_attribute = der_tlv(
            0x30, _OID_CONTENT_TYPE + der_tlv(0x31, _OID_TST_INFO)
        )
        # RFC 5754 §2: SHA-2 AlgorithmIdentifiers MUST be generated with absent parameters.
        digest_algorithm = der_tlv(0x30, _digest_oid(self._hash))
        self._digest_algorithms = der_tlv(0x31, digest_algorithm)
        # RFC 5652 §5.3: version 1 with a sid of issuerAndSerialNumber.
        sid = der_tlv(0x30, original_bytes(tbs["issuer"]) + original_bytes(tbs["serial_number"]))
        self._signer_info_head = _VERSION_1 + sid + digest_algorithm
        # RFC 5753 §2.1.1 / RFC 5758 §3.2: ecdsa-with-SHA256/384, parameters absent.
        self._signature_algorithm = der_tlv(
            0x30, bytes(algos.SignedDigestAlgorithmId(_SIGNATURE_ALGORITHMS[self._hash]).dump())
        )
        chain_der = [c.public_bytes(serialization.Encoding.DER) for c in chain]
        # certificates [0] IMPLICIT CertificateSet: a SET OF, sorted for DER (X.690 §11.6).
        self._certificates = der_tlv(0xA0, b"".join(sorted({der, *chain_der})))
        self._policy_der = der_oid(policy_oid)
        # RFC 3161 §2.4.2: tsa [0] GeneralName, a directoryName [4] holding the subject.
        self._tsa_name_der = der_tlv(0xA0, der_tlv(0xA4, original_bytes(tbs["subject"])))
        parts = self._accuracy_value()
        self._accuracy_der = (
            der_tlv(
                0x30,
                # Accuracy: seconds INTEGER, millis [0] and micros [1] IMPLICIT INTEGER.
                (der_integer(parts["seconds"]) if "seconds" in parts else b"")
                + (der_integer(parts["millis"], 0x80) if "millis" in parts else b"")
                + (der_integer(parts["micros"], 0x81) if "micros" in parts else b""),
            )
            if parts
            else b""
        )
        # One signature checked against the certificate's key here, not one per token:
        # a store that answers with another key is caught before any token is made.
        check_key(signer)

    def respond(self, request_der: bytes, now: datetime) -> bytes:
        """The DER TimeStampResp answering ``request_der`` at time ``now``."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        try:
            request = self._parse(request_der)
            token = self._token(
                # RFC 3161 §2.4.2: the request's imprint, algorithm included, in DER.
                bytes(request["message_imprint"].dump(force=True)),
                request["nonce"].native,
                bool(request["cert_req"].native),
                now,
            )
        except _Reject as reject:
            log.info("time-stamp request rejected (%s): %s", reject.fail_info, reject.text)
            return rejection(reject.fail_info, reject.text)
        return der_tlv(0x30, _GRANTED + token)

    def stamp(
        self,
        digest: bytes,
        now: datetime,
        *,
        hash_name: str = "sha256",
        nonce: int | None = None,
        cert_req: bool = True,
    ) -> bytes:
        """The DER TimeStampToken :meth:`respond` would grant for this imprint, in process.

        For callers in this process (sealing): no request to encode and no reply
        to parse. ``digest`` is the ``hash_name`` hash of the time-stamped data.
        Raises :class:`TimeStampRejected` where :meth:`respond` would reject.
        """
        return self._stamp_all([digest], now, hash_name, nonce, cert_req)[0]

    def stamp_many(
        self, digests: Sequence[bytes], now: datetime, *, hash_name: str = "sha256"
    ) -> list[bytes]:
        """:meth:`stamp` of each of ``digests`` (no nonce, certificate included), in order.

        The tokens' signatures are made back to back, then each token is assembled (a
        batch of seals, each time-stamped: ``authority.seals.cades.DocumentSealer.seal_many``).
        """
        return self._stamp_all(digests, now, hash_name, None, True)

    def _stamp_all(
        self,
        digests: Sequence[bytes],
        now: datetime,
        hash_name: str,
        nonce: int | None,
        cert_req: bool,
    ) -> list[bytes]:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        length = _IMPRINT_HASHES.get(hash_name)
        if length is None or any(len(digest) != length for digest in digests):
            raise TimeStampRejected(f"not a {hash_name} imprint accepted by this TSA")
        algorithm = _IMPRINT_ALGORITHMS[hash_name]
        try:
            # RFC 5754 §2: SHA-2 AlgorithmIdentifiers MUST be generated with absent parameters.
            tst_infos = [
                self._tst_info(der_tlv(0x30, algorithm + der_tlv(0x04, digest)), nonce, now)
                for digest in digests
            ]
            return self._sign_all(tst_infos, cert_req)
        except _Reject as reject:
            raise TimeStampRejected(
                f"time-stamp refused ({reject.fail_info}): {reject.text}"
            ) from None

    def _parse(self, request_der: bytes) -> tsp.TimeStampReq:
        if not request_der or len(request_der) > TSA_REQUEST_MAX_BYTES:
            raise _Reject("bad_data_format", "empty or oversized request")
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            request.native  # noqa: B018 - parses every field, so errors surface here
            version = request["version"].native
            imprint = request["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            digest = bytes(imprint["hashed_message"].native)
            policy = request["req_policy"].native
            extensions = request["extensions"].native
        except Exception as exc:  # asn1crypto raises many types on hostile input
            # RFC 3161 §2.4.2: badDataFormat, "the data submitted has the wrong format".
            log.debug("unparsable TimeStampReq: %s", exc)
            raise _Reject("bad_data_format", "not a DER TimeStampReq") from None
        if version != "v1":
            raise _Reject("bad_data_format", f"unsupported version {version}")
        if algorithm not in _IMPRINT_HASHES:
            # RFC 3161 §2.4.2: badAlg, "unrecognized or unsupported Algorithm Identifier".
            raise _Reject("bad_alg", f"message imprint hash {algorithm} not accepted")
        if len(digest) != _IMPRINT_HASHES[algorithm]:
            # RFC 3161 §2.4.1: the hashed message length MUST match the hash algorithm.
            raise _Reject("bad_data_format", f"{algorithm} imprint of {len(digest)} octets")
        if policy is not None and policy != self._policy:
            # RFC 3161 §2.4.2: unacceptedPolicy, "the requested TSA policy is not supported".
            raise _Reject("unaccepted_policy", f"policy {policy} not supported")
        if extensions:
            # RFC 3161 §2.4.1: an extension the server does not recognise, critical or not,
            # SHALL cause a failure (unacceptedExtension); this TSA recognises none.
            raise _Reject("unaccepted_extensions", "no request extensions are supported")
        return request

    def _token(self, imprint: bytes, nonce: int | None, cert_req: bool, now: datetime) -> bytes:
        """The DER TimeStampToken for the DER MessageImprint ``imprint``."""
        return self._sign_all([self._tst_info(imprint, nonce, now)], cert_req)[0]

    def _tst_info(self, imprint: bytes, nonce: int | None, now: datetime) -> bytes:
        """The DER TSTInfo for the DER MessageImprint ``imprint``, with a new serial."""
        try:
            serial = self._serial_source()
        except Exception:
            log.exception("time-stamp serial source failed")
            raise _Reject("system_failure", "serial number unavailable") from None
        # RFC 3161 §2.4.2: serialNumber MUST be unique per TSA; below 2^159 it fits 20 octets.
        if not isinstance(serial, int) or not 0 < serial < 1 << 159:
            log.error("time-stamp serial source returned %r", serial)
            raise _Reject("system_failure", "serial number unavailable")
        # RFC 3161 §2.4.2 TSTInfo, fields in order: version, policy, messageImprint (MUST
        # equal the request's, algorithm included), serialNumber, genTime, accuracy;
        # ordering is omitted (DEFAULT FALSE, which DER encodes by absence); the nonce
        # MUST be present if it was in the request; tsa names the TSA by its subject.
        return der_tlv(
            0x30,
            _VERSION_1
            + self._policy_der
            + imprint
            + der_integer(serial)
            + _generalized_time(self._gen_time(now))
            + self._accuracy_der
            + (b"" if nonce is None else der_integer(nonce))
            + self._tsa_name_der,
        )

    def _sign_all(self, tst_infos: list[bytes], cert_req: bool) -> list[bytes]:
        """:meth:`_sign` of each TSTInfo; a failure is the client's systemFailure."""
        try:
            return self._sign(tst_infos, cert_req)
        except Exception:
            log.exception("time-stamp signing failed")
            raise _Reject("system_failure", "signing failed") from None

    def _gen_time(self, now: datetime) -> datetime:
        now = now.astimezone(UTC)
        if self._accuracy is None or self._accuracy >= timedelta(seconds=1):
            return now.replace(microsecond=0)
        # RFC 3161 §2.4.2: fractions of seconds are allowed (trailing zeros are dropped).
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def _accuracy_value(self) -> dict[str, int]:
        if self._accuracy is None:
            return {}
        micros_total = self._accuracy // timedelta(microseconds=1)
        seconds, rest = divmod(micros_total, 1_000_000)
        millis, micros = divmod(rest, 1000)
        # RFC 3161 §2.4.2: absent fields mean zero; millis and micros range over 1..999.
        value = {"seconds": seconds, "millis": millis, "micros": micros}
        return {k: v for k, v in value.items() if v}

    def _sign(self, tst_infos: list[bytes], cert_req: bool) -> list[bytes]:
        """The tokens: a CMS SignedData (RFC 5652) over each TSTInfo, from fixed DER pieces;
        the signatures are made one after the other, then each token is assembled."""
        every_attributes = []
        for tst_info in tst_infos:
            digest = hashlib.new(self._hash, tst_info).digest()
            # RFC 5652 §5.3: signed attributes MUST include content-type and message-digest;
            # RFC 3161 §2.4.1 as updated by RFC 5816: SigningCertificate(V2) MUST be present.
            # The SET OF is DER, so sorted (X.690 §11.6).
            every_attributes.append(
                b"".join(
                    sorted(
                        (
                            self._content_type_attribute,
                            der_tlv(
                                0x30, _OID_MESSAGE_DIGEST + der_tlv(0x31, der_tlv(0x04, digest))
                            ),
                            self._signing_certificate_attribute,
                        )
                    )
                )
            )
        # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF (0x31).
        to_sign = [der_tlv(0x31, attributes) for attributes in every_attributes]
        sign = self._signer.sign
        signatures = [sign(data) for data in to_sign]
        # RFC 3161 §2.4.1: with certReq true the TSA certificate MUST be in certificates;
        # other certificates MAY be. With certReq false the field MUST be absent.
        certificates = self._certificates if cert_req else b""
        tokens = []
        for tst_info, attributes, signature in zip(
            tst_infos, every_attributes, signatures, strict=True
        ):
            signer_info = der_tlv(
                0x30,
                self._signer_info_head
                + der_tlv(0xA0, attributes)  # signedAttrs [0] IMPLICIT
                + self._signature_algorithm
                + der_tlv(0x04, signature),
            )
            encap = der_tlv(0x30, _OID_TST_INFO + der_tlv(0xA0, der_tlv(0x04, tst_info)))
            signed_data = der_tlv(
                0x30,
                # RFC 5652 §5.1: version 3, as eContentType is not id-data.
                _VERSION_3
                + self._digest_algorithms
                + encap
                + certificates
                + der_tlv(0x31, signer_info),
            )
            tokens.append(der_tlv(0x30, _OID_SIGNED_DATA + der_tlv(0xA0, signed_data)))
        return tokens


def _digest_oid(name: str) -> bytes:
    """The DER OBJECT IDENTIFIER of the hash ``name`` (``sha256``...)."""
    return bytes(algos.DigestAlgorithmId(name).dump())


@functools.lru_cache(maxsize=64)
def _generalized_time(moment: datetime) -> bytes:
    """GeneralizedTime in UTC, fractions without trailing zeros (RFC 3161 §2.4.2)."""
    text = f"{moment.year:04d}{moment:%m%d%H%M%S}"
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return der_tlv(0x18, (text + "Z").encode("ascii"))


# The AlgorithmIdentifier of each accepted imprint hash, parameters absent (RFC 5754 §2).
_IMPRINT_ALGORITHMS = {name: der_tlv(0x30, _digest_oid(name)) for name in _IMPRINT_HASHES}


def rejection(fail_info: str, text: str) -> bytes:
    """A DER TimeStampResp with status rejection, ``fail_info`` and no token (RFC 3161 §2.4.2).

    ``fail_info`` is an asn1crypto PKIFailureInfo name (``bad_alg``, ``bad_request``,
    ``bad_data_format``, ``unaccepted_policy``, ``system_failure``, ...); ``text`` becomes
    the statusString.
    """
    status = {"status": "rejection", "status_string": [text], "fail_info": {fail_info}}
    return bytes(TimeStampResp({"status": status}).dump())
