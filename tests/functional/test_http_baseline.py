"""The HTTP baseline every request meets: health, metrics, problems, headers, ids."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from authority.app import create_app
from authority.bootstrap import initialise
from authority.config import Settings, load_settings
from authority.errors import Conflict
from authority.instance import Instance
from authority.logs import JsonFormatter, RequestIdFilter

PROBLEM = "application/problem+json"


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_initialised(client: TestClient, instance: Instance) -> None:
    initialise(instance)
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["keys"]["ok"] is True


def test_readyz_on_an_empty_database_says_what_to_do(fresh_database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        {"AUTHORITY_DATABASE_URL": fresh_database_url, "AUTHORITY_KEYS_DIR": str(tmp_path)}
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["type"] == "http://127.0.0.1:8000/problems/unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert "run `authority init`" in body["checks"]["database"]["detail"]


def test_readyz_when_the_database_is_unreachable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        {
            "AUTHORITY_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
            "AUTHORITY_KEYS_DIR": str(tmp_path),
        }
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    detail = response.json()["checks"]["database"]["detail"]
    assert detail.startswith("database does not answer")


def test_unknown_path_is_a_problem(client: TestClient) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "http://127.0.0.1:8000/problems/not-found"
    assert body["title"] == "Not Found"
    assert body["status"] == 404
    assert body["detail"] == "nothing at /no/such/thing"
    assert body["instance"] == "/no/such/thing"
    assert body["request_id"] == response.headers["x-request-id"]


def test_wrong_method_is_a_problem(client: TestClient) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/problems/method-not-allowed")
    assert response.headers["allow"] == "GET"


def test_problem_types_are_documented(client: TestClient) -> None:
    page = client.get("/problems/not-found")
    assert page.status_code == 200
    assert "No resource exists" in page.text
    missing = client.get("/problems/nonsense")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/problems/not-found")


class Thing(BaseModel):
    name: str
    size: int


def _app_with_test_routes(settings: Settings, instance: Instance) -> FastAPI:
    app = create_app(settings, instance)

    @app.post("/test/things")
    def make_thing(thing: Thing) -> dict[str, str]:
        return {"name": thing.name}

    @app.get("/test/conflict")
    def conflict() -> None:
        raise Conflict("thing 7 already exists", thing=7)

    @app.get("/test/crash")
    def crash() -> None:
        raise ZeroDivisionError("secret internal detail")

    return app


@pytest.fixture
def test_client(settings: Settings, instance: Instance) -> TestClient:
    return TestClient(_app_with_test_routes(settings, instance))


def test_validation_errors_are_problems_naming_the_field(test_client: TestClient) -> None:
    response = test_client.post("/test/things", json={"name": "x", "size": "big"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"].endswith("/problems/validation")
    assert body["detail"].startswith("body.size: ")
    assert body["errors"][0]["field"] == "body.size"


def test_malformed_json_is_a_problem(test_client: TestClient) -> None:
    response = test_client.post(
        "/test/things", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


def test_domain_errors_render_with_their_slug_and_extensions(test_client: TestClient) -> None:
    response = test_client.get("/test/conflict")
    assert response.status_code == 409
    body = response.json()
    assert body["type"].endswith("/problems/conflict")
    assert body["detail"] == "thing 7 already exists"
    assert body["thing"] == 7


def test_unexpected_errors_are_generic_problems_with_headers(test_client: TestClient) -> None:
    response = test_client.get("/test/crash", headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"].endswith("/problems/internal")
    assert "secret internal detail" not in response.text
    assert body["request_id"] == "trace-42"
    assert response.headers["x-request-id"] == "trace-42"
    assert response.headers["x-frame-options"] == "DENY"


def test_oversized_bodies_are_refused_before_reading(
    settings: Settings, instance: Instance
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 2048})
    client = TestClient(_app_with_test_routes(small, instance))
    response = client.post(
        "/test/things", content=b"x" * 4096, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/problems/payload-too-large")

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * 1024

    streamed = client.post(
        "/test/things", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


@pytest.mark.parametrize("path", ["/healthz", "/no/such/thing", "/openapi.json", "/docs"])
def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in headers  # plain-http development issuer


def test_hsts_when_the_issuer_is_https(instance: Instance, settings: Settings) -> None:
    secure = settings.model_copy(update={"issuer": "https://id.example.gov"})
    response = TestClient(create_app(secure, instance)).get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")


def test_request_ids_are_echoed_or_generated(client: TestClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"})
    assert generated.headers["x-request-id"] != "bad id\twith junk"
    assert len(generated.headers["x-request-id"]) == 16


def test_access_log_lines_carry_the_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="authority.access"):
        client.get("/healthz", headers={"X-Request-ID": "req-77"})
    records = [r for r in caplog.records if r.name == "authority.access"]
    assert records, "no access log line"
    assert records[-1].request_id == "req-77"  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["request_id"] == "req-77"
    assert line["route"] == "/healthz"
    assert line["status"] == 200
    assert line["message"].startswith("GET /healthz 200")


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/healthz")
    client.get("/problems/not-found")
    client.get("/problems/validation")
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'authority_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
    assert (
        'authority_http_requests_total{method="GET",route="/problems/{slug}",status="200"} 2.0'
    ) in text
    assert 'route="<unmatched>",status="404"' in text
    assert 'authority_http_request_duration_seconds_bucket{le="0.001",method="GET"' in text


def test_openapi_and_local_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    assert "/healthz" in spec.json()["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "<script>" not in docs.text  # no inline script: the CSP forbids it
    assert "//" not in docs.text.replace("://", "")  # no other origin
    for asset in (
        "/static/swagger-ui/swagger-ui-bundle.js",
        "/static/swagger-ui/swagger-ui.css",
        "/static/docs.js",
    ):
        assert client.get(asset).status_code == 200, asset


def test_lean_routes_are_documented_labelled_and_wrapped(client: TestClient) -> None:
    """The token endpoint bypasses FastAPI's routing (authority/web/lean.py) but not the
    middleware, the problem handlers or the OpenAPI description."""
    operation = client.get("/openapi.json").json()["paths"]["/oauth/token"]["post"]
    assert operation["operationId"] == "token_oauth_token_post"
    assert "application/x-www-form-urlencoded" in operation["requestBody"]["content"]
    refused = client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert refused.headers["x-frame-options"] == "DENY"
    assert len(refused.headers["x-request-id"]) == 16
    wrong_method = client.get("/oauth/token")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == PROBLEM
    assert wrong_method.headers["content-security-policy"].startswith("default-src 'self'")
    text = client.get("/metrics").text
    assert 'authority_http_requests_total{method="POST",route="/oauth/token",status="401"} 1.0' in (
        text
    )
    assert 'method="GET",route="/oauth/token",status="405"} 1.0' in text
