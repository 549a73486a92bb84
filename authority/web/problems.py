"""Problem details for HTTP APIs (RFC 9457): the one place errors become responses.

Every error response outside the OAuth endpoints is ``application/problem+json``
with a stable ``type``: ``{issuer}/problems/{slug}``, which also serves a short
human description of the problem (RFC 9457 §3.1.1 encourages dereferenceable
type URIs).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from authority.db.session import database_unavailable, value_refused
from authority.errors import AuthorityError
from authority.logs import request_id_var

PROBLEM_JSON = "application/problem+json"
STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "request_id"})
log = logging.getLogger("authority.web")

# slug → description, for the /problems/{slug} documentation pages. Domain error
# classes add theirs through their docstrings (see describe_problem).
GENERIC_PROBLEMS: dict[str, str] = {
    "not-found": "No resource exists at this URL.",
    "method-not-allowed": "The resource exists but does not accept this HTTP method.",
    "validation": "The request body, query or path did not match the operation's schema; "
    "`errors` lists each failing field.",
    "payload-too-large": "The request body is larger than the server accepts.",
    "uri-too-long": "The request target (path and query) is longer than the server interprets.",
    "unsupported-media-type": "The request body's Content-Type is not one the operation takes.",
    "internal": "An unexpected failure on the server. Quote the `request_id` when reporting it.",
    "unavailable": "A component the service depends on is unavailable; try again later.",
}


def problem_document(
    issuer: str, status: int, slug: str, title: str, detail: str, path: str, **extensions: Any
) -> dict[str, Any]:
    """The members of a problem details object (RFC 9457 §3.1) plus extensions."""
    body: dict[str, Any] = {
        "type": f"{issuer}/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": path,
        "request_id": request_id_var.get(),
    }
    # RFC 9457 §3.2: extensions add members; they never redefine the standard ones.
    body.update({k: v for k, v in extensions.items() if k not in STANDARD_MEMBERS})
    return body


def problem(
    request: Request, status: int, slug: str, title: str, detail: str, **extensions: Any
) -> JSONResponse:
    """A problem details response (RFC 9457 §3) for ``request``."""
    issuer: str = request.app.state.instance.settings.issuer
    body = problem_document(issuer, status, slug, title, detail, request.url.path, **extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def internal_error(issuer: str, path: str) -> JSONResponse:
    """The answer to an unexpected failure: generic, with the request id to quote."""
    body = problem_document(
        issuer,
        500,
        "internal",
        "Internal server error",
        "an unexpected error occurred; quote the request_id when reporting it",
        path,
    )
    return JSONResponse(body, status_code=500, media_type=PROBLEM_JSON)


def _slug_for_status(status: int) -> str:
    known = {
        404: "not-found",
        405: "method-not-allowed",
        413: "payload-too-large",
        415: "unsupported-media-type",
        503: "unavailable",
    }
    return known.get(status, f"http-{status}")


async def _authority_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthorityError)
    if exc.status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.detail)
    response = problem(request, exc.status, exc.slug, exc.title, exc.detail, **exc.extensions)
    response.headers.update(exc.headers)
    return response


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OperationalError | InterfaceError)
    return await _authority_error(request, database_unavailable(exc))


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataError)
    return await _authority_error(request, value_refused(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = (
        exc.detail
        if isinstance(exc.detail, str) and exc.detail != phrase
        else {
            404: f"nothing at {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(exc.status_code, phrase)
    )
    response = problem(request, exc.status_code, _slug_for_status(exc.status_code), phrase, detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"field": "request", "message": "invalid"}
    detail = f"{first['field']}: {first['message']}"
    return problem(request, 422, "validation", "Request validation failed", detail, errors=errors)


def install_problem_handlers(app: FastAPI) -> None:
    """Route every expected error to its problem details rendering.

    Unexpected exceptions are answered by RequestContextMiddleware, which can
    still attach the request id and headers (Starlette's own last-resort handler
    sits outside all middleware).
    """
    app.add_exception_handler(AuthorityError, _authority_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(InterfaceError, _database_error)
    app.add_exception_handler(DataError, _data_error)


def problem_catalogue() -> dict[str, str]:
    """Every problem slug Authority can answer with, and what it means."""
    catalogue = dict(GENERIC_PROBLEMS)
    pending: list[type[AuthorityError]] = [AuthorityError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.slug not in catalogue and cls.__doc__:
            catalogue[cls.slug] = cls.__doc__.strip().splitlines()[0]
    return catalogue
