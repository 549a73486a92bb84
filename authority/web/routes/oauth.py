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
from authority.web.oauth import OAuthRequest, Server, to_response, token_response

router = APIRouter(tags=["oauth"])

_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/oauth/token",
    summary="Token endpoint (RFC 6749 §3.2)",
    response_class=Response,
    openapi_extra=_FORM_BODY,
)
async def token(request: OAuthRequest, instance: CurrentInstance, http: Request) -> Response:
    """Client credentials, authorization code and refresh grants; errors in RFC 6749 §5.2 form."""
    return await run_in_threadpool(token_response, instance, request, http)


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
