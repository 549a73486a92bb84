"""Tokens for people: ID tokens (OIDC Core §2), access tokens that carry the
provider session, and refresh tokens that rotate (RFC 9700 §4.14.2).

Subjects are pairwise (OIDC Core §8.1): each sector (the host of the
client's sector_identifier_uri, else of its redirect URIs) sees a different
``sub`` for the same person, an HMAC under the installation key, so portals
cannot join their records.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from authority.account.history import record_release
from authority.db.bulk import insert_rows, spend, spend_statement
from authority.identity.models import Citizen, LoginSession
from authority.oidc.clients import ClientSecretKey
from authority.oidc.models import (
    AuthorizationCode,
    OAuthClient,
    RefreshToken,
    RevokedToken,
    SigningKey,
)
from authority.oidc.sectors import sector_of_uri
from authority.oidc.tokens import (
    TOKEN_PURPOSE,
    SigningKeyMissing,
    current_signing_key,
    jws_compact,
    sign_access_token,
)
from authority.pki.keystore import KeyStore

ID_TOKEN_LIFETIME = timedelta(minutes=10)
CODE_LIFETIME = timedelta(minutes=1)  # RFC 6749 §4.1.2: short-lived (10 minutes at most)


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token_hash(value: str) -> str:
    """What is stored of a code or refresh token: its SHA-256, never the value."""
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def sector_of(client: OAuthClient) -> str:
    """The client's sector identifier (OIDC Core §8.1): the host of its
    sector_identifier_uri if it has one, else the host of its redirect URIs."""
    if client.sector_identifier_uri:
        return sector_of_uri(client.sector_identifier_uri)
    uris = client.redirect_uris
    return (urlsplit(uris[0]).hostname or client.client_id) if uris else client.client_id


def pairwise_subject(key: ClientSecretKey, client: OAuthClient, citizen: Citizen) -> str:
    """The ``sub`` this client's sector knows ``citizen`` by."""
    return key.digest(f"pairwise:{sector_of(client)}:{citizen.id_number}")


@dataclass(frozen=True)
class Authorized:
    """What a person let a client have: who, how they logged in, which scopes."""

    citizen: Citizen
    client: OAuthClient
    session_id: str
    scopes: Sequence[str]
    auth_time: datetime
    acr: str
    amr: Sequence[str]
    business: dict[str, str] | None = None
    nonce: str | None = None


@dataclass
class IssuedTokens:
    """A token response and what it produced (to revoke it on code replay)."""

    response: dict[str, Any]
    access_jti: str
    access_expires_at: datetime
    refresh_family: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _at_hash(access_token: str) -> str:
    # OIDC Core §3.1.3.6: left half of the SHA-256 of the ASCII access token (ES256).
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def issue_tokens(
    session: Session,
    keystore: KeyStore,
    key: ClientSecretKey,
    *,
    issuer: str,
    authorized: Authorized,
    now: datetime,
    refresh: bool,
    family: str | None = None,
    refresh_expires_at: datetime | None = None,
    dpop_jkt: str | None = None,
    refresh_scopes: Sequence[str] | None = None,
    signing_key: SigningKey | None = None,
) -> IssuedTokens:
    """Access token, ID token (with ``openid``) and, with ``refresh``, a refresh token.

    ``refresh_scopes``: what the new refresh token keeps (RFC 6749 §6: the original
    grant's scopes, even when this access token was narrowed). ``signing_key``: the
    token-signing key, if the caller holds it (else it is read).
    """
    signing_key = signing_key or current_signing_key(session, TOKEN_PURPOSE)
    if signing_key is None:
        raise SigningKeyMissing("no token-signing key exists: run `authority init`")
    client = authorized.client
    subject = pairwise_subject(key, client, authorized.citizen)
    jti = secrets.token_urlsafe(16)
    extra: dict[str, Any] = {"jti": jti, "sid": authorized.session_id, "acr": authorized.acr}
    if authorized.business is not None:
        extra["business"] = authorized.business
    if dpop_jkt is not None:
        extra["cnf"] = {"jkt": dpop_jkt}  # RFC 9449 §6.1
    access, lifetime = sign_access_token(
        keystore,
        signing_key,
        issuer=issuer,
        client_id=client.client_id,
        subject=subject,
        scopes=authorized.scopes,
        now=now,
        extra=extra,
    )
    response: dict[str, Any] = {
        "access_token": access,
        "token_type": "DPoP" if dpop_jkt else "Bearer",
        "expires_in": lifetime,
        "scope": " ".join(authorized.scopes),
    }
    if "openid" in authorized.scopes:
        response["id_token"] = id_token(
            keystore,
            signing_key,
            issuer=issuer,
            subject=subject,
            authorized=authorized,
            access_token=access,
            now=now,
        )
    issued = IssuedTokens(response, jti, now + timedelta(seconds=lifetime))
    # The person's data history (account page): which portal received which scopes.
    record_release(
        session,
        citizen_id=authorized.citizen.id,
        client_id=client.client_id,
        scopes=authorized.scopes,
        business=(authorized.business or {}).get("uscc"),
        now=now,
    )
    if refresh:
        value = secrets.token_urlsafe(32)
        issued.refresh_family = family or secrets.token_urlsafe(24)
        # Written straight away, as record_release: nothing reads it in this unit of work.
        row = {
            "token_hash": token_hash(value),
            "family": issued.refresh_family,
            "client_id": client.client_id,
            "citizen_id": authorized.citizen.id,
            "session_id": authorized.session_id,
            "scopes": list(refresh_scopes or authorized.scopes),
            "business": authorized.business,
            "auth_time": authorized.auth_time,
            "acr": authorized.acr,
            "amr": list(authorized.amr),
            "issued_at": now,
            "expires_at": refresh_expires_at or now + timedelta(hours=8),
            "dpop_jkt": dpop_jkt,
        }
        insert_rows(session, cast(Table, RefreshToken.__table__), [row])
        response["refresh_token"] = value
    return issued


