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
hold is looked up every time. Immutable things (parsed certificates,
validated paths, what a sealed licence states, verified QR signatures) are
cached elsewhere without a time limit, bounded in size.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

from authority.agencies.models import Agency
from authority.licences.models import Licence
from authority.pki.models import CertificateRecord

#: The longest a change committed by another process goes unseen, in seconds.
STATUS_TTL = 2.0
MAX_LICENCES = 20_000

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

    def licence(self, number: str, load: Callable[[], T | None]) -> T | None:
        """Licence ``number``'s register row: kept, else ``load()``-ed (None is not kept)."""
        now = self._clock()
        with self._lock:
            entry, generation = self._licences.get(number), self._generation
            if entry is not None and entry[0] > now:
                self._licences.move_to_end(number)
                return cast(T, entry[1])
        value = load()
        with self._lock:
            if generation != self._generation:
                return value
            if value is None:
                self._licences.pop(number, None)
                return None
            self._licences[number] = (now + self._ttl, value)
            self._licences.move_to_end(number)
            while len(self._licences) > self._max_licences:
                self._licences.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget everything: the next verification reads the database."""
        with self._lock:
            self._pki = None
            self._licences.clear()
            self._generation += 1

    def changed(self, written: set[type[Any]]) -> None:
        """After a commit that wrote ``written`` classes: clear if any it keeps changed."""
        if not written.isdisjoint(_KEPT):
            self.clear()


#: The classes whose rows the cache keeps (agencies: the codes certificates name).
_KEPT = frozenset({Licence, CertificateRecord, Agency})
