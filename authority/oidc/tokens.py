"""JWT access tokens (RFC 9068), their signing keys, rotation and the JWKS.

Tokens are signed by a key in the key store (``purpose = token``); its ``kid``
is the key's RFC 7638 thumbprint. Rotation retires the current key for
signing at once but keeps it in the JWKS until every token it signed has
expired. Resource servers (ours included) verify tokens locally; ours also
honour revocation (RFC 7009) by checking the revoked-token list.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from authority.errors import AuthorityError, Unavailable
from authority.oidc.models import RevokedToken, SigningKey
from authority.pki.keystore import KeyAlgorithm, KeyStore

TOKEN_PURPOSE = "token"  # noqa: S105 - a key purpose, not a secret
ACCESS_TOKEN_LIFETIME = timedelta(minutes=10)
CLOCK_SKEW = timedelta(seconds=60)
AT_JWT = "at+jwt"  # RFC 9068 §2.1


class SigningKeyMissing(Unavailable):
    """The provider has no key to sign tokens with (an operator must run `authority init`)."""

    slug = "signing-key-missing"
    title = "Signing key missing"


class InvalidAccessToken(AuthorityError):
    """The bearer token is malformed, not ours, expired or revoked (RFC 6750 §3.1)."""

    slug = "invalid-token"
    title = "Invalid access token"
    status = 401


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK of an EC key (RFC 7518 §6.2.1), members in thumbprint order."""
    size = (public_key.curve.key_size + 7) // 8
    numbers = public_key.public_numbers()
    crv = {256: "P-256", 384: "P-384"}[public_key.curve.key_size]
    return {
        "crv": crv,
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(size, "big")),
        "y": b64url(numbers.y.to_bytes(size, "big")),
    }


def thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), base64url."""
    canonical = json.dumps(public_jwk(public_key), separators=(",", ":"), sort_keys=True)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(canonical.encode("ascii"))
    return b64url(digest.finalize())


#: Compact JSON (no spaces), as JWS producers conventionally write it; one encoder
#: kept rather than one built by every ``json.dumps`` call with ``separators``.
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


@functools.lru_cache(maxsize=64)
def _header_segment(alg: str, kid: str, typ: str) -> str:
    """The encoded protected header; few distinct ones exist (keys x token types)."""
    return b64url(COMPACT_JSON.encode({"alg": alg, "kid": kid, "typ": typ}).encode())


def jws_compact(keystore: KeyStore, key: SigningKey, typ: str, claims: dict[str, Any]) -> str:
    """A compact JWS over ``claims`` with header type ``typ``, signed by ``key`` in
    ``keystore``."""
    algorithm = KeyAlgorithm(key.algorithm)
    signing_input = (
        f"{_header_segment(algorithm.jws_alg, key.kid, typ)}."
        f"{b64url(COMPACT_JSON.encode(claims).encode())}"
    )
    r, s = decode_dss_signature(keystore.sign(key.key_handle, signing_input.encode("ascii")))
    size = (algorithm.curve.key_size + 7) // 8
    # RFC 7518 §3.4: the JWS signature is R || S, each left-padded to the curve size.
    return f"{signing_input}.{b64url(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"


def create_signing_key(
    session: Session, keystore: KeyStore, purpose: str, now: datetime
) -> SigningKey:
    """Generate a key in the store and record it as the current one for ``purpose``."""
    info = keystore.generate(f"{purpose} signing")
    record = SigningKey(
        purpose=purpose,
        kid=thumbprint(info.public_key),
        keystore=keystore.kind,
        key_handle=info.handle,
        algorithm=info.algorithm.value,
        created_at=now,
    )
    session.add(record)
    session.flush()
    return record


def current_signing_key(session: Session, purpose: str) -> SigningKey | None:
    """The key new tokens of ``purpose`` are signed with."""
    return session.scalar(
        select(SigningKey)
        .where(SigningKey.purpose == purpose, SigningKey.retired_at.is_(None))
        .order_by(SigningKey.id.desc())
        .limit(1)
    )


def ensure_signing_key(
    session: Session, keystore: KeyStore, purpose: str, now: datetime
) -> SigningKey | None:
    """Create the first key for ``purpose`` if there is none; return it if created."""
    if current_signing_key(session, purpose) is not None:
        return None
    return create_signing_key(session, keystore, purpose, now)


def rotate_signing_key(
    session: Session,
    keystore: KeyStore,
    purpose: str,
    now: datetime,
    lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
) -> tuple[SigningKey | None, SigningKey]:
    """Start signing with a new key; keep publishing the old one while its tokens live."""
    previous = current_signing_key(session, purpose)
    if previous is not None:
        previous.retired_at = now
        previous.publish_until = now + lifetime + CLOCK_SKEW
    return previous, create_signing_key(session, keystore, purpose, now)


def published_keys(session: Session, now: datetime) -> Sequence[SigningKey]:
    """Every key the JWKS must list now."""
    return session.scalars(
        select(SigningKey)
        .where(or_(SigningKey.publish_until.is_(None), SigningKey.publish_until > now))
        .order_by(SigningKey.id)
    ).all()


def jwks(session: Session, keystore: KeyStore, now: datetime) -> dict[str, Any]:
    """The JWK set of every published key: public halves only."""
    keys = []
    for record in published_keys(session, now):
        jwk = public_jwk(keystore.get(record.key_handle).public_key)
        alg = KeyAlgorithm(record.algorithm).jws_alg
        keys.append({**jwk, "kid": record.kid, "use": "sig", "alg": alg})
    return {"keys": keys}


@dataclass(frozen=True)
class AccessToken:
    """A verified access token's claims (RFC 9068 §2.2)."""

    jti: str
    client_id: str
    subject: str
    scopes: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    claims: dict[str, Any]

    def has_scope(self, scope: str) -> bool:
        """Whether the token grants ``scope``."""
        return scope in self.scopes


