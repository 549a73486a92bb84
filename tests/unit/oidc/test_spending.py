"""Spending a code, a refresh token or an authorization request is a compare-and-set:
it happens once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from authority.db.base import utcnow
from authority.db.session import Database
from authority.identity.accounts import create_citizen
from authority.identity.login import start_session
from authority.identity.passwords import PasswordHasher
from authority.instance import Instance
from authority.oidc.authorize import AuthorizationEndpoint
from authority.oidc.issuance import (
    IssuedTokens,
    mark_redeemed,
    mark_rotated,
    revoke_issued,
)
from authority.oidc.models import (
    AuthorizationCode,
    AuthorizationRequest,
    RefreshToken,
    RevokedToken,
)
from authority.oidc.server import AuthorityServer, Provider
from authority.oidc.tokens import TokenVerifier


def _person(database: Database) -> tuple[int, str]:
    with database.transaction() as session:
        citizen = create_citizen(
            session,
            PasswordHasher(),
            id_number="11010519491231002X",
            name="张三",
            password=None,
            now=utcnow(),
        )
        login = start_session(session, citizen, ["pwd"], utcnow()).record
        return citizen.id, login.id


def _refresh_token(citizen_id: int, session_id: str, name: str, family: str) -> RefreshToken:
    now = utcnow()
    return RefreshToken(
        token_hash=name * 8,
        family=family,
        client_id="c",
        citizen_id=citizen_id,
        session_id=session_id,
        scopes=["openid"],
        auth_time=now,
        acr="a",
        amr=["pwd"],
        issued_at=now,
        expires_at=now + timedelta(hours=1),
    )


def test_a_refresh_token_rotates_once(database: Database) -> None:
    citizen_id, session_id = _person(database)
    with database.transaction() as session:
        session.add(_refresh_token(citizen_id, session_id, "live", "f"))
        session.add(revoked := _refresh_token(citizen_id, session_id, "gone", "g"))
        revoked.revoked_at = utcnow()
    now = utcnow()
    with database.transaction() as session:
        record = session.get(RefreshToken, "live" * 8)
        assert record is not None
        assert mark_rotated(session, record, now) is True
        assert record.rotated_at == now
        assert not session.dirty  # written by its statement, not left to a flush
        # The same token again (a second use racing the first): refused, nothing changes.
        assert mark_rotated(session, record, now + timedelta(seconds=1)) is False
        gone = session.get(RefreshToken, "gone" * 8)
        assert gone is not None
        assert mark_rotated(session, gone, now) is False
    with database.transaction() as session:
        stored = session.get(RefreshToken, "live" * 8)
        assert stored is not None and stored.rotated_at == now
        gone = session.get(RefreshToken, "gone" * 8)
        assert gone is not None and gone.rotated_at is None


def test_a_code_is_redeemed_once_and_a_lost_race_voids_its_tokens(database: Database) -> None:
    citizen_id, session_id = _person(database)
    now = utcnow()
    with database.transaction() as session:
        session.add(
            AuthorizationCode(
                code_hash="c" * 64,
                client_id="c",
                citizen_id=citizen_id,
                session_id=session_id,
                redirect_uri="https://portal.example/cb",
                scopes=["openid"],
                nonce=None,
                code_challenge="x" * 43,
                business=None,
                auth_time=now,
                acr="a",
                amr=["pwd"],
                expires_at=now + timedelta(minutes=1),
            )
        )
        session.add(_refresh_token(citizen_id, session_id, "made", "family-1"))
        session.add(_refresh_token(citizen_id, session_id, "lost", "family-2"))
    first = IssuedTokens({}, "jti-1", now + timedelta(minutes=5), "family-1")
    second = IssuedTokens({}, "jti-2", now + timedelta(minutes=5), "family-2")
    with database.transaction() as session:
        code = session.get(AuthorizationCode, "c" * 64)
        assert code is not None
        assert mark_redeemed(session, code, now, first) is True
        assert (code.used_at, code.access_token_jti, code.refresh_family) == (
            now,
            "jti-1",
            "family-1",
        )
        assert mark_redeemed(session, code, now, second) is False
        # What the losing redemption issued is revoked before its error is answered.
        revoke_issued(session, second, "c", now)
    with database.transaction() as session:
        code = session.get(AuthorizationCode, "c" * 64)
        assert code is not None
        assert (code.used_at, code.access_token_jti) == (now, "jti-1")  # the first kept
        revoked = session.scalars(select(RevokedToken.jti)).all()
        assert revoked == ["jti-2"]
        made = session.get(RefreshToken, "made" * 8)
        assert made is not None and made.revoked_at is None  # family-1 untouched
        lost = session.get(RefreshToken, "lost" * 8)
        assert lost is not None and lost.revoked_at == now


def test_an_authorization_request_finishes_once(instance: Instance, database: Database) -> None:
    now = utcnow()
    with database.transaction() as session:
        session.add(
            AuthorizationRequest(
                id="r" * 43,
                client_id="c",
                params={},
                pushed=False,
                created_at=now,
                expires_at=now + timedelta(minutes=30),
            )
        )
    with database.transaction() as session:
        endpoint = AuthorizationEndpoint(
            AuthorityServer(
                Provider(
                    session=session,
                    keystore=instance.keystore,
                    issuer=instance.settings.issuer,
                    secret_key=instance.client_secret_key,
                    verifier=TokenVerifier(instance.settings.issuer),
                    now=now,
                    cache=instance.provider_cache,
                )
            )
        )
        record = session.get(AuthorizationRequest, "r" * 43)
        assert record is not None
        assert endpoint._finish(record) is True
        assert record.used_at == now and not session.dirty
        assert endpoint._finish(record) is False  # a second finish changes nothing
    with database.transaction() as session:
        stored = session.get(AuthorizationRequest, "r" * 43)
        assert stored is not None and stored.used_at == now
