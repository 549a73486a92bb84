"""Verify a sealed licence PDF (PAdES, ETSI EN 319 142-1) with pyHanko, then as any seal.

pyHanko checks what is PDF-specific: the one signature's integrity over its
byte range, its cryptographic validity, that it covers the whole file (nothing
appended after sealing) and its RFC 3161 time-stamp. The sealing certificate's
path, role and revocation at the time-stamp's time, and the licence's status,
are then decided as for every other form (:mod:`authority.verification.verifier`).
The PDF names its licence by the verification URL in its ``/Keywords``,
covered by the seal like every other byte of the file.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from io import BytesIO
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from authority.seals.qr import MalformedQrSeal, decode_qr_seal
from authority.verification.report import (
    Outcome,
    Report,
    SealFailure,
    SubIndication,
    Verdict,
)
from authority.verification.trust import TrustContext
from authority.verification.verifier import (
    claims_period,
    conclude,
    offline_status,
    online_status,
    passed,
    public_fields,
    qr_licence,
    trust_seal_certificate,
)

MAX_PDF_BYTES = 8 << 20
# pyHanko logs every problem it finds in hostile files; the report says what matters.
logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


async def _validate(pdf: bytes, context: TrustContext) -> tuple[PdfSignatureStatus, str | None]:
    reader = PdfFileReader(BytesIO(pdf), strict=False)
    signatures = reader.embedded_signatures
    if len(signatures) != 1:
        raise SealFailure(
            SubIndication.FORMAT_FAILURE,
            "pdf-seal",
            f"the PDF has {len(signatures)} signatures; a licence PDF has exactly one seal",
        )
    validation = ValidationContext(
        trust_roots=[_asn1(context.root)],
        other_certs=[_asn1(k.certificate) for k in context.certificates],
        allow_fetching=False,
        # Revocation is decided by our own status source afterwards.
        revocation_mode="soft-fail",
    )
    status = await async_validate_pdf_signature(
        signatures[0], signer_validation_context=validation, ts_validation_context=validation
    )
    info = reader.trailer_view.get("/Info")
    info = info.get_object() if info is not None else None
    keywords = info.get("/Keywords") if isinstance(info, dict) else None
    return status, str(keywords) if keywords is not None else None


def verify_pdf(context: TrustContext, pdf: bytes, now: datetime) -> Report:
    """Verify a licence PDF's PAdES seal and the licence it names."""
    report = Report(form="pdf", mode=context.mode, verified_at=now)
    try:
        if len(pdf) > MAX_PDF_BYTES:
            raise SealFailure(SubIndication.FORMAT_FAILURE, "pdf", "the PDF is too large")
        status, keywords = asyncio.run(_validate(pdf, context))
        certificate = x509.load_der_x509_certificate(status.signing_cert.dump())
        _check_pdf_signature(report, status)
        proven = _check_pdf_timestamp(report, context, status)
        trust_seal_certificate(report, context, certificate, proven=proven, asserted=None)
    except SealFailure as failure:
        report.fail(failure)
        return conclude(report, None)
    except (SignatureValidationError, ValueError, TypeError, KeyError, IndexError) as exc:
        report.fail(SealFailure(SubIndication.FORMAT_FAILURE, "pdf", _unreadable(exc)))
        return conclude(report, None)
    except Exception as exc:  # pyHanko raises many types on hostile PDFs
        report.fail(SealFailure(SubIndication.FORMAT_FAILURE, "pdf", _unreadable(exc)))
        return conclude(report, None)
    passed(report)
    return _pdf_licence(report, context, certificate, keywords)


def _unreadable(exc: BaseException) -> str:
    return f"not a readable sealed PDF ({type(exc).__name__}: {str(exc)[:160]})"


def _check_pdf_signature(report: Report, status: PdfSignatureStatus) -> None:
    if not status.intact:
        raise SealFailure(
            SubIndication.HASH_FAILURE, "pdf-seal", "the PDF's bytes differ from what was sealed"
        )
    if not status.valid:
        raise SealFailure(
            SubIndication.SIG_CRYPTO_FAILURE, "pdf-seal", "the PDF's seal does not verify"
        )
    if status.coverage is not SignatureCoverageLevel.ENTIRE_FILE:
        raise SealFailure(
            SubIndication.FORMAT_FAILURE,
            "pdf-seal",
            "the PDF was changed after it was sealed (the seal does not cover the whole file)",
        )
    report.check("pdf-seal", Outcome.PASSED, "PAdES seal intact over the whole file")


def _check_pdf_timestamp(
    report: Report, context: TrustContext, status: PdfSignatureStatus
) -> datetime | None:
    stamp = status.timestamp_validity
    if stamp is None:
        report.check("timestamp", Outcome.WARNING, "no signature time-stamp (PAdES-B-B)")
        return None
    if not (stamp.intact and stamp.valid):
        raise SealFailure(
            SubIndication.HASH_FAILURE, "timestamp", "the signature time-stamp does not verify"
        )
    tsa = x509.load_der_x509_certificate(stamp.signing_cert.dump())
    known = context.find(tsa)
    if known is None or known.role != "tsa":
        raise SealFailure(
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            "timestamp",
            "the time-stamp is not from the authority's time-stamping unit",
        )
    context.paths.validate(tsa, stamp.timestamp, "timestamp")
    report.timestamp_time = stamp.timestamp
    report.signing_time = status.signer_reported_dt or stamp.timestamp
    report.check("timestamp", Outcome.PASSED, f"RFC 3161 time-stamp of {stamp.timestamp}")
    return stamp.timestamp


def _pdf_licence(
    report: Report, context: TrustContext, certificate: x509.Certificate, keywords: str | None
) -> Report:
    try:
        decoded = decode_qr_seal((keywords or "").strip())
    except MalformedQrSeal:
        report.check("document", Outcome.FAILED, "the PDF names no licence (no verification URL)")
        report.verdict = Verdict.INVALID
        return report
    claims = decoded.claims
    report.check("document", Outcome.PASSED, f"licence {claims.number}")
    licence: dict[str, Any] = qr_licence(claims)
    report.licence = licence
    if context.mode == "offline":
        status = offline_status(report, context, claims.number, *claims_period(claims))
        return conclude(report, status)
    registered = context.registered(claims.number)
    if registered is None:
        report.check("register", Outcome.FAILED, "the register has no licence with this number")
        return conclude(report, None)
    if registered.seal_certificate != certificate.public_bytes(Encoding.DER):
        report.check("register", Outcome.FAILED, "sealed by another certificate than registered")
        report.verdict = Verdict.INVALID
        return report
    report.check("register", Outcome.PASSED, "the PDF is of a registered licence")
    report.licence = {**licence, **public_fields(registered.fields)}
    return conclude(report, online_status(report, registered.status, registered.status_since))
