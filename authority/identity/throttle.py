"""Throttling of failed logins, per account name and per client address, and of failed
OAuth client authentications, per client and address.

Counters live in the database so every worker sees the same. After a few
free failures each further one doubles the wait before the next attempt is
even checked, then the key is locked for a while. The account key is derived
from what was typed, whether or not such an account exists, so throttling
behaves the same for unknown accounts (no user enumeration).

Client keys are checked on every token request, the busiest path there is, so a
process remembers for :data:`CLEAR_FOR` that a client key had no wait on it
(:class:`ClearKeys`). A failure recorded by the same process forgets the key at
once; a wait set by another worker is honoured once the memory expires.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authority.config import parse_throttle
from authority.errors import AuthorityError
from authority.identity.models import LoginThrottle

# Built once (every login runs it): cheaper than building it each time.
_THROTTLE_ROWS = select(LoginThrottle).where(
    LoginThrottle.key.in_(bindparam("keys", expanding=True))
)


class LoginThrottled(AuthorityError):
    """Too many failed attempts from this account name or address: wait, then retry."""

    slug = "login-throttled"
    title = "Too many failed attempts"
    status = 429

    def __init__(self, retry_after: int) -> None:
        minutes = (retry_after + 59) // 60
        wait = f"{retry_after} seconds" if retry_after < 120 else f"{minutes} minutes"
        super().__init__(
            f"too many failed attempts; wait {wait} before trying again",
            retry_after=retry_after,
        )
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(retry_after)


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures are free, how the wait grows, when the key locks."""

    free_failures: int
    lock_after: int
    max_backoff: timedelta
    lock_for: timedelta
    forget_after: timedelta

    def blocked_until(self, failures: int, now: datetime) -> datetime | None:
        """When the next attempt may be checked after ``failures`` failures."""
        if failures >= self.lock_after:
            return now + self.lock_for
        if failures <= self.free_failures:
            return None
        backoff = timedelta(seconds=2 ** (failures - self.free_failures))
        return now + min(backoff, self.max_backoff)


ACCOUNT_POLICY = ThrottlePolicy(
    free_failures=3,
    lock_after=10,
    max_backoff=timedelta(minutes=1),
    lock_for=timedelta(minutes=15),
    forget_after=timedelta(hours=24),
)
# One address may be a whole office behind NAT: more room, same shape.
ADDRESS_POLICY = ThrottlePolicy(
    free_failures=20,
    lock_after=100,
    max_backoff=timedelta(minutes=1),
    lock_for=timedelta(minutes=15),
    forget_after=timedelta(hours=1),
)


# OAuth clients at the token endpoint (RFC 6749 §2.3): keyed by client and address, so
# nobody can lock an agency's back-end out from elsewhere by naming its client id.
CLIENT_POLICY = ThrottlePolicy(
    free_failures=10,
    lock_after=30,
    max_backoff=timedelta(minutes=1),
    lock_for=timedelta(minutes=5),
    forget_after=timedelta(hours=1),
)


def configured_policy(default: ThrottlePolicy, setting: str) -> ThrottlePolicy:
    """``default`` with the free failures, lock threshold and lock time an operator set
    (``FREE/LOCK_AFTER/LOCK_MINUTES``, validated with the settings)."""
    free, lock_after, minutes = parse_throttle(setting)
    return replace(
        default, free_failures=free, lock_after=lock_after, lock_for=timedelta(minutes=minutes)
    )


#: How long a process trusts that a client key it found unblocked is still unblocked.
CLEAR_FOR = timedelta(seconds=2)


