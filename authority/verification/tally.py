"""Counting online verifications per licence and UTC day, off the hot path.

Each verification adds one to a counter in this process's memory; the counters
are written to the database in one short transaction when ``interval`` seconds
have passed or ``batch`` verifications have been counted, and at shutdown. A
verification therefore never takes SQLite's write lock itself. What a crash
loses: the counts of at most the last ``interval`` seconds (or ``batch``
verifications) of that process. Counts record how often and when, never who.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime

from sqlalchemy import bindparam, case, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from authority.account.models import VerificationDay
from authority.db.session import Database
from authority.licences.models import Licence

log = logging.getLogger("authority.verification")

#: (licence number, UTC day) -> (count, latest time)
Counts = dict[tuple[str, date], tuple[int, datetime]]


def write_counts(session: Session, counts: Counts) -> int:
    """Add ``counts`` to the stored daily counts; numbers not in the register are ignored."""
    connection = session.connection()
    found = connection.execute(_IDS, {"numbers": list({number for number, _ in counts})})
    ids = {number: licence_id for number, licence_id in found}
    rows = [
        {"licence_id": ids[number], "day": day, "count": count, "last_at": last}
        for (number, day), (count, last) in counts.items()
        if number in ids
    ]
    if rows:
        # One statement compiled once per dialect, run as one executemany (Core, not the
        # ORM's bulk insert): a statement with 1,000 rows of VALUES compiled on every flush
        # cost more than writing them.
        connection.execute(_upsert(connection.dialect.name), rows)
    return len(rows)


_IDS = select(Licence.number, Licence.id).where(
    Licence.number.in_(bindparam("numbers", expanding=True))
)
_UPSERTS: dict[str, Executable] = {}


def _upsert(dialect: str) -> Executable:
    """INSERT ... ON CONFLICT (licence, day) DO UPDATE adding the count, for ``dialect``."""
    statement = _UPSERTS.get(dialect)
    if statement is None:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        upsert = insert(VerificationDay)
        statement = _UPSERTS[dialect] = upsert.on_conflict_do_update(
            index_elements=["licence_id", "day"],
            set_={
                "count": VerificationDay.count + upsert.excluded.count,
                "last_at": case(
                    (upsert.excluded.last_at > VerificationDay.last_at, upsert.excluded.last_at),
                    else_=VerificationDay.last_at,
                ),
            },
        )
    return statement


class VerificationTally:
    """Verification counts held in memory and flushed in batches (thread-safe)."""

    def __init__(
        self,
        database: Database,
        *,
        interval: float = 5.0,
        batch: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.interval = interval
        self.batch = batch
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: Counts = {}
        self._size = 0
        self._flushed_at = clock()
        self._due = False  # a caller was told a flush is due, and none has begun since

    def record(self, number: str, at: datetime) -> None:
        """Count one online verification of licence ``number`` at ``at``; flush if due."""
        if self.add(number, at):
            self.flush()

    def add(self, number: str, at: datetime) -> bool:
        """Count one online verification of licence ``number`` at ``at``; whether a
        :meth:`flush` is due (the caller makes it, off an event loop). Only one caller is
        told until a flush begins, so concurrent requests do not start one each."""
        key = (number, at.date())
        with self._lock:
            count, last = self._pending.get(key, (0, at))
            self._pending[key] = (count + 1, max(last, at))
            self._size += 1
            if self._due or (
                self._size < self.batch and self._clock() - self._flushed_at < self.interval
            ):
                return False
            self._due = True
            return True

    def flush(self) -> int:
        """Write what was counted in one transaction; the rows written (0 if none)."""
        with self._lock:
            taken, self._pending, self._size = self._pending, {}, 0
            self._flushed_at, self._due = self._clock(), False
        if not taken:
            return 0
        try:
            with self.database.transaction(write=True) as session:
                return write_counts(session, taken)
        except SQLAlchemyError:
            log.warning("verification counts not written; kept for the next flush", exc_info=True)
            with self._lock:
                for key, (count, last) in taken.items():
                    held, latest = self._pending.get(key, (0, last))
                    self._pending[key] = (held + count, max(latest, last))
                    self._size += count
            return 0
