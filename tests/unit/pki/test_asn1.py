"""Strict DER: what a BER reader would skip or tolerate is refused."""

from __future__ import annotations

import pytest

from authority.pki.asn1 import check_strict_der, der_integer, der_tlv

SEQUENCE = 0x30


def test_strict_der_is_accepted_and_its_end_returned() -> None:
    inner = der_tlv(SEQUENCE, der_integer(1) + der_tlv(0x04, b"x" * 200))
    data = der_tlv(SEQUENCE, inner + der_integer(-5)) + b"\x00\x00"
    assert check_strict_der(data) == len(data) - 2


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # a length in more octets than needed (X.690 §10.1)
        (bytes([SEQUENCE, 0x81, 0x03]) + der_integer(1), "shortest"),
        # end-of-contents octets inside a definite-length SEQUENCE
        (der_tlv(SEQUENCE, der_integer(1) + b"\x00\x00"), "end-of-contents"),
        # a SEQUENCE whose last element runs past it
        (bytes([SEQUENCE, 0x03]) + der_integer(300), "past"),
        # BER's indefinite length
        (bytes([SEQUENCE, 0x80]) + der_integer(1) + b"\x00\x00", "length"),
        # a stray octet after the last element
        (der_tlv(SEQUENCE, der_integer(1) + b"\x05"), "truncated"),
    ],
)
def test_what_is_not_strict_der_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_strict_der(data)


def test_nesting_is_bounded() -> None:
    data = der_integer(0)
    for _ in range(70):
        data = der_tlv(SEQUENCE, data)
    with pytest.raises(ValueError, match="deeply"):
        check_strict_der(data)
