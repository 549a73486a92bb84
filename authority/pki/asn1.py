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


# -- DER assembled from pieces (X.690) ----------------------------------------------------
# Signers encode what a certificate fixes once, then join per-signature pieces with these:
# asn1crypto's object model costs far more than the signature itself.


def der_tlv(tag: int, body: bytes) -> bytes:
    """One DER element (X.690 §8.1.3, §10.1: definite length in the fewest octets)."""
    size = len(body)
    if size < 0x80:
        return bytes((tag, size)) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + body


def der_integer(value: int, tag: int = 0x02) -> bytes:
    """An INTEGER in the fewest two's complement octets (X.690 §8.3.2)."""
    magnitude = value if value >= 0 else ~value
    return der_tlv(tag, value.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True))


def der_oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER, or a name asn1crypto maps to one, as DER."""
    return bytes(core.ObjectIdentifier(dotted).dump())


def der_span(data: bytes, offset: int = 0, end: int | None = None) -> tuple[int, int, int]:
    """The element at ``offset``: (tag, start of its contents, end of it). Raises ValueError.

    Reads the header only, copying nothing. Single-octet tags and definite lengths
    only, which is all DER structures here use; anything else, or a length past
    ``end`` (default: the end of ``data``), is refused.
    """
    if end is None:
        end = len(data)
    if offset + 2 > end:
        raise ValueError("truncated DER element")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-octet DER tags are not supported")
    start = offset + 2
    if first & 0x80:
        count = first & 0x7F
        if not 0 < count <= 4 or start + count > end:
            raise ValueError("unsupported DER length")
        size = int.from_bytes(data[start : start + count], "big")
        start += count
    else:
        size = first
    if start + size > end:
        raise ValueError("DER element runs past its container")
    return tag, start, start + size


def der_child(data: bytes, start: int, end: int, index: int) -> tuple[int, int, int]:
    """:func:`der_span` of the ``index``-th element of the contents ``data[start:end]``."""
    for _ in range(index):
        start = der_span(data, start, end)[2]
    return der_span(data, start, end)


def der_read(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """The element at ``offset``: (tag, contents, offset after it). Raises ValueError.

    Single-octet tags and definite lengths only, which is all DER structures
    here use; anything else, or a length past the end, is refused.
    """
    tag, start, end = der_span(data, offset)
    return tag, data[start:end], end


def der_children(contents: bytes) -> list[tuple[int, bytes]]:
    """The (tag, contents) of each element of a constructed value's ``contents``."""
    children = []
    offset = 0
    while offset < len(contents):
        tag, body, offset = der_read(contents, offset)
        children.append((tag, body))
    return children


def check_strict_der(data: bytes, offset: int = 0, end: int | None = None, depth: int = 0) -> int:
    """Raise ValueError unless ``data[offset:end]`` is one element in strict DER form;
    return the offset after it.

    X.690 §10.1: definite lengths in the fewest octets; every constructed
    element's contents are exactly its elements, with no octet before, between or
    after them (BER readers, asn1crypto among them, skip what a signature does
    not cover, such as octets a changed length lets in). Primitive contents are
    not read.
    """
    if depth > 64:
        raise ValueError("DER nested too deeply")
    tag, start, stop = der_span(data, offset, end)
    if tag == 0:  # X.690 §8.1.5: end-of-contents octets belong to BER's indefinite form
        raise ValueError("end-of-contents octets in DER")
    size = stop - start
    header = start - offset
    if header != (2 if size < 0x80 else 2 + (size.bit_length() + 7) // 8):
        raise ValueError("DER length not in its shortest form")
    if tag & 0x20:  # constructed: its contents are elements, end to end
        child = start
        while child < stop:
            child = check_strict_der(data, child, stop, depth + 1)
    return stop
