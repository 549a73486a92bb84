"""The compact QR seal: layout, URL forms, symbol size, tamper and abuse resistance."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from authority.errors import InvalidInput
from authority.pki.keystore import KeyAlgorithm
from authority.seals import qr
from authority.seals.qr import (
    PAYLOAD_ALPHABET,
    QR_ALPHANUMERIC,
    MalformedQrSeal,
    QrClaims,
    QrClaimsInvalid,
    QrSealer,
    QrSealSignatureInvalid,
    QrSealUnknownKey,
    decode_qr_seal,
    encode_qr_seal,
    from_text,
    qr_key_id,
    qr_url,
    to_text,
    verify_qr_seal,
)
from authority.seals.qr_render import qr_code, qr_png, qr_svg, qr_version
from tests.unit.pki import pki_fixtures
from tests.unit.pki.pki_fixtures import Pki

pki = pki_fixtures.pki

DEMO = QrClaims(
    number="DEMO-2026-000001",
    type_code="DEMO-PERMIT",
    holder_kind="citizen",
    holder_id="11010519491231002X",
    holder_name="张三",
    issued_on=date(2026, 3, 1),
    valid_from=date(2026, 3, 1),
    valid_until=date(2031, 2, 28),
    fields=(("cat", "B"), ("veh", "小型汽车")),
)
ISSUERS = ["http://127.0.0.1:8000", "https://id.example.gov"]
REJECTED = (MalformedQrSeal, QrSealSignatureInvalid, QrSealUnknownKey)


@pytest.fixture(scope="module")
def demo_payload(pki: Pki) -> str:
    return encode_qr_seal(DEMO, pki.seal_signer, pki.seal)


def seal(pki: Pki, claims: QrClaims) -> str:
    return encode_qr_seal(claims, pki.seal_signer, pki.seal)


# -- round trip ---------------------------------------------------------------------------


def test_round_trip_decodes_and_verifies(pki: Pki, demo_payload: str) -> None:
    claims, key_id, signed, signature = decode_qr_seal(demo_payload)
    assert claims == DEMO
    assert key_id == qr_key_id(pki.seal)
    assert signed.startswith(qr.DOMAIN) and len(signature) == 64
    verified = verify_qr_seal(demo_payload, [pki.root, pki.ca, pki.tsa, pki.seal])
    assert verified.claims == DEMO and verified.certificate == pki.seal


def test_demo_layout_is_the_documented_one(pki: Pki, demo_payload: str) -> None:
    data = from_text(demo_payload)
    assert data[0] == qr.FORMAT_VERSION
    assert data[1:9] == qr_key_id(pki.seal)
    assert data[9] == 0x80 | 16  # the licence number, packed: 16 characters in 11 bytes
    assert data[21] == 0x80 | 11  # the type code, packed: 11 characters in 8 bytes
    assert data[30] == 0x01  # citizen, resident identity number packed in 8 bytes
    assert data[39:46] == b"\x06" + "张三".encode()
    assert len(data) == 140 and len(demo_payload) == 210


@pytest.mark.parametrize("issuer", ISSUERS)
def test_demo_qr_fits_version_12_at_level_m(demo_payload: str, issuer: str) -> None:
    url = qr_url(issuer, demo_payload)
    assert set(url) <= QR_ALPHANUMERIC, "an origin-only issuer gives an alphanumeric URL"
    version = qr_version(url)
    print(f"{issuer}: QR version {version}-M, {len(url)} characters")
    assert version <= 12
    code = qr_code(url)
    assert (code.mode, code.error) == ("alphanumeric", "M")


@pytest.mark.parametrize(
    ("issuer", "url_head"),
    [
        ("http://127.0.0.1:8000", "HTTP://127.0.0.1:8000/V/"),
        ("https://id.example.gov/", "HTTPS://ID.EXAMPLE.GOV/V/"),
        ("https://gov.example/Id", "https://gov.example/Id/v/"),  # a path keeps its case
        ("https://user@gov.example", "https://user@gov.example/v/"),
        ("http://[::1]:8000", "http://[::1]:8000/v/"),
        ("https://gov_example.test", "https://gov_example.test/v/"),
    ],
)
def test_url_is_upper_case_only_when_safe(demo_payload: str, issuer: str, url_head: str) -> None:
    url = qr_url(issuer, demo_payload)
    assert url == url_head + demo_payload
    assert decode_qr_seal(url).claims == DEMO
    assert qr_version(url) <= 12  # a byte-mode head and an alphanumeric payload


def test_payload_needs_no_percent_encoding(demo_payload: str) -> None:
    assert set(PAYLOAD_ALPHABET) <= QR_ALPHANUMERIC
    assert not set(PAYLOAD_ALPHABET) & set(" %/?#")
    assert set(demo_payload) <= set(PAYLOAD_ALPHABET)


def zbarimg(image: Path) -> str:
    if shutil.which("zbarimg") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("zbarimg (Debian zbar-tools) is required in CI", pytrace=False)
        pytest.skip("zbarimg (Debian zbar-tools) is not installed")
    done = subprocess.run(
        # QR codes only: zbar's linear decoders now and then read a run of a QR's
        # modules as a short 1-D barcode (a second line such as "B80A").
        ["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.removesuffix("\n")


@pytest.mark.interop
@pytest.mark.parametrize("issuer", [*ISSUERS, "https://gov.example/id"])
def test_zbar_reads_the_exact_url(pki: Pki, demo_payload: str, issuer: str, tmp_path: Path) -> None:
    url = qr_url(issuer, demo_payload)
    png = qr_png(url)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "qr.png").write_bytes(png)
    scanned = zbarimg(tmp_path / "qr.png")
    assert scanned == url
    assert verify_qr_seal(scanned, [pki.seal]).claims == DEMO


def test_svg_is_well_formed_with_a_quiet_zone(demo_payload: str) -> None:
    url = qr_url(ISSUERS[0], demo_payload)
    root = ET.fromstring(qr_svg(url))
    modules = 17 + 4 * qr_version(url)
    assert root.get("width") == str((modules + 8) * 4)  # 4 modules of quiet zone each side


@pytest.mark.parametrize(
    "name",
    ["张三", "欧阳娜娜", "𠀀𠀁", "Zoë Ñúñez-Ødegård", "محمد بن علي", "👩‍🔬", "", "A B.C"],
)
def test_unicode_names_round_trip_exactly(pki: Pki, name: str) -> None:
    claims = replace(DEMO, holder_name=name, fields=(("名", name), ("k", "")))
    assert verify_qr_seal(seal(pki, claims), [pki.seal]).claims == claims


@pytest.mark.parametrize(
    ("kind", "holder_id", "form"),
    [
        ("citizen", "11010519491231002X", 0x01),
        ("business", "91350100M000100Y43", 0x02),
        ("citizen", "11010519491231002x", 0x11),  # not the packed form: kept as text
        ("business", "E12345678", 0x12),
    ],
)
def test_holder_ids_round_trip(pki: Pki, kind: str, holder_id: str, form: int) -> None:
    claims = replace(DEMO, holder_kind=kind, holder_id=holder_id, valid_until=None)
    payload = seal(pki, claims)
    assert from_text(payload)[30] == form
    assert decode_qr_seal(payload).claims == claims


def test_a_batch_seals_each_claims_in_order(pki: Pki) -> None:
    batch = [replace(DEMO, number=f"DEMO-2026-{i:06d}", holder_name=f"张{i}") for i in range(3)]
    payloads = QrSealer(pki.seal_signer, pki.seal).seal_many(batch)
    assert [verify_qr_seal(p, [pki.seal]).claims for p in payloads] == batch
    assert QrSealer(pki.seal_signer, pki.seal).seal_many([]) == []
    too_long = replace(DEMO, fields=tuple((f"k{i}", "值" * 40) for i in range(8)))
    with pytest.raises(QrClaimsInvalid):
        QrSealer(pki.seal_signer, pki.seal).seal_many([DEMO, too_long])


def test_text_form_round_trips_every_length() -> None:
    for length in range(64):
        data = secrets.token_bytes(length)
        assert from_text(to_text(data)) == data
    # RFC 9285 §4 order, least significant digit first: 65535 = 15 + 42*6 + 42²*37.
    assert to_text(b"\xff\xff") == "F6*"
    assert to_text(b"AB") == "WJ9"  # 16706 = 32 + 42*19 + 42²*9
    assert to_text(b"\x00") == "00"


def test_text_form_of_every_two_byte_group() -> None:
    # RFC 9285 §4: n = 256a + b = c + 42d + 42²e, written c d e.
    alphabet = PAYLOAD_ALPHABET
    for n in range(1 << 16):
        expected = alphabet[n % 42] + alphabet[n // 42 % 42] + alphabet[n // (42 * 42)]
        assert to_text(n.to_bytes(2, "big")) == expected
    for n in range(256):
        assert to_text(bytes([n])) == alphabet[n % 42] + alphabet[n // 42]


# -- tampering and abuse ------------------------------------------------------------------


def test_every_single_character_change_is_rejected(pki: Pki, demo_payload: str) -> None:
    certificates = [pki.seal]
    tried = 0
    for position, original in enumerate(demo_payload):
        for substitute in PAYLOAD_ALPHABET + "a /%":
            if substitute == original:
                continue
            changed = demo_payload[:position] + substitute + demo_payload[position + 1 :]
            with pytest.raises(REJECTED):
                verify_qr_seal(changed, certificates)
            tried += 1
    assert tried == len(demo_payload) * (len(PAYLOAD_ALPHABET) + 3)


def test_every_byte_change_is_rejected(pki: Pki, demo_payload: str) -> None:
    """Mutations below the text form reach the binary parser with every shape of bad field."""
    data = from_text(demo_payload)
    for position in range(len(data)):
        values = {data[position] ^ (1 << bit) for bit in range(8)} | {0x00, 0x7F, 0x80, 0xFF}
        for value in values - {data[position]}:
            changed = data[:position] + bytes([value]) + data[position + 1 :]
            with pytest.raises(REJECTED):
                verify_qr_seal(to_text(changed), [pki.seal])


def test_random_text_never_escapes_as_another_error() -> None:
    for _ in range(2000):
        length = secrets.randbelow(400)
        text = "".join(secrets.choice(PAYLOAD_ALPHABET) for _ in range(length))
        with contextlib.suppress(MalformedQrSeal):
            decode_qr_seal(text)
        binary = b"\x01" + secrets.token_bytes(secrets.randbelow(300))  # reaches the parser
        with contextlib.suppress(MalformedQrSeal):
            decode_qr_seal(to_text(binary))


def test_every_truncation_and_extension_is_rejected(pki: Pki, demo_payload: str) -> None:
    for length in range(len(demo_payload)):
        with pytest.raises(REJECTED):
            verify_qr_seal(demo_payload[:length], [pki.seal])
    for extra in ("0", "00", "000", "A" * 30):
        with pytest.raises(MalformedQrSeal):
            verify_qr_seal(demo_payload + extra, [pki.seal])


def test_signature_tampering_is_rejected(pki: Pki, demo_payload: str) -> None:
    data = from_text(demo_payload)
    for signature in (
        bytes(64),
        b"\xff" * 64,
        data[-64:-32] + bytes(32),
        data[-32:] + data[-64:-32],
    ):
        with pytest.raises(QrSealSignatureInvalid):
            verify_qr_seal(to_text(data[:-64] + signature), [pki.seal])


@pytest.mark.parametrize(
    "text",
    [
        "A" * 100_000,
        "HTTPS://ID.EXAMPLE.GOV/V/" + "0" * 100_000,
        "\x00" * 100_000,
        "0" * (qr.MAX_PAYLOAD_CHARS + 3),
        "0" * (qr.MAX_PAYLOAD_CHARS - 3),
        "",
        "https://id.example.gov/x/" + "0" * 30,
        "https://id.example.gov/v/",
        "::",  # a final group over 255
        "0 0",
        "%20%",
    ],
)
def test_oversized_or_foreign_text_is_malformed_quickly(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(MalformedQrSeal):
        decode_qr_seal(text)
    assert time.perf_counter() - started < 0.5


def test_non_text_is_malformed() -> None:
    with pytest.raises(MalformedQrSeal):
        decode_qr_seal(b"HTTPS://ID.EXAMPLE.GOV/V/00")  # type: ignore[arg-type]


def test_unknown_version_is_malformed(demo_payload: str) -> None:
    data = from_text(demo_payload)
    with pytest.raises(MalformedQrSeal, match="version 2"):
        decode_qr_seal(to_text(b"\x02" + data[1:]))


def test_errors_are_invalid_input_with_stable_slugs() -> None:
    assert issubclass(MalformedQrSeal, InvalidInput) and MalformedQrSeal.slug == "malformed-qr-seal"
    assert issubclass(QrSealSignatureInvalid, InvalidInput)
    assert issubclass(QrSealUnknownKey, InvalidInput)


def test_other_key_is_unknown(pki: Pki, demo_payload: str) -> None:
    other, _ = pki.new_seal()
    with pytest.raises(QrSealUnknownKey):
        verify_qr_seal(demo_payload, [other, pki.ca, pki.root])
    with pytest.raises(QrSealUnknownKey):
        verify_qr_seal(demo_payload, [])


def test_seal_by_another_key_under_this_key_id_is_rejected(pki: Pki, demo_payload: str) -> None:
    other_cert, other_signer = pki.new_seal()
    forged = encode_qr_seal(DEMO, other_signer, other_cert)
    data = from_text(forged)
    relabelled = to_text(data[:1] + qr_key_id(pki.seal) + data[9:])  # claims pki.seal's key id
    with pytest.raises(QrSealSignatureInvalid):
        verify_qr_seal(relabelled, [pki.seal, other_cert])


# -- what cannot be sealed ----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"holder_name": "x" * 128},
        {"holder_name": "张" * 43},  # 129 bytes of UTF-8
        {"holder_name": "a\nb"},
        {"holder_kind": "robot"},
        {"number": "\x00"},
        {"issued_on": date(1969, 12, 31)},
        {"valid_until": date(2149, 6, 6)},
        {"fields": tuple(("k", "v") for _ in range(33))},
    ],
)
def test_unencodable_claims_are_refused(pki: Pki, change: dict[str, object]) -> None:
    with pytest.raises(QrClaimsInvalid):
        seal(pki, replace(DEMO, **change))  # type: ignore[arg-type]


def test_signer_must_match_certificate_and_be_p256(pki: Pki) -> None:
    with pytest.raises(ValueError, match="does not certify"):
        encode_qr_seal(DEMO, pki.seal_signer, pki.ca)
    with pytest.raises(ValueError, match="P-256"):
        encode_qr_seal(DEMO, pki.root_signer, pki.root)
    assert pki.root_signer.algorithm is KeyAlgorithm.EC_P384
