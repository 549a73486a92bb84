"""PAdES baseline signatures on licence PDFs, at level B-LT (ETSI EN 319 142-1).

pyHanko writes the PDF signature; this module decides what goes into it:

* B-B (EN 319 142-1 §6.3, table 1): SubFilter ``ETSI.CAdES.detached``, a CMS
  SignedData with the ESS signing-certificate-v2 attribute and no
  signing-time attribute (the time is the signature dictionary's ``/M``).
* B-T (§6.3): a signature time-stamp (RFC 3161) from *our* time-stamping
  authority, asked in-process through :class:`CallableTimeStamper`.
* B-LT (§6.3, table 1): the validation material — every certificate up to the
  root, OCSP responses for the seal and the time-stamping unit, the CAs'
  CRLs — in the Document Security Store (ISO 32000-2 §12.8.4.3). It is
  gathered in-process (:func:`gather_revocation_material`), never fetched.

The visible seal is a widget in the rectangle the licence layout reserves,
drawn by :func:`authority.seals.pdf_render.render_seal_appearance`.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO

from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from pyhanko.pdf_utils import content, layout
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext

from authority.errors import AuthorityError
from authority.pki.models import CertificateRole
from authority.pki.service import (
    OCSP_NAME,
    ROOT_NAME,
    SEAL_CA_NAME,
    TSA_NAME,
    Pki,
    load_certificate,
)
from authority.pki.tsa import TimeStampAuthority, token_from_response
from authority.seals.pdf_render import SealBox, render_seal_appearance
from authority.seals.pdf_signer import KeyStorePdfSigner

__all__ = [
    "SEAL_FIELD_NAME",
    "CallableTimeStamper",
    "RevocationMaterial",
    "SealingFailed",
    "async_seal_pdf",
    "gather_revocation_material",
    "pki_revocation_material",
    "seal_pdf",
    "timestamper_for",
]

SEAL_FIELD_NAME = "AuthoritySeal"

_OFFLINE_WARNING = "Validation/revocation info will be embedded, but fetching is not allowed"


class _ExpectedOffline(logging.Filter):
    """Drops pyHanko's warning that fetching is off: here that is the design, not a slip."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_OFFLINE_WARNING)


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_ExpectedOffline())


class SealingFailed(AuthorityError):
    """The PDF could not be sealed: the seal or the TSA is not in good standing."""

    slug = "sealing-failed"
    title = "PDF sealing failed"
    status = 500


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


class CallableTimeStamper(TimeStamper):
    """A pyHanko time stamper that hands the DER TimeStampReq to a Python callable.

    ``respond`` maps request DER to response DER, e.g. our
    :meth:`TimeStampAuthority.respond` at the current time: no network.
    pyHanko checks the status and the nonce (RFC 3161 §2.4.2) of the answer.
    """

    def __init__(self, respond: Callable[[bytes], bytes]) -> None:
        super().__init__(include_nonce=True)
        self._respond = respond

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """Ask the callable; the answer is parsed, not trusted (pyHanko validates it).

        A rejection raises :class:`TimeStampRejected` with its status and failInfo:
        asn1crypto's TimeStampResp cannot even parse a response without a token.
        """
        response = self._respond(bytes(req.dump()))
        token_from_response(response)  # RFC 3161 §2.4.2: granted, or raise
        return tsp.TimeStampResp.load(response)


