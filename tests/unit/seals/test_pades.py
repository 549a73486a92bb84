"""The sealed licence PDF: PAdES-B-LT judged by tools we did not write.

pyHanko's AdES validator (EN 319 102-1 §5.5, signatures with time and with
long-term validation material) decides on the DSS content alone, with the
test root as its only trust; qpdf checks the file's structure; poppler
(pdfsig, i.e. NSS) checks the signature; pdffonts and pdftoppm check the
embedded font and the page a person sees.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESPassed
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation.ades import AdESWithTimeValidationResult, ades_with_time_validation
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.status import ModificationLevel, PdfSignatureStatus
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer
from reportlab.graphics.barcode.qrencoder import QRCode, QRErrorCorrectLevel

from authority.agencies.service import create_agency
from authority.bootstrap import pki_for
from authority.db.session import Database
from authority.instance import Instance
from authority.pki.crl import RevocationReason, build_crl
from authority.pki.ocsp import CertStatus, OcspResponder
from authority.pki.service import load_certificate
from authority.pki.tsa import TimeStampAuthority, TimeStampRejected, rejection
from authority.seals.pades import (
    CallableTimeStamper,
    RevocationMaterial,
    SealingFailed,
    gather_revocation_material,
    pki_revocation_material,
    seal_pdf,
    timestamper_for,
)
from authority.seals.pdf_render import (
    LICENCE_SEAL_BOX,
    LicenceField,
    LicenceLayoutError,
    LicenceView,
    render_licence_pdf,
    render_seal_appearance,
)
from authority.seals.pdf_signer import KeyStorePdfSigner
from tests.unit.pki import pki_fixtures
from tests.unit.pki.pki_fixtures import Pki, write_pem

pki = pki_fixtures.pki

TITLE_ZH = "道路运输经营许可证"
HOLDER = "张三丰"
VERIFY_URL = "https://authority.example.gov.cn/v/" + "HC1Q" * 60


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required (poppler-utils, qpdf, libnss3-tools)", pytrace=False)
    return path


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False
    )


def qr_png(text: str) -> bytes:
    """A real QR code as PNG (reportlab's encoder, drawn with Pillow)."""
    code = QRCode(None, QRErrorCorrectLevel.M)
    code.addData(text)
    code.make()
    count, scale, quiet = code.getModuleCount(), 4, 4
    image = Image.new("1", ((count + 2 * quiet) * scale,) * 2, 1)
    for row, col in itertools.product(range(count), repeat=2):
        if code.isDark(row, col):
            x, y = (col + quiet) * scale, (row + quiet) * scale
            image.paste(0, (x, y, x + scale, y + scale))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def licence_view(fields: int = 3) -> LicenceView:
    extra = (
        LicenceField(
            "经营范围", "Scope of business", "道路普通货物运输；大型物件运输 General freight"
        ),
        LicenceField("车辆数", "Vehicles", "12"),
        LicenceField("地址", "Address", "北京市海淀区中关村大街1号 堃喆玥"),
    )
    return LicenceView(
        title_zh=TITLE_ZH,
        title_en="Road Transport Operating Licence",
        number="MOT-2031-000042",
        type_name_zh="道路运输经营许可",
        type_name_en="Road transport operation",
        agency_name_zh="测试交通运输部",
        agency_name_en="Ministry of Testing",
        holder_name=f"{HOLDER} Zhang Sanfeng",
        holder_id_label_zh="公民身份号码",
        holder_id_label_en="Resident ID number",
        holder_id="11010519491231002X",
        valid_from=date(2031, 1, 1),
        valid_until=date(2035, 12, 31),
        issued_on=date(2031, 1, 1),
        status_zh="有效",
        status_en="Valid",
        fields=tuple(extra[i % 3] for i in range(fields)),
        qr_png=qr_png(VERIFY_URL),
        verify_url=VERIFY_URL,
    )


def _lookup(status: CertStatus) -> Callable[[x509.Certificate, int], CertStatus]:
    return lambda _issuer, _serial: status


def _material(pki: Pki, status: CertStatus | None = None) -> RevocationMaterial:
    """What the application gathers in-process: OCSP for seal and TSA, both CAs' CRLs."""
    now = datetime.now(UTC)
    lookup = _lookup(status or CertStatus.good())
    responder = OcspResponder(pki.ocsp, pki.ocsp_signer, [pki.ca], lookup)
    crls = [
        build_crl(issuer, signer, number=1, this_update=now, next_update=now + timedelta(days=1),
                  revoked=[])
        for issuer, signer in ((pki.root, pki.root_signer), (pki.ca, pki.ca_signer))
    ]  # fmt: skip
    return gather_revocation_material(
        trust_root=pki.root,
        certificates=[pki.ca, pki.seal, pki.tsa, pki.ocsp],
        status_of=[(pki.seal, pki.ca), (pki.tsa, pki.ca)],
        ocsp_respond=lambda request: responder.respond(request, datetime.now(UTC)),
        crls=crls,
    )


def _tsa(pki: Pki) -> TimeStampAuthority:
    serials = itertools.count(1)
    return TimeStampAuthority(
        pki.tsa, pki.tsa_signer, serial_source=lambda: next(serials), chain=[pki.ca]
    )


def _seal(pki: Pki, pdf: bytes, **overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "box": LICENCE_SEAL_BOX,
        "timestamper": timestamper_for(_tsa(pki)),
        "revocation": _material(pki),
        "agency_zh": "测试交通运输部",
        "agency_en": "Ministry of Testing",
        "reason": "Licence issued",
        "location": "Beijing",
    }
    arguments.update(overrides)
    signer = KeyStorePdfSigner(pki.seal_signer, pki.seal, [pki.ca])
    return seal_pdf(pdf, signer, **arguments)


@pytest.fixture(scope="module")
def licence_pdf() -> bytes:
    return render_licence_pdf(licence_view())


@pytest.fixture(scope="module")
def sealed(licence_pdf: bytes) -> bytes:
    return _seal(pki_fixtures.build_pki(), licence_pdf)


def _signature(data: bytes) -> EmbeddedPdfSignature:
    reader = PdfFileReader(io.BytesIO(data))
    (signature,) = reader.embedded_signatures
    return signature


def _dss_knowledge(data: bytes) -> LocalKnowledge:
    """Everything the file's DSS holds, read with pyHanko: the validator's only material."""
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(data)))
    return LocalKnowledge(
        known_ocsps=[
            container
            for stream in dss.ocsps
            for container in OCSPContainer.load_multi(
                asn1_ocsp.OCSPResponse.load(stream.get_object().data)
            )
        ],
        known_crls=[
            CRLContainer(asn1_crl.CertificateList.load(stream.get_object().data))
            for stream in dss.crls
        ],
        known_certs=list(dss.load_certs()),
    )


