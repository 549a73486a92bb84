"""Shared fixtures: both databases, per-test rollback, settings, the app.

Database-touching tests take the ``database_url`` fixture (directly or through
``database``/``instance``/``client``) and so run once on SQLite and once on
PostgreSQL. PostgreSQL is the server at TEST_POSTGRESQL_URL (default
postgresql://postgres@127.0.0.1:5432/test); each run creates its own fresh
database there and drops it at the end. Without a reachable server the
PostgreSQL half is skipped locally, and fails in CI (CI=true).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from authority.app import create_app
from authority.bootstrap import ensure_service_keys, pki_for
from authority.config import Settings, load_settings
from authority.db.base import utcnow
from authority.db.migrate import upgrade
from authority.db.session import Database, create_database_engine
from authority.instance import Instance
from authority.pki.file_keystore import FileKeyStore
from authority.pki.service import Pki

DEFAULT_POSTGRESQL_URL = "postgresql://postgres@127.0.0.1:5432/test"
IN_CI = os.environ.get("CI") == "true"


def _postgresql_admin_url() -> str:
    return os.environ.get("TEST_POSTGRESQL_URL", DEFAULT_POSTGRESQL_URL)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


class PostgresServer:
    """Creates and drops throw-away databases on the test PostgreSQL server."""

    def __init__(self, admin_url: str) -> None:
        url = make_url(admin_url).set(drivername="postgresql+psycopg")
        self.base_url = url
        self.admin: Engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create(self) -> str:
        """A new empty database; returns its plain postgresql:// URL."""
        name = f"authority_test_{os.getpid()}_{secrets.token_hex(4)}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.base_url.set(drivername="postgresql", database=name).render_as_string(
            hide_password=False
        )

    def drop_all(self) -> None:
        """Drop every database this server object created."""
        with self.admin.connect() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server for this run (skip locally / fail in CI without one)."""
    server = PostgresServer(_postgresql_admin_url())
    try:
        with server.admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        server.admin.dispose()
        _unavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    yield server
    server.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind, for tests that migrate or run the CLI."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's file key store directory."""
    directory = tmp_path_factory.mktemp("keys")
    directory.chmod(0o700)
    return directory


@pytest.fixture(scope="session")
def keystore(keys_dir: Path) -> Iterator[FileKeyStore]:
    """One file key store for the run: decrypted keys stay cached between tests."""
    store = FileKeyStore(keys_dir, TEST_PASSPHRASE)
    yield store
    store.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    keys_dir: Path,
    keystore: FileKeyStore,
) -> str:
    """A migrated database of each kind with the CA hierarchy, shared by the run.

    Created once and committed; each test's own changes are rolled back.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'authority.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create()
    settings = _settings(url, keys_dir, tmp_path_factory.mktemp("var"))
    database = Database.from_url(settings.database_url)
    upgrade(database)
    instance = Instance(settings, database, keystore)
    with database.transaction() as session:
        ensure_service_keys(instance, session, utcnow())
    database.dispose()
    return url


TEST_PASSPHRASE = "test-only passphrase, not a secret: 7f3a9c1e"


def _settings(url: str, keys_dir: Path, var_dir: Path) -> Settings:
    return load_settings(
        {
            "AUTHORITY_DATABASE_URL": url,
            "AUTHORITY_KEYS_DIR": str(keys_dir),
            "AUTHORITY_VAR_DIR": str(var_dir),
            "AUTHORITY_KEYSTORE_PASSPHRASE": TEST_PASSPHRASE,
        }
    )


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The engine of the shared migrated database."""
    settings = load_settings({"AUTHORITY_DATABASE_URL": database_url})
    shared = create_database_engine(settings.database_url)
    yield shared
    shared.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def database(connection: Connection) -> Database:
    """A Database whose every unit of work is rolled back after the test."""
    return Database(connection)


@pytest.fixture
def settings(database_url: str, keys_dir: Path, tmp_path: Path) -> Settings:
    """Settings pointing at the test database and the run's key store."""
    return _settings(database_url, keys_dir, tmp_path / "var")


@pytest.fixture
def instance(settings: Settings, database: Database, keystore: FileKeyStore) -> Instance:
    """An instance on the rolled-back test database, with the CA hierarchy."""
    return Instance(settings, database, keystore)


@pytest.fixture
def pki(instance: Instance, database: Database) -> Iterator[Pki]:
    """The PKI on a session of the rolled-back test database."""
    with database.session() as session:
        yield pki_for(instance, session)


@pytest.fixture
def client(settings: Settings, instance: Instance) -> Iterator[TestClient]:
    """Real HTTP through the ASGI app, on the rolled-back test database."""
    with TestClient(create_app(settings, instance), base_url=settings.issuer) as test_client:
        yield test_client
