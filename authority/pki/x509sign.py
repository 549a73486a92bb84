"""Signing X.509 certificates and CRLs with a key that never leaves its store.

cryptography's builders want a private key object, which an HSM cannot hand
over. So the builder first signs with a throw-away key of the *same curve and
hash* as the real key: the ``signature`` AlgorithmIdentifier inside the TBS
(RFC 5280 §4.1.2.3, §5.1.2.2) is then exactly the one the real signature
needs. The TBS bytes are signed by the :class:`~authority.pki.keystore.Signer`
and the outer structure is re-assembled with asn1crypto around them. The
result is checked against the signer's public key before it is returned, so
a store answering with the wrong key never yields a certificate.
"""

from __future__ import annotations

import threading

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authority.pki.keystore import KeyAlgorithm, KeyStoreError, Signer

__all__ = ["check_key", "check_signature", "sign_certificate", "sign_crl"]

# What check_key signs: a fixed message of no protocol, so its signature can stand for nothing.
_KEY_CHECK_MESSAGE = b"authority key check: does this store sign with the key it names?"

_throwaway_keys: dict[KeyAlgorithm, ec.EllipticCurvePrivateKey] = {}
_throwaway_lock = threading.Lock()


def _throwaway_key(algorithm: KeyAlgorithm) -> ec.EllipticCurvePrivateKey:
    """A process-wide key of ``algorithm``'s curve, used only to shape TBS structures."""
    with _throwaway_lock:
        key = _throwaway_keys.get(algorithm)
        if key is None:
            key = ec.generate_private_key(algorithm.curve)
            _throwaway_keys[algorithm] = key
        return key


def _builder_hash(algorithm: KeyAlgorithm) -> hashes.SHA256 | hashes.SHA384:
    """The hash of ``algorithm`` as the type cryptography's builders accept."""
    digest = algorithm.hash_algorithm
    if not isinstance(digest, hashes.SHA256 | hashes.SHA384):
        raise KeyStoreError(f"unsupported signature hash {digest.name}")
    return digest


def check_signature(signer: Signer, signature: bytes, data: bytes) -> None:
    """Raise :class:`KeyStoreError` unless ``signature`` over ``data`` verifies with ``signer``."""
    try:
        signer.public_key.verify(signature, data, ec.ECDSA(signer.algorithm.hash_algorithm))
    except InvalidSignature:
        raise KeyStoreError(
            f"key {signer.handle!r} returned a signature that does not verify with its public key"
        ) from None


def check_key(signer: Signer) -> None:
    """Raise :class:`KeyStoreError` unless ``signer``'s store signs with ``signer.public_key``.

    For signers that sign many things with one key (seals, time-stamps): one
    check when they are set up, instead of a verification after every signature.
    """
    check_signature(signer, signer.sign(_KEY_CHECK_MESSAGE), _KEY_CHECK_MESSAGE)


def sign_certificate(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    """Return the certificate ``builder`` describes, signed by ``signer``.

    The builder must be complete (subject, issuer, key, serial, validity); its
    extensions are kept byte for byte.
    """
    draft = builder.sign(_throwaway_key(signer.algorithm), _builder_hash(signer.algorithm))
    tbs = draft.tbs_certificate_bytes
    signature = signer.sign(tbs)
    check_signature(signer, signature, tbs)
    parsed = asn1_x509.Certificate.load(draft.public_bytes(serialization.Encoding.DER))
    # RFC 5280 §4.1.1.2: the outer signatureAlgorithm MUST equal the TBS signature field,
    # which holds because both come from the same draft.
    assembled = asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs),
            "signature_algorithm": parsed["signature_algorithm"],
            "signature_value": signature,
        }
    )
    return x509.load_der_x509_certificate(bytes(assembled.dump()))


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, signer: Signer
) -> x509.CertificateRevocationList:
    """Return the CRL ``builder`` describes, signed by ``signer``."""
    draft = builder.sign(_throwaway_key(signer.algorithm), _builder_hash(signer.algorithm))
    tbs = draft.tbs_certlist_bytes
    signature = signer.sign(tbs)
    check_signature(signer, signature, tbs)
    parsed = asn1_crl.CertificateList.load(draft.public_bytes(serialization.Encoding.DER))
    # RFC 5280 §5.1.1.2: signatureAlgorithm MUST equal the signature field of the TBSCertList.
    assembled = asn1_crl.CertificateList(
        {
            "tbs_cert_list": asn1_crl.TbsCertList.load(tbs),
            "signature_algorithm": parsed["signature_algorithm"],
            "signature": signature,
        }
    )
    return x509.load_der_x509_crl(bytes(assembled.dump()))
