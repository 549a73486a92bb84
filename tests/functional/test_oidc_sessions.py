"""Pending authorization requests bound to their browser, and a fresh provider session
at every login (login CSRF and session fixation), over HTTP."""

from __future__ import annotations

import re
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from authority.config import Settings
from authority.db.base import utcnow
from authority.db.session import Database
from authority.identity.accounts import create_citizen
from authority.instance import Instance
from authority.web.people import BROWSER_COOKIE, SESSION_COOKIE
from tests.functional.test_oidc import (
    _HASHER,
    CITIZEN,
    PASSWORD,
    USCC,
    Portal,
    _csrf,
    _portal,
    _query,
    _token_error,
    authorize,
    browser,
    follow,
    login_code,
    pkce,
    redeem,
    seed_citizen,
)

OTHER_BROWSER_EN = "This login was started in another browser"
OTHER_BROWSER_ZH = "此登录请求是在另一个浏览器中发起的"


@pytest.fixture
def http(settings: Settings, instance: Instance) -> TestClient:
    return browser(settings, instance)


@pytest.fixture
def other(settings: Settings, instance: Instance) -> TestClient:
    """A second browser (its own cookies)."""
    return browser(settings, instance)


@pytest.fixture
def portal(instance: Instance, database: Database) -> Portal:
    seed_citizen(database)
    return _portal(instance, database)


def _started(http: TestClient, portal: Portal, **params: str) -> str:
    """Start an authorization request; the id the login page carries."""
    _verifier, challenge = pkce()
    response = authorize(http, portal, challenge, **params)
    assert response.status_code == 302, response.text
    assert response.headers["location"].startswith("/login?"), response.headers["location"]
    return _query(response.headers["location"])["request"]


def _refused_here(response: Any) -> None:
    """The bilingual error page for a request of another browser, never a redirect."""
    assert response.status_code == 403, response.text
    assert "location" not in response.headers
    assert "<code>invalid_request</code>" in response.text
    assert OTHER_BROWSER_ZH in response.text or OTHER_BROWSER_EN in response.text


def _form(http: TestClient, path: str = "/login") -> str:
    """A CSRF token of this browser's own (from a page it may see)."""
    return _csrf(http.get(path).text)


def test_the_binding_cookie(http: TestClient, portal: Portal) -> None:
    _verifier, challenge = pkce()
    response = authorize(http, portal, challenge)
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(BROWSER_COOKIE + "=")
    )
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    assert not any(a.startswith(("max-age", "expires")) for a in attributes)
    assert "secure" not in attributes  # the test issuer is http://127.0.0.1
    value = http.cookies[BROWSER_COOKIE]
    assert len(value) == 43
    # The browser keeps its value: a second request does not replace it.
    authorize(http, portal, challenge)
    assert http.cookies[BROWSER_COOKIE] == value


def test_another_browser_cannot_go_on_with_a_request(
    http: TestClient, other: TestClient, portal: Portal
) -> None:
    request_id = _started(http, portal)
    # The login page, the password, the second factor: all refused in the other browser.
    _refused_here(other.get("/login", params={"request": request_id}))
    csrf = _form(other)
    form = {"csrf": csrf, "request": request_id}
    posted = other.post("/login", data={**form, "id_number": CITIZEN, "password": PASSWORD})
    _refused_here(posted)
    assert SESSION_COOKIE not in other.cookies  # the password was not even checked
    _refused_here(other.post("/login/otp", data={**form, "code": "123456"}))
    # A logged-in victim lured to the attacker's request's business or consent page.
    login_code(other, portal)
    for path in ("/authorize/business", "/authorize/consent"):
        _refused_here(other.get(path, params={"request": request_id}))
    _refused_here(other.post("/authorize/business", data={**form, "uscc": USCC}))
    _refused_here(other.post("/authorize/consent", data={**form, "decision": "allow"}))
    # The browser that started it still can.
    csrf = _form(http, f"/login?request={request_id}")
    form = {"csrf": csrf, "request": request_id}
    done = follow(
        http, http.post("/login", data={**form, "id_number": CITIZEN, "password": PASSWORD})
    )
    assert done.status_code == 303, done.text
    assert "code" in _query(done.headers["location"])


