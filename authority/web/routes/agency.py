"""The agency console: staff issue licences through forms made from each type's
JSON Schema, search the agency's licences, change their status with a reason, and
see the agency's seal certificates. Every page needs the provider session of a
citizen with a staff role in the agency (``authority agency staff add``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from authority.agencies import console
from authority.agencies.staff import NotStaff, StaffRole, staff_role
from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.errors import AuthorityError, NotFound
from authority.identity.models import Citizen
from authority.instance import Instance
from authority.licences import service
from authority.licences.models import Licence, LicenceType
from authority.licences.sealing import AgencySealer
from authority.licences.service import LicenceRequest
from authority.web.deps import WRITES, CurrentInstance, DbSession
from authority.web.i18n import CATALOGUE
from authority.web.people import csrf_ok, error_page, page
from authority.web.routes.account import signed_in
from authority.web.schema_form import PREFIX, data_from_form, field_errors, fields_of

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form()]
OptionalField = Annotated[str | None, Form()]


def _staff(request: Request, session: Session, agency: str | None) -> tuple[Citizen, StaffRole]:
    citizen = signed_in(request, session)
    if citizen is None:
        raise _LoginNeeded
    return citizen, staff_role(session, citizen, agency)


class _LoginNeeded(Exception):
    pass


def _refusal(request: Request, exc: Exception) -> Response:
    if isinstance(exc, _LoginNeeded):
        return RedirectResponse("/login", status_code=303)
    assert isinstance(exc, NotStaff)
    return error_page(request, "access_denied", exc.detail, exc.status)


def _expired(request: Request) -> Response:
    return error_page(request, "invalid_request", "the form expired; go back and try again", 403)


def _actor(citizen: Citizen) -> str:
    return f"staff:{citizen.id_number}"


@router.get("/agency")
def console_page(request: Request, session: DbSession) -> Response:
    """The agency's types, its seal certificates, and its licences (searchable)."""
    try:
        _citizen, role = _staff(request, session, request.query_params.get("agency"))
    except (_LoginNeeded, NotStaff) as exc:
        return _refusal(request, exc)
    query = request.query_params.get("q", "")
    return page(
        request,
        "agency.html",
        {
            "role": role,
            "agency": role.agency,
            "types": console.licence_types(session, role.agency),
            "seals": console.seal_certificates(session, role.agency, utcnow()),
            "query": query,
            "licences": console.search_licences(session, role.agency, query),
            "now": utcnow(),
            "status_of": service.effective_status,
        },
    )


def _type_of(session: Session, role: StaffRole, type_code: str) -> LicenceType:
    for licence_type in console.licence_types(session, role.agency):
        if licence_type.code == type_code:
            return licence_type
    raise NotFound(f"agency {role.agency.code} has no licence type {type_code!r}")


def _issue_form(
    request: Request,
    role: StaffRole,
    licence_type: LicenceType,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "agency_issue.html",
        {
            "agency": role.agency,
            "licence_type": licence_type,
            "fields": fields_of(licence_type.schema),
            "values": values or {"holder_kind": "citizen"},
            "errors": errors or {},
        },
        status_code,
    )


@router.get("/agency/issue/{type_code}")
def issue_page(type_code: str, request: Request, session: DbSession) -> Response:
    """The issuance form of one of the agency's licence types."""
    try:
        _citizen, role = _staff(request, session, request.query_params.get("agency"))
    except (_LoginNeeded, NotStaff) as exc:
        return _refusal(request, exc)
    return _issue_form(request, role, _type_of(session, role, type_code))


def _error_field(detail: str) -> str:
    """The form field a domain error's message is about (its ``holder.id:`` style prefix)."""
    for prefix, name in (
        ("holder.kind", "holder_kind"),
        ("holder.name", "holder_name"),
        ("holder", "holder_id"),
        ("resident", "holder_id"),
        ("unified", "holder_id"),
        ("uscc", "holder_id"),
        ("identity", "holder_id"),
    ):
        if detail.lower().startswith(prefix):
            return name
    return ""


