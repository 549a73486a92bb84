"""Detached CAdES-B-T seals, checked by OpenSSL, pyHanko and our own verifier."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core, parser, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko_certvalidator import ValidationContext

from authority.errors import ConfigurationError, InvalidInput
from authority.pki import profiles
from authority.pki.asn1 import der_child, der_oid, der_tlv, original_bytes
from authority.pki.keystore import KeyAlgorithm
from authority.pki.tsa import TimeStampAuthority, build_request, new_nonce, token_from_response
from authority.seals.cades import (
    DocumentSealer,
    MalformedSeal,
    SealAlgorithmRejected,
    SealDigestMismatch,
    SealSignatureInvalid,
    SealTimestampError,
    SigningCertificateMismatch,
    TimestampInvalid,
    seal_document,
    verify_document_seal,
)
from tests.unit.pki import pki_fixtures
from tests.unit.pki.pki_fixtures import AGENCY, Pki, ca_urls, openssl, write_pem

pki = pki_fixtures.pki
pki_files = pki_fixtures.pki_files

DOCUMENT = (
    b'{"holder":{"id":"11010519491231002X","kind":"citizen","name":"\xe5\xbc\xa0\xe4\xb8\x89"},'
    b'"number":"MOT-2031-000042","type":"mot.test","valid_until":"2032-01-01"}'
)
# Inside the test certificates' validity, which starts when the session builds them.
SIGNING_TIME = pki_fixtures.build_pki().seal.not_valid_before_utc + timedelta(
    days=1, microseconds=987654
)
STAMP_TIME = SIGNING_TIME + timedelta(seconds=2)

Stamper = Callable[[bytes], bytes]


@pytest.fixture(scope="module")
def stamper(pki: Pki) -> Stamper:
    """Time-stamps data with the test TSA, as the application wires it."""
    serials = itertools.count(1)
    tsa = TimeStampAuthority(pki.tsa, pki.tsa_signer, serial_source=lambda: next(serials))

    def stamp(data: bytes) -> bytes:
        request = build_request(data, nonce=new_nonce(), cert_req=True)
        return token_from_response(tsa.respond(request, STAMP_TIME))

    return stamp


@pytest.fixture(scope="module")
def sealer(pki: Pki, stamper: Stamper) -> DocumentSealer:
    return DocumentSealer(pki.seal_signer, pki.seal, [pki.ca], stamper)


@pytest.fixture(scope="module")
def seal(sealer: DocumentSealer) -> bytes:
    return sealer.seal(DOCUMENT, SIGNING_TIME)


def signer_info(seal_der: bytes) -> cms.SignerInfo:
    """The seal's SignerInfo, for reading only."""
    return cms.ContentInfo.load(seal_der)["content"]["signer_infos"][0]


# Changed seals are spliced from encoded parts rather than re-encoded with asn1crypto's
# dump(): that re-encodes any value whose length octets end in 0x80, in time
# exponential in the depth, so a test would take seconds to minutes by chance.
Fields = dict[str, bytes]
_SIGNED_DATA = (
    "version",
    "digest_algorithms",
    "encap_content_info",
    "certificates",
    "signer_infos",
)
_SIGNER_INFO = (
    "version", "sid", "digest_algorithm", "signed_attrs", "signature_algorithm", "signature",
    "unsigned_attrs",
)  # fmt: skip


der = der_tlv


def elements(data: bytes) -> list[bytes]:
    """The consecutive encoded elements making up ``data``."""
    found = []
    while data:
        _, _, _, header, contents, trailer = parser.parse(data)
        size = len(header) + len(contents) + len(trailer)
        found.append(data[:size])
        data = data[size:]
    return found


def inside(element: bytes) -> bytes:
    """The contents octets of one encoded element."""
    return parser.parse(element, strict=True)[4]


def split(seal_der: bytes) -> tuple[Fields, Fields]:
    """The encoded fields of the seal's SignedData and of its one SignerInfo."""
    _, content = elements(inside(seal_der))
    (signed_data,) = elements(inside(content))
    fields = dict(zip(_SIGNED_DATA, elements(inside(signed_data)), strict=True))
    (signer,) = elements(inside(fields["signer_infos"]))
    return fields, dict(zip(_SIGNER_INFO, elements(inside(signer)), strict=False))