def id_token(
    keystore: KeyStore,
    key: SigningKey,
    *,
    issuer: str,
    subject: str,
    authorized: Authorized,
    access_token: str,
    now: datetime,
) -> str:
    """An ID token (OIDC Core §2) for ``authorized``, signed with ``key``."""
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": authorized.client.client_id,
        "azp": authorized.client.client_id,
        "exp": issued + int(ID_TOKEN_LIFETIME.total_seconds()),
        "iat": issued,
        "auth_time": int(authorized.auth_time.timestamp()),
        "acr": authorized.acr,
        "amr": list(authorized.amr),
        "sid": authorized.session_id,
        "at_hash": _at_hash(access_token),
    }
    if authorized.nonce:
        claims["nonce"] = authorized.nonce
    if authorized.business is not None:
        claims["business"] = authorized.business
    return jws_compact(keystore, key, "JWT", claims)


def revoke_access(
    session: Session, jti: str, client_id: str, expires_at: datetime, now: datetime
) -> None:
    """Put an access token on the revoked list until it would expire."""
    if session.get(RevokedToken, jti) is None:
        session.add(
            RevokedToken(jti=jti, client_id=client_id, expires_at=expires_at, revoked_at=now)
        )
        session.flush()


def revoke_family(session: Session, family: str, now: datetime) -> None:
    """Revoke every refresh token of a family (RFC 9700 §4.14.2)."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_code_products(session: Session, code: AuthorizationCode, now: datetime) -> None:
    """RFC 6749 §4.1.2: a code used twice revokes the tokens it produced."""
    if code.access_token_jti and code.access_token_expires_at:
        revoke_access(
            session, code.access_token_jti, code.client_id, code.access_token_expires_at, now
        )
    if code.refresh_family:
        revoke_family(session, code.refresh_family, now)


def revoke_session_tokens(session: Session, login: LoginSession, now: datetime) -> None:
    """End what a provider session gave out: its refresh tokens (logout)."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.session_id == login.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


# Built once (every refresh runs it): cheaper than building it each time.
_REFRESH_TOKEN = (
    select(RefreshToken).where(RefreshToken.token_hash == bindparam("token_hash")).with_for_update()
)
# Spending is one guarded UPDATE each (authority.db.bulk.spend).
_ROTATE = spend_statement(
    cast(Table, RefreshToken.__table__), "token_hash", ["rotated_at", "revoked_at"], ["rotated_at"]
)
#: The authorization codes' table, written by insert_rows (authority.oidc.grants).
CODES = cast(Table, AuthorizationCode.__table__)
_REDEEM = spend_statement(
    CODES,
    "code_hash",
    ["used_at"],
    ["used_at", "access_token_jti", "access_token_expires_at", "refresh_family"],
)


def mark_rotated(session: Session, record: RefreshToken, now: datetime) -> bool:
    """Mark a live refresh token rotated; False if it no longer was live (used, or
    revoked, since it was read), and then nothing changed."""
    return spend(session, record, _ROTATE, record.token_hash, {"rotated_at": now})


def mark_redeemed(
    session: Session, record: AuthorizationCode, now: datetime, issued: IssuedTokens
) -> bool:
    """Mark an unused code used, with what it produced (to revoke that if the code is
    presented again); False if it was used since it was read, and then nothing changed."""
    values = {
        "used_at": now,
        "access_token_jti": issued.access_jti,
        "access_token_expires_at": issued.access_expires_at,
        "refresh_family": issued.refresh_family,
    }
    return spend(session, record, _REDEEM, record.code_hash, values)


def revoke_issued(session: Session, issued: IssuedTokens, client_id: str, now: datetime) -> None:
    """Revoke tokens just issued that must not be used (their grant lost a race)."""
    revoke_access(session, issued.access_jti, client_id, issued.access_expires_at, now)
    if issued.refresh_family:
        revoke_family(session, issued.refresh_family, now)


def find_refresh_token(session: Session, value: str) -> RefreshToken | None:
    """The refresh token record of ``value`` (locked for rotation), if any."""
    if not value or len(value) > 256:
        return None
    return session.scalar(_REFRESH_TOKEN, {"token_hash": token_hash(value)})
