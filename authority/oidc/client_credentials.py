"""RFC 6749 §4.4 client-credentials tokens answered from memory alone.

Every agency call starts with one of these requests, and most are alike: a
client authenticating with its secret asks for a token, perhaps naming scopes.
When the client's registration and the signing key are held
(:class:`~authority.oidc.cache.ProviderCache`), such a request needs no
database, and going through authlib's grant machinery for it costs more than
the token's signature. :func:`token_from_memory` answers exactly that request
and nothing else: a request it does not recognise in full (another parameter,
another authentication method, a DPoP proof) or one that fails any check gets
``None``, and the full path (:class:`~authority.oidc.server.AuthorityServer`)
answers it, errors and their throttling included. Both paths issue the same
token (tests/unit/oidc/test_client_credentials.py compares them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749.util import extract_basic_authorization

from authority.errors import InvalidInput
from authority.oidc.cache import ProviderCache
from authority.oidc.clients import ClientSecretKey
from authority.oidc.scopes import parse_scope
from authority.oidc.tokens import sign_access_token
from authority.pki.keystore import KeyStore

GRANT_TYPE = "client_credentials"
#: The only parameters a request answered here may carry (RFC 6749 §4.4.2, §2.3.1).
PARAMETERS = frozenset({"grant_type", "scope", "client_id", "client_secret"})


def _presented(headers: Mapping[str, str], form: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(client id, secret, method) when the request authenticates one way, with a secret."""
    authorization = headers.get("authorization")
    if authorization is not None:
        if "client_id" in form or "client_secret" in form:
            return None  # RFC 6749 §2.3: one authentication method per request
        # RFC 6749 §2.3.1, parsed as the full path's authlib parses it.
        try:
            client_id, secret = extract_basic_authorization(headers)
        except ValueError:  # non-ASCII text: the full path answers invalid_client
            return None
        if not client_id or not secret:
            return None
        return client_id, secret, "client_secret_basic"
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if not client_id or not secret:
        return None
    return client_id, secret, "client_secret_post"


def token_from_memory(
    *,
    cache: ProviderCache,
    keystore: KeyStore,
    secret_key: ClientSecretKey,
    issuer: str,
    form: Mapping[str, list[str]],
    headers: Mapping[str, str],
    now: datetime,
) -> dict[str, Any] | None:
    """The token response body (RFC 6749 §5.1) of a plain, valid client-credentials
    request whose client and signing key memory holds; ``None`` for anything else.

    ``form`` maps each body parameter to its values (empty values already dropped,
    RFC 6749 §3.1); the caller has checked that the body is a form and sent no DPoP
    header.
    """
    if not form.keys() <= PARAMETERS or any(len(values) != 1 for values in form.values()):
        return None  # other parameters, or one repeated (RFC 6749 §3.2): the full path
    first = {name: values[0] for name, values in form.items()}
    if first.get("grant_type") != GRANT_TYPE:
        return None
    presented = _presented(headers, first)
    if presented is None:
        return None
    client_id, secret, method = presented
    held = cache.held(client_id)
    if held is None:
        return None
    client, key = held
    if (
        client.auth_method != method  # only the registered method authenticates
        or not secret_key.matches(secret, client.secret_hash)
        or GRANT_TYPE not in client.grant_types
        or client.require_dpop  # refused by the full path (RFC 9449 §5.2)
    ):
        return None
    try:
        requested = parse_scope(first.get("scope"))
    except InvalidInput:
        return None
    if any(scope not in client.scopes for scope in requested):
        return None  # §3.3 invalid_scope, from the full path
    # §3.3: with no scope requested, the registered ones are the default.
    scopes = requested or list(client.scopes)
    token, lifetime = sign_access_token(
        keystore,
        key,
        issuer=issuer,
        client_id=client_id,
        subject=client_id,
        scopes=scopes,
        now=now,
    )
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}
    if scopes:
        body["scope"] = " ".join(scopes)
    return body
