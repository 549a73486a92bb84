"""Licence events reach the audit trail with the change, and only when it commits."""

from __future__ import annotations

from fastapi.testclient import TestClient

from authority.audit.trail import entries
from authority.db.session import Database
from tests.functional.test_licences_http import _body, agency  # noqa: F401 - the fixture


def _trail(database: Database) -> list[tuple[str, str, str, dict[str, object]]]:
    with database.session() as session:
        return [
            (e.event, e.actor, e.subject, e.details)
            for e in entries(session)
            if e.event.startswith("licence.")
        ]


def test_issuance_and_lifecycle_are_recorded(
    client: TestClient,
    agency: dict[str, str],  # noqa: F811 - the imported fixture
    database: Database,
) -> None:
    issued = client.post("/api/v1/licences", json=_body(), headers=agency).json()
    batch = client.post(
        "/api/v1/licences/batch", json={"licences": [_body(), _body()]}, headers=agency
    ).json()["licences"]
    for action, reason in (("suspend", "inspection"), ("reinstate", "passed"), ("revoke", "fraud")):
        response = client.post(
            f"/api/v1/licences/{issued['id']}/{action}", json={"reason": reason}, headers=agency
        )
        assert response.status_code == 200, response.text
    trail = _trail(database)
    actor = trail[0][1]
    assert actor.startswith("client:")
    assert trail == [
        ("licence.issued", actor, issued["id"], {"number": issued["number"]}),
        *[("licence.issued", actor, lic["id"], {"number": lic["number"]}) for lic in batch],
        (
            "licence.suspended",
            actor,
            issued["id"],
            {"number": issued["number"], "reason": "inspection"},
        ),
        (
            "licence.reinstated",
            actor,
            issued["id"],
            {"number": issued["number"], "reason": "passed"},
        ),
        ("licence.revoked", actor, issued["id"], {"number": issued["number"], "reason": "fraud"}),
    ]


def test_refused_changes_leave_no_entry(
    client: TestClient,
    agency: dict[str, str],  # noqa: F811 - the imported fixture
    database: Database,
) -> None:
    bad = _body(data={"category": "Z", "vehicle": "x"})
    refused = client.post(
        "/api/v1/licences/batch", json={"licences": [_body(), bad]}, headers=agency
    )
    assert refused.status_code == 422
    issued = client.post("/api/v1/licences", json=_body(), headers=agency).json()
    again = client.post(
        f"/api/v1/licences/{issued['id']}/reinstate", json={"reason": "x"}, headers=agency
    )
    assert again.status_code == 409
    assert [event for event, *_ in _trail(database)] == ["licence.issued"]
