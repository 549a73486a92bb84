"""SQLite writers of one process queue on a lock instead of polling SQLite's busy handler."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from authority.db import Database


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[Database]:
    """A SQLite database whose busy handler gives up at once: any writer that
    reaches SQLite's lock while another holds it fails with "database is locked"."""
    database = Database.from_url(f"sqlite:///{tmp_path / 'writers.db'}")

    @event.listens_for(database.bind, "connect")
    def no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    with database.transaction() as session:
        session.execute(text("CREATE TABLE entries (writer TEXT NOT NULL)"))
    yield database
    database.dispose()


def _write(database: Database, name: str) -> None:
    with database.transaction() as session:
        session.execute(text("INSERT INTO entries VALUES (:name)"), {"name": name})


def _entries(database: Database) -> list[str]:
    with database.transaction(write=False) as session:
        return list(session.scalars(text("SELECT writer FROM entries ORDER BY rowid")))


def test_a_second_writer_waits_for_the_first_to_commit(impatient: Database) -> None:
    holding = threading.Event()
    done: list[BaseException | None] = []

    def second() -> None:
        holding.wait()
        try:
            _write(impatient, "second")
        except BaseException as exc:  # reported to the test below
            done.append(exc)
        else:
            done.append(None)

    other = threading.Thread(target=second)
    other.start()
    with impatient.transaction() as session:
        session.execute(text("INSERT INTO entries VALUES ('first')"))
        holding.set()
        other.join(timeout=0.3)
        assert other.is_alive()  # queued behind this unit of work, not failed
    other.join(timeout=10)
    assert done == [None]
    assert _entries(impatient) == ["first", "second"]


def test_a_unit_of_work_rolled_back_lets_the_next_writer_in(impatient: Database) -> None:
    with pytest.raises(RuntimeError), impatient.transaction() as session:
        session.execute(text("INSERT INTO entries VALUES ('lost')"))
        raise RuntimeError("boom")
    thread = threading.Thread(target=_write, args=(impatient, "next"))
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert _entries(impatient) == ["next"]


def test_a_unit_of_work_may_end_in_another_thread(impatient: Database) -> None:
    # A request's dependencies begin the unit of work in one worker thread and the
    # framework ends it in another: the lock is released all the same.
    units = impatient.transaction()
    session = units.__enter__()
    session.execute(text("INSERT INTO entries VALUES ('begun here')"))
    ender = threading.Thread(target=units.__exit__, args=(None, None, None))
    ender.start()
    ender.join(timeout=10)
    _write(impatient, "after")
    assert _entries(impatient) == ["begun here", "after"]


def test_readers_do_not_queue_behind_a_writer(impatient: Database) -> None:
    _write(impatient, "committed")
    with impatient.transaction() as session:
        session.execute(text("INSERT INTO entries VALUES ('pending')"))
        seen: list[list[str]] = []
        reader = threading.Thread(target=lambda: seen.append(_entries(impatient)))
        reader.start()
        reader.join(timeout=10)
        assert seen == [["committed"]]
