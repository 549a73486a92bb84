"""The Database handle: one engine, sessions, and the unit of work.

A unit of work is one session, committed if the block succeeds and rolled
back if it raises. Every writer (a request, a CLI command) goes through
:meth:`Database.transaction`, so nothing is committed half-way and nothing is
acknowledged before it is durable.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DataError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from authority.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

_WRITTEN = "authority.written"  # Session.info key: classes flushed in this transaction


def _note_written(session: Session, _context: Any) -> None:
    written = session.info.setdefault(_WRITTEN, set())
    written.update(type(o) for o in (*session.new, *session.dirty, *session.deleted))


def _forget_written(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached or answered with an error."""

    slug = "database-unavailable"
    title = "Database unavailable"


def database_unavailable(exc: OperationalError | InterfaceError) -> DatabaseUnavailable:
    """Describe a connection-level database failure without leaking credentials."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    return DatabaseUnavailable(f"database unavailable: {reason}")


class ValueRefused(InvalidInput):
    """The database refused a value the checks let through (PostgreSQL: U+0000 in text)."""

    slug = "value-refused"
    title = "Value refused"


def value_refused(_exc: DataError) -> ValueRefused:
    """Describe a value the database cannot store, without echoing it."""
    return ValueRefused(
        "a value cannot be stored: text must not contain U+0000 and numbers must fit their field"
    )


BUSY_TIMEOUT_S = 10.0  # how long a writer waits for the write lock before "database is locked"

_writer_locks: dict[str, threading.Lock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(database: str) -> threading.Lock:
    """The lock this process's writers to the SQLite file ``database`` queue on."""
    if database in ("", ":memory:") or database.startswith("file:"):
        return threading.Lock()  # private or URI-named: not shared by path
    key = os.path.realpath(database)
    with _writer_locks_guard:
        return _writer_locks.setdefault(key, threading.Lock())


CHECKPOINT_INTERVAL_S = 0.2  # at most this often: the commits between share a checkpoint


