"""An in-memory key store for tests only: keys live in a dict and die with the process."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from authority.pki.keystore import KeyAlgorithm, KeyInfo, KeyNotFound, KeyStore


class MemoryKeyStore(KeyStore):
    """A :class:`KeyStore` holding cryptography EC private keys in a dict (test use only)."""

    kind = "memory"

    def __init__(self) -> None:
        self._keys: dict[str, tuple[ec.EllipticCurvePrivateKey, KeyInfo]] = {}
        self._counter = itertools.count(1)
        self.sign_calls = 0

    def generate(self, label: str, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> KeyInfo:
        """Create a key pair labelled ``label``."""
        key = ec.generate_private_key(algorithm.curve)
        handle = f"mem-{next(self._counter)}"
        info = KeyInfo(
            handle=handle,
            label=label,
            algorithm=algorithm,
            created_at=datetime.now(UTC),
            public_key=key.public_key(),
        )
        self._keys[handle] = (key, info)
        return info

    def get(self, handle: str) -> KeyInfo:
        """Describe key ``handle``."""
        try:
            return self._keys[handle][1]
        except KeyError:
            raise KeyNotFound(f"no key {handle!r}") from None

    def sign(self, handle: str, data: bytes) -> bytes:
        """Sign ``data`` with key ``handle`` (DER ECDSA)."""
        if handle not in self._keys:
            raise KeyNotFound(f"no key {handle!r}")
        key, info = self._keys[handle]
        self.sign_calls += 1
        return key.sign(data, ec.ECDSA(info.algorithm.hash_algorithm))

    def all_keys(self) -> list[KeyInfo]:
        """Describe every key, oldest first."""
        return [info for _, info in self._keys.values()]

    def check(self) -> None:
        """Always usable."""
