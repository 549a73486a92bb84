"""OpenID Connect for people over HTTP: the code flow end to end, and every rule
answering with its exact error code."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text

from authority.app import create_app
from authority.audit.models import AuditEntry
from authority.config import Settings, load_settings
from authority.db.base import utcnow
from authority.db.migrate import upgrade
from authority.db.session import Database
from authority.identity.accounts import create_business, create_citizen
from authority.identity.passwords import PasswordHasher
from authority.instance import Instance
from authority.oidc.clients import register_client
from authority.pki.file_keystore import FileKeyStore
from tests.conftest import TEST_PASSPHRASE

ISSUER = "http://127.0.0.1:8000"
CITIZEN = "11010519491231002X"
PASSWORD = "correct horse battery"
USCC = "91350100M000100Y43"
REDIRECT = "https://portal.example.gov/cb"
OTHER_REDIRECT = "https://other.example.org/cb"
_HASHER = PasswordHasher()


@dataclass
class Portal:
    client_id: str
    secret: str | None
    redirect_uri: str

    @property
    def basic(self) -> tuple[str, str]:
        return (self.client_id, self.secret or "")


@pytest.fixture
def http(settings: Settings, instance: Instance) -> TestClient:
    return browser(settings, instance)


def browser(settings: Settings, instance: Instance) -> TestClient:
    """The app over HTTP, keeping cookies like a browser, not following redirects."""
    return TestClient(create_app(settings, instance), base_url=ISSUER, follow_redirects=False)


@pytest.fixture
def citizen(database: Database) -> None:
    seed_citizen(database)


def seed_citizen(database: Database) -> None:
    """The citizen (password alone) and the business they represent."""
    with database.transaction() as session:
        create_citizen(
            session,
            _HASHER,
            id_number=CITIZEN,
            name="张三",
            password=PASSWORD,
            email="zhang@example.cn",
            password_only=True,
            now=utcnow(),
        )
        create_business(
            session, uscc=USCC, name="演示科技有限公司", representative=CITIZEN, now=utcnow()
        )


def _portal(instance: Instance, database: Database, uri: str = REDIRECT, **options: Any) -> Portal:
    with database.transaction() as session:
        client = register_client(
            session,
            instance.client_secret_key,
            name=options.pop("name", "Portal"),
            redirect_uris=[uri],
            scopes=["openid", "profile", "email", "business"],
            post_logout_redirect_uris=[uri.rsplit("/", 1)[0] + "/bye"],
            now=utcnow(),
            **options,
        )
    return Portal(client.record.client_id, client.secret, uri)


@pytest.fixture
def portal(instance: Instance, database: Database, citizen: None) -> Portal:
    return _portal(instance, database)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(http: TestClient, portal: Portal, challenge: str, **params: str) -> Any:
    query = {
        "response_type": "code",
        "client_id": portal.client_id,
        "redirect_uri": portal.redirect_uri,
        "scope": "openid profile email",
        "state": "s-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **params,
    }
    return http.get("/oauth/authorize", params={k: v for k, v in query.items() if v != ""})


def follow(
    http: TestClient, response: Any, *, password: str = PASSWORD, consent: str = "allow"
) -> Any:
    """Drive the pages (login, business choice, consent) until the redirect leaves Authority."""
    for _ in range(6):
        location = response.headers.get("location", "")
        if response.status_code not in (302, 303) or not location.startswith("/"):
            return response
        page = http.get(location)
        assert page.status_code == 200, page.text
        csrf = _csrf(page.text)
        request_id = _query(location)["request"]
        form = {"csrf": csrf, "request": request_id}
        if location.startswith("/login"):
            response = http.post(
                "/login", data={**form, "id_number": CITIZEN, "password": password}
            )
        elif location.startswith("/authorize/business"):
            response = http.post("/authorize/business", data={**form, "uscc": USCC})
        else:
            response = http.post("/authorize/consent", data={**form, "decision": consent})
    raise AssertionError("the flow did not end")


def login_code(http: TestClient, portal: Portal, **params: str) -> tuple[str, str]:
    verifier, challenge = pkce()
    done = follow(http, authorize(http, portal, challenge, **params))
    assert done.status_code in (302, 303), done.text
    query = _query(done.headers["location"])
    assert done.headers["location"].startswith(portal.redirect_uri + "?")
    assert query["state"] == "s-123"
    assert query["iss"] == ISSUER
    return query["code"], verifier


def redeem(
    http: TestClient,
    portal: Portal,
    code: str,
    verifier: str,
    headers: dict[str, str] | None = None,
    **extra: str,
) -> Any:
    return http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": portal.redirect_uri,
            "code_verifier": verifier,
            **extra,
        },
        auth=portal.basic,
        headers=headers or {},
    )


def _jwks_key(http: TestClient, token: str) -> Any:
    kid = jwt.get_unverified_header(token)["kid"]
    keys = http.get("/oauth/jwks.json").json()["keys"]
    return jwt.PyJWK(next(k for k in keys if k["kid"] == kid)).key


def _token_error(response: Any, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    return str(body.get("error_description", ""))


def test_code_flow_with_pkce_id_token_and_userinfo(http: TestClient, portal: Portal) -> None:
    code, verifier = login_code(http, portal)
    response = redeem(http, portal, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "openid profile email"
    claims = jwt.decode(
        tokens["id_token"],
        _jwks_key(http, tokens["id_token"]),
        algorithms=["ES256"],
        audience=portal.client_id,
        issuer=ISSUER,
    )
    assert claims["nonce"] == "n-456"
    assert claims["acr"] == "http://eidas.europa.eu/LoA/low"
    assert claims["amr"] == ["pwd"]
    assert isinstance(claims["auth_time"], int) and claims["sid"]
    assert len(claims["sub"]) == 64 and CITIZEN not in tokens["id_token"]
    info = http.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 200, info.text
    assert info.json() == {
        "sub": claims["sub"],
        "name": "张三",
        "email": "zhang@example.cn",
        "email_verified": False,
    }
    # Consent is remembered: the next login of this portal skips the page.
    verifier, challenge = pkce()
    again = authorize(http, portal, challenge)
    assert again.status_code == 302
    assert again.headers["location"].startswith(REDIRECT + "?code=")


def test_each_login_request_reads_what_it_needs_once(
    http: TestClient, portal: Portal, database: Database
) -> None:
    """The pending authorization request, the throttle counters and the account are each
    read once a request, whatever the number of checks that look at them."""
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    def reads(*tables: str) -> int:
        """The SELECTs reading any of ``tables`` (named after FROM or JOIN)."""
        named = re.compile(rf" (FROM|JOIN) ({'|'.join(tables)})\b")
        return sum(1 for s in statements if s.startswith("SELECT") and named.search(s))

    event.listen(database.bind, "before_cursor_execute", note)
    try:
        verifier, challenge = pkce()
        started = authorize(http, portal, challenge)
        assert started.status_code == 302, started.text
        # Stored, then continued from memory: no read back.
        assert reads("authorization_requests") == 0
        assert sum(s.startswith("INSERT INTO authorization_requests") for s in statements) == 1
        statements.clear()
        location = started.headers["location"]
        page = http.get(location)
        assert page.status_code == 200
        assert reads("authorization_requests") == 1
        statements.clear()
        form = {"csrf": _csrf(page.text), "request": _query(location)["request"]}
        answer = http.post("/login", data={**form, "id_number": CITIZEN, "password": PASSWORD})
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].startswith("/authorize/consent?")
        assert reads("authorization_requests") == 1
        assert reads("login_throttles") == 1  # account and address keys together
        assert reads("citizens") == 1
        done = follow(http, answer)
        code = _query(done.headers["location"])["code"]
        # Code redemption, userinfo, refresh: the person (account and session) in one read.
        statements.clear()
        tokens = redeem(http, portal, code, verifier).json()
        assert reads("authorization_codes") == 1
        assert reads("citizens", "login_sessions") == 1
        statements.clear()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert http.get("/oauth/userinfo", headers=bearer).status_code == 200
        assert reads("revoked_tokens") == 1
        assert reads("citizens", "login_sessions") == 1
        statements.clear()
        refreshed = http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=portal.basic,
        )
        assert refreshed.status_code == 200, refreshed.text
        assert reads("refresh_tokens") == 1
        assert reads("citizens", "login_sessions") == 1
    finally:
        event.remove(database.bind, "before_cursor_execute", note)


def test_pairwise_subjects_differ_between_sectors(
    http: TestClient, portal: Portal, instance: Instance, database: Database
) -> None:
    other = _portal(instance, database, OTHER_REDIRECT, name="Other")
    subs = []
    for client in (portal, other):
        code, verifier = login_code(http, client)
        id_token = redeem(http, client, code, verifier).json()["id_token"]
        subs.append(jwt.decode(id_token, options={"verify_signature": False})["sub"])
    assert subs[0] != subs[1]


def test_business_choice_goes_into_tokens_and_userinfo(http: TestClient, portal: Portal) -> None:
    code, verifier = login_code(http, portal, scope="openid business")
    tokens = redeem(http, portal, code, verifier).json()
    business = {"uscc": USCC, "name": "演示科技有限公司", "role": "legal_representative"}
    assert (
        jwt.decode(tokens["id_token"], options={"verify_signature": False})["business"] == business
    )
    info = http.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.json()["business"] == business


def test_redirect_uri_mismatch_is_never_redirected_to(http: TestClient, portal: Portal) -> None:
    _, challenge = pkce()
    response = authorize(http, portal, challenge, redirect_uri=REDIRECT + "/evil")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "<code>invalid_request</code>" in response.text
    missing = authorize(http, portal, challenge, redirect_uri="")
    assert missing.status_code == 400 and "<code>invalid_request</code>" in missing.text
    unknown = http.get(
        "/oauth/authorize",
        params={"response_type": "code", "client_id": "nobody", "redirect_uri": REDIRECT},
    )
    assert unknown.status_code == 400 and "<code>invalid_client</code>" in unknown.text


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"code_challenge": "", "code_challenge_method": ""}, "code_challenge is required"),
        ({"code_challenge_method": "plain"}, "plain is not accepted"),
        ({"code_challenge_method": ""}, "must be S256"),
    ],
)
def test_pkce_s256_is_required(
    http: TestClient, portal: Portal, params: dict[str, str], description: str
) -> None:
    _, challenge = pkce()
    response = authorize(http, portal, challenge, **params)
    assert response.status_code == 302
    query = _query(response.headers["location"])
    assert query["error"] == "invalid_request"
    assert description in query["error_description"]
    assert query["state"] == "s-123" and query["iss"] == ISSUER


def test_wrong_verifier_and_wrong_redirect_at_the_token_endpoint(
    http: TestClient, portal: Portal
) -> None:
    code, verifier = login_code(http, portal)
    assert "Code challenge failed" in _token_error(
        redeem(http, portal, code, pkce()[0]), 400, "invalid_grant"
    )
    code, verifier = login_code(http, portal)
    _token_error(
        redeem(http, portal, code, verifier, redirect_uri=REDIRECT + "x"), 400, "invalid_grant"
    )
    code, _ = login_code(http, portal)
    assert "code_verifier is required" in _token_error(
        http.post(
            "/oauth/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
            auth=portal.basic,
        ),
        400,
        "invalid_request",
    )


def test_code_reuse_revokes_what_it_produced(http: TestClient, portal: Portal) -> None:
    code, verifier = login_code(http, portal)
    first = redeem(http, portal, code, verifier).json()
    _token_error(redeem(http, portal, code, verifier), 400, "invalid_grant")
    introspected = http.post(
        "/oauth/introspect", data={"token": first["access_token"]}, auth=portal.basic
    ).json()
    assert introspected == {"active": False}
    _token_error(
        http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=portal.basic,
        ),
        400,
        "invalid_grant",
    )


def test_refresh_rotates_and_reuse_revokes_the_family(http: TestClient, portal: Portal) -> None:
    code, verifier = login_code(http, portal)
    first = redeem(http, portal, code, verifier).json()

    def refresh(token: str) -> Any:
        return http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=portal.basic,
        )

    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert "id_token" in rotated
    _token_error(refresh(first["refresh_token"]), 400, "invalid_grant")  # reuse
    _token_error(refresh(rotated["refresh_token"]), 400, "invalid_grant")  # family revoked


def test_bad_client_authentication(http: TestClient, portal: Portal) -> None:
    code, verifier = login_code(http, portal)
    response = http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=(portal.client_id, "wrong secret"),
    )
    _token_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")
    # The code was not spent by the failed attempt.
    assert redeem(http, portal, code, verifier).status_code == 200


def test_prompt_none(http: TestClient, portal: Portal) -> None:
    _, challenge = pkce()
    response = authorize(http, portal, challenge, prompt="none")
    assert response.status_code == 302
    query = _query(response.headers["location"])
    assert query["error"] == "login_required"
    assert query["state"] == "s-123" and query["iss"] == ISSUER
    login_code(http, portal, scope="openid profile")  # logs in, consents to profile only
    wider = authorize(http, portal, challenge, prompt="none", scope="openid profile email")
    assert _query(wider.headers["location"])["error"] == "consent_required"
    business = authorize(http, portal, challenge, prompt="none", scope="openid business")
    assert _query(business.headers["location"])["error"] == "interaction_required"
    ok = authorize(http, portal, challenge, prompt="none", scope="openid profile")
    assert "code" in _query(ok.headers["location"])
    bad = authorize(http, portal, challenge, prompt="none login")
    assert _query(bad.headers["location"])["error"] == "invalid_request"


def test_prompt_login_and_max_age_ask_for_the_password_again(
    http: TestClient, portal: Portal
) -> None:
    login_code(http, portal)
    _, challenge = pkce()
    for params in ({"prompt": "login"}, {"max_age": "0"}):
        response = authorize(http, portal, challenge, **params)
        assert response.headers["location"].startswith("/login?request=")


def test_denied_consent(http: TestClient, portal: Portal) -> None:
    _, challenge = pkce()
    done = follow(http, authorize(http, portal, challenge), consent="deny")
    query = _query(done.headers["location"])
    assert query["error"] == "access_denied" and query["iss"] == ISSUER


def test_wrong_password_is_shown_on_the_page(http: TestClient, portal: Portal) -> None:
    _, challenge = pkce()
    response = follow(http, authorize(http, portal, challenge), password="wrong password")
    assert response.status_code == 401
    assert "the identity number or the password is wrong" in response.text
    assert '<html lang="zh-CN">' in response.text
    english = http.get("/login?request=x", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.text
    assert 'autocomplete="current-password"' in english.text
    assert english.headers["x-frame-options"] == "DENY"
    forged = http.post(
        "/login",
        data={"csrf": "forged", "request": "x", "id_number": CITIZEN, "password": PASSWORD},
    )
    assert forged.status_code == 403


def test_pushed_authorization_requests(
    http: TestClient, portal: Portal, instance: Instance, database: Database
) -> None:
    strict = _portal(instance, database, name="Strict", require_par=True)
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": strict.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "s-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    direct = http.get("/oauth/authorize", params=params)
    assert direct.status_code == 400 and "pushed authorization requests" in direct.text
    pushed = http.post("/oauth/par", data=params, auth=strict.basic)
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert body["expires_in"] == 90
    start = http.get(
        "/oauth/authorize",
        params={"client_id": strict.client_id, "request_uri": body["request_uri"]},
    )
    done = follow(http, start)
    query = _query(done.headers["location"])
    assert redeem(http, strict, query["code"], verifier).status_code == 200
    # A request_uri is used once.
    replay = http.get(
        "/oauth/authorize",
        params={"client_id": strict.client_id, "request_uri": body["request_uri"]},
    )
    assert replay.status_code == 400
    bad = http.post(
        "/oauth/par", data={**params, "code_challenge_method": "plain"}, auth=strict.basic
    )
    _token_error(bad, 400, "invalid_request")
    _token_error(
        http.post("/oauth/par", data=params, auth=(strict.client_id, "x")), 401, "invalid_client"
    )


def test_logout_ends_the_session_and_its_tokens(http: TestClient, portal: Portal) -> None:
    code, verifier = login_code(http, portal)
    tokens = redeem(http, portal, code, verifier).json()
    response = http.get(
        "/oauth/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://portal.example.gov/bye",
            "state": "bye-1",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://portal.example.gov/bye?state=bye-1"
    info = http.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 401
    refreshed = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=portal.basic,
    )
    _token_error(refreshed, 400, "invalid_grant")
    _, challenge = pkce()
    assert authorize(http, portal, challenge).headers["location"].startswith("/login?")
    unregistered = http.get(
        "/oauth/logout",
        params={"client_id": portal.client_id, "post_logout_redirect_uri": "https://evil.example/"},
    )
    assert unregistered.status_code == 400


def test_second_factor_and_step_up(http: TestClient, portal: Portal, database: Database) -> None:
    from authority.identity import totp
    from authority.identity.models import Citizen

    with database.transaction() as session:
        citizen = session.query(Citizen).filter_by(id_number=CITIZEN).one()
        citizen.totp_secret = secret = totp.new_secret()
    # Level low is enough for this request: the password alone completes it.
    code, verifier = login_code(http, portal)
    low = redeem(http, portal, code, verifier).json()
    assert jwt.decode(low["id_token"], options={"verify_signature": False})["acr"].endswith("low")
    # Asking for substantial forces a new login with the second factor.
    verifier, challenge = pkce()
    response = authorize(
        http, portal, challenge, acr_values="http://eidas.europa.eu/LoA/substantial"
    )
    location = response.headers["location"]
    assert location.startswith("/login?")
    request_id = _query(location)["request"]
    csrf = _csrf(http.get(location).text)
    otp_page = http.post(
        "/login",
        data={"csrf": csrf, "request": request_id, "id_number": CITIZEN, "password": PASSWORD},
    )
    assert otp_page.status_code == 200
    assert 'autocomplete="one-time-code"' in otp_page.text
    wrong = http.post("/login/otp", data={"csrf": csrf, "request": request_id, "code": "12345x"})
    assert wrong.status_code == 401
    assert "the code is wrong or was already used" in wrong.text
    done = http.post(
        "/login/otp",
        data={"csrf": csrf, "request": request_id, "code": totp.code_at(secret, utcnow())},
    )
    assert done.status_code == 303
    code = _query(done.headers["location"])["code"]
    claims = jwt.decode(
        redeem(http, portal, code, verifier).json()["id_token"],
        options={"verify_signature": False},
    )
    assert claims["acr"] == "http://eidas.europa.eu/LoA/substantial"
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_throttled_login_page(http: TestClient, portal: Portal) -> None:
    _, challenge = pkce()
    location = authorize(http, portal, challenge).headers["location"]
    request_id = _query(location)["request"]
    csrf = _csrf(http.get(location).text)
    form = {"csrf": csrf, "request": request_id, "id_number": CITIZEN, "password": "wrong one"}
    statuses = [http.post("/login", data=form).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    blocked = http.post("/login", data={**form, "password": PASSWORD})
    assert blocked.status_code == 429
    # The wait is 2 s from the fourth failure; a slow machine may already be past 1 s.
    assert blocked.headers["retry-after"] in ("1", "2")
    assert re.search(r"too many failed attempts; wait [12] seconds", blocked.text)


def test_the_person_withdraws_a_consent(http: TestClient, portal: Portal) -> None:
    login_code(http, portal)
    listing = http.get("/account/consents", headers={"Accept-Language": "en"})
    assert listing.status_code == 200
    assert "Portal" in listing.text and "Your e-mail address" in listing.text
    withdrawn = http.post(
        "/account/consents", data={"csrf": _csrf(listing.text), "client_id": portal.client_id}
    )
    assert withdrawn.status_code == 303
    _, challenge = pkce()
    again = authorize(http, portal, challenge, prompt="none")
    assert _query(again.headers["location"])["error"] == "consent_required"


def test_revoking_a_refresh_token_revokes_its_family(http: TestClient, portal: Portal) -> None:
    code, verifier = login_code(http, portal)
    tokens = redeem(http, portal, code, verifier).json()
    rotated = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=portal.basic,
    ).json()
    revoked = http.post(
        "/oauth/revoke",
        data={"token": rotated["refresh_token"], "token_type_hint": "refresh_token"},
        auth=portal.basic,
    )
    assert revoked.status_code == 200
    _token_error(
        http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]},
            auth=portal.basic,
        ),
        400,
        "invalid_grant",
    )


def test_a_narrowed_refresh_keeps_the_original_grant(http: TestClient, portal: Portal) -> None:
    code, verifier = login_code(http, portal)
    tokens = redeem(http, portal, code, verifier).json()

    def refresh(token: str, **extra: str) -> Any:
        return http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": token, **extra},
            auth=portal.basic,
        )

    narrowed = refresh(tokens["refresh_token"], scope="openid")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "openid"
    wide = refresh(narrowed.json()["refresh_token"])
    assert wide.json()["scope"] == "openid profile email"  # RFC 6749 §6
    _token_error(refresh(wide.json()["refresh_token"], scope="openid phone"), 400, "invalid_scope")


def _audit_events(database: Database) -> list[tuple[str, str, str, dict[str, Any]]]:
    with database.session() as session:
        return [
            (e.event, e.actor, e.subject, e.details)
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]


def test_logins_and_consents_are_in_the_audit_trail(
    http: TestClient, portal: Portal, database: Database
) -> None:
    _, challenge = pkce()
    follow(http, authorize(http, portal, challenge), password="wrong password")
    login_code(http, portal)
    listing = http.get("/account/consents")
    http.post(
        "/account/consents", data={"csrf": _csrf(listing.text), "client_id": portal.client_id}
    )
    events = [e for e in _audit_events(database) if e[0].split(".")[0] in ("login", "consent")]
    names = [e[0] for e in events]
    assert names == ["login.failed", "login.succeeded", "consent.given", "consent.withdrawn"]
    failed, succeeded, given, withdrawn = events
    assert failed[2] == succeeded[2] == f"citizen:{given[1].split(':')[1]}"
    assert failed[3] == {"factor": "password"} and succeeded[3] == {"amr": ["pwd"]}
    assert given[2] == withdrawn[2] == f"client:{portal.client_id}"
    assert "openid" in given[3]["scopes"]
    assert CITIZEN not in repr(events)  # the identity number never enters the trail


class _WriterProbe(PasswordHasher):
    """A real hasher that, while it verifies, tries a write unit of work in another
    thread: it finishes only if the login holds no write lock during argon2."""

    def __init__(self, database: Database) -> None:
        super().__init__()
        self.database = database
        self.writer_finished: list[bool] = []

    def verify(self, stored: str | None, password: str) -> bool:
        def write() -> None:
            with self.database.transaction() as session:  # SQLite: BEGIN IMMEDIATE
                session.execute(text("SELECT 1"))

        other = threading.Thread(target=write, daemon=True)
        other.start()
        other.join(timeout=5)
        self.writer_finished.append(not other.is_alive())
        return super().verify(stored, password)


def test_password_is_verified_outside_the_write_transaction(
    tmp_path: Path, keys_dir: Path, keystore: FileKeyStore
) -> None:
    """argon2's ~20 ms must not hold SQLite's single write lock: other writers (tokens,
    authorizations, other logins) go on meanwhile."""
    settings = load_settings(
        {
            "AUTHORITY_DATABASE_URL": f"sqlite:///{tmp_path / 'authority.db'}",
            "AUTHORITY_KEYS_DIR": str(keys_dir),
            "AUTHORITY_VAR_DIR": str(tmp_path / "var"),
            "AUTHORITY_KEYSTORE_PASSPHRASE": TEST_PASSPHRASE,
        }
    )
    database = Database.from_url(settings.database_url)
    try:
        upgrade(database)
        instance = Instance(settings, database, keystore)
        seed_citizen(database)
        portal = _portal(instance, database)
        probe = _WriterProbe(database)
        instance.authenticator.hasher = probe
        with browser(settings, instance) as http:
            code, _verifier = login_code(http, portal)
        assert code
        assert probe.writer_finished == [True]
    finally:
        database.dispose()


def test_login_form_posted_either_way_is_validated_alike(http: TestClient, portal: Portal) -> None:
    """POST /login URL-encoded (a lean route, authority/web/lean.py) and multipart (the
    FastAPI route) answer a missing or empty field with the same problem."""
    _, challenge = pkce()
    location = authorize(http, portal, challenge).headers["location"]
    csrf = _csrf(http.get(location).text)
    fields = {"csrf": csrf, "request": _query(location)["request"], "id_number": CITIZEN}
    encoded = http.post("/login", data={**fields, "password": ""})
    multipart = http.post(
        "/login", data={**fields, "password": ""}, files={"unused": ("a.txt", b"x")}
    )
    assert encoded.status_code == multipart.status_code == 422
    bodies = [dict(r.json(), request_id=None) for r in (encoded, multipart)]
    assert bodies[0] == bodies[1]
    assert bodies[0]["errors"] == [{"field": "body.password", "message": "Field required"}]
    neither = [
        http.post("/login", data={"csrf": csrf}, files=files)
        for files in (None, {"unused": ("a.txt", b"x")})
    ]
    first, second = (dict(r.json(), request_id=None) for r in neither)
    assert first == second
    assert [e["field"] for e in first["errors"]] == ["body.id_number", "body.password"]
    done = http.post("/login", data={**fields, "password": PASSWORD})
    assert done.status_code == 303, done.text
