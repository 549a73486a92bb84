"""`authority verify`: check a licence offline against a trust list, or this installation."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from authority.cli.base import cli, emit, json_option, opened_instance
from authority.errors import InvalidInput
from authority.verification.report import Report, Verdict
from authority.verification.service import (
    TrustContext,
    now,
    online_context,
    trust_list_context,
    verify_document,
    verify_file,
    verify_qr,
)

#: Exit status when the licence was checked and is not VALID (0 only for VALID).
EXIT_NOT_VALID = 3
MAX_INPUT_BYTES = 16 << 20


def _read(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise InvalidInput(f"{what} {path} is larger than {MAX_INPUT_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None


def _check(context: TrustContext, subject: str, seal: Path | None) -> Report:
    path = Path(subject)
    moment = now()
    if seal is not None:
        return verify_document(context, _read(path, "document"), _read(seal, "seal"), moment)
    if len(subject) < 4096 and path.is_file():
        data = _read(path, "file")
        try:
            return verify_file(context, data, moment)
        except InvalidInput:
            text = data.decode("utf-8", errors="replace").strip()
            if "\n" in text or not text:
                raise
            return verify_qr(context, text, moment)
    return verify_qr(context, subject, moment)


def _text(report: Report) -> str:
    data = report.as_dict()
    lines = [f"{report.verdict.value}  ({data['indication']}"
             + (f"/{data['subindication']})" if data["subindication"] else ")")]  # fmt: skip
    licence = data.get("licence") or {}
    if licence:
        holder = licence.get("holder") or {}
        lines.append(
            f"licence {licence.get('number')} of {holder.get('name')} ({holder.get('id')})"
        )
    signer = data.get("signer") or {}
    if signer:
        lines.append(f"sealed by {signer.get('name')} [{signer.get('agency')}]")
    for check in data["checks"]:
        lines.append(f"  {check['outcome']:<11} {check['name']}: {check['detail']}")
    lines.append(f"{data['mode']} verification at {data['verified_at']}")
    return "\n".join(lines)


@cli.command("verify")
@click.argument("subject", metavar="FILE_OR_TEXT")
@click.option("--seal", type=click.Path(path_type=Path), help="Detached seal of a document FILE.")
@click.option(
    "--trust-list",
    type=click.Path(path_type=Path),
    help="Verify offline against this downloaded trust list (/pki/trust-list.json).",
)
@click.option(
    "--root-fingerprint",
    help="SHA-256 of the root certificate the trust list must chain to (hex).",
)
@json_option
def verify(
    subject: str, seal: Path | None, trust_list: Path | None, root_fingerprint: str | None
) -> None:
    """Verify a licence PDF, a photo of its QR, a document with --seal, or a QR's text.

    With --trust-list, offline: nothing but that file is consulted. Without it,
    against this installation's database. Exit status 0 only for VALID.
    """
    if trust_list is not None:
        context = trust_list_context(_read(trust_list, "trust list"), root_fingerprint)
        report = _check(context, subject, seal)
    else:
        with opened_instance() as instance, instance.database.transaction(write=False) as session:
            context = online_context(session, instance.settings.issuer, now())
            report = _check(context, subject, seal)
    emit(report.as_dict(), _text(report))
    if report.verdict is not Verdict.VALID:
        sys.exit(EXIT_NOT_VALID)