def spliced(
    seal_der: bytes,
    signer_change: Callable[[Fields], None] = lambda _: None,
    signed_data_change: Callable[[Fields], None] = lambda _: None,
) -> bytes:
    """``seal_der`` with fields of its SignerInfo and SignedData replaced."""
    signed_data, signer = split(seal_der)
    signer_change(signer)
    signed_data["signer_infos"] = der(0x31, der(0x30, b"".join(signer.values())))
    signed_data_change(signed_data)
    content = der(0xA0, der(0x30, b"".join(signed_data.values())))
    return der(0x30, core.ObjectIdentifier("1.2.840.113549.1.7.2").dump() + content)


def attrs_of(seal_der: bytes) -> list[bytes]:
    """The encoded signed attributes of the seal."""
    return elements(inside(split(seal_der)[1]["signed_attrs"]))


def attr_type(attribute: bytes) -> str:
    return cms.CMSAttribute.load(attribute)["type"].native


def set_signed_attrs(attrs: list[bytes], *, der_order: bool = True) -> Callable[[Fields], None]:
    def change(signer: Fields) -> None:
        signer["signed_attrs"] = der(0xA0, b"".join(sorted(attrs) if der_order else attrs))

    return change


def token_of(seal_der: bytes) -> bytes:
    """The encoded signature time-stamp token of the seal."""
    (attribute,) = elements(inside(split(seal_der)[1]["unsigned_attrs"]))
    _, values = elements(inside(attribute))
    (token,) = elements(inside(values))
    return token


def with_token(token: bytes) -> Callable[[Fields], None]:
    def change(signer: Fields) -> None:
        oid = core.ObjectIdentifier("1.2.840.113549.1.9.16.2.14").dump()
        signer["unsigned_attrs"] = der(0xA1, der(0x30, oid + der(0x31, token)))

    return change


def write(tmp_path: Path, seal_der: bytes, document: bytes = DOCUMENT) -> tuple[Path, Path]:
    (tmp_path / "seal.der").write_bytes(seal_der)
    (tmp_path / "doc.json").write_bytes(document)
    return tmp_path / "seal.der", tmp_path / "doc.json"


def cms_verify(files: dict[str, Path], seal_der: bytes, document: bytes = DOCUMENT):
    seal_path, doc_path = write(files["root"].parent, seal_der, document)
    # Default purpose (smimesign): the seal's emailProtection EKU must satisfy it.
    return openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", seal_path,
        "-content", doc_path, "-CAfile", files["root"], "-out", files["root"].parent / "out",
    )  # fmt: skip


# --------------------------------------------------------------------- OpenSSL


def test_openssl_cms_verifies_the_seal(pki_files: dict[str, Path], seal: bytes) -> None:
    result = cms_verify(pki_files, seal)
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr
    assert (pki_files["root"].parent / "out").read_bytes() == DOCUMENT


def test_openssl_cms_rejects_a_changed_byte(pki_files: dict[str, Path], seal: bytes) -> None:
    changed = bytearray(DOCUMENT)
    changed[10] ^= 0x01
    result = cms_verify(pki_files, seal, bytes(changed))
    assert result.returncode != 0
    assert "Verification failure" in result.stderr
    assert "content verify error" in result.stderr


def test_openssl_cms_verifies_a_p384_seal(pki: Pki, pki_files: dict[str, Path]) -> None:
    signer = pki.store.signer(pki.store.generate("seal-p384", KeyAlgorithm.EC_P384).handle)
    cert = profiles.seal_certificate(AGENCY, signer.public_key, pki.ca, pki.ca_signer, ca_urls())
    seal_der = seal_document(
        DOCUMENT, signer, cert, [pki.ca], signing_time=SIGNING_TIME, timestamp=None
    )
    result = cms_verify(pki_files, seal_der)
    assert result.returncode == 0, result.stderr
    info = verify_document_seal(DOCUMENT, seal_der)
    assert info.digest_algorithm == "sha384"
    assert signer_info(seal_der)["signature_algorithm"]["algorithm"].native == "sha384_ecdsa"


