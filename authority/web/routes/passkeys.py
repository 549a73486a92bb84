"""Passkeys over HTTP: registration by a logged-in person, and login without a password.

The ceremonies are JSON calls made by /static/passkeys.js (WebAuthn is a
browser API); each carries the page's CSRF token in ``X-CSRF-Token`` and the
ceremony's challenge handle in a cookie.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from authority.db.base import utcnow
from authority.identity import passkeys
from authority.identity.assurance import AMR_HARDWARE_KEY, AMR_MFA
from authority.identity.login import start_session
from authority.identity.models import Citizen, Passkey
from authority.oidc.authorize import RequestOfAnotherBrowser
from authority.web.deps import WRITES, CurrentInstance, DbSession
from authority.web.oauth import Server
from authority.web.people import (
    authorization_endpoint,
    csrf_ok,
    current_login,
    error_page,
    page,
    start_browser_session,
)

router = APIRouter(include_in_schema=False)
CEREMONY_COOKIE = "authority_webauthn"


def relying_party(instance: CurrentInstance) -> passkeys.RelyingParty:
    """The issuer's host and origin, which passkeys are scoped to."""
    parts = urlsplit(instance.settings.issuer)
    return passkeys.RelyingParty(
        id=parts.hostname or "localhost",
        name="Authority",
        origin=f"{parts.scheme}://{parts.netloc}",
    )


def _refused(detail: str, status: int = 403) -> JSONResponse:
    return JSONResponse({"error": "access_denied", "error_description": detail}, status)


def _with_ceremony(body: dict[str, Any], handle: str) -> JSONResponse:
    response = JSONResponse(body, headers={"Cache-Control": "no-store"})
    response.set_cookie(CEREMONY_COOKIE, handle, httponly=True, samesite="strict", path="/")
    return response


async def _credential(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@router.get("/account/passkeys")
def passkeys_page(request: Request, session: DbSession) -> Response:
    """The person's passkeys, and a button to add one."""
    login = current_login(request, session)
    if login is None:
        return error_page(request, "login_required", "log in through a portal first", 401)
    held = (
        session.query(Passkey)
        .filter(Passkey.citizen_id == login.citizen_id)
        .order_by(Passkey.id)
        .all()
    )
    return page(request, "passkeys.html", {"count": len(held), "passkeys": held})


@router.post("/account/passkeys/options", dependencies=[WRITES])
def registration_options(
    request: Request, instance: CurrentInstance, session: DbSession
) -> Response:
    """Options for ``navigator.credentials.create``."""
    login = current_login(request, session)
    citizen = session.get(Citizen, login.citizen_id) if login else None
    if citizen is None or not csrf_ok(request, request.headers.get("x-csrf-token")):
        return _refused("log in and use the passkeys page")
    handle, options = passkeys.registration_options(
        session, relying_party(instance), citizen, utcnow()
    )
    return _with_ceremony(options, handle)


@router.post("/account/passkeys", dependencies=[WRITES])
async def register_passkey(
    request: Request, instance: CurrentInstance, session: DbSession
) -> Response:
    """Store the passkey the browser created."""
    credential = await _credential(request)
    login = current_login(request, session)
    citizen = session.get(Citizen, login.citizen_id) if login else None
    if citizen is None or not csrf_ok(request, request.headers.get("x-csrf-token")):
        return _refused("log in and use the passkeys page")
    try:
        passkeys.register(
            session,
            relying_party(instance),
            citizen,
            request.cookies.get(CEREMONY_COOKIE),
            credential,
            utcnow(),
        )
    except passkeys.PasskeyFailed as exc:
        return _refused(exc.detail, 400)
    return JSONResponse({"registered": True}, status_code=201)


@router.post("/login/passkey/options", dependencies=[WRITES])
def login_options(request: Request, instance: CurrentInstance, session: DbSession) -> Response:
    """Options for ``navigator.credentials.get`` (any of this site's passkeys)."""
    if not csrf_ok(request, request.headers.get("x-csrf-token")):
        return _refused("the page expired; reload it")
    handle, options = passkeys.authentication_options(session, relying_party(instance), utcnow())
    return _with_ceremony(options, handle)


@router.post("/login/passkey", dependencies=[WRITES])
async def login_with_passkey(
    request: Request, instance: CurrentInstance, session: DbSession, server: Server
) -> Response:
    """Log in with a passkey; answer where the browser goes next."""
    body = await _credential(request)
    if not csrf_ok(request, request.headers.get("x-csrf-token")):
        return _refused("the page expired; reload it")
    endpoint = authorization_endpoint(request, server)
    request_id = str(body.get("request", ""))
    if endpoint.of_another_browser(request_id):
        refused = RequestOfAnotherBrowser()
        return _refused(refused.description, refused.status_code)
    now = utcnow()
    credential = body.get("credential")
    try:
        citizen = passkeys.authenticate(
            session,
            relying_party(instance),
            request.cookies.get(CEREMONY_COOKIE),
            credential if isinstance(credential, dict) else {},
            now,
        )
    except passkeys.PasskeyFailed as exc:
        return _refused(exc.detail, 401)
    started = start_session(session, citizen, [AMR_HARDWARE_KEY, AMR_MFA], now)
    step = endpoint.resume(request_id, started.record)
    if step.kind == "redirect" and step.location:
        location = step.location
    elif step.kind in ("business", "consent") and step.request_id:
        location = f"/authorize/{step.kind}?request={step.request_id}"
    else:
        location = "/account"
    response = JSONResponse({"location": location}, headers={"Cache-Control": "no-store"})
    start_browser_session(request, response, session, started)
    return response
