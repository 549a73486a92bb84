"""sector_identifier_uri (OIDC Core §8.1, OIDC Registration §2): fetched from a real
HTTP server on 127.0.0.1 at registration; its host is the pairwise sector."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jwt
import pytest
from fastapi.testclient import TestClient

from authority.config import Settings
from authority.db.base import utcnow
from authority.db.session import Database
from authority.errors import InvalidInput
from authority.instance import Instance
from authority.oidc.clients import register_client
from authority.oidc.sectors import (
    MAX_DOCUMENT_BYTES,
    InvalidSectorIdentifier,
    SectorDocument,
    fetch_sector_document,
)
from tests.functional.test_cli import run
from tests.functional.test_oidc import Portal, browser, login_code, redeem, seed_citizen

FIRST = "https://www.portal-one.example.gov/cb"
SECOND = "https://app.portal-two.example.org/return"


class _Documents(BaseHTTPRequestHandler):
    """Serves one body per path; counts requests."""

    bodies: ClassVar[dict[str, tuple[int, bytes, dict[str, str]]]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        status, body, headers = self.bodies.get(self.path, (404, b"", {}))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def documents() -> Iterator[str]:
    """A local HTTP server with the documents of each case; its base URL."""
    listing = json.dumps([FIRST, SECOND, "https://unused.example.net/cb"]).encode()
    _Documents.bodies = {
        "/good.json": (200, listing, {"Content-Type": "application/json"}),
        "/one.json": (200, json.dumps([FIRST]).encode(), {}),
        "/html": (200, b"<html>not json</html>", {}),
        "/object.json": (200, json.dumps({"redirect_uris": [FIRST, SECOND]}).encode(), {}),
        "/numbers.json": (200, json.dumps([FIRST, 42]).encode(), {}),
        "/big.json": (200, json.dumps([FIRST, SECOND, "x" * MAX_DOCUMENT_BYTES]).encode(), {}),
        "/moved": (302, b"", {"Location": "/good.json"}),
        "/broken": (500, b"oops", {}),
    }
    _Documents.requests = []
    server = HTTPServer(("127.0.0.1", 0), _Documents)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_good_document_lists_the_redirect_uris(documents: str) -> None:
    sector = fetch_sector_document(f"{documents}/good.json", allow_loopback_http=True)
    assert sector.sector == "127.0.0.1"
    sector.check_covers([FIRST, SECOND])
    with pytest.raises(InvalidSectorIdentifier) as missing:
        sector.check_covers([FIRST, "https://www.portal-one.example.gov/other"])
    assert str(missing.value.detail).endswith(
        "does not list the redirect URI(s) https://www.portal-one.example.gov/other; "
        "its JSON array must contain every one"
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/html", "did not answer JSON"),
        ("/object.json", "must answer a JSON array of redirect URI strings"),
        ("/numbers.json", "must answer a JSON array of redirect URI strings"),
        ("/big.json", f"answered more than {MAX_DOCUMENT_BYTES} bytes"),
        ("/moved", "answered HTTP 302 (redirects are not followed)"),
        ("/broken", "answered HTTP 500"),
        ("/absent", "answered HTTP 404"),
    ],
)
def test_unusable_documents_are_refused_saying_why(documents: str, path: str, message: str) -> None:
    with pytest.raises(InvalidSectorIdentifier) as refused:
        fetch_sector_document(f"{documents}{path}", allow_loopback_http=True)
    assert message in refused.value.detail
    assert refused.value.detail.startswith(f"sector_identifier_uri {documents}{path} ")


def test_an_unreachable_server_is_refused() -> None:
    uri = f"http://127.0.0.1:{_closed_port()}/sector.json"
    with pytest.raises(InvalidSectorIdentifier) as refused:
        fetch_sector_document(uri, allow_loopback_http=True)
    assert refused.value.detail.startswith(f"sector_identifier_uri {uri} could not be fetched: ")


@pytest.mark.parametrize(
    ("uri", "allow", "message"),
    [
        # Production: https only, even on loopback; nothing is fetched.
        ("http://127.0.0.1:9/good.json", False, "must use https (plain http only never here)"),
        (
            "http://sector.example.gov/s.json",
            True,
            "must use https (plain http only on a loopback host outside production)",
        ),
        ("ftp://127.0.0.1/s.json", True, "must be an absolute https URL without a fragment"),
        ("https://127.0.0.1/s.json#x", True, "must be an absolute https URL without a fragment"),
        ("/s.json", True, "must be an absolute https URL without a fragment"),
    ],
)
def test_only_https_or_loopback_http_outside_production(
    documents: str, uri: str, allow: bool, message: str
) -> None:
    with pytest.raises(InvalidSectorIdentifier) as refused:
        fetch_sector_document(uri, allow_loopback_http=allow)
    assert message in refused.value.detail
    assert _Documents.requests == []


def _register(
    instance: Instance, database: Database, uris: list[str], sector: SectorDocument | None
) -> Portal:
    with database.transaction() as session:
        client = register_client(
            session,
            instance.client_secret_key,
            name="Portal",
            redirect_uris=uris,
            scopes=["openid"],
            sector=sector,
            now=utcnow(),
        )
        assert client.describe().get("sector_identifier_uri") == (sector.uri if sector else None)
    return Portal(client.record.client_id, client.secret, uris[-1])


def test_the_sector_is_the_host_of_the_sector_identifier_uri(
    documents: str, settings: Settings, instance: Instance, database: Database
) -> None:
    seed_citizen(database)
    sector = fetch_sector_document(f"{documents}/good.json", allow_loopback_http=True)
    # Without the document, redirect URIs on two hosts are refused, as before.
    with pytest.raises(InvalidInput, match="or name a sector_identifier_uri"):
        _register(instance, database, [FIRST, SECOND], None)
    # A document that does not list every redirect URI is refused.
    with pytest.raises(InvalidSectorIdentifier, match="does not list the redirect URI"):
        _register(instance, database, [FIRST, "https://elsewhere.example.gov/cb"], sector)
    both_hosts = _register(instance, database, [FIRST, SECOND], sector)
    same_sector = _register(instance, database, [FIRST], sector)
    own_host = _register(instance, database, [FIRST], None)

    def subject(portal: Portal) -> str:
        http: TestClient = browser(settings, instance)
        code, verifier = login_code(http, portal, scope="openid")
        tokens = redeem(http, portal, code, verifier).json()
        return str(jwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"])

    assert subject(both_hosts) == subject(same_sector)  # the sector is 127.0.0.1 for both
    assert subject(own_host) != subject(same_sector)  # www.portal-one.example.gov


def test_client_create_with_a_sector_identifier_uri(
    documents: str,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    assert run(["init"], cli_env, tmp_path).returncode == 0
    base = ["client", "create", "--name", "Two hosts", "--redirect-uri", FIRST]
    base += ["--redirect-uri", SECOND]
    created = run(
        [*base, "--sector-identifier-uri", f"{documents}/good.json", "--json"], cli_env, tmp_path
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["sector_identifier_uri"] == f"{documents}/good.json"
    refused = run([*base, "--sector-identifier-uri", f"{documents}/one.json"], cli_env, tmp_path)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"authority: error: sector_identifier_uri {documents}/one.json does not list the "
        f"redirect URI(s) {SECOND}; its JSON array must contain every one\n"
    )
    assert _Documents.requests == ["/good.json", "/one.json"]
