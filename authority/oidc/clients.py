"""The client registry (RFC 6749 §2, RFC 7591 metadata names).

Client secrets are 256-bit random values shown once. Only an HMAC-SHA256 of
each is stored, keyed with the installation's client-secret key (a file
beside the key store), so checking one costs a microsecond and a database
dump alone cannot confirm a guessed or leaked secret. A slow password hash
would only cost throughput: these secrets cannot be guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy import select
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.errors import InvalidInput, NotFound
from authority.oidc.models import OAuthClient
from authority.oidc.scopes import SCOPES, parse_scope
from authority.oidc.sectors import SectorDocument

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
AGENCY_SCOPES = ("licences:issue", "licences:revoke", "licences:read")


class ClientSecretKey:
    """Hashes client secrets with the installation's HMAC key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the client-secret key must have at least 32 bytes")
        self._key = key

    def digest(self, secret: str) -> str:
        """HMAC-SHA256 of ``secret``, hex."""
        return hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, secret: str, stored: str | None) -> bool:
        """Whether ``secret`` is the one whose digest is ``stored`` (constant time)."""
        return stored is not None and hmac.compare_digest(self.digest(secret), stored)


@dataclass(frozen=True)
class NewClient:
    """A registered client and, for secret-based methods, its secret (shown once)."""

    record: OAuthClient
    secret: str | None

    def describe(self) -> dict[str, Any]:
        """The registration as RFC 7591 §3.2.1 names it (plus the secret, once)."""
        data = describe(self.record)
        if self.secret is not None:
            data["client_secret"] = self.secret
        return data


def describe(record: OAuthClient) -> dict[str, Any]:
    """A client's registration metadata (RFC 7591 §2 names); never its secret."""
    data: dict[str, Any] = {
        "client_id": record.client_id,
        "client_name": record.name,
        "token_endpoint_auth_method": record.auth_method,
        "grant_types": list(record.grant_types),
        "redirect_uris": list(record.redirect_uris),
        "scope": " ".join(record.scopes),
    }
    if record.jwks is not None:
        data["jwks"] = record.jwks
    if record.jwks_uri is not None:
        data["jwks_uri"] = record.jwks_uri
    if record.post_logout_redirect_uris:
        data["post_logout_redirect_uris"] = list(record.post_logout_redirect_uris)
    if record.require_par:
        data["require_pushed_authorization_requests"] = True
    if record.require_dpop:
        data["dpop_bound_access_tokens"] = True
    if record.backchannel_logout_uri:
        data["backchannel_logout_uri"] = record.backchannel_logout_uri
    if record.sector_identifier_uri:
        data["sector_identifier_uri"] = record.sector_identifier_uri
    return data


def _check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput(f"redirect URI {uri!r} must be an absolute https URL")
    # RFC 6749 §3.1.2: the redirection endpoint URI MUST NOT include a fragment.
    if parts.fragment or "#" in uri:
        raise InvalidInput(f"redirect URI {uri!r} must not contain a fragment")
    # RFC 9700 §2.6 / RFC 8252 §8.3: plain http only for loopback (native and development).
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise InvalidInput(f"redirect URI {uri!r} must use https (http only for loopback)")
    return uri


def _check_jwks(jwks: dict[str, Any]) -> dict[str, Any]:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise InvalidInput('jwks must be a JWK set: {"keys": [...]} with at least one key')
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in ("EC", "RSA", "OKP"):
            raise InvalidInput("jwks keys must be EC, RSA or OKP public keys")
        # A private or symmetric key here would let anyone holding the registry sign as
        # the client, and invites HMAC-with-public-key confusion.
        if any(member in key for member in ("d", "p", "q", "k")):
            raise InvalidInput("jwks must contain public keys only")
    return jwks


