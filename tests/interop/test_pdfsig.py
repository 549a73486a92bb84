"""Poppler (pdfsig, i.e. NSS) trusts a PDF sealed with an agency seal certificate.

This is the check behind the seal profile's extended key usage: NSS accepts a
document signer only with emailProtection in its EKU, and it must find the
revocation status by itself through the certificate's AIA (our live OCSP).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import signers

from authority.pki.file_keystore import FileKeyStore
from authority.seals.pdf_signer import KeyStorePdfSigner
from tests.live import PASSPHRASE, LiveAuthority, serve_initialised

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    yield from serve_initialised(request, tmp_path_factory, "file-sqlite")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required (installed by .ci/run)", pytrace=False)
    return path


def _blank_pdf() -> io.BytesIO:
    writer = PdfFileWriter()
    box = generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)])
    writer.insert_page(
        generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Page"),
                generic.NameObject("/MediaBox"): box,
            }
        )
    )
    buffer = io.BytesIO()
    writer.write(buffer)
    buffer.seek(0)
    return buffer


def _sealed_pdf(live: LiveAuthority, code: str) -> bytes:
    created = live.cli_json("agency", "create", "--code", code, "--name", f"Agency {code}")
    seal_pem = created["seal"]["pem"].encode()
    seal = x509.load_pem_x509_certificate(seal_pem)
    seal_ca = x509.load_pem_x509_certificate(httpx.get(f"{live.url}/pki/ca/seal-ca.pem").content)
    store = FileKeyStore(live.workdir / "keys", PASSPHRASE)
    signer = KeyStorePdfSigner(store.signer(created["seal"]["key_handle"]), seal, [seal_ca])
    out = signers.sign_pdf(
        IncrementalPdfFileWriter(_blank_pdf()),
        signers.PdfSignatureMetadata(field_name="Seal"),
        signer=signer,
    )
    return out.getvalue()


def _pdfsig(live: LiveAuthority, pdf: Path, tmp_path: Path) -> str:
    nss = tmp_path / "nss"
    nss.mkdir()
    certutil = _tool("certutil")
    subprocess.run([certutil, "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    root = tmp_path / "root.pem"
    root.write_bytes(httpx.get(f"{live.url}/pki/ca/root.pem").content)
    subprocess.run(
        [
            certutil,
            "-A",
            "-d",
            f"sql:{nss}",
            "-n",
            "authority-root",
            "-t",
            "CT,C,C",
            "-a",
            "-i",
            str(root),
        ],
        check=True,
    )
    result = subprocess.run(
        [_tool("pdfsig"), "-nssdir", f"sql:{nss}", str(pdf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout + result.stderr


def test_pdfsig_trusts_the_seal_and_checks_its_status_online(
    live: LiveAuthority, tmp_path: Path
) -> None:
    pdf = tmp_path / "sealed.pdf"
    pdf.write_bytes(_sealed_pdf(live, "PDFOK"))
    report = _pdfsig(live, pdf, tmp_path)
    assert "Signature Validation: Signature is Valid." in report
    assert "Certificate Validation: Certificate is Trusted." in report


def test_pdfsig_sees_a_revoked_seal(live: LiveAuthority, tmp_path: Path) -> None:
    pdf = tmp_path / "sealed.pdf"
    pdf.write_bytes(_sealed_pdf(live, "PDFREV"))
    live.cli("seal", "revoke", "--agency", "PDFREV", "--reason", "keyCompromise")
    report = _pdfsig(live, pdf, tmp_path)
    assert "Signature Validation: Signature is Valid." in report
    assert "Certificate Validation: Certificate has been Revoked." in report


def test_pdfsig_detects_a_changed_byte(live: LiveAuthority, tmp_path: Path) -> None:
    data = bytearray(_sealed_pdf(live, "PDFTAMPER"))
    index = data.index(b"/MediaBox") + 12  # inside the signed range: the page's box
    data[index] = ord("1") if data[index] != ord("1") else ord("2")
    pdf = tmp_path / "tampered.pdf"
    pdf.write_bytes(bytes(data))
    report = _pdfsig(live, pdf, tmp_path)
    assert "Signature Validation: Digest Mismatch." in report
