"""The PKI as relying parties see it over HTTP: certificates, CRL, OCSP, TSA, trust list."""

from __future__ import annotations

import base64
import urllib.parse
from datetime import UTC, datetime

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient

from authority.agencies.service import create_agency, revoke_seal, rotate_seal
from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.pki.crl import RevocationReason
from authority.pki.models import CertificateRecord, CertificateRole
from authority.pki.service import TSA_NAME
from authority.pki.trust_list import TrustListInvalid, canonical, verify_trust_list
from authority.pki.tsa import TimeStampResp, build_request

OCSP_REQUEST = "application/ocsp-request"
TSA_QUERY = "application/timestamp-query"


def _certificate(client: TestClient, name: str) -> x509.Certificate:
    response = client.get(f"/pki/ca/{name}.pem")
    assert response.status_code == 200
    return x509.load_pem_x509_certificate(response.content)


@pytest.fixture
def seal(instance: Instance, database: Database) -> CertificateRecord:
    with database.transaction() as session:
        _, record = create_agency(
            pki_for(instance, session), "MOT", "Ministry of Transport", utcnow()
        )
    return record


def _ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256())
    builder = builder.add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_ca_certificates_in_pem_and_der(client: TestClient) -> None:
    root = _certificate(client, "root")
    seal_ca = _certificate(client, "seal-ca")
    seal_ca.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    der = client.get("/pki/ca/seal-ca.cer")
    assert der.headers["content-type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(der.content) == seal_ca


@pytest.mark.parametrize(
    "path", ["/pki/ca/nope.pem", "/pki/ca/root.txt", "/pki/crl/tsa.crl", "/pki/crl/root.pem"]
)
def test_unknown_pki_files_are_404_problems(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_seal_certificate_points_at_this_authority(
    seal: CertificateRecord, client: TestClient
) -> None:
    cert = x509.load_der_x509_certificate(seal.der)
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    locations = {d.access_method.dotted_string: d.access_location.value for d in aia}
    assert locations == {
        "1.3.6.1.5.5.7.48.1": "http://127.0.0.1:8000/pki/ocsp",
        "1.3.6.1.5.5.7.48.2": "http://127.0.0.1:8000/pki/ca/seal-ca.cer",
    }
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for n in cdp[0].full_name or []] == [
        "http://127.0.0.1:8000/pki/crl/seal-ca.crl"
    ]
    # Every published URL answers.
    for url in [*locations.values(), "http://127.0.0.1:8000/pki/crl/seal-ca.crl"]:
        path = urllib.parse.urlsplit(url).path
        if path != "/pki/ocsp":
            assert client.get(path).status_code == 200, path
    subject = {a.oid.dotted_string: a.value for a in cert.subject}
    assert subject["2.5.4.10"] == "Ministry of Transport"
    assert subject["2.5.4.97"] == "GV:CN-MOT"


def test_crl_lists_revocations_at_once_with_a_growing_number(
    seal: CertificateRecord, client: TestClient, instance: Instance, database: Database
) -> None:
    seal_ca = _certificate(client, "seal-ca")
    before = x509.load_der_x509_crl(client.get("/pki/crl/seal-ca.crl").content)
    assert before.is_signature_valid(seal_ca.public_key())
    assert before.get_revoked_certificate_by_serial_number(int(seal.serial, 16)) is None

    with database.transaction() as session:
        revoke_seal(pki_for(instance, session), "MOT", RevocationReason.KEY_COMPROMISE, utcnow())

    response = client.get("/pki/crl/seal-ca.crl")
    assert response.headers["content-type"] == "application/pkix-crl"
    after = x509.load_der_x509_crl(response.content)
    assert after.is_signature_valid(seal_ca.public_key())
    number = after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    previous = before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == previous + 1
    entry = after.get_revoked_certificate_by_serial_number(int(seal.serial, 16))
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise


def test_ocsp_good_then_revoked_over_post_and_get(
    seal: CertificateRecord, client: TestClient, instance: Instance, database: Database
) -> None:
    cert = x509.load_der_x509_certificate(seal.der)
    issuer = _certificate(client, "seal-ca")
    request = _ocsp_request(cert, issuer)
    response = client.post("/pki/ocsp", content=request, headers={"Content-Type": OCSP_REQUEST})
    assert response.headers["content-type"] == "application/ocsp-response"
    answer = ocsp.load_der_ocsp_response(response.content)
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == (
        b"0123456789abcdef"
    )

    with database.transaction() as session:
        revoke_seal(
            pki_for(instance, session), "MOT", RevocationReason.CESSATION_OF_OPERATION, utcnow()
        )

    encoded = urllib.parse.quote(base64.b64encode(request).decode(), safe="")
    revoked = ocsp.load_der_ocsp_response(client.get(f"/pki/ocsp/{encoded}").content)
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.cessation_of_operation
    assert revoked.revocation_time_utc is not None
    assert (utcnow() - revoked.revocation_time_utc).total_seconds() < 60


def test_rotated_seal_stays_good(
    seal: CertificateRecord, client: TestClient, instance: Instance, database: Database
) -> None:
    with database.transaction() as session:
        previous, new = rotate_seal(pki_for(instance, session), "MOT", utcnow())
    assert previous is not None and previous.serial == seal.serial
    assert new.serial != seal.serial
    issuer = _certificate(client, "seal-ca")
    for record in (seal, new):
        request = _ocsp_request(x509.load_der_x509_certificate(record.der), issuer)
        answer = ocsp.load_der_ocsp_response(
            client.post(
                "/pki/ocsp", content=request, headers={"Content-Type": OCSP_REQUEST}
            ).content
        )
        assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\x30\x03\x02\x01", OCSP_REQUEST),  # truncated DER
        (b"garbage" * 10, OCSP_REQUEST),
        (b"", OCSP_REQUEST),
        (b"\x30\x00", "application/json"),  # wrong content type
        (b"\x30" + b"\x00" * 70_000, OCSP_REQUEST),  # over the 64 KiB limit
    ],
)
def test_hostile_ocsp_requests_get_malformed_request(
    client: TestClient, body: bytes, content_type: str
) -> None:
    response = client.post("/pki/ocsp", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200
    answer = ocsp.load_der_ocsp_response(response.content)
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_hostile_ocsp_get_gets_malformed_request(client: TestClient) -> None:
    response = client.get("/pki/ocsp/%%%not-base64")
    answer = ocsp.load_der_ocsp_response(response.content)
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_unknown_certificate_gets_unknown_or_unauthorized(client: TestClient) -> None:
    root = _certificate(client, "root")
    seal_ca = _certificate(client, "seal-ca")
    # The seal CA's own status is the root's business (its CRL), not the responder's.
    answer = ocsp.load_der_ocsp_response(
        client.post(
            "/pki/ocsp",
            content=_ocsp_request(seal_ca, root),
            headers={"Content-Type": OCSP_REQUEST},
        ).content
    )
    assert answer.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


def _tsa(client: TestClient, body: bytes, content_type: str = TSA_QUERY) -> TimeStampResp:
    response = client.post("/pki/tsa", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/timestamp-reply"
    # asn1crypto's own TimeStampResp cannot parse a rejection (no token); ours follows
    # RFC 3161 §2.4.2. OpenSSL reads both in tests/interop.
    return TimeStampResp.load(response.content)


def test_timestamp_granted_with_nonce_and_policy(client: TestClient) -> None:
    reply = _tsa(client, build_request(b"licence bytes", nonce=42, cert_req=True))
    assert reply["status"]["status"].native == "granted"
    info = reply["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert info["nonce"].native == 42
    assert info["policy"].dotted == "2.999.4711.2.1"
    assert abs((info["gen_time"].native - datetime.now(UTC)).total_seconds()) < 60
    certificates = reply["time_stamp_token"]["content"]["certificates"]
    assert len(certificates) >= 1


def _signer_serial(reply: TimeStampResp) -> int:
    signer = reply["time_stamp_token"]["content"]["signer_infos"][0]
    serial: int = signer["sid"].chosen["serial_number"].native
    return serial


def test_the_tsa_is_kept_and_a_renewed_certificate_is_used_at_once(
    client: TestClient, instance: Instance, database: Database
) -> None:
    with database.transaction() as session:
        pki = pki_for(instance, session)
        first = instance.time_stamping.current(pki)
        assert instance.time_stamping.current(pki) is first  # built once, then reused
        old = pki.current(CertificateRole.TSA, TSA_NAME)
    assert _signer_serial(_tsa(client, build_request(b"a", nonce=1))) == int(old.serial, 16)
    with database.transaction() as session:
        pki = pki_for(instance, session)
        revoked = session.get(CertificateRecord, old.id)
        assert revoked is not None
        pki.revoke(revoked, RevocationReason.KEY_COMPROMISE, utcnow())
        assert "time-stamping unit certificate" in pki.ensure_hierarchy(utcnow())
        new = pki.current(CertificateRole.TSA, TSA_NAME)
    # The next request after the commit is signed with the new certificate, not the kept TSA.
    reply = _tsa(client, build_request(b"b", nonce=2))
    assert reply["status"]["status"].native == "granted"
    assert _signer_serial(reply) == int(new.serial, 16) != int(old.serial, 16)


@pytest.mark.parametrize(
    ("body", "content_type", "fail_info"),
    [
        (b"garbage", TSA_QUERY, {"bad_data_format"}),
        (b"", TSA_QUERY, {"bad_data_format"}),
        (build_request(b"x", hash_name="sha1"), TSA_QUERY, {"bad_alg"}),
        (build_request(b"x"), "application/octet-stream", {"bad_data_format"}),
        (b"\x30" + b"\x00" * 20_000, TSA_QUERY, {"bad_data_format"}),
    ],
)
def test_hostile_timestamp_requests_are_rejected(
    client: TestClient, body: bytes, content_type: str, fail_info: set[str]
) -> None:
    reply = _tsa(client, body, content_type)
    assert reply["status"]["status"].native == "rejection"
    assert set(reply["status"]["fail_info"].native) == fail_info


def test_trust_list_is_sealed_and_current(
    seal: CertificateRecord, client: TestClient, instance: Instance, database: Database
) -> None:
    root = _certificate(client, "root")
    document = client.get("/pki/trust-list.json").json()
    verified = verify_trust_list(document, root)
    assert verified.sealed_by.subject.rfc4514_string().startswith("CN=Authority Demonstration")
    assert document["issuer"] == "http://127.0.0.1:8000"
    roles = sorted({entry["role"] for entry in document["certificates"]})
    assert roles == ["ca", "ocsp", "root", "seal", "tsa"]
    mot = [e for e in document["certificates"] if e.get("agency") == "MOT"]
    assert [e["status"] for e in mot] == ["good"]
    assert mot[0]["serial"] == seal.serial

    with database.transaction() as session:
        revoke_seal(pki_for(instance, session), "MOT", RevocationReason.KEY_COMPROMISE, utcnow())
    after = client.get("/pki/trust-list.json").json()
    verify_trust_list(after, root)
    entry = next(e for e in after["certificates"] if e.get("agency") == "MOT")
    assert entry["status"] == "revoked"
    assert entry["revocation_reason"] == "keyCompromise"
    assert "revoked_at" in entry


def test_trust_list_seal_verifies_with_pyjwt(client: TestClient) -> None:
    document = client.get("/pki/trust-list.json").json()
    header = jwt.get_unverified_header(document["seal"])
    seal_cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    # RFC 7515 Appendix F: reattach the base64url payload, then verify as usual.
    protected, _, signature = document["seal"].split(".")
    payload = base64.urlsafe_b64encode(canonical(document)).rstrip(b"=").decode()
    decoded = jwt.api_jws.decode_complete(
        f"{protected}.{payload}.{signature}", key=seal_cert.public_key(), algorithms=["ES256"]
    )
    assert decoded["header"]["typ"] == "trust-list+jws"


def test_tampered_trust_list_is_refused(client: TestClient) -> None:
    root = _certificate(client, "root")
    document = client.get("/pki/trust-list.json").json()
    document["certificates"][0]["status"] = "revoked"
    with pytest.raises(TrustListInvalid, match="does not match"):
        verify_trust_list(document, root)


def test_trust_list_against_another_root_is_refused(client: TestClient) -> None:
    document = client.get("/pki/trust-list.json").json()
    seal_ca = _certificate(client, "seal-ca")
    with pytest.raises(TrustListInvalid, match="do not chain"):
        verify_trust_list(document, seal_ca)
