"""Passkeys (WebAuthn Level 3, through py_webauthn): registered by a logged-in person,
then used to log in without a password.

Each ceremony gets a fresh server-side challenge, used once. User verification
is required (the device checked a PIN or biometric), so a passkey login counts
as two factors: possession of the key and the device's check (RFC 8176
``hwk`` + ``mfa``, eIDAS substantial).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authority.audit.trail import LOGIN_FAILED, LOGIN_SUCCEEDED
from authority.errors import AuthorityError
from authority.identity.login import audit_login
from authority.identity.models import Citizen, Passkey, WebAuthnChallenge

CEREMONY_LIFETIME = timedelta(minutes=5)


class PasskeyFailed(AuthorityError):
    """The passkey ceremony failed: unknown credential, wrong origin, no user
    verification, an expired or reused challenge."""

    slug = "passkey-failed"
    title = "Passkey not accepted"
    status = 401


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the issuer's host (RP ID) and origin."""

    id: str
    name: str
    origin: str


def _challenge(
    session: Session, challenge: bytes, purpose: str, citizen: Citizen | None, now: datetime
) -> str:
    record = WebAuthnChallenge(
        id=secrets.token_urlsafe(24),
        challenge=bytes_to_base64url(challenge),
        purpose=purpose,
        citizen_id=citizen.id if citizen else None,
        expires_at=now + CEREMONY_LIFETIME,
    )
    session.add(record)
    session.flush()
    return record.id


def _take_challenge(
    session: Session, challenge_id: str | None, purpose: str, now: datetime
) -> WebAuthnChallenge:
    record = session.get(WebAuthnChallenge, challenge_id or "", with_for_update=True)
    if record is None or record.purpose != purpose or record.expires_at <= now:
        raise PasskeyFailed("the passkey request expired; try again")
    session.delete(record)  # one use
    session.flush()
    return record


def registration_options(
    session: Session, rp: RelyingParty, citizen: Citizen, now: datetime
) -> tuple[str, dict[str, Any]]:
    """A challenge handle and the options for ``navigator.credentials.create``."""
    existing = session.scalars(
        select(Passkey.credential_id).where(Passkey.citizen_id == citizen.id)
    )
    challenge = secrets.token_bytes(32)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=f"citizen:{citizen.id}".encode(),
        user_name=citizen.id_number,
        user_display_name=citizen.name,
        challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=_decode(c)) for c in existing],
    )
    handle = _challenge(session, challenge, "register", citizen, now)
    return handle, json.loads(options_to_json(options))


def register(
    session: Session,
    rp: RelyingParty,
    citizen: Citizen,
    challenge_id: str | None,
    credential: dict[str, Any],
    now: datetime,
) -> Passkey:
    """Verify a ``create()`` result and store the passkey."""
    record = _take_challenge(session, challenge_id, "register", now)
    if record.citizen_id != citizen.id:
        raise PasskeyFailed("the passkey request was for another account")
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=_decode(record.challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyFailed(f"the passkey could not be registered: {exc}") from None
    passkey = Passkey(
        citizen_id=citizen.id,
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        created_at=now,
    )
    session.add(passkey)
    session.flush()
    return passkey


def authentication_options(
    session: Session, rp: RelyingParty, now: datetime
) -> tuple[str, dict[str, Any]]:
    """A challenge handle and options for ``navigator.credentials.get`` (any passkey)."""
    challenge = secrets.token_bytes(32)
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    handle = _challenge(session, challenge, "login", None, now)
    return handle, json.loads(options_to_json(options))


def authenticate(
    session: Session,
    rp: RelyingParty,
    challenge_id: str | None,
    credential: dict[str, Any],
    now: datetime,
) -> Citizen:
    """The citizen whose passkey produced this ``get()`` result."""
    record = _take_challenge(session, challenge_id, "login", now)
    credential_id = credential.get("id") if isinstance(credential, dict) else None
    passkey = session.scalar(
        select(Passkey).where(Passkey.credential_id == str(credential_id)).with_for_update()
    )
    citizen = session.get(Citizen, passkey.citizen_id) if passkey else None
    if passkey is None or citizen is None or citizen.disabled_at is not None:
        audit_login(session, LOGIN_FAILED, None, None, factor="passkey")
        raise PasskeyFailed("this passkey is not registered here")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=_decode(record.challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        audit_login(session, LOGIN_FAILED, citizen, None, factor="passkey")
        raise PasskeyFailed(f"the passkey was not accepted: {exc}") from None
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = now
    audit_login(session, LOGIN_SUCCEEDED, citizen, None, factor="passkey")
    return citizen


def _decode(value: str) -> bytes:
    return base64url_to_bytes(value)
