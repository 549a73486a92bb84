"""The authorization server: authlib's protocol core bound to one unit of work.

A :class:`AuthorityServer` is made per request around a :class:`Provider`
(the session, key store and settings of that request), so storage is passed
in rather than global. It registers the grants, client authentication
methods and endpoints; the web layer only converts requests and responses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authority.errors import AuthorityError
from authority.oidc.cache import ProviderCache
from authority.oidc.clients import Client, ClientSecretKey, find_client
from authority.oidc.dpop import DPoPProof, InvalidDPoPProof, verify_proof
from authority.oidc.grants import CodeGrant, RefreshGrant, S256Challenge
from authority.oidc.issuance import find_refresh_token, revoke_family
from authority.oidc.models import UsedClientAssertion
from authority.oidc.scopes import parse_scope
from authority.oidc.tokens import (
    COMPACT_JSON,
    AccessToken,
    InvalidAccessToken,
    TokenVerifier,
    issue_access_token,
    revoke_access_token,
)
from authority.pki.keystore import KeyStore

log = logging.getLogger(__name__)

# RFC 7523 §3 item 4 lets the server bound an assertion's lifetime; minutes, not hours.
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)
# Asymmetric only: "none" and HMAC (keyed with a public key) are never accepted.
ASSERTION_ALGORITHMS = [
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
]
TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


@dataclass
class Provider:
    """What one request's protocol work needs: storage, keys, settings, the time."""

    session: Session
    keystore: KeyStore
    issuer: str
    secret_key: ClientSecretKey
    verifier: TokenVerifier
    now: datetime
    #: The request's verified DPoP proof (RFC 9449), when it sent one.
    dpop: DPoPProof | None = None
    cache: ProviderCache | None = None

    @property
    def token_endpoint(self) -> str:
        """The token endpoint's URL."""
        return f"{self.issuer}/oauth/token"


def scope_tokens(scope: str | None) -> list[str]:
    """Parsed scope, or ``invalid_scope`` for a malformed one (RFC 6749 §5.2)."""
    try:
        return parse_scope(scope)
    except AuthorityError as exc:
        raise InvalidScopeError(description=exc.detail) from None


#: Body parameters that each make a client authentication method (RFC 6749 §2.3.1,
#: RFC 7523 §2.2).
AUTH_PARAMETERS = ("client_secret", "client_assertion")


def check_form(request: OAuth2Request) -> None:
    """RFC 6749 §3.2 rules every endpoint here shares, which authlib leaves open.

    The body must be a form; no parameter may appear twice; one client
    authentication method at most.
    """
    if request.method != "POST" or not getattr(request, "is_form", False):
        raise InvalidRequestError(
            description="send the parameters as application/x-www-form-urlencoded"
        )
    repeated = sorted(k for k, values in request.payload.datalist.items() if len(values) > 1)
    if repeated:
        # RFC 6749 §5.2: error_description holds %x20-21 / %x23-5B / %x5D-7E only.
        named = ", ".join(
            n if all(" " <= c <= "~" and c not in '"\\' for c in n) else "?" for n in repeated
        )
        raise InvalidRequestError(description=f"parameter repeated: {named}")
    # RFC 6749 §2.3: the client MUST NOT use more than one authentication method.
    basic = request.headers.get("authorization", "")[:6].lower() == "basic "
    methods = basic + sum(name in request.payload.data for name in AUTH_PARAMETERS)
    if methods > 1:
        raise InvalidRequestError(description="use one client authentication method, not several")


