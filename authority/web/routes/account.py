"""The person's account: their licences (and their businesses'), authenticators and
data history. Every page needs the provider session; a licence is served only to
its holder or a representative of the holding business."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from authority.account import service
from authority.account.history import releases
from authority.agencies.staff import staff_roles
from authority.db.base import utcnow
from authority.errors import AuthorityError
from authority.identity import totp
from authority.identity.accounts import mandates
from authority.identity.models import Citizen, Passkey
from authority.instance import Instance
from authority.seals.qr_render import qr_png
from authority.web.deps import WRITES, CurrentInstance, DbSession
from authority.web.i18n import CATALOGUE
from authority.web.people import csrf_ok, current_login, error_page, page
from authority.web.routes.licences import pdf_download, qr_download

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form()]
OptionalField = Annotated[str | None, Form()]
LOGIN = "/login"
DONE = ("password", "totp", "totp_removed")


def signed_in(request: Request, session: DbSession) -> Citizen | None:
    """The citizen whose provider session this browser holds."""
    login = current_login(request, session)
    return session.get(Citizen, login.citizen_id) if login else None


def _to_login() -> Response:
    return RedirectResponse(LOGIN, status_code=303)


def _expired(request: Request) -> Response:
    return error_page(request, "invalid_request", "the form expired; go back and try again", 403)


@router.get("/account")
def account_page(request: Request, session: DbSession) -> Response:
    """The person's licences, the businesses they act for, and where to manage the rest."""
    citizen = signed_in(request, session)
    if citizen is None:
        return _to_login()
    now = utcnow()
    return page(
        request,
        "account.html",
        {
            "citizen": citizen,
            "licences": service.own_licences(session, citizen, now),
            "businesses": mandates(session, citizen, now),
            "staff": staff_roles(session, citizen),
        },
    )


@router.get("/account/licences/{licence_id}/pdf", dependencies=[WRITES])
def licence_pdf(
    licence_id: str, request: Request, instance: CurrentInstance, session: DbSession
) -> Response:
    """The sealed PDF of one of the person's licences."""
    citizen = signed_in(request, session)
    if citizen is None:
        return _to_login()
    licence = service.own_licence(session, citizen, licence_id, utcnow())
    return pdf_download(instance, session, licence)


@router.get("/account/licences/{licence_id}/qr.png")
def licence_qr(
    licence_id: str, request: Request, instance: CurrentInstance, session: DbSession
) -> Response:
    """The QR code of one of the person's licences."""
    citizen = signed_in(request, session)
    if citizen is None:
        return _to_login()
    return qr_download(instance, service.own_licence(session, citizen, licence_id, utcnow()))


@router.get("/account/history")
def history_page(request: Request, session: DbSession) -> Response:
    """Which portal received which data, and how often each licence was verified."""
    citizen = signed_in(request, session)
    if citizen is None:
        return _to_login()
    return page(
        request,
        "account_history.html",
        {
            "releases": releases(session, citizen),
            "scope_keys": {k for k in CATALOGUE.messages if k.startswith("scope.")},
            "licences": service.own_licences(session, citizen, utcnow()),
        },
    )


def _security(
    request: Request,
    instance: Instance,
    session: DbSession,
    citizen: Citizen,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    done: str | None = None,
) -> Response:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, citizen.id_number, "Authority")
    context: dict[str, Any] = {
        "has_totp": citizen.totp_secret is not None,
        "totp_required": not citizen.password_only,
        "secret": secret,
        "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "qr": "data:image/png;base64," + base64.b64encode(qr_png(uri)).decode("ascii"),
        "passkeys": session.query(Passkey).filter(Passkey.citizen_id == citizen.id).count(),
        "errors": errors or {},
        "done": done,
    }
    return page(request, "account_security.html", context, status_code)


@router.get("/account/security")
def security_page(request: Request, instance: CurrentInstance, session: DbSession) -> Response:
    """Password, one-time codes and passkeys."""
    citizen = signed_in(request, session)
    if citizen is None:
        return _to_login()
    done = request.query_params.get("done")
    return _security(request, instance, session, citizen, done=done if done in DONE else None)


