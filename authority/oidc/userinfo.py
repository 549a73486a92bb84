"""The UserInfo endpoint's claims (OIDC Core §5.3, §5.4): only what the scopes allow."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from authority.errors import AuthorityError
from authority.identity.models import Citizen, LoginSession
from authority.oidc.tokens import AccessToken


class SessionEnded(AuthorityError):
    """The access token's provider session has ended (logout): no more claims."""

    slug = "invalid-token"
    title = "Invalid access token"
    status = 401


# Built once (every userinfo request runs it): cheaper than building it each time.
_SESSION_AND_ACCOUNT = (
    select(LoginSession, Citizen)
    .outerjoin(Citizen, Citizen.id == LoginSession.citizen_id)
    .where(LoginSession.id == bindparam("sid"))
)


def userinfo(session: Session, token: AccessToken) -> dict[str, Any]:
    """The claims ``token`` (scope ``openid``) may read about its person."""
    sid = token.claims.get("sid")
    # The session and its account in one query.
    found = (
        session.execute(_SESSION_AND_ACCOUNT, {"sid": sid}).first()
        if isinstance(sid, str)
        else None
    )
    login, citizen = found if found is not None else (None, None)
    if login is None or login.ended_at is not None:
        raise SessionEnded("the session this token was issued in has ended")
    if citizen is None or citizen.disabled_at is not None:
        raise SessionEnded("the account behind this token is not available")
    # OIDC Core §5.3.2: sub MUST be present and equal the ID token's.
    claims: dict[str, Any] = {"sub": token.subject}
    if token.has_scope("profile"):
        claims["name"] = citizen.name
    if token.has_scope("email") and citizen.email:
        claims["email"] = citizen.email
        claims["email_verified"] = citizen.email_verified
    if token.has_scope("phone") and citizen.phone:
        claims["phone_number"] = citizen.phone
        claims["phone_number_verified"] = citizen.phone_verified
    if token.has_scope("business") and isinstance(token.claims.get("business"), dict):
        claims["business"] = token.claims["business"]
    return claims
