"""One entry point per presented form, and the trust contexts they are checked in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes

from authority.db.session import Database
from authority.errors import InvalidInput
from authority.pki.trust_list import TrustListInvalid, root_of, verify_trust_list
from authority.verification.cache import NotCached, StatusCache
from authority.verification.images import is_image, qr_text_in_image
from authority.verification.pdf import verify_pdf
from authority.verification.report import Report
from authority.verification.trust import TrustContext, offline_context, online_context
from authority.verification.verifier import verify_document, verify_qr

__all__ = [
    "TrustContext",
    "UnsupportedFile",
    "offline_context",
    "online_context",
    "trust_list_context",
    "verify_document",
    "verify_file",
    "verify_qr",
    "verify_qr_cached",
    "verify_qr_online",
]


class UnsupportedFile(InvalidInput):
    """An upload that is neither a PDF nor an image of a QR code."""

    slug = "unsupported-file"
    title = "Unsupported file"
    status = 415


def verify_qr_cached(issuer: str, cache: StatusCache, text: str, at: datetime) -> Report | None:
    """:func:`verify_qr` online from what ``cache`` holds alone, or None if that is not enough.

    Never touches the database (an event loop may call it): the signature check
    and what the cache keeps are all it needs for a licence verified in the
    last few seconds, and for anything malformed or forged.
    """
    try:
        context = online_context(None, issuer, at, cache)
        return verify_qr(context, text, at)
    except NotCached:
        return None


def verify_qr_online(
    database: Database, issuer: str, cache: StatusCache, text: str, *, memory_first: bool = True
) -> Report:
    """:func:`verify_qr` against this installation: from ``cache`` if it can, else the database.

    ``memory_first=False`` skips the attempt from memory (the caller made it).
    """
    at = now()
    report = verify_qr_cached(issuer, cache, text, at) if memory_first else None
    if report is not None:
        return report
    with database.transaction(write=False) as session:
        return verify_qr(online_context(session, issuer, at, cache), text, at)


def is_pdf(data: bytes) -> bool:
    """Whether ``data`` looks like a PDF (ISO 32000 §7.5.2: the header may follow junk)."""
    return b"%PDF-" in data[:1024]


def verify_file(context: TrustContext, data: bytes, now: datetime) -> Report:
    """Verify an uploaded licence PDF, or a photo or scan of its QR code.

    Raises :class:`UnsupportedFile`, or an image error, for other uploads.
    """
    if is_pdf(data):
        return verify_pdf(context, data, now)
    if is_image(data):
        return verify_qr(context, qr_text_in_image(data), now)
    raise UnsupportedFile("upload a licence PDF or a photo or scan of its QR code")


def trust_list_context(text: bytes, root_fingerprint: str | None = None) -> TrustContext:
    """The offline context of a downloaded trust list, its seal checked.

    With ``root_fingerprint`` (SHA-256, hex, colons allowed) the list's root
    must be that certificate; without it the list's own root is trusted.
    Raises :class:`TrustListInvalid`.
    """
    try:
        document: Any = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TrustListInvalid("the trust list is not JSON") from None
    if not isinstance(document, dict):
        raise TrustListInvalid("the trust list is not a JSON object")
    try:
        root = root_of(document)
    except (ValueError, TypeError, AttributeError):
        raise TrustListInvalid("the trust list's root certificate is unreadable") from None
    if root_fingerprint is not None:
        wanted = root_fingerprint.replace(":", "").strip().lower()
        if root.fingerprint(hashes.SHA256()).hex() != wanted:
            raise TrustListInvalid("the trust list's root is not the pinned root")
    verified = verify_trust_list(document, root)
    return offline_context(verified, pinned=root_fingerprint is not None, now=now())


def now() -> datetime:
    """The verification time."""
    return datetime.now(UTC)
