"""The agency console over HTTP: only staff get in; a form generated from the type's
JSON Schema issues a sealed licence, or shows each error next to its field; officers
suspend, reinstate and revoke with a reason; the seal certificate is shown."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from authority.agencies.service import create_agency
from authority.agencies.staff import grant_staff
from authority.bootstrap import pki_for
from authority.config import Settings
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.licences.models import Licence, LicenceEvent
from authority.licences.service import create_licence_type
from authority.seals.cades import verify_document_seal
from tests.functional.test_account_pages import OTHER, _logged_in
from tests.functional.test_account_pages import people as people
from tests.functional.test_oidc import CITIZEN, _csrf

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["A", "B", "C"], "title": "Category"},
        "vehicle": {"type": "string", "minLength": 1, "maxLength": 32, "title": "Vehicle"},
        "seats": {"type": "integer", "minimum": 1, "title": "Seats"},
        "plate": {"type": "string", "pattern": "^[A-Z0-9]{5,8}$", "title": "Plate"},
    },
    "required": ["category", "vehicle"],
    "additionalProperties": False,
}


@pytest.fixture
def staff(instance: Instance, database: Database, people: Any) -> None:
    with database.transaction() as session:
        agency, _ = create_agency(pki_for(instance, session), "DMV", "Vehicle Office", utcnow())
        create_licence_type(
            session,
            agency,
            code="DMV-CAR",
            name_zh="机动车登记证",
            name_en="Vehicle registration",
            schema=SCHEMA,
            validity_days=365,
            now=utcnow(),
        )
        grant_staff(session, agency_code="DMV", id_number=CITIZEN, role="officer", now=utcnow())


def _form(page: str) -> dict[str, str]:
    return {"csrf": _csrf(page), "agency": "DMV"}


def _issue_bike(http: Any, page: str) -> Any:
    return http.post(
        "/agency/issue/DMV-CAR",
        data={
            **_form(page),
            "holder_kind": "citizen",
            "holder_id": OTHER,
            "holder_name": "李四",
            "data.category": "A",
            "data.vehicle": "Bike",
        },
    )


def test_only_staff_open_the_console(settings: Settings, instance: Instance, staff: None) -> None:
    from tests.functional.test_oidc import browser

    assert browser(settings, instance).get("/agency").headers["location"] == "/login"
    outsider = _logged_in(settings, instance, OTHER)
    assert outsider.get("/agency").status_code == 403
    assert outsider.get("/agency/issue/DMV-CAR").status_code == 403
    clerk = _logged_in(settings, instance)
    page = clerk.get("/agency", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "Vehicle Office" in page.text
    assert "Rotated" not in page.text and ">Good<" in page.text  # the seal certificate


def test_issue_through_the_generated_form(
    settings: Settings, instance: Instance, database: Database, staff: None
) -> None:
    http = _logged_in(settings, instance)
    form_page = http.get("/agency/issue/DMV-CAR", headers={"Accept-Language": "en"})
    assert form_page.status_code == 200
    for name in ("data.category", "data.vehicle", "data.seats", "data.plate"):
        assert f'<label for="{name}">' in form_page.text, name
    assert '<select id="data.category"' in form_page.text
    assert 'id="data.seats" name="data.seats" type="number"' in form_page.text
    bad = http.post(
        "/agency/issue/DMV-CAR",
        data={
            **_form(form_page.text),
            "holder_kind": "citizen",
            "holder_id": "110105194912310021",  # wrong check digit
            "holder_name": "王五",
            "data.category": "Z",
            "data.seats": "many",
            "data.plate": "x",
        },
        headers={"Accept-Language": "en"},
    )
    assert bad.status_code == 422
    for field in ("data.category", "data.vehicle", "data.seats", "data.plate"):
        assert f'id="{field}-error"' in bad.text, field
    assert 'value="王五"' in bad.text  # what was typed is kept
    holder = http.post(
        "/agency/issue/DMV-CAR",
        data={
            **_form(form_page.text),
            "holder_kind": "citizen",
            "holder_id": "110105194912310021",
            "holder_name": "王五",
            "data.category": "B",
            "data.vehicle": "Car",
        },
    )
    assert holder.status_code == 422 and 'id="holder_id-error"' in holder.text
    done = http.post(
        "/agency/issue/DMV-CAR",
        data={
            **_form(form_page.text),
            "holder_kind": "citizen",
            "holder_id": OTHER,
            "holder_name": "李四",
            "data.category": "B",
            "data.vehicle": "Car",
            "data.seats": "5",
        },
    )
    assert done.status_code == 303, done.text
    licence_id = re.search(r"/agency/licences/([0-9a-f-]{36})", done.headers["location"])
    assert licence_id is not None
    with database.transaction(write=False) as session:
        licence = session.get(Licence, licence_id[1])
        assert licence is not None and licence.data == {
            "category": "B",
            "vehicle": "Car",
            "seats": 5,
        }
        assert licence.issued_by == f"staff:{CITIZEN}"
        verify_document_seal(licence.document, licence.seal)
    shown = http.get(done.headers["location"], headers={"Accept-Language": "en"})
    assert "The licence was issued and sealed." in shown.text
    found = http.get("/agency", params={"agency": "DMV", "q": "李四"})
    assert licence.number in found.text


def test_officer_suspends_reinstates_and_revokes_with_a_reason(
    settings: Settings, instance: Instance, database: Database, staff: None
) -> None:
    http = _logged_in(settings, instance)
    page = http.get("/agency/issue/DMV-CAR")
    done = _issue_bike(http, page.text)
    target = done.headers["location"].split("?")[0] + "/status"
    csrf = _csrf(http.get(done.headers["location"]).text)
    empty = http.post(
        target, data={"csrf": csrf, "agency": "DMV", "action": "suspend", "reason": " "}
    )
    assert empty.status_code == 422 and 'id="status-error"' in empty.text
    for action in ("suspend", "reinstate", "revoke"):
        moved = http.post(
            target,
            data={"csrf": csrf, "agency": "DMV", "action": action, "reason": f"{action} test"},
        )
        assert moved.status_code == 303, moved.text
    again = http.post(
        target, data={"csrf": csrf, "agency": "DMV", "action": "reinstate", "reason": "x"}
    )
    assert again.status_code == 409
    forged = http.post(
        target, data={"csrf": "f" * 43, "agency": "DMV", "action": "revoke", "reason": "x"}
    )
    assert forged.status_code == 403
    with database.transaction(write=False) as session:
        events = session.scalars(select(LicenceEvent.action).order_by(LicenceEvent.id)).all()
        assert events[-4:] == ["issued", "suspend", "reinstate", "revoke"]
    report = http.get(done.headers["location"], headers={"Accept-Language": "en"})
    assert ">Revoked<" in report.text and "revoke test" in report.text


def test_a_clerk_cannot_change_a_status(
    settings: Settings, instance: Instance, database: Database, staff: None
) -> None:
    with database.transaction() as session:
        grant_staff(session, agency_code="DMV", id_number=CITIZEN, role="clerk", now=utcnow())
    http = _logged_in(settings, instance)
    page = http.get("/agency/issue/DMV-CAR")
    done = _issue_bike(http, page.text)
    assert done.status_code == 303
    target = done.headers["location"].split("?")[0] + "/status"
    refused = http.post(
        target, data={"csrf": _csrf(page.text), "agency": "DMV", "action": "revoke", "reason": "no"}
    )
    assert refused.status_code == 403
