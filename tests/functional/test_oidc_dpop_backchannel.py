"""DPoP-bound tokens (RFC 9449) and back-channel logout tokens, over HTTP."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from joserfc.jwk import thumbprint

from authority.config import Settings
from authority.db.session import Database
from authority.instance import Instance
from authority.oidc.dpop import access_token_hash
from authority.oidc.tokens import public_jwk
from tests.functional.test_oidc import (
    ISSUER,
    Portal,
    _jwks_key,
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

TOKEN_URL = f"{ISSUER}/oauth/token"
PAR_URL = f"{ISSUER}/oauth/par"


@pytest.fixture
def http(settings: Settings, instance: Instance) -> TestClient:
    return browser(settings, instance)


@pytest.fixture
def portal(instance: Instance, database: Database) -> Portal:
    seed_citizen(database)
    return _portal(instance, database)


USERINFO_URL = f"{ISSUER}/oauth/userinfo"


class Holder:
    """A client's DPoP key and the proofs it signs."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = public_jwk(self.key.public_key())
        self.jkt = thumbprint(self.jwk)

    def proof(self, method: str, url: str, access_token: str | None = None, **claims: Any) -> str:
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(12),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
            **claims,
        }
        if access_token:
            body["ath"] = access_token_hash(access_token)
        return jwt.encode(
            body, self.key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": self.jwk}
        )


def _redeem(http: TestClient, portal: Portal, code: str, verifier: str, proof: str | None) -> Any:
    return redeem(http, portal, code, verifier, headers={"DPoP": proof} if proof else None)


def test_dpop_bound_tokens(http: TestClient, portal: Portal) -> None:
    holder = Holder()
    code, verifier = login_code(http, portal)
    response = _redeem(http, portal, code, verifier, holder.proof("POST", TOKEN_URL))
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "DPoP"
    access = tokens["access_token"]
    assert jwt.decode(access, options={"verify_signature": False})["cnf"] == {"jkt": holder.jkt}

    as_bearer = http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert as_bearer.status_code == 401
    assert 'error="invalid_token"' in as_bearer.headers["www-authenticate"]

    proof = holder.proof("GET", USERINFO_URL, access)
    headers = {"Authorization": f"DPoP {access}", "DPoP": proof}
    assert http.get("/oauth/userinfo", headers=headers).status_code == 200
    replay = http.get("/oauth/userinfo", headers=headers)
    assert replay.status_code == 401
    assert replay.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert "already used" in replay.json()["detail"]
    for bad in (
        holder.proof("POST", USERINFO_URL, access),  # wrong method
        holder.proof("GET", TOKEN_URL, access),  # wrong URL
        holder.proof("GET", USERINFO_URL),  # no ath
        holder.proof("GET", USERINFO_URL, access, iat=int(time.time()) - 600),  # stale
        Holder().proof("GET", USERINFO_URL, access),  # another key
    ):
        answer = http.get(
            "/oauth/userinfo", headers={"Authorization": f"DPoP {access}", "DPoP": bad}
        )
        assert answer.status_code == 401, answer.text
        assert answer.json()["type"].endswith("/problems/invalid-dpop-proof")

    def refresh(proof: str | None) -> Any:
        return http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=portal.basic,
            headers={"DPoP": proof} if proof else {},
        )

    _token_error(refresh(None), 400, "invalid_grant")
    _token_error(refresh(Holder().proof("POST", TOKEN_URL)), 400, "invalid_grant")
    rotated = refresh(holder.proof("POST", TOKEN_URL))
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["token_type"] == "DPoP"


def test_bad_proofs_at_the_token_endpoint(
    http: TestClient, portal: Portal, instance: Instance, database: Database
) -> None:
    holder = Holder()
    proof = holder.proof("POST", TOKEN_URL)
    code, verifier = login_code(http, portal)
    assert _redeem(http, portal, code, verifier, proof).status_code == 200
    code, verifier = login_code(http, portal)
    assert "already used" in _token_error(
        _redeem(http, portal, code, verifier, proof), 400, "invalid_dpop_proof"
    )
    unsigned = jwt.encode(
        {"jti": "x", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time())},
        "an HMAC key is never accepted for DPoP proofs",
        algorithm="HS256",
        headers={"typ": "dpop+jwt"},
    )
    _token_error(_redeem(http, portal, code, verifier, unsigned), 400, "invalid_dpop_proof")
    strict = _portal(instance, database, name="DPoP only", require_dpop=True)
    code, verifier = login_code(http, strict)
    assert "must send a DPoP proof" in _token_error(
        _redeem(http, strict, code, verifier, None), 400, "invalid_request"
    )


def _push(http: TestClient, portal: Portal, challenge: str, proof: str | None, **extra: str) -> Any:
    return http.post(
        "/oauth/par",
        data={
            "response_type": "code",
            "redirect_uri": portal.redirect_uri,
            "scope": "openid",
            "state": "s-par",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        },
        auth=portal.basic,
        headers={"DPoP": proof} if proof else {},
    )