class InvalidDPoPProofError(OAuth2Error):  # type: ignore[misc]
    """RFC 9449 §5: the token request's DPoP proof is not acceptable."""

    error = "invalid_dpop_proof"


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    """RFC 6749 §4.4, with scopes held to what the client is registered for."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS

    def validate_token_request(self) -> None:
        """Authenticate the client, then refuse any scope it may not have (§3.3)."""
        super().validate_token_request()
        client: Client = self.request.client
        if client.record.require_dpop:
            # RFC 9449 §5.2: a client registered for DPoP-bound tokens gets no other kind,
            # and client-credentials tokens are Bearer tokens here.
            raise InvalidRequestError(description="this client must use DPoP-bound tokens")
        requested = scope_tokens(self.request.payload.scope)
        refused = [s for s in requested if s not in client.record.scopes]
        if refused:
            raise InvalidScopeError(description=f"the client may not request: {' '.join(refused)}")


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 §2.2 client authentication, as OIDC Core §9 names it."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, provider: Provider) -> None:
        super().__init__(validate_jti=True, leeway=60)
        self.provider = provider

    def get_audiences(self) -> list[str]:
        """RFC 7523 §3 item 3: the issuer or the token endpoint."""
        return [self.provider.token_endpoint, self.provider.issuer]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        """Verify the signature with an asymmetric algorithm only, then the claims."""
        try:
            token = jose_jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from None
        except (ValueError, TypeError):
            raise InvalidClientError(description="the client assertion is malformed") from None
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        """Standard checks, plus a bounded lifetime."""
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            latest = self.provider.now + MAX_ASSERTION_LIFETIME
            if exp > latest.timestamp() + self.leeway:
                raise InvalidClientError(
                    description="the client assertion must expire within 5 minutes"
                )
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        """Accept each (client, jti) once (RFC 7523 §3 item 7)."""
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            return False
        expires = datetime.fromtimestamp(float(claims["exp"]), self.provider.now.tzinfo)
        session = self.provider.session
        try:
            with session.begin_nested():
                session.add(
                    UsedClientAssertion(client_id=claims["sub"], jti=jti, expires_at=expires)
                )
        except IntegrityError:
            return False
        return True

    def resolve_client_public_key(self, client: Client) -> KeySet:
        """The client's registered JWK set."""
        jwks = client.record.jwks
        if jwks is None:
            raise InvalidClientError(description="the client has no registered jwks")
        try:
            return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError):
            raise InvalidClientError(description="the client's jwks cannot be used") from None


class _TokenFinder:
    """Shared by revocation and introspection: our tokens are self-contained JWTs."""

    provider: Provider

    def query_token(self, token_string: str, token_type_hint: str | None) -> AccessToken | None:
        """The verified access token, or None (refresh tokens arrive with OIDC)."""
        provider = self.provider
        try:
            return provider.verifier.verify(
                provider.session, provider.keystore, token_string, provider.now
            )
        except InvalidAccessToken:
            return None

    def requested_token(self, request: OAuth2Request, client: Client) -> AccessToken | None:
        """The ``token`` parameter's token, after the endpoint's parameter checks."""
        self.check_params(request, client)  # type: ignore[attr-defined]
        return self.query_token(request.form.get("token"), request.form.get("token_type_hint"))