def test_openssl_prints_the_cades_attributes(pki_files: dict[str, Path], seal: bytes) -> None:
    seal_path, _ = write(pki_files["root"].parent, seal)
    result = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", seal_path)
    assert result.returncode == 0, result.stderr
    signed, _, unsigned = result.stdout.partition("unsignedAttrs:")
    signed = signed.partition("signedAttrs:")[2]
    for name in (
        "contentType (1.2.840.113549.1.9.3)",
        "messageDigest (1.2.840.113549.1.9.4)",
        "signingTime (1.2.840.113549.1.9.5)",
        f"UTCTIME:{SIGNING_TIME:%b} {SIGNING_TIME.day:2d} {SIGNING_TIME:%H:%M:%S %Y} GMT",
        "(1.2.840.113549.1.9.16.2.47)",
    ):
        assert name in signed
    assert "(1.2.840.113549.1.9.16.2.14)" in unsigned
    assert "eContent: <ABSENT>" in result.stdout
    assert "ecdsa-with-SHA256" in result.stdout


def test_openssl_ts_verifies_the_embedded_time_stamp(
    pki_files: dict[str, Path], seal: bytes
) -> None:
    directory = pki_files["root"].parent
    (directory / "sigvalue.bin").write_bytes(signer_info(seal)["signature"].native)
    (directory / "token.der").write_bytes(token_of(seal))
    result = openssl(
        "ts", "-verify", "-data", directory / "sigvalue.bin", "-in", directory / "token.der",
        "-token_in", "-CAfile", pki_files["root"], "-untrusted", pki_files["ca"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout


def test_an_openssl_cades_signature_verifies(pki: Pki, pki_files: dict[str, Path]) -> None:
    """The other direction: OpenSSL's own CAdES-BES detached signature passes our verifier."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = profiles.seal_certificate(AGENCY, key.public_key(), pki.ca, pki.ca_signer, ca_urls())
    directory = pki_files["root"].parent
    pkcs8 = serialization.PrivateFormat.PKCS8
    pem = key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
    (directory / "key.pem").write_bytes(pem)
    write_pem(directory / "cert.pem", cert)
    (directory / "doc.json").write_bytes(DOCUMENT)
    result = openssl(
        "cms", "-sign", "-cades", "-binary", "-md", "sha256", "-signer", directory / "cert.pem",
        "-inkey", directory / "key.pem", "-certfile", pki_files["ca"], "-outform", "DER",
        "-in", directory / "doc.json", "-out", directory / "openssl.der",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    seal_der = (directory / "openssl.der").read_bytes()
    info = verify_document_seal(DOCUMENT, seal_der)
    assert info.signer_certificate == cert
    assert info.chain == (pki.ca,)
    assert info.timestamp is None
    with pytest.raises(SealDigestMismatch):
        verify_document_seal(DOCUMENT + b"\n", seal_der)


# --------------------------------------------------------------------- pyHanko


def test_pyhanko_validates_the_detached_seal(pki: Pki, seal: bytes) -> None:
    root = asn1_x509.Certificate.load(pki.root.public_bytes(serialization.Encoding.DER))
    ca = asn1_x509.Certificate.load(pki.ca.public_bytes(serialization.Encoding.DER))

    def context() -> ValidationContext:
        # The time-stamp token carries only the TSA certificate; the CA is given as untrusted.
        return ValidationContext(
            trust_roots=[root],
            other_certs=[ca],
            allow_fetching=False,
            moment=STAMP_TIME + timedelta(minutes=1),
        )

    signed_data = cms.ContentInfo.load(seal)["content"]
    status = asyncio.run(
        async_validate_detached_cms(
            DOCUMENT,
            signed_data,
            signer_validation_context=context(),
            ts_validation_context=context(),
        )
    )
    assert status.intact and status.valid
    assert status.trusted
    assert status.signing_cert.serial_number == pki.seal.serial_number
    assert status.timestamp_validity is not None
    assert status.timestamp_validity.intact and status.timestamp_validity.valid
    assert status.timestamp_validity.timestamp == STAMP_TIME.replace(microsecond=0)

    tampered = asyncio.run(
        async_validate_detached_cms(
            DOCUMENT + b" ",
            signed_data,
            signer_validation_context=context(),
            ts_validation_context=context(),
        )
    )
    assert not tampered.intact and not tampered.bottom_line


# --------------------------------------------------------------------- structure


def test_the_seal_is_der_and_detached(seal: bytes, pki: Pki) -> None:
    assert spliced(seal) == seal
    # asn1crypto's DER encoder reproduces the B-B seal byte for byte (the B-T one only
    # differs by the TSA's token, which is the TSA's encoding).
    b_b = DocumentSealer(pki.seal_signer, pki.seal, [pki.ca]).seal(DOCUMENT, SIGNING_TIME)
    assert cms.ContentInfo.load(b_b).dump(force=True) == b_b
    info = cms.ContentInfo.load(seal)
    signed_data = info["content"]
    assert signed_data["version"].native == "v1"
    assert signed_data["encap_content_info"]["content_type"].native == "data"
    assert isinstance(signed_data["encap_content_info"]["content"], core.Void)
    # The seal certificate and its CA, in DER SET OF order.
    assert elements(inside(split(seal)[0]["certificates"])) == sorted(
        c.public_bytes(serialization.Encoding.DER) for c in (pki.seal, pki.ca)
    )
    si = signed_data["signer_infos"][0]
    assert si["version"].native == "v1"
    assert si["sid"].name == "issuer_and_serial_number"
    assert si["sid"].chosen["serial_number"].native == pki.seal.serial_number
    # RFC 5754 §2: sha256 with parameters absent.
    assert split(seal)[1]["digest_algorithm"] == bytes.fromhex("300b0609608648016503040201")
    attrs = {a["type"].native: a["values"][0] for a in si["signed_attrs"]}
    assert set(attrs) == {
        "content_type",
        "message_digest",
        "signing_time",
        "signing_certificate_v2",
    }
    assert attrs["message_digest"].native == hashlib.sha256(DOCUMENT).digest()
    assert attrs["signing_time"].name == "utc_time"
    (ref,) = attrs["signing_certificate_v2"]["certs"]
    der = pki.seal.public_bytes(serialization.Encoding.DER)
    assert ref["cert_hash"].native == hashlib.sha256(der).digest()
    assert ref["issuer_serial"]["serial_number"].native == pki.seal.serial_number
    # RFC 5035 §4: hashAlgorithm DEFAULT sha256 is absent from the encoding.
    (ess,) = (a for a in attrs_of(seal) if attr_type(a) == "signing_certificate_v2")
    assert bytes.fromhex("0609608648016503040201") not in ess


@pytest.mark.parametrize(
    ("moment", "tag"),
    [
        (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), "utc_time"),
        (datetime(2050, 1, 1, tzinfo=UTC), "generalized_time"),
        (datetime(1949, 12, 31, 23, 59, 59, tzinfo=UTC), "generalized_time"),
    ],
)
def test_signing_time_follows_rfc_5652_encoding_rules(pki: Pki, moment: datetime, tag: str) -> None:
    seal_der = seal_document(
        DOCUMENT, pki.seal_signer, pki.seal, [pki.ca], signing_time=moment, timestamp=None
    )
    (value,) = (a for a in attrs_of(seal_der) if attr_type(a) == "signing_time")
    assert cms.CMSAttribute.load(value)["values"][0].name == tag
    assert verify_document_seal(DOCUMENT, seal_der).signing_time == moment


def test_naive_signing_time_is_refused(sealer: DocumentSealer) -> None:
    with pytest.raises(ValueError, match="timezone"):
        sealer.seal(DOCUMENT, datetime(2031, 1, 1))


def test_a_certificate_not_of_the_key_is_refused(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="not the seal certificate's key"):
        DocumentSealer(pki.seal_signer, pki.tsa, [pki.ca])


def test_a_time_stamp_over_other_data_is_refused_when_sealing(pki: Pki, stamper: Stamper) -> None:
    sealer = DocumentSealer(pki.seal_signer, pki.seal, [pki.ca], lambda _: stamper(b"other"))
    with pytest.raises(SealTimestampError, match="not over the seal's signature"):
        sealer.seal(DOCUMENT, SIGNING_TIME)
    garbage = DocumentSealer(pki.seal_signer, pki.seal, [pki.ca], lambda _: b"\x30\x03\x02\x01")
    with pytest.raises(SealTimestampError, match="unreadable"):
        garbage.seal(DOCUMENT, SIGNING_TIME)


# --------------------------------------------------------------------- verification


def test_a_batch_is_sealed_in_order_each_seal_verifying(pki: Pki, stamper: Stamper) -> None:
    batches: list[int] = []

    def stamp_many(signatures: Sequence[bytes]) -> list[bytes]:
        batches.append(len(signatures))
        return [stamper(signature) for signature in signatures]

    sealer = DocumentSealer(pki.seal_signer, pki.seal, [pki.ca], stamper, stamp_many=stamp_many)
    contents = [DOCUMENT + b" " * i for i in range(3)]
    seals = sealer.seal_many(contents, SIGNING_TIME)
    assert batches == [3]  # one call for the whole batch
    for content, seal_der in zip(contents, seals, strict=True):
        info = verify_document_seal(content, seal_der)
        assert info.timestamp is not None
        assert info.timestamp.gen_time == STAMP_TIME.replace(microsecond=0)
    with pytest.raises(InvalidInput):
        verify_document_seal(contents[0], seals[1])


def test_a_batch_time_stamper_is_held_to_one_token_per_signature(
    pki: Pki, stamper: Stamper
) -> None:
    short = DocumentSealer(
        pki.seal_signer, pki.seal, [pki.ca], stamper, stamp_many=lambda sigs: [stamper(sigs[0])]
    )
    with pytest.raises(SealTimestampError, match="different number of tokens"):
        short.seal_many([DOCUMENT, DOCUMENT], SIGNING_TIME)
    # Tokens over other data are caught in a batch as one by one (imprints checked).
    swapped = DocumentSealer(
        pki.seal_signer, pki.seal, [pki.ca], stamper,
        stamp_many=lambda sigs: [stamper(s) for s in reversed(sigs)],
    )  # fmt: skip
    with pytest.raises(SealTimestampError, match="not over the seal's signature"):
        swapped.seal_many([DOCUMENT, DOCUMENT + b" "], SIGNING_TIME)


def test_round_trip(pki: Pki, seal: bytes) -> None:
    info = verify_document_seal(DOCUMENT, seal)
    assert info.signer_certificate == pki.seal
    assert info.chain == (pki.ca,)
    assert info.signing_time == SIGNING_TIME.replace(microsecond=0)
    assert info.digest_algorithm == "sha256"
    assert info.timestamp is not None
    assert info.timestamp.gen_time == STAMP_TIME.replace(microsecond=0)
    assert info.timestamp.tsa_certificate == pki.tsa
    assert cms.ContentInfo.load(info.timestamp.token)["content_type"].native == "signed_data"


def test_b_b_seal_without_time_stamp(pki: Pki) -> None:
    seal_der = DocumentSealer(pki.seal_signer, pki.seal, []).seal(DOCUMENT, SIGNING_TIME)
    info = verify_document_seal(DOCUMENT, seal_der)
    assert info.timestamp is None
    assert info.chain == ()
    assert "unsigned_attrs" not in split(seal_der)[1]


def test_each_seal_signs_anew(pki: Pki, sealer: DocumentSealer, seal: bytes) -> None:
    again = sealer.seal(DOCUMENT, SIGNING_TIME)
    assert again != seal
    assert verify_document_seal(DOCUMENT, again).signer_certificate == pki.seal


def test_unknown_unsigned_attributes_of_any_length(pki: Pki) -> None:
    """Later levels add unsigned attributes; lengths ending in 0x80 stay exact (see spliced)."""
    seal_der = DocumentSealer(pki.seal_signer, pki.seal, [pki.ca]).seal(DOCUMENT, SIGNING_TIME)
    oid = core.ObjectIdentifier("1.2.3.4").dump()
    for size in range(300):

        def pad(signer: Fields, size: int = size) -> None:
            signer["unsigned_attrs"] = der(0xA1, der(0x30, oid + der(0x31, der(0x04, bytes(size)))))

        assert verify_document_seal(DOCUMENT, spliced(seal_der, pad)).signer_certificate == pki.seal


def test_tampered_content(seal: bytes) -> None:
    with pytest.raises(SealDigestMismatch) as caught:
        verify_document_seal(DOCUMENT.replace(b"2032", b"2033"), seal)
    assert caught.value.subindication == "HASH_FAILURE"
    with pytest.raises(SealDigestMismatch):
        verify_document_seal(b"", seal)


def test_flipped_signature_byte(seal: bytes) -> None:
    signature = signer_info(seal)["signature"].native
    at = seal.index(signature) + len(signature) - 1
    flipped = seal[:at] + bytes([seal[at] ^ 0x01]) + seal[at + 1 :]
    with pytest.raises(SealSignatureInvalid) as caught:
        verify_document_seal(DOCUMENT, flipped)
    assert caught.value.subindication == "SIG_CRYPTO_FAILURE"


def _with_signed_data_version(der: bytes, version: int) -> bytes:
    """``der`` (a ContentInfo) with its SignedData's version INTEGER set to ``version``."""
    _, start, end = der_child(der, 0, len(der), 0)  # ContentInfo's contents
    _, start, end = der_child(der, start, end, 1)  # [0] EXPLICIT content
    _, start, end = der_child(der, start, end, 0)  # SignedData
    tag, value, _ = der_child(der, start, end, 0)  # version INTEGER
    assert tag == 0x02 and value + 1 == _
    return der[:value] + bytes([version]) + der[value + 1 :]


def test_an_altered_signed_data_version_is_malformed(seal: bytes) -> None:
    # RFC 5652 §5.1: 1 for id-data; the signature does not cover it, the reader must.
    for version in (0, 3, 4):
        with pytest.raises(MalformedSeal, match=f"SignedData v{version}, expected v1"):
            verify_document_seal(DOCUMENT, _with_signed_data_version(seal, version))
    token = signer_info(seal)["unsigned_attrs"][0]["values"][0].dump()
    assert _with_signed_data_version(token, 3) == token  # a time-stamp token is version 3


def test_removed_signed_attribute_is_malformed(seal: bytes) -> None:
    for name in ("signing_time", "signing_certificate_v2", "content_type", "message_digest"):
        attrs = [a for a in attrs_of(seal) if attr_type(a) != name]
        with pytest.raises(MalformedSeal, match="missing"):
            verify_document_seal(DOCUMENT, spliced(seal, set_signed_attrs(attrs)))


def test_added_signed_attribute_breaks_the_signature(seal: bytes) -> None:
    extra = cms.CMSAttribute({"type": "1.2.3.4", "values": [core.Null()]}).dump()
    changed = spliced(seal, set_signed_attrs([*attrs_of(seal), extra]))
    with pytest.raises(SealSignatureInvalid):
        verify_document_seal(DOCUMENT, changed)


def test_duplicated_signed_attribute_is_malformed(seal: bytes) -> None:
    attrs = attrs_of(seal)
    (signing_time,) = (a for a in attrs if attr_type(a) == "signing_time")
    later = cms.CMSAttribute(
        {"type": "signing_time", "values": [cms.Time(name="utc_time", value=STAMP_TIME)]}
    ).dump()
    for duplicate in (signing_time, later):
        changed = spliced(seal, set_signed_attrs([*attrs, duplicate]))
        with pytest.raises(MalformedSeal, match="duplicate signed attribute signing_time"):
            verify_document_seal(DOCUMENT, changed)


def test_two_values_in_a_single_valued_attribute_is_malformed(seal: bytes) -> None:
    attrs = [a for a in attrs_of(seal) if attr_type(a) != "message_digest"]
    digests = [b"\x00" * 32, b"\x01" * 32]
    two = cms.CMSAttribute({"type": "message_digest", "values": digests}).dump()
    with pytest.raises(MalformedSeal, match="2 values"):
        verify_document_seal(DOCUMENT, spliced(seal, set_signed_attrs([*attrs, two])))


def test_signed_attributes_must_be_der(seal: bytes) -> None:
    attrs = sorted(attrs_of(seal), reverse=True)
    with pytest.raises(MalformedSeal, match="not DER"):
        verify_document_seal(DOCUMENT, spliced(seal, set_signed_attrs(attrs, der_order=False)))

    def long_length(signer: Fields) -> None:
        body = inside(signer["signed_attrs"])
        signer["signed_attrs"] = b"\xa0\x84" + len(body).to_bytes(4, "big") + body

    with pytest.raises(MalformedSeal, match="not DER"):
        verify_document_seal(DOCUMENT, spliced(seal, long_length))


def test_another_certificate_with_the_same_key_and_serial(pki: Pki, seal: bytes) -> None:
    """The substitution ESS signing-certificate-v2 exists to stop (RFC 5035 §1)."""
    twin = profiles.seal_certificate(
        AGENCY, pki.seal_signer.public_key, pki.ca, pki.ca_signer, ca_urls(),
        serial=pki.seal.serial_number, not_before=datetime(2030, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    cert = pki.seal.public_bytes(serialization.Encoding.DER)
    twin_der = twin.public_bytes(serialization.Encoding.DER)
    assert twin_der != cert and twin.public_key() == pki.seal.public_key()

    def swap(signed_data: Fields) -> None:
        certs = elements(inside(signed_data["certificates"]))
        signed_data["certificates"] = der(
            0xA0, b"".join(twin_der if c == cert else c for c in certs)
        )

    with pytest.raises(SigningCertificateMismatch) as caught:
        verify_document_seal(DOCUMENT, spliced(seal, signed_data_change=swap))
    assert caught.value.subindication == "NO_SIGNING_CERTIFICATE_FOUND"


def test_issuer_names_match_as_rfc_5280_names(seal: bytes) -> None:
    """ESS issuerSerial names compare case-insensitively (RFC 5280 §7.1), not byte for byte."""
    attrs = attrs_of(seal)
    (ess,) = (a for a in attrs if attr_type(a) == "signing_certificate_v2")
    others = [a for a in attrs if a != ess]
    for name, error in (
        # Same name, other case: the certificate is identified; the changed bytes then
        # break the signature.
        (b"TEST AUTHORITY SEAL CA", SealSignatureInvalid),
        (b"Test Authority Fake CA", SigningCertificateMismatch),
    ):
        changed = ess.replace(b"Test Authority Seal CA", name)
        assert changed != ess
        with pytest.raises(error):
            verify_document_seal(DOCUMENT, spliced(seal, set_signed_attrs([*others, changed])))


def test_signer_certificate_absent(pki: Pki, seal: bytes) -> None:
    cert = pki.seal.public_bytes(serialization.Encoding.DER)

    def drop_signer(signed_data: Fields) -> None:
        certs = elements(inside(signed_data["certificates"]))
        signed_data["certificates"] = der(0xA0, b"".join(c for c in certs if c != cert))

    with pytest.raises(SigningCertificateMismatch, match="not in the signature"):
        verify_document_seal(DOCUMENT, spliced(seal, signed_data_change=drop_signer))


def test_sha1_digest_is_rejected(seal: bytes) -> None:
    def sha1(signer: Fields) -> None:
        signer["digest_algorithm"] = algos.DigestAlgorithm({"algorithm": "sha1"}).dump()

    with pytest.raises(SealAlgorithmRejected) as caught:
        verify_document_seal(DOCUMENT, spliced(seal, sha1))
    assert caught.value.subindication == "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"


def test_a_time_stamp_over_other_data(seal: bytes, stamper: Stamper) -> None:
    with pytest.raises(TimestampInvalid, match="not over this seal's signature"):
        verify_document_seal(DOCUMENT, spliced(seal, with_token(stamper(b"other data"))))


def test_a_time_stamp_with_a_broken_signature(seal: bytes) -> None:
    token = token_of(seal)
    token_si = cms.ContentInfo.load(token)["content"]["signer_infos"][0]
    signature = token_si["signature"].native
    at = token.index(signature) + len(signature) - 1
    broken = token[:at] + bytes([token[at] ^ 0x01]) + token[at + 1 :]
    with pytest.raises(TimestampInvalid, match="does not verify"):
        verify_document_seal(DOCUMENT, spliced(seal, with_token(broken)))


def test_a_time_stamp_signed_by_a_non_tsa_certificate(pki: Pki, seal: bytes) -> None:
    # The constructor refuses a certificate without the time-stamping EKU (RFC 3161 §2.3),
    # so a TSA answering with the seal key is assembled around it.
    genuine = TimeStampAuthority(pki.tsa, pki.tsa_signer, serial_source=lambda: 7)
    seal_der = pki.seal.public_bytes(serialization.Encoding.DER)
    tbs = asn1_x509.Certificate.load(seal_der)["tbs_certificate"]
    sid = der_tlv(0x30, original_bytes(tbs["issuer"]) + original_bytes(tbs["serial_number"]))
    ess = tsp.SigningCertificateV2({"certs": [{"cert_hash": hashlib.sha256(seal_der).digest()}]})
    impostor = object.__new__(TimeStampAuthority)
    impostor.__dict__.update(
        genuine.__dict__,
        _signer=pki.seal_signer,
        _certificates=der_tlv(0xA0, seal_der),
        _signer_info_head=b"\x02\x01\x01" + sid + der_tlv(0x30, der_oid("2.16.840.1.101.3.4.2.1")),
        _signing_certificate_attribute=der_tlv(
            0x30, der_oid("1.2.840.113549.1.9.16.2.47") + der_tlv(0x31, ess.dump())
        ),
    )
    signature = signer_info(seal)["signature"].native
    token = token_from_response(impostor.respond(build_request(signature), STAMP_TIME))
    with pytest.raises(TimestampInvalid, match="not a time-stamping certificate"):
        verify_document_seal(DOCUMENT, spliced(seal, with_token(token)))


def test_an_unreadable_time_stamp(seal: bytes) -> None:
    data_info = cms.ContentInfo({"content_type": "data", "content": b"not a token"})
    with pytest.raises(TimestampInvalid, match="unreadable"):
        verify_document_seal(DOCUMENT, spliced(seal, with_token(data_info.dump())))


# --------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00",
        b"\x30",
        b"\x30\x80",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x80" * 50_000,
        b"\x30\x82\xff\xff" + b"\x00" * 100,
        b"\xa0\x82\x01\x00" * 2000,
        b"-----BEGIN PKCS7-----",
        bytes(2 << 20),
    ],
)
def test_hostile_bytes_are_malformed(garbage: bytes) -> None:
    with pytest.raises(MalformedSeal):
        verify_document_seal(DOCUMENT, garbage)


def test_deeply_nested_definite_lengths_are_malformed() -> None:
    nested = b"\x05\x00"
    for _ in range(5000):
        nested = der(0x30, nested)
    with pytest.raises(MalformedSeal):
        verify_document_seal(DOCUMENT, nested)


def test_random_bytes_are_malformed() -> None:
    rng = random.Random(20310504)
    for size in (1, 2, 16, 100, 3000):
        for _ in range(20):
            with pytest.raises(MalformedSeal):
                verify_document_seal(DOCUMENT, rng.randbytes(size))
            # A plausible outer header in front of random content.
            with pytest.raises(MalformedSeal):
                verify_document_seal(DOCUMENT, der(0x30, rng.randbytes(size)))


def test_every_truncation_is_malformed(seal: bytes) -> None:
    for length in range(len(seal)):
        with pytest.raises(MalformedSeal):
            verify_document_seal(DOCUMENT, seal[:length])


def test_byte_flips_raise_only_seal_errors(seal: bytes) -> None:
    """Whatever one changed byte does, the verifier answers with one of its own errors."""
    rng = random.Random(5652)
    outcomes: set[type[Exception] | None] = set()
    for at in range(0, len(seal), 3):
        changed = bytearray(seal)
        changed[at] ^= 1 << rng.randrange(8)
        try:
            verify_document_seal(DOCUMENT, bytes(changed))
            outcomes.add(None)
        except InvalidInput as exc:
            outcomes.add(type(exc))
    assert {MalformedSeal, SealSignatureInvalid, TimestampInvalid} <= outcomes


def test_error_classes_are_distinct_invalid_input() -> None:
    classes = [
        MalformedSeal,
        SealAlgorithmRejected,
        SealDigestMismatch,
        SealSignatureInvalid,
        SigningCertificateMismatch,
        TimestampInvalid,
    ]
    assert all(issubclass(c, InvalidInput) and c.__doc__ and "EN 319 102-1" in c.__doc__
               for c in classes)  # fmt: skip
    assert len({c.slug for c in classes}) == len(classes)
