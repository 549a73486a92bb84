"""What the token endpoint reads on every request, kept between requests.

A client-credentials token needs the client's registration and the current
token-signing key; reading both from the database was 43% of a token
request. :class:`ProviderCache` keeps copies of them for at most
:data:`CACHE_TTL`:

- a change committed through this process's :class:`~authority.db.session.Database`
  (a client added, changed, disabled or deleted; a key rotated) clears the
  cache when it commits, so it is seen by the next request;
- a change committed by another process (the CLI, another worker) is seen
  within :data:`CACHE_TTL`: a disabled client or changed secret can obtain
  tokens for at most that long after the change, and new tokens are signed
  with a rotated-out key for at most that long (it stays published, and its
  tokens verifiable, well beyond: ``publish_until`` is the token lifetime plus
  the clock skew after rotation).

Entries are copies attached to no session, never written back. Revocation is
not cached: bearer checks still read the revoked-token list on every use.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from authority.oidc.clients import find_client
from authority.oidc.models import OAuthClient, SigningKey
from authority.oidc.tokens import TOKEN_PURPOSE, current_signing_key

#: The longest a change committed by another process goes unseen, in seconds.
CACHE_TTL = 2.0
MAX_CLIENTS = 1024


def _copy(record: Any) -> Any:
    """A copy of ``record``'s column values in a new object that no session holds."""
    table = type(record).__table__
    return type(record)(**{c.key: getattr(record, c.key) for c in table.columns})


class ProviderCache:
    """Copies of clients and of the current token-signing key, each kept for ``ttl`` seconds."""

    def __init__(self, ttl: float = CACHE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, tuple[float, OAuthClient]] = OrderedDict()
        self._key: tuple[float, SigningKey] | None = None

    def client(self, session: Session, client_id: str) -> OAuthClient | None:
        """The enabled client ``client_id`` (unknown ones are looked up every time)."""
        now = self._clock()
        with self._lock:
            entry = self._clients.get(client_id)
            if entry is not None and entry[0] > now:
                return entry[1]
        record = find_client(session, client_id)
        if record is None:
            with self._lock:
                self._clients.pop(client_id, None)
            return None
        copy: OAuthClient = _copy(record)
        with self._lock:
            self._clients[client_id] = (now + self._ttl, copy)
            self._clients.move_to_end(client_id)
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        return copy

    def signing_key(self, session: Session) -> SigningKey | None:
        """The current token-signing key."""
        now = self._clock()
        with self._lock:
            if self._key is not None and self._key[0] > now:
                return self._key[1]
        record = current_signing_key(session, TOKEN_PURPOSE)
        copy: SigningKey | None = None if record is None else _copy(record)
        with self._lock:
            self._key = None if copy is None else (now + self._ttl, copy)
        return copy

    def held(self, client_id: str) -> tuple[OAuthClient, SigningKey] | None:
        """The client ``client_id`` and the signing key, if fresh copies of both are held:
        then a client-credentials token needs no database read."""
        now = self._clock()
        with self._lock:
            entry = self._clients.get(client_id)
            if entry is None or entry[0] <= now or self._key is None or self._key[0] <= now:
                return None
            return entry[1], self._key[1]

    def clear(self) -> None:
        """Forget everything: the next request reads the database."""
        with self._lock:
            self._clients.clear()
            self._key = None

    def changed(self, written: set[type[Any]]) -> None:
        """After a commit that wrote ``written`` classes: clear if clients or keys changed."""
        if OAuthClient in written or SigningKey in written:
            self.clear()
