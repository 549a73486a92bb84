"""The OCSP responder, driven and checked by openssl's OCSP client."""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authority.errors import ConfigurationError, Unavailable
from authority.pki.crl import RevocationReason
from authority.pki.ocsp import (
    OCSP_REQUEST_MAX_BYTES,
    CertState,
    CertStatus,
    MalformedOcspRequest,
    OcspResponder,
    error_response,
    parse_get_path,
)
from tests.unit.pki import pki_fixtures
from tests.unit.pki.pki_fixtures import Pki, openssl, write_pem

pki = pki_fixtures.pki
pki_files = pki_fixtures.pki_files

REVOKED_AT = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)


class Registry:
    """A status lookup over a dict, recording what it was asked."""

    def __init__(self, pki: Pki) -> None:
        self.ca = pki.ca
        self.statuses: dict[int, CertStatus] = {
            pki.seal.serial_number: CertStatus.good(),
            pki.tsa.serial_number: CertStatus.good(),
        }
        self.calls: list[int] = []

    def __call__(self, issuer: x509.Certificate, serial: int) -> CertStatus:
        assert issuer == self.ca
        self.calls.append(serial)
        return self.statuses.get(serial, CertStatus.unknown())


@pytest.fixture
def registry(pki: Pki) -> Registry:
    return Registry(pki)


@pytest.fixture
def responder(pki: Pki, registry: Registry) -> OcspResponder:
    return OcspResponder(pki.ocsp, pki.ocsp_signer, [pki.ca], registry)


def openssl_request(
    files: dict[str, Path], *pairs: tuple[str, str], nonce: bool = True, digest: str | None = None
) -> tuple[bytes, Path]:
    """A request made by ``openssl ocsp`` for (issuer, cert) file-name pairs."""
    path = files["root"].parent / "req.der"
    args: list[str | Path] = ["ocsp", f"-{digest}"] if digest else ["ocsp"]
    for issuer, cert in pairs:
        args += ["-issuer", files[issuer], "-cert", files[cert]]
    args += ["-reqout", path, "-nonce" if nonce else "-no_nonce"]
    result = openssl(*args)
    assert result.returncode == 0, result.stderr
    return path.read_bytes(), path


def openssl_check(
    files: dict[str, Path], response: bytes, *pairs: tuple[str, str], digest: str | None = None
):
    """``openssl ocsp -respin``: verifies the response signature and prints each status."""
    path = files["root"].parent / "resp.der"
    path.write_bytes(response)
    args: list[str | Path] = ["ocsp", f"-{digest}"] if digest else ["ocsp"]
    for issuer, cert in pairs:
        args += ["-issuer", files[issuer], "-cert", files[cert]]
    args += ["-respin", path, "-no_nonce", "-CAfile", files["root"], "-verify_other", files["ca"]]
    return openssl(*args)


def parse(response: bytes) -> asn1_ocsp.OCSPResponse:
    return asn1_ocsp.OCSPResponse.load(response, strict=True)


def response_nonce(response: bytes) -> bytes | None:
    data = parse(response).basic_ocsp_response["tbs_response_data"]
    for extension in data["response_extensions"] if data["response_extensions"].native else []:
        if extension["extn_id"].native == "nonce":
            return extension["extn_value"].parsed.native
    return None


def cert_id(issuer: x509.Certificate, serial: int, hash_name: str = "sha1") -> dict:
    parsed = asn1_x509.Certificate.load(issuer.public_bytes(serialization.Encoding.DER))
    key_bits = issuer.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "hash_algorithm": {"algorithm": hash_name},
        "issuer_name_hash": hashlib.new(hash_name, parsed.subject.dump()).digest(),
        "issuer_key_hash": hashlib.new(hash_name, key_bits).digest(),
        "serial_number": serial,
    }


def asn1_request(*cert_ids: dict, extensions: list[dict] | None = None) -> bytes:
    tbs: dict = {"request_list": [{"req_cert": c} for c in cert_ids]}
    if extensions:
        tbs["request_extensions"] = extensions
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def nonce_ext(value: bytes) -> dict:
    return {"extn_id": "nonce", "extn_value": value}


def test_good(pki: Pki, pki_files, responder: OcspResponder, registry: Registry) -> None:
    request, _ = openssl_request(pki_files, ("ca", "seal"))
    result = openssl_check(pki_files, responder.respond(request, datetime.now(UTC)), ("ca", "seal"))
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert result.stdout.splitlines()[0] == f"{pki_files['seal']}: good"
    assert registry.calls == [pki.seal.serial_number]


