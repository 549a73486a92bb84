"""PKI publication: trust list, CA certificates, CRLs, OCSP (RFC 6960) and TSA (RFC 3161).

OCSP and TSA answer every bad request in their own protocol (malformedRequest,
rejection with failInfo), never with an HTTP error body, because their clients
only understand those.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.errors import NotFound
from authority.pki import ocsp as ocsp_protocol
from authority.pki import tsa as tsa_protocol
from authority.pki.service import Pki, certificate_pem
from authority.pki.trust_list import build_trust_list
from authority.web.deps import CurrentInstance, DbSession

router = APIRouter(prefix="/pki", tags=["pki"])

TSA_QUERY_MEDIA_TYPE = "application/timestamp-query"  # RFC 3161 §3.4
TSA_REPLY_MEDIA_TYPE = "application/timestamp-reply"
PKIX_CERT = "application/pkix-cert"  # RFC 2585 §4.1
PKIX_CRL = "application/pkix-crl"  # RFC 2585 §4.2
PEM_FILE = "application/x-pem-file"


def _pki(instance: CurrentInstance, session: DbSession) -> Pki:
    return pki_for(instance, session)


CurrentPki = Annotated[Pki, Depends(_pki)]


@router.get("/trust-list.json", summary="The sealed trust list")
def trust_list(pki: CurrentPki) -> JSONResponse:
    """Every certificate of the PKI with its status, sealed by the authority (JWS)."""
    return JSONResponse(build_trust_list(pki, utcnow()), headers={"Cache-Control": "no-cache"})


@router.get("/ca/{filename}", summary="A CA certificate (.pem or .cer for DER)")
def ca_certificate(filename: str, pki: CurrentPki) -> Response:
    """The current certificate of CA ``root`` or ``seal-ca``."""
    name, _, suffix = filename.rpartition(".")
    if suffix not in ("pem", "cer", "crt"):
        raise NotFound(f"no CA certificate at {filename}; use NAME.pem or NAME.cer")
    record = pki.ca(name)
    if suffix == "pem":
        return Response(certificate_pem(record), media_type=PEM_FILE)
    return Response(record.der, media_type=PKIX_CERT)


@router.get("/crl/{filename}", summary="A CA's current CRL (DER)")
def crl(filename: str, pki: CurrentPki) -> Response:
    """The CRL of ``root`` or ``seal-ca``, re-issued when close to its nextUpdate."""
    name, _, suffix = filename.rpartition(".")
    if suffix != "crl":
        raise NotFound(f"no CRL at {filename}; use NAME.crl")
    record = pki.crl(name, utcnow())
    return Response(record.der, media_type=PKIX_CRL, headers={"Cache-Control": "no-cache"})


def _ocsp_answer(pki: Pki, request_der: bytes) -> Response:
    body = pki.ocsp_responder().respond(request_der, utcnow())
    return Response(
        body,
        media_type=ocsp_protocol.OCSP_RESPONSE_MEDIA_TYPE,
        headers={"Cache-Control": "no-cache"},
    )


def _malformed_ocsp() -> Response:
    return Response(
        ocsp_protocol.error_response("malformed_request"),
        media_type=ocsp_protocol.OCSP_RESPONSE_MEDIA_TYPE,
    )


async def _bounded_body(request: Request, media_type: str, limit: int) -> bytes | None:
    """The body if it has ``media_type`` and at most ``limit`` bytes, else None.

    Reading stops as soon as the limit is passed.
    """
    declared_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared_length = request.headers.get("content-length", "")
    if declared_type != media_type or (declared_length.isdigit() and int(declared_length) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _ocsp_body(request: Request) -> bytes | None:
    return await _bounded_body(
        request, ocsp_protocol.OCSP_REQUEST_MEDIA_TYPE, ocsp_protocol.OCSP_REQUEST_MAX_BYTES
    )


async def _tsa_body(request: Request) -> bytes | None:
    return await _bounded_body(request, TSA_QUERY_MEDIA_TYPE, tsa_protocol.TSA_REQUEST_MAX_BYTES)


def _binary_body(media_type: str) -> dict[str, Any]:
    schema = {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True, "content": {media_type: {"schema": schema}}}}


@router.post(
    "/ocsp",
    summary="OCSP (RFC 6960 Appendix A, POST)",
    response_class=Response,
    openapi_extra=_binary_body(ocsp_protocol.OCSP_REQUEST_MEDIA_TYPE),
)
def ocsp_post(body: Annotated[bytes | None, Depends(_ocsp_body)], pki: CurrentPki) -> Response:
    """Answer a DER OCSPRequest; a malformed, mistyped or oversized one gets the
    malformedRequest response status."""
    if body is None:
        return _malformed_ocsp()
    return _ocsp_answer(pki, body)


@router.get(
    "/ocsp/{encoded:path}", summary="OCSP (RFC 6960 Appendix A, GET)", response_class=Response
)
def ocsp_get(encoded: str, pki: CurrentPki) -> Response:
    """Answer the base64 (URL-encoded) DER OCSPRequest in the path."""
    try:
        request_der = ocsp_protocol.parse_get_path(encoded)
    except ocsp_protocol.MalformedOcspRequest:
        return _malformed_ocsp()
    return _ocsp_answer(pki, request_der)


@router.post(
    "/tsa",
    summary="Time-stamping (RFC 3161 §3.4)",
    response_class=Response,
    openapi_extra=_binary_body(TSA_QUERY_MEDIA_TYPE),
)
def tsa(
    body: Annotated[bytes | None, Depends(_tsa_body)], pki: CurrentPki, instance: CurrentInstance
) -> Response:
    """Answer a DER TimeStampReq; a bad one gets a rejection with its failInfo."""
    if body is None:
        reply = tsa_protocol.rejection(
            "bad_data_format",
            f"a {TSA_QUERY_MEDIA_TYPE} body of at most {tsa_protocol.TSA_REQUEST_MAX_BYTES} bytes",
        )
    else:
        reply = instance.time_stamping.current(pki).respond(body, utcnow())
    return Response(reply, media_type=TSA_REPLY_MEDIA_TYPE)
