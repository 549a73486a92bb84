"""The status cache's rules: how long it keeps, what it forgets, what clears it."""

from __future__ import annotations

from collections.abc import Sequence

from authority.agencies.models import Agency
from authority.licences.models import Licence
from authority.oidc.models import OAuthClient
from authority.pki.models import CertificateRecord
from authority.verification.cache import StatusCache


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_kept_row_expires_after_the_ttl_and_absence_is_never_kept() -> None:
    clock, loads = Clock(), []
    cache = StatusCache(ttl=2.0, clock=clock)

    def load(value: str | None) -> str | None:
        loads.append(value)
        return value

    assert cache.licence("A-1", lambda: load("valid")) == "valid"
    assert cache.licence("A-1", lambda: load("revoked")) == "valid"
    clock.now += 1.999
    assert cache.licence("A-1", lambda: load("revoked")) == "valid"
    clock.now += 0.002
    assert cache.licence("A-1", lambda: load("revoked")) == "revoked"
    assert cache.licence("B-2", lambda: load(None)) is None
    assert cache.licence("B-2", lambda: load("valid")) == "valid"  # None was not kept
    assert loads == ["valid", "revoked", None, "valid"]


def test_the_oldest_licences_make_room_and_the_pki_state_expires() -> None:
    clock = Clock()
    cache = StatusCache(ttl=2.0, clock=clock, max_licences=2)
    for number in ("A", "B", "C"):
        cache.licence(number, lambda n=number: f"{n} read first")
    assert cache.licence("C", lambda: "again") == "C read first"
    assert cache.licence("A", lambda: "A read again") == "A read again"  # evicted
    assert cache.pki(lambda: "pki 1") == "pki 1"
    assert cache.pki(lambda: "pki 2") == "pki 1"
    clock.now += 2.0
    assert cache.pki(lambda: "pki 3") == "pki 3"


def test_commits_of_what_it_keeps_clear_it_others_do_not() -> None:
    cache = StatusCache(clock=Clock())
    for written, cleared in (
        ({OAuthClient}, False),
        ({Licence}, True),
        ({CertificateRecord}, True),
        ({Agency, OAuthClient}, True),
    ):
        cache.clear()
        cache.licence("A", lambda: "kept")
        cache.pki(lambda: "kept")
        cache.changed(written)
        assert (cache.licence("A", lambda: "read"), cache.pki(lambda: "read")) == (
            ("read", "read") if cleared else ("kept", "kept")
        ), written


def test_a_read_overtaken_by_a_change_here_is_not_kept() -> None:
    cache = StatusCache(clock=Clock())

    def read_during_a_commit(value: str) -> str:
        cache.changed({Licence})  # another thread commits while this one reads
        return value

    assert cache.licence("A", lambda: read_during_a_commit("valid")) == "valid"
    assert cache.licence("A", lambda: "revoked") == "revoked"
    assert cache.pki(lambda: read_during_a_commit("before")) == "before"
    assert cache.pki(lambda: "after") == "after"


def test_a_read_also_refreshes_statuses_used_again_that_are_about_to_expire() -> None:
    clock, batches = Clock(), []
    cache = StatusCache(ttl=2.0, clock=clock)

    def many(numbers: Sequence[str]) -> dict[str, str]:
        batches.append(list(numbers))
        return {n: f"{n} at {clock.now}" for n in numbers if n != "GONE"}

    for number in ("A", "B", "C", "GONE"):  # nothing kept is expiring: each read alone
        assert cache.licence(number, lambda n=number: f"{n} first", many) == f"{number} first"
    clock.now += 0.5
    assert cache.licence("A", lambda: "not read", many) == "A first"  # used again
    assert cache.licence("GONE", lambda: "not read", many) == "GONE first"
    clock.now += 1.6
    # B's status must be read: A's and GONE's (used again, about to expire) are read with
    # it, C's (not used again) is not; a number the register no longer holds is forgotten.
    assert cache.licence("B", lambda: "B alone", many) == "B at 52.1"
    assert batches == [["B", "A", "GONE"]]
    assert cache.licence("A", lambda: "not read", many) == "A at 52.1"
    assert cache.licence("C", lambda: "C alone", many) == "C alone"
    assert cache.licence("GONE", lambda: None, many) is None
    clock.now += 1.999
    assert cache.licence("A", lambda: "not read", many) == "A at 52.1"
    clock.now += 0.002  # never older than the ttl, however it was read
    assert cache.licence("A", lambda: "A alone", many) == "A alone"  # no other used again
    assert len(batches) == 1
    cache.clear()
    assert cache.licence("B", lambda: "B after a clear", many) == "B after a clear"


def test_a_status_used_again_only_after_a_nearby_read_is_read_along_later() -> None:
    clock, batches = Clock(), []
    cache = StatusCache(ttl=2.0, clock=clock)

    def many(numbers: Sequence[str]) -> dict[str, str]:
        batches.append(list(numbers))
        return {n: f"{n} at {clock.now}" for n in numbers}

    for number in ("A", "D"):
        cache.licence(number, lambda n=number: f"{n} first", many)
    clock.now = 50.5
    cache.licence("B", lambda: "B first", many)
    clock.now = 52.0  # B expires within the second but was not used again: not read along
    assert cache.licence("A", lambda: "A alone", many) == "A alone"
    clock.now = 52.1
    assert cache.licence("B", lambda: "not read", many) == "B first"  # used again now
    clock.now = 52.4
    assert cache.licence("D", lambda: "D alone", many) == "D at 52.4"
    assert batches == [["D", "B"]]
    assert cache.licence("B", lambda: "not read", many) == "B at 52.4"
