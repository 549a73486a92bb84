"""The audit trail: chained in the change's transaction, checkpointed, and checked."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
import rfc8785
from asn1crypto import cms
from cryptography import x509
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from authority.audit import record
from authority.audit.checkpoints import make_checkpoint
from authority.audit.models import AuditCheckpoint, AuditEntry
from authority.audit.trail import GENESIS, as_dict, entries, entry_hash
from authority.audit.verification import (
    ExportUnreadable,
    export_lines,
    read_export,
    verify_database,
    verify_trail,
)
from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.pki.service import ROOT_NAME, load_certificate


def _root(instance: Instance, session: Session) -> x509.Certificate:
    return load_certificate(pki_for(instance, session).ca(ROOT_NAME))


def _record(database: Database, count: int) -> None:
    with database.transaction() as session:
        for n in range(count):
            record(session, "test.event", "operator:alice", f"thing:{n}", {"n": n, "ok": True})


def _checkpoint(instance: Instance, database: Database) -> AuditCheckpoint | None:
    with database.transaction() as session:
        return make_checkpoint(pki_for(instance, session), utcnow())


def _verify(instance: Instance, database: Database) -> dict[str, object]:
    with database.session() as session:
        return verify_database(session, _root(instance, session)).as_dict()


def test_committed_events_form_a_chain(database: Database) -> None:
    _record(database, 2)
    _record(database, 1)
    with database.session() as session:
        rows = list(entries(session))
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev == GENESIS
    assert [r.prev for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert all(r.hash == entry_hash(as_dict(r)) for r in rows)
    assert rows[1].details == {"n": 1, "ok": True}
    assert rows[1].actor == "operator:alice"


def test_an_entry_hash_is_sha256_of_the_rfc8785_form_of_its_fields(database: Database) -> None:
    details = {"名称": '张三 \u2028 "quoted"', "list": [1, -(2**53) + 1, None, {"b": [], "a": ""}]}
    with database.transaction() as session:
        record(session, "test.event", "operator:alice", "thing:é", details)
        record(session, "test.event", "client:x", "thing:2")
    with database.session() as session:
        rows = list(entries(session))
    prev = GENESIS
    for row in rows:
        fields = as_dict(row) | {"prev": prev}
        del fields["hash"]
        prev = hashlib.sha256(rfc8785.dumps(fields)).hexdigest()
        assert row.hash == prev
    assert rows[0].details == details


def test_a_rolled_back_change_leaves_no_entry(database: Database) -> None:
    with pytest.raises(RuntimeError), database.transaction() as session:
        record(session, "test.event", "operator:alice", "thing:1")
        raise RuntimeError("the change failed")
    with database.session() as session:
        assert list(entries(session)) == []


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"amount": 1.5}, "cannot hold float"),
        ({"big": 2**60}, "beyond 2"),
        ({1: "x"}, "keys must be strings"),
    ],
)
def test_details_must_be_exact_json(
    database: Database, details: dict[object, object], message: str
) -> None:
    with database.session() as session, pytest.raises(ValueError, match=message):
        record(session, "test.event", "operator:alice", "thing", details)  # type: ignore[arg-type]


def test_empty_names_are_refused(database: Database) -> None:
    with database.session() as session, pytest.raises(ValueError, match="actor must be 1-128"):
        record(session, "test.event", "", "thing")


def test_checkpoint_anchors_the_head_once(instance: Instance, database: Database) -> None:
    assert _checkpoint(instance, database) is None  # an empty trail has nothing to seal
    _record(database, 3)
    checkpoint = _checkpoint(instance, database)
    assert checkpoint is not None
    assert checkpoint.size == 3
    assert _checkpoint(instance, database) is None  # nothing new since
    assert _verify(instance, database) == {
        "intact": True,
        "entries": 3,
        "checkpoints": 1,
        "anchored": 3,
    }


def _flip_signature(seal: bytes) -> bytes:
    signature = cms.ContentInfo.load(seal)["content"]["signer_infos"][0]["signature"].native
    altered = signature[:-1] + bytes([signature[-1] ^ 0x01])
    assert seal.count(signature) == 1
    return seal.replace(signature, altered)


def test_an_altered_checkpoint_signature_is_detected(
    instance: Instance, database: Database
) -> None:
    _record(database, 2)
    checkpoint = _checkpoint(instance, database)
    assert checkpoint is not None
    with database.transaction() as session:
        session.execute(
            update(AuditCheckpoint)
            .where(AuditCheckpoint.id == checkpoint.id)
            .values(seal=_flip_signature(checkpoint.seal))
        )
    verdict = _verify(instance, database)
    assert verdict["intact"] is False
    assert verdict["broken_checkpoint"] == 2
    assert "first_broken" not in verdict
    assert verdict["reason"] == (
        "checkpoint at 2: seal does not verify: the signature does not verify with the signer's key"
    )


def test_a_chain_rewritten_consistently_is_caught_by_its_checkpoint(
    instance: Instance, database: Database
) -> None:
    _record(database, 3)
    assert _checkpoint(instance, database) is not None
    # An insider edits entry 2 and recomputes every hash after it: the chain is consistent.
    with database.transaction() as session:
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        prev = rows[0].hash
        rewritten = []
        for row in rows[1:]:
            data = as_dict(row) | {"prev": prev}
            if row.seq == 2:
                data["details"] = {"n": 99, "ok": True}
            prev = entry_hash(data)
            rewritten.append((row.seq, data["details"], data["prev"], prev))
        for seq, details, previous, digest in rewritten:
            session.execute(
                update(AuditEntry)
                .where(AuditEntry.seq == seq)
                .values(details=details, prev=previous, hash=digest)
            )
    verdict = _verify(instance, database)
    assert verdict["intact"] is False
    assert verdict["broken_checkpoint"] == 3
    assert "entries were rewritten" in str(verdict["reason"])


def test_checkpoints_kept_outside_catch_a_rewrite_that_deleted_the_stored_ones(
    instance: Instance, database: Database
) -> None:
    _record(database, 2)
    assert _checkpoint(instance, database) is not None
    with database.session() as session:
        _, kept = read_export(io.StringIO("\n".join(export_lines(session))))
    # An insider rewrites the whole chain and deletes every stored checkpoint.
    with database.transaction() as session:
        session.execute(delete(AuditCheckpoint))
        session.execute(delete(AuditEntry))
    _record(database, 2)
    with database.session() as session:
        root = _root(instance, session)
        assert verify_database(session, root).as_dict() == {
            "intact": True,
            "entries": 2,
            "checkpoints": 0,
            "anchored": 0,
        }
        verdict = verify_database(session, root, kept)
    assert verdict.broken_checkpoint == 2
    assert verdict.reason == (
        "checkpoint at 2: head differs from entry 2's hash: entries were rewritten"
    )


def test_an_export_verifies_offline_and_betrays_an_edit(
    instance: Instance, database: Database
) -> None:
    _record(database, 3)
    assert _checkpoint(instance, database) is not None
    with database.session() as session:
        lines = list(export_lines(session))
        root = _root(instance, session)
    assert [json.loads(line)["kind"] for line in lines] == [
        "entry",
        "entry",
        "entry",
        "checkpoint",
    ]
    items, sealed = read_export(io.StringIO("\n".join(lines)))
    assert verify_trail(items, sealed, root).intact
    edited = json.loads(lines[0]) | {"actor": "operator:mallory"}
    items, sealed = read_export(io.StringIO("\n".join([json.dumps(edited), *lines[1:]])))
    verdict = verify_trail(items, sealed, root)
    assert (verdict.first_broken, verdict.entries) == (1, 3)
    assert verdict.reason == "entry 1 was altered: its hash does not match its content"


def test_an_unreadable_export_is_refused() -> None:
    with pytest.raises(ExportUnreadable, match="line 2: kind must be entry or checkpoint"):
        read_export(
            io.StringIO('{"kind": "checkpoint", "size": 1, "document": "", "seal": ""}\n{}')
        )
