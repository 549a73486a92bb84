"""Verify a presented licence: its QR seal, its document + detached seal, or its sealed PDF.

Each function returns a :class:`~authority.verification.report.Report` and
never raises for anything the presenter controls: unreadable input is an
INVALID report with FORMAT_FAILURE. The steps follow EN 319 102-1 §5 in
outline: format checks, identification of the signing certificate (§5.2.3),
cryptographic verification (§5.2.7), X.509 validation of the path to the
pinned root (§5.2.6) at the time a proof of existence gives (§5.6.2), then
the licence's own status in the register (online) or the trust list (offline).
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from datetime import UTC, date, datetime, time
from typing import Any

from cryptography import x509

from authority.errors import InvalidInput
from authority.pki.models import CertificateRole
from authority.seals.cades import SealInfo, SealInvalid, verify_document_seal
from authority.seals.qr import (
    DecodedQr,
    MalformedQrSeal,
    QrClaims,
    QrSealSignatureInvalid,
    QrSealUnknownKey,
    VerifiedQr,
    check_qr_signature,
    decode_qr_seal,
    payload_of,
)
from authority.verification.carried import check_carried
from authority.verification.report import (
    Indication,
    Outcome,
    Report,
    SealFailure,
    SubIndication,
    Verdict,
    iso,
    verdict_for,
)
from authority.verification.trust import KnownCertificate, RegisteredLicence, TrustContext

#: RFC 5280 §5.3.1 reasons after which what the key signed earlier stays trustworthy:
#: the key was retired, not exposed. Any other reason needs a proof of existence.
NON_COMPROMISE = frozenset({"superseded", "cessationOfOperation", "affiliationChanged"})
MAX_DOCUMENT_BYTES = 1 << 20


def _organisation(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return str(names[0].value) if names else None


@functools.lru_cache(maxsize=1024)
def _described(certificate: x509.Certificate) -> tuple[str | None, dict[str, Any]]:
    """What never changes about a certificate, as the report shows it."""
    return _organisation(certificate), {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial": format(certificate.serial_number, "x"),
        "not_before": iso(certificate.not_valid_before_utc),
        "not_after": iso(certificate.not_valid_after_utc),
    }


def _signer(known: KnownCertificate | None, certificate: x509.Certificate) -> dict[str, Any]:
    organisation, described = _described(certificate)
    return {
        "agency": known.agency if known else None,
        "name": organisation,
        "certificate": {
            **described,
            "status": "revoked" if known and known.revoked_at else ("good" if known else None),
            "revoked_at": iso(known.revoked_at) if known else None,
            "revocation_reason": known.revocation_reason if known else None,
        },
    }


def trust_seal_certificate(
    report: Report,
    context: TrustContext,
    certificate: x509.Certificate,
    *,
    proven: datetime | None,
    asserted: datetime | None,
) -> KnownCertificate:
    """Path, role and revocation of the sealing certificate at the best time known.

    ``proven`` is a proof of existence (a time-stamp, or the register's record);
    ``asserted`` the signer's own claim, trusted only where no compromise is possible.
    """
    known = context.find(certificate)
    report.signer = _signer(known, certificate)
    moment = proven or report.verified_at
    try:
        path = context.validate_path(certificate, moment, "certificate-path")
    except SealFailure as failure:
        if not (
            failure.subindication is SubIndication.OUT_OF_BOUNDS_NO_POE
            and proven is None
            and asserted is not None
            and asserted < moment
        ):
            raise
        # No proof of existence, and the path is no longer valid: the seal's own date
        # counts only for a certificate that expired (or was retired) unexposed.
        moment = max(asserted, certificate.not_valid_before_utc)
        path = context.validate_path(certificate, moment, "certificate-path")
    report.check(
        "certificate-path",
        Outcome.PASSED if moment >= (proven or report.verified_at) else Outcome.WARNING,
        f"{len(path.chain)} certificates to the authority's root, valid at {iso(moment)}",
    )
    if known is None:
        # A certificate that chains to the root but is not listed: a trust list older than it.
        raise SealFailure(
            SubIndication.TRY_LATER,
            "certificate-status",
            "the sealing certificate is not in the trust list: obtain a newer trust list",
        )
    if known.role != "seal" or known.agency is None:
        raise SealFailure(
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            "certificate-role",
            "the certificate is not an agency's seal certificate",
        )
    report.check("certificate-role", Outcome.PASSED, f"seal of agency {known.agency}")
    if known.revoked_at is None:
        report.check(
            "certificate-status",
            Outcome.PASSED,
            f"not revoked as of {iso(context.certificates_as_of or context.as_of)}",
        )
        return known
    reason = known.revocation_reason or "unspecified"
    revoked = f"revoked at {iso(known.revoked_at)} ({reason})"
    # Revocation and time-stamp times are compared to the whole second, and a seal
    # proven in the very second of the revocation counts as after it.
    revoked_second = known.revoked_at.replace(microsecond=0)
    if proven is not None:
        if proven < revoked_second:
            report.check(
                "certificate-status",
                Outcome.PASSED,
                f"{revoked}, after the seal's proven time {iso(proven)}",
            )
            return known
        raise SealFailure(
            SubIndication.REVOKED,
            "certificate-status",
            f"{revoked}, before the seal's proven time {iso(proven)}",
        )
    if asserted is not None and reason in NON_COMPROMISE and asserted < revoked_second:
        report.check(
            "certificate-status",
            Outcome.WARNING,
            f"{revoked}, after the issue date the seal states; the key was retired, not exposed",
        )
        return known
    raise SealFailure(
        SubIndication.REVOKED_NO_POE,
        "certificate-status",
        f"{revoked}, and nothing proves the seal was made before: verify online",
    )


def qr_licence(claims: QrClaims) -> dict[str, Any]:
    return {
        "number": claims.number,
        "type": {"code": claims.type_code},
        "holder": {"kind": claims.holder_kind, "id": claims.holder_id, "name": claims.holder_name},
        "data": dict(claims.fields),
        "issued_on": claims.issued_on.isoformat(),
        "valid_from": claims.valid_from.isoformat(),
        "valid_until": claims.valid_until.isoformat() if claims.valid_until else None,
    }


def day_start(day: date) -> datetime:
    """The first instant of ``day``, UTC."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def claims_period(claims: QrClaims) -> tuple[datetime, datetime | None]:
    """The validity period a QR seal states: whole days, UTC."""
    until = claims.valid_until
    return day_start(claims.valid_from), (
        datetime.combine(until, time.max, tzinfo=UTC) if until else None
    )


def offline_status(
    report: Report,
    context: TrustContext,
    number: str,
    valid_from: datetime,
    valid_until: datetime | None,
) -> str:
    """The licence's status from the trust list and its validity period."""
    report.status_as_of = context.as_of
    state = context.licence_states.get(number)
    if state is not None:
        report.check(
            "licence-status",
            Outcome.FAILED,
            f"{state.status} since {iso(state.since)} (trust list of {iso(context.as_of)})",
        )
        return state.status
    report.check(
        "licence-status",
        Outcome.PASSED,
        f"neither revoked nor suspended in the trust list of {iso(context.as_of)}",
    )
    return _period_status(report, valid_from, valid_until)


def _period_status(report: Report, valid_from: datetime, valid_until: datetime | None) -> str:
    now = report.verified_at
    if now < valid_from:
        report.check("validity-period", Outcome.FAILED, f"not valid before {iso(valid_from)}")
        return "not-yet-valid"
    if valid_until is not None and now > valid_until:
        report.check("validity-period", Outcome.FAILED, f"expired at {iso(valid_until)}")
        return "expired"
    report.check(
        "validity-period",
        Outcome.PASSED,
        f"valid from {iso(valid_from)}" + (f" until {iso(valid_until)}" if valid_until else ""),
    )
    return "valid"


def online_status(report: Report, registered: RegisteredLicence) -> str:
    """The register's status of the licence now (a licence not yet in force is not valid)."""
    status, since = registered.status, registered.status_since
    report.status_as_of = registered.read_at
    valid_from = _moment(registered.fields.get("valid_from"))
    if status == "valid" and valid_from is not None and report.verified_at < valid_from:
        report.check("validity-period", Outcome.FAILED, f"not valid before {iso(valid_from)}")
        return "not-yet-valid"
    if status == "valid":
        report.check("licence-status", Outcome.PASSED, "valid in the register")
    else:
        detail = f"{status} in the register" + (f" since {iso(since)}" if since else "")
        report.check("licence-status", Outcome.FAILED, detail)
    return status


def require_time_stamp(proven: datetime | None) -> None:
    """Licence seals are B-T (DESIGN.md): a seal without its time-stamp was changed."""
    if proven is None:
        raise SealFailure(
            SubIndication.FORMAT_FAILURE,
            "timestamp",
            "licence seals carry a signature time-stamp; this one has none",
        )


def conclude(report: Report, licence_status: str | None) -> Report:
    report.verdict = verdict_for(report.indication, report.subindication, licence_status)
    return report


def passed(report: Report) -> None:
    report.indication = Indication.TOTAL_PASSED
    report.subindication = None


# -- QR ------------------------------------------------------------------------------------

_QR_FAILURES: dict[type[InvalidInput], SubIndication] = {
    MalformedQrSeal: SubIndication.FORMAT_FAILURE,
    QrSealUnknownKey: SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
    QrSealSignatureInvalid: SubIndication.SIG_CRYPTO_FAILURE,
}


def _unknown_key(context: TrustContext, decoded: DecodedQr, detail: str) -> SealFailure:
    """No seal certificate has the QR's key id: a forgery, or a seal newer than the list.

    Offline, a QR stating an issue date on or after the trust list's may carry a
    seal the list does not know yet: INDETERMINATE/TRY_LATER, never VALID.
    """
    if context.mode == "offline" and decoded.claims.issued_on >= context.as_of.date():
        return SealFailure(
            SubIndication.TRY_LATER,
            "qr-seal",
            f"{detail}; the licence is not older than this trust list: get a newer one",
        )
    return SealFailure(SubIndication.NO_SIGNING_CERTIFICATE_FOUND, "qr-seal", detail)


#: QR payloads whose signature verified, by exact payload text, with the certificate it
#: verified with: an ES256 check of given bytes with a given key always ends the same.
#: Only successes are kept (forgeries cannot evict them by the thousand); bounded, LRU.
_verified_seals: OrderedDict[str, VerifiedQr] = OrderedDict()
_verified_lock = threading.Lock()
VERIFIED_SEALS_LIMIT = 10_000


def _verified_seal(context: TrustContext, payload: str) -> VerifiedQr | None:
    """The kept outcome for ``payload`` if its certificate is one ``context`` offers."""
    with _verified_lock:
        verified = _verified_seals.get(payload)
        if verified is None:
            return None
        _verified_seals.move_to_end(payload)
    # One of the context's seal certificates (those its key id can name), or none.
    known = context.find(verified.certificate)
    if known is not None and known.role == CertificateRole.SEAL.value and known.agency is not None:
        return verified
    return None


def _keep_verified_seal(payload: str, verified: VerifiedQr) -> None:
    with _verified_lock:
        _verified_seals[payload] = verified
        _verified_seals.move_to_end(payload)
        while len(_verified_seals) > VERIFIED_SEALS_LIMIT:
            _verified_seals.popitem(last=False)


def verify_qr(context: TrustContext, text: str, now: datetime) -> Report:
    """Verify a QR seal (the QR's URL or its bare payload).

    The signature's outcome is kept by exact payload text (see ``_verified_seals``);
    everything else is checked in ``context`` every time.
    """
    report = context.new_report("qr", now)
    try:
        payload = payload_of(text)
        verified_seal = _verified_seal(context, payload)
        if verified_seal is None:
            decoded = decode_qr_seal(payload)
            seals = [k.certificate for k in context.seals_with_key_id(decoded.key_id)]
            verified_seal = check_qr_signature(decoded, seals)
            _keep_verified_seal(payload, verified_seal)
        verified = verified_seal
    except QrSealUnknownKey as exc:
        report.fail(_unknown_key(context, decoded, exc.detail))
        return conclude(report, None)
    except (MalformedQrSeal, QrSealSignatureInvalid) as exc:
        report.fail(SealFailure(_QR_FAILURES[type(exc)], "qr-seal", exc.detail))
        return conclude(report, None)
    claims = verified.claims
    report.check("qr-seal", Outcome.PASSED, "ES256 signature over the QR's fields verified")
    report.licence = qr_licence(claims)
    registered = context.registered(claims.number) if context.mode == "online" else None
    known = context.find(verified.certificate)
    # The register's record proves when the licence was sealed, if it was sealed by this key.
    same_seal = bool(registered and known and known.record_id == registered.seal_certificate_id)
    asserted = day_start(claims.issued_on)
    report.signing_time = asserted
    try:
        trust_seal_certificate(
            report,
            context,
            verified.certificate,
            proven=registered.issued_at if registered and same_seal else None,
            asserted=asserted,
        )
    except SealFailure as failure:
        report.fail(failure)
        return conclude(report, None)
    passed(report)
    valid_from, valid_until = claims_period(claims)
    if context.mode == "offline":
        return conclude(
            report, offline_status(report, context, claims.number, valid_from, valid_until)
        )
    if registered is None:
        report.check("register", Outcome.FAILED, "the register has no licence with this number")
        return conclude(report, None)
    mismatch = (
        _qr_mismatch(claims, registered.fields)
        if same_seal
        else "the QR was sealed with another certificate than the registered licence"
    )
    if mismatch:
        report.check("register", Outcome.FAILED, mismatch)
        report.verdict = Verdict.INVALID
        return report
    report.check("register", Outcome.PASSED, "the QR states what the register holds")
    report.licence = {**qr_licence(claims), **public_fields(registered.fields)}
    return conclude(report, online_status(report, registered))


def public_fields(fields: dict[str, Any]) -> dict[str, Any]:
    keys = ("number", "type", "agency", "holder", "data", "labels")
    return {k: fields[k] for k in keys if k in fields}


def _qr_mismatch(claims: QrClaims, fields: dict[str, Any]) -> str | None:
    """What differs between the QR's claims and the register, if anything."""
    holder = fields["holder"]
    expected = (
        fields["type"]["code"],
        holder["kind"],
        holder["id"],
        holder["name"],
        fields["valid_from"][:10],
        fields["valid_until"][:10],
        fields["issued_at"][:10],
    )
    stated = (
        claims.type_code,
        claims.holder_kind,
        claims.holder_id,
        claims.holder_name,
        claims.valid_from.isoformat(),
        claims.valid_until.isoformat() if claims.valid_until else "",
        claims.issued_on.isoformat(),
    )
    if expected != stated:
        return "the QR's fields differ from the registered licence"
    data = fields.get("data", {})
    if any(str(data.get(key)) != value for key, value in claims.fields):
        return "the QR's fields differ from the registered licence"
    return None


# -- document + detached seal -------------------------------------------------------------


def _parse_document(document: bytes) -> dict[str, Any] | None:
    if len(document) > MAX_DOCUMENT_BYTES:
        return None
    try:
        parsed = json.loads(document.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _timestamp_check(report: Report, context: TrustContext, info: SealInfo) -> datetime | None:
    """Validate the signature time-stamp's TSA; its time is the seal's proof of existence."""
    stamp = info.timestamp
    if stamp is None:
        report.check("timestamp", Outcome.WARNING, "no signature time-stamp (CAdES-B-B)")
        return None
    context.paths.validate(stamp.tsa_certificate, stamp.gen_time, "timestamp")
    known = context.find(stamp.tsa_certificate)
    if known is None or known.role != "tsa":
        raise SealFailure(
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            "timestamp",
            "the time-stamp is not from the authority's time-stamping unit",
        )
    if known.revoked_at is not None and known.revoked_at <= stamp.gen_time:
        raise SealFailure(
            SubIndication.REVOKED, "timestamp", "the time-stamping unit was revoked before"
        )
    report.timestamp_time = stamp.gen_time
    report.check("timestamp", Outcome.PASSED, f"RFC 3161 time-stamp of {iso(stamp.gen_time)}")
    return stamp.gen_time


def verify_document(context: TrustContext, document: bytes, seal: bytes, now: datetime) -> Report:
    """Verify a licence document and its detached CAdES seal."""
    report = context.new_report("document", now)
    try:
        info = verify_document_seal(document, seal)
    except SealInvalid as exc:
        report.fail(SealFailure(SubIndication(exc.subindication), "seal", exc.detail))
        return conclude(report, None)
    report.check("seal", Outcome.PASSED, "CAdES signature over the document's bytes verified")
    report.signing_time = info.signing_time
    try:
        proven = _timestamp_check(report, context, info)
        trust_seal_certificate(
            report, context, info.signer_certificate, proven=proven, asserted=None
        )
        check_carried(context, seal)
        require_time_stamp(proven)
    except SealFailure as failure:
        report.fail(failure)
        return conclude(report, None)
    passed(report)
    fields = _parse_document(document)
    number = fields.get("number") if fields else None
    valid_from = _moment(fields.get("valid_from")) if fields else None
    if fields is None or not isinstance(number, str) or valid_from is None:
        report.check("document", Outcome.FAILED, "the sealed document is not a licence document")
        report.verdict = Verdict.INVALID
        return report
    report.check("document", Outcome.PASSED, "a licence document")
    report.licence = public_fields(fields)
    if context.mode == "offline":
        status = offline_status(
            report, context, number, valid_from, _moment(fields.get("valid_until"))
        )
        return conclude(report, status)
    registered = context.registered(number)
    if registered is None:
        report.check("register", Outcome.FAILED, "the register has no licence with this number")
        return conclude(report, None)
    if registered.document != document:
        report.check("register", Outcome.FAILED, "the document differs from the registered one")
        report.verdict = Verdict.INVALID
        return report
    report.check("register", Outcome.PASSED, "the document is the registered one")
    return conclude(report, online_status(report, registered))