def _submit(
    request: Request,
    instance: Instance,
    session: DbSession,
    csrf: str | None,
    change: Callable[[Citizen], None],
    field_of: Callable[[AuthorityError], str],
    done: str,
) -> Response:
    """Apply a security form's ``change``; its error goes next to ``field_of(error)``."""
    if not csrf_ok(request, csrf):
        return _expired(request)
    citizen = signed_in(request, session)
    if citizen is None:
        return _to_login()
    try:
        change(citizen)
    except AuthorityError as exc:
        errors = {field_of(exc): exc.detail}
        return _security(request, instance, session, citizen, errors, exc.status)
    return RedirectResponse(f"/account/security?done={done}", status_code=303)


@router.post("/account/password", dependencies=[WRITES])
def password_submit(
    request: Request,
    instance: CurrentInstance,
    session: DbSession,
    current: Field,
    new: Field,
    csrf: OptionalField = None,
) -> Response:
    """Change the password, given the current one."""
    hasher = instance.authenticator.hasher
    return _submit(
        request,
        instance,
        session,
        csrf,
        lambda citizen: service.change_password(hasher, citizen, current=current, new=new),
        lambda exc: "current" if isinstance(exc, service.WrongPassword) else "new",
        "password",
    )


@router.post("/account/totp", dependencies=[WRITES])
def totp_submit(
    request: Request,
    instance: CurrentInstance,
    session: DbSession,
    secret: Field,
    code: Field,
    csrf: OptionalField = None,
) -> Response:
    """Add (or replace) the authenticator app, proven by a code it shows."""
    return _submit(
        request,
        instance,
        session,
        csrf,
        lambda citizen: service.enrol_totp(citizen, secret=secret, code=code, now=utcnow()),
        lambda _exc: "code",
        "totp",
    )


@router.post("/account/totp/remove", dependencies=[WRITES])
def totp_remove(
    request: Request,
    instance: CurrentInstance,
    session: DbSession,
    password: Field,
    csrf: OptionalField = None,
) -> Response:
    """Remove the authenticator app, given the password."""
    hasher = instance.authenticator.hasher
    return _submit(
        request,
        instance,
        session,
        csrf,
        lambda citizen: service.remove_totp(hasher, citizen, password=password),
        lambda _exc: "remove",
        "totp_removed",
    )


@router.post("/account/passkeys/{passkey_id}/remove", dependencies=[WRITES])
def passkey_remove(
    passkey_id: int, request: Request, session: DbSession, csrf: OptionalField = None
) -> Response:
    """Remove one of the person's passkeys."""
    if not csrf_ok(request, csrf):
        return _expired(request)
    citizen = signed_in(request, session)
    if citizen is None:
        return _to_login()
    service.remove_passkey(session, citizen, passkey_id)
    return RedirectResponse("/account/passkeys", status_code=303)