class ClearKeys:
    """Keys this process found with no wait on them, each remembered for ``ttl``.

    Bounded (least recently noted dropped first) and safe to share between threads.
    """

    def __init__(self, ttl: timedelta = CLEAR_FOR, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._until: OrderedDict[str, datetime] = OrderedDict()
        self._lock = threading.Lock()

    def fresh(self, key: str, now: datetime) -> bool:
        """Whether ``key`` was found unblocked less than ``ttl`` before ``now``."""
        until = self._until.get(key)
        return until is not None and now < until

    def note(self, key: str, now: datetime) -> None:
        """Remember that ``key`` has no wait on it as of ``now``."""
        with self._lock:
            self._until[key] = now + self.ttl
            self._until.move_to_end(key)
            while len(self._until) > self.size:
                self._until.popitem(last=False)

    def forget(self, key: str) -> None:
        """Check ``key`` in the database next time (a failure was just recorded)."""
        with self._lock:
            self._until.pop(key, None)


class Throttle:
    """Checks and records failed attempts for account, address and client keys."""

    def __init__(
        self,
        digest: Callable[[str], str],
        *,
        account: ThrottlePolicy = ACCOUNT_POLICY,
        address: ThrottlePolicy = ADDRESS_POLICY,
        client: ThrottlePolicy = CLIENT_POLICY,
    ) -> None:
        # Keyed digest, so the table does not reveal which identity numbers were tried.
        self._digest = digest
        self.account = account
        self.address = address
        self.client = client
        self.clear_clients = ClearKeys()
        self._failures = 0
        self._failures_guard = threading.Lock()

    def mark(self) -> int:
        """How many failures this process has counted: pass to :meth:`quiet_since`."""
        return self._failures

    def quiet_since(self, mark: int) -> bool:
        """Whether this process has counted no failure since :meth:`mark` gave ``mark``."""
        return self._failures == mark

    def client_keys(self, client_id: str, address: str | None) -> list[tuple[str, ThrottlePolicy]]:
        """The throttle key of a client's authentication from ``address``."""
        return [("c:" + self._digest(f"client:{client_id}\naddress:{address}"), self.client)]

    def keys(self, account: str, address: str | None) -> list[tuple[str, ThrottlePolicy]]:
        """The throttle keys of an attempt, with their policies."""
        keys = [("a:" + self._digest("account:" + account.strip().upper()), self.account)]
        if address:
            keys.append(("n:" + self._digest("address:" + address), self.address))
        return keys

    def check(
        self, session: Session, keys: Iterable[tuple[str, ThrottlePolicy]], now: datetime
    ) -> None:
        """Raise :class:`LoginThrottled` while any key is blocked."""
        waits = []
        wanted = [
            (key, policy)
            for key, policy in keys
            if not (policy is self.client and self.clear_clients.fresh(key, now))
        ]
        rows = self._rows(session, [key for key, _policy in wanted])
        for key, policy in wanted:
            row = rows.get(key)
            if row is not None and row.blocked_until is not None and row.blocked_until > now:
                waits.append(max(1, math.ceil((row.blocked_until - now).total_seconds())))
            elif policy is self.client:
                self.clear_clients.note(key, now)
        if waits:
            raise LoginThrottled(max(waits))

    @staticmethod
    def _rows(session: Session, keys: list[str]) -> dict[str, LoginThrottle]:
        """The counters of ``keys`` that exist, in one query (a login checks two keys)."""
        if len(keys) == 1:
            row = session.get(LoginThrottle, keys[0])
            return {row.key: row} if row is not None else {}
        if not keys:
            return {}
        found = session.scalars(_THROTTLE_ROWS, {"keys": keys})
        return {row.key: row for row in found}

    def known_clear(self, keys: Iterable[tuple[str, ThrottlePolicy]], now: datetime) -> bool:
        """Whether this process knows, without reading the database, that no key waits:
        each is a client key found unblocked less than :data:`CLEAR_FOR` ago."""
        return all(
            policy is self.client and self.clear_clients.fresh(key, now) for key, policy in keys
        )

    def record_failure(
        self, session: Session, keys: Iterable[tuple[str, ThrottlePolicy]], now: datetime
    ) -> None:
        """Count one failure against every key."""
        with self._failures_guard:
            self._failures += 1
        for key, policy in keys:
            self.clear_clients.forget(key)
            row = session.get(LoginThrottle, key, with_for_update=True)
            if row is None:
                row = LoginThrottle(key=key, failures=0, last_failure_at=now)
                try:
                    with session.begin_nested():
                        session.add(row)
                except IntegrityError:  # another worker created it first
                    row = session.get(
                        LoginThrottle, key, with_for_update=True, populate_existing=True
                    )
                    assert row is not None
            elif now - row.last_failure_at > policy.forget_after:
                row.failures = 0
            row.failures += 1
            row.last_failure_at = now
            row.blocked_until = policy.blocked_until(row.failures, now)
        session.flush()

    def record_success(self, session: Session, keys: Iterable[tuple[str, ThrottlePolicy]]) -> None:
        """Forget the account's failures (the address keeps its count)."""
        for key, policy in keys:
            if policy is self.account:
                # One DELETE, whether or not a counter exists (no read first).
                session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
        session.flush()
