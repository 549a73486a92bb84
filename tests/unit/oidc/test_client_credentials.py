"""Client-credentials tokens from memory: the same token as authlib's path, or nothing.

Each request goes to both :func:`token_from_memory` and the full protocol core
(:class:`AuthorityServer`). Where memory answers, the full path must answer 200
with the same response and the same claims (but the token's own id); where the
request is not plain, or fails any check, memory must decline and leave the
answer (and its error code) to the full path.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from sqlalchemy import select
from starlette.datastructures import Headers

from authority.agencies.models import Agency
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.oidc.client_credentials import token_from_memory
from authority.oidc.clients import register_agency_client, register_client
from authority.oidc.models import OAuthClient
from authority.oidc.server import AuthorityServer, Provider
from authority.oidc.tokens import TokenVerifier
from authority.web.oauth import FormPayload, FormRequest

GRANT = ("grant_type", "client_credentials")


def _basic(client_id: str, secret: str) -> dict[str, str]:
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


class Both:
    """One instance's two token paths, with the client and key held in memory."""

    def __init__(self, instance: Instance, database: Database) -> None:
        self.instance = instance
        self.database = database
        self.now = utcnow().replace(microsecond=0)
        with database.transaction() as session:
            agency = Agency(code="MOT", name="Ministry of Transport")
            session.add(agency)
            session.flush()
            basic = register_agency_client(session, instance.client_secret_key, agency, self.now)
            post = register_client(
                session,
                instance.client_secret_key,
                name="Posting agency",
                auth_method="client_secret_post",
                grant_types=["client_credentials"],
                scopes=["licences:read", "licences:issue"],
                now=self.now,
            )
            portal = register_client(
                session,
                instance.client_secret_key,
                name="Portal",
                redirect_uris=["https://portal.example.gov/cb"],
                grant_types=["authorization_code"],
                scopes=["openid"],
                now=self.now,
            )
        # Held in memory as after a first request (a commit of clients clears the cache).
        with database.transaction(write=False) as session:
            for record in (basic.record, post.record, portal.record):
                instance.provider_cache.client(session, record.client_id)
            instance.provider_cache.signing_key(session)
        self.basic = (basic.record.client_id, basic.secret or "")
        self.post = (post.record.client_id, post.secret or "")
        self.portal = (portal.record.client_id, portal.secret or "")

    def memory(self, form: list[tuple[str, str]], headers: dict[str, str]) -> Any:
        request = self._request(form, headers)
        return token_from_memory(
            cache=self.instance.provider_cache,
            keystore=self.instance.keystore,
            secret_key=self.instance.client_secret_key,
            issuer=self.instance.settings.issuer,
            form=request.payload.datalist,
            headers=request.headers,
            now=self.now,
        )

    def full(self, form: list[tuple[str, str]], headers: dict[str, str]) -> tuple[int, Any]:
        with self.database.transaction() as session:
            provider = Provider(
                session=session,
                keystore=self.instance.keystore,
                issuer=self.instance.settings.issuer,
                secret_key=self.instance.client_secret_key,
                verifier=TokenVerifier(self.instance.settings.issuer),
                now=self.now,
                cache=self.instance.provider_cache,
            )
            status, body, _headers = AuthorityServer(provider).create_token_response(
                self._request(form, headers)
            )
        return status, body

    def _request(self, form: list[tuple[str, str]], headers: dict[str, str]) -> FormRequest:
        return FormRequest(
            "POST",
            f"{self.instance.settings.issuer}/oauth/token",
            Headers(headers),
            FormPayload(form),
            {},
            is_form=True,
        )


@pytest.fixture
def both(instance: Instance, database: Database) -> Both:
    return Both(instance, database)


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    claims.pop("jti")
    return claims


def _same_token(memory: dict[str, Any], full: dict[str, Any], now: datetime) -> None:
    assert {k: v for k, v in memory.items() if k != "access_token"} == {
        k: v for k, v in full.items() if k != "access_token"
    }
    assert _claims(memory["access_token"]) == _claims(full["access_token"])
    assert jwt.get_unverified_header(memory["access_token"]) == jwt.get_unverified_header(
        full["access_token"]
    )
    assert _claims(memory["access_token"])["iat"] == int(now.timestamp())


