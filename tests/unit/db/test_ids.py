"""UUIDv7 identifiers (RFC 9562 §5.7)."""

from __future__ import annotations

import time
import uuid

import pytest

from authority.db.ids import uuid7


def test_layout_is_rfc_9562_version_7() -> None:
    moment = 1_796_000_000_123  # 2026-11-30T00:53:20.123Z, in milliseconds
    value = uuid7(moment)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == moment  # unix_ts_ms, the first 48 bits
    assert str(value)[:13] == f"{moment:012x}"[:8] + "-" + f"{moment:012x}"[8:]


def test_later_milliseconds_sort_later_and_the_rest_is_random() -> None:
    now = time.time_ns() // 1_000_000
    first, second = uuid7(now), uuid7(now + 1)
    assert str(first) < str(second)
    same = {uuid7(now) for _ in range(1000)}
    assert len(same) == 1000
    assert abs((uuid7().int >> 80) - now) < 60_000


@pytest.mark.parametrize("moment", [-1, 1 << 48])
def test_a_time_outside_48_bits_is_refused(moment: int) -> None:
    with pytest.raises(ValueError, match="48 bits"):
        uuid7(moment)