def register_client(
    session: Session,
    secret_key: ClientSecretKey,
    *,
    name: str,
    redirect_uris: Sequence[str] = (),
    auth_method: str = "client_secret_basic",
    grant_types: Sequence[str] = (),
    scopes: Sequence[str] = (),
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    agency: Agency | None = None,
    now: datetime,
    secret: str | None = None,
    post_logout_redirect_uris: Sequence[str] = (),
    require_par: bool = False,
    require_dpop: bool = False,
    backchannel_logout_uri: str | None = None,
    sector: SectorDocument | None = None,
) -> NewClient:
    """Validate and store a client; return it with its secret if it has one.

    ``secret`` fixes the secret instead of drawing one (the demo derives its own so
    that it can print it again); it must be at least 32 characters. ``sector``: the
    fetched document of the client's sector_identifier_uri, which must list every
    redirect URI (:func:`authority.oidc.sectors.fetch_sector_document`).
    """
    name = name.strip()
    if not 0 < len(name) <= 128:
        raise InvalidInput("client name must be 1-128 characters")
    if auth_method not in AUTH_METHODS:
        raise InvalidInput(f"auth method must be one of {', '.join(AUTH_METHODS)}")
    uris = [_check_redirect_uri(u) for u in redirect_uris]
    # OIDC Core §8.1: without a sector_identifier_uri the sector is the redirect URIs'
    # host, so they must share one, or the pairwise subject would depend on which is used.
    if sector is not None:
        sector.check_covers(uris)
    elif len({urlsplit(u).hostname for u in uris}) > 1:
        raise InvalidInput(
            "a client's redirect URIs must share one host (its pairwise sector), "
            "or name a sector_identifier_uri listing them all"
        )
    grants = list(dict.fromkeys(grant_types)) or (
        ["authorization_code", "refresh_token"] if uris else ["client_credentials"]
    )
    for grant in grants:
        if grant not in GRANT_TYPES:
            raise InvalidInput(f"grant type {grant!r} is not one of {', '.join(GRANT_TYPES)}")
    if "authorization_code" in grants and not uris:
        raise InvalidInput("the authorization_code grant needs at least one --redirect-uri")
    # RFC 6749 §4.4: client_credentials MUST only be used by confidential clients.
    if auth_method == "none" and "client_credentials" in grants:
        raise InvalidInput("a public client (auth method none) cannot use client_credentials")
    # RFC 9449 §5.2: such a client gets DPoP-bound tokens only; client-credentials tokens
    # are for the licence API, which takes Bearer tokens (docs/oidc.md, DPoP).
    if require_dpop and "client_credentials" in grants:
        raise InvalidInput(
            "--require-dpop is for the authorization_code grant, not client_credentials"
        )
    allowed = list(dict.fromkeys(scopes)) or (
        ["openid", "profile"] if "authorization_code" in grants else []
    )
    for scope in allowed:
        if scope not in SCOPES:
            raise InvalidInput(f"unknown scope {scope!r}; known: {', '.join(sorted(SCOPES))}")
    if auth_method == "private_key_jwt":
        if (jwks is None) == (jwks_uri is None):
            raise InvalidInput("private_key_jwt needs exactly one of --jwks or --jwks-uri")
        if jwks_uri is not None and urlsplit(jwks_uri).scheme not in ("https", "http"):
            raise InvalidInput("jwks_uri must be an http(s) URL")
    elif jwks is not None or jwks_uri is not None:
        raise InvalidInput("--jwks and --jwks-uri go with --auth-method private_key_jwt")
    if auth_method not in SECRET_METHODS:
        secret = None
    elif secret is None:
        secret = secrets.token_urlsafe(32)
    elif len(secret) < 32:
        raise InvalidInput("a client secret must have at least 32 characters")
    record = OAuthClient(
        client_id=secrets.token_urlsafe(18),
        name=name,
        secret_hash=secret_key.digest(secret) if secret else None,
        auth_method=auth_method,
        redirect_uris=uris,
        grant_types=grants,
        scopes=allowed,
        jwks=_check_jwks(jwks) if jwks is not None else None,
        jwks_uri=jwks_uri,
        agency_id=agency.id if agency else None,
        created_at=now,
        post_logout_redirect_uris=[_check_redirect_uri(u) for u in post_logout_redirect_uris],
        require_par=require_par,
        require_dpop=require_dpop,
        backchannel_logout_uri=(
            _check_redirect_uri(backchannel_logout_uri) if backchannel_logout_uri else None
        ),
        sector_identifier_uri=sector.uri if sector is not None else None,
    )
    session.add(record)
    session.flush()
    return NewClient(record, secret)


def find_client(session: Session, client_id: str) -> OAuthClient | None:
    """The enabled client with ``client_id``, if any."""
    return session.scalar(
        select(OAuthClient).where(
            OAuthClient.client_id == client_id, OAuthClient.disabled_at.is_(None)
        )
    )


def agency_client(session: Session, agency: Agency) -> OAuthClient:
    """The API client of ``agency``."""
    record = session.scalar(select(OAuthClient).where(OAuthClient.agency_id == agency.id))
    if record is None:
        raise NotFound(f"agency {agency.code} has no API client")
    return record


class Client(ClientMixin):  # type: ignore[misc]
    """A registered client as authlib's grants and endpoints see it."""

    def __init__(self, record: OAuthClient, secret_key: ClientSecretKey) -> None:
        self.record = record
        self._secret_key = secret_key

    @property
    def client_id(self) -> str:
        """The client's identifier."""
        return self.record.client_id

    def get_client_id(self) -> str:
        """RFC 6749 §2.2 client identifier."""
        return self.record.client_id

    def get_default_redirect_uri(self) -> str | None:
        """The first registered redirect URI."""
        return self.record.redirect_uris[0] if self.record.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client may have (malformed scope: none)."""
        try:
            requested = parse_scope(scope)
        except InvalidInput:
            return ""
        return " ".join(s for s in requested if s in self.record.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact match against a registered URI (RFC 9700 §4.1.3)."""
        return redirect_uri in self.record.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        """Whether ``client_secret`` is this client's secret."""
        return self._secret_key.matches(client_secret, self.record.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Only the registered method authenticates, at every endpoint."""
        return method == self.record.auth_method

    def check_response_type(self, response_type: str) -> bool:
        """``code`` for clients registered for the authorization code grant."""
        return response_type == "code" and "authorization_code" in self.record.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        """Whether the client is registered for ``grant_type``."""
        return grant_type in self.record.grant_types


def register_agency_client(
    session: Session,
    secret_key: ClientSecretKey,
    agency: Agency,
    now: datetime,
    secret: str | None = None,
) -> NewClient:
    """The API client of an agency back-end: client credentials, the licence scopes."""
    return register_client(
        session,
        secret_key,
        name=f"{agency.name} API",
        auth_method="client_secret_basic",
        grant_types=["client_credentials"],
        scopes=AGENCY_SCOPES,
        agency=agency,
        now=now,
        secret=secret,
    )
