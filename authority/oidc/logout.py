"""RP-Initiated Logout 1.0: end the provider session server-side, revoke what it
gave out, and send the browser back only to a registered post-logout URI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from authlib.common.urls import add_params_to_uri
from sqlalchemy import select
from sqlalchemy.orm import Session

from authority.errors import InvalidInput
from authority.identity.login import end_session
from authority.identity.models import LoginSession
from authority.oidc.backchannel import LogoutNotice, logout_notices
from authority.oidc.clients import ClientSecretKey, find_client
from authority.oidc.issuance import revoke_session_tokens
from authority.oidc.models import OAuthClient, SigningKey
from authority.oidc.tokens import TOKEN_PURPOSE
from authority.pki.keystore import KeyAlgorithm, KeyStore


class InvalidLogoutRequest(InvalidInput):
    """The logout request names a client or URI that does not match (RP-Initiated Logout §2)."""

    slug = "invalid-logout-request"
    title = "Invalid logout request"
    status = 400


@dataclass(frozen=True)
class LogoutRequest:
    """A checked logout request: who asks, where to go afterwards, and whether the
    ID token hint identified the browser's session (no confirmation needed then)."""

    client: OAuthClient | None
    redirect_to: str | None
    hinted_sid: str | None


def id_token_hint_claims(
    session: Session, keystore: KeyStore, issuer: str, hint: str
) -> dict[str, Any]:
    """The claims of an ID token we issued (expired ones are fine, §2)."""
    try:
        header = jwt.get_unverified_header(hint)
    except jwt.PyJWTError:
        raise InvalidLogoutRequest("id_token_hint is not a JWT") from None
    record = session.scalar(select(SigningKey).where(SigningKey.kid == header.get("kid")))
    if record is None or record.purpose != TOKEN_PURPOSE:
        raise InvalidLogoutRequest("id_token_hint was not issued by this provider")
    try:
        claims: dict[str, Any] = jwt.decode(
            hint,
            keystore.get(record.key_handle).public_key,
            algorithms=[KeyAlgorithm(record.algorithm).jws_alg],
            issuer=issuer,
            options={"verify_exp": False, "verify_aud": False, "require": ["aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidLogoutRequest(f"id_token_hint is invalid: {exc}") from None
    return claims


def check_logout_request(
    session: Session,
    keystore: KeyStore,
    issuer: str,
    *,
    id_token_hint: str | None,
    client_id: str | None,
    post_logout_redirect_uri: str | None,
    state: str | None,
) -> LogoutRequest:
    """Validate a logout request's parameters (RP-Initiated Logout §2, §3)."""
    hinted_sid = None
    if id_token_hint:
        claims = id_token_hint_claims(session, keystore, issuer, id_token_hint)
        audience = claims["aud"] if isinstance(claims["aud"], str) else claims["aud"][0]
        if client_id and client_id != audience:
            raise InvalidLogoutRequest("client_id is not the audience of id_token_hint")
        client_id = audience
        hinted_sid = claims.get("sid")
    client = find_client(session, client_id) if client_id else None
    redirect_to = None
    if post_logout_redirect_uri:
        # §3: only a URI registered for the client, compared exactly.
        if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris:
            raise InvalidLogoutRequest("post_logout_redirect_uri is not registered for the client")
        redirect_to = post_logout_redirect_uri
        if state:
            redirect_to = str(add_params_to_uri(redirect_to, [("state", state)]))
    return LogoutRequest(client, redirect_to, hinted_sid)


def log_out(session: Session, login: LoginSession, now: datetime) -> None:
    """End the provider session and revoke the refresh tokens it produced."""
    end_session(login, now)
    revoke_session_tokens(session, login, now)


def close_session(
    session: Session,
    keystore: KeyStore,
    key: ClientSecretKey,
    issuer: str,
    login: LoginSession,
    now: datetime,
) -> list[LogoutNotice]:
    """Log ``login`` out; the back-channel logout tokens to deliver once that is committed.

    Both RP-initiated logout and a new login in the same browser end a session this way.
    """
    notices = logout_notices(session, keystore, key, issuer, login, now)
    log_out(session, login, now)
    return notices