def issue_access_token(
    session: Session,
    keystore: KeyStore,
    *,
    issuer: str,
    client_id: str,
    subject: str,
    scopes: Sequence[str],
    now: datetime,
    lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
    extra: dict[str, Any] | None = None,
    key: SigningKey | None = None,
) -> tuple[str, int]:
    """A signed RFC 9068 access token and its lifetime in seconds (signed with ``key``,
    else the current signing key)."""
    key = key or current_signing_key(session, TOKEN_PURPOSE)
    if key is None:
        raise SigningKeyMissing("no token-signing key exists: run `authority init`")
    return sign_access_token(
        keystore,
        key,
        issuer=issuer,
        client_id=client_id,
        subject=subject,
        scopes=scopes,
        now=now,
        lifetime=lifetime,
        extra=extra,
    )


def sign_access_token(
    keystore: KeyStore,
    key: SigningKey,
    *,
    issuer: str,
    client_id: str,
    subject: str,
    scopes: Sequence[str],
    now: datetime,
    lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
    extra: dict[str, Any] | None = None,
) -> tuple[str, int]:
    """An RFC 9068 access token signed with ``key``, and its lifetime in seconds."""
    issued = int(now.timestamp())
    seconds = int(lifetime.total_seconds())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": issuer,
        "exp": issued + seconds,
        "iat": issued,
        "jti": secrets.token_urlsafe(16),
        "client_id": client_id,
        **(extra or {}),
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    return jws_compact(keystore, key, AT_JWT, claims), seconds


class TokenVerifier:
    """Verifies access tokens locally; public keys by ``kid`` are cached (immutable)."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._keys: dict[str, tuple[ec.EllipticCurvePublicKey, str]] = {}

    def _key(
        self, session: Session, keystore: KeyStore, kid: str
    ) -> tuple[ec.EllipticCurvePublicKey, str]:
        cached = self._keys.get(kid)
        if cached is None:
            record = session.scalar(select(SigningKey).where(SigningKey.kid == kid))
            if record is None or record.purpose != TOKEN_PURPOSE:
                raise InvalidAccessToken("the token was not signed by this authority")
            alg = KeyAlgorithm(record.algorithm).jws_alg
            cached = (keystore.get(record.key_handle).public_key, alg)
            self._keys[kid] = cached
        return cached

    def verify(
        self, session: Session, keystore: KeyStore, token: str, now: datetime
    ) -> AccessToken:
        """The claims of ``token`` if it is a valid, unexpired, unrevoked access token."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidAccessToken("the token is not a JWT") from None
        # RFC 9068 §4: resource servers MUST verify that typ is at+jwt.
        if header.get("typ", "").lower() not in (AT_JWT, "application/at+jwt"):
            raise InvalidAccessToken("the token is not an access token (typ at+jwt)")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidAccessToken("the token names no key")
        public_key, alg = self._key(session, keystore, kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=public_key,
                algorithms=[alg],
                audience=self.issuer,
                issuer=self.issuer,
                leeway=CLOCK_SKEW,
                options={"require": ["exp", "iat", "jti", "sub", "client_id", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidAccessToken("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise InvalidAccessToken(f"the token is invalid: {exc}") from None
        if session.get(RevokedToken, claims["jti"]) is not None:
            raise InvalidAccessToken("the token has been revoked")
        return AccessToken(
            jti=claims["jti"],
            client_id=claims["client_id"],
            subject=claims["sub"],
            scopes=tuple(str(claims.get("scope", "")).split()),
            issued_at=datetime.fromtimestamp(claims["iat"], now.tzinfo),
            expires_at=datetime.fromtimestamp(claims["exp"], now.tzinfo),
            claims=claims,
        )


def revoke_access_token(session: Session, token: AccessToken, now: datetime) -> None:
    """Record ``token`` as revoked until it would have expired (idempotent)."""
    if session.get(RevokedToken, token.jti) is None:
        session.add(
            RevokedToken(
                jti=token.jti,
                client_id=token.client_id,
                expires_at=token.expires_at,
                revoked_at=now,
            )
        )
        session.flush()
