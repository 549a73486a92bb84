"""Page language negotiation and the message catalogue."""

from __future__ import annotations

import pytest

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
