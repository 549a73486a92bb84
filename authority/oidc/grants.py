"""The grants people's logins use: authorization code with PKCE (S256 only) and
refresh tokens with rotation. authlib's grants do the protocol; these classes
store and find codes and refresh tokens, and issue our tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from sqlalchemy import bindparam, select

from authority.db.bulk import insert_rows
from authority.identity.models import Citizen, LoginSession
from authority.oidc.clients import Client
from authority.oidc.issuance import (
    CODE_LIFETIME,
    CODES,
    Authorized,
    IssuedTokens,
    find_refresh_token,
    issue_tokens,
    mark_redeemed,
    mark_rotated,
    revoke_code_products,
    revoke_family,
    revoke_issued,
    token_hash,
)
from authority.oidc.models import AuthorizationCode, RefreshToken
from authority.oidc.scopes import parse_scope

if TYPE_CHECKING:
    from authority.oidc.server import Provider

# Public clients (auth method none) authenticate by PKCE alone.
CODE_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


@dataclass(frozen=True)
class Person:
    """Who is granting an authorization: the citizen, their provider session, the
    business they act for (if any)."""

    citizen: Citizen
    login: LoginSession
    business: dict[str, str] | None = None


class S256Challenge(CodeChallenge):  # type: ignore[misc]
    """PKCE (RFC 7636) required for every client, S256 only (RFC 9700 §2.1.1).

    authlib would default a missing method to ``plain``; here a missing or
    ``plain`` method is refused at the authorization endpoint.
    """

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - authlib's class attribute

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        """RFC 7636 §4.4.1: a request without a challenge is invalid_request here."""
        payload = grant.request.payload.data
        if not payload.get("code_challenge"):
            raise InvalidRequestError(description="code_challenge is required (PKCE, S256)")
        if payload.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                description="code_challenge_method must be S256 (plain is not accepted)"
            )
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        """Every code was issued with a challenge: the verifier is always required."""
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError(description="code_verifier is required (PKCE)")
        super().validate_code_verifier(grant, result)

    def get_authorization_code_challenge_method(self, authorization_code: Any) -> str:
        """Always S256."""
        return "S256"


# Statements of every code redemption and refresh, built once: building one and
# computing its cache key cost more than executing its cached compiled form.
_PERSON = (
    select(Citizen, LoginSession)
    .join(LoginSession, LoginSession.citizen_id == Citizen.id)
    .where(Citizen.id == bindparam("citizen_id"), LoginSession.id == bindparam("session_id"))
)
_CODE = (
    select(AuthorizationCode)
    .where(AuthorizationCode.code_hash == bindparam("code_hash"))
    .with_for_update()
)


class _Issuing:
    """What both grants share: the request's provider, the live person, issuance."""

    server: Any

    @property
    def provider(self) -> Provider:
        """This request's provider."""
        provider: Provider = self.server.provider
        return provider

    def live_person(
        self, citizen_id: int, session_id: str, business: dict[str, str] | None
    ) -> Person | None:
        """The enabled citizen and their unended provider session, or None."""
        # Both in one query (a code redemption and every refresh ask for them).
        found = self.provider.session.execute(
            _PERSON, {"citizen_id": citizen_id, "session_id": session_id}
        ).first()
        if found is None:
            return None
        citizen, login = found
        if citizen.disabled_at is not None:
            return None
        if login.ended_at is not None:
            return None
        return Person(citizen, login, business)

    def issue(
        self,
        authorized: Authorized,
        *,
        refresh: bool,
        family: str | None,
        expires_at: Any,
        refresh_scopes: Sequence[str] | None = None,
    ) -> IssuedTokens:
        """Tokens for ``authorized``; a refresh token (in ``family``) with ``refresh``.

        With a DPoP proof the tokens are bound to its key (RFC 9449 §5).
        """
        provider = self.provider
        if authorized.client.require_dpop and provider.dpop is None:
            # RFC 9449 §5.2: a client registered for DPoP-bound tokens must prove a key.
            raise InvalidRequestError(description="this client must send a DPoP proof")
        return issue_tokens(
            provider.session,
            provider.keystore,
            provider.secret_key,
            issuer=provider.issuer,
            authorized=authorized,
            now=provider.now,
            refresh=refresh,
            family=family,
            refresh_expires_at=expires_at,
            dpop_jkt=provider.dpop.jkt if provider.dpop else None,
            refresh_scopes=refresh_scopes,
            signing_key=provider.cache.signing_key(provider.session) if provider.cache else None,
        )


