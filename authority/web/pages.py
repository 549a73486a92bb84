"""Server-rendered pages: the Jinja2 environment, the page language and the language switch.

Every page extends ``templates/base.html``; :func:`render` gives it the
language, the message function ``t`` and the URL of the other language.
Templates autoescape everything (a licence holder named ``<script>`` is text);
pages load only same-origin CSS and script files (the Content-Security-Policy
forbids inline script).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from authority.web.i18n import CATALOGUE, HTML_LANG, LANGUAGE_COOKIE, LANGUAGES, negotiate

TEMPLATES_DIR = Path(__file__).parent / "templates"
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600

environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)


def page_language(request: Request) -> str:
    """The language this request's page is rendered in."""
    return negotiate(request.headers.get("accept-language"), request.cookies.get(LANGUAGE_COOKIE))


def _local_path(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def switch_url(request: Request, language: str) -> str:
    """The language switch's link: sets ``language`` and comes back to this page."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/language?" + urlencode({"to": language, "next": here})


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` in the request's language."""
    language = page_language(request)
    other = "en" if language == "zh" else "zh"

    def t(key: str, **fields: object) -> str:
        return CATALOGUE.text(language, key, **fields)

    html = environment.get_template(template).render(
        {
            "lang": language,
            "html_lang": HTML_LANG[language],
            "t": t,
            "other_language": other,
            "other_language_url": switch_url(request, other),
            "path": request.url.path,
            **(context or {}),
        }
    )
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Content-Language"] = HTML_LANG[language]
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/")
def home(request: Request) -> HTMLResponse:
    """The home page: what this authority is and where to go."""
    return render(request, "home.html")


@router.get("/language")
def switch_language(to: str = "zh", next: str = "/") -> RedirectResponse:
    """Remember the chosen language in a cookie and go back to the page."""
    response = RedirectResponse(_local_path(next), status_code=303)
    if to in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            to,
            max_age=LANGUAGE_COOKIE_MAX_AGE,
            httponly=True,
            samesite="lax",
            path="/",
        )
    return response