def test_the_page_speaks_both_languages(
    http: TestClient, other: TestClient, portal: Portal
) -> None:
    request_id = _started(http, portal)
    english = other.get("/login", params={"request": request_id}, headers={"Accept-Language": "en"})
    _refused_here(english)
    assert OTHER_BROWSER_EN in english.text
    chinese = other.get(
        "/login", params={"request": request_id}, headers={"Accept-Language": "zh-CN"}
    )
    _refused_here(chinese)
    assert OTHER_BROWSER_ZH in chinese.text


def test_a_browser_that_lost_its_cookie_is_refused(http: TestClient, portal: Portal) -> None:
    request_id = _started(http, portal)
    http.cookies.delete(BROWSER_COOKIE)
    _refused_here(http.get("/login", params={"request": request_id}))
    http.cookies.set(BROWSER_COOKIE, "x" * 43, domain="127.0.0.1", path="/")
    _refused_here(http.get("/login", params={"request": request_id}))


def test_several_tabs_with_several_requests(http: TestClient, portal: Portal) -> None:
    first_verifier, first_challenge = pkce()
    second_verifier, second_challenge = pkce()
    first = authorize(http, portal, first_challenge, state="tab-1")
    second = authorize(http, portal, second_challenge, state="tab-2")
    assert first.headers["location"] != second.headers["location"]
    # The second tab logs in and consents; the first tab's login page, reloaded, goes on
    # with that session (no second login, which would end it).
    done_second = follow(http, second)
    done_first = http.get(first.headers["location"])
    for done, state, verifier in (
        (done_second, "tab-2", second_verifier),
        (done_first, "tab-1", first_verifier),
    ):
        assert done.status_code in (302, 303), done.text
        assert done.headers["location"].startswith(portal.redirect_uri + "?")
        query = _query(done.headers["location"])
        assert query["state"] == state
        assert redeem(http, portal, query["code"], verifier).status_code == 200


def test_a_pushed_request_is_bound_to_the_browser_that_uses_it(
    http: TestClient, other: TestClient, portal: Portal
) -> None:
    _verifier, challenge = pkce()
    pushed = http.post(
        "/oauth/par",
        data={
            "response_type": "code",
            "redirect_uri": portal.redirect_uri,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        auth=portal.basic,
    )
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    request_id = request_uri.rsplit(":", 1)[1]
    # Not yet used by any browser: no browser may go on with it through the pages.
    _refused_here(other.get("/login", params={"request": request_id}))
    used = http.get(
        "/oauth/authorize", params={"client_id": portal.client_id, "request_uri": request_uri}
    )
    assert used.headers["location"] == f"/login?request={request_id}"
    _refused_here(other.get("/login", params={"request": request_id}))
    done = follow(http, used)
    assert "code" in _query(done.headers["location"])


def _sid(http: TestClient, portal: Portal, code: str, verifier: str) -> tuple[str, dict[str, Any]]:
    tokens = redeem(http, portal, code, verifier).json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    return claims["sid"], tokens


def _logged_in(http: TestClient, portal: Portal) -> bool:
    """Whether the browser's session lets prompt=none through."""
    _verifier, challenge = pkce()
    answer = authorize(http, portal, challenge, prompt="none")
    return "code" in _query(answer.headers["location"])


def test_a_new_login_ends_the_older_session(http: TestClient, portal: Portal) -> None:
    code, verifier = login_code(http, portal)
    first_sid, first_tokens = _sid(http, portal, code, verifier)
    old_cookie = http.cookies[SESSION_COOKIE]
    # The same person logs in again in the same browser (prompt=login).
    code, verifier = login_code(http, portal, prompt="login")
    second_sid, _tokens = _sid(http, portal, code, verifier)
    new_cookie = http.cookies[SESSION_COOKIE]
    assert new_cookie != old_cookie
    assert second_sid != first_sid
    assert _logged_in(http, portal)
    # The old session ended server-side: its cookie opens nothing, its refresh token is revoked.
    http.cookies.set(SESSION_COOKIE, old_cookie, domain="127.0.0.1", path="/")
    assert not _logged_in(http, portal)
    refreshed = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first_tokens["refresh_token"]},
        auth=portal.basic,
    )
    _token_error(refreshed, 400, "invalid_grant")


