"""The OAuth 2.0 core over HTTP: every clause answers with its exact RFC error code."""

from __future__ import annotations

import base64
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.testclient import TestClient

from authority.agencies.models import Agency
from authority.app import create_app
from authority.config import Settings
from authority.db.base import utcnow
from authority.db.session import Database
from authority.identity.throttle import CLIENT_POLICY
from authority.instance import Instance
from authority.oidc.clients import register_agency_client, register_client
from authority.oidc.models import SigningKey
from authority.oidc.tokens import (
    AccessToken,
    issue_access_token,
    public_jwk,
    rotate_signing_key,
)
from authority.web.deps import require_scope

ISSUER = "http://127.0.0.1:8000"
TOKEN_URL = f"{ISSUER}/oauth/token"
READ_SCOPE = require_scope("licences:read")


class Credentials:
    def __init__(self, client_id: str, secret: str | None) -> None:
        self.client_id = client_id
        self.secret = secret or ""

    @property
    def basic(self) -> tuple[str, str]:
        return (self.client_id, self.secret)


@pytest.fixture
def app(settings: Settings, instance: Instance) -> FastAPI:
    application = create_app(settings, instance)

    @application.get("/test/licences")
    def protected(token: AccessToken = READ_SCOPE) -> dict[str, Any]:
        return {"client_id": token.client_id, "scopes": list(token.scopes)}

    return application


@pytest.fixture
def http(app: FastAPI) -> TestClient:
    return TestClient(app, base_url=ISSUER)


@pytest.fixture
def agency(instance: Instance, database: Database) -> Credentials:
    with database.transaction() as session:
        record = Agency(code="MOT", name="Ministry of Transport")
        session.add(record)
        session.flush()
        client = register_agency_client(session, instance.client_secret_key, record, utcnow())
    return Credentials(client.record.client_id, client.secret)


@pytest.fixture
def portal(instance: Instance, database: Database) -> Credentials:
    with database.transaction() as session:
        client = register_client(
            session,
            instance.client_secret_key,
            name="Portal",
            redirect_uris=["https://portal.example.gov/cb"],
            now=utcnow(),
        )
    return Credentials(client.record.client_id, client.secret)


@pytest.fixture
def client_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwt_client(
    instance: Instance, database: Database, client_key: ec.EllipticCurvePrivateKey
) -> Credentials:
    jwk = {**public_jwk(client_key.public_key()), "kid": "client-key-1", "use": "sig"}
    with database.transaction() as session:
        client = register_client(
            session,
            instance.client_secret_key,
            name="Back-end with keys",
            auth_method="private_key_jwt",
            grant_types=["client_credentials"],
            scopes=["licences:read"],
            jwks={"keys": [jwk]},
            now=utcnow(),
        )
    return Credentials(client.record.client_id, None)


def _token(http: TestClient, creds: Credentials, **form: str) -> Any:
    return http.post(
        "/oauth/token", data={"grant_type": "client_credentials", **form}, auth=creds.basic
    )


def _error(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    return body


# -- token endpoint, client_secret_basic / client_secret_post -------------------------


def test_client_credentials_issue_an_rfc_9068_token(http: TestClient, agency: Credentials) -> None:
    response = _token(http, agency, scope="licences:issue")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "licences:issue"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    keys = {k["kid"]: k for k in http.get("/oauth/jwks.json").json()["keys"]}
    key = jwt.PyJWK(keys[header["kid"]]).key
    claims = jwt.decode(
        body["access_token"], key=key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER
    )
    assert claims["sub"] == agency.client_id
    assert claims["client_id"] == agency.client_id
    assert claims["scope"] == "licences:issue"
    assert claims["exp"] - claims["iat"] == 600
    assert len(claims["jti"]) >= 16


def test_without_scope_the_registered_ones_are_granted(
    http: TestClient, agency: Credentials
) -> None:
    body = _token(http, agency).json()
    assert body["scope"] == "licences:issue licences:revoke licences:read"


def test_client_secret_post_for_a_post_client(
    http: TestClient, instance: Instance, database: Database
) -> None:
    with database.transaction() as session:
        client = register_client(
            session,
            instance.client_secret_key,
            name="Post",
            auth_method="client_secret_post",
            scopes=["licences:read"],
            now=utcnow(),
        )
    response = http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.record.client_id,
            "client_secret": client.secret,
        },
    )
    assert response.status_code == 200
    # Its registered method only: Basic is refused.
    wrong_method = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client.record.client_id, client.secret or ""),
    )
    _error(wrong_method, 401, "invalid_client")


