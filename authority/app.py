"""The ASGI application factory: wires settings, routes, error handlers and middleware."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from swagger_ui_bundle import swagger_ui_path

from authority import __version__
from authority.audit.schedule import periodic_checkpoints, record_configuration_at_start
from authority.config import Settings, load_settings
from authority.instance import Instance
from authority.logs import configure_logging
from authority.oidc.tokens import TokenVerifier
from authority.verification.tally import VerificationTally
from authority.web import lean
from authority.web.hot import HOT_BODY_LIMIT, HotPathMiddleware, HotRoute
from authority.web.metrics import Metrics
from authority.web.middleware import (
    BodyLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
    security_headers,
)
from authority.web.oauth import HotTokenEndpoint
from authority.web.pages import router as pages_router
from authority.web.problems import install_problem_handlers
from authority.web.routes import (
    account,
    agency,
    docs,
    licences,
    login,
    oauth,
    operations,
    passkeys,
    people,
    pki,
    verify,
)

STATIC_DIR = Path(__file__).parent / "web" / "static"


def create_app(settings: Settings, instance: Instance | None = None) -> FastAPI:
    """Build the Authority web application for ``settings``.

    ``instance`` lets a caller (the tests) supply an already-open instance; by
    default one is opened from ``settings`` and closed at shutdown.
    """
    owned = instance is None
    opened = instance or Instance.open(settings)

    tally = VerificationTally(opened.database)

    async def flush_periodically() -> None:
        while True:
            await asyncio.sleep(tally.interval)
            await run_in_threadpool(tally.flush)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owned:
            await record_configuration_at_start(opened)
            # What start-up made (modules, routes, mappers: some 200,000 objects) lives as
            # long as the process: kept out of the cyclic collector's way, a full
            # collection scans only what requests leave behind (about 110 ms less each,
            # one per some 4,000 licences issued). A start-up object that later becomes
            # cyclic garbage stays until exit: a one-off, bounded cost.
            gc.collect()
            gc.freeze()
        flusher = asyncio.create_task(flush_periodically())
        async with periodic_checkpoints(opened, settings.audit_checkpoint_seconds if owned else 0):
            yield
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        tally.flush()
        if owned:
            opened.close()

    app = FastAPI(
        title="Authority",
        version=__version__,
        summary="Identity, electronic seals and licence verification for government services.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # Metrics are Prometheus (authority/web/metrics.py); FastAPI's OpenTelemetry
        # hooks would only cost a check of the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.instance = opened
    app.state.metrics = Metrics()
    app.state.token_verifier = TokenVerifier(settings.issuer)
    app.state.verification_tally = tally
    install_problem_handlers(app)
    app.include_router(operations.router)
    app.include_router(docs.router)
    app.include_router(pki.router)
    app.include_router(oauth.router)
    app.include_router(people.router)
    app.include_router(login.router)
    app.include_router(passkeys.router)
    app.include_router(account.router)
    app.include_router(agency.router)
    app.include_router(licences.router)
    app.include_router(verify.router)
    app.include_router(pages_router)
    lean.install(
        app, [*oauth.LEAN_ROUTES, *verify.LEAN_ROUTES, *people.LEAN_ROUTES, *login.LEAN_ROUTES]
    )
    app.mount("/static/swagger-ui", StaticFiles(directory=swagger_ui_path), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Added last = outermost. Security headers wrap everything, including the
    # last-resort 500 that RequestContextMiddleware renders.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, issuer=settings.issuer)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics, issuer=settings.issuer)
    headers = security_headers(hsts=settings.issuer.startswith("https://"))
    app.add_middleware(SecurityHeadersMiddleware, headers=headers)
    # Outermost of ours: what it answers adds the headers and counts itself.
    app.add_middleware(
        HotPathMiddleware,
        routes=[HotRoute("POST", "/oauth/token", HotTokenEndpoint(opened))],
        metrics=app.state.metrics,
        issuer=settings.issuer,
        limit=min(settings.max_body_bytes, HOT_BODY_LIMIT),
        headers=headers,
    )
    return app


def app_from_environment() -> FastAPI:
    """Uvicorn's factory (``authority serve``): settings from ``AUTHORITY_*``."""
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