def test_revoked_with_reason_and_time(pki: Pki, pki_files, responder, registry) -> None:
    registry.statuses[pki.seal.serial_number] = CertStatus.revoked(
        REVOKED_AT, RevocationReason.KEY_COMPROMISE
    )
    request, _ = openssl_request(pki_files, ("ca", "seal"))
    result = openssl_check(pki_files, responder.respond(request, datetime.now(UTC)), ("ca", "seal"))
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[0] == f"{pki_files['seal']}: revoked"
    assert "Reason: keyCompromise" in lines
    assert "Revocation Time: Mar 14 15:09:26 2025 GMT" in lines


def test_revoked_unspecified_omits_the_reason(pki: Pki, pki_files, responder, registry) -> None:
    registry.statuses[pki.seal.serial_number] = CertStatus.revoked(REVOKED_AT)
    request, _ = openssl_request(pki_files, ("ca", "seal"))
    response = responder.respond(request, datetime.now(UTC))
    single = parse(response).basic_ocsp_response["tbs_response_data"]["responses"][0]
    assert single["cert_status"].name == "revoked"
    assert single["cert_status"].chosen["revocation_reason"].native is None
    result = openssl_check(pki_files, response, ("ca", "seal"))
    assert result.stdout.splitlines()[0] == f"{pki_files['seal']}: revoked"


