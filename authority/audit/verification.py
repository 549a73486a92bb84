"""Checking the audit trail end to end, from the database or from an export.

The export is JSON lines: one ``{"kind": "entry", ...}`` per entry in
sequence order, and after the entry a checkpoint covers, one
``{"kind": "checkpoint", "size", "head", "at", "document", "seal"}`` with the
statement and its seal in base64. :func:`verify_trail` reads either source
the same way, so an auditor's offline check is the operator's check.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from cryptography import x509
from sqlalchemy.orm import Session

from authority.audit.checkpoints import CheckpointInvalid, checkpoints, verify_checkpoint
from authority.audit.models import AuditCheckpoint
from authority.audit.trail import GENESIS, as_dict, entries, entry_hash, timestamp
from authority.errors import InvalidInput

ENTRY_FIELDS = ("seq", "at", "event", "actor", "subject", "details", "prev", "hash")


class ExportUnreadable(InvalidInput):
    """An audit export is not the JSON lines `authority audit export` writes."""

    slug = "audit-export-unreadable"
    title = "Audit export unreadable"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: intact, or where the trail first breaks and why."""

    entries: int
    checkpoints: int
    anchored: int
    first_broken: int | None = None
    broken_checkpoint: int | None = None
    reason: str | None = None

    @property
    def intact(self) -> bool:
        """Whether every entry and every checkpoint verified."""
        return self.reason is None

    def as_dict(self) -> dict[str, Any]:
        """The DESIGN.md shape ``{"intact", "entries", "first_broken"?}`` and the rest."""
        data: dict[str, Any] = {
            "intact": self.intact,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "anchored": self.anchored,
        }
        for name in ("first_broken", "broken_checkpoint", "reason"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data


@dataclass(frozen=True)
class SealedCheckpoint:
    """A checkpoint as stored or exported: the statement bytes and their seal."""

    size: int
    document: bytes
    seal: bytes


def _walk(
    items: Iterable[dict[str, Any]], sizes: set[int]
) -> tuple[int, int, dict[int, str], tuple[int, str] | None]:
    """Recompute the chain; return how many entries there are, how many verified, the
    heads at ``sizes`` and the first break (its sequence number and why)."""
    iterator = iter(items)
    expected, prev = 1, GENESIS
    heads: dict[int, str] = {}
    broken: tuple[int, str] | None = None
    for entry in iterator:
        seq = entry.get("seq")
        if seq != expected:
            missing = isinstance(seq, int) and seq > expected
            broken = (
                expected,
                f"entry {expected} is missing"
                if missing
                else f"entry {seq} is out of sequence at {expected}",
            )
        elif entry.get("prev") != prev:
            broken = (seq, f"entry {seq} does not follow entry {seq - 1}")
        else:
            try:
                computed = entry_hash(entry)
            except (KeyError, TypeError, ValueError):
                computed = ""
            if not computed or computed != entry.get("hash"):
                broken = (seq, f"entry {seq} was altered: its hash does not match its content")
            else:
                if seq in sizes:
                    heads[seq] = computed
                prev, expected = computed, expected + 1
                continue
        total = expected + sum(1 for _ in iterator)
        return total, expected - 1, heads, broken
    return expected - 1, expected - 1, heads, None


def verify_trail(
    items: Iterable[dict[str, Any]], sealed: list[SealedCheckpoint], root: x509.Certificate
) -> Verdict:
    """Check every entry's hash and link, and every checkpoint's seal, time-stamp and head."""
    total, count, heads, broken = _walk(items, {c.size for c in sealed})
    checkpoint_problem: tuple[int, str] | None = None
    anchored = 0
    for checkpoint in sealed:
        try:
            statement = verify_checkpoint(checkpoint.document, checkpoint.seal, root)
        except CheckpointInvalid as exc:
            checkpoint_problem = (checkpoint.size, f"checkpoint at {checkpoint.size}: {exc.detail}")
            break
        problem = None
        if statement.size != checkpoint.size:
            problem = f"states size {statement.size}, stored as {checkpoint.size}"
        elif broken is None and statement.size > count:
            problem = f"covers {statement.size} entries but the trail has {count}"
        elif statement.size in heads and heads[statement.size] != statement.head:
            problem = f"head differs from entry {statement.size}'s hash: entries were rewritten"
        if problem is not None:
            checkpoint_problem = (checkpoint.size, f"checkpoint at {checkpoint.size}: {problem}")
            break
        if statement.size in heads:
            anchored = max(anchored, statement.size)
    reasons = [problem[1] for problem in (broken, checkpoint_problem) if problem is not None]
    return Verdict(
        entries=total,
        checkpoints=len(sealed),
        anchored=anchored,
        first_broken=broken[0] if broken else None,
        broken_checkpoint=checkpoint_problem[0] if checkpoint_problem else None,
        reason="; ".join(reasons) or None,
    )


def _sealed(record: AuditCheckpoint) -> SealedCheckpoint:
    return SealedCheckpoint(record.size, record.document, record.seal)


def verify_database(
    session: Session, root: x509.Certificate, kept: list[SealedCheckpoint] | None = None
) -> Verdict:
    """Check the trail stored in ``session``'s database, and against it the checkpoints
    ``kept`` outside it (say, from an earlier export): those catch a trail rewritten
    together with its stored checkpoints."""
    stored = [_sealed(c) for c in checkpoints(session)]
    known = {(c.size, c.document) for c in stored}
    extra = [c for c in kept or [] if (c.size, c.document) not in known]
    return verify_trail((as_dict(e) for e in entries(session)), stored + extra, root)


def export_lines(session: Session) -> Iterator[str]:
    """The trail as JSON lines, each checkpoint after the entry it covers."""
    pending = checkpoints(session)
    for entry in entries(session):
        yield json.dumps({"kind": "entry", **as_dict(entry)}, ensure_ascii=False)
        while pending and pending[0].size == entry.seq:
            yield json.dumps(_checkpoint_line(pending.pop(0)))
    for orphan in pending:  # covers entries that are gone: the verifier will say so
        yield json.dumps(_checkpoint_line(orphan))


def _checkpoint_line(record: AuditCheckpoint) -> dict[str, Any]:
    return {
        "kind": "checkpoint",
        "size": record.size,
        "head": record.head,
        "at": timestamp(record.at),
        "document": base64.b64encode(record.document).decode("ascii"),
        "seal": base64.b64encode(record.seal).decode("ascii"),
    }


def read_export(stream: TextIO) -> tuple[list[dict[str, Any]], list[SealedCheckpoint]]:
    """The entries and checkpoints of an export. Raises :class:`ExportUnreadable`."""
    items: list[dict[str, Any]] = []
    sealed: list[SealedCheckpoint] = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if data.get("kind") == "entry":
                items.append({k: data[k] for k in ENTRY_FIELDS})
            elif data.get("kind") == "checkpoint":
                sealed.append(
                    SealedCheckpoint(
                        int(data["size"]),
                        base64.b64decode(data["document"], validate=True),
                        base64.b64decode(data["seal"], validate=True),
                    )
                )
            else:
                raise ValueError("kind must be entry or checkpoint")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ExportUnreadable(f"line {number}: {exc}") from None
    return items, sealed
