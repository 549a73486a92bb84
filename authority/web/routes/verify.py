"""Public verification: the JSON API, the QR's landing page and the upload-and-scan page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from authority.errors import InvalidInput
from authority.instance import Instance
from authority.verification.report import Report
from authority.verification.service import (
    UnsupportedFile,
    now,
    online_context,
    verify_document,
    verify_file,
    verify_qr_cached,
    verify_qr_online,
)
from authority.verification.tally import VerificationTally
from authority.web.deps import CurrentInstance
from authority.web.lean import LeanRoute
from authority.web.pages import render
from authority.web.verify_view import report_view

router = APIRouter(tags=["verification"])

MAX_UPLOAD_BYTES = 8 << 20
MAX_QR_CHARS = 4096


class QrIn(BaseModel):
    """A QR code's text: the verification URL, or its payload alone."""

    qr: str = Field(min_length=1, max_length=MAX_QR_CHARS)


@dataclass(frozen=True)
class Presented:
    """What was presented: QR text, one uploaded file, or a document with its seal."""

    qr: str | None = None
    file: bytes | None = None
    document: bytes | None = None
    seal: bytes | None = None


VERIFY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": QrIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "document": {"type": "string", "format": "binary"},
                        "seal": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}


async def _read_part(value: Any, name: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, UploadFile):
        data = await value.read(MAX_UPLOAD_BYTES + 1)
    else:
        data = str(value).encode("utf-8")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"{name} is larger than {MAX_UPLOAD_BYTES} bytes")
    return data


async def presented(request: Request) -> Presented:
    """Read the request as JSON ``{"qr"}`` or multipart ``file`` / ``document`` + ``seal``."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        try:
            return Presented(qr=QrIn.model_validate_json(await request.body()).qr)
        except ValidationError as exc:
            raise InvalidInput(
                'expected {"qr": "<the QR code\'s text>"}',
                errors=[{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()][:5],
            ) from None
    if media_type == "multipart/form-data":
        async with request.form(max_files=2, max_fields=4, max_part_size=MAX_UPLOAD_BYTES) as form:
            parts = {k: await _read_part(form.get(k), k) for k in ("file", "document", "seal")}
            qr = form.get("qr")
        return Presented(
            qr=qr if isinstance(qr, str) and qr else None,
            file=parts["file"],
            document=parts["document"],
            seal=parts["seal"],
        )
    raise UnsupportedFile(
        'send application/json with {"qr"} or multipart/form-data with file, or document and seal'
    )


def check(instance: Instance, item: Presented, memory_tried: bool = False) -> Report:
    """Verify what was presented against this installation (online).

    ``memory_tried``: :func:`verify_qr_cached` could not answer this QR alone.
    """
    if item.qr is not None:
        return verify_qr_online(
            instance.database,
            instance.settings.issuer,
            instance.verification_cache,
            item.qr,
            memory_first=not memory_tried,
        )
    with instance.database.transaction(write=False) as session:
        context = online_context(
            session, instance.settings.issuer, now(), instance.verification_cache
        )
        if item.document is not None and item.seal is not None:
            return verify_document(context, item.document, item.seal, context.as_of)
        if item.file is not None:
            return verify_file(context, item.file, context.as_of)
        raise InvalidInput("present a QR code's text, a file, or a document with its seal")


def count_verification(tally: VerificationTally, report: Report) -> bool:
    """Count the verification of the licence the report names (in memory; see tally.py);
    whether the counts are due to be written."""
    number = (report.licence or {}).get("number")
    return isinstance(number, str) and tally.add(number, report.verified_at)


async def verified(instance: Instance, item: Presented, tally: VerificationTally) -> Report:
    """The report on ``item``, counted: on the event loop when memory can answer a QR
    alone (no database, no thread hand-off), else in the thread pool."""
    report = None
    if item.qr is not None:
        report = verify_qr_cached(
            instance.settings.issuer, instance.verification_cache, item.qr, now()
        )
    if report is None:
        report = await run_in_threadpool(check, instance, item, item.qr is not None)
    if count_verification(tally, report):
        await run_in_threadpool(tally.flush)
    return report


async def landing(request: Request) -> Response:
    """The page a phone camera opens from the QR: one verdict, then the details."""
    item = Presented(qr=request.path_params["payload"])
    report = await verified(request.app.state.instance, item, request.app.state.verification_tally)
    return render(request, "verify_report.html", report_view(report))


async def verify(request: Request) -> Response:
    """The verification report; 200 whatever the verdict, 4xx only for unusable requests."""
    item = await presented(request)
    report = await verified(request.app.state.instance, item, request.app.state.verification_tally)
    return JSONResponse(report.as_dict(), headers={"Cache-Control": "no-store"})


#: Served ahead of FastAPI's routing (authority/web/lean.py): public verification is the
#: busiest endpoint, and FastAPI's matching and dependency solving cost more than a QR
#: verification that memory answers. Multipart uploads take the same route; the QR's
#: landing page (not in /openapi.json) is as busy.
LEAN_ROUTES = [
    LeanRoute(
        "/api/v1/verify",
        "POST",
        verify,
        {
            "tags": ["verification"],
            "summary": "Verify a licence (QR text, PDF, photo of its QR, or document + seal)",
            "description": verify.__doc__,
            **VERIFY_BODY,
            "responses": {
                "200": {
                    "description": "Successful Response",
                    "content": {"application/json": {"schema": {}}},
                }
            },
        },
    ),
    LeanRoute("/v/{payload:path}", "GET", landing, None),
    LeanRoute("/V/{payload:path}", "GET", landing, None),
]


@router.get("/verify", include_in_schema=False)
def verify_page(request: Request) -> HTMLResponse:
    """Upload a licence PDF or a photo of its QR, or scan the QR with the camera."""
    return render(request, "verify.html")


@router.post("/verify", include_in_schema=False)
async def verify_upload(request: Request, instance: CurrentInstance) -> HTMLResponse:
    """The upload form's result, as a page."""
    try:
        item = await presented(request)
        report = await verified(instance, item, request.app.state.verification_tally)
    except InvalidInput as exc:
        return render(request, "verify.html", {"error": exc.detail}, status_code=exc.status)
    return render(request, "verify_report.html", report_view(report))
