"""A real browser (Debian's Chromium, driven by Playwright) logs the demo citizen
into the demo portal: the pages work as people use them, by their labels, under
the production Content-Security-Policy; Authlib's client redeems the code."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from playwright import sync_api as playwright_api

from tests.live import LiveAuthority, serve_initialised

pytestmark = [pytest.mark.interop, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    yield from serve_initialised(request, tmp_path_factory, "file-sqlite")


def test_chromium_logs_in_through_the_pages(live: LiveAuthority) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required in CI (.ci/run installs chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    demo = live.cli_json("demo")
    portal, citizen = demo["portal"], demo["citizen"]
    redirect_uri = portal["redirect_uris"][0]
    meta = httpx.get(f"{live.url}/.well-known/openid-configuration", timeout=10).json()
    client = OAuth2Client(
        portal["client_id"],
        portal["client_secret"],
        scope="openid profile business",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=generate_token(20)
    )
    arrived: list[str] = []
    violations: list[str] = []
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(locale="en-GB")
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )

        def portal_callback(route: playwright_api.Route) -> None:
            arrived.append(route.request.url)
            route.fulfill(status=200, content_type="text/html", body="<p>portal</p>")

        page.route(f"{redirect_uri}**", portal_callback)
        page.goto(url)
        assert page.locator("html").get_attribute("lang") == "en"
        page.get_by_label("Resident identity number").fill(citizen["username"])
        page.get_by_label("Password").fill(citizen["password"])
        page.get_by_role("button", name="Log in", exact=True).click()
        page.get_by_role("button", name="Continue").click()  # the demo business
        assert "You will act for" in page.inner_text("main")
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(f"{redirect_uri}**")
        browser.close()
    assert violations == []
    assert len(arrived) == 1
    query = {k: v[0] for k, v in parse_qs(urlsplit(arrived[0]).query).items()}
    assert query["iss"] == meta["issuer"] and query["state"] == state
    token = client.fetch_token(
        meta["token_endpoint"],
        authorization_response=arrived[0],
        state=state,
        code_verifier=verifier,
    )
    assert (
        client.get(meta["userinfo_endpoint"]).json()["business"]["uscc"] == demo["business"]["uscc"]
    )
    client.close()
    assert token["token_type"] == "Bearer"


@pytest.fixture(scope="module")
def live_localhost(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    # WebAuthn takes host names only as RP IDs: this instance's issuer is localhost.
    yield from serve_initialised(request, tmp_path_factory, "file-sqlite", host="localhost")


def test_chromium_registers_a_passkey_and_logs_in_with_it(live_localhost: LiveAuthority) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required in CI (.ci/run installs chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    live = live_localhost
    demo = live.cli_json("demo")
    portal, citizen = demo["portal"], demo["citizen"]
    redirect_uri = portal["redirect_uris"][0]
    meta = httpx.get(f"{live.url}/.well-known/openid-configuration", timeout=10).json()
    client = OAuth2Client(
        portal["client_id"],
        portal["client_secret"],
        scope="openid profile",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    arrived: list[str] = []
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(locale="en-GB")
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )

        def portal_callback(route: playwright_api.Route) -> None:
            arrived.append(route.request.url)
            route.fulfill(status=200, content_type="text/html", body="<p>portal</p>")

        page.route(f"{redirect_uri}**", portal_callback)
        # First login with the password, then add a passkey.
        url, _state = client.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=generate_token(64)
        )
        page.goto(url)
        page.get_by_label("Resident identity number").fill(citizen["username"])
        page.get_by_label("Password").fill(citizen["password"])
        page.get_by_role("button", name="Log in", exact=True).click()
        if page.get_by_role("button", name="Allow").count():
            page.get_by_role("button", name="Allow").click()
        page.wait_for_url(f"{redirect_uri}**")
        page.goto(f"{live.url}/account/passkeys")
        page.get_by_role("button", name="Add a passkey").click()
        page.get_by_text("You have 1 passkey(s).").wait_for()

        # A new browser session: log in with the passkey alone.
        context.clear_cookies()
        verifier = generate_token(64)
        url, state = client.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier
        )
        page.goto(url)
        page.get_by_role("button", name="Log in with a passkey").click()
        page.wait_for_url(f"{redirect_uri}**")
        browser.close()
    token = client.fetch_token(
        meta["token_endpoint"],
        authorization_response=arrived[-1],
        state=state,
        code_verifier=verifier,
    )
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["hwk", "mfa"]
    client.close()
