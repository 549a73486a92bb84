"""The licence API for agency back-ends (bearer tokens with licences:* scopes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.instance import Instance
from authority.licences import service
from authority.licences.models import Licence, LicenceType
from authority.licences.pdf import sealed_pdf
from authority.licences.service import Forbidden, LicenceRequest
from authority.oidc.models import OAuthClient
from authority.oidc.tokens import AccessToken
from authority.seals.qr import qr_url
from authority.seals.qr_render import qr_png, qr_svg
from authority.web.deps import WRITES, CurrentInstance, DbSession, require_scope

router = APIRouter(prefix="/api/v1/licences", tags=["licences"])

ISSUE = require_scope("licences:issue")
REVOKE = require_scope("licences:revoke")
READ = require_scope("licences:read")


class Holder(BaseModel):
    """Who the licence is issued to."""

    kind: Literal["citizen", "business"]
    id: str = Field(max_length=32, description="Resident identity number or USCC")
    name: str = Field(min_length=1, max_length=128)


class LicenceIn(BaseModel):
    """A licence to issue."""

    type: str = Field(min_length=1, max_length=32, description="The licence type's code")
    holder: Holder
    data: dict[str, Any] = Field(description="Fields of the type's JSON Schema")
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None

    def request(self) -> LicenceRequest:
        """The domain's view of this body."""
        return LicenceRequest(
            self.type,
            self.holder.kind,
            self.holder.id,
            self.holder.name,
            self.data,
            self.valid_from,
            self.valid_until,
        )


class BatchIn(BaseModel):
    """Up to 1,000 licences, issued all or none."""

    licences: list[LicenceIn] = Field(min_length=1, max_length=service.MAX_BATCH)


class ReasonIn(BaseModel):
    """Why the status changes (recorded with who and when)."""

    reason: str = Field(min_length=1, max_length=512)


def _agency(session: Session, token: AccessToken) -> Agency:
    # One query for the client's agency (none if the client is gone or acts for none).
    agency = session.scalar(
        select(Agency)
        .join(OAuthClient, OAuthClient.agency_id == Agency.id)
        .where(OAuthClient.client_id == token.client_id)
    )
    if agency is None:
        raise Forbidden("this client acts for no agency")
    return agency


def _links(issuer: str, licence: Licence) -> dict[str, str]:
    base = f"{issuer}/api/v1/licences/{licence.id}"
    return {
        "self": base,
        "document": f"{base}/document",
        "seal": f"{base}/seal",
        "pdf": f"{base}/pdf",
        "qr": f"{base}/qr.png",
        "qr_svg": f"{base}/qr.svg",
        "verify": qr_url(issuer, licence.qr_payload),
    }


def describe(
    issuer: str, licence: Licence, licence_type: LicenceType, agency: Agency, now: datetime
) -> dict[str, Any]:
    """The API representation of a licence: what it states, its status at ``now`` and its
    links."""
    return {
        **service.licence_fields(licence, licence_type, agency),
        "status": service.effective_status(licence, now),
        "links": _links(issuer, licence),
    }


def describe_all(issuer: str, session: Session, licences: list[Licence]) -> list[dict[str, Any]]:
    """The representations of ``licences``, with each type and agency taken once from the
    unit of work (``Session.get``: no query when issuance or the caller's check already
    loaded it, as for every licence just issued)."""
    types: dict[int, LicenceType] = {}
    agencies: dict[int, Agency] = {}
    for lic in licences:
        if lic.type_id not in types:
            types[lic.type_id] = session.get_one(LicenceType, lic.type_id)
        if lic.agency_id not in agencies:
            agencies[lic.agency_id] = session.get_one(Agency, lic.agency_id)
    now = utcnow()
    return [
        describe(issuer, lic, types[lic.type_id], agencies[lic.agency_id], now) for lic in licences
    ]


def _issue(
    instance: Instance, session: Session, token: AccessToken, bodies: list[LicenceIn]
) -> list[Licence]:
    agency = _agency(session, token)
    sealer = instance.sealers.sealer(pki_for(instance, session), agency)
    return service.issue_licences(
        session,
        sealer,
        agency,
        [b.request() for b in bodies],
        issuer=instance.settings.issuer,
        actor=f"client:{token.client_id}",
        now=utcnow(),
        attach=False,  # the reply only reads them
    )


@router.post("", status_code=201, summary="Issue a licence", dependencies=[WRITES])
def issue(
    body: LicenceIn, instance: CurrentInstance, session: DbSession, token: AccessToken = ISSUE
) -> JSONResponse:
    """Validate, number, seal and store one licence; 201 only once it is committed."""
    (licence,) = _issue(instance, session, token, [body])
    (data,) = describe_all(instance.settings.issuer, session, [licence])
    return JSONResponse(data, status_code=201, headers={"Location": data["links"]["self"]})


