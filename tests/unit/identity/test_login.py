"""Password and TOTP login with throttling that every worker shares (the database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from argon2 import PasswordHasher as Argon2Hasher
from sqlalchemy import select

from authority.db.base import utcnow
from authority.db.session import Database
from authority.identity import totp
from authority.identity.accounts import create_citizen
from authority.identity.assurance import LOA_LOW, LOA_SUBSTANTIAL
from authority.identity.login import (
    Authenticator,
    LoginFailed,
    SecondFactorFailed,
    SecondFactorMissing,
    find_session,
)
from authority.identity.models import Citizen
from authority.identity.passwords import PasswordHasher
from authority.identity.throttle import LoginThrottled, Throttle

CITIZEN = "11010519491231002X"
TWO_FACTOR = "110105198001010016"
PASSWORD = "correct horse battery"
ADDRESS = "192.0.2.7"


@pytest.fixture(scope="module")
def authenticator() -> Authenticator:
    return Authenticator(
        PasswordHasher(), Throttle(lambda value: f"{hash(value) & 0xFFFFFFFF:08x}")
    )


@pytest.fixture
def accounts(database: Database, authenticator: Authenticator) -> str:
    with database.transaction() as session:
        create_citizen(
            session,
            authenticator.hasher,
            id_number=CITIZEN,
            name="张三",
            password=PASSWORD,
            password_only=True,
            now=utcnow(),
        )
        two = create_citizen(
            session,
            authenticator.hasher,
            id_number=TWO_FACTOR,
            name="李四",
            password=PASSWORD,
            now=utcnow(),
        )
        two.totp_secret = totp.new_secret()
        return two.totp_secret


def _login(database: Database, auth: Authenticator, number: str, password: str, now=None):  # type: ignore[no-untyped-def]
    with database.transaction() as session:
        try:
            return auth.password(
                session, id_number=number, password=password, address=ADDRESS, now=now or utcnow()
            )
        except (LoginFailed, LoginThrottled) as exc:
            return exc  # the unit of work commits: the failure stays counted


def test_password_alone_gives_level_low(
    database: Database, authenticator: Authenticator, accounts: str
) -> None:
    started = _login(database, authenticator, CITIZEN, PASSWORD)
    assert started.complete
    assert started.record.acr == LOA_LOW
    assert started.record.amr == ["pwd"]
    with database.transaction() as session:
        assert find_session(session, started.cookie, utcnow()).id == started.record.id
        assert find_session(session, started.cookie + "x", utcnow()) is None


def test_a_hash_of_earlier_parameters_is_upgraded_at_login(
    database: Database, authenticator: Authenticator, accounts: str
) -> None:
    # Hashes made before 2026-12-07 (OWASP's 19 MiB, t=2 option) still log in, and the
    # successful login stores a hash with the current parameters.
    earlier = Argon2Hasher(time_cost=2, memory_cost=19 * 1024, parallelism=1).hash(PASSWORD)
    with database.transaction() as session:
        citizen = session.scalar(select(Citizen).where(Citizen.id_number == CITIZEN))
        assert citizen is not None
        citizen.password_hash = earlier
    assert _login(database, authenticator, CITIZEN, PASSWORD).complete
    with database.session() as session:
        stored = session.scalar(select(Citizen.password_hash).where(Citizen.id_number == CITIZEN))
    assert stored is not None and stored.startswith("$argon2id$v=19$m=7168,t=5,p=1$")
    assert authenticator.hasher.verify(stored, PASSWORD)


def test_unknown_account_and_wrong_password_answer_alike(
    database: Database, authenticator: Authenticator, accounts: str
) -> None:
    wrong = _login(database, authenticator, CITIZEN, "not the password")
    unknown = _login(database, authenticator, "110105198001010024", PASSWORD)
    malformed = _login(database, authenticator, "nobody", PASSWORD)
    assert type(wrong) is type(unknown) is type(malformed) is LoginFailed
    assert wrong.detail == unknown.detail == malformed.detail


def test_backoff_then_lock_per_account(
    database: Database, authenticator: Authenticator, accounts: str
) -> None:
    now = utcnow()
    for _ in range(3):  # free failures
        assert isinstance(_login(database, authenticator, CITIZEN, "wrong", now), LoginFailed)
    assert isinstance(_login(database, authenticator, CITIZEN, "wrong", now), LoginFailed)
    # The fourth failure imposes a wait: even the right password is not checked now.
    blocked = _login(database, authenticator, CITIZEN, PASSWORD, now)
    assert isinstance(blocked, LoginThrottled)
    assert blocked.retry_after == 2
    assert blocked.detail == "too many failed attempts; wait 2 seconds before trying again"
    assert blocked.headers["Retry-After"] == "2"
    # Each further failure doubles the wait, then the account locks for 15 minutes.
    for _failure in range(5, 11):
        now += timedelta(minutes=2)
        assert isinstance(_login(database, authenticator, CITIZEN, "wrong", now), LoginFailed)
    locked = _login(database, authenticator, CITIZEN, PASSWORD, now + timedelta(minutes=13))
    assert isinstance(locked, LoginThrottled)
    assert "wait 2 minutes" in locked.detail
    # The same lock answer for an account that does not exist: nothing to enumerate.
    for _ in range(10):
        now += timedelta(minutes=2)
        _login(database, authenticator, "110105198001010024", "wrong", now)
    ghost = _login(
        database, authenticator, "110105198001010024", PASSWORD, now + timedelta(minutes=1)
    )
    assert isinstance(ghost, LoginThrottled)
    assert "minutes" in ghost.detail
    # After the lock, the right password works and the count starts again.
    started = _login(database, authenticator, CITIZEN, PASSWORD, now + timedelta(minutes=16))
    assert started.complete


def test_second_factor_required_and_not_replayable(
    database: Database, authenticator: Authenticator, accounts: str
) -> None:
    secret = accounts
    now = utcnow()
    pending = _login(database, authenticator, TWO_FACTOR, PASSWORD, now)
    assert not pending.complete
    code = totp.code_at(secret, now)
    wrong = "000000" if code != "000000" else "111111"
    with database.transaction() as session:
        assert find_session(session, pending.cookie, now) is None  # not logged in yet
        login = find_session(session, pending.cookie, now, pending=True)
        with pytest.raises(SecondFactorFailed, match="wrong or was already used"):
            authenticator.one_time_code(session, login, code=wrong, address=ADDRESS, now=now)
    with database.transaction() as session:
        login = find_session(session, pending.cookie, now, pending=True)
        done = authenticator.one_time_code(session, login, code=code, address=ADDRESS, now=now)
        assert done.complete
        assert done.record.id != pending.record.id  # a fresh session id after the factor
        assert done.record.acr == LOA_SUBSTANTIAL
        assert done.record.amr == ["pwd", "otp", "mfa"]
        assert find_session(session, pending.cookie, now, pending=True) is None
        assert find_session(session, done.cookie, now) is not None
    again = _login(database, authenticator, TWO_FACTOR, PASSWORD, now)
    with database.transaction() as session, pytest.raises(SecondFactorFailed):
        login = find_session(session, again.cookie, now, pending=True)
        authenticator.one_time_code(session, login, code=code, address=ADDRESS, now=now)


def test_second_factor_missing_is_said_after_the_password(
    database: Database, authenticator: Authenticator, accounts: str
) -> None:
    with database.transaction() as session:
        create_citizen(
            session,
            authenticator.hasher,
            id_number="110105198001010024",
            name="王五",
            password=PASSWORD,
            now=utcnow(),
        )
    with database.transaction() as session, pytest.raises(SecondFactorMissing):
        authenticator.password(
            session, id_number="110105198001010024", password=PASSWORD, address=None, now=utcnow()
        )


def _check(database: Database, auth: Authenticator, number: str, password: str):  # type: ignore[no-untyped-def]
    with database.transaction(write=False) as session:
        return auth.check_password(
            session, id_number=number, password=password, address=ADDRESS, now=utcnow()
        )


def _login_checked(database: Database, auth: Authenticator, number: str, password: str, checked):  # type: ignore[no-untyped-def]
    with database.transaction() as session:
        try:
            return auth.password(
                session,
                id_number=number,
                password=password,
                address=ADDRESS,
                now=utcnow(),
                checked=checked,
            )
        except (LoginFailed, LoginThrottled) as exc:
            return exc


def test_an_early_check_decides_only_for_the_same_attempt(
    database: Database, authenticator: Authenticator, accounts: str
) -> None:
    right = _check(database, authenticator, CITIZEN, PASSWORD)
    wrong = _check(database, authenticator, CITIZEN, PASSWORD + "x")
    assert (right.matches, wrong.matches) == (True, False)
    unknown = _check(database, authenticator, "110105194912310029", PASSWORD)
    assert (unknown.citizen, unknown.matches) == (None, False)  # the decoy was verified
    assert _login_checked(database, authenticator, CITIZEN, PASSWORD, right).complete
    # A check of another password is not used: the password is verified again.
    assert _login_checked(database, authenticator, CITIZEN, PASSWORD, wrong).complete
    failed = _login_checked(database, authenticator, CITIZEN, PASSWORD + "x", wrong)
    assert isinstance(failed, LoginFailed)


def test_after_a_failure_an_early_check_is_read_again(
    database: Database, authenticator: Authenticator, accounts: str
) -> None:
    """A failure counted since the check read the counters may have blocked its keys, or
    the account may have changed: the unit of work reads both again."""
    early = _check(database, authenticator, CITIZEN, PASSWORD)
    for _ in range(4):
        assert isinstance(_login(database, authenticator, CITIZEN, "wrong password!"), LoginFailed)
    assert _check(database, authenticator, CITIZEN, PASSWORD) is None  # no argon2 work
    # The check made before the key was blocked decides nothing: the throttle answers.
    assert isinstance(
        _login_checked(database, authenticator, CITIZEN, PASSWORD, early), LoginThrottled
    )
    # Read again, the stored hash is not the one verified (here: another account's):
    # the password is verified again, and is wrong.
    later = _check(database, authenticator, TWO_FACTOR, PASSWORD + "x")
    assert later.matches is False
    mismatched = replace(later, matches=True, mark=later.mark - 1, citizen=early.citizen)
    assert isinstance(
        _login_checked(database, authenticator, TWO_FACTOR, PASSWORD + "x", mismatched),
        LoginFailed,
    )
