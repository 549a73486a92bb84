"""The people-facing pages of a login: password, second factor, business choice, consent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response

from authority.db.base import utcnow
from authority.errors import AuthorityError
from authority.identity.accounts import mandates
from authority.identity.login import PasswordCheck
from authority.identity.models import Citizen, LoginSession
from authority.oidc.authorize import AuthorizationEndpoint, RequestOfAnotherBrowser, Step
from authority.oidc.clients import find_client
from authority.oidc.consent import consents_of, grant_consent, withdraw_consent
from authority.oidc.scopes import SCOPES, parse_scope
from authority.oidc.server import AuthorityServer
from authority.web.deps import WRITES, CurrentInstance, DbSession, in_unit_of_work
from authority.web.lean import LeanRoute
from authority.web.oauth import FORM, Server, provider_for
from authority.web.people import (
    authorization_endpoint,
    csrf_ok,
    current_login,
    error_page,
    page,
    refused_step,
    start_browser_session,
    step_response,
)

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form()]
OptionalField = Annotated[str | None, Form()]


def _forbidden(request: Request) -> Response:
    return error_page(request, "invalid_request", "the form expired; go back and try again", 403)


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _returns_to(endpoint: AuthorizationEndpoint, request_id: str) -> str | None:
    """The verified redirect URI of a pending request (for the page's CSP)."""
    record = endpoint.pending(request_id)
    return record.params.get("redirect_uri") if record is not None else None


def _foreign(request: Request, endpoint: AuthorizationEndpoint, request_id: str) -> Response | None:
    """The error page if ``request_id`` is a request another browser started."""
    if not endpoint.of_another_browser(request_id):
        return None
    return refused_step(request, Step("error", error=RequestOfAnotherBrowser()))


def login_form(request: Request, session: DbSession, server: Server) -> Response:
    """The password form for a pending authorization request.

    A browser that logged in since (in another tab) goes on without a new login.
    """
    request_id = request.query_params.get("request", "")
    endpoint = authorization_endpoint(request, server)
    if (refused := _foreign(request, endpoint, request_id)) is not None:
        return refused
    login = current_login(request, session)
    if request_id and login is not None:
        step = endpoint.resume(request_id, login)
        if step.kind in ("redirect", "business", "consent"):
            return step_response(request, step)
    return page(
        request,
        "login.html",
        {"request_id": request_id},
        returns_to=_returns_to(endpoint, request_id),
    )


@dataclass(frozen=True)
class PasswordAttempt:
    """The login form's identity number and password, and the password's early check."""

    id_number: str
    password: str
    checked: PasswordCheck | None


def password_attempt(
    request: Request,
    instance: CurrentInstance,
    id_number: Field,
    password: Field,
    csrf: OptionalField = None,
) -> PasswordAttempt:
    """The attempt, its password verified in a read-only unit of work of its own.

    Solved before the route's unit of work opens: that one takes the database's write
    lock (SQLite has one writer at a time), and argon2's ~13 ms of CPU spent inside it
    would hold up every other writer (authorizations, tokens, other logins). A form
    that fails its CSRF check costs no argon2 work.
    """
    checked = None
    if csrf_ok(request, csrf):
        with instance.database.transaction(write=False) as session:
            checked = instance.authenticator.check_password(
                session,
                id_number=id_number,
                password=password,
                address=_address(request),
                now=utcnow(),
            )
    return PasswordAttempt(id_number, password, checked)


@router.post("/login", dependencies=[WRITES])
def login_submit(
    request: Request,
    instance: CurrentInstance,
    attempt: Annotated[PasswordAttempt, Depends(password_attempt)],
    session: DbSession,
    server: Server,
    csrf: OptionalField = None,
    request_id: Annotated[str, Form(alias="request")] = "",
) -> Response:
    """Check the password; then the second factor, or on with the authorization."""
    if not csrf_ok(request, csrf):
        return _forbidden(request)
    id_number = attempt.id_number
    endpoint = authorization_endpoint(request, server)
    if (refused := _foreign(request, endpoint, request_id)) is not None:
        return refused
    pending = endpoint.pending(request_id)
    wanted = pending.params.get("acr_values", "") if pending is not None else ""
    try:
        started = instance.authenticator.password(
            session,
            id_number=id_number,
            password=attempt.password,
            address=_address(request),
            now=utcnow(),
            step_up="substantial" in wanted or "high" in wanted,
            checked=attempt.checked,
        )
    except AuthorityError as exc:
        # The failure was counted; the unit of work commits it with this page.
        failed = page(
            request,
            "login.html",
            {"request_id": request_id, "error": exc.detail, "id_number": id_number},
            exc.status,
            returns_to=_returns_to(endpoint, request_id),
        )
        failed.headers.update(exc.headers)
        return failed
    response: Response
    if started.complete:
        response = _next_step(request, endpoint, request_id, started.record)
    else:
        response = page(
            request,
            "login_otp.html",
            {"request_id": request_id},
            returns_to=_returns_to(endpoint, request_id),
        )
    start_browser_session(request, response, session, started)
    return response


@router.post("/login/otp", dependencies=[WRITES])
def otp_submit(
    request: Request,
    instance: CurrentInstance,
    session: DbSession,
    server: Server,
    code: Field,
    csrf: OptionalField = None,
    request_id: Annotated[str, Form(alias="request")] = "",
) -> Response:
    """Check the one-time code of a login waiting for its second factor."""
    if not csrf_ok(request, csrf):
        return _forbidden(request)
    endpoint = authorization_endpoint(request, server)
    if (refused := _foreign(request, endpoint, request_id)) is not None:
        return refused
    login = current_login(request, session, pending=True)
    if login is None:
        return error_page(request, "login_required", "the login expired; start again", 401)
    try:
        started = instance.authenticator.one_time_code(
            session, login, code=code, address=_address(request), now=utcnow()
        )
    except AuthorityError as exc:
        failed = page(
            request,
            "login_otp.html",
            {"request_id": request_id, "error": exc.detail},
            exc.status,
            returns_to=_returns_to(endpoint, request_id),
        )
        failed.headers.update(exc.headers)
        return failed
    response = _next_step(request, endpoint, request_id, started.record)
    start_browser_session(request, response, session, started)
    return response


def _next_step(
    request: Request, endpoint: AuthorizationEndpoint, request_id: str, login: LoginSession
) -> Response:
    """On with the portal's request; a login of its own (no request) goes to the account."""
    if not request_id:
        return RedirectResponse("/account", status_code=303)
    return step_response(request, endpoint.resume(request_id, login))


@router.get("/authorize/business")
def business_form(request: Request, session: DbSession, server: Server) -> Response:
    """Which business the person acts for (only those they represent now)."""
    request_id = request.query_params.get("request", "")
    login = current_login(request, session)
    endpoint = authorization_endpoint(request, server)
    citizen = session.get(Citizen, login.citizen_id) if login else None
    if citizen is None or endpoint.pending(request_id) is None:
        return step_response(request, endpoint.resume(request_id, login))
    choices = mandates(session, citizen, utcnow())
    return page(
        request,
        "business.html",
        {"request_id": request_id, "choices": choices},
        returns_to=_returns_to(endpoint, request_id),
    )


@router.post("/authorize/business", dependencies=[WRITES])
def business_submit(
    request: Request,
    session: DbSession,
    server: Server,
    uscc: Field,
    csrf: OptionalField = None,
    request_id: Annotated[str, Form(alias="request")] = "",
) -> Response:
    """Record the chosen business and go on."""
    if not csrf_ok(request, csrf):
        return _forbidden(request)
    login = current_login(request, session)
    endpoint = authorization_endpoint(request, server)
    if login is None:
        return step_response(request, endpoint.resume(request_id, None))
    return step_response(request, endpoint.choose_business(request_id, login, uscc))


@router.get("/authorize/consent")
def consent_form(request: Request, session: DbSession, server: Server) -> Response:
    """What the portal asks to receive, to allow or deny."""
    request_id = request.query_params.get("request", "")
    login = current_login(request, session)
    endpoint = authorization_endpoint(request, server)
    record = endpoint.pending(request_id)
    client = find_client(session, record.client_id) if record else None
    if login is None or record is None or client is None:
        return step_response(request, endpoint.resume(request_id, login))
    scopes = [s for s in parse_scope(record.params.get("authority:scope")) if s != "openid"]
    return page(
        request,
        "consent.html",
        {
            "request_id": request_id,
            "client_name": client.name,
            "scopes": [(s, SCOPES.get(s, s)) for s in scopes],
            "business": record.business,
        },
        returns_to=record.params.get("redirect_uri"),
    )


@router.post("/authorize/consent", dependencies=[WRITES])
def consent_submit(
    request: Request,
    session: DbSession,
    server: Server,
    decision: Field,
    csrf: OptionalField = None,
    request_id: Annotated[str, Form(alias="request")] = "",
) -> Response:
    """Allow (remembered for this portal and these scopes) or deny."""
    if not csrf_ok(request, csrf):
        return _forbidden(request)
    login = current_login(request, session)
    endpoint = authorization_endpoint(request, server)
    record = endpoint.pending(request_id)
    citizen = session.get(Citizen, login.citizen_id) if login else None
    client = find_client(session, record.client_id) if record else None
    if record is None or citizen is None or client is None:
        return step_response(request, endpoint.resume(request_id, login))
    if decision != "allow":
        return step_response(request, endpoint.resume(request_id, login, decision=False))
    grant_consent(
        session, citizen, client, parse_scope(record.params.get("authority:scope")), utcnow()
    )
    endpoint.mark_consented(record)
    return step_response(request, endpoint.resume(request_id, login, decision=True))


@router.get("/account/consents")
def consents_page(request: Request, session: DbSession) -> Response:
    """The portals the person has let receive data, each withdrawable."""
    login = current_login(request, session)
    citizen = session.get(Citizen, login.citizen_id) if login else None
    if citizen is None:
        return error_page(request, "login_required", "log in through a portal first", 401)
    return page(request, "consents.html", {"consents": consents_of(session, citizen)})


@router.post("/account/consents", dependencies=[WRITES])
def consent_withdraw(
    request: Request, session: DbSession, client_id: Field, csrf: OptionalField = None
) -> Response:
    """Withdraw a consent: the portal must ask again next time."""
    if not csrf_ok(request, csrf):
        return _forbidden(request)
    login = current_login(request, session)
    citizen = session.get(Citizen, login.citizen_id) if login else None
    if citizen is None:
        return error_page(request, "login_required", "log in through a portal first", 401)
    withdraw_consent(session, citizen, client_id, utcnow())
    return RedirectResponse("/account/consents", status_code=303)


async def login_form_lean(request: Request) -> Response:
    """GET /login: :func:`login_form` in a read-only unit of work (the only route for it)."""
    instance = request.app.state.instance
    return await in_unit_of_work(
        request,
        lambda session: login_form(
            request, session, AuthorityServer(provider_for(instance, session, request))
        ),
        write=False,
    )


async def login_submit_lean(request: Request) -> Response:
    """POST /login as :func:`login_submit` (its dependencies solved here, in order),
    without FastAPI's per-request work: one hand-off to a worker thread."""
    form = await request.form()
    fields = {name: form.get(name) for name in ("id_number", "password", "csrf", "request")}
    text = {name: value if isinstance(value, str) else "" for name, value in fields.items()}
    # As FastAPI validates the Form parameters: an empty value is a missing one.
    missing = [name for name in ("id_number", "password") if not text[name]]
    if missing:
        raise RequestValidationError(
            [
                {"type": "missing", "loc": ("body", name), "msg": "Field required", "input": None}
                for name in missing
            ]
        )
    instance = request.app.state.instance
    csrf = text["csrf"] or None

    def run() -> Response:
        attempt = password_attempt(request, instance, text["id_number"], text["password"], csrf)
        with instance.database.transaction(write=True) as session:
            server = AuthorityServer(provider_for(instance, session, request))
            return login_submit(request, instance, attempt, session, server, csrf, text["request"])

    return await run_in_threadpool(run)


#: Every login shows the page and posts the form (authority/web/lean.py); a form
#: posted otherwise than URL-encoded (multipart) goes to the FastAPI route.
LEAN_ROUTES = [
    LeanRoute("/login", "GET", login_form_lean, None),
    LeanRoute("/login", "POST", login_submit_lean, None, content_type=FORM),
]
