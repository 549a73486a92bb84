"""Citizens, businesses and representation: creating and finding them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from authority.errors import Conflict, InvalidInput, NotFound
from authority.identity.identifiers import validate_resident_id, validate_uscc
from authority.identity.models import Business, Citizen, Representation
from authority.identity.passwords import PasswordHasher

ROLES = ("legal_representative", "authorised_agent")
MAX_NAME = 128
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{6,20}$")


def _name(name: str, what: str) -> str:
    name = name.strip()
    if not 0 < len(name) <= MAX_NAME:
        raise InvalidInput(f"{what} name must be 1-{MAX_NAME} characters")
    return name


def create_citizen(
    session: Session,
    hasher: PasswordHasher,
    *,
    id_number: str,
    name: str,
    password: str | None,
    now: datetime,
    email: str | None = None,
    phone: str | None = None,
    password_only: bool = False,
) -> Citizen:
    """Register a citizen; the identity number must be new and carry a valid check character."""
    number = validate_resident_id(id_number)
    if session.scalar(select(Citizen.id).where(Citizen.id_number == number)) is not None:
        raise Conflict(f"a citizen with identity number {number} already exists")
    if email is not None and not _EMAIL.match(email):
        raise InvalidInput(f"{email!r} is not an e-mail address")
    if phone is not None and not _PHONE.match(phone):
        raise InvalidInput(f"{phone!r} is not a phone number (digits, optional leading +)")
    citizen = Citizen(
        id_number=number,
        name=_name(name, "citizen"),
        email=email,
        email_verified=False,
        phone=phone,
        phone_verified=False,
        password_hash=hasher.hash(password) if password is not None else None,
        password_only=password_only,
        created_at=now,
    )
    session.add(citizen)
    session.flush()
    return citizen


def find_citizen(session: Session, id_number: str) -> Citizen:
    """The citizen with ``id_number``; :class:`NotFound` otherwise."""
    number = validate_resident_id(id_number)
    citizen = session.scalar(select(Citizen).where(Citizen.id_number == number))
    if citizen is None:
        raise NotFound(f"no citizen with identity number {number}")
    return citizen


def create_business(
    session: Session,
    *,
    uscc: str,
    name: str,
    representative: str,
    now: datetime,
    role: str = "legal_representative",
    valid_until: datetime | None = None,
) -> tuple[Business, Representation]:
    """Register a business with its first representative (a citizen's identity number)."""
    code = validate_uscc(uscc)
    citizen = find_citizen(session, representative)
    if session.scalar(select(Business.id).where(Business.uscc == code)) is not None:
        raise Conflict(f"a business with unified social credit code {code} already exists")
    business = Business(uscc=code, name=_name(name, "business"), created_at=now)
    session.add(business)
    session.flush()
    return business, add_representation(
        session, citizen, business, role=role, valid_from=now, valid_until=valid_until, now=now
    )


def add_representation(
    session: Session,
    citizen: Citizen,
    business: Business,
    *,
    role: str,
    valid_from: datetime,
    valid_until: datetime | None,
    now: datetime,
) -> Representation:
    """Let ``citizen`` act for ``business`` in ``role`` between the two dates."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if valid_until is not None and valid_until <= valid_from:
        raise InvalidInput("a representation must end after it starts")
    representation = Representation(
        citizen_id=citizen.id,
        business_id=business.id,
        role=role,
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=now,
    )
    session.add(representation)
    session.flush()
    return representation


@dataclass(frozen=True)
class Mandate:
    """A business a citizen may act for now, and in which role."""

    uscc: str
    name: str
    role: str

    def claim(self) -> dict[str, str]:
        """The ``business`` claim of tokens and userinfo."""
        return {"uscc": self.uscc, "name": self.name, "role": self.role}


def mandates(session: Session, citizen: Citizen, now: datetime) -> Sequence[Mandate]:
    """The businesses ``citizen`` represents at ``now``, by name."""
    rows = session.execute(
        select(Business, Representation.role)
        .join(Representation, Representation.business_id == Business.id)
        .where(
            Representation.citizen_id == citizen.id,
            Representation.valid_from <= now,
            or_(Representation.valid_until.is_(None), Representation.valid_until > now),
        )
        .order_by(Business.name)
    ).all()
    return [Mandate(business.uscc, business.name, role) for business, role in rows]
