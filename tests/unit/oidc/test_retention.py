"""`authority purge`: rows past their use go, live ones stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from authority.account.models import DataRelease
from authority.db.base import utcnow
from authority.db.session import Database
from authority.identity.accounts import create_citizen
from authority.identity.login import start_session
from authority.identity.models import LoginSession, LoginThrottle
from authority.identity.passwords import PasswordHasher
from authority.oidc.models import (
    AuthorizationRequest,
    RefreshToken,
    RevokedToken,
    UsedDPoPProof,
)
from authority.oidc.retention import HISTORY_KEPT, purge_expired


def test_purge_keeps_what_can_still_be_used(database: Database) -> None:
    now = utcnow()
    past, future = now - timedelta(days=2), now + timedelta(hours=1)
    with database.transaction() as session:
        citizen = create_citizen(
            session,
            PasswordHasher(),
            id_number="11010519491231002X",
            name="张三",
            password=None,
            now=now,
        )
        ended = start_session(session, citizen, ["pwd"], past).record
        ended.ended_at = past
        live = start_session(session, citizen, ["pwd"], now).record
        for sid, expires, name in ((ended.id, past, "old"), (live.id, future, "new")):
            session.add(
                RefreshToken(
                    token_hash=name * 8,
                    family=name,
                    client_id="c",
                    citizen_id=citizen.id,
                    session_id=sid,
                    scopes=["openid"],
                    auth_time=now,
                    acr="a",
                    amr=["pwd"],
                    issued_at=now,
                    expires_at=expires,
                )
            )
        session.add_all(
            [
                AuthorizationRequest(id="old", client_id="c", params={}, expires_at=past),
                AuthorizationRequest(id="new", client_id="c", params={}, expires_at=future),
                UsedDPoPProof(jkt="k", jti="old", expires_at=past),
                UsedDPoPProof(jkt="k", jti="new", expires_at=future),
                RevokedToken(jti="old", client_id="c", expires_at=past, revoked_at=past),
                LoginThrottle(key="a:old", failures=3, last_failure_at=past),
                LoginThrottle(key="a:new", failures=3, last_failure_at=now),
                *(
                    DataRelease(
                        citizen_id=citizen.id,
                        client_id="c",
                        scopes=["openid"],
                        business=None,
                        released_at=at,
                    )
                    for at in (now - HISTORY_KEPT, now - HISTORY_KEPT + timedelta(minutes=1))
                ),
            ]
        )
        session.flush()
        live_id, ended_id = live.id, ended.id
        counts = purge_expired(session, now)
        assert counts == {
            "authorization_requests": 1,
            "authorization_codes": 0,
            "refresh_tokens": 1,
            "login_sessions": 1,
            "login_throttles": 1,
            "used_dpop_proofs": 1,
            "used_client_assertions": 0,
            "revoked_tokens": 1,
            "webauthn_challenges": 0,
            "data_releases": 1,
        }
        session.expire_all()
        assert session.get(LoginSession, live_id) is not None
        assert session.get(LoginSession, ended_id) is None
        assert session.get(AuthorizationRequest, "new") is not None
        assert session.get(LoginThrottle, "a:new") is not None
        assert session.get(RefreshToken, "new" * 8) is not None
        kept = session.scalars(select(DataRelease.released_at)).all()
        assert kept == [now - HISTORY_KEPT + timedelta(minutes=1)]
