"""Request-scoped dependencies: the instance and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio.to_thread
from anyio import CancelScope, CapacityLimiter
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.responses import Response

from authority.db.base import utcnow
from authority.instance import Instance
from authority.oidc.bearer import authenticate
from authority.oidc.tokens import AccessToken


async def get_instance(request: Request) -> Instance:
    """The Authority instance this app serves."""
    instance: Instance = request.app.state.instance
    return instance


async def _unit_of_work(request: Request) -> AsyncIterator[Session]:
    """The request's unit of work (:meth:`Database.transaction`).

    Opened on the event loop: making a session does no I/O (the connection and the
    transaction begin at its first statement, in the route's thread). Committed, or
    rolled back, in one hand-off to a worker thread, shielded from cancellation and
    outside the thread pool's limit, as FastAPI does for a synchronous dependency's
    exit (a commit must not wait for a thread held by a request that waits for this
    one's write lock). A synchronous dependency would cross to a thread to open it too.
    """
    write = getattr(request.state, "writes", False)
    instance: Instance = request.app.state.instance
    unit = instance.database.transaction(write=write)
    session = unit.__enter__()
    try:
        yield session
    except BaseException as exc:
        with CancelScope(shield=True):
            suppressed = await anyio.to_thread.run_sync(
                unit.__exit__, type(exc), exc, exc.__traceback__, limiter=CapacityLimiter(1)
            )
        if not suppressed:
            raise
    else:
        with CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                unit.__exit__, None, None, None, limiter=CapacityLimiter(1)
            )


async def in_unit_of_work(
    request: Request, work: Callable[[Session], Response], *, write: bool
) -> Response:
    """``work``'s response, in a unit of work committed before it is returned: what a
    route with :data:`DbSession` does, for a lean route (authority/web/lean.py), in one
    hand-off to a worker thread."""
    instance: Instance = request.app.state.instance

    def run() -> Response:
        with instance.database.transaction(write=write) as session:
            return work(session)

    return await run_in_threadpool(run)


async def _declare_writes(request: Request) -> None:
    request.state.writes = True


# scope="function": the transaction commits (or rolls back) when the handler
# returns, before the response is sent, so a 2xx is never sent for work that
# then fails to commit. One unit of work per request, shared by every
# dependency that asks for it.
DbSession = Annotated[Session, Depends(_unit_of_work, scope="function")]
# For routes whose purpose is to write: `@router.post(..., dependencies=[WRITES])`.
# Path-operation dependencies are solved first, so the unit of work opens knowing
# it (on SQLite it then takes the write lock up front; see Database.transaction).
WRITES = Depends(_declare_writes)
CurrentInstance = Annotated[Instance, Depends(get_instance)]


def require_scope(scope: str) -> Any:
    """A dependency yielding the request's verified access token, if it grants ``scope``.

    401 with a Bearer challenge without a valid token, 403 insufficient_scope
    without the scope (RFC 6750 §3.1).
    """

    def verified(request: Request, instance: CurrentInstance, session: DbSession) -> AccessToken:
        return authenticate(
            session,
            instance.keystore,
            request.app.state.token_verifier,
            request.headers.get("authorization"),
            scope,
            utcnow(),
        )

    return Depends(verified)