def test_a_scope_outside_the_registration_is_invalid_scope(
    http: TestClient, agency: Credentials
) -> None:
    body = _error(_token(http, agency, scope="licences:read openid"), 400, "invalid_scope")
    assert body["error_description"] == "the client may not request: openid"
    _error(_token(http, agency, scope="nonsense"), 400, "invalid_scope")
    _error(_token(http, agency, scope='bad"scope'), 400, "invalid_scope")


def test_unknown_grant_type(http: TestClient, agency: Credentials) -> None:
    response = http.post(
        "/oauth/token", data={"grant_type": "password", "username": "u"}, auth=agency.basic
    )
    _error(response, 400, "unsupported_grant_type")


def test_missing_grant_type_is_invalid_request(http: TestClient, agency: Credentials) -> None:
    response = http.post("/oauth/token", data={"scope": "licences:read"}, auth=agency.basic)
    body = _error(response, 400, "invalid_request")
    assert body["error_description"] == "grant_type is required"


def test_repeated_parameter_is_invalid_request(http: TestClient, agency: Credentials) -> None:
    response = http.post(
        "/oauth/token",
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=agency.basic,
    )
    body = _error(response, 400, "invalid_request")
    assert body["error_description"] == "parameter repeated: grant_type"


def test_two_authentication_methods_are_invalid_request(
    http: TestClient, agency: Credentials
) -> None:
    # RFC 6749 §2.3: the client MUST NOT use more than one method in a request; the
    # first request is answered by the full path, the second with the client held.
    for _ in range(2):
        response = _token(http, agency, client_id=agency.client_id, client_secret=agency.secret)
        body = _error(response, 400, "invalid_request")
        assert body["error_description"] == "use one client authentication method, not several"
    assert _token(http, agency).status_code == 200


def test_non_ascii_basic_credentials_are_invalid_client(http: TestClient) -> None:
    response = http.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic \xe9\xe9\xe9\xe9".encode("latin-1"),  # type: ignore[dict-item]
        },
    )
    body = _error(response, 401, "invalid_client")
    assert body["error_description"] == "the Authorization header is not valid HTTP Basic"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_json_body_is_invalid_request(http: TestClient, agency: Credentials) -> None:
    response = http.post(
        "/oauth/token", json={"grant_type": "client_credentials"}, auth=agency.basic
    )
    _error(response, 400, "invalid_request")


@pytest.mark.parametrize("secret", ["wrong", ""])
def test_wrong_secret_is_invalid_client_with_a_challenge(
    http: TestClient, agency: Credentials, secret: str
) -> None:
    response = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(agency.client_id, secret)
    )
    _error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_unknown_client_and_no_credentials_are_invalid_client(http: TestClient) -> None:
    _error(
        http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=("nobody", "secret")
        ),
        401,
        "invalid_client",
    )
    _error(
        http.post("/oauth/token", data={"grant_type": "client_credentials"}), 401, "invalid_client"
    )


def test_a_portal_may_not_use_client_credentials(http: TestClient, portal: Credentials) -> None:
    _error(_token(http, portal), 400, "unauthorized_client")


def test_token_endpoint_takes_post_only(http: TestClient) -> None:
    assert http.get("/oauth/token").status_code == 405


# -- private_key_jwt (RFC 7523) --------------------------------------------------------
# A failed assertion is invalid_client with 400: RFC 6749 §5.2 requires 401 only when
# the client authenticated through the Authorization header.


