"""Licence numbers stay unique with several worker processes and concurrent clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.live import LiveAuthority, serve_initialised

pytestmark = pytest.mark.slow

CLIENTS = 6
BATCHES_PER_CLIENT = 4
BATCH = 5


@pytest.fixture(scope="module", params=["file-postgresql", "file-sqlite"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    yield from serve_initialised(request, tmp_path_factory, request.param, workers=2)


def test_concurrent_issuance_across_two_workers(live: LiveAuthority) -> None:
    demo, headers = live.demo_agency()
    example = demo["licence_example"]

    def client(index: int) -> list[dict[str, Any]]:
        issued: list[dict[str, Any]] = []
        with httpx.Client(base_url=live.url, timeout=120, headers=headers) as http:
            for batch in range(BATCHES_PER_CLIENT):
                if batch % 2:
                    response = http.post("/api/v1/licences", json=example)
                    assert response.status_code == 201, response.text
                    issued.append(response.json())
                else:
                    bodies = [
                        {**example, "holder": {**example["holder"], "name": f"持证人{index}-{n}"}}
                        for n in range(BATCH)
                    ]
                    response = http.post("/api/v1/licences/batch", json={"licences": bodies})
                    assert response.status_code == 200, response.text
                    issued.extend(response.json()["licences"])
        return issued

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [lic for part in pool.map(client, range(CLIENTS)) for lic in part]

    expected = CLIENTS * (BATCHES_PER_CLIENT // 2) * (BATCH + 1)
    numbers = [lic["number"] for lic in results]
    assert len(numbers) == expected
    assert len(set(numbers)) == expected, "a licence number was issued twice"
    sequence = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert sequence == list(range(1, expected + 1)), "numbers skipped or repeated"
    # Every acknowledged licence is there, as acknowledged.
    with httpx.Client(base_url=live.url, timeout=30, headers=headers) as http:
        for licence in results[:: max(1, expected // 10)]:
            stored = http.get(f"/api/v1/licences/{licence['id']}").json()
            assert stored["number"] == licence["number"]
    # Both workers appended to one audit chain: one entry per licence, nothing forked.
    verdict = live.cli_json("audit", "verify")
    assert verdict["intact"] is True, verdict
    issued = [e for e in _export(live) if e["event"] == "licence.issued"]
    assert sorted(e["details"]["number"] for e in issued) == sorted(numbers)


def _export(live: LiveAuthority) -> list[dict[str, Any]]:
    lines = live.cli("audit", "export").stdout.splitlines()
    return [entry for entry in map(json.loads, lines) if entry["kind"] == "entry"]
