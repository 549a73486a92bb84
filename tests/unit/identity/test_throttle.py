"""Client keys: a process remembers for a moment that a key had no wait on it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authority.db.base import utcnow
from authority.db.session import Database
from authority.identity.models import LoginThrottle
from authority.identity.throttle import CLEAR_FOR, ClearKeys, LoginThrottled, Throttle


def _throttle() -> Throttle:
    return Throttle(lambda value: f"{hash(value) & 0xFFFFFFFF:08x}")


def test_a_wait_set_by_another_worker_is_honoured_once_the_memory_expires(
    database: Database,
) -> None:
    throttle = _throttle()
    keys = throttle.client_keys("agency-api", "192.0.2.7")
    now = utcnow()
    assert not throttle.known_clear(keys, now)
    with database.transaction() as session:
        throttle.check(session, keys, now)  # nothing there: remembered as clear
        assert throttle.known_clear(keys, now)
        assert not throttle.known_clear(keys, now + CLEAR_FOR)
        # Another worker records enough failures to lock the key.
        session.add(
            LoginThrottle(
                key=keys[0][0],
                failures=30,
                last_failure_at=now,
                blocked_until=now + timedelta(minutes=5),
            )
        )
        session.flush()
        throttle.check(session, keys, now + CLEAR_FOR - timedelta(milliseconds=1))
        with pytest.raises(LoginThrottled) as raised:
            throttle.check(session, keys, now + CLEAR_FOR)
        assert raised.value.retry_after == 298


def test_a_failure_recorded_here_is_seen_at_once(database: Database) -> None:
    throttle = _throttle()
    keys = throttle.client_keys("agency-api", "192.0.2.7")
    now = utcnow()
    with database.transaction() as session:
        throttle.check(session, keys, now)
        for _ in range(throttle.client.free_failures + 1):
            throttle.record_failure(session, keys, now)
        with pytest.raises(LoginThrottled):
            throttle.check(session, keys, now)


def test_account_and_address_keys_are_always_read_from_the_database(database: Database) -> None:
    throttle = _throttle()
    keys = throttle.keys("11010519491231002X", "192.0.2.7")
    now = utcnow()
    with database.transaction() as session:
        throttle.check(session, keys, now)
        assert not throttle.known_clear(keys, now)
        session.add(
            LoginThrottle(
                key=keys[0][0], failures=10, last_failure_at=now, blocked_until=now + CLEAR_FOR
            )
        )
        session.flush()
        with pytest.raises(LoginThrottled):
            throttle.check(session, keys, now)


def test_clear_keys_are_bounded() -> None:
    clear = ClearKeys(size=2)
    now = utcnow()
    for key in ("a", "b", "c"):
        clear.note(key, now)
    assert not clear.fresh("a", now)
    assert clear.fresh("b", now) and clear.fresh("c", now)
    clear.forget("c")
    assert not clear.fresh("c", now)


def test_a_login_checks_account_and_address_together(database: Database) -> None:
    # Both keys are read in one query; either one blocked refuses, with the longer wait.
    throttle = _throttle()
    keys = throttle.keys("11010519491231002X", "192.0.2.7")
    (account, _), (address, _) = keys
    now = utcnow()
    with database.transaction() as session:
        session.add(
            LoginThrottle(
                key=address, failures=30, last_failure_at=now, blocked_until=now + CLEAR_FOR
            )
        )
        session.flush()
        with pytest.raises(LoginThrottled) as raised:
            throttle.check(session, keys, now)
        assert raised.value.retry_after == 2
        session.add(
            LoginThrottle(
                key=account,
                failures=10,
                last_failure_at=now,
                blocked_until=now + timedelta(seconds=40),
            )
        )
        session.flush()
        with pytest.raises(LoginThrottled) as raised:
            throttle.check(session, keys, now)
        assert raised.value.retry_after == 40
        throttle.check(session, keys, now + timedelta(seconds=40))


def test_a_success_forgets_the_account_failures_only(database: Database) -> None:
    throttle = _throttle()
    keys = throttle.keys("11010519491231002X", "192.0.2.7")
    (account, _), (address, _) = keys
    now = utcnow()
    with database.transaction() as session:
        throttle.record_success(session, keys)  # nothing to forget: no error, nothing made
        assert session.get(LoginThrottle, account) is None
        for _ in range(2):
            throttle.record_failure(session, keys, now)
        throttle.check(session, keys, now)  # loads both counters into the session
        throttle.record_success(session, keys)
        assert session.get(LoginThrottle, account) is None
        kept = session.get(LoginThrottle, address)
        assert kept is not None and kept.failures == 2
        # What the session held is gone from the database too, not only from memory.
        session.expire_all()
        assert session.get(LoginThrottle, account) is None
