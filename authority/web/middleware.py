"""Pure ASGI middleware: request context (id, access log, metrics), security
headers and the request body limit. Pure ASGI rather than BaseHTTPMiddleware: these run on
every request and must not buffer or copy bodies."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authority.logs import request_id_var
from authority.web.metrics import Metrics
from authority.web.problems import PROBLEM_JSON, internal_error, problem_document

access_log = logging.getLogger("authority.access")
error_log = logging.getLogger("authority.web")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
UNMATCHED_ROUTE = "<unmatched>"
#: Longest request target (path and query) interpreted; a QR's URL is at most 4 KiB.
MAX_TARGET_BYTES = 16 * 1024


def incoming_request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is safe to echo and log, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
    return secrets.token_hex(8)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED_ROUTE


def record_request(metrics: Metrics, scope: Scope, route: str, status: int, elapsed: float) -> None:
    """Count an answered request and write its access-log line."""
    metrics.observe(scope["method"], route, status, elapsed)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "%s %s %d %.1fms",
            scope["method"],
            scope["path"],
            status,
            elapsed * 1000,
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
            },
        )


class RequestContextMiddleware:
    """Gives each request an id (echoed as X-Request-ID), logs it and counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, issuer: str) -> None:
        self.app = app
        self.metrics = metrics
        self.issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with its id in context; record status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started_response:
                raise
            await internal_error(self.issuer, scope["path"])(scope, receive, send_with_id)
        finally:
            record_request(
                self.metrics,
                scope,
                _route_template(scope),
                status,
                time.perf_counter() - started,
            )
            request_id_var.reset(token)


# Pages and API alike: nothing from other origins, never framed (clickjacking),
# no referrer leaks of licence URLs, no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def security_headers(hsts: bool) -> list[tuple[str, str]]:
    """The headers every response carries."""
    headers = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(self), microphone=(), geolocation=(), payment=()"),
    ]
    if hsts:
        headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    return headers


class SecurityHeadersMiddleware:
    """Adds :func:`security_headers` to every response that did not set its own."""

    def __init__(self, app: ASGIApp, headers: Iterable[tuple[str, str]]) -> None:
        self.app = app
        # Encoded once: ASGI headers are (lower-case name, value) byte pairs.
        self.headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through, adding the headers on response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = list(message.get("headers", ()))
                names = {bytes(name).lower() for name, _value in present}
                present.extend(item for item in self.headers if item[0] not in names)
                message["headers"] = present
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with a 413 problem, and request
    targets over :data:`MAX_TARGET_BYTES` with a 414 problem.

    A declared Content-Length over the limit is answered before the body is
    read; a body without one is counted as it streams in.
    """

    def __init__(self, app: ASGIApp, limit: int, issuer: str) -> None:
        self.app = app
        self.limit = limit
        self.issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 early, or pass through counting what is received."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(
            scope.get("query_string", b"")
        )
        if target > MAX_TARGET_BYTES:
            # RFC 9110 §15.5.15: the target is longer than we interpret.
            body = problem_document(
                self.issuer,
                414,
                "uri-too-long",
                "URI Too Long",
                f"the request target exceeds {MAX_TARGET_BYTES} bytes",
                scope["path"][:200],
            )
            await JSONResponse(body, status_code=414, media_type=PROBLEM_JSON)(scope, receive, send)
            return
        detail = f"request body exceeds the limit of {self.limit} bytes"
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            body = problem_document(
                self.issuer,
                413,
                "payload-too-large",
                "Content Too Large",
                detail,
                scope["path"],
                limit=self.limit,
            )
            response = JSONResponse(
                body, status_code=413, media_type=PROBLEM_JSON, headers={"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Starlette's HTTPException passes FastAPI's body parsing untouched
                    # and is rendered by the problem handler.
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, counting_receive, send)