class WalCheckpointer:
    """Checkpoints a SQLite file's write-ahead log in a thread of its own, after commits.

    SQLite's automatic checkpoint runs inside the COMMIT that takes the log past 1,000
    pages: that commit then copies the pages into the database file and waits for its
    fsync too (for batches of licences, one commit in five took 30-55 ms instead of
    3). Connections of an engine with a checkpointer turn the automatic one off
    (``wal_autocheckpoint=0``); each write commit wakes this thread instead, which
    runs a PASSIVE checkpoint (it neither waits for nor blocks readers and writers)
    on a connection of its own, at most every :data:`CHECKPOINT_INTERVAL_S`.
    Durability does not change: a commit returns once its log frames are synced
    (``synchronous=FULL``), checkpointed or not. The thread starts on the first
    commit (again after a fork) and :meth:`stop` ends it.
    """

    def __init__(self, database: str) -> None:
        self._database = database
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def committed(self) -> None:
        """A write transaction has committed: checkpoint soon."""
        if self._thread is None or self._pid != os.getpid():
            with self._guard:
                if self._thread is None or self._pid != os.getpid():
                    self._stopping.clear()
                    self._pid = os.getpid()
                    self._thread = threading.Thread(
                        target=self._run, name="sqlite-checkpoint", daemon=True
                    )
                    self._thread.start()
        self._wake.set()

    def checkpoint(self, connection: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint on ``connection``; the log's frames it could not copy
        yet (readers still use them) wait for the next."""
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _run(self) -> None:
        connection = sqlite3.connect(self._database, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            while True:
                self._wake.wait()
                if self._stopping.is_set():
                    return
                self._wake.clear()
                try:
                    self.checkpoint(connection)
                except sqlite3.Error:
                    log.warning("SQLite checkpoint failed; retried after the next commit")
                if self._stopping.wait(CHECKPOINT_INTERVAL_S):
                    return
        finally:
            connection.close()

    def stop(self) -> None:
        """End the thread (a checkpoint under way completes first); a later commit
        starts another."""
        with self._guard:
            thread, self._thread = self._thread, None
            self._stopping.set()
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=BUSY_TIMEOUT_S)


class SerialisedWriterConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions queue on a lock shared by this
    process's connections to the same file.

    SQLite lets one writer in at a time and makes the others poll in its busy
    handler, which sleeps up to 100 ms between tries: under concurrent writers
    that, not the work, sets the latency. Here a writer waits on a lock taken just
    before ``BEGIN IMMEDIATE`` and released once its COMMIT or ROLLBACK has
    returned, so the next one starts as soon as the file is free. The lock may be
    released from another thread than the one that took it (a request's unit of
    work can move between threads). Other processes still meet SQLite's own lock
    and busy handler, which stays the guarantee; this lock only orders the wait.

    Subclasses made by :func:`create_database_engine` name a :class:`WalCheckpointer`
    to wake after each write commit.
    """

    checkpointer: WalCheckpointer | None = None

    def __init__(self, database: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._writers = _writer_lock(os.fspath(database))
        self._holding = False

    def queue_for_write(self) -> None:
        """Wait for this process's other writers; then the caller sends ``BEGIN IMMEDIATE``."""
        if not self._writers.acquire(timeout=BUSY_TIMEOUT_S):
            raise sqlite3.OperationalError("database is locked")
        self._holding = True

    def leave_queue(self) -> None:
        """Let the next writer in (the transaction ended, or never began)."""
        if self._holding:
            self._holding = False
            self._writers.release()

    def commit(self) -> None:
        wrote = self._holding
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self.leave_queue()
        if wrote and self.checkpointer is not None:
            self.checkpointer.committed()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_queue()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave_queue()


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT and
    # transactional DDL; hand control to SQLAlchemy (its documented recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    if getattr(dbapi_connection, "checkpointer", None) is not None:
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # WalCheckpointer's thread does it
    cursor.close()


WRITE_OPTION = "authority_write"


def _sqlite_begin(connection: Connection) -> None:
    # A unit of work that will write takes the write lock at the start (IMMEDIATE):
    # a deferred transaction that reads and then writes cannot be upgraded once
    # another process has committed, and SQLite fails it at once ("database is
    # locked") instead of waiting, while busy_timeout queues IMMEDIATE ones. Readers
    # stay deferred so they never queue behind writers (WAL lets them run alongside).
    if not connection.get_execution_options().get(WRITE_OPTION, False):
        connection.exec_driver_sql("BEGIN")
        return
    raw = connection.connection.dbapi_connection
    queue = raw if isinstance(raw, SerialisedWriterConnection) else None
    if queue is not None:
        queue.queue_for_write()
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if queue is not None:
            queue.leave_queue()
        raise


def create_database_engine(url: str) -> Engine:
    """Make an engine for ``url`` with the settings each backend needs."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        factory: type[SerialisedWriterConnection] = SerialisedWriterConnection
        if path and path != ":memory:" and not path.startswith("file:") and "?" not in path:
            checkpointer = WalCheckpointer(path)
            factory = type(
                "CheckpointedWriterConnection",
                (SerialisedWriterConnection,),
                {"checkpointer": checkpointer},
            )
        engine = create_engine(url, connect_args={"check_same_thread": False, "factory": factory})
        if factory.checkpointer is not None:
            event.listen(engine, "engine_disposed", lambda _e: checkpointer.stop())
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """An engine and the sessions made from it."""

    def __init__(self, bind: Engine | Connection) -> None:
        self.bind = bind
        options: dict[str, Any] = {"expire_on_commit": False}
        if isinstance(bind, Connection):
            # Tests: every session joins the connection's outer transaction through
            # a savepoint, so the test can roll everything back at its end.
            options["join_transaction_mode"] = "create_savepoint"
        self._sessions = sessionmaker(bind=bind, **options)
        # An engine copy whose connections begin with the write lock on SQLite.
        writer = (
            bind.execution_options(**{WRITE_OPTION: True}) if isinstance(bind, Engine) else bind
        )
        self._writers = sessionmaker(bind=writer, **options)
        self._commit_listeners: list[Callable[[set[type[Any]]], None]] = []

    def after_commit(self, listener: Callable[[set[type[Any]]], None]) -> None:
        """Call ``listener`` with the mapped classes of the ORM objects a unit of work
        added, changed or deleted, once it has committed them (for in-process caches)."""
        if not self._commit_listeners:
            for sessions in (self._sessions, self._writers):
                event.listen(sessions, "after_flush", _note_written)
                event.listen(sessions, "after_commit", self._committed)
                event.listen(sessions, "after_rollback", _forget_written)
        self._commit_listeners.append(listener)

    def _committed(self, session: Session) -> None:
        written = session.info.pop(_WRITTEN, None)
        if written:
            for listener in self._commit_listeners:
                listener(written)

    @classmethod
    def from_url(cls, url: str) -> Database:
        """Open the database at ``url``."""
        return cls(create_database_engine(url))

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.bind.dialect.name

    def session(self) -> Session:
        """A new session; the caller decides when to commit."""
        session: Session = self._sessions()
        return session

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A unit of work: commit on success, roll back on any exception.

        ``write=False`` marks a unit that mostly reads: on SQLite it does not take
        the write lock up front, so it never waits behind writers (a write it does
        make may then fail with "database is locked" under concurrent writers).
        """
        session = (self._writers if write else self._sessions)()
        try:
            yield session
            # A unit that never used the session (a client-credentials token served from
            # the in-process caches) has nothing to commit: a query or an add would have
            # begun a transaction, and work waiting for the commit (audit entries,
            # authority/audit/trail.py) is noted in session.info.
            if session.in_transaction() or session.info:
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Raise :class:`DatabaseUnavailable` unless the database answers a query."""
        try:
            with self._sessions() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"database does not answer: {type(exc).__name__}") from exc

    def dispose(self) -> None:
        """Close pooled connections (the engine's, not a borrowed connection)."""
        if isinstance(self.bind, Engine):
            self.bind.dispose()
