"""Verification keeps status for a few seconds, never longer, and never past a change made here.

A change committed through the instance's database (a licence revoked,
suspended or reinstated; a seal certificate revoked) is seen by the next
verification; one committed elsewhere (another process: here a second
Database on the same connection, which the instance does not watch) within
STATUS_TTL. The clock is moved by hand: nothing sleeps.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from authority.agencies.service import revoke_seal
from authority.app import create_app
from authority.bootstrap import pki_for
from authority.config import Settings
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.licences.models import Licence
from authority.licences.service import change_status
from authority.pki.crl import RevocationReason
from authority.seals.qr import payload_of
from authority.verification.cache import STATUS_TTL, StatusCache
from authority.verification.service import verify_qr_cached, verify_qr_online
from authority.verification.trust import PkiState
from tests.functional.test_licences_http import _agency
from tests.functional.test_verify_http import issue, verify_qr


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(instance: Instance, database: Database) -> Clock:
    clock = Clock()
    instance.verification_cache = StatusCache(clock=clock)
    database.after_commit(instance.verification_cache.changed)
    return clock


@pytest.fixture
def http(settings: Settings, instance: Instance, clock: Clock) -> TestClient:
    return TestClient(create_app(settings, instance), base_url=settings.issuer)


@pytest.fixture
def agency(instance: Instance, database: Database, http: TestClient) -> dict[str, str]:
    return _agency(instance, database, "MOT", "licences:issue licences:revoke licences:read", http)


@pytest.fixture
def elsewhere(connection: Connection) -> Database:
    """The same database as another process sees it: the instance does not watch it."""
    return Database(connection)


def _status_check(report: dict[str, Any]) -> str:
    return str(next(c["detail"] for c in report["checks"] if c["name"] == "certificate-status"))


def _kept() -> PkiState:
    raise AssertionError("the PKI's state was not kept")


def _change_elsewhere(elsewhere: Database, number: str, action: str) -> None:
    with elsewhere.transaction() as session:
        licence = session.scalar(select(Licence).where(Licence.number == number))
        assert licence is not None
        change_status(session, licence, action, "changed by another process", "test", utcnow())


def test_lifecycle_changes_here_are_seen_at_once(
    http: TestClient, agency: dict[str, str], clock: Clock
) -> None:
    licence = issue(http, agency)
    url, links = licence["links"]["verify"], licence["links"]
    first = verify_qr(http, url)
    assert first["verdict"] == "VALID"
    # Kept: the second verification relies on the status read for the first.
    assert verify_qr(http, url)["status_as_of"] == first["status_as_of"]
    for action, verdict in (
        ("suspend", "SUSPENDED"),
        ("reinstate", "VALID"),
        ("revoke", "REVOKED"),
    ):
        changed = http.post(f"{links['self']}/{action}", json={"reason": "test"}, headers=agency)
        assert changed.status_code == 200, changed.text
        assert verify_qr(http, url)["verdict"] == verdict, action
    # The QR's page says the same as the API.
    page = http.get("/" + url.split("/", 3)[3], headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "REVOKED" in page.text.upper()


def test_a_licence_revoked_elsewhere_reads_revoked_after_the_window(
    http: TestClient, agency: dict[str, str], elsewhere: Database, clock: Clock
) -> None:
    licence = issue(http, agency)
    url = licence["links"]["verify"]
    before = verify_qr(http, url)
    assert before["verdict"] == "VALID"
    _change_elsewhere(elsewhere, licence["number"], "revoke")
    clock.now += STATUS_TTL / 2
    stale = verify_qr(http, url)
    assert stale["verdict"] == "VALID"  # the documented window, and it says when it read
    assert stale["status_as_of"] == before["status_as_of"]
    clock.now += STATUS_TTL / 2 + 0.001
    after = verify_qr(http, url)
    assert (after["verdict"], after["indication"]) == ("REVOKED", "TOTAL_PASSED")
    # The page too (it shares the cache).
    page = http.get("/" + url.split("/", 3)[3], headers={"Accept-Language": "en"})
    assert "REVOKED" in page.text.upper()


def test_a_suspension_lifted_elsewhere_reads_valid_after_the_window(
    http: TestClient, agency: dict[str, str], elsewhere: Database, clock: Clock
) -> None:
    licence = issue(http, agency)
    url = licence["links"]["verify"]
    _change_elsewhere(elsewhere, licence["number"], "suspend")
    assert verify_qr(http, url)["verdict"] == "SUSPENDED"
    _change_elsewhere(elsewhere, licence["number"], "reinstate")
    assert verify_qr(http, url)["verdict"] == "SUSPENDED"
    clock.now += STATUS_TTL + 0.001
    assert verify_qr(http, url)["verdict"] == "VALID"


def test_a_seal_revoked_here_is_seen_at_once(
    http: TestClient, agency: dict[str, str], instance: Instance, database: Database
) -> None:
    licence = issue(http, agency)
    url = licence["links"]["verify"]
    report = verify_qr(http, url)
    assert report["signer"]["certificate"]["status"] == "good"
    assert _status_check(report).startswith("not revoked as of")
    # Revoked two seconds on: issuance and revocation in different seconds, without a sleep.
    later = utcnow() + timedelta(seconds=2)
    with database.transaction() as session:
        revoke_seal(pki_for(instance, session), "MOT", RevocationReason.KEY_COMPROMISE, later)
    report = verify_qr(http, url)
    # Sealed (the register's issuance time proves it) before the revocation: still VALID.
    assert report["verdict"] == "VALID"
    assert report["signer"]["certificate"]["status"] == "revoked"
    assert "after the seal's proven time" in _status_check(report)


def test_a_seal_revoked_elsewhere_is_seen_after_the_window(
    http: TestClient,
    agency: dict[str, str],
    instance: Instance,
    elsewhere: Database,
    clock: Clock,
) -> None:
    licence = issue(http, agency)
    url = licence["links"]["verify"]
    before = verify_qr(http, url)
    assert before["signer"]["certificate"]["status"] == "good"
    with elsewhere.transaction() as session:
        revoke_seal(pki_for(instance, session), "MOT", RevocationReason.KEY_COMPROMISE, utcnow())
    clock.now += STATUS_TTL / 2
    stale = verify_qr(http, url)
    assert stale["signer"]["certificate"]["status"] == "good"
    assert _status_check(stale) == _status_check(before)  # "as of" the time it was read
    clock.now += STATUS_TTL / 2 + 0.001
    assert verify_qr(http, url)["signer"]["certificate"]["status"] == "revoked"


def test_memory_alone_answers_only_what_it_holds(
    http: TestClient, agency: dict[str, str], instance: Instance, clock: Clock
) -> None:
    licence = issue(http, agency)
    url = licence["links"]["verify"]
    cache, issuer = instance.verification_cache, instance.settings.issuer
    cache.clear()
    # A cold cache cannot answer without the database, not even for garbage.
    assert verify_qr_cached(issuer, cache, url, utcnow()) is None
    assert verify_qr_cached(issuer, cache, "NOT A QR", utcnow()) is None
    online = verify_qr_online(instance.database, issuer, cache, url)
    assert online.verdict.value == "VALID"
    # Warm, garbage needs nothing more...
    malformed = verify_qr_cached(issuer, cache, "NOT A QR", utcnow())
    assert malformed is not None
    assert (malformed.verdict.value, malformed.subindication) == ("INVALID", "FORMAT_FAILURE")
    # ...and the licence just verified is answered from memory alone.
    warm = verify_qr_cached(issuer, cache, payload_of(url), utcnow())
    assert warm is not None and warm.as_dict()["checks"] == online.as_dict()["checks"]
    # A path not validated yet is never built from memory alone (an event loop runs it).
    state = cache.pki(_kept)
    state.paths._cache.clear()
    assert verify_qr_cached(issuer, cache, url, utcnow()) is None
    assert verify_qr_online(instance.database, issuer, cache, url).verdict.value == "VALID"
    assert verify_qr_cached(issuer, cache, url, utcnow()) is not None
    clock.now += STATUS_TTL + 0.001
    assert verify_qr_cached(issuer, cache, url, utcnow()) is None