class _CodeRecord:
    """An authorization code row as authlib's grant sees it."""

    def __init__(self, record: AuthorizationCode) -> None:
        self.record = record
        self.code_challenge = record.code_challenge

    def get_redirect_uri(self) -> str:
        return self.record.redirect_uri

    def get_scope(self) -> str:
        return " ".join(self.record.scopes)

    def get_nonce(self) -> str | None:
        return self.record.nonce

    def get_auth_time(self) -> int:
        return int(self.record.auth_time.timestamp())


class CodeGrant(_Issuing, AuthorizationCodeGrant):  # type: ignore[misc]
    """RFC 6749 §4.1, with OpenID Connect's nonce and our token issuance."""

    TOKEN_ENDPOINT_AUTH_METHODS = CODE_AUTH_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: Client) -> str:
        """OIDC Core §3.1.2.1: redirect_uri is required and matches a registered one exactly."""
        uri = request.payload.redirect_uri
        if not uri:
            raise InvalidRequestError(description="redirect_uri is required")
        if not client.check_redirect_uri(uri):
            raise InvalidRequestError(
                description="redirect_uri is not one registered for this client (exact match)"
            )
        return str(uri)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        """Store the code's hash with everything the token request will need."""
        person: Person = request.user
        provider = self.provider
        # Written straight away (insert_rows): nothing reads it back in this unit of work.
        row = {
            "code_hash": token_hash(code),
            "client_id": request.client.client_id,
            "citizen_id": person.citizen.id,
            "session_id": person.login.id,
            "redirect_uri": request.payload.redirect_uri,
            "scopes": parse_scope(request.scope),
            "nonce": request.payload.data.get("nonce"),
            "code_challenge": request.payload.data["code_challenge"],
            "business": person.business,
            "auth_time": person.login.auth_time,
            "acr": person.login.acr,
            "amr": list(person.login.amr),
            "dpop_jkt": request.payload.data.get("dpop_jkt"),
            "expires_at": provider.now + CODE_LIFETIME,
            "used_at": None,
            "access_token_jti": None,
            "access_token_expires_at": None,
            "refresh_family": None,
        }
        insert_rows(provider.session, CODES, [row])

    def query_authorization_code(self, code: str, client: Client) -> _CodeRecord | None:
        """The unused, unexpired code issued to ``client``; a reused one revokes its tokens."""
        provider = self.provider
        record = provider.session.scalar(_CODE, {"code_hash": token_hash(code)})
        if record is None or record.client_id != client.client_id:
            return None
        if record.used_at is not None:
            # RFC 6749 §4.1.2: deny, and revoke what the code already produced.
            revoke_code_products(provider.session, record, provider.now)
            return None
        if record.expires_at <= provider.now:
            return None
        return _CodeRecord(record)

    def create_token_response(self) -> tuple[int, Any, list[tuple[str, str]]]:
        """Redeem the code once: tokens, and the code marked used with what it produced."""
        provider = self.provider
        record: AuthorizationCode = self.request.authorization_code.record
        client: Client = self.request.client
        if record.dpop_jkt and (provider.dpop is None or provider.dpop.jkt != record.dpop_jkt):
            # RFC 9449 §10: the proof must be signed by the key the code is bound to.
            raise InvalidGrantError(
                description="this authorization code is bound to a DPoP key: "
                "send a DPoP proof signed with it"
            )
        person = self.live_person(record.citizen_id, record.session_id, record.business)
        if person is None:
            raise InvalidGrantError(description="the session this code was issued in has ended")
        authorized = Authorized(
            citizen=person.citizen,
            client=client.record,
            session_id=record.session_id,
            scopes=record.scopes,
            auth_time=record.auth_time,
            acr=record.acr,
            amr=record.amr,
            business=record.business,
            nonce=record.nonce,
        )
        issued = self.issue(
            authorized,
            refresh="refresh_token" in client.record.grant_types,
            family=None,
            expires_at=person.login.expires_at,
        )
        if not mark_redeemed(provider.session, record, provider.now, issued):
            # Redeemed since it was read: the row lock (PostgreSQL) or the write lock
            # (SQLite) make this unreachable; were it not, what was just issued is void.
            revoke_issued(provider.session, issued, client.client_id, provider.now)
            raise InvalidGrantError(description="this authorization code has been used")
        return 200, issued.response, self.TOKEN_RESPONSE_HEADER


