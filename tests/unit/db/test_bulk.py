"""insert_rows stores rows exactly as Core's INSERT does, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select, text

from authority.audit.models import AuditCheckpoint, AuditEntry
from authority.db import Database
from authority.db.bulk import add_written, insert_rows
from authority.oidc.models import AuthorizationRequest

SHANGHAI = timezone(timedelta(hours=8))
ENTRIES = cast(Table, AuditEntry.__table__)
CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)


def _entry(seq: int, at: datetime, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": at,
        "event": "test.bulk",
        "actor": "operator:test",
        "subject": "subject 主体",
        "details": details,
        "prev": f"{seq - 1:064x}",
        "hash": f"{seq:064x}",
    }


def _stored(database: Database, table: Table, key: Any, values: list[Any]) -> list[Any]:
    with database.session() as session:
        return [tuple(row) for row in session.execute(select(table).where(key.in_(values)))]


def test_rows_read_back_as_core_stores_them(database: Database) -> None:
    moment = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=SHANGHAI)
    details = {"number": "DEMO-2026-000001", "nested": {"list": [1, True, None, "文字"]}}
    by_core = [_entry(900_000_001 + i, moment, details) for i in range(3)]
    by_driver = [_entry(900_000_101 + i, moment, details) for i in range(3)]
    with database.transaction() as session:
        session.execute(insert(ENTRIES), by_core)
        insert_rows(session, ENTRIES, by_driver)
    core_rows = _stored(database, ENTRIES, ENTRIES.c.seq, [r["seq"] for r in by_core])
    driver_rows = _stored(database, ENTRIES, ENTRIES.c.seq, [r["seq"] for r in by_driver])
    assert len(driver_rows) == 3
    # Apart from the keys given, the same values come back: UTC datetimes, JSON, text.
    assert [row[1:6] for row in driver_rows] == [row[1:6] for row in core_rows]
    # And the same is stored, as the database holds it (SQLite: text of the UTC time).
    raw = text("SELECT seq, at, details FROM audit_entries WHERE seq IN (900000001, 900000101)")
    with database.session() as session:
        (_, core_at, core_details), (_, at, stored_details) = session.execute(raw).all()
    assert (at, stored_details) == (core_at, core_details)
    assert driver_rows[0][1] == moment
    assert driver_rows[0][1].tzinfo is UTC
    assert driver_rows[0][5] == details


def test_shared_and_rezoned_timestamps_are_each_stored_as_given(database: Database) -> None:
    # insert_rows processes each distinct datetime once: rows sharing one, the same
    # instant in another zone, and a different instant must all come back right.
    moment = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    values = [moment, moment, moment.astimezone(SHANGHAI), moment + timedelta(microseconds=1)]
    rows = [_entry(900_000_301 + i, at, {}) for i, at in enumerate(values)]
    rows.append(_entry(900_000_305, datetime(2026, 12, 1, 8, 30), {}))  # naive, after a hit
    with pytest.raises(ValueError, match="naive datetime"), database.transaction() as session:
        insert_rows(session, ENTRIES, rows)
    with database.transaction() as session:
        insert_rows(session, ENTRIES, rows[:4])
    stored = _stored(database, ENTRIES, ENTRIES.c.seq, [r["seq"] for r in rows])
    assert [row[1] for row in sorted(stored)] == [moment, moment, moment, values[3]]
    assert all(row[1].tzinfo is UTC for row in stored)


def test_binary_values_are_stored_byte_for_byte(database: Database) -> None:
    blob = bytes(range(256)) * 3
    row = {
        "size": 900_000_001,
        "head": "f" * 64,
        "at": datetime(2026, 12, 1, tzinfo=UTC),
        "document": blob,
        "seal": b"\x00\x30",
    }
    with database.transaction() as session:
        insert_rows(session, CHECKPOINTS, [row])
    (stored,) = _stored(database, CHECKPOINTS, CHECKPOINTS.c.size, [900_000_001])
    assert bytes(stored[4]) == blob
    assert bytes(stored[5]) == b"\x00\x30"


def test_a_naive_datetime_is_refused_and_nothing_is_stored(database: Database) -> None:
    rows = [
        _entry(900_000_201, datetime(2026, 12, 1, tzinfo=UTC), {}),
        _entry(900_000_202, datetime(2026, 12, 1), {}),
    ]
    with pytest.raises(ValueError, match="naive datetime"), database.transaction() as session:
        insert_rows(session, ENTRIES, rows)
    assert _stored(database, ENTRIES, ENTRIES.c.seq, [900_000_201, 900_000_202]) == []


def test_no_rows_is_no_statement(database: Database) -> None:
    with database.session() as session:
        insert_rows(session, ENTRIES, [])
        assert not session.in_transaction()


def _request(request_id: str, **values: Any) -> AuthorizationRequest:
    now = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "id": request_id,
        "client_id": "c",
        "params": {"scope": "openid"},
        "pushed": False,
        "business": None,
        "browser_hash": None,
        "created_at": now,
        "expires_at": now + timedelta(minutes=30),
        "used_at": None,
    }
    return AuthorizationRequest(**{**fields, **values})


def test_a_written_object_is_stored_at_once_and_changed_by_update(database: Database) -> None:
    with database.transaction() as session:
        record = _request("w" * 43)
        add_written(session, record)
        assert record in session and not session.new and not session.dirty
        stored = session.execute(
            select(AuthorizationRequest.__table__.c.params).where(
                AuthorizationRequest.id == "w" * 43
            )
        ).scalar_one()
        assert stored == {"scope": "openid"}  # in the database before any flush
        assert session.get(AuthorizationRequest, "w" * 43) is record  # one identity
        record.browser_hash = "b" * 64  # a later change is an UPDATE of that row
    with database.session() as session:
        again = session.get(AuthorizationRequest, "w" * 43)
        assert again is not None
        assert (again.browser_hash, again.params, again.used_at) == (
            "b" * 64,
            {"scope": "openid"},
            None,
        )


def test_a_written_object_needs_every_column(database: Database) -> None:
    incomplete = AuthorizationRequest(id="x" * 43, client_id="c", params={})
    with database.transaction() as session, pytest.raises(ValueError, match="pushed"):
        add_written(session, incomplete)
    with database.session() as session:
        assert session.get(AuthorizationRequest, "x" * 43) is None