@pytest.mark.parametrize(
    "form",
    [
        [GRANT],
        [GRANT, ("scope", "licences:read")],
        [GRANT, ("scope", "licences:read licences:issue")],
        [GRANT, ("scope", "")],  # §3.1: sent without a value is omitted
    ],
)
def test_a_plain_basic_request_is_answered_from_memory_as_the_full_path_would(
    both: Both, form: list[tuple[str, str]]
) -> None:
    headers = _basic(*both.basic)
    memory = both.memory(form, headers)
    status, full = both.full(form, headers)
    assert memory is not None
    assert status == 200
    _same_token(memory, full, both.now)


def test_a_plain_post_request_is_answered_from_memory_as_the_full_path_would(
    both: Both,
) -> None:
    client_id, secret = both.post
    form = [GRANT, ("client_id", client_id), ("client_secret", secret), ("scope", "licences:read")]
    memory = both.memory(form, {})
    status, full = both.full(form, {})
    assert memory is not None
    assert status == 200
    _same_token(memory, full, both.now)
    assert memory["scope"] == "licences:read"


def _cases(both: Both) -> dict[str, tuple[list[tuple[str, str]], dict[str, str], int, str]]:
    """Requests memory must leave to the full path, and the full path's answer."""
    basic_id, basic_secret = both.basic
    post_id, post_secret = both.post
    good = _basic(basic_id, basic_secret)
    return {
        "wrong secret": ([GRANT], _basic(basic_id, "x" * 43), 401, "invalid_client"),
        "unknown client": ([GRANT], _basic("nobody", basic_secret), 401, "invalid_client"),
        "scope not registered": (
            [GRANT, ("scope", "openid")],
            good,
            400,
            "invalid_scope",
        ),
        "malformed scope": ([GRANT, ("scope", "a\tb")], good, 400, "invalid_scope"),
        "repeated parameter": ([GRANT, GRANT], good, 400, "invalid_request"),
        "basic client posting its secret": (
            [GRANT, ("client_id", basic_id), ("client_secret", basic_secret)],
            {},
            401,
            "invalid_client",
        ),
        "post client using basic": ([GRANT], _basic(post_id, post_secret), 401, "invalid_client"),
        "two methods at once": (
            [GRANT, ("client_id", basic_id), ("client_secret", basic_secret)],
            good,
            400,
            "invalid_request",
        ),
        "portal not registered for the grant": (
            [GRANT],
            _basic(*both.portal),
            400,
            "unauthorized_client",
        ),
        "another grant": ([("grant_type", "password")], good, 400, "unsupported_grant_type"),
    }


CASES = [
    "wrong secret",
    "unknown client",
    "scope not registered",
    "malformed scope",
    "repeated parameter",
    "basic client posting its secret",
    "post client using basic",
    "two methods at once",
    "portal not registered for the grant",
    "another grant",
]


@pytest.mark.parametrize("case", CASES)
def test_anything_else_is_left_to_the_full_path(both: Both, case: str) -> None:
    form, headers, status, error = _cases(both)[case]
    assert both.memory(form, headers) is None
    answered, body = both.full(form, headers)
    assert (answered, body["error"]) == (status, error)


def test_a_client_registered_for_dpop_gets_no_bearer_token(both: Both) -> None:
    # RFC 9449 §5.2: registration refuses the pair now; a record from before is refused.
    client_id = both.basic[0]
    with both.database.transaction() as session:
        record = session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        assert record is not None
        record.require_dpop = True
    with both.database.transaction(write=False) as session:
        both.instance.provider_cache.client(session, client_id)
    headers = _basic(*both.basic)
    assert both.memory([GRANT], headers) is None
    status, body = both.full([GRANT], headers)
    assert (status, body["error"]) == (400, "invalid_request")
    assert body["error_description"] == "this client must use DPoP-bound tokens"


def test_nothing_is_answered_once_the_cache_lets_go(both: Both) -> None:
    both.instance.provider_cache.clear()
    assert both.memory([GRANT], _basic(*both.basic)) is None