def _validate(
    data: bytes, root: x509.Certificate, knowledge: LocalKnowledge
) -> AdESWithTimeValidationResult:
    """EN 319 102-1 §5.5 validation by pyHanko: trust in ``root`` only, no fetching."""
    trust = SimpleTrustManager.build(
        trust_roots=[asn1_x509.Certificate.load(root.public_bytes(serialization.Encoding.DER))]
    )
    spec = SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(
            trust_manager=trust, revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO)
        ),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
        ),
        local_knowledge=knowledge,
    )
    signature = _signature(data)
    signature.compute_integrity_info()
    return asyncio.run(
        ades_with_time_validation(
            signature.signed_data,
            spec,
            raw_digest=signature.compute_digest(),
            extra_status_kwargs=signature.summarise_integrity_info(),
            status_cls=PdfSignatureStatus,
        )
    )


def _fonts(pdf: Path) -> list[tuple[str, str, str, str]]:
    """(name, emb, sub, uni) of each font pdffonts lists."""
    result = _run(_tool("pdffonts"), pdf)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[2:]
    return [(row.split()[0], *row.split()[-5:-2]) for row in rows if row.strip()]


# -- the page ---------------------------------------------------------------------------


def test_the_licence_embeds_its_cjk_font_as_subsets(licence_pdf: bytes, tmp_path: Path) -> None:
    path = tmp_path / "licence.pdf"
    path.write_bytes(licence_pdf)
    # ISO 32000-1 §9.6.4: subset fonts are named TAG+PostScriptName; all text is in one font.
    assert _fonts(path) == [("AAAAAA+WenQuanYiMicroHei-0", "yes", "yes", "yes")]
    text = _run(_tool("pdftotext"), "-enc", "UTF-8", path, "-").stdout
    # ToUnicode maps (§9.10.3) make the Chinese text extractable, rare characters included.
    for expected in (TITLE_ZH, HOLDER, "堃喆玥", "扫码验证 / Scan to verify", "MOT-2031-000042"):
        assert expected in text


def test_too_many_fields_do_not_fit_the_page() -> None:
    with pytest.raises(LicenceLayoutError, match="60 data fields"):
        render_licence_pdf(licence_view(fields=60))


def test_the_seal_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_seal_appearance(200, 100, agency_zh="部", agency_en="M", sealed_at=datetime.now())