def test_unknown_serial(pki: Pki, pki_files, responder: OcspResponder) -> None:
    stranger, _ = pki.new_seal()
    write_pem(pki_files["root"].parent / "stranger.pem", stranger)
    files = {**pki_files, "stranger": pki_files["root"].parent / "stranger.pem"}
    request, _ = openssl_request(files, ("ca", "stranger"))
    result = openssl_check(files, responder.respond(request, datetime.now(UTC)), ("ca", "stranger"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{files['stranger']}: unknown"


def test_several_certificates_in_one_request(pki: Pki, pki_files, responder, registry) -> None:
    registry.statuses[pki.tsa.serial_number] = CertStatus.revoked(
        REVOKED_AT, RevocationReason.SUPERSEDED
    )
    pairs = (("ca", "seal"), ("ca", "tsa"))
    request, _ = openssl_request(pki_files, *pairs)
    result = openssl_check(pki_files, responder.respond(request, datetime.now(UTC)), *pairs)
    assert result.returncode == 0, result.stderr
    statuses = [line for line in result.stdout.splitlines() if not line.startswith("\t")]
    assert statuses == [f"{pki_files['seal']}: good", f"{pki_files['tsa']}: revoked"]
    assert "\tReason: superseded" in result.stdout.splitlines()
    assert registry.calls == [pki.seal.serial_number, pki.tsa.serial_number]


@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_certid_with_sha2(pki: Pki, pki_files, responder: OcspResponder, digest: str) -> None:
    request, _ = openssl_request(pki_files, ("ca", "seal"), digest=digest)
    response = responder.respond(request, datetime.now(UTC))
    single = parse(response).basic_ocsp_response["tbs_response_data"]["responses"][0]
    assert single["cert_id"]["hash_algorithm"]["algorithm"].native == digest
    assert (
        single["cert_id"].dump()
        == asn1_ocsp.OCSPRequest.load(request)["tbs_request"]["request_list"][0]["req_cert"].dump()
    )
    result = openssl_check(pki_files, response, ("ca", "seal"), digest=digest)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{pki_files['seal']}: good"


def test_nonce_is_echoed_and_openssl_checks_it(pki: Pki, pki_files, responder) -> None:
    request, request_path = openssl_request(pki_files, ("ca", "seal"))
    response = responder.respond(request, datetime.now(UTC))
    sent = asn1_ocsp.OCSPRequest.load(request).nonce_value.native
    assert len(sent) == 16
    assert response_nonce(response) == sent
    path = pki_files["root"].parent / "resp.der"
    path.write_bytes(response)
    # With -reqin, openssl compares the response nonce with the request's.
    result = openssl(
        "ocsp",
        "-reqin",
        request_path,
        "-respin",
        path,
        "-CAfile",
        pki_files["root"],
        "-verify_other",
        pki_files["ca"],
    )
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert "Nonce Verify error" not in result.stdout + result.stderr


def test_no_nonce_no_extension(pki: Pki, pki_files, responder) -> None:
    request, _ = openssl_request(pki_files, ("ca", "seal"), nonce=False)
    data = parse(responder.respond(request, datetime.now(UTC))).basic_ocsp_response[
        "tbs_response_data"
    ]
    assert data["response_extensions"].native is None


# RFC 9654 (which obsoletes RFC 8954's 32-octet ceiling) allows 1..128 octets.
@pytest.mark.parametrize(
    ("size", "echoed"),
    [(1, True), (16, True), (32, True), (33, True), (128, True), (129, False), (0, False)],
)
def test_nonce_length_limits(pki: Pki, responder, size: int, echoed: bool) -> None:
    nonce = bytes((i % 255) + 1 for i in range(size))
    request = asn1_request(cert_id(pki.ca, pki.seal.serial_number), extensions=[nonce_ext(nonce)])
    raw = responder.respond(request, datetime.now(UTC))
    response = parse(raw)
    if echoed:
        assert response["response_status"].native == "successful"
        assert response_nonce(raw) == nonce
    else:
        assert response["response_status"].native == "malformed_request"
        assert response["response_bytes"].native is None


@pytest.mark.parametrize(
    "garbage",
    [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30\x80" + b"\x00" * 10, b"\x30" * 100],
)
def test_garbage_is_malformed_request(responder: OcspResponder, garbage: bytes) -> None:
    response = responder.respond(garbage, datetime.now(UTC))
    assert response == bytes.fromhex("30030a0101")
    parsed = parse(response)
    assert parsed["response_status"].native == "malformed_request"
    assert parsed["response_bytes"].native is None


def test_hostile_universal_types_are_malformed(pki: Pki, responder) -> None:
    # A constructed ObjectDescriptor (tag 0x27) where asn1crypto expects an optional
    # field makes it raise AttributeError, not ValueError (found by fuzzing).
    request = asn1_request(cert_id(pki.ca, pki.seal.serial_number))
    assert request[1] < 0x7D and request[3] < 0x7D  # short-form lengths, patched below
    hostile = bytes([0x30, request[1] + 3, 0x30, request[3] + 3]) + request[4:] + b"\x27\x01\xff"
    assert responder.respond(hostile, datetime.now(UTC)) == error_response("malformed_request")


def test_trailing_bytes_and_oversize_are_malformed(pki: Pki, responder) -> None:
    request = asn1_request(cert_id(pki.ca, pki.seal.serial_number))
    assert parse(responder.respond(request, datetime.now(UTC)))["response_status"].native == (
        "successful"
    )
    for bad in (request + b"\x00", request + b"\x00" * OCSP_REQUEST_MAX_BYTES):
        assert parse(responder.respond(bad, datetime.now(UTC)))["response_status"].native == (
            "malformed_request"
        )


def test_unknown_critical_extension_is_malformed(pki: Pki, responder) -> None:
    critical = {"extn_id": "1.2.3.4", "critical": True, "extn_value": b"\x05\x00"}
    request = asn1_request(cert_id(pki.ca, pki.seal.serial_number), extensions=[critical])
    assert parse(responder.respond(request, datetime.now(UTC)))["response_status"].native == (
        "malformed_request"
    )
    critical["critical"] = False
    request = asn1_request(cert_id(pki.ca, pki.seal.serial_number), extensions=[critical])
    assert parse(responder.respond(request, datetime.now(UTC)))["response_status"].native == (
        "successful"
    )


def test_only_foreign_issuers_is_unauthorized(pki: Pki, pki_files, responder, registry) -> None:
    request, _ = openssl_request(pki_files, ("root", "ca"))
    response = responder.respond(request, datetime.now(UTC))
    assert response == error_response("unauthorized")
    assert parse(response)["response_status"].native == "unauthorized"
    assert registry.calls == []


def test_mixed_issuers_answer_unknown_for_the_foreign_one(pki: Pki, pki_files, responder) -> None:
    # RFC 6960 §2.2: "unknown" for the certificate whose issuer we do not serve (as
    # openssl's own responder does). openssl's client then refuses the whole response,
    # since a delegated responder can vouch for one issuer only; hence -noverify here.
    pairs = (("ca", "seal"), ("root", "ca"))
    request, _ = openssl_request(pki_files, *pairs)
    response = responder.respond(request, datetime.now(UTC))
    responses = parse(response).basic_ocsp_response["tbs_response_data"]["responses"]
    assert [r["cert_status"].name for r in responses] == ["good", "unknown"]
    path = pki_files["root"].parent / "resp.der"
    path.write_bytes(response)
    args = ["-issuer", pki_files["ca"], "-cert", pki_files["seal"]]
    args += ["-issuer", pki_files["root"], "-cert", pki_files["ca"]]
    result = openssl("ocsp", *args, "-respin", path, "-no_nonce", "-noverify")
    assert result.returncode == 0, result.stderr
    statuses = [line for line in result.stdout.splitlines() if not line.startswith("\t")]
    assert statuses == [f"{pki_files['seal']}: good", f"{pki_files['ca']}: unknown"]


def test_unsupported_certid_hash_is_unknown(pki: Pki, responder) -> None:
    request = asn1_request(
        cert_id(pki.ca, pki.seal.serial_number), cert_id(pki.ca, pki.seal.serial_number, "md5")
    )
    responses = parse(responder.respond(request, datetime.now(UTC))).basic_ocsp_response[
        "tbs_response_data"
    ]["responses"]
    assert [r["cert_status"].name for r in responses] == ["good", "unknown"]


def test_response_fields(pki: Pki, registry: Registry) -> None:
    responder = OcspResponder(
        pki.ocsp, pki.ocsp_signer, [pki.ca], registry, validity=timedelta(minutes=10)
    )
    now = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    request = asn1_request(cert_id(pki.ca, pki.seal.serial_number))
    basic = parse(responder.respond(request, now)).basic_ocsp_response
    data = basic["tbs_response_data"]
    whole = now.replace(microsecond=0)
    assert data["produced_at"].native == whole
    assert data["responses"][0]["this_update"].native == whole
    assert data["responses"][0]["next_update"].native == whole + timedelta(minutes=10)
    key_bits = pki.ocsp.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert data["responder_id"].name == "by_key"
    assert data["responder_id"].native == hashlib.sha1(key_bits).digest()
    assert basic["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    assert basic["signature_algorithm"]["parameters"].native is None
    assert [c.dump() for c in basic["certs"]] == [pki.ocsp.public_bytes(serialization.Encoding.DER)]
    pki.ocsp_signer.public_key.verify(
        basic["signature"].native,
        data.dump(),
        ec.ECDSA(pki.ocsp_signer.algorithm.hash_algorithm),
    )


def test_lookup_failures_map_to_protocol_errors(pki: Pki) -> None:
    request = asn1_request(cert_id(pki.ca, pki.seal.serial_number))

    def broken(issuer: x509.Certificate, serial: int) -> CertStatus:
        raise RuntimeError("database on fire")

    def busy(issuer: x509.Certificate, serial: int) -> CertStatus:
        raise Unavailable("database restarting")

    now = datetime.now(UTC)
    assert OcspResponder(pki.ocsp, pki.ocsp_signer, [pki.ca], broken).respond(
        request, now
    ) == error_response("internal_error")
    assert OcspResponder(pki.ocsp, pki.ocsp_signer, [pki.ca], busy).respond(
        request, now
    ) == error_response("try_later")


def test_responder_must_be_authorised_for_each_issuer(pki: Pki, registry) -> None:
    with pytest.raises(ConfigurationError, match="not certified by"):
        OcspResponder(pki.ocsp, pki.ocsp_signer, [pki.ca, pki.root], registry)
    with pytest.raises(ConfigurationError, match="lacks id-kp-OCSPSigning"):
        OcspResponder(pki.tsa, pki.tsa_signer, [pki.ca], registry)
    with pytest.raises(ConfigurationError, match="not the OCSP responder's key"):
        OcspResponder(pki.ocsp, pki.ca_signer, [pki.ca], registry)
    # The CA may answer for itself with its own key (RFC 6960 §4.2.2.2).
    itself = OcspResponder(pki.ca, pki.ca_signer, [pki.ca], registry)
    request = asn1_request(cert_id(pki.ca, pki.seal.serial_number))
    assert parse(itself.respond(request, datetime.now(UTC)))["response_status"].native == (
        "successful"
    )


def test_get_form_round_trip(pki: Pki, pki_files) -> None:
    request, _ = openssl_request(pki_files, ("ca", "seal"))
    encoded = base64.b64encode(request).decode()
    assert parse_get_path(urllib.parse.quote(encoded, safe="")) == request
    assert parse_get_path(encoded.rstrip("=")) == request  # padding dropped by the client
    assert parse_get_path(base64.urlsafe_b64encode(request).decode()) == request


@pytest.mark.parametrize(
    "segment", ["", "%%%", "not base64!", "QQ=x", "A" * (OCSP_REQUEST_MAX_BYTES * 2 + 1)]
)
def test_get_form_rejects_garbage(segment: str) -> None:
    with pytest.raises(MalformedOcspRequest):
        parse_get_path(segment)


def test_cert_status_invariants() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CertStatus.revoked(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="only for"):
        CertStatus(CertState.GOOD, revoked_at=REVOKED_AT)
    with pytest.raises(ValueError, match="required"):
        CertStatus(CertState.REVOKED)
