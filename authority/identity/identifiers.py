"""National identifiers with check characters.

- Resident identity number (GB 11643-1999): 17 digits (6-digit address code,
  8-digit birth date, 3-digit sequence) and a check character computed with
  ISO 7064 MOD 11-2, written ``X`` for 10.
- Unified social credit code (GB 32100-2015): 17 characters from a 31-symbol
  alphabet (digits and capitals without I, O, Z, S, V) and a mod-31 check
  character.

Both validators return the normalised number (upper case) or raise
:class:`InvalidIdentifier` saying what is wrong, including which check
character was expected.
"""

from __future__ import annotations

import operator
import re
from datetime import date

from authority.errors import InvalidInput


class InvalidIdentifier(InvalidInput):
    """A resident identity number or unified social credit code is malformed."""

    slug = "invalid-identifier"
    title = "Invalid identifier"


# ISO 7064 MOD 11-2: weight of position i (1-based from the left, 17 digits) is 2^(18-i) mod 11.
_RESIDENT_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_RESIDENT_OFFSET = ord("0") * sum(_RESIDENT_WEIGHTS)
_RESIDENT_CHECK = "10X98765432"  # check character for (sum mod 11) = 0..10
_RESIDENT_FORM = re.compile(r"^[0-9]{17}[0-9X]$")

# GB 32100-2015 §4.2: the code's character set and the weights of positions 1..17.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
_USCC_FORM = re.compile(rf"^[{USCC_ALPHABET}]{{18}}$")


def resident_check_character(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    if len(first17) != len(_RESIDENT_WEIGHTS) or not (first17.isascii() and first17.isdigit()):
        raise ValueError("a resident identity number's first 17 characters are digits")
    # Each digit's ASCII code is 48 more than its value: the weighted sum of the codes,
    # less 48 times the weights' sum, is the weighted sum of the digits.
    total = sum(map(operator.mul, first17.encode("ascii"), _RESIDENT_WEIGHTS))
    return _RESIDENT_CHECK[(total - _RESIDENT_OFFSET) % 11]


def validate_resident_id(number: str) -> str:
    """The resident identity number in canonical form, or :class:`InvalidIdentifier`."""
    candidate = number.strip().upper()
    if not _RESIDENT_FORM.match(candidate):
        raise InvalidIdentifier(
            f"resident identity number {number!r} must be 17 digits and a check "
            "character (0-9 or X), 18 characters in all"
        )
    try:
        birth = date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError:
        raise InvalidIdentifier(
            f"resident identity number {candidate} has no valid birth date ({candidate[6:14]})"
        ) from None
    if birth.year < 1900 or birth > date.today():
        raise InvalidIdentifier(
            f"resident identity number {candidate} has an impossible birth date {birth}"
        )
    expected = resident_check_character(candidate[:17])
    if candidate[17] != expected:
        raise InvalidIdentifier(
            f"resident identity number {candidate} has check character {candidate[17]}, "
            f"expected {expected} (GB 11643, ISO 7064 MOD 11-2)"
        )
    return candidate


def uscc_check_character(first17: str) -> str:
    """The GB 32100 check character of the first 17 characters."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str:
    """The unified social credit code in canonical form, or :class:`InvalidIdentifier`."""
    candidate = code.strip().upper()
    if not _USCC_FORM.match(candidate):
        raise InvalidIdentifier(
            f"unified social credit code {code!r} must be 18 characters of "
            f"{USCC_ALPHABET} (no I, O, S, V or Z)"
        )
    expected = uscc_check_character(candidate[:17])
    if candidate[17] != expected:
        raise InvalidIdentifier(
            f"unified social credit code {candidate} has check character {candidate[17]}, "
            f"expected {expected} (GB 32100)"
        )
    return candidate
