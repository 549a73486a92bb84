"""The key store interface: where private keys live and how they sign.

Private keys never leave a key store. Callers hold a *handle* (a short string
naming the key inside its store) and ask the store to sign; the store answers
with a DER-encoded ECDSA signature (X9.62 ``Ecdsa-Sig-Value``, the form X.509,
CMS and OCSP carry). Two implementations exist: an encrypted PKCS#8 file store
(``authority.pki.file_keystore``) and a PKCS#11 token store
(``authority.pki.pkcs11_keystore``).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from authority.errors import AuthorityError, NotFound, Unavailable


class KeyAlgorithm(enum.Enum):
    """Key types a store can generate; each fixes its curve and its hash."""

    EC_P256 = "EC-P256"
    EC_P384 = "EC-P384"

    @property
    def curve(self) -> ec.EllipticCurve:
        """The elliptic curve of keys of this type."""
        return ec.SECP256R1() if self is KeyAlgorithm.EC_P256 else ec.SECP384R1()

    @property
    def hash_algorithm(self) -> hashes.SHA256 | hashes.SHA384:
        """The digest signed with keys of this type (SHA-256 for P-256, SHA-384 for P-384)."""
        return hashes.SHA256() if self is KeyAlgorithm.EC_P256 else hashes.SHA384()

    @property
    def jws_alg(self) -> str:
        """The JWS ``alg`` name of signatures by keys of this type (RFC 7518 §3.4)."""
        return "ES256" if self is KeyAlgorithm.EC_P256 else "ES384"


class KeyNotFound(NotFound):
    """No key with that handle exists in the store."""

    slug = "key-not-found"
    title = "Key not found"


class KeyStoreError(AuthorityError):
    """The store could not carry out an operation (locked, corrupt, token absent)."""

    slug = "key-store"
    title = "Key store failure"
    status = 500


class KeyStoreUnavailable(Unavailable):
    """The store cannot be opened (wrong passphrase or PIN, missing module or token)."""

    slug = "key-store-unavailable"
    title = "Key store unavailable"


@dataclass(frozen=True)
class KeyInfo:
    """What may be known of a key without touching its private part."""

    handle: str
    label: str
    algorithm: KeyAlgorithm
    created_at: datetime
    public_key: ec.EllipticCurvePublicKey


class Signer:
    """One key of one store, bound for signing: what certificate and CMS code needs."""

    def __init__(self, store: KeyStore, info: KeyInfo) -> None:
        self._store = store
        self.info = info

    @property
    def handle(self) -> str:
        """The key's handle in its store."""
        return self.info.handle

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half of the key."""
        return self.info.public_key

    @property
    def algorithm(self) -> KeyAlgorithm:
        """The key's type, which fixes its hash."""
        return self.info.algorithm

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (hashed with the key type's hash); return a DER ECDSA signature."""
        return self._store.sign(self.info.handle, data)


class KeyStore(ABC):
    """Generates keys and signs with them; private keys never leave it."""

    kind: str = "abstract"

    @abstractmethod
    def generate(self, label: str, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> KeyInfo:
        """Create a new key pair labelled ``label`` and return its description."""

    @abstractmethod
    def get(self, handle: str) -> KeyInfo:
        """Describe the key ``handle``; raise :class:`KeyNotFound` if there is none."""

    @abstractmethod
    def sign(self, handle: str, data: bytes) -> bytes:
        """Sign ``data`` with key ``handle``; return a DER-encoded ECDSA signature."""

    @abstractmethod
    def all_keys(self) -> list[KeyInfo]:
        """Describe every key in the store, oldest first."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`KeyStoreUnavailable` unless the store can sign now."""

    def signer(self, handle: str) -> Signer:
        """Bind key ``handle`` for signing."""
        return Signer(self, self.get(handle))

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing open
        """Release what the store holds open (sessions, file handles)."""
