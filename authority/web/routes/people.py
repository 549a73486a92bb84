"""OpenID Connect endpoints for people: authorization, pushed requests, userinfo, logout."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from authority.db.base import utcnow
from authority.oidc.authorize import AuthorizationEndpoint
from authority.oidc.backchannel import LogoutNotice, deliver
from authority.oidc.bearer import authenticate
from authority.oidc.dpop import authenticate_dpop
from authority.oidc.grants import CODE_AUTH_METHODS
from authority.oidc.logout import check_logout_request, close_session
from authority.oidc.server import AuthorityServer
from authority.oidc.userinfo import userinfo as userinfo_claims
from authority.web.deps import WRITES, CurrentInstance, DbSession, in_unit_of_work
from authority.web.lean import LeanRoute
from authority.web.oauth import (
    AuthorizeRequest,
    OAuthRequest,
    Server,
    authorization_request,
    provider_for,
    to_response,
)
from authority.web.pages import render
from authority.web.people import (
    bind_browser,
    browser_binding,
    clear_session_cookie,
    csrf_ok,
    current_login,
    new_browser_binding,
    page,
    step_response,
)

router = APIRouter(tags=["openid"])


def _userinfo_is_write(request: Request) -> bool:
    """A DPoP proof's jti is recorded (a write); bearer requests only read."""
    return "dpop" in request.headers


async def _userinfo_writes(request: Request) -> None:
    """:func:`_userinfo_is_write` as a dependency.

    ``async`` although it awaits nothing: FastAPI would run a plain function in a
    worker thread, a hand-off that costs more than the check.
    """
    if _userinfo_is_write(request):
        request.state.writes = True


@router.get(
    "/oauth/authorize",
    dependencies=[WRITES],
    summary="Authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2)",
    response_class=Response,
    operation_id="authorize_get",
)
@router.post(
    "/oauth/authorize",
    dependencies=[WRITES],
    summary="Authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2)",
    response_class=Response,
    operation_id="authorize_post",
)
def authorize(
    request: Request, oauth: AuthorizeRequest, session: DbSession, server: Server
) -> Response:
    """Validate the request; then login, business choice, consent, or back to the portal."""
    binding = browser_binding(request)
    if request.method == "POST" and binding is None:
        # A form posted from the portal's site carries none of our SameSite=Lax cookies
        # (binding, session); the same request as a top-level GET does (OIDC Core
        # §3.1.2.1 lets GET and POST carry the same parameters).
        values = [(k, v) for k, vs in oauth.payload.datalist.items() for v in vs]
        return RedirectResponse(f"/oauth/authorize?{urlencode(values)}", status_code=303)
    login = current_login(request, session)
    binding = binding or new_browser_binding()
    step = AuthorizationEndpoint(server, binding).start(oauth, login)
    response = step_response(request, step)
    bind_browser(request, response, binding)
    return response


@router.post(
    "/oauth/par",
    dependencies=[WRITES],
    summary="Pushed authorization requests (RFC 9126)",
    response_class=Response,
)
def pushed_authorization_request(oauth: OAuthRequest, server: Server) -> Response:
    """Store an authenticated client's authorization request; answer its request_uri."""
    try:
        client = server.authenticate_client(
            oauth, CODE_AUTH_METHODS, "pushed_authorization_request"
        )
        body = AuthorizationEndpoint(server).push(oauth, client.client_id)
    except OAuth2Error as error:
        error.redirect_uri = None  # RFC 9126 §2.3: errors answer the client, never redirect
        return to_response(server.handle_error_response(oauth, error))
    return to_response((201, body, []))


@router.get(
    "/oauth/userinfo",
    dependencies=[Depends(_userinfo_writes)],
    summary="UserInfo (OIDC Core §5.3)",
    operation_id="userinfo_get",
)
@router.post(
    "/oauth/userinfo",
    dependencies=[Depends(_userinfo_writes)],
    summary="UserInfo (OIDC Core §5.3)",
    operation_id="userinfo_post",
)
def userinfo(request: Request, instance: CurrentInstance, session: DbSession) -> JSONResponse:
    """The claims the access token's scopes release; needs scope openid."""
    authorization = request.headers.get("authorization") or ""
    verifier = request.app.state.token_verifier
    if authorization.lower().startswith("dpop "):
        token = authenticate_dpop(
            session,
            instance.keystore,
            verifier,
            authorization=authorization,
            proof=request.headers.get("dpop"),
            method=request.method,
            url=f"{instance.settings.issuer}{request.url.path}",
            scope="openid",
            now=utcnow(),
        )
    else:
        token = authenticate(
            session, instance.keystore, verifier, authorization, "openid", utcnow()
        )
    return JSONResponse(userinfo_claims(session, token), headers={"Cache-Control": "no-store"})


@router.get(
    "/oauth/logout",
    dependencies=[WRITES],
    summary="RP-Initiated Logout",
    response_class=Response,
    operation_id="logout_get",
)
@router.post(
    "/oauth/logout",
    dependencies=[WRITES],
    summary="RP-Initiated Logout",
    response_class=Response,
    operation_id="logout_post",
)
def logout(
    request: Request, oauth: AuthorizeRequest, instance: CurrentInstance, session: DbSession
) -> Response:
    """End the session: at once with a matching id_token_hint, else after confirmation."""
    params: dict[str, Any] = dict(oauth.payload.data)
    checked = check_logout_request(
        session,
        instance.keystore,
        instance.settings.issuer,
        id_token_hint=params.get("id_token_hint"),
        client_id=params.get("client_id"),
        post_logout_redirect_uri=params.get("post_logout_redirect_uri"),
        state=params.get("state"),
    )
    login = current_login(request, session)
    confirmed = request.method == "POST" and csrf_ok(request, params.get("csrf"))
    if login is not None and not confirmed and checked.hinted_sid != login.id:
        return page(request, "logout.html", {"params": params})
    notices: list[LogoutNotice] = []
    if login is not None:
        notices = close_session(
            session,
            instance.keystore,
            instance.client_secret_key,
            instance.settings.issuer,
            login,
            utcnow(),
        )
    response: Response
    if checked.redirect_to:
        response = RedirectResponse(checked.redirect_to, status_code=303)
    else:
        response = render(request, "logged_out.html")
    clear_session_cookie(request, response)
    # Back-channel logout tokens go out once the session's end is committed.
    response.background = BackgroundTask(deliver, notices) if notices else None
    return response


async def authorize_lean(request: Request) -> Response:
    """GET /oauth/authorize as :func:`authorize`, without FastAPI's per-request work."""
    oauth = await authorization_request(request)
    instance = request.app.state.instance
    return await in_unit_of_work(
        request,
        lambda session: authorize(
            request, oauth, session, AuthorityServer(provider_for(instance, session, request))
        ),
        write=True,
    )


async def userinfo_lean(request: Request) -> Response:
    """GET /oauth/userinfo as :func:`userinfo`, without FastAPI's per-request work."""
    instance = request.app.state.instance
    return await in_unit_of_work(
        request,
        lambda session: userinfo(request, instance, session),
        write=_userinfo_is_write(request),
    )


#: Every login crosses these (authority/web/lean.py); the FastAPI routes above
#: describe them in /openapi.json and answer their other methods.
LEAN_ROUTES = [
    LeanRoute("/oauth/authorize", "GET", authorize_lean, None),
    LeanRoute("/oauth/userinfo", "GET", userinfo_lean, None),
]
