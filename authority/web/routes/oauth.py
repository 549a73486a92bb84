"""OAuth 2.0 endpoints: token, introspection, revocation, metadata, JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from authority.db.base import utcnow
from authority.oidc import tokens
from authority.oidc.metadata import server_metadata
from authority.web.deps import WRITES, CurrentInstance, DbSession
from authority.web.lean import LeanRoute
from authority.web.oauth import (
    OAuthRequest,
    Server,
    oauth_request,
    to_response,
    token_response,
)

router = APIRouter(tags=["oauth"])

_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
    }
}


async def token(http: Request) -> Response:
    """Client credentials, authorization code and refresh grants; errors in RFC 6749 §5.2 form."""
    request = await oauth_request(http)
    # Plain client-credentials requests were answered from memory before reaching
    # here (authority/web/hot.py, hot_token_handler); this is everything else.
    return await run_in_threadpool(token_response, http.app.state.instance, request, http)


#: Served ahead of FastAPI's routing (authority/web/lean.py): every agency call starts here.
LEAN_ROUTES = [
    LeanRoute(
        "/oauth/token",
        "POST",
        token,
        {
            "tags": ["oauth"],
            "summary": "Token endpoint (RFC 6749 §3.2)",
            "description": token.__doc__,
            **_FORM_BODY,
            "responses": {
                "200": {"description": "Access token response (RFC 6749 §5.1)"},
                "400": {"description": "Error response (RFC 6749 §5.2)"},
                "401": {"description": "Client authentication failed (`invalid_client`)"},
                "429": {"description": "Too many failed client authentications"},
            },
        },
    )
]


@router.post(
    "/oauth/introspect",
    summary="Token introspection (RFC 7662)",
    response_class=Response,
    openapi_extra=_FORM_BODY,
)
def introspect(request: OAuthRequest, server: Server) -> Response:
    """Whether a token is active, and its claims; for authenticated clients."""
    return to_response(server.create_endpoint_response("introspection", request))


@router.post(
    "/oauth/revoke",
    dependencies=[WRITES],
    summary="Token revocation (RFC 7009)",
    response_class=Response,
    openapi_extra=_FORM_BODY,
)
def revoke(request: OAuthRequest, server: Server) -> Response:
    """Revoke an access token the client holds; 200 even for unknown tokens."""
    return to_response(server.create_endpoint_response("revocation", request))


@router.get("/.well-known/oauth-authorization-server", summary="RFC 8414 metadata")
@router.get("/.well-known/openid-configuration", summary="OpenID Provider metadata")
def metadata(instance: CurrentInstance) -> JSONResponse:
    """Where the endpoints are and what they support."""
    return JSONResponse(
        server_metadata(instance.settings.issuer), headers={"Cache-Control": "public, max-age=300"}
    )


@router.get("/oauth/jwks.json", summary="The provider's public signing keys")
def jwks(instance: CurrentInstance, session: DbSession) -> JSONResponse:
    """Public keys only, including retired keys whose tokens may still be presented."""
    return JSONResponse(
        tokens.jwks(session, instance.keystore, utcnow()),
        headers={"Cache-Control": "public, max-age=60"},
    )
