"""Verification counts: held in memory, written in one transaction when due, added to
what is stored, and never for a number the register does not know."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from authority.account.models import VerificationDay
from authority.db.session import Database
from authority.instance import Instance
from authority.licences.models import Licence
from authority.verification.tally import VerificationTally
from tests.functional.test_account_pages import _issue

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _stored(database: Database) -> list[tuple[str, int, datetime]]:
    with database.transaction(write=False) as session:
        return [
            (row.day.isoformat(), row.count, row.last_at)
            for row in session.scalars(select(VerificationDay).order_by(VerificationDay.day))
        ]


def test_counts_flush_when_the_batch_is_full_and_add_up(
    instance: Instance, database: Database
) -> None:
    licence_id = _issue(instance, database, "citizen", "11010519491231002X", "张三")
    with database.transaction(write=False) as session:
        number = session.get(Licence, licence_id).number  # type: ignore[union-attr]
    tally = VerificationTally(database, interval=3600, batch=3, clock=lambda: 0.0)
    tally.record(number, AT)
    tally.record("FORGED-2026-000001", AT)
    assert _stored(database) == []  # not due yet: nothing written
    tally.record(number, AT + timedelta(minutes=5))  # third: the batch is full
    assert _stored(database) == [("2026-12-01", 2, AT + timedelta(minutes=5))]
    tally.record(number, AT + timedelta(days=1))
    tally.record(number, AT + timedelta(minutes=1))  # earlier than the stored latest
    assert tally.flush() == 2
    assert _stored(database) == [
        ("2026-12-01", 3, AT + timedelta(minutes=5)),
        ("2026-12-02", 1, AT + timedelta(days=1)),
    ]
    assert tally.flush() == 0


def test_counts_flush_when_the_interval_has_passed(instance: Instance, database: Database) -> None:
    licence_id = _issue(instance, database, "citizen", "11010519491231002X", "张三")
    with database.transaction(write=False) as session:
        number = session.get(Licence, licence_id).number  # type: ignore[union-attr]
    now = [0.0]
    tally = VerificationTally(database, interval=5, batch=1000, clock=lambda: now[0])
    tally.record(number, AT)
    assert _stored(database) == []
    now[0] = 5.0
    tally.record(number, AT)
    assert _stored(database) == [("2026-12-01", 2, AT)]


def test_one_caller_is_told_a_flush_is_due_until_one_begins(database: Database) -> None:
    tally = VerificationTally(database, interval=3600, batch=2, clock=lambda: 0.0)
    assert [tally.add("FORGED-2026-000001", AT) for _ in range(4)] == [False, True, False, False]
    assert tally.flush() == 0  # a number the register does not hold is never written
    assert [tally.add("FORGED-2026-000001", AT) for _ in range(3)] == [False, True, False]