@router.post("/batch", summary="Issue up to 1,000 licences, all or none", dependencies=[WRITES])
def issue_batch(
    body: BatchIn, instance: CurrentInstance, session: DbSession, token: AccessToken = ISSUE
) -> dict[str, Any]:
    """Every licence in request order, or 422 listing each invalid item (nothing issued)."""
    issued = _issue(instance, session, token, body.licences)
    return {"licences": describe_all(instance.settings.issuer, session, issued)}


def _owned(session: Session, token: AccessToken, licence_id: str) -> Licence:
    return service.find_licence(session, licence_id, _agency(session, token))


@router.get("/{licence_id}", summary="A licence and its status")
def read(
    licence_id: str, instance: CurrentInstance, session: DbSession, token: AccessToken = READ
) -> dict[str, Any]:
    """The licence with its current status and links to its renditions."""
    return describe_all(instance.settings.issuer, session, [_owned(session, token, licence_id)])[0]


@router.get("/{licence_id}/document", summary="The sealed canonical document (RFC 8785)")
def document(licence_id: str, session: DbSession, token: AccessToken = READ) -> Response:
    """The exact bytes the seal covers."""
    return Response(_owned(session, token, licence_id).document, media_type="application/json")


@router.get("/{licence_id}/seal", summary="The detached CAdES-B-T seal (DER)")
def seal(licence_id: str, session: DbSession, token: AccessToken = READ) -> Response:
    """CMS SignedData over the document's bytes."""
    return Response(
        _owned(session, token, licence_id).seal, media_type="application/pkcs7-signature"
    )


@router.get(
    "/{licence_id}/pdf", summary="The licence PDF, sealed PAdES-B-LT", dependencies=[WRITES]
)
def pdf(
    licence_id: str, instance: CurrentInstance, session: DbSession, token: AccessToken = READ
) -> Response:
    """Made and stored on first download (it embeds the revocation data of that moment)."""
    return pdf_download(instance, session, _owned(session, token, licence_id))


def pdf_download(instance: Instance, session: Session, licence: Licence) -> Response:
    """The licence's sealed PDF as a download, made and stored on first request."""
    if licence.pdf is None:
        licence_type = session.get(LicenceType, licence.type_id)
        agency = session.get(Agency, licence.agency_id)
        assert licence_type is not None and agency is not None
        licence.pdf = sealed_pdf(
            pki_for(instance, session),
            instance.settings.issuer,
            licence,
            licence_type,
            agency,
            utcnow(),
        )
    return Response(
        licence.pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{licence.number}.pdf"'},
    )


def qr_download(instance: Instance, licence: Licence) -> Response:
    """The licence's QR code as a PNG."""
    return Response(
        qr_png(qr_url(instance.settings.issuer, licence.qr_payload)), media_type="image/png"
    )


@router.get("/{licence_id}/qr.png", summary="The QR code (PNG)")
def qr_image(
    licence_id: str, instance: CurrentInstance, session: DbSession, token: AccessToken = READ
) -> Response:
    """The QR: the verification URL carrying the compact seal."""
    return qr_download(instance, _owned(session, token, licence_id))


@router.get("/{licence_id}/qr.svg", summary="The QR code (SVG)")
def qr_vector(
    licence_id: str, instance: CurrentInstance, session: DbSession, token: AccessToken = READ
) -> Response:
    """The same QR as SVG, for print."""
    licence = _owned(session, token, licence_id)
    return Response(
        qr_svg(qr_url(instance.settings.issuer, licence.qr_payload)), media_type="image/svg+xml"
    )


def _status_change(action: str) -> Any:
    def change(
        licence_id: str,
        body: ReasonIn,
        instance: CurrentInstance,
        session: DbSession,
        token: AccessToken = REVOKE,
    ) -> dict[str, Any]:
        licence = _owned(session, token, licence_id)
        service.change_status(
            session, licence, action, body.reason, f"client:{token.client_id}", utcnow()
        )
        return describe_all(instance.settings.issuer, session, [licence])[0]

    change.__doc__ = f"{action.capitalize()} the licence, recording the reason."
    return change


for _action in ("revoke", "suspend", "reinstate"):
    router.add_api_route(
        f"/{{licence_id}}/{_action}",
        _status_change(_action),
        methods=["POST"],
        dependencies=[WRITES],
        summary=f"{_action.capitalize()} a licence",
    )