CATALOGUE.add(
    {
        "nav.account": {"zh": "我的账户", "en": "Your account"},
        "nav.login": {"zh": "登录", "en": "Log in"},
        "account.title": {"zh": "我的账户", "en": "Your account"},
        "account.greeting": {"zh": "{name}，您好。", "en": "Hello, {name}."},
        "account.licences": {"zh": "我的证照", "en": "Your licences"},
        "account.licences_none": {
            "zh": "您和您代表的企业目前没有证照。",
            "en": "You and the businesses you act for hold no licences yet.",
        },
        "account.number": {"zh": "证照编号", "en": "Number"},
        "account.type": {"zh": "证照类型", "en": "Type"},
        "account.holder": {"zh": "持证主体", "en": "Holder"},
        "account.agency": {"zh": "发证机关", "en": "Issued by"},
        "account.status": {"zh": "状态", "en": "Status"},
        "account.validity": {"zh": "有效期", "en": "Valid"},
        "account.validity_range": {"zh": "{start} 至 {end}", "en": "{start} to {end}"},
        "account.download_pdf": {"zh": "下载 PDF（{number}）", "en": "Download PDF ({number})"},
        "account.download_qr": {"zh": "下载二维码（{number}）", "en": "Download QR ({number})"},
        "account.verified": {
            "zh": "在线核验 {count} 次",
            "en": "Verified online {count} time(s)",
        },
        "account.verified_last": {"zh": "最近一次：{at}", "en": "last on {at}"},
        "account.businesses": {"zh": "我代表的企业", "en": "Businesses you act for"},
        "account.manage": {"zh": "管理", "en": "Manage"},
        "account.security": {"zh": "登录方式与密码", "en": "Password and sign-in methods"},
        "account.consents": {"zh": "我的授权", "en": "Your consents"},
        "account.history": {"zh": "数据使用记录", "en": "Your data history"},
        "account.passkeys": {"zh": "通行密钥", "en": "Passkeys"},
        "account.console": {"zh": "机关工作台", "en": "Agency console"},
        "status.valid": {"zh": "有效", "en": "Valid"},
        "status.suspended": {"zh": "已暂停", "en": "Suspended"},
        "status.revoked": {"zh": "已撤销", "en": "Revoked"},
        "status.expired": {"zh": "已过期", "en": "Expired"},
        "holder.citizen": {"zh": "本人", "en": "You"},
        "history.title": {"zh": "数据使用记录", "en": "Your data history"},
        "history.intro": {
            "zh": "这里列出哪些网站获取了您的哪些信息，以及您的证照被在线核验的次数。"
            "核验记录只有次数和时间，不记录核验人。",
            "en": "Here you can see which websites received which of your information, and "
            "how often your licences were verified online. Verifications are counted with "
            "their time only, never who verified.",
        },
        "history.releases": {"zh": "网站获取的信息", "en": "Information websites received"},
        "history.releases_none": {
            "zh": "还没有网站获取过您的信息。",
            "en": "No website has received your information yet.",
        },
        "history.release": {
            "zh": "{portal} 于 {at} 获取：{data}",
            "en": "{portal} received on {at}: {data}",
        },
        "history.release_business": {"zh": "（代表 {uscc}）", "en": " (for {uscc})"},
        "scope.openid": {"zh": "您的登录标识", "en": "Your sign-in identifier"},
        "history.verifications": {"zh": "证照核验次数", "en": "Licence verifications"},
        "history.never": {"zh": "尚未被在线核验", "en": "Not yet verified online"},
        "security.title": {"zh": "登录方式与密码", "en": "Password and sign-in methods"},
        "security.done_password": {"zh": "密码已修改。", "en": "Your password was changed."},
        "security.done_totp": {
            "zh": "身份验证器应用已添加。",
            "en": "Your authenticator app was added.",
        },
        "security.done_totp_removed": {
            "zh": "身份验证器应用已移除。",
            "en": "Your authenticator app was removed.",
        },
        "security.password": {"zh": "修改密码", "en": "Change your password"},
        "security.current": {"zh": "当前密码", "en": "Current password"},
        "security.new": {
            "zh": "新密码（至少 12 个字符）",
            "en": "New password (12 characters or more)",
        },
        "security.save_password": {"zh": "修改密码", "en": "Change password"},
        "security.totp": {"zh": "身份验证器应用", "en": "Authenticator app"},
        "security.totp_on": {
            "zh": "已启用：登录时需输入应用显示的验证码。",
            "en": "On: you enter the code your app shows when you log in.",
        },
        "security.totp_off": {"zh": "未启用。", "en": "Not set up."},
        "security.totp_add": {
            "zh": "用身份验证器应用扫描二维码，或手动输入密钥，然后输入应用显示的验证码。",
            "en": "Scan the QR code with your authenticator app, or type the key, "
            "then enter the code the app shows.",
        },
        "security.totp_replace": {
            "zh": "更换身份验证器应用",
            "en": "Replace the authenticator app",
        },
        "security.totp_qr": {
            "zh": "身份验证器应用的二维码",
            "en": "QR code for your authenticator app",
        },
        "security.totp_key": {"zh": "密钥", "en": "Key"},
        "security.totp_code": {"zh": "应用显示的验证码", "en": "Code from the app"},
        "security.totp_save": {"zh": "添加", "en": "Add"},
        "security.totp_remove": {"zh": "移除身份验证器应用", "en": "Remove the authenticator app"},
        "security.totp_required": {
            "zh": "您的账户必须保留第二重验证，只能更换，不能移除。",
            "en": "Your account must keep a second factor: you can replace it, not remove it.",
        },
        "security.password_confirm": {"zh": "密码", "en": "Password"},
        "security.passkeys": {
            "zh": "您已登记 {count} 个通行密钥。",
            "en": "You have {count} passkey(s).",
        },
        "security.passkeys_manage": {"zh": "管理通行密钥", "en": "Manage passkeys"},
        "passkeys.added": {"zh": "添加于 {at}", "en": "Added on {at}"},
        "passkeys.used": {"zh": "最近使用 {at}", "en": "last used {at}"},
        "passkeys.remove": {"zh": "移除通行密钥 {n}", "en": "Remove passkey {n}"},
        "passkeys.name": {"zh": "通行密钥 {n}", "en": "Passkey {n}"},
    }
)
