"""What the people-facing pages share: the session cookie, CSRF, and turning an
authorization :class:`~authority.oidc.authorize.Step` into a response.

The session cookie is HttpOnly, SameSite=Lax (the browser comes back from a
portal with a top-level GET) and Secure on https. Forms carry a CSRF token
that must equal the ``csrf`` cookie (double submit; SameSite=Strict cookie).

The browser-binding cookie (same attributes, no expiry: it lives as long as the
browser session) carries a random value whose hash each authorization request
started in this browser stores; one value serves every tab's pending request.
A login always gives the browser a new session and ends the one its old cookie
opened, as logout does (session fixation).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from authority.db.base import utcnow
from authority.identity.login import SESSION_LIFETIME, StartedSession, find_session
from authority.identity.models import LoginSession
from authority.oidc.authorize import AuthorizationEndpoint, RequestOfAnotherBrowser, Step
from authority.oidc.backchannel import LogoutNotice, deliver
from authority.oidc.logout import close_session
from authority.oidc.server import AuthorityServer
from authority.web.i18n import CATALOGUE
from authority.web.middleware import CONTENT_SECURITY_POLICY
from authority.web.pages import render

SESSION_COOKIE = "authority_session"
BROWSER_COOKIE = "authority_browser"
CSRF_COOKIE = "authority_csrf"
CSRF_FIELD = "csrf"


def current_login(
    request: Request, session: Session, *, pending: bool = False
) -> LoginSession | None:
    """The browser's provider session (complete, or with ``pending`` awaiting a factor)."""
    return find_session(session, request.cookies.get(SESSION_COOKIE), utcnow(), pending=pending)


def set_session_cookie(request: Request, response: Response, started: StartedSession) -> None:
    """Give the browser the session's cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        started.cookie,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        secure=_https(request),
        samesite="lax",
        path="/",
    )


def start_browser_session(
    request: Request, response: Response, session: Session, started: StartedSession
) -> None:
    """Give the browser the new session's cookie, ending the session its old cookie opened.

    OWASP Session Management: a fresh session id at every login, never the old one;
    the old session ends server-side as logout ends it (its refresh tokens revoked,
    back-channel logout tokens sent once this unit of work is committed).
    """
    instance = request.app.state.instance
    cookie = request.cookies.get(SESSION_COOKIE)
    now = utcnow()
    notices: list[LogoutNotice] = []
    for pending in (False, True):
        old = find_session(session, cookie, now, pending=pending)
        if old is not None and old.id != started.record.id:
            notices += close_session(
                session,
                instance.keystore,
                instance.client_secret_key,
                instance.settings.issuer,
                old,
                now,
            )
    set_session_cookie(request, response, started)
    if notices:
        response.background = BackgroundTask(deliver, notices)


def browser_binding(request: Request) -> str | None:
    """The browser-binding value the browser's cookie carries, if it looks like one."""
    value = request.cookies.get(BROWSER_COOKIE)
    return value if value and len(value) == 43 else None


def new_browser_binding() -> str:
    """A fresh random browser-binding value."""
    return secrets.token_urlsafe(32)


def bind_browser(request: Request, response: Response, binding: str) -> None:
    """Give the browser its binding cookie (HttpOnly, SameSite=Lax, path /, Secure on https)."""
    response.set_cookie(
        BROWSER_COOKIE, binding, httponly=True, secure=_https(request), samesite="lax", path="/"
    )


def authorization_endpoint(request: Request, server: AuthorityServer) -> AuthorizationEndpoint:
    """The authorization endpoint as this browser sees it (its binding value)."""
    return AuthorizationEndpoint(server, browser_binding(request))


def clear_session_cookie(request: Request, response: Response) -> None:
    """Forget the session cookie (logout)."""
    response.delete_cookie(SESSION_COOKIE, path="/", secure=_https(request), httponly=True)


