"""Languages of the pages: negotiation (RFC 9110 §12.5.4 Accept-Language) and the message catalogue.

Pages speak Chinese and English. The language is, in order: the ``lang``
cookie set by the language switch, else the best match of the browser's
``Accept-Language``, else Chinese. Every message exists in both languages
(a test holds the catalogue to that).
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
#: The ``<html lang>`` value of each language (BCP 47).
HTML_LANG = {"zh": "zh-CN", "en": "en"}
LANGUAGE_COOKIE = "lang"


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                return 0.0
            return quality if 0.0 <= quality <= 1.0 else 0.0
    return 1.0


def negotiate(accept_language: str | None, cookie: str | None = None) -> str:
    """The page language for this cookie and ``Accept-Language`` header."""
    if cookie in LANGUAGES:
        return cookie
    best, best_quality = DEFAULT_LANGUAGE, 0.0
    for item in (accept_language or "")[:1024].split(","):
        tag, *parameters = item.split(";")
        primary = tag.strip().lower().split("-")[0]
        quality = _quality(parameters)
        if primary in LANGUAGES and quality > best_quality:
            best, best_quality = primary, quality
    return best


class Catalogue:
    """Messages by key, in each language; ``format`` fields are filled by the caller."""

    def __init__(self, messages: Mapping[str, Mapping[str, str]]) -> None:
        self.messages = dict(messages)

    def add(self, messages: Mapping[str, Mapping[str, str]]) -> None:
        """Add an area's messages; a key defined twice is a programming error."""
        clash = self.messages.keys() & messages.keys()
        if clash:
            raise ValueError(f"messages defined twice: {sorted(clash)}")
        self.messages.update(messages)

    def text(self, language: str, key: str, **fields: object) -> str:
        """The message ``key`` in ``language``, with ``fields`` substituted."""
        message = self.messages[key][language]
        return message.format(**fields) if fields else message


CATALOGUE = Catalogue(
    {
        "site.name": {"zh": "政务信任服务", "en": "Government Trust Service"},
        "site.tagline": {
            "zh": "统一身份认证、电子印章与证照核验",
            "en": "Single sign-on, electronic seals and licence verification",
        },
        "nav.skip": {"zh": "跳到正文", "en": "Skip to content"},
        "nav.home": {"zh": "首页", "en": "Home"},
        "nav.verify": {"zh": "核验证照", "en": "Verify a licence"},
        "nav.language": {"zh": "语言", "en": "Language"},
        "nav.main": {"zh": "主导航", "en": "Main"},
        "nav.developers": {"zh": "开发者", "en": "Developers"},
        "footer.trust_list": {"zh": "信任列表", "en": "Trust list"},
        "footer.api": {"zh": "接口文档", "en": "API reference"},
        "footer.discovery": {"zh": "OpenID 配置", "en": "OpenID configuration"},
        "home.intro": {
            "zh": "本服务为各政务网站提供统一登录，为各机关签发的电子证照加盖电子印章，"
            "并让任何人都能核验证照的真伪。",
            "en": "This service lets people log in once to every government website, seals the "
            "licences agencies issue, and lets anyone check that a licence is genuine.",
        },
        "home.verify": {
            "zh": "扫描证照上的二维码，或上传证照 PDF，立即查看是否有效。",
            "en": "Scan the QR code on a licence or upload its PDF to see at once "
            "whether it is valid.",
        },
        "home.account_title": {"zh": "登录我的账户", "en": "Log in to your account"},
        "home.account": {
            "zh": "查看并下载您和您所代表企业的证照，管理登录方式，了解哪些网站获取了您的信息。",
            "en": "See and download your licences and your businesses', manage how you log in, "
            "and see which websites received your information.",
        },
        "home.agency": {
            "zh": "供机关工作人员签发、查询和管理本机关的证照。",
            "en": "For agency staff: issue, find and manage your agency's licences.",
        },
        "home.developers": {
            "zh": "政务网站通过 OpenID Connect 接入统一登录；机关系统通过接口签发证照；"
            "信任列表可用于离线核验。",
            "en": "Government websites connect through OpenID Connect; agency systems issue "
            "licences through the API; the trust list lets anyone verify offline.",
        },
    }
)
