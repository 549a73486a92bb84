"""The account pages over HTTP: a person sees and downloads only their own licences
(and their businesses'), manages password and TOTP, and sees their data history."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from authority.account.models import DataRelease, VerificationDay
from authority.agencies.service import create_agency
from authority.bootstrap import pki_for
from authority.config import Settings
from authority.db.base import utcnow
from authority.db.session import Database
from authority.identity import totp
from authority.identity.accounts import create_citizen
from authority.identity.models import Citizen, Passkey
from authority.identity.passwords import PasswordHasher
from authority.instance import Instance
from authority.licences.models import Licence
from authority.licences.sealing import AgencySealer
from authority.licences.service import LicenceRequest, create_licence_type, issue_licences
from tests.functional.test_oidc import (
    CITIZEN,
    ISSUER,
    PASSWORD,
    USCC,
    _csrf,
    _portal,
    browser,
    login_code,
    redeem,
    seed_citizen,
)

OTHER = "110101199003070011"
SCHEMA = {
    "type": "object",
    "properties": {"vehicle": {"type": "string", "minLength": 1}},
    "required": ["vehicle"],
}


def _issue(instance: Instance, database: Database, kind: str, holder: str, name: str) -> str:
    with database.transaction() as session:
        pki = pki_for(instance, session)
        from authority.agencies.models import Agency

        agency = session.scalar(select(Agency).where(Agency.code == "MOT"))
        if agency is None:
            agency, _ = create_agency(pki, "MOT", "Ministry of Transport", utcnow())
            create_licence_type(
                session,
                agency,
                code="MOT-PERMIT",
                name_zh="道路运输许可证",
                name_en="Road transport permit",
                schema=SCHEMA,
                validity_days=365,
                now=utcnow(),
            )
        (licence,) = issue_licences(
            session,
            AgencySealer(pki, agency),
            agency,
            [LicenceRequest("MOT-PERMIT", kind, holder, name, {"vehicle": "货车"}, None, None)],
            issuer=ISSUER,
            actor="test",
            now=utcnow(),
        )
        return licence.id


@pytest.fixture
def people(instance: Instance, database: Database) -> dict[str, str]:
    seed_citizen(database)
    with database.transaction() as session:
        create_citizen(
            session,
            PasswordHasher(),
            id_number=OTHER,
            name="李四",
            password="another long password",
            password_only=True,
            now=utcnow(),
        )
    return {
        "own": _issue(instance, database, "citizen", CITIZEN, "张三"),
        "business": _issue(instance, database, "business", USCC, "演示科技有限公司"),
        "other": _issue(instance, database, "citizen", OTHER, "李四"),
    }


def _logged_in(settings: Settings, instance: Instance, id_number: str = CITIZEN) -> TestClient:
    http = browser(settings, instance)
    form = http.get("/login", headers={"Accept-Language": "en"})
    password = PASSWORD if id_number == CITIZEN else "another long password"
    done = http.post(
        "/login",
        data={
            "csrf": _csrf(form.text),
            "request": "",
            "id_number": id_number,
            "password": password,
        },
    )
    assert done.status_code == 303 and done.headers["location"] == "/account", done.text
    return http


def test_account_needs_a_login(settings: Settings, instance: Instance, people: Any) -> None:
    http = browser(settings, instance)
    for path in (
        "/account",
        "/account/history",
        "/account/security",
        f"/account/licences/{people['own']}/pdf",
    ):
        response = http.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/login", path


def test_person_sees_own_and_business_licences_only(
    settings: Settings, instance: Instance, people: dict[str, str]
) -> None:
    http = _logged_in(settings, instance)
    page = http.get("/account", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    numbers = re.findall(r"MOT-PERMIT-\d{4}-\d{6}", page.text)
    with Session(instance) as session:
        own = {session.get(Licence, people[k]).number for k in ("own", "business")}  # type: ignore[union-attr]
        other = session.get(Licence, people["other"]).number  # type: ignore[union-attr]
    assert set(numbers) == own and other not in page.text
    assert "Road transport permit" in page.text and "演示科技有限公司" in page.text
    chinese = http.get("/account", headers={"Accept-Language": "zh-CN"})
    assert "道路运输许可证" in chinese.text and "我的证照" in chinese.text


def test_downloads_are_served_to_the_holder_and_no_one_else(
    settings: Settings, instance: Instance, people: dict[str, str]
) -> None:
    http = _logged_in(settings, instance)
    pdf = http.get(f"/account/licences/{people['business']}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-disposition"].startswith("attachment;")
    qr = http.get(f"/account/licences/{people['own']}/qr.png")
    assert qr.status_code == 200 and qr.content.startswith(b"\x89PNG")
    for path in (
        f"/account/licences/{people['other']}/pdf",
        f"/account/licences/{people['other']}/qr.png",
    ):
        refused = http.get(path)
        assert refused.status_code == 404, path
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert http.get("/account/licences/not-a-licence/qr.png").status_code == 404
    # The other person gets their own, not the first person's.
    other = _logged_in(settings, instance, OTHER)
    assert other.get(f"/account/licences/{people['other']}/qr.png").status_code == 200
    assert other.get(f"/account/licences/{people['own']}/qr.png").status_code == 404
    assert other.get(f"/account/licences/{people['business']}/pdf").status_code == 404


class Session:
    """A read-only database session of the instance, for assertions."""

    def __init__(self, instance: Instance) -> None:
        self._context = instance.database.transaction(write=False)

    def __enter__(self) -> Any:
        return self._context.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)  # type: ignore[arg-type]


def test_history_shows_portals_and_verification_counts(
    settings: Settings, instance: Instance, database: Database, people: dict[str, str]
) -> None:
    portal = _portal(instance, database, name="Tax portal")
    http = _logged_in(settings, instance)
    code, verifier = login_code(http, portal, scope="openid profile email")
    assert redeem(http, portal, code, verifier).status_code == 200
    with database.transaction(write=False) as session:
        citizen = session.scalar(select(Citizen).where(Citizen.id_number == CITIZEN))
        release = session.scalar(select(DataRelease).where(DataRelease.citizen_id == citizen.id))  # type: ignore[union-attr]
        assert release is not None and release.scopes == ["openid", "profile", "email"]
        qr = session.get(Licence, people["own"]).qr_payload  # type: ignore[union-attr]
        number = session.get(Licence, people["own"]).number  # type: ignore[union-attr]
    app_client = http
    for _ in range(3):
        assert app_client.post("/api/v1/verify", json={"qr": qr}).json()["verdict"] == "VALID"
    tally = app_client.app.state.verification_tally  # type: ignore[attr-defined]
    assert tally.flush() == 1  # three verifications, one licence and day: one row
    with database.transaction(write=False) as session:
        days = list(session.scalars(select(VerificationDay)))
        assert [(d.licence_id, d.count) for d in days] == [(people["own"], 3)]
    app_client.post("/api/v1/verify", json={"qr": qr})
    assert tally.flush() == 1
    page = http.get("/account/history", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "Tax portal" in page.text and "Your e-mail address" in page.text
    assert "Verified online 4 time(s)" in page.text and number in page.text


def test_change_password_needs_the_current_one(
    settings: Settings, instance: Instance, people: Any
) -> None:
    http = _logged_in(settings, instance)
    csrf = _csrf(http.get("/account/security").text)
    wrong = http.post(
        "/account/password",
        data={"csrf": csrf, "current": "not my password", "new": "a brand new password"},
        headers={"Accept-Language": "en"},
    )
    assert wrong.status_code == 403 and 'id="current-error"' in wrong.text
    short = http.post("/account/password", data={"csrf": csrf, "current": PASSWORD, "new": "short"})
    assert short.status_code == 422 and 'id="new-error"' in short.text
    forged = http.post(
        "/account/password",
        data={"csrf": "x" * 43, "current": PASSWORD, "new": "a brand new password"},
    )
    assert forged.status_code == 403
    done = http.post(
        "/account/password",
        data={"csrf": csrf, "current": PASSWORD, "new": "a brand new password"},
    )
    assert done.status_code == 303
    fresh = browser(settings, instance)
    form = fresh.get("/login")
    refused = fresh.post(
        "/login",
        data={"csrf": _csrf(form.text), "id_number": CITIZEN, "password": PASSWORD},
    )
    assert refused.status_code == 401
    accepted = fresh.post(
        "/login",
        data={"csrf": _csrf(form.text), "id_number": CITIZEN, "password": "a brand new password"},
    )
    assert accepted.status_code == 303


def test_totp_is_added_with_a_code_and_removed_with_the_password(
    settings: Settings, instance: Instance, database: Database, people: Any
) -> None:
    http = _logged_in(settings, instance)
    page = http.get("/account/security").text
    secret = re.search(r'name="secret" value="([A-Z2-7]{32})"', page)
    assert secret is not None
    csrf = _csrf(page)
    wrong = http.post("/account/totp", data={"csrf": csrf, "secret": secret[1], "code": "000000"})
    assert wrong.status_code == 422 and 'id="code-error"' in wrong.text
    code = totp.code_at(secret[1], utcnow())
    if code == "000000":  # pragma: no cover - one chance in a million
        return
    added = http.post("/account/totp", data={"csrf": csrf, "secret": secret[1], "code": code})
    assert added.status_code == 303
    with database.transaction(write=False) as session:
        citizen = session.scalar(select(Citizen).where(Citizen.id_number == CITIZEN))
        assert citizen is not None and citizen.totp_secret == secret[1]
    refused = http.post("/account/totp/remove", data={"csrf": csrf, "password": "wrong password!"})
    assert refused.status_code == 403 and 'id="remove-error"' in refused.text
    removed = http.post("/account/totp/remove", data={"csrf": csrf, "password": PASSWORD})
    assert removed.status_code == 303
    with database.transaction(write=False) as session:
        citizen = session.scalar(select(Citizen).where(Citizen.id_number == CITIZEN))
        assert citizen is not None and citizen.totp_secret is None


def test_a_passkey_is_removed_by_its_owner_only(
    settings: Settings, instance: Instance, database: Database, people: Any
) -> None:
    with database.transaction() as session:
        owner = session.scalar(select(Citizen).where(Citizen.id_number == CITIZEN))
        assert owner is not None
        passkey = Passkey(citizen_id=owner.id, credential_id="cred-1", public_key=b"\xa5")
        session.add(passkey)
        session.flush()
        passkey_id = passkey.id
    other = _logged_in(settings, instance, OTHER)
    other_csrf = _csrf(other.get("/account/security").text)
    refused = other.post(f"/account/passkeys/{passkey_id}/remove", data={"csrf": other_csrf})
    assert refused.status_code == 404
    http = _logged_in(settings, instance)
    listing = http.get("/account/passkeys", headers={"Accept-Language": "en"})
    assert "Remove passkey 1" in listing.text
    removed = http.post(
        f"/account/passkeys/{passkey_id}/remove", data={"csrf": _csrf(listing.text)}
    )
    assert removed.status_code == 303
    with database.transaction(write=False) as session:
        assert session.get(Passkey, passkey_id) is None
