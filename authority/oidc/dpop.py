"""DPoP (RFC 9449): access and refresh tokens bound to a key the client proves it
holds with a signed proof on every request.

A proof is checked as §4.3 lists: ``typ`` dpop+jwt, an asymmetric ``alg``, a
public ``jwk`` that verifies the signature, ``htm`` and ``htu`` naming this
request, a recent ``iat``, a ``jti`` never seen before for that key, and at
a resource server ``ath``, the hash of the access token presented with it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, thumbprint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authority.errors import AuthorityError
from authority.oidc.bearer import InsufficientScope, InvalidToken
from authority.oidc.models import UsedDPoPProof
from authority.oidc.tokens import AccessToken, InvalidAccessToken, TokenVerifier
from authority.pki.keystore import KeyStore

DPOP_ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"]
# §11.1: how far from now a proof's iat may be.
PROOF_WINDOW = timedelta(seconds=60)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})


class InvalidDPoPProof(AuthorityError):
    """The DPoP proof is missing, malformed, for another request, stale or replayed."""

    slug = "invalid-dpop-proof"
    title = "Invalid DPoP proof"
    status = 401
    #: RFC 9449 §5, §7.1: the error code at the token endpoint and resource servers.
    error = "invalid_dpop_proof"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = (
            f'DPoP error="invalid_dpop_proof", algs="{" ".join(DPOP_ALGORITHMS)}"'
        )


@dataclass(frozen=True)
class DPoPProof:
    """A verified proof: the RFC 7638 thumbprint of the key that signed it."""

    jkt: str
    jti: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(access_token: str) -> str:
    """§4.2 ``ath``: base64url SHA-256 of the access token's ASCII bytes."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def _normalise(url: str) -> str:
    # §4.3 item 9: htu is compared without query and fragment.
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


def verify_proof(
    session: Session,
    proof: str | None,
    *,
    method: str,
    url: str,
    now: datetime,
    access_token: str | None = None,
) -> DPoPProof:
    """The proof's key thumbprint, if ``proof`` is valid for this request (§4.3)."""
    if not proof or len(proof) > 8192 or proof.count(".") != 2:
        raise InvalidDPoPProof("send exactly one DPoP proof JWT in the DPoP header")
    try:
        header: dict[str, Any] = jws.extract_compact(proof.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError):
        raise InvalidDPoPProof("the DPoP proof is not a JWS") from None
    if header.get("typ") != "dpop+jwt":
        raise InvalidDPoPProof("the DPoP proof's typ must be dpop+jwt")
    if header.get("alg") not in DPOP_ALGORITHMS:
        raise InvalidDPoPProof("the DPoP proof must be signed with an asymmetric algorithm")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS & jwk.keys():
        raise InvalidDPoPProof("the DPoP proof's jwk must be a public key")
    try:
        key = JWKRegistry.import_key(jwk)
        token = jose_jwt.decode(proof, key, algorithms=[header["alg"]])
    except (JoseError, ValueError, TypeError):
        raise InvalidDPoPProof("the DPoP proof's signature does not verify") from None
    claims = token.claims
    jti, iat = claims.get("jti"), claims.get("iat")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise InvalidDPoPProof("the DPoP proof needs a jti")
    if claims.get("htm") != method:
        raise InvalidDPoPProof(f"the DPoP proof's htm must be {method}")
    if not isinstance(claims.get("htu"), str) or _normalise(claims["htu"]) != _normalise(url):
        raise InvalidDPoPProof(f"the DPoP proof's htu must be {_normalise(url)}")
    if not isinstance(iat, int | float) or abs(now.timestamp() - iat) > PROOF_WINDOW.seconds:
        raise InvalidDPoPProof("the DPoP proof's iat is not within 60 seconds of now")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise InvalidDPoPProof("the DPoP proof's ath does not match the access token")
    jkt = thumbprint(jwk)
    try:
        with session.begin_nested():
            session.add(
                UsedDPoPProof(jkt=jkt, jti=jti, expires_at=now + PROOF_WINDOW + PROOF_WINDOW)
            )
    except IntegrityError:
        raise InvalidDPoPProof("the DPoP proof was already used (replay)") from None
    return DPoPProof(jkt, jti)


def authenticate_dpop(
    session: Session,
    keystore: KeyStore,
    verifier: TokenVerifier,
    *,
    authorization: str,
    proof: str | None,
    method: str,
    url: str,
    scope: str,
    now: datetime,
) -> AccessToken:
    """A resource request with ``Authorization: DPoP <token>`` and its proof (§7.1)."""
    _scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    try:
        access = verifier.verify(session, keystore, token, now)
    except InvalidAccessToken as exc:
        raise InvalidToken(exc.detail) from None
    checked = verify_proof(session, proof, method=method, url=url, now=now, access_token=token)
    bound = (
        access.claims.get("cnf", {}).get("jkt")
        if isinstance(access.claims.get("cnf"), dict)
        else None
    )
    if bound != checked.jkt:
        raise InvalidDPoPProof("the DPoP proof is not signed by the key the token is bound to")
    if not access.has_scope(scope):
        raise InsufficientScope(scope)
    return access
