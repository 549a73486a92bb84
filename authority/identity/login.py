"""Logging a person in: password, then the second factor, into a provider session.

Failures never say whether the account exists: an unknown identity number and
a wrong password get the same answer after the same argon2 work, and both
count against the throttle. A failure is recorded (flushed) before the error
is raised; the caller's unit of work must still commit it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from authority.audit.trail import LOGIN_FAILED, LOGIN_SUCCEEDED, LOGIN_THROTTLED, record
from authority.db.bulk import add_written
from authority.errors import AuthorityError
from authority.identity import totp
from authority.identity.assurance import AMR_MFA, AMR_OTP, AMR_PASSWORD, level_of
from authority.identity.identifiers import InvalidIdentifier, validate_resident_id
from authority.identity.models import Citizen, LoginSession
from authority.identity.passwords import PasswordHasher
from authority.identity.throttle import LoginThrottled, Throttle

SESSION_LIFETIME = timedelta(hours=8)
# The time a person has to enter the second factor after the password.
PENDING_LIFETIME = timedelta(minutes=5)


class LoginFailed(AuthorityError):
    """The identity number or the password is wrong (which one is not said)."""

    slug = "login-failed"
    title = "Login failed"
    status = 401


class SecondFactorFailed(AuthorityError):
    """The one-time code is wrong, expired, or was already used."""

    slug = "second-factor-failed"
    title = "Second factor failed"
    status = 401


class SecondFactorMissing(AuthorityError):
    """The account needs a second factor and has none enrolled."""

    slug = "second-factor-missing"
    title = "Second factor not enrolled"
    status = 403


@dataclass(frozen=True)
class StartedSession:
    """A provider session and the secret the browser's cookie carries."""

    record: LoginSession
    cookie: str
    #: The account, held so that the unit of work finds it again without a query (the
    #: session's identity map keeps only the objects something else references).
    citizen: Citizen | None = None

    @property
    def complete(self) -> bool:
        """Whether every factor the account needs was given."""
        return not self.record.pending_factor


def _token_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class PasswordCheck:
    """A password verified before the unit of work that acts on it (argon2's ~13 ms of
    CPU then holds no database write lock): the account and counters it read, and the
    outcome."""

    id_number: str
    password: str
    address: str | None
    #: The account as read (detached), None for an unknown one.
    citizen: Citizen | None
    matches: bool
    #: :meth:`Throttle.mark` before the counters were read.
    mark: int

    def of(self, id_number: str, password: str, address: str | None) -> bool:
        """Whether this check was of the same attempt."""
        return (self.id_number, self.password, self.address) == (id_number, password, address)

    @property
    def stored(self) -> str | None:
        """The hash the password was verified against."""
        return self.citizen.password_hash if self.citizen is not None else None


