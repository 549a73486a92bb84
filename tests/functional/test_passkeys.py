"""Passkeys over HTTP with a software authenticator made here: py_webauthn on the
server verifies real attestation and assertion structures (WebAuthn §6.1, §6.5)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from typing import Any

import cbor2
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from authority.config import Settings
from authority.db.session import Database
from authority.instance import Instance
from tests.functional.test_oidc import (
    ISSUER,
    Portal,
    _portal,
    _query,
    authorize,
    browser,
    login_code,
    pkce,
    redeem,
    seed_citizen,
)

RP_ID = "127.0.0.1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """A platform authenticator with one resident P-256 key and user verification."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = b"soft-credential-" + bytes(range(16))
        self.user_handle = b""
        self.count = 0

    def _client_data(self, kind: str, challenge: str, origin: str = ISSUER) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        self.user_handle = unb64url(options["user"]["id"])
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        auth_data = (
            hashlib.sha256(options["rp"]["id"].encode()).digest()
            + bytes([0x45])  # UP | UV | AT
            + struct.pack(">I", 0)
            + bytes(16)
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + cose
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(
                    self._client_data("webauthn.create", options["challenge"])
                ),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
        }

    def get(self, options: dict[str, Any], origin: str = ISSUER) -> dict[str, Any]:
        self.count += 1
        auth_data = (
            hashlib.sha256(options["rpId"].encode()).digest()
            + bytes([0x05])  # UP | UV
            + struct.pack(">I", self.count)
        )
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(self.user_handle),
            },
        }


@pytest.fixture
def http(settings: Settings, instance: Instance) -> TestClient:
    return browser(settings, instance)


@pytest.fixture
def portal(instance: Instance, database: Database) -> Portal:
    seed_citizen(database)
    return _portal(instance, database)


def _csrf(html: str) -> str:
    match = re.search(r'data-csrf="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_register_then_log_in_with_a_passkey(http: TestClient, portal: Portal) -> None:
    authenticator = SoftAuthenticator()
    login_code(http, portal)  # logged in with the password
    csrf = _csrf(http.get("/account/passkeys").text)
    options = http.post("/account/passkeys/options", headers={"X-CSRF-Token": csrf})
    assert options.status_code == 200, options.text
    assert options.json()["rp"]["id"] == RP_ID
    assert options.json()["authenticatorSelection"]["userVerification"] == "required"
    created = http.post(
        "/account/passkeys",
        json=authenticator.create(options.json()),
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status_code == 201, created.text
    http.get("/oauth/logout", params={"client_id": portal.client_id})  # confirm page
    http.cookies.clear()

    verifier, challenge = pkce()
    location = authorize(http, portal, challenge).headers["location"]
    request_id = _query(location)["request"]
    csrf = _csrf(http.get(location).text)
    options = http.post("/login/passkey/options", headers={"X-CSRF-Token": csrf}).json()
    assert options["userVerification"] == "required"
    # A wrong origin (a phishing site) is refused.
    phished = http.post(
        "/login/passkey",
        json={
            "credential": authenticator.get(options, "https://evil.example"),
            "request": request_id,
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert phished.status_code == 401
    options = http.post("/login/passkey/options", headers={"X-CSRF-Token": csrf}).json()
    answer = http.post(
        "/login/passkey",
        json={"credential": authenticator.get(options), "request": request_id},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 200, answer.text
    code = _query(answer.json()["location"])["code"]
    claims = jwt.decode(
        redeem(http, portal, code, verifier).json()["id_token"], options={"verify_signature": False}
    )
    assert claims["amr"] == ["hwk", "mfa"]
    assert claims["acr"] == "http://eidas.europa.eu/LoA/substantial"
    # The challenge is single-use: replaying the same assertion fails.
    replay = http.post(
        "/login/passkey",
        json={"credential": authenticator.get(options), "request": request_id},
        headers={"X-CSRF-Token": csrf},
    )
    assert replay.status_code == 401


def test_a_passkey_login_ends_the_older_session_and_needs_the_browsers_request(
    http: TestClient, portal: Portal, settings: Settings, instance: Instance
) -> None:
    authenticator = SoftAuthenticator()
    code, verifier = login_code(http, portal)  # logged in with the password
    password_tokens = redeem(http, portal, code, verifier).json()
    old_cookie = http.cookies["authority_session"]
    csrf = _csrf(http.get("/account/passkeys").text)
    options = http.post("/account/passkeys/options", headers={"X-CSRF-Token": csrf}).json()
    created = http.post(
        "/account/passkeys", json=authenticator.create(options), headers={"X-CSRF-Token": csrf}
    )
    assert created.status_code == 201, created.text

    # Another browser's request cannot be continued with this browser's passkey.
    other = browser(settings, instance)
    _verifier, challenge = pkce()
    foreign = _query(authorize(other, portal, challenge).headers["location"])["request"]
    options = http.post("/login/passkey/options", headers={"X-CSRF-Token": csrf}).json()
    refused = http.post(
        "/login/passkey",
        json={"credential": authenticator.get(options), "request": foreign},
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["error_description"].startswith(
        "this login was started in another browser"
    )
    assert http.cookies["authority_session"] == old_cookie

    # A passkey login in this browser (prompt=login) replaces the password session.
    verifier, challenge = pkce()
    location = authorize(http, portal, challenge, prompt="login").headers["location"]
    options = http.post("/login/passkey/options", headers={"X-CSRF-Token": csrf}).json()
    answer = http.post(
        "/login/passkey",
        json={"credential": authenticator.get(options), "request": _query(location)["request"]},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 200, answer.text
    assert http.cookies["authority_session"] != old_cookie
    code = _query(answer.json()["location"])["code"]
    assert redeem(http, portal, code, verifier).status_code == 200
    stale = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": password_tokens["refresh_token"]},
        auth=portal.basic,
    )
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
