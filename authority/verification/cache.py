"""What an online verification reads from the database, kept for a few seconds.

A QR verification needs the PKI's certificates with their revocation status
and the licence's status in the register; reading both was most of its cost.
:class:`StatusCache` keeps them for at most :data:`STATUS_TTL` seconds:

- a change committed through this process's :class:`~authority.db.session.Database`
  (a licence issued, revoked, suspended or reinstated; a seal certificate
  issued, rotated or revoked) clears the cache when it commits, so the next
  verification in this process reads the database (a read that was under way
  while it committed is returned but not kept);
- a change committed by another process (the CLI, another worker) is seen
  within :data:`STATUS_TTL`: a licence revoked there reads VALID here for at
  most that long. Reports say when the status they rely on was read
  (``status_as_of``, and the ``certificate-status`` check's wording).

Only successful look-ups are kept: a licence number the register does not
hold is looked up every time. When a licence's status must be read, the
statuses kept for other licences that were verified again since they were read
and expire within half of :data:`STATUS_TTL` are read in the same query (at
most :data:`READ_AT_ONCE`): a set of licences verified over and over costs one
query every couple of seconds rather than one per licence, and no status is
ever older than :data:`STATUS_TTL`. Immutable things (parsed certificates,
validated paths, what a sealed licence states, verified QR signatures) are
cached elsewhere without a time limit, bounded in size.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from authority.agencies.models import Agency
from authority.licences.models import Licence
from authority.pki.models import CertificateRecord

#: The longest a change committed by another process goes unseen, in seconds.
STATUS_TTL = 2.0
MAX_LICENCES = 20_000
#: The most licences whose status one read fetches (the one asked for included).
READ_AT_ONCE = 500

T = TypeVar("T")


class NotCached(Exception):
    """The answer needs the database, and the caller gave no session to read it with."""


class StatusCache:
    """The PKI's certificate status and licences' status, each kept for ``ttl`` seconds.

    Thread-safe. ``clock`` is monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        ttl: float = STATUS_TTL,
        clock: Callable[[], float] = time.monotonic,
        max_licences: int = MAX_LICENCES,
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._max_licences = max_licences
        self._lock = threading.Lock()
        self._pki: tuple[float, object] | None = None
        self._licences: OrderedDict[str, tuple[float, object]] = OrderedDict()
        # The numbers answered from memory since their status was read, and the same
        # as a heap of (expiry, number): the next to expire first.
        self._reused: set[str] = set()
        self._reused_by_expiry: list[tuple[float, str]] = []
        # Counts clears: a read that began before one is returned but not kept,
        # so a change committed here while another thread read is never hidden.
        self._generation = 0

    def pki(self, load: Callable[[], T]) -> T:
        """The PKI's state: kept if read less than ``ttl`` ago, else ``load()``-ed now."""
        now = self._clock()
        with self._lock:
            entry, generation = self._pki, self._generation
        if entry is not None and entry[0] > now:
            return cast(T, entry[1])
        value = load()
        with self._lock:
            if generation == self._generation:
                self._pki = (now + self._ttl, value)
        return value

    def licence(
        self,
        number: str,
        load: Callable[[], T | None],
        load_many: Callable[[Sequence[str]], dict[str, T]] | None = None,
    ) -> T | None:
        """Licence ``number``'s register row: kept, else ``load()``-ed (None is not kept).

        With ``load_many`` (the rows of the numbers given that the register holds), a
        read also refreshes the kept rows about to expire that were used again.
        """
        now = self._clock()
        with self._lock:
            entry, generation = self._licences.get(number), self._generation
            if entry is not None and entry[0] > now:
                self._licences.move_to_end(number)
                if number not in self._reused:
                    self._reused.add(number)
                    heapq.heappush(self._reused_by_expiry, (entry[0], number))
                return cast(T, entry[1])
            others = [] if load_many is None else self._expiring(now, number)
        if load_many is not None and others:
            found = load_many([number, *others])
            value = found.get(number)
        else:
            found, value = {}, load()
        with self._lock:
            if generation != self._generation:
                return value
            for other in others:
                self._keep(other, found.get(other), now)
            self._keep(number, value, now)
        return value

    def _expiring(self, now: float, number: str) -> list[str]:
        """Numbers other than ``number`` kept, used again, and expiring within ttl / 2."""
        soon, chosen, heap = now + self._ttl / 2, list[str](), self._reused_by_expiry
        while heap and heap[0][0] <= soon and len(chosen) < READ_AT_ONCE - 1:
            expiry, other = heapq.heappop(heap)
            entry = self._licences.get(other)
            # Not kept any more, or read again since (then pushed again if used again).
            if entry is not None and entry[0] == expiry and other != number:
                chosen.append(other)
        return chosen

    def _keep(self, number: str, value: object | None, now: float) -> None:
        """Keep ``value`` read at ``now`` for ``number`` (forget it if None); lock held."""
        self._reused.discard(number)
        if value is None:
            self._licences.pop(number, None)
            return
        expiry = now + self._ttl
        self._licences[number] = (expiry, value)
        self._licences.move_to_end(number)
        while len(self._licences) > self._max_licences:
            self._reused.discard(self._licences.popitem(last=False)[0])
        if len(self._reused_by_expiry) > 2 * self._max_licences:  # drop what is stale
            self._reused_by_expiry = [
                (expiry, n)
                for expiry, n in self._reused_by_expiry
                if n in self._reused and self._licences.get(n, (None,))[0] == expiry
            ]
            heapq.heapify(self._reused_by_expiry)

    def clear(self) -> None:
        """Forget everything: the next verification reads the database."""
        with self._lock:
            self._pki = None
            self._licences.clear()
            self._reused.clear()
            self._reused_by_expiry.clear()
            self._generation += 1

    def changed(self, written: set[type[Any]]) -> None:
        """After a commit that wrote ``written`` classes: clear if any it keeps changed."""
        if not written.isdisjoint(_KEPT):
            self.clear()


#: The classes whose rows the cache keeps (agencies: the codes certificates name).
_KEPT = frozenset({Licence, CertificateRecord, Agency})
