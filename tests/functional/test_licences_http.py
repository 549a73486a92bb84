"""The licence API as an agency back-end uses it: issue, read, renditions, lifecycle."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from authority.agencies.service import create_agency, revoke_seal, rotate_seal
from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.licences.models import Licence, LicenceEvent
from authority.licences.service import create_licence_type
from authority.oidc.clients import register_agency_client
from authority.pki.crl import RevocationReason
from authority.seals.cades import verify_document_seal
from authority.seals.qr import verify_qr_seal
from tests.openssl import cms_verify

CITIZEN = "11010519491231002X"
BUSINESS = "91350100M000100Y43"
SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["A", "B", "C"]},
        "vehicle": {"type": "string", "minLength": 1},
    },
    "required": ["category", "vehicle"],
    "additionalProperties": False,
}


def _agency(
    instance: Instance, database: Database, code: str, scope: str, client: TestClient
) -> dict[str, str]:
    with database.transaction() as session:
        agency, _ = create_agency(pki_for(instance, session), code, f"Agency {code}", utcnow())
        api = register_agency_client(session, instance.client_secret_key, agency, utcnow())
        create_licence_type(
            session,
            agency,
            code=f"{code}-PERMIT",
            name_zh="许可证",
            name_en="Permit",
            schema=SCHEMA,
            validity_days=365,
            now=utcnow(),
        )
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(api.record.client_id, api.secret or ""),
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def agency(instance: Instance, database: Database, client: TestClient) -> dict[str, str]:
    return _agency(
        instance, database, "MOT", "licences:issue licences:revoke licences:read", client
    )


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "MOT-PERMIT",
        "holder": {"kind": "citizen", "id": CITIZEN, "name": "张三"},
        "data": {"category": "B", "vehicle": "小型汽车"},
    }
    body.update(changes)
    return body


def _issue(client: TestClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = client.post("/api/v1/licences", json=_body(**changes), headers=headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def test_issue_and_read_back(client: TestClient, agency: dict[str, str]) -> None:
    response = client.post("/api/v1/licences", json=_body(), headers=agency)
    assert response.status_code == 201
    licence = response.json()
    year = datetime.now(UTC).year
    assert licence["number"] == f"MOT-PERMIT-{year}-000001"
    assert licence["status"] == "valid"
    assert licence["holder"] == {"kind": "citizen", "id": CITIZEN, "name": "张三"}
    assert response.headers["location"] == licence["links"]["self"]
    for name, link in licence["links"].items():
        # The verify link is upper case (QR alphanumeric mode); scheme and host are
        # case-insensitive, and /V/ is served like /v/.
        assert (link.lower() if name == "verify" else link).startswith("http://127.0.0.1:8000/")
    again = client.get(f"/api/v1/licences/{licence['id']}", headers=agency).json()
    assert again == licence
    second = _issue(client, agency)
    assert second["number"] == f"MOT-PERMIT-{year}-000002"


def test_document_is_canonical_and_the_seal_verifies(
    client: TestClient, agency: dict[str, str], tmp_path: Path
) -> None:
    licence = _issue(client, agency)
    document = client.get(f"/api/v1/licences/{licence['id']}/document", headers=agency)
    assert document.headers["content-type"] == "application/json"
    parsed = json.loads(document.content)
    assert rfc8785.dumps(parsed) == document.content
    assert parsed["number"] == licence["number"]
    assert parsed["holder"]["name"] == "张三"
    seal = client.get(f"/api/v1/licences/{licence['id']}/seal", headers=agency)
    assert seal.headers["content-type"] == "application/pkcs7-signature"
    info = verify_document_seal(document.content, seal.content)
    assert info.timestamp is not None
    subject = info.signer_certificate.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    assert subject[0].value == "Agency MOT"

    root = client.get("/pki/ca/root.pem").content
    ok = cms_verify(tmp_path, document.content, seal.content, root)
    assert ok.returncode == 0, ok.stderr
    assert "Verification successful" in ok.stderr
    tampered = bytearray(document.content)
    tampered[tampered.index(b"B")] = ord("C")
    bad = cms_verify(tmp_path, bytes(tampered), seal.content, root)
    assert bad.returncode != 0
    assert "Verification failure" in bad.stderr


def test_qr_carries_a_verifiable_seal(
    client: TestClient,
    agency: dict[str, str],
    instance: Instance,
    database: Database,
    tmp_path: Path,
) -> None:
    licence = _issue(client, agency)
    url = licence["links"]["verify"]
    assert url.upper().startswith("HTTP://127.0.0.1:8000/V/")
    with database.session() as session:
        record = session.get(Licence, licence["id"])
        assert record is not None
        seal_cert = verify_document_seal(record.document, record.seal).signer_certificate
    verified = verify_qr_seal(url, [seal_cert])
    assert verified.claims.number == licence["number"]
    assert verified.claims.holder_name == "张三"
    assert dict(verified.claims.fields) == {"category": "B", "vehicle": "小型汽车"}
    png = client.get(f"/api/v1/licences/{licence['id']}/qr.png", headers=agency)
    assert png.headers["content-type"] == "image/png"
    svg = client.get(f"/api/v1/licences/{licence['id']}/qr.svg", headers=agency)
    assert svg.headers["content-type"] == "image/svg+xml"
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        pytest.fail("zbarimg (zbar-tools) is required", pytrace=False)
    (tmp_path / "qr.png").write_bytes(png.content)
    decoded = subprocess.run(
        # QR codes only (tests/unit/seals/test_qr.py: zbar's 1-D decoders misread).
        [zbarimg, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(tmp_path / "qr.png")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert decoded.stdout.strip() == url


def _sealed_by(database: Database, licence: dict[str, Any]) -> x509.Certificate:
    """The certificate the licence's document seal verifies with (and its QR seal too)."""
    with database.session() as session:
        record = session.get(Licence, licence["id"])
        assert record is not None
        certificate = verify_document_seal(record.document, record.seal).signer_certificate
        assert record.seal_certificate_id is not None
    verify_qr_seal(licence["links"]["verify"], [certificate])
    return certificate


