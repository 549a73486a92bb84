"""Issuance stores each licence, its event and its audit entry, all of a batch or none."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.agencies.service import create_agency
from authority.audit.models import AuditEntry
from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.licences.models import Licence, LicenceCounter, LicenceEvent
from authority.licences.sealing import AgencySealer
from authority.licences.service import (
    LicenceRequest,
    change_status,
    create_licence_type,
    issue_licences,
)

ISSUER = "https://id.example.gov"
CITIZEN = "11010519491231002X"
SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": ["A", "B"]}},
    "required": ["category"],
}


@dataclass
class World:
    database: Database
    instance: Instance
    agency_id: int


@pytest.fixture
def world(instance: Instance, database: Database) -> Iterator[World]:
    with database.transaction() as session:
        agency, _ = create_agency(pki_for(instance, session), "ISS", "Agency of Issues", utcnow())
        create_licence_type(
            session, agency, code="ISS-A", name_zh="许可", name_en="Permit",
            schema=SCHEMA, validity_days=30, now=utcnow(),
        )  # fmt: skip
        agency_id = agency.id
    yield World(database, instance, agency_id)


def _requests(count: int) -> list[LicenceRequest]:
    return [
        LicenceRequest("ISS-A", "citizen", CITIZEN, f"持证人{i}", {"category": "A"})
        for i in range(count)
    ]


def _issue(world: World, session: Session, count: int) -> list[Licence]:
    agency = session.get(Agency, world.agency_id)
    assert agency is not None
    return issue_licences(
        session, AgencySealer(pki_for(world.instance, session), agency), agency,
        _requests(count), issuer=ISSUER, actor="client:test", now=utcnow(),
    )  # fmt: skip


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_batch_is_stored_as_issued(world: World) -> None:
    with world.database.transaction() as session:
        issued = [(lic.id, lic.number, lic.document, lic.seal, lic.qr_payload)
                  for lic in _issue(world, session, 3)]  # fmt: skip
    with world.database.session() as session:
        stored = session.scalars(select(Licence).order_by(Licence.number)).all()
        assert [(s.id, s.number, s.document, s.seal, s.qr_payload) for s in stored] == issued
        assert [s.status for s in stored] == ["valid"] * 3
        assert [s.data for s in stored] == [{"category": "A"}] * 3
        events = session.scalars(select(LicenceEvent).order_by(LicenceEvent.id)).all()
        assert [(e.licence_id, e.action, e.actor) for e in events] == [
            (licence_id, "issued", "client:test") for licence_id, *_ in issued
        ]
        audited = session.scalars(
            select(AuditEntry.subject).where(AuditEntry.event == "licence.issued")
        ).all()
        assert sorted(audited) == sorted(licence_id for licence_id, *_ in issued)
        # Time-ordered ids (RFC 9562 UUIDv7): new rows go to the end of the key's index.
        assert {uuid.UUID(licence_id).version for licence_id, *_ in issued} == {7}


def test_unattached_licences_are_stored_but_left_out_of_the_session(world: World) -> None:
    with world.database.transaction() as session:
        agency = session.get(Agency, world.agency_id)
        assert agency is not None
        sealer = AgencySealer(pki_for(world.instance, session), agency)
        (licence,) = issue_licences(
            session, sealer, agency, _requests(1), issuer=ISSUER, actor="client:test",
            now=utcnow(), attach=False,
        )  # fmt: skip
        assert licence not in session
        assert session.get(Licence, licence.id) is not licence
    with world.database.session() as session:
        stored = session.get_one(Licence, licence.id)
        assert (stored.number, stored.seal) == (licence.number, licence.seal)
        assert stored.status == "valid"


def test_issued_licences_are_persistent_in_the_session(world: World) -> None:
    with world.database.transaction() as session:
        first, _second = _issue(world, session, 2)
        assert session.get(Licence, first.id) is first
        change_status(session, first, "suspend", "checked", "client:test", utcnow())
    with world.database.session() as session:
        statuses = dict(session.execute(select(Licence.number, Licence.status)).all())
        assert sorted(statuses.values()) == ["suspended", "valid"]
        assert _count(session, LicenceEvent) == 3


def _stored(session: Session, type_id: int) -> tuple[int, int, int, int | None]:
    last = session.scalar(select(LicenceCounter.last).where(LicenceCounter.type_id == type_id))
    return (
        _count(session, Licence),
        _count(session, LicenceEvent),
        _count(session, AuditEntry),
        last,
    )


def test_a_batch_failing_to_store_leaves_nothing(world: World) -> None:
    # Another row already holds the number the batch's second licence gets: its INSERT
    # fails, and the whole unit of work (numbers, licences, events, audit) rolls back.
    with world.database.transaction() as session:
        (taken,) = _issue(world, session, 1)
        session.execute(
            update(Licence)
            .where(Licence.id == taken.id)
            .values(number=taken.number.replace("-000001", "-000003"))
        )
        type_id = taken.type_id
    with world.database.session() as session:
        before = _stored(session, type_id)
    assert before[0] == 1 and before[3] == 1
    with pytest.raises(IntegrityError), world.database.transaction() as session:
        _issue(world, session, 3)  # numbers 2, 3 (taken) and 4
    with world.database.session() as session:
        assert _stored(session, type_id) == before