@router.post("/agency/issue/{type_code}", dependencies=[WRITES])
async def issue_submit(
    type_code: str, request: Request, instance: CurrentInstance, session: DbSession
) -> Response:
    """Validate the form against the type's schema, then issue and seal the licence."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    if not csrf_ok(request, form.get("csrf")):
        return _expired(request)
    try:
        citizen, role = _staff(request, session, form.get("agency"))
    except (_LoginNeeded, NotStaff) as exc:
        return _refusal(request, exc)
    licence_type = _type_of(session, role, type_code)
    data = data_from_form(licence_type.schema, form)
    errors = {
        PREFIX + key if key else "": message
        for key, message in field_errors(licence_type.schema, data).items()
    }
    if not form.get("holder_id", "").strip():
        errors["holder_id"] = "required"
    if not form.get("holder_name", "").strip():
        errors["holder_name"] = "required"
    if not errors:
        try:
            licence = _issue(instance, session, citizen, role, licence_type, form, data)
        except AuthorityError as exc:
            errors[_error_field(exc.detail)] = exc.detail
        else:
            return RedirectResponse(
                f"/agency/licences/{licence.id}?agency={role.agency.code}&issued=1",
                status_code=303,
            )
    return _issue_form(request, role, licence_type, form, errors, 422)


def _issue(
    instance: Instance,
    session: Session,
    citizen: Citizen,
    role: StaffRole,
    licence_type: LicenceType,
    form: dict[str, str],
    data: dict[str, Any],
) -> Licence:
    request = LicenceRequest(
        licence_type.code,
        form.get("holder_kind", ""),
        form.get("holder_id", "").strip(),
        form.get("holder_name", ""),
        data,
        None,
        None,
    )
    (licence,) = service.issue_licences(
        session,
        AgencySealer(pki_for(instance, session), role.agency),
        role.agency,
        [request],
        issuer=instance.settings.issuer,
        actor=_actor(citizen),
        now=utcnow(),
    )
    return licence


def _licence_page(
    request: Request,
    session: Session,
    role: StaffRole,
    licence: Licence,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    licence_type = session.get(LicenceType, licence.type_id)
    return page(
        request,
        "agency_licence.html",
        {
            "agency": role.agency,
            "role": role,
            "licence": licence,
            "licence_type": licence_type,
            "status": service.effective_status(licence, utcnow()),
            "events": service.history(session, licence),
            "issued": request.query_params.get("issued") == "1",
            "error": error,
        },
        status_code,
    )


@router.get("/agency/licences/{licence_id}")
def licence_page(licence_id: str, request: Request, session: DbSession) -> Response:
    """One of the agency's licences: its fields, status, history and status actions."""
    try:
        _citizen, role = _staff(request, session, request.query_params.get("agency"))
    except (_LoginNeeded, NotStaff) as exc:
        return _refusal(request, exc)
    licence = service.find_licence(session, licence_id, role.agency)
    return _licence_page(request, session, role, licence)


@router.post("/agency/licences/{licence_id}/status", dependencies=[WRITES])
def status_submit(
    licence_id: str,
    request: Request,
    session: DbSession,
    action: Field,
    reason: OptionalField = None,
    agency: OptionalField = None,
    csrf: OptionalField = None,
) -> Response:
    """Suspend, reinstate or revoke, recording the reason and who did it."""
    if not csrf_ok(request, csrf):
        return _expired(request)
    try:
        citizen, role = _staff(request, session, agency)
    except (_LoginNeeded, NotStaff) as exc:
        return _refusal(request, exc)
    licence = service.find_licence(session, licence_id, role.agency)
    if not role.changes_status:
        return error_page(request, "access_denied", "only an officer may change a status", 403)
    try:
        service.change_status(session, licence, action, reason or "", _actor(citizen), utcnow())
    except AuthorityError as exc:
        return _licence_page(request, session, role, licence, exc.detail, exc.status)
    return RedirectResponse(
        f"/agency/licences/{licence.id}?agency={role.agency.code}", status_code=303
    )