def test_a_rotated_seal_seals_the_next_licence(
    client: TestClient, agency: dict[str, str], instance: Instance, database: Database
) -> None:
    # The first issuance leaves a sealer in the instance's cache: it must not outlive the seal.
    before = _sealed_by(database, _issue(client, agency))
    assert _sealed_by(database, _issue(client, agency)) == before
    with database.transaction() as session:
        _, rotated = rotate_seal(pki_for(instance, session), "MOT", utcnow())
    after = _sealed_by(database, _issue(client, agency))
    assert after != before
    assert after.serial_number == int(rotated.serial, 16)
    batch = client.post("/api/v1/licences/batch", json={"licences": [_body()]}, headers=agency)
    assert batch.status_code == 200
    assert _sealed_by(database, batch.json()["licences"][0]) == after


def test_a_revoked_seal_seals_nothing_more(
    client: TestClient, agency: dict[str, str], instance: Instance, database: Database
) -> None:
    _issue(client, agency)  # a cached sealer now holds the seal
    with database.transaction() as session:
        revoke_seal(pki_for(instance, session), "MOT", RevocationReason.KEY_COMPROMISE, utcnow())
    response = client.post("/api/v1/licences", json=_body(), headers=agency)
    assert response.status_code == 404
    assert response.json()["type"].endswith("/no-active-seal")
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Licence)) == 1
    with database.transaction() as session:
        _, renewed = rotate_seal(pki_for(instance, session), "MOT", utcnow())
    assert _sealed_by(database, _issue(client, agency)).serial_number == int(renewed.serial, 16)


def test_a_business_holder(client: TestClient, agency: dict[str, str]) -> None:
    licence = _issue(
        client, agency, holder={"kind": "business", "id": BUSINESS, "name": "示例科技有限公司"}
    )
    assert licence["holder"]["id"] == BUSINESS