def _assertion(
    creds: Credentials,
    key: Any,
    *,
    alg: str = "ES256",
    aud: str = TOKEN_URL,
    iss: str | None = None,
    lifetime: int = 120,
    jti: str | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    claims = {
        "iss": iss or creds.client_id,
        "sub": creds.client_id,
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti
        or base64.b32encode(
            now.to_bytes(8, "big") + bytes(time.perf_counter_ns() % 256 for _ in "ab")
        ).decode(),
    }
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def _jwt_token(http: TestClient, assertion: str) -> Any:
    return http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


@pytest.mark.parametrize("audience", [TOKEN_URL, ISSUER])
def test_private_key_jwt_with_either_audience(
    http: TestClient, jwt_client: Credentials, client_key: ec.EllipticCurvePrivateKey, audience: str
) -> None:
    response = _jwt_token(http, _assertion(jwt_client, client_key, aud=audience))
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "licences:read"


def test_a_replayed_assertion_is_refused(
    http: TestClient, jwt_client: Credentials, client_key: ec.EllipticCurvePrivateKey
) -> None:
    assertion = _assertion(jwt_client, client_key, jti="once-only")
    assert _jwt_token(http, assertion).status_code == 200
    _error(_jwt_token(http, assertion), 400, "invalid_client")


def test_alg_none_is_refused(http: TestClient, jwt_client: Credentials) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    now = int(time.time())
    payload = (
        base64.urlsafe_b64encode(
            f'{{"iss":"{jwt_client.client_id}","sub":"{jwt_client.client_id}","aud":"{TOKEN_URL}",'
            f'"exp":{now + 60},"jti":"n1"}}'.encode()
        )
        .rstrip(b"=")
        .decode()
    )
    _error(_jwt_token(http, f"{header}.{payload}."), 400, "invalid_client")


def test_hmac_keyed_with_the_public_key_is_refused(
    http: TestClient, jwt_client: Credentials, client_key: ec.EllipticCurvePrivateKey
) -> None:
    public_pem = client_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = _forge_hs256(jwt_client, public_pem)
    _error(_jwt_token(http, forged), 400, "invalid_client")


def _forge_hs256(creds: Credentials, secret: bytes) -> str:
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "client-key-1"}).encode())
    body = b64(
        json.dumps(
            {
                "iss": creds.client_id,
                "sub": creds.client_id,
                "aud": TOKEN_URL,
                "exp": now + 60,
                "jti": "forged",
            }
        ).encode()
    )
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"lifetime": 3600}, "the client assertion must expire within 5 minutes"),
        ({"lifetime": -120}, None),
        ({"aud": "https://elsewhere.example/token"}, None),
        ({"iss": "someone-else"}, "Issuer and Subject MUST match."),
    ],
)
def test_assertion_claims_are_checked(
    http: TestClient,
    jwt_client: Credentials,
    client_key: ec.EllipticCurvePrivateKey,
    change: dict[str, Any],
    description: str | None,
) -> None:
    body = _error(
        _jwt_token(http, _assertion(jwt_client, client_key, **change)), 400, "invalid_client"
    )
    if description:
        assert body["error_description"] == description


def test_an_assertion_signed_by_another_key_is_refused(
    http: TestClient, jwt_client: Credentials
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    _error(_jwt_token(http, _assertion(jwt_client, other)), 400, "invalid_client")


def test_a_jwt_client_cannot_fall_back_to_a_secret(
    http: TestClient, jwt_client: Credentials
) -> None:
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(jwt_client.client_id, "guess"),
    )
    _error(response, 401, "invalid_client")


# -- introspection and revocation --------------------------------------------------------


def test_introspection(http: TestClient, agency: Credentials) -> None:
    token = _token(http, agency, scope="licences:read").json()["access_token"]
    active = http.post("/oauth/introspect", data={"token": token}, auth=agency.basic).json()
    assert active["active"] is True
    assert active["client_id"] == agency.client_id
    assert active["scope"] == "licences:read"
    assert active["token_type"] == "Bearer"
    for junk in ("not-a-token", token[:-4] + "AAAA"):
        answer = http.post("/oauth/introspect", data={"token": junk}, auth=agency.basic)
        assert answer.json() == {"active": False}
    _error(http.post("/oauth/introspect", data={"token": token}), 401, "invalid_client")
    _error(
        http.post("/oauth/introspect", data={"token_type_hint": "access_token"}, auth=agency.basic),
        400,
        "invalid_request",
    )


def test_revocation_is_honoured_everywhere(http: TestClient, agency: Credentials) -> None:
    token = _token(http, agency, scope="licences:read").json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert http.get("/test/licences", headers=bearer).status_code == 200
    revoked = http.post("/oauth/revoke", data={"token": token}, auth=agency.basic)
    assert revoked.status_code == 200
    assert http.post("/oauth/revoke", data={"token": token}, auth=agency.basic).status_code == 200
    assert http.post("/oauth/introspect", data={"token": token}, auth=agency.basic).json() == {
        "active": False
    }
    denied = http.get("/test/licences", headers=bearer)
    assert denied.status_code == 401
    assert 'error="invalid_token"' in denied.headers["www-authenticate"]
    assert denied.json()["detail"] == "the token has been revoked"


def test_a_client_cannot_revoke_another_clients_token(
    http: TestClient, agency: Credentials, instance: Instance, database: Database
) -> None:
    token = _token(http, agency, scope="licences:read").json()["access_token"]
    with database.transaction() as session:
        other = register_client(
            session,
            instance.client_secret_key,
            name="Other",
            scopes=["licences:read"],
            now=utcnow(),
        )
    answer = http.post(
        "/oauth/revoke", data={"token": token}, auth=(other.record.client_id, other.secret or "")
    )
    assert answer.status_code == 200  # RFC 7009 §2.2: no hint whose token it is
    bearer = {"Authorization": f"Bearer {token}"}
    assert http.get("/test/licences", headers=bearer).status_code == 200


# -- bearer protection (RFC 6750) ----------------------------------------------------------


