"""The RFC 8785 fast path gives exactly rfc8785's bytes, and hands over what it cannot."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785

from authority.canonical import canonical_json

DOCUMENTS: list[Any] = [
    {"b": 1, "a": [True, False, None], "c": {"z": "", "y": -(2**53) + 1, "x": 2**53 - 1}},
    {"name": "张三", "quote": 'say "hi" \\ back', "controls": "\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f"},
    {"separators": "\u2028\u2029", "emoji": "😀 in a value", "bmp key é": "é"},
    {"\ue000": 1, "a": 2, "\u00e9": 3, "Z": 4, "": 5},
    [],
    {},
    "text",
    0,
]
# Outside the fast path: rfc8785 decides (floats, big integers, astral keys).
HANDED_OVER: list[Any] = [
    {"price": 1.5, "exp": 1e21, "small": 5e-7, "neg": -0.0},
    {"\U0001f600": 1, "\ue000": 2},  # UTF-16 order puts the surrogate pair first
]


@pytest.mark.parametrize("document", DOCUMENTS + HANDED_OVER)
def test_same_bytes_as_rfc8785(document: Any) -> None:
    assert canonical_json(document) == rfc8785.dumps(document)


def test_utf16_key_order_is_kept() -> None:
    assert canonical_json({"\U0001f600": 1, "\ue000": 2}) == '{"😀":1,"\ue000":2}'.encode()


@pytest.mark.parametrize("document", [{"n": 2**53}, {"s": "\ud800"}, {1: "x"}, {"f": float("nan")}])
def test_what_rfc8785_refuses_is_refused(document: Any) -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_json(document)
