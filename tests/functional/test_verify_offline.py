"""`authority verify` offline: a live server's artefacts, checked with only its trust list."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from tests.live import LiveAuthority, serve_initialised

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["file-sqlite", "file-postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    yield from serve_initialised(request, tmp_path_factory, request.param)


class Agency:
    """The demo agency's API client on a live server."""

    def __init__(self, live: LiveAuthority) -> None:
        self.live = live
        self.demo = live.cli_json("demo")["agency"]
        token = httpx.post(
            f"{live.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(self.demo["client_id"], self.demo["client_secret"]),
        ).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def issue(self) -> dict[str, Any]:
        response = httpx.post(
            f"{self.live.url}/api/v1/licences",
            json=self.demo["licence_example"],
            headers=self.headers,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get(self, url: str) -> bytes:
        response = httpx.get(url, headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.content

    def post(self, url: str, body: dict[str, Any]) -> None:
        assert httpx.post(url, json=body, headers=self.headers).status_code == 200

    def save(self, licence: dict[str, Any], name: str, target: Path) -> Path:
        target.write_bytes(self.get(licence["links"][name]))
        return target


@pytest.fixture(scope="module")
def agency(live: LiveAuthority) -> Agency:
    return Agency(live)


def trust_list(live: LiveAuthority, target: Path) -> Path:
    target.write_bytes(httpx.get(f"{live.url}/pki/trust-list.json").content)
    return target


def verify(live: LiveAuthority, *args: str | Path) -> tuple[int, dict[str, Any] | str]:
    result = live.cli("verify", *(str(a) for a in args), "--json", check=False)
    if result.returncode in (0, 3):
        return result.returncode, json.loads(result.stdout)
    return result.returncode, result.stderr


def root_fingerprint(list_path: Path) -> str:
    document = json.loads(list_path.read_text())
    (root,) = [c for c in document["certificates"] if c["role"] == "root"]
    der = x509.load_pem_x509_certificate(root["pem"].encode()).public_bytes(
        __import__(
            "cryptography.hazmat.primitives.serialization"
        ).hazmat.primitives.serialization.Encoding.DER
    )
    return sha256(der).hexdigest()


def test_every_form_verifies_offline(live: LiveAuthority, agency: Agency, tmp_path: Path) -> None:
    licence = agency.issue()
    listed = trust_list(live, tmp_path / "trust-list.json")
    url = licence["links"]["verify"]
    code, report = verify(live, url, "--trust-list", listed)
    assert code == 0, report
    assert isinstance(report, dict)
    assert (report["verdict"], report["mode"], report["form"]) == ("VALID", "offline", "qr")
    assert {c["name"]: c["outcome"] for c in report["checks"]}["trust-anchor"] == "warning"

    pinned = root_fingerprint(listed)
    code, report = verify(live, url, "--trust-list", listed, "--root-fingerprint", pinned)
    assert code == 0 and isinstance(report, dict)
    assert {c["name"]: c["outcome"] for c in report["checks"]}["trust-anchor"] == "passed"
    code, error = verify(live, url, "--trust-list", listed, "--root-fingerprint", "00" * 32)
    assert code == 1 and "not the pinned root" in str(error)

    pdf = agency.save(licence, "pdf", tmp_path / "licence.pdf")
    code, report = verify(live, pdf, "--trust-list", listed)
    assert code == 0 and isinstance(report, dict) and report["form"] == "pdf", report
    document = agency.save(licence, "document", tmp_path / "licence.json")
    seal = agency.save(licence, "seal", tmp_path / "licence.p7s")
    code, report = verify(live, document, "--seal", seal, "--trust-list", listed)
    assert code == 0 and isinstance(report, dict) and report["form"] == "document", report
    qr = agency.save(licence, "qr", tmp_path / "qr.png")
    code, report = verify(live, qr, "--trust-list", listed)
    assert code == 0 and isinstance(report, dict) and report["form"] == "qr", report

    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(document.read_bytes().replace(b'"valid_until":"20', b'"valid_until":"21'))
    code, report = verify(live, tampered, "--seal", seal, "--trust-list", listed)
    assert code == 3 and isinstance(report, dict)
    assert (report["verdict"], report["subindication"]) == ("INVALID", "HASH_FAILURE")
    changed_pdf = tmp_path / "changed.pdf"
    data = pdf.read_bytes()
    at = data.index(b"/Producer")
    changed_pdf.write_bytes(data[:at] + b"/Pro" + b"X" + data[at + 5 :])
    code, report = verify(live, changed_pdf, "--trust-list", listed)
    assert code == 3 and isinstance(report, dict) and report["verdict"] == "INVALID"


def test_revocation_reaches_the_offline_verifier_through_a_newer_list(
    live: LiveAuthority, agency: Agency, tmp_path: Path
) -> None:
    licence = agency.issue()
    before = trust_list(live, tmp_path / "before.json")
    agency.post(f"{licence['links']['self']}/revoke", {"reason": "obtained by fraud"})
    after = trust_list(live, tmp_path / "after.json")
    url = licence["links"]["verify"]
    code, report = verify(live, url, "--trust-list", after)
    assert code == 3 and isinstance(report, dict)
    assert (report["verdict"], report["indication"]) == ("REVOKED", "TOTAL_PASSED")
    # The older list cannot know: the report says as of when.
    code, report = verify(live, url, "--trust-list", before)
    assert code == 0 and isinstance(report, dict)
    assert report["status_as_of"] == json.loads(before.read_text())["issued_at"]
    # A list edited to hide the revocation no longer matches its seal.
    edited = json.loads(after.read_text())
    edited["licences"] = []
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(edited))
    code, error = verify(live, url, "--trust-list", forged)
    assert code == 1 and "does not match" in str(error)


def test_compromised_seal_without_proof_of_time(
    live: LiveAuthority, agency: Agency, tmp_path: Path
) -> None:
    licence = agency.issue()
    document = agency.save(licence, "document", tmp_path / "licence.json")
    seal = agency.save(licence, "seal", tmp_path / "licence.p7s")
    time.sleep(1.1)  # the revocation in a later second than the seal's time-stamp
    live.cli("seal", "revoke", "--agency", agency.demo["code"], "--reason", "keyCompromise")
    listed = trust_list(live, tmp_path / "trust-list.json")
    # The QR carries no time-stamp: offline, nothing proves it predates the compromise.
    code, report = verify(live, licence["links"]["verify"], "--trust-list", listed)
    assert code == 3 and isinstance(report, dict)
    assert (report["verdict"], report["indication"], report["subindication"]) == (
        "UNKNOWN", "INDETERMINATE", "REVOKED_NO_POE",
    )  # fmt: skip
    # The document's seal is time-stamped before the revocation: still valid.
    code, report = verify(live, document, "--seal", seal, "--trust-list", listed)
    assert code == 0 and isinstance(report, dict), report
    # Online, the register's record is the proof of existence.
    online = httpx.post(f"{live.url}/api/v1/verify", json={"qr": licence["links"]["verify"]})
    assert online.json()["verdict"] == "VALID"
    live.cli("seal", "rotate", "--agency", agency.demo["code"])  # later tests issue again


def test_unreadable_input_is_one_line(live: LiveAuthority, tmp_path: Path) -> None:
    listed = trust_list(live, tmp_path / "trust-list.json")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 40)
    code, error = verify(live, junk, "--trust-list", listed)
    assert (
        code == 1 and str(error).startswith("authority: error:") and "\n" not in str(error).strip()
    )
    code, error = verify(live, "QR", "--trust-list", tmp_path / "missing.json")
    assert code == 1 and "cannot read trust list" in str(error)


def test_a_huge_query_string_is_refused_and_the_server_stays_up(live: LiveAuthority) -> None:
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"GET /v/X?q=" + b"A" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        answer = connection.recv(200)
    # Our middleware answers 414; uvicorn's httptools parser (installed with uvloop) already
    # refuses a request line this long with 400. Either way: a clear 4xx, never a hang.
    assert answer.startswith((b"HTTP/1.1 414", b"HTTP/1.1 400")), answer
    assert httpx.get(f"{live.url}/healthz").status_code == 200
