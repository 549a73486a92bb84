"""Operational endpoints: liveness, readiness, metrics, problem type documentation."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from authority.errors import NotFound
from authority.web.deps import CurrentInstance
from authority.web.problems import PROBLEM_JSON, problem_catalogue

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process is up")
def healthz() -> dict[str, str]:
    """Always 200 while the process can answer."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database and keys are usable",
    responses={503: {"content": {PROBLEM_JSON: {}}, "description": "Not ready"}},
)
def readyz(request: Request, instance: CurrentInstance) -> JSONResponse:
    """200 with each check when all pass; 503 problem details naming the failing ones."""
    results = instance.readiness()
    checks = {r.name: {"ok": r.ok, "detail": r.detail} for r in results}
    if all(r.ok for r in results):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(f"{r.name}: {r.detail}" for r in results if not r.ok)
    body = {
        "type": f"{instance.settings.issuer}/problems/unavailable",
        "title": "Service unavailable",
        "status": 503,
        "detail": failing,
        "instance": request.url.path,
        "checks": checks,
    }
    return JSONResponse(
        body, status_code=503, media_type=PROBLEM_JSON, headers={"Retry-After": "5"}
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> Response:
    """Request counts and latencies in the Prometheus text exposition format."""
    registry = request.app.state.metrics
    return Response(registry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get(
    "/problems/{slug}", summary="What a problem type means", response_class=PlainTextResponse
)
def problem_type(slug: str) -> PlainTextResponse:
    """The human description behind a problem details ``type`` URI."""
    description = problem_catalogue().get(slug)
    if description is None:
        raise NotFound(f"no problem type named {slug!r}")
    return PlainTextResponse(f"{slug}\n\n{description}\n")
