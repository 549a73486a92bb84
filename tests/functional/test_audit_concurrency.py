"""Several processes appending to the audit trail at once on PostgreSQL leave one chain."""

from __future__ import annotations

import multiprocessing

import pytest

from authority.audit import record
from authority.audit.trail import GENESIS, as_dict, entries, entry_hash
from authority.config import load_settings
from authority.db.migrate import upgrade
from authority.db.session import Database
from tests.conftest import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]

PROCESSES = 4
TRANSACTIONS = 25


def _append(url: str, worker: int) -> None:
    database = Database.from_url(url)
    try:
        for n in range(TRANSACTIONS):
            with database.transaction() as session:
                # Two entries per transaction: they must stay adjacent in the chain.
                record(session, "test.concurrent", f"worker:{worker}", f"item:{n}", {"part": 1})
                record(session, "test.concurrent", f"worker:{worker}", f"item:{n}", {"part": 2})
    finally:
        database.dispose()


def test_concurrent_appends_keep_one_intact_chain(postgres_server: PostgresServer) -> None:
    url = load_settings({"AUTHORITY_DATABASE_URL": postgres_server.create()}).database_url
    database = Database.from_url(url)
    upgrade(database)
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        pool.starmap(_append, [(url, worker) for worker in range(PROCESSES)])
    with database.session() as session:
        rows = [as_dict(e) for e in entries(session)]
    database.dispose()
    total = PROCESSES * TRANSACTIONS * 2
    assert [r["seq"] for r in rows] == list(range(1, total + 1))
    assert [r["prev"] for r in rows] == [GENESIS, *(r["hash"] for r in rows[:-1])]
    assert all(entry_hash(r) == r["hash"] for r in rows)
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert (first["actor"], first["subject"]) == (second["actor"], second["subject"])
        assert (first["details"]["part"], second["details"]["part"]) == (1, 2)
    for worker in range(PROCESSES):
        mine = [r["subject"] for r in rows if r["actor"] == f"worker:{worker}"][::2]
        assert mine == [f"item:{n}" for n in range(TRANSACTIONS)]