def test_the_sealed_page_shows_seal_and_qr(sealed: bytes, tmp_path: Path) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    # The seal appearance brings its own subset, under a tag of its own (§9.6.4).
    assert _fonts(path) == [
        ("AAAAAA+WenQuanYiMicroHei-0", "yes", "yes", "yes"),
        ("FAAAAA+WenQuanYiMicroHei-Seal-0", "yes", "yes", "yes"),
    ]
    result = _run(_tool("pdftoppm"), "-png", "-r", "60", "-f", "1", "-l", "1", path,
                  tmp_path / "page")  # fmt: skip
    assert result.returncode == 0, result.stderr
    image = Image.open(tmp_path / "page-1.png").convert("RGB")
    assert image.size == (497, 702)  # A4 (595.28 x 841.89 pt) at 60 dpi, rounded up
    scale = 60 / 72

    def pixels(x1: float, y1: float, x2: float, y2: float) -> list[tuple[int, int, int]]:
        """The pixels of a rectangle given in PDF points (origin bottom-left)."""
        crop = image.crop(
            (round(x1 * scale), round(image.height - y2 * scale),
             round(x2 * scale), round(image.height - y1 * scale))
        )  # fmt: skip
        return [color for count, color in crop.getcolors(1 << 20) or [] for _ in range(count)]

    box = LICENCE_SEAL_BOX
    red = [p for p in pixels(box.x1, box.y1, box.x2, box.y2) if p[0] > 150 > p[1] + 40]
    assert len(red) > 300  # the red emblem and frame of the widget's appearance
    qr = pixels(595.28 - 56 - 116, 112, 595.28 - 56, 228)
    dark = [p for p in qr if sum(p) < 200]
    assert 0.15 < len(dark) / len(qr) < 0.6  # QR modules, a quiet zone around them


# -- PAdES baseline structure -------------------------------------------------------------


def test_the_signature_is_a_pades_baseline_signature(sealed: bytes, pki: Pki) -> None:
    signature = _signature(sealed)
    # EN 319 142-1 §6.3 table 1 (B-B): SubFilter ETSI.CAdES.detached.
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    assert signature.sig_object["/Reason"] == "Licence issued"
    signed = {a["type"].native for a in signature.signer_info["signed_attrs"]}
    # B-B: signing-certificate-v2 SHALL be present, signing-time SHALL NOT (§6.3, table 1).
    assert signed == {"content_type", "message_digest", "signing_certificate_v2"}
    unsigned = {a["type"].native for a in signature.signer_info["unsigned_attrs"]}
    assert unsigned == {"signature_time_stamp_token"}  # B-T
    # Certification signature, no changes allowed (ISO 32000-1 §12.8.2.2).
    assert signature.docmdp_level is MDPPerm.NO_CHANGES
    widget = signature.sig_field
    assert [round(float(v)) for v in widget["/Rect"]] == list(LICENCE_SEAL_BOX.as_tuple())
    # B-LT: the DSS holds the whole chain, OCSP for seal and TSA, and the CAs' CRLs.
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(sealed)))
    certs = {c.dump() for c in dss.load_certs()}
    expected = {c.public_bytes(serialization.Encoding.DER)
                for c in (pki.root, pki.ca, pki.seal, pki.tsa, pki.ocsp)}  # fmt: skip
    assert certs == expected
    serials = {
        single["cert_id"]["serial_number"].native
        for stream in dss.ocsps
        for single in asn1_ocsp.OCSPResponse.load(stream.get_object().data).basic_ocsp_response[
            "tbs_response_data"
        ]["responses"]
    }
    assert serials == {pki.seal.serial_number, pki.tsa.serial_number}
    issuers = {
        asn1_crl.CertificateList.load(stream.get_object().data).issuer.dump() for stream in dss.crls
    }
    assert issuers == {
        asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)).subject.dump()
        for c in (pki.root, pki.ca)
    }


# -- pyHanko --------------------------------------------------------------------------------


def test_pyhanko_passes_the_seal_on_the_dss_alone(sealed: bytes, pki: Pki) -> None:
    result = _validate(sealed, pki.root, _dss_knowledge(sealed))
    assert result.ades_subindic is AdESPassed.OK, result.failure_msg  # TOTAL_PASSED
    status = result.api_status
    assert status is not None
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.coverage.name == "ENTIRE_FILE"
    assert status.modification_level is ModificationLevel.NONE
    assert status.timestamp_validity is not None
    assert status.timestamp_validity.trusted
    assert status.timestamp_validity.timestamp == result.best_signature_time
    assert status.signing_cert.subject.human_friendly.startswith("Common Name: Ministry of Testing")