def test_no_token_is_a_bare_challenge(http: TestClient) -> None:
    response = http.get("/test/licences")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="authority"'
    assert response.headers["content-type"] == "application/problem+json"
    basic = http.get("/test/licences", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def test_a_bad_token_is_invalid_token(http: TestClient) -> None:
    response = http.get("/test/licences", headers={"Authorization": "Bearer not.a.jwt"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(
        'Bearer realm="authority", error="invalid_token"'
    )


def test_a_token_without_the_scope_is_insufficient_scope(
    http: TestClient, agency: Credentials
) -> None:
    token = _token(http, agency, scope="licences:issue").json()["access_token"]
    response = http.get("/test/licences", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="licences:read"' in challenge
    assert response.json()["required_scope"] == "licences:read"


def test_an_expired_token_is_invalid_token(
    http: TestClient, agency: Credentials, instance: Instance, database: Database
) -> None:
    with database.session() as session:
        token, _ = issue_access_token(
            session,
            instance.keystore,
            issuer=ISSUER,
            client_id=agency.client_id,
            subject=agency.client_id,
            scopes=["licences:read"],
            now=utcnow() - timedelta(hours=1),
        )
    response = http.get("/test/licences", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["detail"] == "the token has expired"


def test_an_id_token_shaped_jwt_is_not_an_access_token(
    http: TestClient, agency: Credentials, instance: Instance, database: Database
) -> None:
    token = _token(http, agency, scope="licences:read").json()["access_token"]
    header, payload, signature = token.split(".")
    retyped = (
        base64.urlsafe_b64encode(
            base64.urlsafe_b64decode(header + "==").replace(b'"at+jwt"', b'"JWT"')
        )
        .rstrip(b"=")
        .decode()
    )
    response = http.get(
        "/test/licences", headers={"Authorization": f"Bearer {retyped}.{payload}.{signature}"}
    )
    assert response.status_code == 401


# -- metadata, JWKS, rotation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
)
def test_metadata(http: TestClient, path: str) -> None:
    meta = http.get(path).json()
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == TOKEN_URL
    assert meta["jwks_uri"] == f"{ISSUER}/oauth/jwks.json"
    assert meta["introspection_endpoint"] == f"{ISSUER}/oauth/introspect"
    assert meta["revocation_endpoint"] == f"{ISSUER}/oauth/revoke"
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "none" not in meta["token_endpoint_auth_signing_alg_values_supported"]


def test_jwks_holds_public_keys_only(http: TestClient) -> None:
    keys = http.get("/oauth/jwks.json").json()["keys"]
    assert keys
    for key in keys:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"}


def test_rotation_keeps_old_tokens_verifiable_until_they_expire(
    http: TestClient, agency: Credentials, instance: Instance, database: Database
) -> None:
    old_token = _token(http, agency, scope="licences:read").json()["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    with database.transaction() as session:
        previous, new = rotate_signing_key(session, instance.keystore, "token", utcnow())
    assert previous is not None and previous.kid == old_kid
    new_token = _token(http, agency, scope="licences:read").json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    kids = [k["kid"] for k in http.get("/oauth/jwks.json").json()["keys"]]
    assert old_kid in kids and new.kid in kids
    for token in (old_token, new_token):
        ok = http.get("/test/licences", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    # Once every token the old key signed has expired, it leaves the JWKS.
    with database.transaction() as session:
        retired = session.get(SigningKey, previous.id)
        assert retired is not None and retired.publish_until is not None
        assert retired.publish_until - utcnow() <= timedelta(minutes=11, seconds=1)
        retired.publish_until = utcnow() - timedelta(seconds=1)
    kids = [k["kid"] for k in http.get("/oauth/jwks.json").json()["keys"]]
    assert old_kid not in kids


# -- throttling failed client authentication ----------------------------------------------


def test_failed_client_authentication_is_throttled_per_client_and_address(
    app: FastAPI, http: TestClient, agency: Credentials, portal: Credentials
) -> None:
    wrong = Credentials(agency.client_id, "not the secret")
    for _ in range(CLIENT_POLICY.free_failures + 1):
        _error(_token(http, wrong), 401, "invalid_client")
    # Now held back: even the right secret waits, with Retry-After (RFC 6585 §4).
    held = _token(http, agency)
    body = _error(held, 429, "invalid_client")
    assert "too many failed attempts" in body["error_description"]
    assert 1 <= int(held.headers["retry-after"]) <= 2
    # Another client, or the same client from another address, is not affected.
    assert _token(http, portal).status_code != 429
    elsewhere = TestClient(app, base_url=ISSUER, client=("192.0.2.7", 40000))
    assert _token(elsewhere, agency).status_code == 200
    # A Basic header with an undecodable name is not counted against anyone.
    garbage = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic %%%"},
    )
    assert garbage.status_code == 401
