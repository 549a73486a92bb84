"""People and businesses, who may act for which business, and how they log in.

A citizen is a natural person known by their resident identity number; a
business is a legal person known by its unified social credit code and acts
only through citizens holding a :class:`Representation` of it. Login state
(failed-attempt counters, sessions at the provider) lives here too, in the
database, so every worker of a deployment sees the same.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authority.db.base import Base, utcnow


class Citizen(Base):
    """A natural person with an account."""

    __tablename__ = "citizens"

    id: Mapped[int] = mapped_column(primary_key=True)
    # GB 11643 resident identity number, canonical form (upper-case X).
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(254))
    email_verified: Mapped[bool] = mapped_column(default=False)
    phone: Mapped[str | None] = mapped_column(String(32))
    phone_verified: Mapped[bool] = mapped_column(default=False)
    # argon2id PHC string (docs/identity.md); None: the account cannot log in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(256))
    # True: a password alone completes a login (the demo citizen). Otherwise a second
    # factor is required.
    password_only: Mapped[bool] = mapped_column(default=False)
    # RFC 6238 shared secret (base32) and the last time step accepted (no replay).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class Business(Base):
    """A legal person; it acts through its representatives."""

    __tablename__ = "businesses"

    id: Mapped[int] = mapped_column(primary_key=True)
    # GB 32100 unified social credit code.
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Representation(Base):
    """A citizen may act for a business, in a role, between two dates."""

    __tablename__ = "representations"
    __table_args__ = (UniqueConstraint("citizen_id", "business_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id"), index=True)
    # legal_representative | authorised_agent
    role: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginThrottle(Base):
    """Failed login attempts against one key: an account name or a client address.

    The key is a digest, so the table does not list the identity numbers people typed.
    """

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime]
    # No attempt is checked before this time (back-off or lock).
    blocked_until: Mapped[datetime | None]


class LoginSession(Base):
    """A person's session at the provider (the ``sid`` of OIDC), ended at logout."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    # SHA-256 of the browser cookie's value; the cookie alone opens the session.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    auth_time: Mapped[datetime]
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Set while the person has passed the password but not yet the second factor.
    pending_factor: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]


class Passkey(Base):
    """A WebAuthn credential (passkey) of a citizen: a key pair held by their device."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    # base64url of the credential id the authenticator chose.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    # COSE public key (WebAuthn §6.5.1.1), as the authenticator gave it.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]


class WebAuthnChallenge(Base):
    """A challenge handed to a browser for one registration or login ceremony."""

    __tablename__ = "webauthn_challenges"

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    challenge: Mapped[str] = mapped_column(String(128))
    # register: for this citizen; login: anyone (discoverable credentials).
    purpose: Mapped[str] = mapped_column(String(16))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))
    expires_at: Mapped[datetime] = mapped_column(index=True)
