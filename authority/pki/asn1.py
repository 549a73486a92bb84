"""Small helpers over asn1crypto that keep signed bytes exactly as they were."""

from __future__ import annotations

from typing import Any

from asn1crypto import core


def original_bytes(value: Any) -> bytes:
    """The octets asn1crypto parsed ``value`` from: what was signed or hashed.

    Not ``dump()``: asn1crypto 1.5 re-encodes a value whose length octets end
    in 0x80 (taking them for the indefinite form) or once a DEFAULT field has
    been read, which may change the octets and costs time exponential in the
    nesting depth. A CHOICE gives its chosen alternative's octets.
    """
    if isinstance(value, core.Choice):
        return original_bytes(value.chosen)
    sequence = isinstance(value, core.Sequence | core.SequenceOf)
    return bytes(value._header + (value._contents if sequence else value.contents) + value._trailer)
