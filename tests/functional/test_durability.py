"""A server killed with SIGKILL during concurrent issuance loses no acknowledged licence,
reuses no number, leaves no half-made seal, and restarts without repair."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from authority.audit.models import AuditEntry
from authority.config import load_settings
from authority.db.session import create_database_engine
from authority.licences.models import Licence
from authority.seals.cades import verify_document_seal
from tests.live import LiveAuthority, initialised

pytestmark = pytest.mark.slow

CLIENTS = 6
KILL_AFTER = 40  # acknowledged licences before the kill


@pytest.fixture(params=["file-sqlite", "file-postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    authority = initialised(request, tmp_path_factory, request.param)
    yield authority
    authority.stop()


def _engine(live: LiveAuthority) -> Engine:
    url = live.env["AUTHORITY_DATABASE_URL"]
    return create_database_engine(load_settings({"AUTHORITY_DATABASE_URL": url}).database_url)


def _sequence(number: str) -> int:
    return int(number.rsplit("-", 1)[1])


def test_sigkill_during_concurrent_issuance_loses_nothing_acknowledged(
    live: LiveAuthority,
) -> None:
    live.start()
    agency, headers = live.demo_agency()
    example = agency["licence_example"]
    acknowledged: list[dict[str, Any]] = []
    refused: list[str] = []
    interrupted: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        body = {**example, "holder": {**example["holder"], "name": f"持证人{index}"}}
        with httpx.Client(base_url=live.url, timeout=60, headers=headers) as http:
            while True:
                try:
                    response = http.post("/api/v1/licences", json=body)
                except httpx.TransportError:
                    interrupted.append(index)  # killed with this request in flight
                    return
                with lock:
                    if response.status_code != 201:
                        refused.append(f"{response.status_code} {response.text}")
                        return
                    acknowledged.append(response.json())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < KILL_AFTER and not refused and time.monotonic() < deadline:
        time.sleep(0.02)
    live.kill()
    for thread in threads:
        thread.join(timeout=60)
    assert refused == []
    assert len(acknowledged) >= KILL_AFTER
    assert len(interrupted) == CLIENTS  # every client had a request cut off by the kill

    live.start()  # no repair step: the database recovers on its own
    numbers = [licence["number"] for licence in acknowledged]
    assert len(set(numbers)) == len(numbers), "a number was acknowledged twice"
    with httpx.Client(base_url=live.url, timeout=30, headers=headers) as http:
        for licence in acknowledged:
            stored = http.get(f"/api/v1/licences/{licence['id']}")
            assert stored.status_code == 200, f"acknowledged licence {licence['number']} lost"
            assert stored.json()["number"] == licence["number"]
            document = http.get(f"/api/v1/licences/{licence['id']}/document").content
            seal = http.get(f"/api/v1/licences/{licence['id']}/seal").content
            assert verify_document_seal(document, seal).timestamp is not None
        after = http.post("/api/v1/licences", json=example)
        assert after.status_code == 201, after.text

    engine = _engine(live)
    try:
        with engine.connect() as connection:
            stored = connection.execute(
                select(Licence.number, Licence.document, Licence.seal)
            ).all()
            issued_entries = connection.execute(
                select(AuditEntry.details).where(AuditEntry.event == "licence.issued")
            ).all()
    finally:
        engine.dispose()
    # Committed but unacknowledged licences may exist (the answer was lost); each is whole.
    for _number, document, seal in stored:
        verify_document_seal(document, seal)
    stored_numbers = sorted(_sequence(row.number) for row in stored)
    assert len(set(stored_numbers)) == len(stored_numbers)
    # Numbers after the restart continue past every number given before it: none reused.
    assert _sequence(after.json()["number"]) == stored_numbers[-1]
    assert _sequence(after.json()["number"]) > max(_sequence(n) for n in numbers)
    # Every stored licence, and nothing else, has its audit entry; the chain is intact.
    assert sorted(_sequence(d["number"]) for (d,) in issued_entries) == stored_numbers
    assert live.cli_json("audit", "verify")["intact"] is True