class Authenticator:
    """Password and TOTP checks with throttling, producing provider sessions."""

    def __init__(self, hasher: PasswordHasher, throttle: Throttle) -> None:
        self.hasher = hasher
        self.throttle = throttle

    def check_password(
        self, session: Session, *, id_number: str, password: str, address: str | None, now: datetime
    ) -> PasswordCheck | None:
        """Verify a password ahead of :meth:`password`, only reading; None while throttled
        (no argon2 work then: :meth:`password` refuses the attempt).

        The same work whether or not the account exists (the decoy hash for an unknown
        one). Nothing is counted here: :meth:`password` counts the outcome in the unit
        of work that reveals it.
        """
        mark = self.throttle.mark()
        try:
            self.throttle.check(session, self.throttle.keys(id_number, address), now)
        except LoginThrottled:
            return None
        citizen = _active_citizen(session, id_number)
        stored = citizen.password_hash if citizen is not None else None
        matches = self.hasher.verify(stored, password)
        return PasswordCheck(id_number, password, address, citizen, matches, mark)

    def password(
        self,
        session: Session,
        *,
        id_number: str,
        password: str,
        address: str | None,
        now: datetime,
        step_up: bool = False,
        checked: PasswordCheck | None = None,
    ) -> StartedSession:
        """Check a password; a session pending the second factor when one is needed.

        ``step_up``: the request asks for more than level low, so an enrolled
        second factor is asked for even where the account does not require it.

        ``checked``: this attempt's :meth:`check_password`. Its reads stand while this
        process has counted no failure since they were made (nothing it read can have
        become blocked here); otherwise the throttle and the account are read again, and
        the password verified again unless its hash is unchanged.
        """
        keys = self.throttle.keys(id_number, address)
        attempt = (
            checked if checked is not None and checked.of(id_number, password, address) else None
        )
        if attempt is not None and self.throttle.quiet_since(attempt.mark):
            citizen = (
                session.merge(attempt.citizen, load=False) if attempt.citizen is not None else None
            )
            matches = attempt.matches
        else:
            try:
                self.throttle.check(session, keys, now)
            except LoginThrottled:
                audit_login(session, LOGIN_THROTTLED, None, address, factor="password")
                raise
            citizen = _active_citizen(session, id_number)
            stored = citizen.password_hash if citizen is not None else None
            if attempt is not None and attempt.stored == stored:
                matches = attempt.matches
            else:
                matches = self.hasher.verify(stored, password)
        if not matches or citizen is None:
            self.throttle.record_failure(session, keys, now)
            audit_login(session, LOGIN_FAILED, citizen, address, factor="password")
            raise LoginFailed("the identity number or the password is wrong")
        self.throttle.record_success(session, keys)
        if citizen.password_hash and self.hasher.needs_rehash(citizen.password_hash):
            citizen.password_hash = self.hasher.hash(password)
        if citizen.password_only and not (step_up and citizen.totp_secret):
            audit_login(session, LOGIN_SUCCEEDED, citizen, address, amr=[AMR_PASSWORD])
            return start_session(session, citizen, [AMR_PASSWORD], now)
        if citizen.totp_secret is None:
            raise SecondFactorMissing(
                "this account needs a second factor and has none: ask the help desk to enrol one"
            )
        return start_session(session, citizen, [AMR_PASSWORD], now, pending=True)

    def one_time_code(
        self,
        session: Session,
        login: LoginSession,
        *,
        code: str,
        address: str | None,
        now: datetime,
    ) -> StartedSession:
        """Check the TOTP code of a pending session; a new, complete session if right."""
        citizen = session.get(Citizen, login.citizen_id, with_for_update=True)
        if citizen is None or citizen.totp_secret is None or not login.pending_factor:
            raise SecondFactorFailed("there is no second factor to give for this login")
        keys = self.throttle.keys(citizen.id_number, address)
        try:
            self.throttle.check(session, keys, now)
        except LoginThrottled:
            audit_login(session, LOGIN_THROTTLED, citizen, address, factor="otp")
            raise
        step = totp.matching_step(citizen.totp_secret, code, now, citizen.totp_last_step)
        if step is None:
            self.throttle.record_failure(session, keys, now)
            audit_login(session, LOGIN_FAILED, citizen, address, factor="otp")
            raise SecondFactorFailed("the code is wrong or was already used")
        self.throttle.record_success(session, keys)
        citizen.totp_last_step = step
        # A new session id once fully authenticated (no session fixation).
        login.ended_at = now
        amr = [AMR_PASSWORD, AMR_OTP, AMR_MFA]
        audit_login(session, LOGIN_SUCCEEDED, citizen, address, amr=amr)
        return start_session(session, citizen, amr, now)


# Statements every login runs, built once: building one and computing its cache key
# cost more than SQLAlchemy's execution of the cached compiled form.
_ACTIVE_CITIZEN = select(Citizen).where(
    Citizen.id_number == bindparam("number"), Citizen.disabled_at.is_(None)
)
_SESSION_BY_TOKEN = select(LoginSession).where(LoginSession.token_hash == bindparam("token_hash"))


def _active_citizen(session: Session, id_number: str) -> Citizen | None:
    """The enabled account with the identity number typed, if it is a valid one."""
    try:
        number = validate_resident_id(id_number)
    except InvalidIdentifier:
        return None
    return session.scalar(_ACTIVE_CITIZEN, {"number": number})


def audit_login(
    session: Session, event: str, citizen: Citizen | None, address: str | None, **details: Any
) -> None:
    """A login event in the audit trail: the account by its row id, never the identity number
    tried (an unknown one stays unnamed); the client address as the actor."""
    subject = f"citizen:{citizen.id}" if citizen is not None else "citizen:unknown"
    record(session, event, f"address:{address or 'unknown'}", subject, details)


def start_session(
    session: Session, citizen: Citizen, amr: list[str], now: datetime, *, pending: bool = False
) -> StartedSession:
    """A new provider session for ``citizen`` authenticated with ``amr``."""
    cookie = secrets.token_urlsafe(32)
    record = LoginSession(
        id=secrets.token_urlsafe(24),
        token_hash=_token_hash(cookie),
        citizen_id=citizen.id,
        auth_time=now,
        acr=level_of(amr),
        amr=amr,
        pending_factor=pending,
        created_at=now,
        expires_at=now + (PENDING_LIFETIME if pending else SESSION_LIFETIME),
        ended_at=None,
    )
    add_written(session, record)
    return StartedSession(record, cookie, citizen)


def find_session(
    session: Session, cookie: str | None, now: datetime, *, pending: bool = False
) -> LoginSession | None:
    """The live session the cookie opens: a complete one, or with ``pending`` one
    still waiting for its second factor."""
    if not cookie or len(cookie) > 128:
        return None
    record = session.scalar(_SESSION_BY_TOKEN, {"token_hash": _token_hash(cookie)})
    if record is None or record.ended_at is not None or record.expires_at <= now:
        return None
    return record if record.pending_factor == pending else None


def end_session(record: LoginSession, now: datetime) -> None:
    """End a session at the provider (logout)."""
    if record.ended_at is None:
        record.ended_at = now