@pytest.mark.parametrize(
    ("changes", "status", "detail"),
    [
        ({"type": "NOPE"}, 422, "type: no licence type with code 'NOPE'"),
        (
            {"holder": {"kind": "citizen", "id": "110105194912310021", "name": "张三"}},
            422,
            "resident identity number 110105194912310021 has check character 1, expected X "
            "(GB 11643, ISO 7064 MOD 11-2)",
        ),
        (
            {"holder": {"kind": "business", "id": "91350100M000100Y44", "name": "X"}},
            422,
            "unified social credit code 91350100M000100Y44 has check character 4, expected 3 "
            "(GB 32100)",
        ),
        (
            {"data": {"category": "Z", "vehicle": "x"}},
            422,
            "data.category: 'Z' is not one of ['A', 'B', 'C']",
        ),
        ({"data": {"category": "A"}}, 422, "data: 'vehicle' is a required property"),
        (
            {"valid_from": "2030-01-02T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"},
            422,
            "valid_until must be later than valid_from",
        ),
    ],
)
def test_bad_licences_are_refused_and_nothing_is_stored(
    client: TestClient,
    agency: dict[str, str],
    database: Database,
    changes: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    response = client.post("/api/v1/licences", json=_body(**changes), headers=agency)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == detail
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Licence)) == 0


def test_schema_errors_list_every_field(client: TestClient, agency: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/licences", headers=agency, json=_body(data={"category": "Z", "extra": 1})
    )
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} == {"data", "data.category"}


def test_naive_times_are_validation_errors(client: TestClient, agency: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/licences", headers=agency, json=_body(valid_from="2030-01-01T00:00:00")
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("/problems/validation")


def test_scopes_and_tokens_are_enforced(
    client: TestClient, instance: Instance, database: Database
) -> None:
    reader = _agency(instance, database, "MOR", "licences:read", client)
    response = client.post("/api/v1/licences", headers=reader, json=_body(type="MOR-PERMIT"))
    assert response.status_code == 403
    assert 'scope="licences:issue"' in response.headers["www-authenticate"]
    assert client.post("/api/v1/licences", json=_body()).status_code == 401


def test_agencies_cannot_touch_each_others_licences(
    client: TestClient, agency: dict[str, str], instance: Instance, database: Database
) -> None:
    licence = _issue(client, agency)
    other = _agency(
        instance, database, "MOF", "licences:issue licences:revoke licences:read", client
    )
    assert client.post("/api/v1/licences", json=_body(), headers=other).status_code == 403
    assert client.get(f"/api/v1/licences/{licence['id']}", headers=other).status_code == 403
    revoke = client.post(
        f"/api/v1/licences/{licence['id']}/revoke", json={"reason": "x"}, headers=other
    )
    assert revoke.status_code == 403
    assert client.get("/api/v1/licences/not-a-uuid", headers=agency).status_code == 404


def test_batch_in_request_order(client: TestClient, agency: dict[str, str]) -> None:
    bodies = [
        _body(holder={"kind": "citizen", "id": CITIZEN, "name": f"持证人{i}"}) for i in range(3)
    ]
    response = client.post("/api/v1/licences/batch", json={"licences": bodies}, headers=agency)
    assert response.status_code == 200, response.text
    issued = response.json()["licences"]
    assert [lic["holder"]["name"] for lic in issued] == ["持证人0", "持证人1", "持证人2"]
    numbers = [int(lic["number"].rsplit("-", 1)[1]) for lic in issued]
    assert numbers == [1, 2, 3]
    # The reply is made from what issuance has at hand: the same as reading each back.
    for lic in issued:
        assert client.get(f"/api/v1/licences/{lic['id']}", headers=agency).json() == lic


def test_a_batch_with_one_bad_item_issues_nothing(
    client: TestClient, agency: dict[str, str], database: Database
) -> None:
    bodies = [_body(), _body(data={"category": "Z", "vehicle": "x"}), _body()]
    response = client.post("/api/v1/licences/batch", json={"licences": bodies}, headers=agency)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/problems/invalid-batch")
    assert [e["index"] for e in problem["errors"]] == [1]
    assert problem["errors"][0]["errors"][0]["field"] == "data.category"
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Licence)) == 0
    # Nothing was numbered either: the next licence is still number 1.
    assert _issue(client, agency)["number"].endswith("-000001")


