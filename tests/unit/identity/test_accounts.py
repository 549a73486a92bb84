"""Citizens, businesses and representation on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authority.db.base import utcnow
from authority.db.session import Database
from authority.errors import Conflict, InvalidInput, NotFound
from authority.identity.accounts import (
    Mandate,
    add_representation,
    create_business,
    create_citizen,
    mandates,
)
from authority.identity.identifiers import InvalidIdentifier
from authority.identity.passwords import PasswordHasher

CITIZEN = "11010519491231002X"
OTHER_CITIZEN = "110105198001010016"
USCC = "91350100M000100Y43"
OTHER_USCC = "91110000600037341L"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


def test_citizen_is_stored_with_an_argon2id_hash(
    database: Database, hasher: PasswordHasher
) -> None:
    with database.transaction() as session:
        citizen = create_citizen(
            session,
            hasher,
            id_number=CITIZEN.lower(),
            name=" 张三 ",
            password="correct horse battery",
            email="zhang@example.cn",
            now=utcnow(),
        )
        assert citizen.id_number == CITIZEN
        assert citizen.name == "张三"
        assert citizen.password_hash is not None
        assert citizen.password_hash.startswith("$argon2id$v=19$m=7168,t=5,p=1$")
        assert hasher.verify(citizen.password_hash, "correct horse battery")
        assert not hasher.verify(citizen.password_hash, "correct horse battery ")
        assert not citizen.password_only


def test_citizen_rules(database: Database, hasher: PasswordHasher) -> None:
    now = utcnow()
    with database.transaction() as session:
        create_citizen(session, hasher, id_number=CITIZEN, name="张三", password=None, now=now)
        with pytest.raises(Conflict, match="already exists"):
            create_citizen(session, hasher, id_number=CITIZEN, name="x", password=None, now=now)
        with pytest.raises(InvalidIdentifier, match="expected X"):
            create_citizen(
                session, hasher, id_number="110105194912310021", name="x", password=None, now=now
            )
        with pytest.raises(InvalidInput, match="12 to 256"):
            create_citizen(
                session, hasher, id_number=OTHER_CITIZEN, name="x", password="short", now=now
            )
        with pytest.raises(InvalidInput, match="not an e-mail"):
            create_citizen(
                session,
                hasher,
                id_number=OTHER_CITIZEN,
                name="x",
                password=None,
                email="x",
                now=now,
            )


def test_business_with_its_representative(database: Database, hasher: PasswordHasher) -> None:
    now = utcnow()
    with database.transaction() as session:
        citizen = create_citizen(
            session, hasher, id_number=CITIZEN, name="张三", password=None, now=now
        )
        _business, representation = create_business(
            session, uscc=USCC, name="演示科技有限公司", representative=CITIZEN, now=now
        )
        assert representation.role == "legal_representative"
        other, _ = create_business(
            session,
            uscc=OTHER_USCC,
            name="Agent Co",
            representative=CITIZEN,
            role="authorised_agent",
            valid_until=now + timedelta(days=1),
            now=now,
        )
        assert mandates(session, citizen, now) == [
            Mandate(OTHER_USCC, "Agent Co", "authorised_agent"),
            Mandate(USCC, "演示科技有限公司", "legal_representative"),
        ]
        # The agent's mandate lapses; it is no longer offered.
        assert mandates(session, citizen, now + timedelta(days=2)) == [
            Mandate(USCC, "演示科技有限公司", "legal_representative")
        ]
        assert mandates(session, citizen, now - timedelta(seconds=1)) == []
        with pytest.raises(Conflict):
            create_business(session, uscc=USCC, name="again", representative=CITIZEN, now=now)
        with pytest.raises(NotFound, match="no citizen"):
            create_business(
                session, uscc="91350100M00010002X", name="x", representative=OTHER_CITIZEN, now=now
            )
        with pytest.raises(InvalidInput, match="role must be"):
            add_representation(
                session, citizen, other, role="owner", valid_from=now, valid_until=None, now=now
            )
        with pytest.raises(InvalidIdentifier, match="GB 32100"):
            create_business(
                session, uscc="91350100M000100Y44", name="x", representative=CITIZEN, now=now
            )
