"""Lean routes: the hottest endpoints served by Starlette directly, still documented.

FastAPI's per-request machinery (matching across included routers, solving
dependencies, validating parameters) costs more than the whole of a token
request's own work. An endpoint that takes the raw request and builds its
response itself gains nothing from it, so the busiest ones (the token endpoint
every agency call starts with, public verification, and the GET requests of
every login: authorize, the login page, userinfo) are plain Starlette
routes, matched before any other route. Their OpenAPI operations are written
out here and merged into ``/openapi.json``, so clients and Schemathesis see
them as before; a lean route with no operation either is a page or serves one
method of a FastAPI route, which still describes it and answers the other
methods, through the same function (``authority.web.deps.in_unit_of_work``
gives it its unit of work). Errors they raise go to the same handlers as every
route's (``authority/web/problems.py``), and the middleware wraps them the same way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class LeanRoute:
    """One endpoint: its path, method, handler and OpenAPI operation object."""

    path: str
    method: str
    endpoint: Endpoint
    #: The OpenAPI 3.1 operation object (summary, tags, requestBody, responses...);
    #: None for a page that /openapi.json does not describe, or for one method of a
    #: FastAPI route that describes it.
    operation: dict[str, Any] | None = field(default_factory=dict)
    #: The only body media type served here; a request with another goes on to the
    #: FastAPI route of the same path and method (None: any).
    content_type: str | None = None


class _Route(Route):
    """A Starlette route that names itself in the scope, as FastAPI's routes do, so
    metrics and logs label its requests with its path template; with ``content_type``
    it matches only requests whose body has that media type."""

    content_type: str | None = None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.content_type is not None and media_type(scope) != self.content_type:
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def media_type(scope: Scope) -> str:
    """The media type of a request's body (lower case, no parameters); "" without one."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bytes(value).decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


def install(app: FastAPI, routes: Sequence[LeanRoute]) -> None:
    """Serve ``routes`` ahead of every other route and describe them in ``/openapi.json``."""
    for lean in reversed(routes):
        route = _Route(lean.path, lean.endpoint, methods=[lean.method], name=lean.endpoint.__name__)
        route.methods = {lean.method}  # as FastAPI's: Starlette would add HEAD to a GET
        route.content_type = lean.content_type
        app.router.routes.insert(0, route)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for lean in routes:
                if lean.operation is None:
                    continue
                # The operation id FastAPI would give it (fastapi.utils.generate_unique_id).
                name = re.sub(r"\W", "_", lean.endpoint.__name__ + lean.path)
                operation = {"operationId": f"{name}_{lean.method.lower()}"}
                operation.update(lean.operation)
                schema["paths"].setdefault(lean.path, {})[lean.method.lower()] = operation
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
