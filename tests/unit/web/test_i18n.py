"""Page language negotiation and the message catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import authority.web.verify_view  # noqa: F401 - registers the verification page's messages
from authority.web.i18n import CATALOGUE, LANGUAGES, Catalogue, negotiate


@pytest.mark.parametrize(
    ("header", "cookie", "expected"),
    [
        (None, None, "zh"),
        ("en-GB,en;q=0.9", None, "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
        ("fr-FR,en;q=0.5,zh;q=0.4", None, "en"),
        ("en;q=0.2,zh-TW;q=0.8", None, "zh"),
        ("en;q=abc", None, "zh"),
        ("en;q=2", None, "zh"),
        ("de", None, "zh"),
        ("en", "zh", "zh"),
        ("zh", "en", "en"),
        ("en", "xx", "en"),
    ],
)
def test_negotiation(header: str | None, cookie: str | None, expected: str) -> None:
    assert negotiate(header, cookie) == expected


def test_every_message_exists_in_every_language() -> None:
    missing = [
        (key, language)
        for key, texts in CATALOGUE.messages.items()
        for language in LANGUAGES
        if not texts.get(language)
    ]
    assert missing == []


def test_a_key_defined_twice_is_refused() -> None:
    catalogue = Catalogue({"a": {"zh": "甲", "en": "A"}})
    with pytest.raises(ValueError, match="defined twice"):
        catalogue.add({"a": {"zh": "乙", "en": "B"}})
    assert catalogue.text("en", "a") == "A"


def test_every_check_the_verifier_makes_has_a_name_on_the_page() -> None:

    import authority.verification as package

    source = "".join(p.read_text() for p in Path(package.__path__[0]).glob("*.py"))
    names = set(
        re.findall(r'(?:check\(|SealFailure\(\s*SubIndication\.\w+,)\s*"([a-z-]+)"', source)
    )
    names |= set(re.findall(r'Check\(\s*"([a-z-]+)"', source))
    assert names >= {"qr-seal", "certificate-path", "register", "trust-anchor"}
    assert sorted(n for n in names if f"check.{n}" not in CATALOGUE.messages) == []
