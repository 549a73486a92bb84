"""Client libraries we did not write obtain and verify our tokens, from a live server.

Authlib's OAuth 2.0 client (httpx) discovers the provider from its metadata,
authenticates with a client secret and with private_key_jwt, and PyJWT's
PyJWKClient verifies the tokens from the published JWKS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from authority.oidc.cache import CACHE_TTL
from authority.oidc.tokens import public_jwk
from tests.live import LiveAuthority, serve_initialised

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module", params=["file-sqlite", "file-postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    yield from serve_initialised(request, tmp_path_factory, request.param)


def _metadata(live: LiveAuthority) -> dict[str, Any]:
    response = httpx.get(f"{live.url}/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def _verify_with_pyjwkclient(live: LiveAuthority, token: str, scope: str) -> dict[str, Any]:
    meta = _metadata(live)
    signing_key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        signing_key.key,
        algorithms=["ES256"],
        audience=meta["issuer"],
        issuer=meta["issuer"],
    )
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert claims["scope"] == scope
    return claims


def test_authlib_client_with_a_secret(live: LiveAuthority) -> None:
    agency = live.cli_json("agency", "create", "--code", "AUTHLIB", "--name", "Authlib Agency")
    credentials = agency["client"]
    meta = _metadata(live)
    with OAuth2Client(
        credentials["client_id"], credentials["client_secret"], scope="licences:issue"
    ) as client:
        token = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    claims = _verify_with_pyjwkclient(live, token["access_token"], "licences:issue")
    assert claims["client_id"] == credentials["client_id"]

    # The library's revocation and introspection calls work as the RFCs describe.
    with OAuth2Client(credentials["client_id"], credentials["client_secret"]) as client:
        active = client.introspect_token(
            meta["introspection_endpoint"], token=token["access_token"]
        ).json()
        assert active["active"] is True
        assert (
            client.revoke_token(
                meta["revocation_endpoint"], token=token["access_token"]
            ).status_code
            == 200
        )
        inactive = client.introspect_token(
            meta["introspection_endpoint"], token=token["access_token"]
        ).json()
        assert inactive == {"active": False}


def test_authlib_client_with_private_key_jwt(live: LiveAuthority, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = tmp_path / "client-jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public_jwk(key.public_key()), "kid": "k1"}]}))
    registered = live.cli_json(
        "client",
        "create",
        "--name",
        "Keyed back-end",
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        str(jwks),
        "--grant-type",
        "client_credentials",
        "--scope",
        "licences:read",
    )
    assert "client_secret" not in registered
    meta = _metadata(live)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Authlib reads a PEM string as RSA; an EC key goes in as joserfc's ECKey.
    with OAuth2Client(
        registered["client_id"], ECKey.import_key(pem), token_endpoint_auth_method="private_key_jwt"
    ) as client:

        def fetch() -> dict[str, Any]:
            # Authlib's assertions last an hour by default; ours must expire within five
            # minutes (docs/oauth.md), which the `claims` option sets. Authlib writes the
            # jti it generates into that dict, so each request needs a fresh one, or the
            # second assertion is a replay (and refused).
            client.register_client_auth_method(
                PrivateKeyJWT(
                    meta["token_endpoint"],
                    alg="ES256",
                    headers={"kid": "k1"},
                    claims={"exp": int(time.time()) + 120},
                )
            )
            fetched: dict[str, Any] = client.fetch_token(
                meta["token_endpoint"], grant_type="client_credentials"
            )
            return fetched

        token = fetch()
        _verify_with_pyjwkclient(live, token["access_token"], "licences:read")
        again = fetch()
    assert again["access_token"] != token["access_token"]


def test_key_rotation_seen_by_pyjwkclient(live: LiveAuthority) -> None:
    agency = live.cli_json("agency", "create", "--code", "ROTATE", "--name", "Rotating Agency")
    credentials = agency["client"]
    meta = _metadata(live)

    def fetch() -> str:
        with OAuth2Client(credentials["client_id"], credentials["client_secret"]) as client:
            token: str = client.fetch_token(
                meta["token_endpoint"], grant_type="client_credentials"
            )["access_token"]
        return token

    before = fetch()
    rotated = live.cli_json("keys", "rotate", "--purpose", "token")
    # The rotation is another process's commit: the server's copy of the signing key
    # follows it within CACHE_TTL (authority/oidc/cache.py), not at once.
    time.sleep(CACHE_TTL)
    after = fetch()
    assert jwt.get_unverified_header(after)["kid"] == rotated["kid"]
    assert jwt.get_unverified_header(before)["kid"] == rotated["previous_kid"]
    scope = "licences:issue licences:revoke licences:read"
    for token in (before, after):  # both verify from the published JWKS
        _verify_with_pyjwkclient(live, token, scope)
