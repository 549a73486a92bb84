"""What the provider remembers: clients, token-signing keys, revocations, used assertions,
authorization requests and codes, refresh tokens and consents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from authority.db.base import Base, utcnow


class OAuthClient(Base):
    """A registered client (RFC 6749 §2): a portal or an agency back-end."""

    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    # HMAC-SHA256 of the secret under the installation's client-secret key; never the secret.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(String(2048))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    # RFC 9126 §6: this client must push its authorization requests.
    require_par: Mapped[bool] = mapped_column(default=False, server_default=false())
    # RFC 9449 §5.2 dpop_bound_access_tokens: this client's tokens must be DPoP-bound.
    require_dpop: Mapped[bool] = mapped_column(default=False, server_default=false())
    # OIDC Back-Channel Logout §2.2: where logout tokens are posted.
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2048))
    # OIDC Core §8.1, OIDC Registration §2: lists every redirect URI; its host is the
    # client's pairwise sector (else the redirect URIs' one host is).
    sector_identifier_uri: Mapped[str | None] = mapped_column(String(2048))
    # OIDC RP-Initiated Logout §3: where the client may be sent after logout (exact match).
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class SigningKey(Base):
    """A key the provider signs tokens with; published in the JWKS while tokens it
    signed may still be presented."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), index=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    keystore: Mapped[str] = mapped_column(String(8))
    key_handle: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # No longer used to sign; still published until publish_until.
    retired_at: Mapped[datetime | None]
    publish_until: Mapped[datetime | None]


class RevokedToken(Base):
    """An access token revoked before it expired (RFC 7009); kept until it would expire."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsedClientAssertion(Base):
    """A private_key_jwt assertion already accepted: its jti is never accepted twice
    (RFC 7523 §3, item 7)."""

    __tablename__ = "used_client_assertions"
    __table_args__ = (UniqueConstraint("client_id", "jti"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuthorizationRequest(Base):
    """An authorization request being served: pushed (RFC 9126) or in the login pages.

    Its id is the ``request_uri`` suffix of a pushed request and the handle the
    login, business-choice and consent pages carry.
    """

    __tablename__ = "authorization_requests"

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, str]] = mapped_column(JSON)
    pushed: Mapped[bool] = mapped_column(default=False)
    # The business the person chose to act for ({uscc, name, role}), once chosen.
    business: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # SHA-256 of the browser-binding cookie of the browser that started the request
    # (none while a pushed request waits for its browser): no other browser may go on.
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class AuthorizationCode(Base):
    """An authorization code (RFC 6749 §4.1.2): single use, short-lived, bound to the
    client and redirect URI; what it produced is recorded so a replay can revoke it."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    session_id: Mapped[str] = mapped_column(String(43))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    nonce: Mapped[str | None] = mapped_column(String(512))
    code_challenge: Mapped[str] = mapped_column(String(128))
    business: Mapped[dict[str, str] | None] = mapped_column(JSON)
    auth_time: Mapped[datetime]
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(JSON)
    # RFC 9449 §10: the thumbprint of the key the code is bound to (dpop_jkt, or the
    # DPoP proof of the pushed request); the token request must prove that key.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]
    # What redeeming it produced: revoked if the code is presented again.
    access_token_jti: Mapped[str | None] = mapped_column(String(64))
    access_token_expires_at: Mapped[datetime | None]
    refresh_family: Mapped[str | None] = mapped_column(String(43))


class RefreshToken(Base):
    """A refresh token; each use rotates it, and a rotated one presented again revokes
    its whole family (RFC 9700 §4.14.2)."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(43), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    session_id: Mapped[str] = mapped_column(String(43), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    business: Mapped[dict[str, str] | None] = mapped_column(JSON)
    auth_time: Mapped[datetime]
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    # RFC 9449 §5: the thumbprint of the key the token is bound to, if any.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Consent(Base):
    """The scopes a person agreed to release to a portal; remembered until withdrawn."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("citizen_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    granted_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]


class UsedDPoPProof(Base):
    """A DPoP proof already accepted: its jti is never accepted again for that key
    (RFC 9449 §11.1); kept until the proof could no longer be fresh."""

    __tablename__ = "used_dpop_proofs"
    __table_args__ = (UniqueConstraint("jkt", "jti"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    jkt: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(index=True)
