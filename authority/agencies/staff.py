"""Agency staff: citizens who may use an agency's console, and in which role.

A ``clerk`` issues and searches the agency's licences; an ``officer`` may also
suspend, reinstate and revoke them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from authority.agencies.models import Agency, AgencyStaff
from authority.agencies.service import find_agency
from authority.errors import AuthorityError, InvalidInput
from authority.identity.accounts import find_citizen
from authority.identity.models import Citizen

ROLES = ("clerk", "officer")
CHANGES_STATUS = ("officer",)


class NotStaff(AuthorityError):
    """The person has no staff role (or not the needed one) in this agency."""

    slug = "not-staff"
    title = "Not agency staff"
    status = 403


@dataclass(frozen=True)
class StaffRole:
    """An agency the citizen works for, and their role there."""

    agency: Agency
    role: str

    @property
    def changes_status(self) -> bool:
        """Whether the role may suspend, reinstate and revoke licences."""
        return self.role in CHANGES_STATUS


def grant_staff(
    session: Session, *, agency_code: str, id_number: str, role: str, now: datetime
) -> AgencyStaff:
    """Give the citizen ``id_number`` the ``role`` in agency ``agency_code`` (or change it)."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    agency = find_agency(session, agency_code)
    citizen = find_citizen(session, id_number)
    record = session.scalar(
        select(AgencyStaff).where(
            AgencyStaff.agency_id == agency.id, AgencyStaff.citizen_id == citizen.id
        )
    )
    if record is None:
        record = AgencyStaff(agency_id=agency.id, citizen_id=citizen.id, role=role, granted_at=now)
        session.add(record)
    else:
        record.role = role
        record.granted_at = now
    session.flush()
    return record


def staff_roles(session: Session, citizen: Citizen) -> Sequence[StaffRole]:
    """The agencies ``citizen`` works for, by agency code."""
    rows = session.execute(
        select(Agency, AgencyStaff.role)
        .join(AgencyStaff, AgencyStaff.agency_id == Agency.id)
        .where(AgencyStaff.citizen_id == citizen.id)
        .order_by(Agency.code)
    ).all()
    return [StaffRole(agency, role) for agency, role in rows]


def staff_role(session: Session, citizen: Citizen, agency_code: str | None) -> StaffRole:
    """The citizen's role in ``agency_code`` (or their first agency); :class:`NotStaff` if none."""
    roles = staff_roles(session, citizen)
    for role in roles:
        if agency_code is None or role.agency.code == agency_code:
            return role
    raise NotStaff("you have no staff role in this agency")
