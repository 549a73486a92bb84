"""The token endpoint's cache of clients and signing keys never outlives a change for long.

A change committed through the instance's database is seen by the next request;
one committed elsewhere (another process: here a second Database on the same
connection, which the instance does not watch) within CACHE_TTL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, event, select

from authority.agencies.models import Agency
from authority.app import create_app
from authority.config import Settings
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.oidc.cache import CACHE_TTL, ProviderCache
from authority.oidc.clients import register_agency_client
from authority.oidc.models import OAuthClient
from authority.oidc.tokens import rotate_signing_key


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(instance: Instance, database: Database) -> Clock:
    clock = Clock()
    instance.provider_cache = ProviderCache(clock=clock)
    database.after_commit(instance.provider_cache.changed)
    return clock


@pytest.fixture
def http(settings: Settings, instance: Instance, clock: Clock) -> TestClient:
    return TestClient(create_app(settings, instance), base_url=settings.issuer)


@pytest.fixture
def credentials(instance: Instance, database: Database) -> tuple[str, str]:
    with database.transaction() as session:
        agency = Agency(code="MOT", name="Ministry of Transport")
        session.add(agency)
        session.flush()
        client = register_agency_client(session, instance.client_secret_key, agency, utcnow())
    return client.record.client_id, client.secret or ""


@pytest.fixture
def elsewhere(connection: Connection) -> Database:
    """The same database as another process sees it: the instance does not watch it."""
    return Database(connection)


def _token(http: TestClient, credentials: tuple[str, str]) -> Any:
    return http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "licences:read"},
        auth=credentials,
    )


def _disable(database: Database, client_id: str) -> None:
    with database.transaction() as session:
        record = session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        assert record is not None
        record.disabled_at = utcnow()


def test_a_client_disabled_here_is_refused_at_once(
    http: TestClient, database: Database, credentials: tuple[str, str]
) -> None:
    assert _token(http, credentials).status_code == 200
    _disable(database, credentials[0])
    refused = _token(http, credentials)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_a_client_disabled_elsewhere_is_refused_within_the_ttl(
    http: TestClient, elsewhere: Database, clock: Clock, credentials: tuple[str, str]
) -> None:
    assert _token(http, credentials).status_code == 200
    _disable(elsewhere, credentials[0])
    clock.now += CACHE_TTL / 2
    assert _token(http, credentials).status_code == 200  # the documented window
    clock.now += CACHE_TTL / 2 + 0.001
    refused = _token(http, credentials)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_a_secret_changed_elsewhere_stops_working_within_the_ttl(
    http: TestClient, elsewhere: Database, clock: Clock, credentials: tuple[str, str]
) -> None:
    assert _token(http, credentials).status_code == 200
    new_secret = "a-new-secret-of-enough-entropy-0123456789"
    key = http.app.state.instance.client_secret_key  # type: ignore[attr-defined]
    with elsewhere.transaction() as session:
        record = session.scalar(select(OAuthClient).where(OAuthClient.client_id == credentials[0]))
        assert record is not None
        record.secret_hash = key.digest(new_secret)
    clock.now += CACHE_TTL + 0.001
    assert _token(http, credentials).status_code == 401
    assert _token(http, (credentials[0], new_secret)).status_code == 200


def test_a_key_rotated_elsewhere_signs_within_the_ttl(
    http: TestClient, elsewhere: Database, clock: Clock, credentials: tuple[str, str]
) -> None:
    before = _token(http, credentials).json()["access_token"]
    keystore = http.app.state.instance.keystore  # type: ignore[attr-defined]
    with elsewhere.transaction() as session:
        previous, new = rotate_signing_key(session, keystore, "token", utcnow())
    assert previous is not None and jwt.get_unverified_header(before)["kid"] == previous.kid
    clock.now += CACHE_TTL + 0.001
    after = _token(http, credentials).json()["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == new.kid
    # Tokens of the old key stay valid: it is published until they expire.
    assert previous.publish_until is not None
    assert previous.publish_until - utcnow() > timedelta(minutes=10)


def test_revoked_tokens_are_refused_whatever_the_cache(
    http: TestClient, credentials: tuple[str, str]
) -> None:
    token = _token(http, credentials).json()["access_token"]
    introspected = http.post("/oauth/introspect", data={"token": token}, auth=credentials)
    assert introspected.json()["active"] is True
    assert http.post("/oauth/revoke", data={"token": token}, auth=credentials).status_code == 200
    introspected = http.post("/oauth/introspect", data={"token": token}, auth=credentials)
    assert introspected.json() == {"active": False}
    licences = http.get("/api/v1/licences/nothing", headers={"Authorization": f"Bearer {token}"})
    assert licences.status_code == 401
    assert 'error="invalid_token"' in licences.headers["www-authenticate"]


@pytest.fixture
def statements(connection: Connection) -> Iterator[list[str]]:
    """Every SQL statement sent on the test's connection from now on."""
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(connection, "before_cursor_execute", note)
    yield sent
    event.remove(connection, "before_cursor_execute", note)


def test_a_warm_client_credentials_request_reads_no_table(
    http: TestClient, credentials: tuple[str, str], statements: list[str]
) -> None:
    assert _token(http, credentials).status_code == 200
    assert statements, "the first request reads the client, the key and the throttle"
    statements.clear()
    token = _token(http, credentials)
    assert token.status_code == 200
    assert token.headers["cache-control"] == "no-store"
    assert statements == []
    # A wrong secret is counted in the database, even for a client held in memory.
    refused = _token(http, (credentials[0], "not the secret"))
    assert refused.status_code == 401
    assert any("login_throttles" in s for s in statements)