def _pushed_code(
    http: TestClient, portal: Portal, proof: str | None, **extra: str
) -> tuple[str, str]:
    """A code obtained through a pushed request (with a DPoP proof or dpop_jkt)."""
    verifier, challenge = pkce()
    pushed = _push(http, portal, challenge, proof, **extra)
    assert pushed.status_code == 201, pushed.text
    used = http.get(
        "/oauth/authorize",
        params={"client_id": portal.client_id, "request_uri": pushed.json()["request_uri"]},
    )
    done = follow(http, used)
    assert done.status_code in (302, 303), done.text
    return _query(done.headers["location"])["code"], verifier


def _bound_code_redeemed_only_with(
    http: TestClient, portal: Portal, holder: Holder, code: str, verifier: str
) -> None:
    """RFC 9449 §10: without a proof, or with another key's, invalid_grant; then the key's."""
    assert "bound to a DPoP key" in _token_error(
        _redeem(http, portal, code, verifier, None), 400, "invalid_grant"
    )
    _token_error(
        _redeem(http, portal, code, verifier, Holder().proof("POST", TOKEN_URL)),
        400,
        "invalid_grant",
    )
    answer = _redeem(http, portal, code, verifier, holder.proof("POST", TOKEN_URL))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"
    access = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert access["cnf"] == {"jkt": holder.jkt}


def test_a_dpop_proof_at_the_par_endpoint_binds_the_code(http: TestClient, portal: Portal) -> None:
    holder = Holder()
    code, verifier = _pushed_code(http, portal, holder.proof("POST", PAR_URL))
    _bound_code_redeemed_only_with(http, portal, holder, code, verifier)


def test_dpop_jkt_in_a_pushed_request_binds_the_code(http: TestClient, portal: Portal) -> None:
    holder = Holder()
    code, verifier = _pushed_code(http, portal, None, dpop_jkt=holder.jkt)
    _bound_code_redeemed_only_with(http, portal, holder, code, verifier)
    # Both, naming the same key: accepted.
    code, verifier = _pushed_code(http, portal, holder.proof("POST", PAR_URL), dpop_jkt=holder.jkt)
    _bound_code_redeemed_only_with(http, portal, holder, code, verifier)


def test_dpop_jkt_in_a_plain_authorization_request(http: TestClient, portal: Portal) -> None:
    holder = Holder()
    code, verifier = login_code(http, portal, dpop_jkt=holder.jkt)
    _bound_code_redeemed_only_with(http, portal, holder, code, verifier)
    _verifier, challenge = pkce()
    malformed = authorize(http, portal, challenge, dpop_jkt="not-a-thumbprint")
    assert malformed.status_code == 302
    query = _query(malformed.headers["location"])
    assert malformed.headers["location"].startswith(portal.redirect_uri + "?")
    assert query["error"] == "invalid_request"
    assert "dpop_jkt" in query["error_description"]


def test_bad_dpop_at_the_par_endpoint(http: TestClient, portal: Portal) -> None:
    holder = Holder()
    _verifier, challenge = pkce()
    differs = _push(http, portal, challenge, holder.proof("POST", PAR_URL), dpop_jkt=Holder().jkt)
    assert "dpop_jkt" in _token_error(differs, 400, "invalid_dpop_proof")
    for bad in (
        holder.proof("POST", TOKEN_URL),  # for another endpoint
        holder.proof("GET", PAR_URL),  # another method
        holder.proof("POST", PAR_URL, iat=int(time.time()) - 600),  # stale
    ):
        _token_error(_push(http, portal, challenge, bad), 400, "invalid_dpop_proof")
    proof = holder.proof("POST", PAR_URL)
    assert _push(http, portal, challenge, proof).status_code == 201
    assert "already used" in _token_error(
        _push(http, portal, challenge, proof), 400, "invalid_dpop_proof"
    )


def test_back_channel_logout_tokens(
    http: TestClient,
    instance: Instance,
    database: Database,
    receiver: tuple[str, list[str]],
) -> None:
    seed_citizen(database)
    uri, received = receiver
    portal_ = _portal(instance, database, name="Listening portal", backchannel_logout_uri=uri)
    code, verifier = login_code(http, portal_)
    tokens = _redeem(http, portal_, code, verifier, None).json()
    id_claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    bye = http.get("/oauth/logout", params={"id_token_hint": tokens["id_token"]})
    assert bye.status_code == 200
    assert len(received) == 1
    token = received[0]
    assert jwt.get_unverified_header(token)["typ"] == "logout+jwt"
    claims = jwt.decode(
        token,
        _jwks_key(http, token),
        algorithms=["ES256"],
        audience=portal_.client_id,
        issuer=ISSUER,
    )
    assert claims["sid"] == id_claims["sid"]
    assert claims["sub"] == id_claims["sub"]
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert "nonce" not in claims
