"""A declared test PKI: root (P-384) → seal CA (P-256) → seal, TSA and OCSP responder.

Built once per test session with the real profiles and an in-memory key
store. Import the fixtures into a test module by name.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from authority.pki import profiles
from authority.pki.keystore import KeyAlgorithm, Signer
from tests.unit.pki.memory_signer import MemoryKeyStore

BASE_URL = "http://127.0.0.1:8000"
IDENTITY = profiles.AuthorityIdentity(
    name="Test Authority", organisation="Test Government", country="CN"
)
AGENCY = profiles.AgencySeal(code="mot", name="Ministry of Testing", country="CN")


@dataclass(frozen=True)
class Pki:
    """The certificates and signers of the test hierarchy."""

    store: MemoryKeyStore
    root: x509.Certificate
    root_signer: Signer
    ca: x509.Certificate
    ca_signer: Signer
    seal: x509.Certificate
    seal_signer: Signer
    tsa: x509.Certificate
    tsa_signer: Signer
    ocsp: x509.Certificate
    ocsp_signer: Signer

    def new_seal(self, agency: profiles.AgencySeal = AGENCY) -> tuple[x509.Certificate, Signer]:
        """Another seal certificate from the same CA, with a fresh key."""
        signer = self.store.signer(self.store.generate(f"seal-{agency.code}").handle)
        cert = profiles.seal_certificate(
            agency, signer.public_key, self.ca, self.ca_signer, ca_urls()
        )
        return cert, signer


def root_urls() -> profiles.PkiUrls:
    """URLs of the root: its CRL and certificate; no OCSP answers for it."""
    return profiles.PkiUrls.for_issuer(BASE_URL, "root", ocsp=False)


def ca_urls() -> profiles.PkiUrls:
    """URLs of the seal CA."""
    return profiles.PkiUrls.for_issuer(BASE_URL, "seal-ca")


@functools.cache
def build_pki() -> Pki:
    """Build (once) the test hierarchy."""
    store = MemoryKeyStore()
    root_signer = store.signer(store.generate("root", KeyAlgorithm.EC_P384).handle)
    root = profiles.root_ca_certificate(IDENTITY.root_subject(), root_signer)
    ca_signer = store.signer(store.generate("seal-ca").handle)
    ca = profiles.issuing_ca_certificate(
        IDENTITY.seal_ca_subject(), ca_signer.public_key, root, root_signer, root_urls()
    )
    tsa_signer = store.signer(store.generate("tsa").handle)
    tsa = profiles.tsa_certificate(
        IDENTITY.tsa_subject(), tsa_signer.public_key, ca, ca_signer, ca_urls()
    )
    ocsp_signer = store.signer(store.generate("ocsp").handle)
    ocsp = profiles.ocsp_responder_certificate(
        IDENTITY.ocsp_subject(), ocsp_signer.public_key, ca, ca_signer, ca_urls()
    )
    seal_signer = store.signer(store.generate("seal-mot").handle)
    seal = profiles.seal_certificate(AGENCY, seal_signer.public_key, ca, ca_signer, ca_urls())
    return Pki(
        store,
        root,
        root_signer,
        ca,
        ca_signer,
        seal,
        seal_signer,
        tsa,
        tsa_signer,
        ocsp,
        ocsp_signer,
    )


def pem(cert: x509.Certificate) -> bytes:
    """PEM of ``cert``."""
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    """Write ``certs`` as one PEM file and return its path."""
    path.write_bytes(b"".join(pem(c) for c in certs))
    return path


def openssl(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the openssl command line; never raises on a non-zero exit."""
    return subprocess.run(
        ["openssl", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="session")
def pki() -> Pki:
    """The shared test hierarchy."""
    return build_pki()


@pytest.fixture
def pki_files(pki: Pki, tmp_path: Path) -> dict[str, Path]:
    """PEM files of every certificate of the hierarchy in ``tmp_path``."""
    return {
        "root": write_pem(tmp_path / "root.pem", pki.root),
        "ca": write_pem(tmp_path / "ca.pem", pki.ca),
        "seal": write_pem(tmp_path / "seal.pem", pki.seal),
        "tsa": write_pem(tmp_path / "tsa.pem", pki.tsa),
        "ocsp": write_pem(tmp_path / "ocsp.pem", pki.ocsp),
    }
