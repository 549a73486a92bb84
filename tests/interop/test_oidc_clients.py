"""Authlib's OAuth 2.0 client (httpx), a library we did not write, logs the demo
citizen into the demo portal against a live server: discovery, code + PKCE S256,
the login form driven over real HTTP, ID token validation against the JWKS with
Authlib's own OIDC claims rules, userinfo, refresh rotation, revocation and logout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from tests.live import LiveAuthority, serve_initialised

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module", params=["file-sqlite", "file-postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    yield from serve_initialised(request, tmp_path_factory, request.param)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def _browser_login(
    browser: httpx.Client, url: str, username: str, password: str, redirect_uri: str
) -> str:
    """Follow the provider's pages as a browser would, until it sends us to the portal."""
    response = browser.get(url)
    for _ in range(8):
        location = response.headers.get("location")
        if response.status_code in (302, 303) and location:
            if location.startswith(redirect_uri):
                return location
            response = browser.get(urljoin(str(response.url), location))
            continue
        assert response.status_code == 200, response.text
        form = {"csrf": _csrf(response.text)}
        request_id = re.search(r'name="request" value="([^"]*)"', response.text)
        if request_id:
            form["request"] = request_id.group(1)
        path = urlsplit(str(response.url)).path
        if path == "/login":
            form |= {"id_number": username, "password": password}
        elif path == "/authorize/business":
            form["uscc"] = re.findall(r'name="uscc" value="([^"]+)"', response.text)[0]
        elif path == "/authorize/consent":
            form["decision"] = "allow"
        response = browser.post(urljoin(str(response.url), path), data=form)
    raise AssertionError("the login did not come back to the portal")


def test_authlib_client_logs_the_demo_citizen_in(live: LiveAuthority) -> None:
    demo = live.cli_json("demo")
    portal, citizen = demo["portal"], demo["citizen"]
    redirect_uri = portal["redirect_uris"][0]
    meta = httpx.get(f"{live.url}/.well-known/openid-configuration", timeout=10).json()
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True

    client = OAuth2Client(
        portal["client_id"],
        portal["client_secret"],
        scope="openid profile business",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    with httpx.Client(timeout=10) as browser:
        callback = _browser_login(
            browser, url, citizen["username"], citizen["password"], redirect_uri
        )
        query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        assert query["iss"] == meta["issuer"]  # RFC 9207
        token = client.fetch_token(
            meta["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=verifier,
        )

        # The ID token, checked with Authlib's OIDC Core §3.1.3.7 rules and the JWKS.
        jwks = KeySet.import_key_set(httpx.get(meta["jwks_uri"], timeout=10).json())
        decoded = jose_jwt.decode(token["id_token"], jwks, algorithms=["ES256"])
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"value": meta["issuer"]}, "aud": {"value": portal["client_id"]}},
            {
                "nonce": nonce,
                "access_token": token["access_token"],
                "client_id": portal["client_id"],
            },
        )
        claims.validate()
        assert claims["acr"] == "http://eidas.europa.eu/LoA/low"
        assert claims["business"] == {
            "uscc": demo["business"]["uscc"],
            "name": demo["business"]["name"],
            "role": "legal_representative",
        }

        info = client.get(meta["userinfo_endpoint"]).json()
        assert info["sub"] == claims["sub"]
        assert info["name"] == "张三"
        assert info["business"]["uscc"] == demo["business"]["uscc"]

        refreshed: dict[str, Any] = client.refresh_token(meta["token_endpoint"])
        assert refreshed["refresh_token"] != token["refresh_token"]
        assert client.get(meta["userinfo_endpoint"]).status_code == 200

        # RFC 7009 through the library: the refresh token (and its family) is revoked.
        revoked = client.revoke_token(
            meta["revocation_endpoint"],
            token=refreshed["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert revoked.status_code == 200
        with pytest.raises(Exception, match="invalid_grant"):
            client.refresh_token(meta["token_endpoint"], refresh_token=refreshed["refresh_token"])

        bye = browser.get(
            meta["end_session_endpoint"],
            params={
                "id_token_hint": token["id_token"],
                "post_logout_redirect_uri": "http://127.0.0.1:8001/",
                "state": "done",
            },
        )
        assert bye.status_code == 303
        assert bye.headers["location"] == "http://127.0.0.1:8001/?state=done"
        assert client.get(meta["userinfo_endpoint"]).status_code == 401
    client.close()
