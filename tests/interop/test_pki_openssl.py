"""OpenSSL's command line accepts what the PKI publishes, from a live server.

Each case runs against `authority serve` with the file key store and with a
PKCS#11 token (SoftHSM2), on SQLite and PostgreSQL, set up by the operator's
commands (`authority init`, `agency create`, `seal revoke`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import LiveAuthority, serve_initialised

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def openssl(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line is required", pytrace=False)
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {result.stdout}{result.stderr}")
    return result


@pytest.fixture(
    scope="module", params=["file-sqlite", "file-postgresql", "pkcs11-sqlite", "pkcs11-postgresql"]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    yield from serve_initialised(request, tmp_path_factory, request.param)


def _fetch(live: LiveAuthority, path: str, target: Path) -> Path:
    response = httpx.get(f"{live.url}{path}", timeout=10)
    assert response.status_code == 200, path
    target.write_bytes(response.content)
    return target


def _agency(live: LiveAuthority, code: str, tmp_path: Path) -> Path:
    created = live.cli_json("agency", "create", "--code", code, "--name", f"Agency {code}")
    seal = tmp_path / f"{code}.pem"
    seal.write_text(created["seal"]["pem"])
    _fetch(live, "/pki/ca/root.pem", tmp_path / "root.pem")
    _fetch(live, "/pki/ca/seal-ca.pem", tmp_path / "seal-ca.pem")
    return seal


def _crl_pem(live: LiveAuthority, tmp_path: Path) -> Path:
    der = _fetch(live, "/pki/crl/seal-ca.crl", tmp_path / "seal-ca.crl")
    openssl("crl", "-inform", "DER", "-in", der.name, "-out", "seal-ca.crl.pem", cwd=tmp_path)
    _fetch(live, "/pki/crl/root.crl", tmp_path / "root.crl")
    openssl("crl", "-inform", "DER", "-in", "root.crl", "-out", "root.crl.pem", cwd=tmp_path)
    return tmp_path / "seal-ca.crl.pem"


def test_openssl_verifies_the_chain_with_crls_then_sees_the_revocation(
    live: LiveAuthority, tmp_path: Path
) -> None:
    seal = _agency(live, "CRLTEST", tmp_path)
    _crl_pem(live, tmp_path)
    verify = [
        "verify",
        "-crl_check_all",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "seal-ca.pem",
        "-CRLfile",
        "seal-ca.crl.pem",
        "-CRLfile",
        "root.crl.pem",
        seal.name,
    ]
    ok = openssl(*verify, cwd=tmp_path)
    assert ok.stdout.strip() == f"{seal.name}: OK"
    # The seal is fit for S/MIME-style signing, which CMS validators check.
    openssl(
        "verify",
        "-purpose",
        "smimesign",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "seal-ca.pem",
        seal.name,
        cwd=tmp_path,
    )

    live.cli("seal", "revoke", "--agency", "CRLTEST", "--reason", "keyCompromise")
    _crl_pem(live, tmp_path)
    revoked = openssl(*verify, cwd=tmp_path, check=False)
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr


def test_openssl_ocsp_finds_the_responder_in_the_certificate(
    live: LiveAuthority, tmp_path: Path
) -> None:
    seal = _agency(live, "OCSPTEST", tmp_path)
    uri = openssl("x509", "-in", seal.name, "-noout", "-ocsp_uri", cwd=tmp_path).stdout.strip()
    assert uri == f"{live.url}/pki/ocsp"
    query = [
        "ocsp",
        "-issuer",
        "seal-ca.pem",
        "-cert",
        seal.name,
        "-url",
        uri,
        "-CAfile",
        "root.pem",
        "-verify_other",
        "seal-ca.pem",
        "-nonce",
    ]
    good = openssl(*query, cwd=tmp_path)
    assert f"{seal.name}: good" in good.stdout
    assert "Response verify OK" in good.stderr

    live.cli("seal", "revoke", "--agency", "OCSPTEST", "--reason", "cessationOfOperation")
    revoked = openssl(*query, cwd=tmp_path)
    assert f"{seal.name}: revoked" in revoked.stdout
    assert "Reason: cessationOfOperation" in revoked.stdout
    assert "Response verify OK" in revoked.stderr


def test_openssl_ocsp_reads_our_protocol_errors(live: LiveAuthority, tmp_path: Path) -> None:
    response = httpx.post(
        f"{live.url}/pki/ocsp",
        content=b"\x30\x82\x01",
        headers={"Content-Type": "application/ocsp-request"},
        timeout=10,
    )
    (tmp_path / "error.der").write_bytes(response.content)
    shown = openssl(
        "ocsp", "-respin", "error.der", "-resp_text", "-noverify", cwd=tmp_path, check=False
    )
    assert "malformedrequest" in (shown.stdout + shown.stderr).lower()


def test_openssl_verifies_our_timestamps(live: LiveAuthority, tmp_path: Path) -> None:
    (tmp_path / "document.txt").write_text("a licence, byte for byte\n")
    (tmp_path / "other.txt").write_text("a different licence\n")
    openssl(
        "ts",
        "-query",
        "-data",
        "document.txt",
        "-sha256",
        "-cert",
        "-out",
        "query.tsq",
        cwd=tmp_path,
    )
    reply = httpx.post(
        f"{live.url}/pki/tsa",
        content=(tmp_path / "query.tsq").read_bytes(),
        headers={"Content-Type": "application/timestamp-query"},
        timeout=10,
    )
    assert reply.headers["content-type"] == "application/timestamp-reply"
    (tmp_path / "reply.tsr").write_bytes(reply.content)
    _fetch(live, "/pki/ca/root.pem", tmp_path / "root.pem")
    _fetch(live, "/pki/ca/seal-ca.pem", tmp_path / "seal-ca.pem")
    verify = [
        "ts",
        "-verify",
        "-in",
        "reply.tsr",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "seal-ca.pem",
    ]
    ok = openssl(*verify, "-queryfile", "query.tsq", cwd=tmp_path)
    assert "Verification: OK" in ok.stdout
    tampered = openssl(*verify, "-data", "other.txt", cwd=tmp_path, check=False)
    assert "Verification: FAILED" in tampered.stdout + tampered.stderr
    text = openssl("ts", "-reply", "-in", "reply.tsr", "-text", cwd=tmp_path).stdout
    assert "Policy OID: 2.999.4711.2.1" in text
    assert "Accuracy: 0x01 seconds" in text


def test_openssl_reads_our_timestamp_rejections(live: LiveAuthority, tmp_path: Path) -> None:
    reply = httpx.post(
        f"{live.url}/pki/tsa",
        content=b"\x30\x05garbage",
        headers={"Content-Type": "application/timestamp-query"},
        timeout=10,
    )
    (tmp_path / "reply.tsr").write_bytes(reply.content)
    text = openssl("ts", "-reply", "-in", "reply.tsr", "-text", cwd=tmp_path).stdout
    assert "Status: Rejected" in text
    assert "Failure info: the data submitted has the wrong format" in text


def test_private_keys_never_rest_unencrypted(live: LiveAuthority) -> None:
    keys = live.cli_json("keys", "list")["keys"]
    assert {k["label"] for k in keys} >= {
        "root CA",
        "seal-ca CA",
        "time-stamping unit",
        "OCSP responder",
    }
    on_disk = [p for p in live.workdir.rglob("*") if p.is_file()]
    texts = {p: p.read_bytes() for p in on_disk if "softhsm-tokens" not in p.parts}
    assert not [
        p
        for p, data in texts.items()
        if b"BEGIN PRIVATE KEY" in data or b"BEGIN EC PRIVATE KEY" in data
    ]
    key_files = list((live.workdir / "keys").glob("*.pem"))
    if live.env.get("AUTHORITY_KEYSTORE") == "pkcs11":
        # On the token, and only there: no key file and no passphrase anywhere.
        assert {k["keystore"] for k in keys} == {"pkcs11"}
        assert key_files == []
        assert not (live.workdir / "var" / "keystore-passphrase").exists()
    else:
        assert {k["keystore"] for k in keys} == {"file"}
        assert len(key_files) == len(keys)
        assert all(b"BEGIN ENCRYPTED PRIVATE KEY" in texts[p] for p in key_files)