def _https(request: Request) -> bool:
    issuer: str = request.app.state.instance.settings.issuer
    return issuer.startswith("https://")


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (the cookie's value, or a new one)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) != 43:
        token = getattr(request.state, "csrf", None) or secrets.token_urlsafe(32)
    request.state.csrf = token
    return token


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """Whether a form's CSRF token matches the browser's cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie and submitted and hmac.compare_digest(cookie, submitted))


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    *,
    returns_to: str | None = None,
) -> HTMLResponse:
    """A form page with its CSRF token (and the cookie that backs it).

    ``returns_to``: the verified redirect URI the form's answer may redirect to.
    """
    token = csrf_token(request)
    response = render(request, template, {"csrf": token, **context}, status_code)
    if returns_to:
        allow_form_redirect(response, returns_to)
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, secure=_https(request), samesite="strict", path="/"
    )
    return response


def error_page(
    request: Request,
    code: str,
    description: str,
    status_code: int = 400,
    *,
    explanation: str | None = None,
) -> HTMLResponse:
    """The page shown when an error cannot go back to the portal.

    ``explanation``: a catalogue key for a translated sentence saying what happened.
    """
    return render(
        request,
        "login_error.html",
        {"code": code, "description": description, "explanation": explanation},
        status_code,
    )


def refused_step(request: Request, step: Step) -> HTMLResponse:
    """The error page of an error step (one that cannot go back to the portal)."""
    error = step.error
    if isinstance(error, RequestOfAnotherBrowser):
        return error_page(
            request,
            error.error,
            error.description,
            error.status_code,
            explanation="login_error.other_browser",
        )
    return error_page(
        request,
        getattr(error, "error", None) or "invalid_request",
        getattr(error, "description", None) or "",
    )


def allow_form_redirect(response: Response, uri: str) -> None:
    """Let this page's forms end in a redirect to ``uri``'s origin.

    CSP form-action governs the whole redirect chain of a form submission, so a
    page whose answer goes back to the portal must name the portal's origin.
    """
    parts = urlsplit(uri)
    origin = f"{parts.scheme}://{parts.netloc}"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {origin}"
    )


def step_response(request: Request, step: Step) -> Response:
    """The browser's next move for ``step``."""
    status = 303 if request.method == "POST" else 302
    if step.kind == "redirect" and step.location:
        return RedirectResponse(step.location, status_code=status)
    if step.kind in ("login", "business", "consent") and step.request_id:
        target = {
            "login": "/login",
            "business": "/authorize/business",
            "consent": "/authorize/consent",
        }
        return RedirectResponse(
            f"{target[step.kind]}?{urlencode({'request': step.request_id})}", status_code=status
        )
    return refused_step(request, step)


CATALOGUE.add(
    {
        "login.title": {"zh": "登录", "en": "Log in"},
        "login.id_number": {"zh": "居民身份证号码", "en": "Resident identity number"},
        "login.password": {"zh": "密码", "en": "Password"},
        "login.submit": {"zh": "登录", "en": "Log in"},
        "login.passkey": {"zh": "使用通行密钥登录", "en": "Log in with a passkey"},
        "passkeys.title": {"zh": "通行密钥", "en": "Passkeys"},
        "passkeys.count": {
            "zh": "您已登记 {count} 个通行密钥。",
            "en": "You have {count} passkey(s).",
        },
        "passkeys.intro": {
            "zh": "通行密钥保存在您的设备中，登录时无需输入密码。",
            "en": "A passkey stays on your device and lets you log in without a password.",
        },
        "passkeys.add": {"zh": "添加通行密钥", "en": "Add a passkey"},
        "otp.title": {"zh": "动态验证码", "en": "One-time code"},
        "otp.intro": {
            "zh": "请输入身份验证器应用显示的 6 位数字。",
            "en": "Enter the 6-digit code your authenticator app shows.",
        },
        "otp.code": {"zh": "验证码", "en": "Code"},
        "otp.submit": {"zh": "验证", "en": "Verify"},
        "business.title": {"zh": "选择办事主体", "en": "Choose whom you act for"},
        "business.legend": {
            "zh": "您代表以下企业办理业务：",
            "en": "You may act for these businesses:",
        },
        "business.submit": {"zh": "继续", "en": "Continue"},
        "role.legal_representative": {"zh": "法定代表人", "en": "legal representative"},
        "role.authorised_agent": {"zh": "授权代理人", "en": "authorised agent"},
        "consent.title": {"zh": "授权确认", "en": "Share your information?"},
        "consent.intro": {
            "zh": "“{client}”请求获取以下信息：",
            "en": "“{client}” asks to receive:",
        },
        "consent.business": {
            "zh": "您将代表 {name}（{uscc}）办理。",
            "en": "You will act for {name} ({uscc}).",
        },
        "consent.allow": {"zh": "同意", "en": "Allow"},
        "consent.deny": {"zh": "拒绝", "en": "Deny"},
        "scope.profile": {"zh": "姓名", "en": "Your name"},
        "scope.email": {"zh": "电子邮箱", "en": "Your e-mail address"},
        "scope.phone": {"zh": "手机号码", "en": "Your phone number"},
        "scope.business": {"zh": "您所代表的企业", "en": "The business you act for"},
        "scope.offline_access": {"zh": "保持登录", "en": "Stay signed in"},
        "login_error.title": {"zh": "无法完成登录", "en": "The login cannot continue"},
        "login_error.intro": {
            "zh": "请求有误，无法返回原网站。请回到原网站重新开始。",
            "en": "The request was not valid and cannot be returned to the website. "
            "Go back to the website and start again.",
        },
        "login_error.other_browser": {
            "zh": "此登录请求是在另一个浏览器中发起的，或浏览器未保存其 Cookie。"
            "为保护您的账户，无法在此继续。请回到原网站重新开始。",
            "en": "This login was started in another browser, or this browser did not keep "
            "its cookie. To protect your account it cannot go on here. "
            "Go back to the website and start again.",
        },
        "login_error.code": {"zh": "错误代码", "en": "Error code"},
        "login_error.description": {"zh": "说明", "en": "Details"},
        "consents.title": {"zh": "我的授权", "en": "Your consents"},
        "consents.caption": {
            "zh": "以下网站可以获取您的信息：",
            "en": "These websites may receive your information:",
        },
        "consents.portal": {"zh": "网站", "en": "Website"},
        "consents.data": {"zh": "信息", "en": "Information"},
        "consents.since": {"zh": "授权日期", "en": "Since"},
        "consents.withdraw": {"zh": "撤回授权", "en": "Withdraw"},
        "consents.none": {
            "zh": "您尚未向任何网站授权。",
            "en": "You have not consented to any website.",
        },
        "logout.title": {"zh": "退出登录", "en": "Log out"},
        "logout.intro": {
            "zh": "确定要退出统一身份认证吗？",
            "en": "Do you want to log out of single sign-on?",
        },
        "logout.submit": {"zh": "退出", "en": "Log out"},
        "logout.done": {"zh": "已退出", "en": "Logged out"},
        "logout.done_intro": {
            "zh": "您已退出登录。",
            "en": "You are logged out.",
        },
    }
)
