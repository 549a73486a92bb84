"""Portable column types behave the same on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from authority.db import Database
from authority.db.models import Installation


def test_timestamps_come_back_aware_in_utc(database: Database) -> None:
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2026, 11, 23, 8, 30, 15, 123456, tzinfo=shanghai)
    with database.transaction() as session:
        session.add(Installation(issuer="https://id.example.gov", initialised_at=moment))
    with database.session() as session:
        stored = session.scalar(select(Installation))
    assert stored is not None
    assert stored.initialised_at == moment
    assert stored.initialised_at.tzinfo is UTC
    assert stored.initialised_at.hour == 0


def test_naive_timestamps_are_refused(database: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"), database.transaction() as session:
        session.add(Installation(issuer="x", initialised_at=datetime(2026, 1, 1)))


def test_a_failed_unit_of_work_leaves_nothing(database: Database) -> None:
    with pytest.raises(RuntimeError), database.transaction() as session:
        session.add(Installation(issuer="https://id.example.gov"))
        session.flush()
        raise RuntimeError("boom")
    with database.session() as session:
        assert session.scalar(select(Installation)) is None


def test_sqlite_units_of_work_lock_for_writing_only_when_asked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event, text

    database = Database.from_url(f"sqlite:///{tmp_path / 'locks.db'}")
    begins: list[str] = []

    @event.listens_for(database.bind, "before_cursor_execute")
    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("BEGIN"):
            begins.append(statement)

    try:
        with database.transaction(write=False) as session:
            session.execute(text("SELECT 1"))
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
    finally:
        database.dispose()
    # Readers never queue behind writers; writers take the lock first and queue.
    assert begins == ["BEGIN", "BEGIN IMMEDIATE"]
