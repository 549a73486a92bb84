"""The hot path (authority/web/hot.py): what it answers, it answers as the whole stack would.

A plain client-credentials request for a client not yet held in memory goes
through the whole stack; the same request again, once the client is held, is
answered by the hot path. The two answers must agree in status, headers and
token claims, and everything the hot path declines (or cannot read) must reach
the stack with its body intact.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from authority.agencies.models import Agency
from authority.config import Settings
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.oidc.clients import register_agency_client
from authority.web.hot import HOT_BODY_LIMIT, HotPathMiddleware, HotRoute
from authority.web.metrics import Metrics
from authority.web.middleware import security_headers
from authority.web.oauth import HotTokenEndpoint

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PLAIN = b"grant_type=client_credentials&scope=licences%3Aissue"


@pytest.fixture
def agency_client(instance: Instance, database: Database) -> tuple[str, str]:
    with database.transaction() as session:
        agency = Agency(code="MOT", name="Ministry of Transport")
        session.add(agency)
        session.flush()
        registered = register_agency_client(session, instance.client_secret_key, agency, utcnow())
    return registered.record.client_id, registered.secret or ""


def _basic(client_id: str, secret: str) -> dict[str, str]:
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def _scope(settings: Settings, headers: dict[str, str], body: bytes) -> Scope:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/oauth/token",
        "raw_path": b"/oauth/token",
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("testclient", 50000),  # as TestClient says
        "server": ("127.0.0.1", 80),
        "state": {},
    }


def _call(app: Any, scope: Scope, chunks: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """One raw ASGI request whose body arrives in ``chunks``."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("read past the body")

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, body