def test_another_person_logging_in_ends_the_first_ones_session(
    http: TestClient, portal: Portal, instance: Instance, database: Database
) -> None:
    second = "110105198001010016"
    with database.transaction() as session:
        create_citizen(
            session,
            _HASHER,
            id_number=second,
            name="李四",
            password=PASSWORD,
            password_only=True,
            now=utcnow(),
        )
    code, verifier = login_code(http, portal)
    _sid(http, portal, code, verifier)
    old_cookie = http.cookies[SESSION_COOKIE]
    request_id = _started(http, portal, prompt="login")
    csrf = _form(http, f"/login?request={request_id}")
    answer = http.post(
        "/login",
        data={"csrf": csrf, "request": request_id, "id_number": second, "password": PASSWORD},
    )
    assert answer.status_code == 303, answer.text
    assert http.cookies[SESSION_COOKIE] != old_cookie
    http.cookies.set(SESSION_COOKIE, old_cookie, domain="127.0.0.1", path="/")
    assert not _logged_in(http, portal)


def test_a_new_login_sends_back_channel_logout_for_the_old_session(
    http: TestClient,
    instance: Instance,
    database: Database,
    receiver: tuple[str, list[str]],
) -> None:
    seed_citizen(database)
    uri, received = receiver
    listening = _portal(instance, database, name="Listening portal", backchannel_logout_uri=uri)
    code, verifier = login_code(http, listening)
    first_sid, _tokens = _sid(http, listening, code, verifier)
    assert received == []
    code, verifier = login_code(http, listening, prompt="login")
    assert len(received) == 1
    claims = jwt.decode(received[0], options={"verify_signature": False})
    assert claims["sid"] == first_sid
    assert re.fullmatch(r"[\w-]+", claims["jti"])


def test_a_posted_request_without_cookies_is_repeated_as_a_get(
    http: TestClient, portal: Portal, settings: Settings, instance: Instance
) -> None:
    first = _started(http, portal)
    value = http.cookies[BROWSER_COOKIE]
    verifier, challenge = pkce()
    form = {
        "response_type": "code",
        "client_id": portal.client_id,
        "redirect_uri": portal.redirect_uri,
        "scope": "openid",
        "state": "posted",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    # A form posted from the portal's site carries no SameSite=Lax cookie: as a client
    # without cookies sees it. The answer sets none and names the same request as a GET.
    posted = browser(settings, instance).post("/oauth/authorize", data=form)
    assert posted.status_code == 303, posted.text
    assert "set-cookie" not in posted.headers
    location = posted.headers["location"]
    assert location.startswith("/oauth/authorize?")
    assert _query(location) == form
    # The browser follows it with its cookies: its binding value is kept, so the
    # request pending in the other tab still belongs to it.
    second = http.get(location)
    assert http.cookies[BROWSER_COOKIE] == value
    done = follow(http, second)
    assert _query(done.headers["location"])["state"] == "posted"
    assert (
        redeem(http, portal, _query(done.headers["location"])["code"], verifier).status_code == 200
    )
    assert http.get("/login", params={"request": first}).status_code in (302, 303)
    # With its cookies, a posted request is served at once.
    again = http.post("/oauth/authorize", data={**form, "state": "posted-2"})
    assert again.status_code == 303
    assert again.headers["location"].startswith(portal.redirect_uri + "?")
