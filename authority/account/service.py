"""A person's own records: their licences (and their businesses'), the data portals
received, how often each licence was verified, and their password and TOTP.

Licences are found by holder: the citizen's resident identity number, or the
USCC of a business they represent now. A licence of anyone else is
:class:`~authority.errors.NotFound`, exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from authority.account.models import VerificationDay
from authority.agencies.models import Agency
from authority.errors import InvalidInput, NotFound
from authority.identity import totp
from authority.identity.accounts import mandates
from authority.identity.models import Citizen, Passkey
from authority.identity.passwords import PasswordHasher
from authority.licences.models import Licence, LicenceType
from authority.licences.service import effective_status


class WrongPassword(InvalidInput):
    """The current password given to confirm a change is not the account's."""

    slug = "wrong-password"
    title = "Wrong password"
    status = 403


@dataclass(frozen=True)
class Verifications:
    """How often a licence was verified online: in total, and the last time."""

    total: int
    last_at: datetime | None


@dataclass(frozen=True)
class OwnLicence:
    """A licence as its holder sees it in the account."""

    licence: Licence
    type_name_zh: str
    type_name_en: str
    agency: str
    status: str
    holder_kind: str
    verifications: Verifications


def holder_ids(session: Session, citizen: Citizen, now: datetime) -> list[str]:
    """The citizen's own identity number and the USCC of each business they represent now."""
    return [citizen.id_number, *(m.uscc for m in mandates(session, citizen, now))]


def own_licences(session: Session, citizen: Citizen, now: datetime) -> list[OwnLicence]:
    """Licences held by the citizen or a business they represent, newest first."""
    holders = holder_ids(session, citizen, now)
    rows = session.execute(
        select(Licence, LicenceType, Agency)
        .join(LicenceType, LicenceType.id == Licence.type_id)
        .join(Agency, Agency.id == Licence.agency_id)
        .where(
            or_(
                (Licence.holder_kind == "citizen") & (Licence.holder_id == citizen.id_number),
                (Licence.holder_kind == "business") & Licence.holder_id.in_(holders[1:]),
            )
        )
        .order_by(Licence.issued_at.desc(), Licence.number)
    ).all()
    counts = verification_counts(session, [licence.id for licence, _, _ in rows])
    return [
        OwnLicence(
            licence,
            licence_type.name_zh,
            licence_type.name_en,
            agency.name,
            effective_status(licence, now),
            licence.holder_kind,
            counts.get(licence.id, Verifications(0, None)),
        )
        for licence, licence_type, agency in rows
    ]


def own_licence(session: Session, citizen: Citizen, licence_id: str, now: datetime) -> Licence:
    """The licence ``licence_id`` if the citizen or a business they represent holds it."""
    licence = session.get(Licence, licence_id) if len(licence_id) <= 36 else None
    if licence is None or licence.holder_id not in holder_ids(session, citizen, now):
        raise NotFound(f"you hold no licence {licence_id!r}")
    expected_kind = "citizen" if licence.holder_id == citizen.id_number else "business"
    if licence.holder_kind != expected_kind:
        raise NotFound(f"you hold no licence {licence_id!r}")
    return licence


def verification_counts(session: Session, licence_ids: Sequence[str]) -> dict[str, Verifications]:
    """Online verifications of each licence: total count and latest time."""
    if not licence_ids:
        return {}
    rows = session.execute(
        select(
            VerificationDay.licence_id,
            func.sum(VerificationDay.count),
            func.max(VerificationDay.last_at),
        )
        .where(VerificationDay.licence_id.in_(licence_ids))
        .group_by(VerificationDay.licence_id)
    ).all()
    return {licence_id: Verifications(int(total), last) for licence_id, total, last in rows}


def verification_days(session: Session, licence_id: str) -> list[VerificationDay]:
    """The licence's verification counts per day, newest first."""
    return list(
        session.scalars(
            select(VerificationDay)
            .where(VerificationDay.licence_id == licence_id)
            .order_by(VerificationDay.day.desc())
        )
    )


def change_password(hasher: PasswordHasher, citizen: Citizen, *, current: str, new: str) -> None:
    """Replace the password, given the current one."""
    if not hasher.verify(citizen.password_hash, current):
        raise WrongPassword("the current password is wrong")
    citizen.password_hash = hasher.hash(new)


def enrol_totp(citizen: Citizen, *, secret: str, code: str, now: datetime) -> None:
    """Make ``secret`` the citizen's second factor, once ``code`` proves their app has it."""
    if len(secret) != 32 or not secret.isalnum():
        raise InvalidInput("the authenticator secret is malformed; start again")
    step = totp.matching_step(secret, code, now, None)
    if step is None:
        raise InvalidInput("the code does not match: check your app's clock and try again")
    citizen.totp_secret = secret
    citizen.totp_last_step = step


def remove_totp(hasher: PasswordHasher, citizen: Citizen, *, password: str) -> None:
    """Remove the second factor, given the password; refused where one is required."""
    if not hasher.verify(citizen.password_hash, password):
        raise WrongPassword("the password is wrong")
    if not citizen.password_only:
        raise InvalidInput(
            "this account must keep a second factor: add a new one to replace it instead"
        )
    citizen.totp_secret = None
    citizen.totp_last_step = None


def remove_passkey(session: Session, citizen: Citizen, passkey_id: int) -> None:
    """Remove one of the citizen's passkeys; never the last way an account can log in."""
    passkey = session.get(Passkey, passkey_id)
    if passkey is None or passkey.citizen_id != citizen.id:
        raise NotFound(f"you have no passkey {passkey_id}")
    others = session.scalar(
        select(func.count()).where(Passkey.citizen_id == citizen.id, Passkey.id != passkey_id)
    )
    if citizen.password_hash is None and not others:
        raise InvalidInput("this passkey is the only way to log in to your account")
    session.delete(passkey)
    session.flush()