def timestamper_for(
    tsa: TimeStampAuthority, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> CallableTimeStamper:
    """A time stamper answered in-process by ``tsa`` at ``clock()``.

    pyHanko asks for one throw-away token per instance (to size the
    signature and find the TSA's certificates); reusing an instance across
    seals saves that request while the TSA certificate stays the same.
    """
    return CallableTimeStamper(lambda request: tsa.respond(request, clock()))


@dataclass(frozen=True)
class RevocationMaterial:
    """What a verifier needs, besides its trust in ``trust_root``, to validate a seal offline.

    ``certificates`` holds every certificate short of the root (issuing CAs,
    seal, time-stamping unit, OCSP responder); ``ocsp_responses`` and
    ``crls`` are DER. It becomes the DSS content (EN 319 142-1 §6.3, B-LT).
    """

    trust_root: x509.Certificate
    certificates: tuple[x509.Certificate, ...]
    ocsp_responses: tuple[bytes, ...]
    crls: tuple[bytes, ...]

    def validation_context(self) -> ValidationContext:
        """A pyHanko validation context over exactly this material, with fetching off.

        Revocation checking is hard-fail: pyHanko embeds only what it used, so a
        certificate without status here stops the sealing instead of leaving
        the DSS short of B-LT.
        """
        return ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(_der(self.trust_root))],
            other_certs=[asn1_x509.Certificate.load(_der(c)) for c in self.certificates],
            ocsps=list(self.ocsp_responses),
            crls=list(self.crls),
            allow_fetching=False,
            revocation_mode="hard-fail",
        )


def _ocsp_status(
    respond: Callable[[bytes], bytes], subject: x509.Certificate, issuer: x509.Certificate
) -> bytes:
    # RFC 6960 §4.1.1: the CertID names the issuer by name and key hashes.
    request = ocsp.OCSPRequestBuilder().add_certificate(subject, issuer, hashes.SHA256()).build()
    answer = respond(request.public_bytes(serialization.Encoding.DER))
    parsed = ocsp.load_der_ocsp_response(answer)
    if parsed.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise SealingFailed(
            f"OCSP answered {parsed.response_status.name} for {subject.subject.rfc4514_string()}"
        )
    if parsed.certificate_status is not ocsp.OCSPCertStatus.GOOD:
        raise SealingFailed(
            f"{subject.subject.rfc4514_string()} is {parsed.certificate_status.name.lower()}"
        )
    return answer


def gather_revocation_material(
    *,
    trust_root: x509.Certificate,
    certificates: Sequence[x509.Certificate],
    status_of: Sequence[tuple[x509.Certificate, x509.Certificate]],
    ocsp_respond: Callable[[bytes], bytes],
    crls: Sequence[bytes],
) -> RevocationMaterial:
    """Ask ``ocsp_respond`` (request DER → response DER) about each (certificate, issuer)
    of ``status_of`` and bundle the answers with ``certificates`` and ``crls``.

    Raises :class:`SealingFailed` unless every answer is a successful "good":
    a revoked seal must not seal anything (EN 319 102-1 §5.2.6 would fail it).
    """
    responses = tuple(_ocsp_status(ocsp_respond, subject, issuer) for subject, issuer in status_of)
    return RevocationMaterial(trust_root, tuple(certificates), responses, tuple(crls))


def pki_revocation_material(
    pki: Pki, seal: x509.Certificate, now: datetime
) -> tuple[RevocationMaterial, CallableTimeStamper]:
    """The validation material for ``seal`` and a time stamper, both from ``pki`` in-process.

    Raises :class:`SealingFailed` if the seal or the time-stamping unit is not good.
    """
    root = load_certificate(pki.ca(ROOT_NAME))
    seal_ca = load_certificate(pki.ca(SEAL_CA_NAME))
    tsa = load_certificate(pki.current(CertificateRole.TSA, TSA_NAME))
    responder = pki.ocsp_responder()
    responder_cert = load_certificate(pki.current(CertificateRole.OCSP, OCSP_NAME))
    if seal.issuer != seal_ca.subject:
        raise SealingFailed("the seal was not issued by the current seal CA")
    material = gather_revocation_material(
        trust_root=root,
        certificates=[seal_ca, seal, tsa, responder_cert],
        status_of=[(seal, seal_ca), (tsa, seal_ca)],
        ocsp_respond=lambda request: responder.respond(request, now),
        # RFC 5280 §6.3: the seal CA's own certificate is checked against the root's CRL.
        crls=[pki.crl(ROOT_NAME, now).der, pki.crl(SEAL_CA_NAME, now).der],
    )
    return material, timestamper_for(pki.time_stamp_authority())


