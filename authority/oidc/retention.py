"""Forgetting what is no longer needed: expired codes, requests, sessions, refresh
tokens, used proofs and assertions, revocations past expiry, old throttle counts,
and people's data history once older than :data:`HISTORY_KEPT`.

Nothing deleted here can still be presented or checked: each row goes only
once it is expired, ended or spent beyond any lifetime it could be replayed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from authority.account.models import DataRelease
from authority.identity.models import LoginSession, LoginThrottle, WebAuthnChallenge
from authority.identity.throttle import ACCOUNT_POLICY, ADDRESS_POLICY, CLIENT_POLICY
from authority.oidc.models import (
    AuthorizationCode,
    AuthorizationRequest,
    RefreshToken,
    RevokedToken,
    UsedClientAssertion,
    UsedDPoPProof,
)

# A person's data history (docs/pages.md) shows what portals received in the last year:
# a release is recorded at every token issuance, refreshes included, so it grows.
HISTORY_KEPT = timedelta(days=366)
# A spent code is kept while the tokens it produced live, so a replay can revoke them.
SPENT_CODE_KEPT = timedelta(hours=8)


def purge_expired(session: Session, now: datetime) -> dict[str, int]:
    """Delete every row past its use; the count per kind."""
    forget_before = now - max(
        p.forget_after for p in (ACCOUNT_POLICY, ADDRESS_POLICY, CLIENT_POLICY)
    )
    # Sessions go only once no refresh token of theirs remains.
    live_sessions = select(RefreshToken.session_id).where(RefreshToken.expires_at > now)
    statements = {
        "authorization_requests": delete(AuthorizationRequest).where(
            AuthorizationRequest.expires_at <= now
        ),
        "authorization_codes": delete(AuthorizationCode).where(
            AuthorizationCode.expires_at <= now - SPENT_CODE_KEPT
        ),
        "refresh_tokens": delete(RefreshToken).where(RefreshToken.expires_at <= now),
        "codes_of_ended_sessions": delete(AuthorizationCode).where(
            AuthorizationCode.expires_at <= now,
            AuthorizationCode.session_id.in_(
                select(LoginSession.id).where(
                    or_(LoginSession.expires_at <= now, LoginSession.ended_at.is_not(None))
                )
            ),
            AuthorizationCode.session_id.not_in(live_sessions),
        ),
        "login_sessions": delete(LoginSession).where(
            or_(LoginSession.expires_at <= now, LoginSession.ended_at.is_not(None)),
            LoginSession.id.not_in(live_sessions),
            LoginSession.id.not_in(select(AuthorizationCode.session_id)),
        ),
        "login_throttles": delete(LoginThrottle).where(
            LoginThrottle.last_failure_at <= forget_before,
            or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now),
        ),
        "used_dpop_proofs": delete(UsedDPoPProof).where(UsedDPoPProof.expires_at <= now),
        "used_client_assertions": delete(UsedClientAssertion).where(
            UsedClientAssertion.expires_at <= now
        ),
        "revoked_tokens": delete(RevokedToken).where(RevokedToken.expires_at <= now),
        "webauthn_challenges": delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at <= now),
        "data_releases": delete(DataRelease).where(DataRelease.released_at <= now - HISTORY_KEPT),
    }
    counts = {}
    for name, statement in statements.items():
        result = session.execute(statement.execution_options(synchronize_session=False))
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    counts["authorization_codes"] += counts.pop("codes_of_ended_sessions")
    return counts