def test_without_the_dss_material_pyhanko_cannot_decide(sealed: bytes, pki: Pki) -> None:
    # The control: the same file, the validator denied the DSS, finds no revocation status.
    result = _validate(sealed, pki.root, LocalKnowledge())
    assert result.ades_subindic is AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE


def test_pyhanko_rejects_a_seal_from_another_root(sealed: bytes) -> None:
    other = pki_fixtures.IDENTITY.root_subject()
    from authority.pki import profiles
    from tests.unit.pki.memory_signer import MemoryKeyStore

    store = MemoryKeyStore()
    signer = store.signer(store.generate("other-root").handle)
    stranger = profiles.root_ca_certificate(other, signer)
    result = _validate(sealed, stranger, _dss_knowledge(sealed))
    assert result.ades_subindic is AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND


# -- qpdf and poppler ---------------------------------------------------------------------


def test_qpdf_finds_no_errors(sealed: bytes, tmp_path: Path) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    result = _run(_tool("qpdf"), "--check", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No syntax or stream encoding errors found" in result.stdout


def _pdfsig(pdf: Path, root: x509.Certificate, tmp_path: Path) -> str:
    """pdfsig with an NSS database trusting ``root`` only; no online OCSP.

    Poppler does not read the DSS, and offline it cannot ask our OCSP
    responder (tests/interop/test_pdfsig.py checks that against a live server).
    """
    nss = tmp_path / "nss"
    nss.mkdir(exist_ok=True)
    certutil = _tool("certutil")
    subprocess.run([certutil, "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    pem = write_pem(tmp_path / "root.pem", root)
    subprocess.run(
        [certutil, "-A", "-d", f"sql:{nss}", "-n", "root", "-t", "CT,C,C", "-a", "-i", pem],
        check=True,
    )
    result = _run(_tool("pdfsig"), "-nssdir", f"sql:{nss}", "-no-ocsp", pdf)
    return result.stdout + result.stderr


def test_pdfsig_trusts_the_seal(sealed: bytes, pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    report = _pdfsig(path, pki.root, tmp_path)
    assert "Signature Type: ETSI.CAdES.detached" in report
    assert "Total document signed" in report
    assert "Signature Validation: Signature is Valid." in report
    assert "Certificate Validation: Certificate is Trusted." in report


def test_a_changed_byte_breaks_the_seal(sealed: bytes, pki: Pki, tmp_path: Path) -> None:
    data = bytearray(sealed)
    index = data.index(b"595", data.index(b"/MediaBox"))  # the page width, inside the signed range
    data[index] = ord("6")
    tampered = bytes(data)
    result = _validate(tampered, pki.root, _dss_knowledge(tampered))
    assert result.ades_subindic is AdESFailure.HASH_FAILURE  # TOTAL_FAILED
    assert result.api_status is not None
    assert not result.api_status.intact
    path = tmp_path / "tampered.pdf"
    path.write_bytes(tampered)
    assert "Signature Validation: Digest Mismatch." in _pdfsig(path, pki.root, tmp_path)


# -- refusals -----------------------------------------------------------------------------


def test_a_revoked_seal_gets_no_validation_material(pki: Pki) -> None:
    revoked = CertStatus.revoked(datetime.now(UTC), RevocationReason.KEY_COMPROMISE)
    with pytest.raises(SealingFailed, match=r"Ministry of Testing.* is revoked"):
        _material(pki, revoked)


def test_a_refusing_tsa_stops_the_sealing(licence_pdf: bytes, pki: Pki) -> None:
    refusing = CallableTimeStamper(lambda _request: rejection("system_failure", "down"))
    with pytest.raises(TimeStampRejected, match="rejection: system_failure"):
        _seal(pki, licence_pdf, timestamper=refusing)


# -- wired to the PKI service -------------------------------------------------------------


def test_sealing_with_the_service_pki(instance: Instance, database: Database) -> None:
    with database.session() as session:
        service = pki_for(instance, session)
        now = datetime.now(UTC)
        _, record = create_agency(service, "PADES", "Ministry of PAdES", now)
        seal = load_certificate(record)
        material, timestamper = pki_revocation_material(service, seal, now)
        seal_ca = load_certificate(service.ca("seal-ca"))
        signer = KeyStorePdfSigner(service.signer(record), seal, [seal_ca])
        sealed = seal_pdf(
            render_licence_pdf(licence_view()),
            signer,
            box=LICENCE_SEAL_BOX,
            timestamper=timestamper,
            revocation=material,
            agency_zh="测试部",
            agency_en="Ministry of PAdES",
        )
        root = load_certificate(service.ca("root"))
    result = _validate(sealed, root, _dss_knowledge(sealed))
    assert result.ades_subindic is AdESPassed.OK, result.failure_msg