def _token_claims(body: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(body["access_token"], options={"verify_signature": False})
    for varying in ("jti", "iat", "exp"):
        claims.pop(varying)
    return claims


def test_hot_answer_matches_the_whole_stack(
    client: TestClient, instance: Instance, settings: Settings, agency_client: tuple[str, str]
) -> None:
    headers = {**FORM, **_basic(*agency_client)}
    handler = HotTokenEndpoint(instance)
    scope = _scope(settings, headers, PLAIN)
    # Not yet held: the hot path declines and the stack answers.
    assert handler(scope, PLAIN) is None
    full = client.post("/oauth/token", content=PLAIN, headers=headers)
    # Now the client is held and its throttle key known clear: the hot path answers.
    assert handler(scope, PLAIN) is not None
    hot = client.post("/oauth/token", content=PLAIN, headers=headers)
    assert full.status_code == hot.status_code == 200
    assert list(full.headers.keys()) == list(hot.headers.keys())
    for name in full.headers:
        if name not in ("x-request-id", "content-length"):
            assert full.headers[name] == hot.headers[name], name
    assert full.json().keys() == hot.json().keys()
    assert {k: v for k, v in full.json().items() if k != "access_token"} == {
        k: v for k, v in hot.json().items() if k != "access_token"
    }
    assert _token_claims(full.json()) == _token_claims(hot.json())
    assert jwt.get_unverified_header(full.json()["access_token"]) == jwt.get_unverified_header(
        hot.json()["access_token"]
    )
    assert int(hot.headers["content-length"]) == len(hot.content)


def test_hot_answer_echoes_the_request_id_and_is_counted_and_logged(
    client: TestClient,
    instance: Instance,
    agency_client: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = {**FORM, **_basic(*agency_client)}
    client.post("/oauth/token", content=PLAIN, headers=headers)  # now held
    before = client.get("/metrics").text
    assert HotTokenEndpoint(instance)(_scope(instance.settings, headers, PLAIN), PLAIN) is not None
    with caplog.at_level(logging.INFO, logger="authority.access"):
        reply = client.post(
            "/oauth/token", content=PLAIN, headers={**headers, "X-Request-ID": "abc-123"}
        )
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == "abc-123"
    lines = [r for r in caplog.records if r.name == "authority.access"]
    assert [(r.getMessage().split()[:3], getattr(r, "route", None)) for r in lines] == [
        (["POST", "/oauth/token", "200"], "/oauth/token")
    ]
    series = 'authority_http_requests_total{method="POST",route="/oauth/token",status="200"}'

    def count(text: str) -> float:
        return next(
            float(line.split()[-1]) for line in text.splitlines() if line.startswith(series)
        )

    assert count(client.get("/metrics").text) == count(before) + 1


@pytest.mark.parametrize(
    ("body", "extra", "status", "error"),
    [
        (PLAIN, {"DPoP": "not-a-proof"}, 400, "invalid_dpop_proof"),
        # A parameter memory does not know: declined, and the stack issues the token.
        (PLAIN + b"&resource=https%3A%2F%2Fx.example", {}, 200, None),
        (PLAIN + b"&client_secret=x", {}, 400, "invalid_request"),
        (b"grant_type=client_credentials&scope=openid", {}, 400, "invalid_scope"),
        (b"grant_type=password", {}, 400, "unsupported_grant_type"),
        (PLAIN + b"&scope=licences%3Aread", {}, 400, "invalid_request"),
    ],
)
def test_declined_requests_reach_the_stack_with_their_body(
    client: TestClient,
    instance: Instance,
    agency_client: tuple[str, str],
    body: bytes,
    extra: dict[str, str],
    status: int,
    error: str | None,
) -> None:
    headers = {**FORM, **_basic(*agency_client)}
    assert client.post("/oauth/token", content=PLAIN, headers=headers).status_code == 200  # held
    all_headers = {**headers, **extra}
    assert HotTokenEndpoint(instance)(_scope(instance.settings, all_headers, body), body) is None
    reply = client.post("/oauth/token", content=body, headers=all_headers)
    assert (reply.status_code, reply.json().get("error")) == (status, error)
    assert reply.headers["cache-control"] == "no-store"


def test_a_wrong_secret_is_counted_by_the_stack(
    client: TestClient, agency_client: tuple[str, str]
) -> None:
    client_id, secret = agency_client
    headers = {**FORM, **_basic(client_id, secret)}
    assert client.post("/oauth/token", content=PLAIN, headers=headers).status_code == 200
    wrong = {**FORM, **_basic(client_id, secret + "x")}
    reply = client.post("/oauth/token", content=PLAIN, headers=wrong)
    assert (reply.status_code, reply.json()["error"]) == (401, "invalid_client")
    assert reply.headers["www-authenticate"].startswith("Basic")


def test_a_body_in_chunks_is_read_whole(
    client: TestClient, instance: Instance, agency_client: tuple[str, str]
) -> None:
    headers = {**FORM, **_basic(*agency_client)}
    assert client.post("/oauth/token", content=PLAIN, headers=headers).status_code == 200
    scope = _scope(instance.settings, headers, PLAIN)
    status, _headers, body = _call(client.app, scope, [PLAIN[:10], PLAIN[10:30], PLAIN[30:]])
    assert status == 200
    assert _token_claims(json.loads(body))["scope"] == "licences:issue"
    # Declined after reading (another parameter): the stack reads the same chunks again.
    longer = PLAIN + b"&grant_type=client_credentials"
    scope = _scope(instance.settings, headers, longer)
    status, _headers, body = _call(client.app, scope, [longer[:7], longer[7:]])
    assert status == 400
    assert b'"invalid_request"' in body


def test_a_body_longer_than_the_hot_limit_reaches_the_stack_whole(
    client: TestClient, agency_client: tuple[str, str]
) -> None:
    headers = {**FORM, **_basic(*agency_client)}
    assert client.post("/oauth/token", content=PLAIN, headers=headers).status_code == 200
    long = PLAIN + b"&resource=https%3A%2F%2Fx.example%2F" + b"a" * HOT_BODY_LIMIT
    reply = client.post("/oauth/token", content=long, headers=headers)
    # Read in part by the hot path, then replayed: the grant sees every parameter.
    assert reply.status_code == 200
    assert _token_claims(reply.json())["scope"] == "licences:issue"


def test_an_oversized_body_is_refused_by_the_stack(
    client: TestClient, settings: Settings, agency_client: tuple[str, str]
) -> None:
    headers = {**FORM, **_basic(*agency_client)}
    big = PLAIN + b"&x=" + b"a" * settings.max_body_bytes
    reply = client.post("/oauth/token", content=big, headers=headers)
    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/problem+json"
    # Streamed with no declared length: counted as it arrives, refused the same way.
    scope = _scope(settings, headers, big)
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    half = len(big) // 2
    status, _headers, _body = _call(client.app, scope, [big[:half], big[half:]])
    assert status == 413


def test_a_failing_handler_is_a_problem_with_the_usual_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def unreachable(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the stack was called")

    def failing(scope: Scope, body: bytes) -> None:
        raise RuntimeError("boom")

    app = HotPathMiddleware(
        unreachable,
        [HotRoute("POST", "/oauth/token", failing)],
        metrics=Metrics(),
        issuer="https://id.example.gov",
        limit=1000,
        headers=security_headers(hsts=True),
    )
    scope = _scope(Settings.model_construct(), FORM, PLAIN)
    with caplog.at_level(logging.ERROR, logger="authority.web"):
        status, headers, body = _call(app, scope, [PLAIN])
    assert status == 500
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-frame-options"] == "DENY"
    assert headers["strict-transport-security"].startswith("max-age=")
    assert len(headers["x-request-id"]) == 16
    assert b"quote the request_id" in body
    assert any("unhandled error on POST /oauth/token" in r.getMessage() for r in caplog.records)