class _PdfPageContent(content.PdfContent):
    """Page 1 of an in-memory PDF as a form XObject (pyHanko's ImportedPdfPage reads files)."""

    def __init__(self, pdf: bytes) -> None:
        super().__init__()
        self._pdf = pdf

    def render(self) -> bytes:
        """Import the page into the writer and draw it."""
        xobject = self._ensure_writer.import_page_as_xobject(PdfFileReader(BytesIO(self._pdf)))
        name = "/Seal" + binascii.hexlify(uuid.uuid4().bytes).decode("ascii")
        self.resources.xobject[name] = xobject
        x1, y1, x2, y2 = xobject.get_object()["/BBox"]
        self.box = layout.BoxConstraints(width=abs(x2 - x1), height=abs(y2 - y1))
        return name.encode("ascii") + b" Do"


async def async_seal_pdf(
    pdf: bytes,
    signer: KeyStorePdfSigner,
    *,
    box: SealBox,
    timestamper: TimeStamper,
    revocation: RevocationMaterial,
    agency_zh: str,
    agency_en: str,
    reason: str | None = None,
    location: str | None = None,
    name: str | None = None,
    field_name: str = SEAL_FIELD_NAME,
) -> bytes:
    """``pdf`` with a PAdES-B-LT seal by ``signer``, visible in ``box`` (see :func:`seal_pdf`)."""
    sealed_at = datetime.now(UTC)
    appearance = render_seal_appearance(
        box.width, box.height, agency_zh=agency_zh, agency_en=agency_en, sealed_at=sealed_at
    )
    style = StaticStampStyle(
        background=_PdfPageContent(appearance),
        background_opacity=1.0,
        border_width=0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(0),
        ),
    )
    metadata = signers.PdfSignatureMetadata(
        field_name=field_name,
        # EN 319 142-1 §6.3 table 1 (B-B): SubFilter SHALL be ETSI.CAdES.detached.
        subfilter=fields.SigSeedSubFilter.PADES,
        # B-LT: validation material in the DSS (EN 319 142-1 §6.3, table 1, "DSS").
        embed_validation_info=True,
        validation_context=revocation.validation_context(),
        use_pades_lta=False,
        # In the signed revision itself, so the whole file is covered by the seal and a
        # reader without incremental-update analysis still sees B-LT. VRI entries are
        # optional (and obsolescent); pyHanko requires them off for this placement.
        dss_settings=DSSContentSettings(
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False
        ),
        # ISO 32000-1 §12.8.2.2: a certification signature with P=1: no change allowed.
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
        reason=reason,
        location=location,
        name=name,
    )
    pdf_signer = signers.PdfSigner(
        metadata,
        signer,
        timestamper=timestamper,
        stamp_style=style,
        new_field_spec=fields.SigFieldSpec(field_name, on_page=box.page, box=box.as_tuple()),
    )
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    try:
        output = await pdf_signer.async_sign_pdf(writer)
    except AuthorityError:
        raise
    except Exception as exc:  # pyHanko: SigningError, TimestampRequestError, path errors
        raise SealingFailed(f"PAdES sealing failed: {exc}") from exc
    return bytes(output.getvalue())


def seal_pdf(
    pdf: bytes,
    signer: KeyStorePdfSigner,
    *,
    box: SealBox,
    timestamper: TimeStamper,
    revocation: RevocationMaterial,
    agency_zh: str,
    agency_en: str,
    reason: str | None = None,
    location: str | None = None,
    name: str | None = None,
    field_name: str = SEAL_FIELD_NAME,
) -> bytes:
    """``pdf`` with a PAdES-B-LT seal by ``signer``, visible in ``box``.

    The signature is time-stamped through ``timestamper`` (B-T) and carries
    ``revocation`` in its DSS (B-LT). Synchronous: call :func:`async_seal_pdf`
    from a running event loop. Raises :class:`SealingFailed`.
    """
    return asyncio.run(
        async_seal_pdf(
            pdf, signer, box=box, timestamper=timestamper, revocation=revocation,
            agency_zh=agency_zh, agency_en=agency_en, reason=reason, location=location,
            name=name, field_name=field_name,
        )
    )  # fmt: skip
