"""Operating a live server: readiness follows the database, SIGTERM finishes in-flight
requests, and a backup restored elsewhere still proves an old licence."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from authority.seals.cades import verify_document_seal
from tests.conftest import PostgresServer
from tests.live import LiveAuthority, clean_environment, initialised
from tests.openssl import cms_verify

pytestmark = pytest.mark.slow


def _eventually(check: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


@pytest.fixture
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    """A served instance of the variant the test names (``indirect`` parametrisation)."""
    authority = initialised(request, tmp_path_factory, request.param)
    authority.start()
    yield authority
    authority.stop()


@pytest.mark.postgresql
@pytest.mark.parametrize("live", ["file-postgresql"], indirect=True)
def test_readyz_follows_the_database(live: LiveAuthority, postgres_server: PostgresServer) -> None:
    agency, headers = live.demo_agency()
    name = make_url(live.env["AUTHORITY_DATABASE_URL"]).database

    def ready() -> int:
        return httpx.get(f"{live.url}/readyz", timeout=10).status_code

    assert ready() == 200
    with postgres_server.admin.connect() as admin:
        # The database becomes unreachable: no new connections, existing ones cut.
        admin.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
        admin.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        try:
            assert _eventually(lambda: ready() == 503)
            problem = httpx.get(f"{live.url}/readyz", timeout=10).json()
            assert problem["checks"]["database"]["ok"] is False
            assert problem["checks"]["keys"]["ok"] is True
            assert httpx.get(f"{live.url}/healthz", timeout=10).status_code == 200
            # Work that needs the database is refused as unavailable, never a 500.
            refused = httpx.post(
                f"{live.url}/api/v1/licences",
                json=agency["licence_example"],
                headers=headers,
                timeout=30,
            )
            assert refused.status_code == 503, refused.text
            assert refused.json()["type"].endswith("/problems/database-unavailable")
        finally:
            admin.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
    assert _eventually(lambda: ready() == 200)
    issued = httpx.post(
        f"{live.url}/api/v1/licences", json=agency["licence_example"], headers=headers, timeout=30
    )
    assert issued.status_code == 201, issued.text


@pytest.mark.parametrize("live", ["file-sqlite"], indirect=True)
def test_sigterm_lets_an_in_flight_request_finish(live: LiveAuthority) -> None:
    agency, headers = live.demo_agency()
    example = agency["licence_example"]
    batch = {"licences": [example] * 1000}  # seconds of sealing: surely in flight
    answers: list[httpx.Response] = []

    def post() -> None:
        url = f"{live.url}/api/v1/licences/batch"
        answers.append(httpx.post(url, json=batch, headers=headers, timeout=120))

    thread = threading.Thread(target=post)
    thread.start()
    time.sleep(0.5)
    assert live.process is not None
    live.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):  # no new connections once shutting down
        httpx.get(f"{live.url}/healthz", timeout=5)
    thread.join(timeout=120)
    status = live.process.wait(timeout=60)
    assert status in (0, -signal.SIGTERM)
    live.process = None
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    issued = answer.json()["licences"]
    assert len(issued) == 1000
    live.start()
    last = httpx.get(f"{live.url}/api/v1/licences/{issued[-1]['id']}", headers=headers)
    assert last.status_code == 200
    assert last.json()["number"] == issued[-1]["number"]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}: {result.stderr}"


@pytest.mark.parametrize("live", ["file-sqlite", "file-postgresql"], indirect=True)
def test_backup_restored_elsewhere_still_proves_an_old_licence(
    live: LiveAuthority, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for tool in ("sqlite3", "pg_dump", "pg_restore", "tar"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required (see .ci/run)", pytrace=False)
    agency, headers = live.demo_agency()
    old = httpx.post(
        f"{live.url}/api/v1/licences", json=agency["licence_example"], headers=headers, timeout=30
    ).json()
    live.cli("audit", "checkpoint")

    # Back up as docs/operations.md says: the database online, then the keys directory.
    backup = tmp_path / "backup"
    backup.mkdir()
    url = live.env["AUTHORITY_DATABASE_URL"]
    if url.startswith("sqlite"):
        database = url.split(":///", 1)[1]
        _run(["sqlite3", database, f".backup '{backup / 'authority.db'}'"], live.workdir)
    else:
        _run(["pg_dump", "--format=custom", f"--file={backup / 'authority.dump'}", url], tmp_path)
    _run(["tar", "-C", str(live.workdir), "-czf", str(backup / "keys.tar.gz"), "keys"], tmp_path)
    live.stop()

    # Restore into a fresh place: another directory, another database.
    place = tmp_path / "restored"
    (place / "var").mkdir(parents=True)
    _run(["tar", "-C", str(place), "-xzf", str(backup / "keys.tar.gz")], tmp_path)
    if url.startswith("sqlite"):
        restored_url = f"sqlite:///{place / 'var' / 'authority.db'}"
        shutil.copyfile(backup / "authority.db", place / "var" / "authority.db")
    else:
        restored_url = request.getfixturevalue("postgres_server").create()
        dump = str(backup / "authority.dump")
        _run(["pg_restore", "--no-owner", f"--dbname={restored_url}", dump], tmp_path)
    env: dict[str, Any] = {
        **live.env,
        "AUTHORITY_DATABASE_URL": restored_url,
        "AUTHORITY_KEYS_DIR": str(place / "keys"),
        "AUTHORITY_VAR_DIR": str(place / "var"),
    }
    restored = LiveAuthority(url=live.url, env=clean_environment(env), workdir=place)
    init = restored.cli_json("init")
    # Nothing to recreate: the keys and the CA came back. The new keys directory and
    # database are a configuration change, recorded in the audit trail and anchored.
    assert init["created"] == ["audit checkpoint"]
    restored.start()
    try:
        base = f"{restored.url}/api/v1/licences/{old['id']}"
        document = httpx.get(f"{base}/document", headers=headers)
        seal = httpx.get(f"{base}/seal", headers=headers)
        assert document.status_code == seal.status_code == 200
        assert json.loads(document.content)["number"] == old["number"]
        assert verify_document_seal(document.content, seal.content).timestamp is not None
        root = httpx.get(f"{restored.url}/pki/ca/root.pem").content
        checked = cms_verify(tmp_path, document.content, seal.content, root)
        assert checked.returncode == 0, checked.stderr
        assert restored.cli_json("audit", "verify")["intact"] is True
        # The restored keys still sign: a new licence, numbered after the old one.
        new = httpx.post(
            f"{restored.url}/api/v1/licences",
            json=agency["licence_example"],
            headers=headers,
            timeout=30,
        )
        assert new.status_code == 201, new.text
        assert new.json()["number"] > old["number"]
    finally:
        restored.stop()


@pytest.mark.parametrize("live", ["file-sqlite"], indirect=True)
def test_serve_seals_the_audit_trail_on_its_own(live: LiveAuthority) -> None:
    live.stop()
    live.env["AUTHORITY_AUDIT_CHECKPOINT_SECONDS"] = "1"
    live.start()
    agency, headers = live.demo_agency()  # the demo's agency and clients are recorded
    issued = httpx.post(
        f"{live.url}/api/v1/licences", json=agency["licence_example"], headers=headers, timeout=30
    )
    assert issued.status_code == 201, issued.text

    def sealed_to_the_end() -> bool:
        verdict = live.cli_json("audit", "verify")
        return bool(verdict["intact"] and verdict["anchored"] == verdict["entries"])

    assert _eventually(sealed_to_the_end, seconds=30)
    assert "audit checkpoint:" in live.stop()
