"""Schemathesis against our own /openapi.json: no documented operation of a live server
answers 5xx, whatever the generated input, with and without a valid agency token."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from authority.app import create_app
from authority.config import load_settings
from tests.live import LiveAuthority, serve_initialised

pytestmark = pytest.mark.slow

# Bounded for CI: ~30 operations x 2 databases x this many examples x 2 calls.
MAX_EXAMPLES = 20

# The document the server publishes at /openapi.json, built without a database (the app
# connects lazily); test_the_document_is_the_served_one checks it is the served one.
DOCUMENT = create_app(load_settings({"AUTHORITY_DATABASE_URL": "sqlite:///:memory:"})).openapi()
# DER bodies (RFC 6960 OCSPRequest, RFC 3161 TimeStampReq): arbitrary octets, some of them
# a valid DER header, so the parsers' error paths are exercised.
for media_type in ("application/ocsp-request", "application/timestamp-query"):
    schemathesis.openapi.media_type(
        media_type,
        st.one_of(st.binary(max_size=256), st.binary(max_size=64).map(b"0\x82\x01\x00".__add__)),
    )
# Batches are generated with at most a few items: a thousand generated items take
# Hypothesis longer to build than the server takes to refuse them. Batch limits are
# tested in tests/functional/test_licences_http.py.
GENERATED_BATCH = 3
_generated = copy.deepcopy(DOCUMENT)
_generated["components"]["schemas"]["BatchIn"]["properties"]["licences"]["maxItems"] = (
    GENERATED_BATCH
)
schema = schemathesis.openapi.from_dict(_generated)


@pytest.fixture(scope="module", params=["file-sqlite", "file-postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    yield from serve_initialised(request, tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def bearer(live: LiveAuthority) -> dict[str, str]:
    """The demo agency's token, with every licence scope: protected operations run."""
    return live.demo_agency()[1]


def test_the_document_is_the_served_one(live: LiveAuthority) -> None:
    served = httpx.get(f"{live.url}/openapi.json", timeout=30).json()
    assert served["paths"].keys() == DOCUMENT["paths"].keys()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_a_server_error(
    case: Any, live: LiveAuthority, bearer: dict[str, str]
) -> None:
    for headers in (bearer, {}):
        response = case.call(base_url=live.url, headers=headers, timeout=30)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: "
            f"{response.text[:500]}\n{case.as_curl_command()}"
        )


def test_a_nul_character_is_refused_not_a_server_error(
    live: LiveAuthority, bearer: dict[str, str]
) -> None:
    # Found by the test above: PostgreSQL cannot store U+0000 in text.
    body = {"licences": [{"type": "\x00", "holder": {"kind": "citizen", "id": "", "name": "0"}}]}
    body["licences"][0]["data"] = {}
    response = httpx.post(
        f"{live.url}/api/v1/licences/batch", json=body, headers=bearer, timeout=30
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
