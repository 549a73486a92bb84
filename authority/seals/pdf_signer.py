"""A pyHanko signer whose private key stays in Authority's key store.

pyHanko builds the PDF signature (CMS, byte ranges, DSS); this class only
answers its request for a raw signature by asking the key store, so a seal
made through a PKCS#11 token never exposes the key.
"""

from __future__ import annotations

from collections.abc import Sequence

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from authority.pki.keystore import Signer

# Largest DER ECDSA signature for P-384 (two 49-byte INTEGERs plus headers):
# pyHanko's dry run sizes the signature placeholder with it.
_MAX_SIGNATURE_BYTES = 104


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


class KeyStorePdfSigner(signers.Signer):
    """Signs for pyHanko with ``signer``, presenting ``certificate`` and its ``chain``."""

    def __init__(
        self, signer: Signer, certificate: x509.Certificate, chain: Sequence[x509.Certificate]
    ) -> None:
        self._key = signer
        self._digest = signer.algorithm.hash_algorithm.name
        super().__init__(
            signing_cert=_asn1(certificate),
            cert_registry=SimpleCertificateStore.from_certs([_asn1(c) for c in chain]),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": f"{self._digest}_ecdsa"}),
        )

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        """A DER ECDSA signature of ``data`` from the key store."""
        if digest_algorithm != self._digest:
            raise ValueError(f"this seal key signs with {self._digest}, not {digest_algorithm}")
        if dry_run:
            return bytes(_MAX_SIGNATURE_BYTES)
        return self._key.sign(data)