class Revocation(_TokenFinder, RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009 token revocation."""

    CLIENT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS

    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider

    def authenticate_token(self, request: OAuth2Request, client: Client) -> AccessToken | None:
        """The token to revoke, if it belongs to ``client`` (RFC 7009 §2.1)."""
        token = self.requested_token(request, client)
        if token is not None and token.client_id != client.client_id:
            # §2.1: the server verifies the token was issued to the requesting client;
            # answering 200 anyway does not reveal whose it is.
            return None
        return token

    def create_endpoint_response(self, request: OAuth2Request) -> tuple[int, Any, list[Any]]:
        """200 whether or not the token was valid (§2.2)."""
        client = self.authenticate_endpoint_client(request)
        token = self.authenticate_token(request, client)
        if token is not None:
            self.revoke_token(token, request)
        else:
            self.revoke_refresh_token(request.form.get("token"), client)
        return (
            200,
            {},
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                ("Pragma", "no-cache"),
            ],
        )

    def revoke_token(self, token: AccessToken, request: OAuth2Request) -> None:
        """Add the token to the revoked list until it would expire."""
        revoke_access_token(self.provider.session, token, self.provider.now)

    def revoke_refresh_token(self, value: str | None, client: Client) -> None:
        """§2: a refresh token of ``client`` is revoked with its whole family."""
        record = find_refresh_token(self.provider.session, value or "")
        if record is not None and record.client_id == client.client_id:
            revoke_family(self.provider.session, record.family, self.provider.now)


class Introspection(_TokenFinder, IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662 token introspection, for authenticated clients."""

    CLIENT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS

    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider

    def authenticate_token(self, request: OAuth2Request, client: Client) -> AccessToken | None:
        """The token asked about (None: answer inactive)."""
        token = self.requested_token(request, client)
        if token is not None and self.check_permission(token, client, request):
            return token
        return None

    def check_permission(self, token: AccessToken, client: Client, request: OAuth2Request) -> bool:
        """Any authenticated client may introspect (RFC 7662 §2.1 leaves it to policy)."""
        return True

    def create_introspection_payload(self, token: AccessToken | None) -> dict[str, Any]:
        """RFC 7662 §2.2: ``{"active": false}`` and nothing else for an unusable token."""
        if token is None:
            return {"active": False}
        return {"active": True, "token_type": "Bearer", **self.introspect_token(token)}

    def introspect_token(self, token: AccessToken) -> dict[str, Any]:
        """The token's claims, RFC 7662 §2.2 names."""
        claims = token.claims
        payload: dict[str, Any] = {
            k: claims[k]
            for k in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
            if k in claims
        }
        if token.scopes:
            payload["scope"] = " ".join(token.scopes)
        return payload


class AuthorityServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's AuthorizationServer over one :class:`Provider`."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(scopes_supported=None)
        self.provider = provider
        self.register_grant(ClientCredentials)
        self.register_grant(CodeGrant, [S256Challenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt(provider))
        self.register_endpoint(Revocation(provider))
        self.register_endpoint(Introspection(provider))
        self.register_token_generator("default", self._generate_token)

    def create_token_response(self, request: OAuth2Request | None = None) -> Any:
        """Check the form first; a missing grant_type is invalid_request (§5.2)."""
        assert request is not None
        try:
            check_form(request)
            if not request.payload.grant_type:
                raise InvalidRequestError(description="grant_type is required")
            self.provider.dpop = self.dpop_proof(request, self.provider.token_endpoint)
        except OAuth2Error as error:
            return self.handle_error_response(request, error)
        return super().create_token_response(request)

    def dpop_proof(self, request: OAuth2Request, url: str) -> DPoPProof | None:
        """RFC 9449 §5, §10.1: a DPoP header (token or PAR endpoint) must be one valid proof."""
        proofs = request.headers.getlist("dpop") if hasattr(request.headers, "getlist") else []
        if not proofs:
            return None
        if len(proofs) > 1:
            raise InvalidDPoPProofError(description="send exactly one DPoP header")
        try:
            return verify_proof(
                self.provider.session, proofs[0], method="POST", url=url, now=self.provider.now
            )
        except InvalidDPoPProof as exc:
            raise InvalidDPoPProofError(description=exc.detail) from None

    def create_endpoint_response(self, name: str, request: OAuth2Request | None = None) -> Any:
        """Check the form first (introspection, revocation)."""
        assert request is not None
        try:
            check_form(request)
        except OAuth2Error as error:
            return self.handle_error_response(request, error)
        return super().create_endpoint_response(name, request)

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> Client:
        """authlib's client authentication, with a description that names no internals."""
        try:
            client: Client = super().authenticate_client(request, methods, endpoint)
        except ValueError:
            # authlib's Basic parsing lets non-ASCII credentials raise (base64 of text).
            raise InvalidClientError(
                status_code=401, description="the Authorization header is not valid HTTP Basic"
            ) from None
        except InvalidClientError as exc:
            if exc.description and exc.description.startswith("The client cannot authenticate"):
                exc.description = (
                    "client authentication failed: unknown client, wrong credentials, "
                    "or not the client's registered method"
                )
            raise
        return client

    def query_client(self, client_id: Any) -> Client | None:
        """The enabled client with ``client_id``."""
        if not isinstance(client_id, str) or not 0 < len(client_id) <= 64:
            return None
        cache, session = self.provider.cache, self.provider.session
        record = cache.client(session, client_id) if cache else find_client(session, client_id)
        return Client(record, self.provider.secret_key) if record else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to store: access tokens are self-contained JWTs."""

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        """The web adapter already built the authlib request."""
        return request

    def create_json_request(self, request: OAuth2Request) -> OAuth2Request:
        """The web adapter already built the authlib request."""
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[Any]]:
        """Hand ``(status, body, headers)`` back to the web adapter."""
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Signals are not used."""

    def _generate_token(
        self,
        grant_type: str,
        client: Client,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        provider = self.provider
        # RFC 6749 §3.3: with no scope requested, use the registered ones as the default.
        scopes = scope_tokens(scope) or list(client.record.scopes)
        if not client.check_grant_type(grant_type):
            raise UnauthorizedClientError()
        token, lifetime = issue_access_token(
            provider.session,
            provider.keystore,
            issuer=provider.issuer,
            client_id=client.client_id,
            subject=client.client_id,
            scopes=scopes,
            now=provider.now,
            key=provider.cache.signing_key(provider.session) if provider.cache else None,
        )
        response: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
        }
        if scopes:
            response["scope"] = " ".join(scopes)
        return response


def json_body(body: Any) -> bytes:
    """Serialise an authlib response body."""
    return COMPACT_JSON.encode(body).encode("utf-8")