class _RefreshRecord:
    """A refresh token row as authlib's grant sees it."""

    def __init__(self, record: RefreshToken) -> None:
        self.record = record

    def check_client(self, client: Client) -> bool:
        return self.record.client_id == client.client_id

    def get_scope(self) -> str:
        return " ".join(self.record.scopes)


class RefreshGrant(_Issuing, RefreshTokenGrant):  # type: ignore[misc]
    """RFC 6749 §6 with rotation: every use returns a new refresh token, and a used
    one presented again revokes the whole family (RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CODE_AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshRecord | None:
        """The live refresh token; a rotated or revoked one presented again revokes its family."""
        provider = self.provider
        record = find_refresh_token(provider.session, refresh_token)
        if record is None:
            return None
        if record.rotated_at is not None or record.revoked_at is not None:
            revoke_family(provider.session, record.family, provider.now)
            return None
        if record.expires_at <= provider.now:
            return None
        return _RefreshRecord(record)

    def authenticate_user(self, refresh_token: _RefreshRecord) -> Person | None:
        """The person and live session behind the token."""
        record = refresh_token.record
        return self.live_person(record.citizen_id, record.session_id, record.business)

    def create_token_response(self) -> tuple[int, Any, list[tuple[str, str]]]:
        """Rotate: new tokens in the same family, the presented one marked rotated."""
        provider = self.provider
        record: RefreshToken = self.request.refresh_token.record
        person = self.authenticate_user(self.request.refresh_token)
        if person is None:
            raise InvalidGrantError(description="the session behind this token has ended")
        client: Client = self.request.client
        # RFC 9449 §5: a bound refresh token is used only with a proof of the same key.
        if record.dpop_jkt and (provider.dpop is None or provider.dpop.jkt != record.dpop_jkt):
            raise InvalidGrantError(description="this refresh token is bound to another DPoP key")
        scopes = parse_scope(self.request.payload.scope) or list(record.scopes)
        authorized = Authorized(
            citizen=person.citizen,
            client=client.record,
            session_id=record.session_id,
            scopes=scopes,
            auth_time=record.auth_time,
            acr=record.acr,
            amr=record.amr,
            business=record.business,
        )
        issued = self.issue(
            authorized,
            refresh=True,
            family=record.family,
            expires_at=record.expires_at,
            refresh_scopes=record.scopes,
        )
        if not mark_rotated(provider.session, record, provider.now):
            # RFC 9700 §4.14.2: used since it was read (unreachable under the row or write
            # lock, as for codes); a second use all the same: the family goes, new token too.
            revoke_issued(provider.session, issued, client.client_id, provider.now)
            raise InvalidGrantError(description="this refresh token has been used")
        return 200, issued.response, self.TOKEN_RESPONSE_HEADER