def test_oversized_and_empty_batches(client: TestClient, agency: dict[str, str]) -> None:
    empty = client.post("/api/v1/licences/batch", json={"licences": []}, headers=agency)
    assert empty.status_code == 422
    big = client.post("/api/v1/licences/batch", json={"licences": [_body()] * 1001}, headers=agency)
    assert big.status_code == 422
    assert big.json()["errors"][0]["field"] == "body.licences"


def test_lifecycle(client: TestClient, agency: dict[str, str], database: Database) -> None:
    licence = _issue(client, agency)
    base = f"/api/v1/licences/{licence['id']}"

    def act(action: str, expected: int) -> dict[str, Any]:
        response = client.post(
            f"{base}/{action}", json={"reason": f"test {action}"}, headers=agency
        )
        assert response.status_code == expected, response.text
        data: dict[str, Any] = response.json()
        return data

    assert act("reinstate", 409)["detail"] == "cannot reinstate a licence that is valid"
    assert act("suspend", 200)["status"] == "suspended"
    assert act("suspend", 409)["licence_status"] == "suspended"
    assert act("reinstate", 200)["status"] == "valid"
    assert act("revoke", 200)["status"] == "revoked"
    assert act("reinstate", 409)["detail"] == "cannot reinstate a licence that is revoked"
    assert act("revoke", 409)["licence_status"] == "revoked"
    missing_reason = client.post(f"{base}/suspend", json={}, headers=agency)
    assert missing_reason.status_code == 422
    with database.session() as session:
        events = session.scalars(
            select(LicenceEvent)
            .where(LicenceEvent.licence_id == licence["id"])
            .order_by(LicenceEvent.id)
        ).all()
    assert [(e.action, e.reason) for e in events] == [
        ("issued", None),
        ("suspend", "test suspend"),
        ("reinstate", "test reinstate"),
        ("revoke", "test revoke"),
    ]
    assert {e.actor for e in events} == {events[0].actor}
    assert events[0].actor.startswith("client:")


def test_expired_licences_say_so(client: TestClient, agency: dict[str, str]) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    licence = _issue(
        client,
        agency,
        valid_from=(past - timedelta(days=365)).isoformat(),
        valid_until=past.isoformat(),
    )
    assert licence["status"] == "expired"


def test_pdf_is_sealed_sound_and_stored(
    client: TestClient, agency: dict[str, str], tmp_path: Path
) -> None:
    licence = _issue(client, agency)
    first = client.get(f"/api/v1/licences/{licence['id']}/pdf", headers=agency)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/pdf"
    assert first.content.startswith(b"%PDF-")
    assert first.headers["content-disposition"] == (
        f'attachment; filename="{licence["number"]}.pdf"'
    )
    again = client.get(f"/api/v1/licences/{licence['id']}/pdf", headers=agency)
    assert again.content == first.content  # made once, then served as stored
    pdf = tmp_path / "licence.pdf"
    pdf.write_bytes(first.content)
    for tool in ("qpdf", "pdfsig"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required", pytrace=False)
    check = subprocess.run(
        ["qpdf", "--check", str(pdf)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # Offline here: no NSS trust store and no OCSP; the signature itself must be valid.
    sig = subprocess.run(
        ["pdfsig", "-nocert", str(pdf)], capture_output=True, text=True, check=False
    )
    assert "Signature Validation: Signature is Valid." in sig.stdout
    assert "Total document signed" in sig.stdout