CATALOGUE.add(
    {
        "agency.title": {"zh": "机关工作台", "en": "Agency console"},
        "agency.role": {"zh": "您的角色：{role}", "en": "Your role: {role}"},
        "agency.role.clerk": {"zh": "办事员", "en": "clerk"},
        "agency.role.officer": {"zh": "审批人员", "en": "officer"},
        "agency.issue": {"zh": "签发证照", "en": "Issue a licence"},
        "agency.issue_type": {"zh": "签发“{name}”", "en": "Issue “{name}”"},
        "agency.types_none": {
            "zh": "本机关尚无证照类型。",
            "en": "This agency has no licence types yet.",
        },
        "agency.search": {"zh": "查找证照", "en": "Find licences"},
        "agency.search_label": {
            "zh": "证照编号、持证人证件号码或名称",
            "en": "Number, holder's identifier or name",
        },
        "agency.search_submit": {"zh": "查找", "en": "Search"},
        "agency.results_none": {"zh": "没有找到证照。", "en": "No licence found."},
        "agency.latest": {"zh": "最近签发的证照", "en": "Latest licences"},
        "agency.results": {"zh": "查找结果", "en": "Results"},
        "agency.seal": {"zh": "电子印章证书", "en": "Seal certificates"},
        "agency.seal_serial": {"zh": "序列号", "en": "Serial"},
        "agency.seal_subject": {"zh": "主体", "en": "Subject"},
        "agency.seal_valid": {"zh": "有效期", "en": "Valid"},
        "agency.seal_status": {"zh": "状态", "en": "Status"},
        "seal.good": {"zh": "有效", "en": "Good"},
        "seal.superseded": {
            "zh": "已更换（对已盖章的证照仍有效）",
            "en": "Rotated (still valid for what it sealed)",
        },
        "seal.revoked": {"zh": "已吊销", "en": "Revoked"},
        "seal.expired": {"zh": "已过期", "en": "Expired"},
        "agency.holder_kind": {"zh": "持证主体类型", "en": "Holder"},
        "agency.holder_citizen": {"zh": "个人", "en": "A person"},
        "agency.holder_business": {"zh": "企业", "en": "A business"},
        "agency.holder_id": {
            "zh": "居民身份证号码或统一社会信用代码",
            "en": "Resident identity number or unified social credit code",
        },
        "agency.holder_name": {"zh": "持证人姓名或企业名称", "en": "Holder's name"},
        "agency.data": {"zh": "证照内容", "en": "Licence details"},
        "agency.required": {"zh": "（必填）", "en": "(required)"},
        "agency.error_required": {"zh": "请填写此项。", "en": "Fill this in."},
        "agency.errors": {
            "zh": "请更正以下标出的内容。",
            "en": "Correct the fields marked below.",
        },
        "agency.submit_issue": {"zh": "签发并盖章", "en": "Issue and seal"},
        "agency.issued": {"zh": "证照已签发并盖章。", "en": "The licence was issued and sealed."},
        "agency.licence": {"zh": "证照 {number}", "en": "Licence {number}"},
        "agency.change": {"zh": "变更状态", "en": "Change the status"},
        "agency.reason": {"zh": "原因", "en": "Reason"},
        "agency.action": {"zh": "操作", "en": "Action"},
        "agency.action.suspend": {"zh": "暂停", "en": "Suspend"},
        "agency.action.reinstate": {"zh": "恢复", "en": "Reinstate"},
        "agency.action.revoke": {"zh": "撤销（不可恢复）", "en": "Revoke (final)"},
        "agency.apply": {"zh": "确认变更", "en": "Apply"},
        "agency.history": {"zh": "记录", "en": "History"},
        "agency.event.issued": {"zh": "签发", "en": "Issued"},
        "agency.event.suspend": {"zh": "暂停", "en": "Suspended"},
        "agency.event.reinstate": {"zh": "恢复", "en": "Reinstated"},
        "agency.event.revoke": {"zh": "撤销", "en": "Revoked"},
        "agency.back": {"zh": "返回工作台", "en": "Back to the console"},
        "agency.verify_link": {"zh": "打开核验页面", "en": "Open its verification page"},
    }
)
