"""Authorization server metadata (RFC 8414) and OpenID Provider metadata (Discovery §3)."""

from __future__ import annotations

from typing import Any

from authority.oidc.scopes import SCOPES
from authority.oidc.server import TOKEN_ENDPOINT_AUTH_METHODS


def server_metadata(issuer: str) -> dict[str, Any]:
    """What a client needs to find and use this provider, as of what it supports now."""
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/oauth/jwks.json",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "scopes_supported": list(SCOPES),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],  # the authorization endpoint arrives with OIDC login
        "token_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": [
            "ES256",
            "ES384",
            "RS256",
            "PS256",
            "EdDSA",
        ],
        "introspection_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "service_documentation": f"{issuer}/docs",
    }
