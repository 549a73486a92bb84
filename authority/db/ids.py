"""Time-ordered identifiers: UUID version 7 (RFC 9562 §5.7).

A UUIDv7 starts with the Unix time in milliseconds, so rows keyed by it are
appended at the end of their B-tree indexes instead of at random places: a
batch of new rows touches a few index pages, not one page per row, which is
what the database writes to its log at each commit. The 74 bits after the
version and variant are random (RFC 9562 §6.9: not a secret, and not treated
as one: every path naming such an identifier is authenticated).
"""

from __future__ import annotations

import os
import time
import uuid

_MILLIS = (1 << 48) - 1
_RAND_A = (1 << 12) - 1
_RAND_B = (1 << 62) - 1


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A new UUIDv7 for the current time (or ``unix_ms``, milliseconds since 1970)."""
    if unix_ms is None:
        unix_ms = time.time_ns() // 1_000_000
    if not 0 <= unix_ms <= _MILLIS:
        raise ValueError("unix_ms must fit 48 bits (RFC 9562 §5.7)")
    random = int.from_bytes(os.urandom(10), "big")
    value = (
        unix_ms << 80  # unix_ts_ms: 48 bits, big-endian
        | 0x7 << 76  # ver: 0b0111
        | (random >> 64 & _RAND_A) << 64  # rand_a: 12 bits
        | 0b10 << 62  # var: 0b10 (RFC 9562 §4.1)
        | random & _RAND_B  # rand_b: 62 bits
    )
    return uuid.UUID(int=value)
