"""Public verification over HTTP: every verdict from a real artefact, and hostile input."""

from __future__ import annotations

import io
import re
import time
import zlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from PIL import Image

from authority.agencies.service import find_agency, revoke_seal, rotate_seal
from authority.app import create_app
from authority.bootstrap import pki_for
from authority.config import Settings
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.licences.sealing import AgencySealer
from authority.pki.crl import RevocationReason
from authority.seals.qr import PAYLOAD_ALPHABET, payload_of
from authority.verification.report import Report
from authority.verification.service import verify_qr_online
from tests.functional.test_licences_http import _agency, _body

VERIFY = "/api/v1/verify"


@pytest.fixture
def agency(instance: Instance, database: Database, client: TestClient) -> dict[str, str]:
    return _agency(
        instance, database, "MOT", "licences:issue licences:revoke licences:read", client
    )


def issue(client: TestClient, agency: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = client.post("/api/v1/licences", json=_body(**changes), headers=agency)
    assert response.status_code == 201, response.text
    return dict(response.json())


def verify_qr(client: TestClient, text: str) -> dict[str, Any]:
    response = client.post(VERIFY, json={"qr": text})
    assert response.status_code == 200, response.text
    return dict(response.json())


def checks(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["outcome"] for c in report["checks"]}


def rendition(
    client: TestClient, agency: dict[str, str], licence: dict[str, Any], name: str
) -> bytes:
    response = client.get(licence["links"][name], headers=agency)
    assert response.status_code == 200
    return response.content


def test_a_fresh_licence_qr_is_valid(client: TestClient, agency: dict[str, str]) -> None:
    licence = issue(client, agency)
    report = verify_qr(client, licence["links"]["verify"])
    assert report["verdict"] == "VALID"
    assert report["indication"] == "TOTAL_PASSED"
    assert report["subindication"] is None
    assert report["form"] == "qr" and report["mode"] == "online"
    assert checks(report) == {
        "qr-seal": "passed",
        "certificate-path": "passed",
        "certificate-role": "passed",
        "certificate-status": "passed",
        "register": "passed",
        "licence-status": "passed",
    }
    assert report["licence"]["number"] == licence["number"]
    assert report["licence"]["holder"]["name"] == "张三"
    assert report["signer"]["agency"] == "MOT"
    # The bare payload works as well as the URL.
    assert verify_qr(client, payload_of(licence["links"]["verify"]))["verdict"] == "VALID"


def test_the_lean_route_answers_the_report_built_directly(
    client: TestClient, agency: dict[str, str], instance: Instance
) -> None:
    """POST /api/v1/verify is served ahead of FastAPI's routing (authority/web/lean.py):
    its body is, byte for byte, the JSON of the report ``verify_qr_online`` builds, and
    it is still documented, labelled and refused with problem details."""
    url = issue(client, agency)["links"]["verify"]
    verify_qr(client, url)  # statuses read: the reports below come from the same reads

    def direct() -> Report:
        settings, cache = instance.settings, instance.verification_cache
        return verify_qr_online(instance.database, settings.issuer, cache, url)

    for _ in range(5):  # reports are to the second: take a pair within one second
        before = direct()
        response = client.post(VERIFY, json={"qr": url})
        after = direct()
        if before.as_dict() == after.as_dict():
            break
    expected = JSONResponse(after.as_dict())
    assert response.status_code == 200
    assert response.content == expected.body
    assert response.headers["content-type"] == expected.headers["content-type"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert len(response.headers["x-request-id"]) == 16
    operation = client.get("/openapi.json").json()["paths"][VERIFY]["post"]
    assert operation["operationId"] == "verify_api_v1_verify_post"
    assert set(operation["requestBody"]["content"]) == {
        "application/json",
        "multipart/form-data",
    }
    assert operation["requestBody"]["content"]["application/json"]["schema"]["required"] == ["qr"]
    wrong_method = client.get(VERIFY)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert wrong_method.headers["content-type"] == "application/problem+json"
    landing = "/" + url.split("/", 3)[3]  # the landing page (/V/ in a QR): lean, not documented
    page = client.get(landing)
    assert page.status_code == 200 and 'data-verdict="VALID"' in page.text
    assert "/v/{payload}" not in client.get("/openapi.json").json()["paths"]
    assert client.head(landing).status_code == 405  # GET only, as before
    metrics = client.get("/metrics").text
    assert 'route="/api/v1/verify",status="200"' in metrics
    assert f'route="{landing[:3]}{{payload}}",status="200"' in metrics


def test_an_oversized_request_is_refused_before_it_is_read(
    settings: Settings, instance: Instance
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 2048})
    client = TestClient(create_app(small, instance))
    body = b'{"qr": "' + b"A" * 4096 + b'"}'
    declared = client.post(VERIFY, content=body, headers={"content-type": "application/json"})

    def chunks() -> Iterator[bytes]:
        yield from (body[i : i + 1024] for i in range(0, len(body), 1024))

    streamed = client.post(VERIFY, content=chunks(), headers={"content-type": "application/json"})
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/problems/payload-too-large")


def test_one_changed_character_is_never_valid(client: TestClient, agency: dict[str, str]) -> None:
    url = issue(client, agency)["links"]["verify"]
    prefix, payload = url.rsplit("/", 1)
    seen = set()
    for index in range(0, len(payload), 7):
        for replacement in "0Z:":
            if payload[index] == replacement:
                continue
            changed = payload[:index] + replacement + payload[index + 1 :]
            report = verify_qr(client, f"{prefix}/{changed}")
            assert report["verdict"] == "INVALID", (index, report)
            assert report["indication"] in ("TOTAL_FAILED", "INDETERMINATE")
            seen.add(report["subindication"])
    assert seen <= {"FORMAT_FAILURE", "SIG_CRYPTO_FAILURE", "NO_SIGNING_CERTIFICATE_FOUND"}
    assert "SIG_CRYPTO_FAILURE" in seen


def test_lifecycle_verdicts(client: TestClient, agency: dict[str, str]) -> None:
    licence = issue(client, agency)
    url, links = licence["links"]["verify"], licence["links"]
    assert (
        client.post(
            f"{links['self']}/suspend", json={"reason": "inspection"}, headers=agency
        ).status_code
        == 200
    )
    report = verify_qr(client, url)
    assert (report["verdict"], report["indication"]) == ("SUSPENDED", "TOTAL_PASSED")
    assert checks(report)["licence-status"] == "failed"
    client.post(f"{links['self']}/reinstate", json={"reason": "cleared"}, headers=agency)
    assert verify_qr(client, url)["verdict"] == "VALID"
    client.post(f"{links['self']}/revoke", json={"reason": "fraud"}, headers=agency)
    assert verify_qr(client, url)["verdict"] == "REVOKED"


def test_expired_licence(client: TestClient, agency: dict[str, str]) -> None:
    now = utcnow()
    licence = issue(
        client,
        agency,
        valid_from=(now - timedelta(days=10)).isoformat(),
        valid_until=(now - timedelta(days=1)).isoformat(),
    )
    report = verify_qr(client, licence["links"]["verify"])
    assert (report["verdict"], report["indication"]) == ("EXPIRED", "TOTAL_PASSED")


def test_document_and_seal(client: TestClient, agency: dict[str, str]) -> None:
    licence = issue(client, agency)
    document = rendition(client, agency, licence, "document")
    seal = rendition(client, agency, licence, "seal")
    response = client.post(VERIFY, files={"document": document, "seal": seal})
    report = response.json()
    assert report["verdict"] == "VALID", report
    assert report["form"] == "document"
    assert report["timestamp_time"] is not None
    assert checks(report)["timestamp"] == "passed"
    tampered = document.replace(b'"B"', b'"C"')
    assert tampered != document
    report = client.post(VERIFY, files={"document": tampered, "seal": seal}).json()
    assert (report["verdict"], report["indication"], report["subindication"]) == (
        "INVALID",
        "TOTAL_FAILED",
        "HASH_FAILURE",
    )
    report = client.post(VERIFY, files={"document": document, "seal": seal[:-40]}).json()
    assert (report["verdict"], report["subindication"]) == ("INVALID", "FORMAT_FAILURE")


def test_pdf_and_its_tampering(client: TestClient, agency: dict[str, str]) -> None:
    licence = issue(client, agency)
    pdf = rendition(client, agency, licence, "pdf")
    report = client.post(VERIFY, files={"file": ("licence.pdf", pdf, "application/pdf")}).json()
    assert report["verdict"] == "VALID", report
    assert report["form"] == "pdf"
    assert report["licence"]["number"] == licence["number"]
    assert checks(report)["pdf-seal"] == "passed"
    # One changed byte inside the signed range (the page content), away from the signature.
    position = pdf.index(b"/Producer")
    changed = pdf[:position] + b"/Pruducer" + pdf[position + 9 :]
    report = client.post(VERIFY, files={"file": ("x.pdf", changed, "application/pdf")}).json()
    assert (report["verdict"], report["subindication"]) == ("INVALID", "HASH_FAILURE")
    # Anything appended after sealing (an incremental update) is refused.
    appended = pdf + b"\n1000 0 obj\n(added later)\nendobj\n"
    report = client.post(VERIFY, files={"file": ("x.pdf", appended, "application/pdf")}).json()
    assert report["verdict"] == "INVALID"
    # Truncated: unreadable.
    report = client.post(
        VERIFY, files={"file": ("x.pdf", pdf[: len(pdf) // 2], "application/pdf")}
    ).json()
    assert (report["verdict"], report["subindication"]) == ("INVALID", "FORMAT_FAILURE")


def test_photo_of_the_qr(client: TestClient, agency: dict[str, str]) -> None:
    licence = issue(client, agency)
    png = rendition(client, agency, licence, "qr")
    # A "photo": the code scaled, converted to JPEG, on a larger grey background.
    code = Image.open(io.BytesIO(png)).convert("L")
    photo = Image.new("L", (code.width * 2, code.height * 2), 200)
    photo.paste(code, (code.width // 3, code.height // 2))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=85)
    report = client.post(
        VERIFY, files={"file": ("photo.jpg", buffer.getvalue(), "image/jpeg")}
    ).json()
    assert report["verdict"] == "VALID", report
    assert report["licence"]["number"] == licence["number"]


def test_rotated_seal_keeps_old_licences_valid(
    client: TestClient, agency: dict[str, str], instance: Instance, database: Database
) -> None:
    old = issue(client, agency)
    with database.transaction() as session:
        rotate_seal(pki_for(instance, session), "MOT", utcnow())
    new = issue(client, agency)
    old_report, new_report = (
        verify_qr(client, old["links"]["verify"]),
        verify_qr(client, new["links"]["verify"]),
    )
    assert old_report["verdict"] == new_report["verdict"] == "VALID"
    assert (
        old_report["signer"]["certificate"]["serial"]
        != new_report["signer"]["certificate"]["serial"]
    )


def test_revoked_seal_after_sealing_stays_valid_a_forgery_after_does_not(
    client: TestClient, agency: dict[str, str], instance: Instance, database: Database
) -> None:
    licence = issue(client, agency)
    document = rendition(client, agency, licence, "document")
    seal = rendition(client, agency, licence, "seal")
    time.sleep(1.1)  # time-stamps are to the second: seal and revocation in different seconds
    with database.transaction() as session:
        pki = pki_for(instance, session)
        # The forger holds the key: prepare the sealer before the revocation.
        sealer = AgencySealer(pki, find_agency(session, "MOT"))
        revoke_seal(pki, "MOT", RevocationReason.KEY_COMPROMISE, utcnow())
    # Sealed and time-stamped before the revocation: still VALID.
    report = client.post(VERIFY, files={"document": document, "seal": seal}).json()
    assert report["verdict"] == "VALID", report
    assert "after the seal's proven time" in next(
        c["detail"] for c in report["checks"] if c["name"] == "certificate-status"
    )
    assert report["signer"]["certificate"]["status"] == "revoked"
    # The QR: the register's issuance time is the proof of existence online.
    assert verify_qr(client, licence["links"]["verify"])["verdict"] == "VALID"
    # Sealed with the compromised key after the revocation: the time-stamp proves it.
    forged_document = document.replace(b"\xe5\xbc\xa0\xe4\xb8\x89", "李四".encode())
    forged_seal, _ = sealer.seal_document(forged_document, utcnow())
    report = client.post(VERIFY, files={"document": forged_document, "seal": forged_seal}).json()
    assert (report["verdict"], report["indication"], report["subindication"]) == (
        "INVALID",
        "TOTAL_FAILED",
        "REVOKED",
    )


def test_foreign_root_is_not_ours(client: TestClient, agency: dict[str, str]) -> None:
    from authority.seals.cades import seal_document
    from tests.unit.pki import pki_fixtures

    foreign = pki_fixtures.build_pki()
    licence = issue(client, agency)
    document = rendition(client, agency, licence, "document")
    seal = seal_document(
        document,
        foreign.seal_signer,
        foreign.seal,
        [foreign.ca],
        signing_time=utcnow(),
        timestamp=None,
    )
    report = client.post(VERIFY, files={"document": document, "seal": seal}).json()
    assert (report["verdict"], report["indication"], report["subindication"]) == (
        "INVALID",
        "INDETERMINATE",
        "NO_CERTIFICATE_CHAIN_FOUND",
    )


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"\x00" * 100, "headers": {"Content-Type": "application/octet-stream"}}, 415),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422),
        ({"json": {"qr": ""}}, 422),
        ({"json": {"qr": ["a"]}}, 422),
        ({"json": {"qr": "A" * 5000}}, 422),
        ({"json": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}, 422),
        ({"files": {"file": ("x.bin", b"random bytes \x00\x01", "application/octet-stream")}}, 415),
        ({"files": {"other": ("x.bin", b"abc", "application/octet-stream")}}, 422),
    ],
)
def test_unusable_requests_get_problem_details(
    client: TestClient, kwargs: dict[str, Any], status: int
) -> None:
    response = client.post(VERIFY, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_hostile_qr_texts_are_invalid_reports(client: TestClient) -> None:
    for text in ["https://x/v/" + "Z" * 300, "0" * 4000, "::::", "http://127.0.0.1:8000/V/", "%00"]:
        report = verify_qr(client, text)
        assert report["verdict"] == "INVALID"
        assert report["subindication"] in ("FORMAT_FAILURE", "NO_SIGNING_CERTIFICATE_FOUND")


def test_an_image_bomb_is_refused(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000), 1).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 1_000_000
    response = client.post(VERIFY, files={"file": ("bomb.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 422
    assert response.json()["type"].endswith("/unreadable-image")


def test_an_image_without_a_qr(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("L", (300, 300), 255).save(buffer, "PNG")
    response = client.post(VERIFY, files={"file": ("blank.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 422
    assert response.json()["type"].endswith("/no-qr-code")


# -- pages ------------------------------------------------------------------------------


def test_landing_page_shows_one_verdict_in_words(
    client: TestClient, agency: dict[str, str]
) -> None:
    licence = issue(client, agency)
    path = "/" + licence["links"]["verify"].split("/", 3)[3]
    english = client.get(path, headers={"Accept-Language": "en"})
    assert english.status_code == 200
    assert 'data-verdict="VALID"' in english.text
    assert ">Valid<" in english.text
    assert "1101**********002X" in english.text  # the identity number is masked
    assert "11010519491231002X" not in english.text
    chinese = client.get(path, headers={"Accept-Language": "zh-CN"})
    assert ">有效<" in chinese.text
    bad = client.get(
        path[:-3] + ("A" if path[-3] != "A" else "B") + path[-2:], headers={"Accept-Language": "en"}
    )
    assert 'data-verdict="INVALID"' in bad.text


def test_landing_page_escapes_licence_fields(client: TestClient, agency: dict[str, str]) -> None:
    licence = issue(
        client,
        agency,
        holder={"kind": "citizen", "id": "11010519491231002X", "name": "<script>alert(1)</script>"},
    )
    path = "/" + licence["links"]["verify"].split("/", 3)[3]
    page = client.get(path).text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_landing_page_survives_long_targets(client: TestClient) -> None:
    page = client.get("/v/" + "A" * 5_000, params={"q": "x" * 2000})
    assert page.status_code == 200
    assert 'data-verdict="INVALID"' in page.text
    assert len(page.text) < 20_000  # the target is not echoed back whole
    too_long = client.get("/v/" + "A" * 60_000)
    assert too_long.status_code == 414
    assert too_long.headers["content-type"] == "application/problem+json"
    assert client.get("/healthz").status_code == 200


def test_upload_page_and_its_result(client: TestClient, agency: dict[str, str]) -> None:
    page = client.get("/verify", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert 'type="file"' in page.text and "/static/verify.js" in page.text
    assert client.get("/static/verify.js").status_code == 200
    licence = issue(client, agency)
    pdf = rendition(client, agency, licence, "pdf")
    result = client.post(
        "/verify",
        files={"file": ("l.pdf", pdf, "application/pdf")},
        headers={"Accept-Language": "en"},
    )
    assert result.status_code == 200
    assert 'data-verdict="VALID"' in result.text
    refused = client.post("/verify", files={"file": ("x", b"nothing", "text/plain")})
    assert refused.status_code == 415
    assert re.search(r'role="alert"', refused.text)


def test_payload_alphabet_is_url_safe() -> None:
    assert "/" not in PAYLOAD_ALPHABET and "%" not in PAYLOAD_ALPHABET


def _appended(pdf: bytes, body: bytes) -> bytes:
    """``pdf`` with an incremental update holding ``body`` as its cross-reference."""
    start = len(pdf)
    return pdf + body + b"startxref\n%d\n%%%%EOF\n" % start


def test_a_decompression_bomb_pdf_is_invalid_and_harmless(
    client: TestClient, agency: dict[str, str]
) -> None:
    pdf = rendition(client, agency, issue(client, agency), "pdf")
    compressor = zlib.compressobj(9)
    bomb = b"".join(compressor.compress(b"\0" * (1 << 20)) for _ in range(256))
    bomb += compressor.flush()  # 256 MiB of zeros in about 256 KiB
    xref = (
        (
            b"99 0 obj\n<< /Type /XRef /Size 100 /W [1 2 1] /Filter /FlateDecode /Length %d >>\n"
            b"stream\n" % len(bomb)
        )
        + bomb
        + b"\nendstream\nendobj\n"
    )
    response = client.post(
        VERIFY, files={"file": ("bomb.pdf", _appended(pdf, xref), "application/pdf")}
    )
    report = response.json()
    assert (response.status_code, report["verdict"], report["subindication"]) == (
        200, "INVALID", "FORMAT_FAILURE",
    )  # fmt: skip
    assert client.get("/healthz").status_code == 200


def test_deeply_nested_structures_are_refused(client: TestClient, agency: dict[str, str]) -> None:
    pdf = rendition(client, agency, issue(client, agency), "pdf")
    nested = b"99 0 obj\n" + b"[" * 100_000 + b"]" * 100_000 + b"\nendobj\n"
    report = client.post(
        VERIFY, files={"file": ("deep.pdf", _appended(pdf, nested), "application/pdf")}
    ).json()
    assert report["verdict"] == "INVALID"
    deep_json = b'{"qr": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post(VERIFY, content=deep_json, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    deep_document = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    seal = rendition(client, agency, issue(client, agency), "seal")
    report = client.post(VERIFY, files={"document": deep_document, "seal": seal}).json()
    assert (report["verdict"], report["subindication"]) == ("INVALID", "HASH_FAILURE")
