"""Checkpoints: the chain head after N entries, sealed by the authority and time-stamped.

A checkpoint plays the part of RFC 9162's signed tree head (§4.10): a
statement ``{"format", "issuer", "size", "head", "at"}`` in RFC 8785
canonical JSON, sealed with a detached CAdES-B-T seal (the same profile as a
licence document) by the authority's own seal (the certificate with the
trust-list policy, never an agency's), with a signature time-stamp from the
authority's RFC 3161 TSA. Anyone holding the root certificate checks it
offline; ``docs/audit.md`` says what that proves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from authority.audit.models import AuditCheckpoint
from authority.audit.trail import head, lock, timestamp
from authority.errors import InvalidInput
from authority.pki.models import CertificateRecord
from authority.pki.profiles import TRUST_LIST_POLICY_OID
from authority.pki.service import Pki, load_certificate
from authority.pki.trust_list import has_policy
from authority.seals.cades import DocumentSealer, verify_document_seal

CHECKPOINT_FORMAT = "authority-audit-checkpoint/1"
# The statement's own time and its time-stamp's genTime may differ by at most this.
TIME_TOLERANCE = timedelta(minutes=5)


class CheckpointInvalid(InvalidInput):
    """A checkpoint's seal, time-stamp or statement does not verify."""

    slug = "audit-checkpoint-invalid"
    title = "Audit checkpoint invalid"


@dataclass(frozen=True)
class Statement:
    """What a verified checkpoint states."""

    issuer: str
    size: int
    head: str
    at: str
    time_stamped_at: datetime


def last_checkpoint_size(session: Session) -> int:
    """How many entries the newest checkpoint covers (0 without one)."""
    return int(session.scalar(select(func.max(AuditCheckpoint.size))) or 0)


def make_checkpoint(pki: Pki, now: datetime) -> AuditCheckpoint | None:
    """Seal the current chain head, unless it is empty or already checkpointed."""
    session = pki.session
    lock(session)  # the head cannot move while it is sealed
    size, head_hash = head(session)
    if size == 0 or last_checkpoint_size(session) >= size:
        return None
    document = bytes(
        rfc8785.dumps(
            {
                "format": CHECKPOINT_FORMAT,
                "issuer": pki.settings.base_url,
                "size": size,
                "head": head_hash,
                "at": timestamp(now),
            }
        )
    )
    seal_record = pki.trust_list_seal()
    issuer = session.get(CertificateRecord, seal_record.issuer_id)
    assert issuer is not None
    sealer = DocumentSealer(
        pki.signer(seal_record),
        load_certificate(seal_record),
        [load_certificate(issuer)],
        pki.timestamper(),
    )
    checkpoint = AuditCheckpoint(
        size=size, head=head_hash, at=now, document=document, seal=sealer.seal(document, now)
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def checkpoints(session: Session) -> list[AuditCheckpoint]:
    """Every checkpoint, oldest first."""
    return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)))


def _chain_to_root(
    certificate: x509.Certificate, pool: tuple[x509.Certificate, ...], root: x509.Certificate
) -> None:
    current = certificate
    for _ in range(len(pool) + 1):
        parent = (
            root
            if current.issuer == root.subject
            else next((c for c in pool if c.subject == current.issuer and c != current), None)
        )
        if parent is None:
            break
        try:
            current.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            break
        if parent is root:
            return
        current = parent
    raise CheckpointInvalid(
        f"certificate {certificate.subject.rfc4514_string()} does not chain to the root"
    )


def verify_checkpoint(document: bytes, seal: bytes, root: x509.Certificate) -> Statement:
    """Check ``seal`` is the authority's time-stamped seal over ``document``, chaining
    to ``root``; return what it states. Raises :class:`CheckpointInvalid`."""
    try:
        info = verify_document_seal(document, seal)
    except InvalidInput as exc:
        raise CheckpointInvalid(f"seal does not verify: {exc.detail}") from None
    signer = info.signer_certificate
    if not has_policy(signer, TRUST_LIST_POLICY_OID):
        raise CheckpointInvalid("sealed by a certificate other than the authority's own seal")
    _chain_to_root(signer, info.chain, root)
    if info.timestamp is None:
        raise CheckpointInvalid("the seal carries no time-stamp")
    _chain_to_root(info.timestamp.tsa_certificate, info.chain, root)
    stamped = info.timestamp.gen_time
    for certificate in (signer, info.timestamp.tsa_certificate):
        if not certificate.not_valid_before_utc <= stamped <= certificate.not_valid_after_utc:
            raise CheckpointInvalid(
                f"certificate {certificate.subject.rfc4514_string()} was not valid when stamped"
            )
    try:
        statement = json.loads(document)
        if bytes(rfc8785.dumps(statement)) != document:
            raise ValueError("not in canonical form")
        if statement["format"] != CHECKPOINT_FORMAT:
            raise ValueError(f"format {statement['format']!r}")
        size, head_hash, at = statement["size"], statement["head"], statement["at"]
        if not isinstance(size, int) or size < 1 or not isinstance(head_hash, str):
            raise ValueError("size or head malformed")
        moment = datetime.fromisoformat(at)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointInvalid(f"the statement is malformed: {exc}") from None
    if abs(moment - stamped) > TIME_TOLERANCE:
        raise CheckpointInvalid(f"stated time {at} is far from its time-stamp {stamped}")
    return Statement(statement["issuer"], size, head_hash, at, stamped)
