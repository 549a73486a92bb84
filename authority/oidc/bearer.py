"""Bearer token protection of Authority's own APIs (RFC 6750).

The web layer reads the Authorization header and asks :func:`authenticate`;
every failure is an error carrying the status and ``WWW-Authenticate``
challenge RFC 6750 §3 prescribes, rendered as problem details.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from authority.errors import AuthorityError
from authority.oidc.tokens import AccessToken, InvalidAccessToken, TokenVerifier
from authority.pki.keystore import KeyStore

REALM = "authority"


def _challenge(
    error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        # RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E: no quote or backslash.
        parts.append(
            'error_description="{}"'.format(
                "".join(c for c in description if c not in '"\\' and " " <= c <= "~")
            )
        )
    if scope:
        parts.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(parts)


class MissingToken(AuthorityError):
    """The request carries no bearer token (RFC 6750 §3.1: no error code)."""

    slug = "unauthenticated"
    title = "Authentication required"
    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = _challenge()


class InvalidToken(AuthorityError):
    """The bearer token is malformed, expired, revoked or not ours (invalid_token)."""

    slug = "invalid-token"
    title = "Invalid access token"
    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = _challenge("invalid_token", detail)


class InsufficientScope(AuthorityError):
    """The token is valid but lacks the scope the operation needs (insufficient_scope)."""

    slug = "insufficient-scope"
    title = "Insufficient scope"
    status = 403

    def __init__(self, scope: str) -> None:
        super().__init__(f"this operation needs the scope {scope}", required_scope=scope)
        self.headers["WWW-Authenticate"] = _challenge(
            "insufficient_scope", f"this operation needs the scope {scope}", scope
        )


class MalformedAuthorization(AuthorityError):
    """The Authorization header is not a bearer credential (invalid_request)."""

    slug = "invalid-request"
    title = "Invalid request"
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = _challenge("invalid_request", detail)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header (RFC 6750 §2.1)."""
    if not authorization:
        raise MissingToken("send an access token: Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken(f"the {scheme} scheme is not accepted here; use Bearer")
    token = token.strip()
    if not token or " " in token:
        raise MalformedAuthorization("the Authorization header must be: Bearer <token>")
    return token


def authenticate(
    session: Session,
    keystore: KeyStore,
    verifier: TokenVerifier,
    authorization: str | None,
    scope: str,
    now: datetime,
) -> AccessToken:
    """The verified token of a request, if it grants ``scope``."""
    token = bearer_token(authorization)
    try:
        access = verifier.verify(session, keystore, token, now)
    except InvalidAccessToken as exc:
        raise InvalidToken(exc.detail) from None
    if "cnf" in access.claims:
        # RFC 9449 §7.2: a DPoP-bound token is not a bearer token.
        raise InvalidToken("this token is DPoP-bound: send it with the DPoP scheme and a proof")
    if not access.has_scope(scope):
        raise InsufficientScope(scope)
    return access
