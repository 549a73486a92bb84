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
import re
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
from authority.verification.carried import check_carried
from authority.verification.report import (
    Outcome,
    Report,
    SealFailure,
    SubIndication,
    Verdict,
)
from authority.verification.trust import KnownCertificate, TrustContext
from authority.verification.verifier import (
    claims_period,
    conclude,
    offline_status,
    online_status,
    passed,
    public_fields,
    qr_licence,
    require_time_stamp,
    trust_seal_certificate,
)

MAX_PDF_BYTES = 8 << 20
# pyHanko logs every problem it finds in hostile files; the report says what matters.
logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


async def _validate(
    pdf: bytes, context: TrustContext
) -> tuple[PdfSignatureStatus, str | None, bytes]:
    reader = PdfFileReader(BytesIO(pdf), strict=False)
    signatures = reader.embedded_signatures
    if len(signatures) != 1:
        raise SealFailure(
            SubIndication.FORMAT_FAILURE,
            "pdf-seal",
            f"the PDF has {len(signatures)} signatures; a licence PDF has exactly one seal",
        )
    _check_signature_gap(pdf, signatures[0].sig_object.get("/ByteRange"))
    contents = _signature_der(signatures[0].sig_object.get("/Contents"))
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
    return status, str(keywords) if keywords is not None else None, contents


def _der_length(data: bytes) -> int | None:
    """The length of the DER SEQUENCE at the start of ``data`` (X.690 §8.1.3), if any."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    size = first & 0x7F
    if not 0 < size <= 4 or len(data) < 2 + size:
        return None
    return 2 + size + int.from_bytes(data[2 : 2 + size], "big")


_GAP = re.compile(rb"<[0-9A-F]+>")


def _check_signature_gap(pdf: bytes, byte_range: Any) -> None:
    """The bytes the seal does not cover must be its hex string and nothing else.

    ISO 32000-2 §12.8.1: ``/ByteRange`` covers the file but the ``/Contents``
    value. Our seals write it in upper-case hex digits; a space, a lower-case
    digit or anything else there is a change made after sealing.
    """
    try:
        start, first, second, _ = (int(v) for v in byte_range)
    except (TypeError, ValueError):
        raise SealFailure(
            SubIndication.FORMAT_FAILURE, "pdf-seal", "no usable /ByteRange"
        ) from None
    if not (0 <= first < second <= len(pdf)) or start != 0 or not _GAP.fullmatch(pdf[first:second]):
        raise SealFailure(
            SubIndication.FORMAT_FAILURE,
            "pdf-seal",
            "the bytes outside the seal's range are not only its signature value",
        )


def _signature_der(contents: Any) -> bytes:
    """The CMS in ``/Contents``, whose room past it must be zeros (ISO 32000-2 §12.8.1).

    The bytes of ``/Contents`` are outside the signed byte range; anything but
    the CMS and its zero padding there is a change made after sealing.
    """
    data = bytes(contents) if isinstance(contents, bytes | bytearray) else b""
    length = _der_length(data)
    if length is None or length > len(data) or data[length:].strip(b"\x00"):
        raise SealFailure(
            SubIndication.FORMAT_FAILURE,
            "pdf-seal",
            "the seal's /Contents holds more than the signature and its zero padding",
        )
    return data[:length]


def verify_pdf(context: TrustContext, pdf: bytes, now: datetime) -> Report:
    """Verify a licence PDF's PAdES seal and the licence it names."""
    report = context.new_report("pdf", now)
    try:
        if len(pdf) > MAX_PDF_BYTES:
            raise SealFailure(SubIndication.FORMAT_FAILURE, "pdf", "the PDF is too large")
        status, keywords, contents = asyncio.run(_validate(pdf, context))
        certificate = x509.load_der_x509_certificate(status.signing_cert.dump())
        _check_pdf_signature(report, status)
        proven = _check_pdf_timestamp(report, context, status)
        known = trust_seal_certificate(report, context, certificate, proven=proven, asserted=None)
        check_carried(context, contents)
        require_time_stamp(proven)
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
    return _pdf_licence(report, context, known, keywords)


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
    report: Report, context: TrustContext, known: KnownCertificate, keywords: str | None
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
    if known.record_id != registered.seal_certificate_id:
        report.check("register", Outcome.FAILED, "sealed by another certificate than registered")
        report.verdict = Verdict.INVALID
        return report
    report.check("register", Outcome.PASSED, "the PDF is of a registered licence")
    report.licence = {**licence, **public_fields(registered.fields)}
    return conclude(report, online_status(report, registered))
