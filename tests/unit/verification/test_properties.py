"""Property tests: mutated QR payloads and PDFs never escape as exceptions, never pass as VALID."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authority.agencies.service import create_agency
from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.licences.models import LicenceType
from authority.licences.pdf import sealed_pdf
from authority.licences.sealing import AgencySealer
from authority.licences.service import LicenceRequest, create_licence_type, issue_licences
from authority.pki.asn1 import der_child, der_span
from authority.seals.qr import PAYLOAD_ALPHABET, payload_of
from authority.verification.report import Verdict
from authority.verification.service import (
    online_context,
    verify_document,
    verify_file,
    verify_qr,
)

SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string"}},
    "required": ["category"],
}
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@dataclass
class Issued:
    payload: str
    pdf: bytes
    document: bytes
    seal: bytes


@pytest.fixture
def issued(instance: Instance, database: Database) -> Iterator[Issued]:
    with database.transaction() as session:
        pki = pki_for(instance, session)
        agency, _ = create_agency(pki, "PROP", "Agency of Properties", utcnow())
        licence_type = create_licence_type(
            session, agency, code="PROP-A", name_zh="许可", name_en="Permit",
            schema=SCHEMA, validity_days=30, now=utcnow(),
        )  # fmt: skip
        (licence,) = issue_licences(
            session,
            AgencySealer(pki, agency),
            agency,
            [LicenceRequest("PROP-A", "citizen", "11010519491231002X", "王五", {"category": "B"})],
            issuer=instance.settings.issuer,
            actor="test",
            now=utcnow(),
        )
        assert isinstance(licence_type, LicenceType)
        pdf = sealed_pdf(pki, instance.settings.issuer, licence, licence_type, agency, utcnow())
        yield Issued(licence.qr_payload, pdf, licence.document, licence.seal)


def _verdict_qr(instance: Instance, database: Database, text: str) -> Verdict:
    with database.transaction(write=False) as session:
        context = online_context(session, instance.settings.issuer, utcnow())
        return verify_qr(context, text, context.as_of).verdict


def _verdict_file(instance: Instance, database: Database, data: bytes) -> Verdict:
    with database.transaction(write=False) as session:
        context = online_context(session, instance.settings.issuer, utcnow())
        return verify_file(context, data, context.as_of).verdict


def test_the_unmutated_artefacts_are_valid(
    instance: Instance, database: Database, issued: Issued
) -> None:
    assert _verdict_qr(instance, database, issued.payload) is Verdict.VALID
    assert _verdict_file(instance, database, issued.pdf) is Verdict.VALID


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES)
@given(data=st.data())
def test_a_mutated_qr_payload_is_never_valid(
    instance: Instance, database: Database, issued: Issued, data: st.DataObject
) -> None:
    payload = issued.payload
    index = data.draw(st.integers(0, len(payload) - 1))
    kind = data.draw(st.sampled_from(["replace", "insert", "delete", "swap"]))
    char = data.draw(st.sampled_from(PAYLOAD_ALPHABET + "a%/ é\x00"))
    if kind == "replace":
        mutated = payload[:index] + char + payload[index + 1 :]
    elif kind == "insert":
        mutated = payload[:index] + char + payload[index:]
    elif kind == "delete":
        mutated = payload[:index] + payload[index + 1 :]
    else:
        other = data.draw(st.integers(0, len(payload) - 1))
        chars = list(payload)
        chars[index], chars[other] = chars[other], chars[index]
        mutated = "".join(chars)
    if mutated == payload:
        return
    assert _verdict_qr(instance, database, mutated) is not Verdict.VALID


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(text=st.text(max_size=300))
def test_any_text_gives_a_report(instance: Instance, database: Database, text: str) -> None:
    assert _verdict_qr(instance, database, text) is Verdict.INVALID


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(data=st.data())
def test_a_mutated_pdf_is_never_valid(
    instance: Instance, database: Database, issued: Issued, data: st.DataObject
) -> None:
    pdf = issued.pdf
    # Half the draws land in the signature's /Contents: outside the signed byte range,
    # mostly zero padding, where a change must be noticed all the same.
    start, end = _contents_span(pdf)
    index = data.draw(st.one_of(st.integers(0, len(pdf) - 1), st.integers(start, end - 1)))
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    if kind == "flip":
        bit = data.draw(st.integers(0, 7))
        mutated = pdf[:index] + bytes([pdf[index] ^ (1 << bit)]) + pdf[index + 1 :]
    elif kind == "truncate":
        mutated = pdf[:index]
    else:
        mutated = pdf[:index] + data.draw(st.binary(min_size=1, max_size=64)) + pdf[index:]
    if mutated == pdf:
        return
    try:
        verdict = _verdict_file(instance, database, mutated)
    except Exception as exc:  # only the two upload refusals may be raised, never anything else
        assert type(exc).__name__ in ("UnsupportedFile",), exc
        return
    assert verdict is not Verdict.VALID, (kind, index)


@settings(max_examples=80, deadline=None, suppress_health_check=FIXTURES)
@given(data=st.data())
def test_a_mutated_document_or_seal_is_never_valid(
    instance: Instance, database: Database, issued: Issued, data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(["document", "seal"]))
    original = issued.document if target == "document" else issued.seal
    index = data.draw(st.integers(0, len(original) - 1))
    bit = data.draw(st.integers(0, 7))
    mutated = original[:index] + bytes([original[index] ^ (1 << bit)]) + original[index + 1 :]
    document, seal = (mutated, issued.seal) if target == "document" else (issued.document, mutated)
    with database.transaction(write=False) as session:
        context = online_context(session, instance.settings.issuer, utcnow())
        report = verify_document(context, document, seal, context.as_of)
    assert report.verdict is not Verdict.VALID, (target, index, bit)


def _contents_span(pdf: bytes) -> tuple[int, int]:
    match = re.search(rb"/Contents <([0-9a-fA-F]+)>", pdf)
    assert match is not None
    return match.span(1)


def test_the_seal_contents_padding_is_checked(
    instance: Instance, database: Database, issued: Issued
) -> None:
    start, end = _contents_span(issued.pdf)
    for position in (end - 1, end - 200, (start + end) // 2, start + 10):
        original = issued.pdf[position : position + 1]
        replacement = b"1" if original != b"1" else b"2"
        mutated = issued.pdf[:position] + replacement + issued.pdf[position + 1 :]
        assert _verdict_file(instance, database, mutated) is Verdict.INVALID, position


def _version_offsets(der: bytes, offset: int = 0) -> list[int]:
    """Where the version INTEGERs of a CMS SignedData, its SignerInfos and the SignedData
    and SignerInfos of the time-stamp tokens in their unsigned attributes lie in ``der``."""
    _, start, end = der_span(der, offset)  # ContentInfo
    _, start, end = der_child(der, start, end, 1)  # [0] EXPLICIT content
    _, start, end = der_span(der, start)  # SignedData
    found = [der_span(der, start)[1]]  # its version's value octet
    signer_infos = start
    while der_span(der, signer_infos)[2] < end:
        signer_infos = der_span(der, signer_infos)[2]
    _, first, last = der_span(der, signer_infos)
    while first < last:  # each SignerInfo
        _, info_start, info_end = der_span(der, first)
        found.append(der_span(der, info_start)[1])
        child = info_start
        while child < info_end:
            tag, attrs_start, attrs_end = der_span(der, child)
            if tag == 0xA1:  # unsignedAttrs: each attribute's values may hold a token
                while attrs_start < attrs_end:
                    _, a_start, a_end = der_span(der, attrs_start)
                    _, values_start, values_end = der_child(der, a_start, a_end, 1)
                    while values_start < values_end:
                        found += _version_offsets(der, values_start)
                        values_start = der_span(der, values_start)[2]
                    attrs_start = a_end
            child = attrs_end
        first = info_end
    return found


def test_a_changed_cms_version_is_never_valid(
    instance: Instance, database: Database, issued: Issued
) -> None:
    # RFC 5652 §5.1, §5.3: the versions are outside every signature; 1 <-> 3 once passed.
    start, end = _contents_span(issued.pdf)
    contents = bytes.fromhex(issued.pdf[start:end].decode())
    offsets = _version_offsets(contents)
    assert len(offsets) == 4  # seal: SignedData, SignerInfo; its time-stamp token: the same
    for offset in offsets:
        mutated = bytearray(contents)
        mutated[offset] ^= 0x02
        pdf = issued.pdf[:start] + bytes(mutated).hex().upper().encode() + issued.pdf[end:]
        assert _verdict_file(instance, database, pdf) is Verdict.INVALID, offset
    seal_offsets = _version_offsets(issued.seal)
    assert len(seal_offsets) == 4
    for offset in seal_offsets:
        seal = bytearray(issued.seal)
        seal[offset] ^= 0x02
        with database.transaction(write=False) as session:
            context = online_context(session, instance.settings.issuer, utcnow())
            report = verify_document(context, issued.document, bytes(seal), context.as_of)
        assert report.verdict is Verdict.INVALID, offset


SHA256_WITH_NULL = bytes.fromhex("300d06096086480165030402010500")  # AlgorithmIdentifier


def test_unsigned_octets_of_the_cms_are_held_to_what_we_write(
    instance: Instance, database: Database, issued: Issued
) -> None:
    # Single bit flips that once passed: a digest algorithm's NULL parameters turned
    # into another empty value (outside the signature in digestAlgorithms and in each
    # SignerInfo), and the ContentInfo's length stretched over the zero padding.
    start, end = _contents_span(issued.pdf)
    contents = bytes.fromhex(issued.pdf[start:end].decode())
    nulls = [m.start() + 13 for m in re.finditer(re.escape(SHA256_WITH_NULL), contents)]
    assert len(nulls) >= 2  # at least the seal's listed digest and its signer's
    assert contents[:2] == b"\x30\x82"
    stretched = bytearray(contents)
    stretched[2] += 1  # 256 octets longer: into the zero padding
    mutations = {"ContentInfo length": stretched}
    for offset in nulls:
        changed = bytearray(contents)
        changed[offset] ^= 0x02  # NULL (05 00) -> ObjectDescriptor (07 00)
        mutations[f"parameters at {offset}"] = changed
    for name, mutated in mutations.items():
        pdf = issued.pdf[:start] + bytes(mutated).hex().upper().encode() + issued.pdf[end:]
        assert _verdict_file(instance, database, pdf) is Verdict.INVALID, name


def test_a_name_spelt_in_another_case_is_never_valid(
    instance: Instance, database: Database, issued: Issued
) -> None:
    # A SignerInfo names its certificate by issuer and serial number, outside the
    # signature; names match case-insensitively (RFC 5280 §7.1), so a re-cased issuer
    # once still found the certificate. Every name in both artefacts is tried.
    def recased(der: bytes) -> Iterator[bytes]:
        for match in re.finditer(rb"[A-Za-z][A-Za-z ]{7,}", der):
            changed = bytearray(der)
            changed[match.start()] ^= 0x20
            yield bytes(changed)

    start, end = _contents_span(issued.pdf)
    contents = bytes.fromhex(issued.pdf[start:end].decode())
    for mutated in recased(contents):
        pdf = issued.pdf[:start] + mutated.hex().upper().encode() + issued.pdf[end:]
        assert _verdict_file(instance, database, pdf) is Verdict.INVALID
    for seal in recased(issued.seal):
        with database.transaction(write=False) as session:
            context = online_context(session, instance.settings.issuer, utcnow())
            report = verify_document(context, issued.document, seal, context.as_of)
        assert report.verdict is Verdict.INVALID


def test_payload_round_trip_is_exact(issued: Issued) -> None:
    assert payload_of(issued.payload) == issued.payload
