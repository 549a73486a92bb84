"""`authority audit verify|export|checkpoint` as an operator runs them, against a trail an
insider tampered with in the database: real processes, both databases."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from asn1crypto import cms
from sqlalchemy import Connection, Engine, delete, insert, select, update

from authority.audit.models import AuditCheckpoint, AuditEntry
from authority.config import load_settings
from authority.db.session import create_database_engine
from tests.live import PASSPHRASE, LiveAuthority, clean_environment

pytestmark = pytest.mark.slow

EVENTS = [
    "authority.initialised",
    "configuration.changed",
    "agency.created",
    "seal.created",
    "client.registered",
    "seal.rotated",
    "seal.revoked",
    "key.rotated",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def operator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveAuthority, Engine]]:
    """An initialised instance whose operator created, rotated and revoked a seal."""
    workdir = tmp_path_factory.mktemp(f"audit-{request.param}")
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server").create()
    else:
        url = f"sqlite:///{workdir / 'var' / 'authority.db'}"
    env = {
        "AUTHORITY_DATABASE_URL": url,
        "AUTHORITY_KEYS_DIR": str(workdir / "keys"),
        "AUTHORITY_VAR_DIR": str(workdir / "var"),
        "AUTHORITY_KEYSTORE_PASSPHRASE": PASSPHRASE,
    }
    authority = LiveAuthority(url="", env=clean_environment(env), workdir=workdir)
    authority.cli("init")
    authority.cli("agency", "create", "--code", "MOT", "--name", "Ministry of Transport")
    authority.cli("seal", "rotate", "--agency", "MOT")
    authority.cli("seal", "revoke", "--agency", "MOT", "--reason", "keyCompromise")
    authority.cli("keys", "rotate", "--purpose", "token")
    engine = create_database_engine(load_settings({"AUTHORITY_DATABASE_URL": url}).database_url)
    yield authority, engine
    engine.dispose()


def _verify(authority: LiveAuthority) -> tuple[int, dict[str, object]]:
    result = authority.cli("audit", "verify", "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def test_an_operators_actions_are_recorded_and_verify(
    operator: tuple[LiveAuthority, Engine],
) -> None:
    authority, _engine = operator
    checkpoint = authority.cli_json("audit", "checkpoint")
    assert checkpoint["created"] is True
    assert checkpoint["size"] == len(EVENTS)
    assert authority.cli_json("audit", "checkpoint") == {"created": False}
    assert _verify(authority) == (
        0,
        {"intact": True, "entries": len(EVENTS), "checkpoints": 2, "anchored": len(EVENTS)},
    )
    lines = [json.loads(line) for line in authority.cli("audit", "export").stdout.splitlines()]
    entries = [line for line in lines if line["kind"] == "entry"]
    assert [e["event"] for e in entries] == EVENTS
    revoked = entries[EVENTS.index("seal.revoked")]
    assert revoked["subject"] == "agency:MOT"
    assert revoked["details"]["reason"] == "keyCompromise"
    assert all(e["actor"].startswith("operator") for e in entries)
    # Secrets never reach the trail (the agency's client secret was printed once).
    assert "secret" not in json.dumps(entries)
    # `init` anchors the trail at once; the explicit checkpoint covers the rest.
    assert [(line["kind"], line.get("size")) for line in lines if line["kind"] != "entry"] == [
        ("checkpoint", 2),  # authority.initialised, configuration.changed
        ("checkpoint", len(EVENTS)),
    ]


def _edit(connection: Connection) -> None:
    connection.execute(
        update(AuditEntry).where(AuditEntry.seq == 2).values(details={"name": "Ministry of Fraud"})
    )


def _delete(connection: Connection) -> None:
    connection.execute(delete(AuditEntry).where(AuditEntry.seq == 3))


def _reorder(connection: Connection) -> None:
    for old, new in ((3, -3), (4, 3), (-3, 4)):
        connection.execute(update(AuditEntry).where(AuditEntry.seq == old).values(seq=new))


def _truncate(connection: Connection) -> None:
    connection.execute(delete(AuditEntry).where(AuditEntry.seq == len(EVENTS)))


def _alter_checkpoint_signature(connection: Connection) -> None:
    record = connection.execute(select(AuditCheckpoint).where(AuditCheckpoint.size == 2)).one()
    signature = cms.ContentInfo.load(record.seal)["content"]["signer_infos"][0]["signature"]
    value = signature.native
    altered = record.seal.replace(value, value[:-1] + bytes([value[-1] ^ 0x01]))
    connection.execute(
        update(AuditCheckpoint).where(AuditCheckpoint.id == record.id).values(seal=altered)
    )


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            _edit,
            {
                "first_broken": 2,
                "reason": "entry 2 was altered: its hash does not match its content",
            },
        ),
        (_delete, {"first_broken": 3, "reason": "entry 3 is missing"}),
        (_reorder, {"first_broken": 3, "reason": "entry 3 does not follow entry 2"}),
        (
            _truncate,
            {
                "broken_checkpoint": len(EVENTS),
                "reason": f"checkpoint at {len(EVENTS)}: covers {len(EVENTS)} entries "
                f"but the trail has {len(EVENTS) - 1}",
            },
        ),
        (
            _alter_checkpoint_signature,
            {
                "broken_checkpoint": 2,
                "reason": "checkpoint at 2: seal does not verify: the signature does not verify "
                "with the signer's key",
            },
        ),
    ],
    ids=["edited", "deleted", "reordered", "truncated", "checkpoint-signature"],
)
def test_tampering_is_detected(
    operator: tuple[LiveAuthority, Engine],
    tamper: Callable[[Connection], None],
    expected: dict[str, object],
    tmp_path: Path,
) -> None:
    authority, engine = operator
    authority.cli("audit", "checkpoint")
    with engine.connect() as connection:
        saved_entries = connection.execute(select(AuditEntry.__table__)).mappings().all()
        saved_checkpoints = connection.execute(select(AuditCheckpoint.__table__)).mappings().all()
    export = tmp_path / "before.jsonl"
    authority.cli("audit", "export", "--output", str(export))
    try:
        with engine.begin() as connection:
            tamper(connection)
        status, verdict = _verify(authority)
        assert status == 1
        assert verdict["intact"] is False
        assert {k: verdict[k] for k in expected} == expected
        # The export taken before the tampering still verifies on its own.
        offline = authority.cli("audit", "verify", "--input", str(export), "--json")
        assert json.loads(offline.stdout)["intact"] is True
    finally:
        with engine.begin() as connection:
            connection.execute(delete(AuditEntry))
            connection.execute(delete(AuditCheckpoint))
            connection.execute(insert(AuditEntry), [dict(r) for r in saved_entries])
            connection.execute(insert(AuditCheckpoint), [dict(r) for r in saved_checkpoints])
    assert _verify(authority)[0] == 0
