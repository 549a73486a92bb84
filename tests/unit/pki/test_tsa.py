"""The RFC 3161 time-stamping authority, driven and checked by ``openssl ts``."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, tsp
from cryptography.hazmat.primitives import serialization

from authority.errors import ConfigurationError
from authority.pki import profiles
from authority.pki.keystore import KeyAlgorithm, KeyStoreError
from authority.pki.tsa import (
    TSA_REQUEST_MAX_BYTES,
    TimeStampAuthority,
    TimeStampRejected,
    TimeStampResp,
    build_request,
    rejection,
    token_from_response,
)
from tests.unit.pki import pki_fixtures
from tests.unit.pki.pki_fixtures import IDENTITY, Pki, ca_urls, openssl, write_pem

pki = pki_fixtures.pki
pki_files = pki_fixtures.pki_files

DATA = b"Licence No. 2031-000042, sealed by the Ministry of Testing\n"


@pytest.fixture
def serials() -> itertools.count:
    return itertools.count(1)


@pytest.fixture
def tsa(pki: Pki, serials: itertools.count) -> TimeStampAuthority:
    return TimeStampAuthority(pki.tsa, pki.tsa_signer, serial_source=lambda: next(serials))


def query(files: dict[str, Path], *args: str) -> tuple[bytes, Path]:
    """``openssl ts -query`` over DATA; returns the request and its path."""
    directory = files["root"].parent
    (directory / "data.txt").write_bytes(DATA)
    path = directory / "req.tsq"
    result = openssl("ts", "-query", "-data", directory / "data.txt", *args, "-out", path)
    assert result.returncode == 0, result.stderr
    return path.read_bytes(), path


def verify(files: dict[str, Path], response: bytes, request_path: Path, *untrusted: str):
    """``openssl ts -verify`` of ``response`` against the query, trusting only the root."""
    directory = files["root"].parent
    (directory / "resp.tsr").write_bytes(response)
    chain = directory / "chain.pem"
    chain.write_bytes(b"".join(files[name].read_bytes() for name in untrusted or ("ca",)))
    return openssl(
        "ts",
        "-verify",
        "-in",
        directory / "resp.tsr",
        "-queryfile",
        request_path,
        "-CAfile",
        files["root"],
        "-untrusted",
        chain,
    )


def reply_text(files: dict[str, Path], response: bytes) -> str:
    path = files["root"].parent / "resp-text.tsr"
    path.write_bytes(response)
    result = openssl("ts", "-reply", "-in", path, "-text")
    assert result.returncode == 0, result.stderr
    return result.stdout


def parse(response: bytes) -> TimeStampResp:
    return TimeStampResp.load(response, strict=True)


def tst_info(response: bytes) -> tsp.TSTInfo:
    signed = parse(response)["time_stamp_token"]["content"]
    return signed["encap_content_info"]["content"].parsed


def signed_data(response: bytes) -> cms.SignedData:
    return parse(response)["time_stamp_token"]["content"]


def test_openssl_verifies_a_token(pki_files, tsa: TimeStampAuthority) -> None:
    request, path = query(pki_files, "-sha256", "-cert")
    response = tsa.respond(request, datetime.now(UTC))
    result = verify(pki_files, response, path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Verification: OK"


def test_openssl_shows_policy_nonce_and_imprint(pki_files, tsa: TimeStampAuthority) -> None:
    request, path = query(pki_files, "-sha256", "-cert")
    nonce = tsp.TimeStampReq.load(request)["nonce"].native
    query_text = openssl("ts", "-query", "-in", path, "-text").stdout.splitlines()
    nonce_line = next(line for line in query_text if line.startswith("Nonce: "))
    # OpenSSL prints the nonce in hex, padded to whole octets: compare the value.
    assert int(nonce_line.removeprefix("Nonce: "), 16) == nonce
    now = datetime(2031, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    text = reply_text(pki_files, tsa.respond(request, now))
    lines = text.splitlines()
    assert "Status: Granted." in lines
    assert f"Policy OID: {profiles.TSA_POLICY_OID}" in lines
    assert nonce_line in lines
    assert "Serial number: 0x01" in lines
    assert "Time stamp: Feb  3 04:05:06 2031 GMT" in lines
    assert "Accuracy: 0x01 seconds, unspecified millis, unspecified micros" in lines
    assert "Ordering: no" in lines
    assert "TSA: DirName:/C=CN/O=Test Government/CN=Test Authority Time-Stamping Unit" in lines
    imprint = tst_info(tsa.respond(request, now))["message_imprint"]
    assert imprint["hashed_message"].native == hashlib.sha256(DATA).digest()


@pytest.mark.parametrize(("option", "name"), [("-sha384", "sha384"), ("-sha512", "sha512")])
def test_other_sha2_imprints(pki_files, tsa, option: str, name: str) -> None:
    request, path = query(pki_files, option, "-cert")
    response = tsa.respond(request, datetime.now(UTC))
    assert tst_info(response)["message_imprint"]["hash_algorithm"]["algorithm"].native == name
    result = verify(pki_files, response, path)
    assert result.stdout.strip() == "Verification: OK", result.stderr


def test_certificates_only_when_requested(pki: Pki, pki_files, tsa) -> None:
    with_cert, _ = query(pki_files, "-sha256", "-cert")
    certificates = signed_data(tsa.respond(with_cert, datetime.now(UTC)))["certificates"]
    assert [c.chosen.dump() for c in certificates] == [
        pki.tsa.public_bytes(serialization.Encoding.DER)
    ]
    request, path = query(pki_files, "-sha256")  # certReq absent: FALSE
    assert tsp.TimeStampReq.load(request)["cert_req"].native is False
    response = tsa.respond(request, datetime.now(UTC))
    assert signed_data(response)["certificates"].native is None
    # Without the certificate in the token, openssl must be given it.
    assert verify(pki_files, response, path).returncode != 0
    result = verify(pki_files, response, path, "tsa", "ca")
    assert result.stdout.strip() == "Verification: OK", result.stderr


def test_chain_is_included_with_the_tsa_certificate(pki: Pki, pki_files) -> None:
    authority = TimeStampAuthority(pki.tsa, pki.tsa_signer, serial_source=lambda: 9, chain=[pki.ca])
    request, path = query(pki_files, "-sha256", "-cert")
    response = authority.respond(request, datetime.now(UTC))
    # CertificateSet is a SET OF: DER fixes its order, so compare as a set.
    assert {c.chosen.dump() for c in signed_data(response)["certificates"]} == {
        pki.tsa.public_bytes(serialization.Encoding.DER),
        pki.ca.public_bytes(serialization.Encoding.DER),
    }
    result = verify(pki_files, response, path, "root")  # the CA now comes from the token
    assert result.stdout.strip() == "Verification: OK", result.stderr


def test_signer_info_and_ess_signing_certificate_v2(pki: Pki, pki_files, tsa) -> None:
    request, _ = query(pki_files, "-sha256", "-cert")
    signed = signed_data(tsa.respond(request, datetime.now(UTC)))
    assert signed["version"].native == "v3"
    assert signed["encap_content_info"]["content_type"].native == "tst_info"
    signer = signed["signer_infos"][0]
    assert signer["version"].native == "v1"
    assert signer["sid"].chosen["serial_number"].native == pki.tsa.serial_number
    assert signer["digest_algorithm"]["algorithm"].native == "sha256"
    assert signer["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    assert signer["signature_algorithm"]["parameters"].native is None
    attributes = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert set(attributes) == {"content_type", "message_digest", "signing_certificate_v2"}
    assert attributes["content_type"].native == "tst_info"
    tst_der = signed["encap_content_info"]["content"].parsed.dump()
    assert attributes["message_digest"].native == hashlib.sha256(tst_der).digest()
    ess = attributes["signing_certificate_v2"]["certs"][0]
    tsa_der = pki.tsa.public_bytes(serialization.Encoding.DER)
    assert ess["cert_hash"].native == hashlib.sha256(tsa_der).digest()
    assert ess.contents[0] == 0x04  # hashAlgorithm sha256 is the DEFAULT: absent, certHash first
    assert ess["issuer_serial"]["serial_number"].native == pki.tsa.serial_number
    issuer_name = ess["issuer_serial"]["issuer"][0]
    assert issuer_name.name == "directory_name"
    subject = pki.ca.subject.public_bytes()
    assert issuer_name.dump() == b"\xa4" + bytes([len(subject)]) + subject  # [4] EXPLICIT Name


def test_sha1_is_rejected_with_bad_alg(pki_files, tsa, serials) -> None:
    request, _ = query(pki_files, "-sha1", "-cert")
    response = tsa.respond(request, datetime.now(UTC))
    status = parse(response)["status"]
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {"bad_alg"}
    assert parse(response)["time_stamp_token"].native is None
    text = reply_text(pki_files, response).splitlines()
    assert "Status: Rejected." in text
    assert "Failure info: unrecognized or unsupported algorithm identifier" in text
    assert next(serials) == 1  # no serial number was spent on the rejection


@pytest.mark.parametrize(
    "garbage", [b"", b"garbage", b"\x30\x00", b"\x30\x80\x00\x00", b"\x30" * 50, b"A" * 17000]
)
def test_garbage_is_rejected_with_bad_data_format(pki_files, tsa, garbage: bytes) -> None:
    response = tsa.respond(garbage, datetime.now(UTC))
    status = parse(response)["status"]
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {"bad_data_format"}
    assert "Failure info: the data submitted has the wrong format" in reply_text(
        pki_files, response
    )


def test_hostile_universal_types_are_bad_data_format(tsa) -> None:
    # certReq replaced by a constructed ObjectDescriptor (tag 0x27): asn1crypto raises
    # AttributeError rather than ValueError on it (found by fuzzing).
    request = build_request(DATA, nonce=5)
    assert request.endswith(b"\x01\x01\xff")
    response = tsa.respond(request[:-3] + b"\x27\x01\xff", datetime.now(UTC))
    assert parse(response)["status"]["fail_info"].native == {"bad_data_format"}


def test_oversized_request_is_rejected(tsa) -> None:
    request = build_request(DATA) + b"\x00" * TSA_REQUEST_MAX_BYTES
    assert parse(tsa.respond(request, datetime.now(UTC)))["status"]["fail_info"].native == {
        "bad_data_format"
    }


def test_wrong_imprint_length_is_bad_data_format(tsa) -> None:
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha384(DATA).digest(),
            },
        }
    ).dump()
    status = parse(tsa.respond(request, datetime.now(UTC)))["status"]
    assert (status["status"].native, status["fail_info"].native) == (
        "rejection",
        {"bad_data_format"},
    )


def test_unknown_algorithm_is_bad_alg(tsa) -> None:
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "1.2.3.4.5"},
                "hashed_message": b"\x00" * 32,
            },
        }
    ).dump()
    assert parse(tsa.respond(request, datetime.now(UTC)))["status"]["fail_info"].native == {
        "bad_alg"
    }


def test_policy_is_checked(pki_files, tsa) -> None:
    foreign, _ = query(pki_files, "-sha256", "-tspolicy", "1.2.3.4")
    response = tsa.respond(foreign, datetime.now(UTC))
    assert parse(response)["status"]["fail_info"].native == {"unaccepted_policy"}
    ours, path = query(pki_files, "-sha256", "-cert", "-tspolicy", profiles.TSA_POLICY_OID)
    result = verify(pki_files, tsa.respond(ours, datetime.now(UTC)), path)
    assert result.stdout.strip() == "Verification: OK", result.stderr


def test_request_extensions_are_unaccepted(tsa) -> None:
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(DATA).digest(),
            },
            "extensions": [{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}],
        }
    ).dump()
    assert parse(tsa.respond(request, datetime.now(UTC)))["status"]["fail_info"].native == {
        "unaccepted_extensions"
    }


def test_serials_are_unique_over_100_calls(pki_files, tsa) -> None:
    request, _ = query(pki_files, "-sha256", "-cert")
    now = datetime.now(UTC)
    seen = [tst_info(tsa.respond(request, now))["serial_number"].native for _ in range(100)]
    assert seen == list(range(1, 101))


def test_a_failing_serial_source_is_a_system_failure(pki: Pki) -> None:
    def broken() -> int:
        raise RuntimeError("sequence unavailable")

    for source in (broken, lambda: 0, lambda: 1 << 160):
        authority = TimeStampAuthority(pki.tsa, pki.tsa_signer, serial_source=source)
        status = parse(authority.respond(build_request(DATA), datetime.now(UTC)))["status"]
        assert (status["status"].native, status["fail_info"].native) == (
            "rejection",
            {"system_failure"},
        )


@pytest.mark.parametrize("target", ["signature", "tst_info"])
def test_a_tampered_token_fails_verification(pki: Pki, pki_files, tsa, target: str) -> None:
    request, path = query(pki_files, "-sha256", "-cert")
    response = bytearray(tsa.respond(request, datetime.now(UTC)))
    assert verify(pki_files, bytes(response), path).stdout.strip() == "Verification: OK"
    if target == "signature":
        signature = signed_data(bytes(response))["signer_infos"][0]["signature"].native
        at = bytes(response).index(signature) + len(signature) // 2
    else:
        # The TSA name inside TSTInfo comes before the certificates in the token.
        at = bytes(response).index(b"Time-Stamping Unit")
    response[at] ^= 0x01
    result = verify(pki_files, bytes(response), path)
    assert result.returncode != 0
    assert result.stdout.strip() == "Verification: FAILED"


def test_p384_tsa_signs_with_sha384(pki: Pki, pki_files) -> None:
    signer = pki.store.signer(pki.store.generate("tsa-384", KeyAlgorithm.EC_P384).handle)
    cert = profiles.tsa_certificate(
        IDENTITY.tsa_subject(), signer.public_key, pki.ca, pki.ca_signer, ca_urls()
    )
    write_pem(pki_files["tsa"], cert)
    authority = TimeStampAuthority(cert, signer, serial_source=lambda: 77)
    request, path = query(pki_files, "-sha256", "-cert")
    response = authority.respond(request, datetime.now(UTC))
    signer_info = signed_data(response)["signer_infos"][0]
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha384_ecdsa"
    assert signer_info["digest_algorithm"]["algorithm"].native == "sha384"
    result = verify(pki_files, response, path)
    assert result.stdout.strip() == "Verification: OK", result.stderr


def test_sub_second_accuracy_and_none(pki: Pki, pki_files) -> None:
    now = datetime(2031, 2, 3, 4, 5, 6, 789654, tzinfo=UTC)
    fine = TimeStampAuthority(
        pki.tsa, pki.tsa_signer, serial_source=lambda: 5, accuracy=timedelta(milliseconds=500)
    )
    info = tst_info(fine.respond(build_request(DATA), now))
    assert info["accuracy"].native == {"seconds": None, "millis": 500, "micros": None}
    assert info["gen_time"].native == now.replace(microsecond=789000)
    assert b"20310203040506.789Z" in info["gen_time"].dump()
    text = reply_text(pki_files, fine.respond(build_request(DATA), now)).splitlines()
    assert "Accuracy: unspecified seconds, 0x01F4 millis, unspecified micros" in text
    coarse = TimeStampAuthority(pki.tsa, pki.tsa_signer, serial_source=lambda: 6, accuracy=None)
    info = tst_info(coarse.respond(build_request(DATA), now))
    assert info["accuracy"].native is None
    assert info["gen_time"].dump()[2:] == b"20310203040506Z"


def test_build_request_and_token_round_trip(pki: Pki, tsa) -> None:
    request = build_request(DATA, nonce=123456789, cert_req=False, hash_name="sha384")
    parsed = tsp.TimeStampReq.load(request)
    assert parsed.native["message_imprint"] == {
        "hash_algorithm": {"algorithm": "sha384", "parameters": None},
        "hashed_message": hashlib.sha384(DATA).digest(),
    }
    assert parsed["nonce"].native == 123456789
    assert parsed["cert_req"].native is False
    token = token_from_response(tsa.respond(request, datetime.now(UTC)))
    content = cms.ContentInfo.load(token)
    assert content["content_type"].native == "signed_data"
    assert content["content"]["encap_content_info"]["content"].parsed["nonce"].native == 123456789
    with pytest.raises(TimeStampRejected, match="rejection: bad_alg"):
        token_from_response(tsa.respond(build_request(DATA, hash_name="sha1"), datetime.now(UTC)))


def test_configuration_is_checked(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="id-kp-timeStamping"):
        TimeStampAuthority(pki.seal, pki.seal_signer, serial_source=lambda: 1)
    with pytest.raises(ConfigurationError, match="not the TSA certificate's key"):
        TimeStampAuthority(pki.tsa, pki.seal_signer, serial_source=lambda: 1)


def test_rejection_helper_for_the_transport_layer() -> None:
    reply = parse(rejection("bad_request", "a timestamp-query body of at most 16384 bytes"))
    assert reply["status"]["status"].native == "rejection"
    assert reply["status"]["fail_info"].native == {"bad_request"}
    assert reply["status"]["status_string"].native == [
        "a timestamp-query body of at most 16384 bytes"
    ]
    assert reply["time_stamp_token"].native is None


def _is_der(value: bytes, schema: type[Any] = TimeStampResp) -> bool:
    """Whether asn1crypto, forced to re-encode every field from its value, gives the same bytes."""
    return bool(schema.load(value, strict=True).dump(force=True) == value)


@pytest.mark.parametrize(
    ("accuracy", "options"),
    [(timedelta(seconds=1), ("-cert",)), (timedelta(milliseconds=500, microseconds=7), ())],
)
def test_tokens_are_der(pki_files, pki: Pki, accuracy: timedelta, options: tuple[str, ...]) -> None:
    authority = TimeStampAuthority(
        pki.tsa, pki.tsa_signer, serial_source=lambda: 1 << 126, chain=[pki.ca], accuracy=accuracy
    )
    request, _ = query(pki_files, "-sha256", *options)
    now = datetime(2031, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    response = authority.respond(request, now)
    assert parse(response)["status"]["status"].native == "granted"
    assert _is_der(response)
    # Fractions only when the accuracy is finer than a second (RFC 3161 §2.4.2).
    fraction = 789000 if accuracy < timedelta(seconds=1) else 0
    assert tst_info(response)["gen_time"].native == now.replace(microsecond=fraction)


def test_stamp_makes_a_token_openssl_verifies(pki_files, pki: Pki) -> None:
    serials = itertools.count(1000)
    authority = TimeStampAuthority(
        pki.tsa, pki.tsa_signer, serial_source=lambda: next(serials), chain=[pki.ca]
    )
    now = datetime.now(UTC)
    tokens = [authority.stamp(hashlib.sha256(DATA).digest(), now) for _ in range(3)]
    directory = pki_files["root"].parent
    (directory / "data.txt").write_bytes(DATA)
    for index, token in enumerate(tokens):
        (directory / "token.der").write_bytes(token)
        result = openssl(
            "ts", "-verify", "-in", directory / "token.der", "-token_in",
            "-data", directory / "data.txt", "-CAfile", pki_files["root"],
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "Verification: OK"
        assert _is_der(token, cms.ContentInfo)
        info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
        assert info["serial_number"].native == 1000 + index
        assert info["message_imprint"].dump() == (
            # RFC 5754 §2: sha256 with parameters absent.
            bytes.fromhex("302f300b06096086480165030402010420") + hashlib.sha256(DATA).digest()
        )
        assert info["nonce"].native is None
    # Changed data: OpenSSL refuses the token.
    (directory / "data.txt").write_bytes(DATA + b"!")
    result = openssl(
        "ts", "-verify", "-in", directory / "token.der", "-token_in",
        "-data", directory / "data.txt", "-CAfile", pki_files["root"],
    )  # fmt: skip
    assert result.returncode != 0
    assert "message imprint mismatch" in result.stderr


def test_stamp_many_makes_one_verifiable_token_per_digest_in_order(pki_files, pki: Pki) -> None:
    serials = itertools.count(2000)
    authority = TimeStampAuthority(
        pki.tsa, pki.tsa_signer, serial_source=lambda: next(serials), chain=[pki.ca]
    )
    data = [DATA + bytes([i]) for i in range(3)]
    tokens = authority.stamp_many([hashlib.sha256(d).digest() for d in data], datetime.now(UTC))
    assert len(tokens) == 3
    directory = pki_files["root"].parent
    for index, (item, token) in enumerate(zip(data, tokens, strict=True)):
        info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
        assert info["serial_number"].native == 2000 + index
        assert info["message_imprint"]["hashed_message"].native == hashlib.sha256(item).digest()
        (directory / "data.txt").write_bytes(item)
        (directory / "token.der").write_bytes(token)
        result = openssl(
            "ts", "-verify", "-in", directory / "token.der", "-token_in",
            "-data", directory / "data.txt", "-CAfile", pki_files["root"],
        )  # fmt: skip
        assert result.stdout.strip() == "Verification: OK", result.stderr
    # The tokens are not interchangeable: the second's data does not match the first.
    (directory / "token.der").write_bytes(tokens[0])
    result = openssl(
        "ts", "-verify", "-in", directory / "token.der", "-token_in",
        "-data", directory / "data.txt", "-CAfile", pki_files["root"],
    )  # fmt: skip
    assert "message imprint mismatch" in result.stderr


def test_stamp_many_refuses_a_batch_with_one_bad_digest(pki: Pki) -> None:
    calls = itertools.count(1)
    authority = TimeStampAuthority(pki.tsa, pki.tsa_signer, serial_source=lambda: next(calls))
    good = hashlib.sha256(DATA).digest()
    with pytest.raises(TimeStampRejected, match="not a sha256 imprint"):
        authority.stamp_many([good, b"short", good], datetime.now(UTC))
    assert next(calls) == 1  # refused before any serial was taken or token signed
    assert authority.stamp_many([], datetime.now(UTC)) == []


def test_stamp_refuses_what_respond_would_reject(pki: Pki) -> None:
    authority = TimeStampAuthority(pki.tsa, pki.tsa_signer, serial_source=lambda: 0)
    with pytest.raises(TimeStampRejected, match="system_failure"):
        authority.stamp(hashlib.sha256(DATA).digest(), datetime.now(UTC))
    with pytest.raises(TimeStampRejected, match="not a sha1 imprint"):
        authority.stamp(hashlib.sha1(DATA).digest(), datetime.now(UTC), hash_name="sha1")
    with pytest.raises(TimeStampRejected, match="not a sha256 imprint"):
        authority.stamp(b"short", datetime.now(UTC))


def test_a_store_signing_with_another_key_is_refused_at_set_up(pki: Pki) -> None:
    class WrongKey(type(pki.tsa_signer)):  # type: ignore[misc]
        def sign(self, data: bytes) -> bytes:
            return pki.seal_signer.sign(data)

    liar = WrongKey(pki.tsa_signer._store, pki.tsa_signer.info)
    with pytest.raises(KeyStoreError, match="does not verify"):
        TimeStampAuthority(pki.tsa, liar, serial_source=lambda: 1)
