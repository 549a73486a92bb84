"""Authorization server metadata (RFC 8414) and OpenID Provider metadata (Discovery §3)."""

from __future__ import annotations

from typing import Any

from authority.identity.assurance import LEVELS
from authority.oidc.dpop import DPOP_ALGORITHMS
from authority.oidc.scopes import SCOPES
from authority.oidc.server import TOKEN_ENDPOINT_AUTH_METHODS


def server_metadata(issuer: str) -> dict[str, Any]:
    """What a client needs to find and use this provider, as of what it supports now."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "pushed_authorization_request_endpoint": f"{issuer}/oauth/par",
        "end_session_endpoint": f"{issuer}/oauth/logout",
        "jwks_uri": f"{issuer}/oauth/jwks.json",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "scopes_supported": list(SCOPES),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "token_endpoint_auth_methods_supported": [*TOKEN_ENDPOINT_AUTH_METHODS, "none"],
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
        "acr_values_supported": list(LEVELS),
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
            "azp",
            "at_hash",
            "name",
            "email",
            "email_verified",
            "phone_number",
            "phone_number_verified",
            "business",
        ],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_pushed_authorization_requests": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "dpop_signing_alg_values_supported": DPOP_ALGORITHMS,
        "service_documentation": f"{issuer}/docs",
    }
