"""SQLite's WAL is checkpointed by a thread of its own, never inside a request's COMMIT."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from authority.db import Database
from authority.db.session import WalCheckpointer

ROW = b"\x5a" * 4000  # about a page each
ROWS_PER_COMMIT = 200


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database.from_url(f"sqlite:///{tmp_path / 'wal.db'}")
    with database.transaction() as session:
        session.execute(text("CREATE TABLE blobs (b BLOB NOT NULL)"))
    yield database
    database.dispose()


def _checkpointer(database: Database) -> WalCheckpointer:
    assert isinstance(database.bind, Engine)
    raw = database.bind.raw_connection()
    try:
        checkpointer = raw.dbapi_connection.checkpointer  # type: ignore[union-attr]
    finally:
        raw.close()
    assert isinstance(checkpointer, WalCheckpointer)
    return checkpointer


def _write(database: Database) -> None:
    with database.transaction() as session:
        session.execute(text("INSERT INTO blobs VALUES (:b)"), [{"b": ROW}] * ROWS_PER_COMMIT)


def _main_file_pages(path: Path) -> int:
    return os.path.getsize(path) // 4096


def test_connections_leave_checkpoints_to_the_checkpointer(database: Database) -> None:
    with database.transaction(write=False) as session:
        assert session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0
        assert session.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert session.execute(text("PRAGMA synchronous")).scalar_one() == 2  # FULL


def test_commits_past_the_threshold_do_not_checkpoint_and_the_thread_does(
    database: Database, tmp_path: Path
) -> None:
    checkpointer = _checkpointer(database)
    release = threading.Event()
    calls: list[str] = []
    original = checkpointer.checkpoint

    def held(connection: sqlite3.Connection) -> None:
        calls.append(threading.current_thread().name)
        release.wait(timeout=30)
        original(connection)

    checkpointer.checkpoint = held  # type: ignore[method-assign]
    path = tmp_path / "wal.db"
    before = _main_file_pages(path)
    for _ in range(8):  # 1,600 pages: SQLite's own checkpoint would run at 1,000
        _write(database)
    # Every page is still only in the log: no COMMIT copied any into the database file.
    assert _main_file_pages(path) == before
    assert os.path.getsize(f"{path}-wal") // 4096 >= 8 * ROWS_PER_COMMIT
    assert calls == ["sqlite-checkpoint"]  # woken, and held there
    release.set()
    deadline = time.monotonic() + 20
    while _main_file_pages(path) < before + 8 * ROWS_PER_COMMIT:
        assert time.monotonic() < deadline, "the checkpointer did not copy the log"
        time.sleep(0.05)
    with database.transaction(write=False) as session:
        assert session.execute(text("SELECT count(*) FROM blobs")).scalar_one() == 1600


def test_disposing_the_engine_stops_the_thread(database: Database) -> None:
    _write(database)
    assert any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
    checkpointer = _checkpointer(database)
    thread = checkpointer._thread
    assert thread is not None
    database.dispose()
    assert not thread.is_alive()
    # A later commit on the same engine starts another.
    _write(database)
    assert checkpointer._thread is not None
    assert checkpointer._thread.is_alive()
