"""Check characters of resident identity numbers (GB 11643) and USCCs (GB 32100)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authority.identity.identifiers import (
    USCC_ALPHABET,
    InvalidIdentifier,
    resident_check_character,
    uscc_check_character,
    validate_resident_id,
    validate_uscc,
)

# Published examples: GB 11643-1999 Appendix (the standard's own sample) and the
# widely cited GB 32100 sample code.
RESIDENT_SAMPLE = "11010519491231002X"
USCC_SAMPLE = "91350100M000100Y43"


def test_published_samples_are_valid() -> None:
    assert validate_resident_id(RESIDENT_SAMPLE) == RESIDENT_SAMPLE
    assert validate_resident_id(" 11010519491231002x ") == RESIDENT_SAMPLE
    assert validate_uscc(USCC_SAMPLE) == USCC_SAMPLE


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("110105194912310021", "has check character 1, expected X"),
        ("11010519491331002X", "has no valid birth date (19491331)"),
        ("11010518491231002X", "impossible birth date 1849-12-31"),
        ("1101051949123100", "must be 17 digits and a check character"),
        ("11010519491231002Y", "must be 17 digits and a check character"),
    ],
)
def test_bad_resident_numbers_say_what_is_wrong(number: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_resident_id(number)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("91350100M000100Y44", "has check character 4, expected 3"),
        ("91350100M000100I43", "no I, O, S, V or Z"),
        ("91350100M000100Y4", "must be 18 characters"),
    ],
)
def test_bad_usccs_say_what_is_wrong(code: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier, match=message):
        validate_uscc(code)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_resident_check_character_round_trip(first17: str) -> None:
    body = "110105" + "19800101" + first17[14:]  # a valid address-free date part
    number = body + resident_check_character(body)
    assert validate_resident_id(number) == number
    for wrong in "0123456789X":
        if wrong != number[-1]:
            with pytest.raises(InvalidIdentifier):
                validate_resident_id(body + wrong)


@given(st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17))
def test_uscc_check_character_round_trip(first17: str) -> None:
    code = first17 + uscc_check_character(first17)
    assert validate_uscc(code) == code
    wrong = next(c for c in USCC_ALPHABET if c != code[-1])
    with pytest.raises(InvalidIdentifier):
        validate_uscc(first17 + wrong)


@given(st.text(min_size=0, max_size=40))
def test_arbitrary_text_never_escapes_as_another_error(text: str) -> None:
    for validate in (validate_resident_id, validate_uscc):
        with contextlib.suppress(InvalidIdentifier):
            validate(text)
