"""The file key store: each private key encrypted at rest under one passphrase.

The directory (mode 0700) holds, per key, two files named by its handle:

``<handle>.pem``
    The private key as a PKCS#8 ``EncryptedPrivateKeyInfo`` (RFC 5958 §3) in
    PEM form ``ENCRYPTED PRIVATE KEY`` (RFC 7468 §11), encrypted with PBES2
    (RFC 8018 §6.2): PBKDF2-HMAC-SHA256 with a random 16-byte salt and
    600 000 iterations, then AES-256-CBC. OpenSSL and ``cryptography`` read it
    as written. (``cryptography``'s own ``BestAvailableEncryption`` uses only
    2 048 PBKDF2 iterations for PKCS#8, too few for keys at rest.)
``<handle>.json``
    The metadata sidecar: handle, label, algorithm, creation time (UTC, ISO
    8601) and public key, so describing keys needs no decryption; an
    HMAC-SHA256 over it, under a key derived from the passphrase, keeps anyone
    who can write the directory but lacks the passphrase from substituting the
    public key (which the CA would then certify).

``.keystore.json`` holds the random salt of that MAC key. Every file is
written whole (temporary file, fsync, rename) with mode 0600; nothing
unencrypted ever reaches the disk. Decrypted keys stay in memory, by handle,
from first use, so signing costs one ECDSA operation.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import stat
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import algos, core, keys, pem
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from authority.errors import ConfigurationError, InvalidInput
from authority.pki.keystore import (
    KeyAlgorithm,
    KeyInfo,
    KeyNotFound,
    KeyStore,
    KeyStoreError,
    KeyStoreUnavailable,
)

PBKDF2_ITERATIONS = 600_000
_PEM_LABEL = b"ENCRYPTED PRIVATE KEY"  # RFC 7468 §11
"""PBKDF2-HMAC-SHA256 work factor (OWASP's 2023 recommendation for that PRF)."""

HANDLE_PATTERN = re.compile(r"k-[0-9a-f]{16}")
"""A file store handle: ``k-`` and 16 lower-case hex digits, nothing else."""

_FORMAT = 1
_STORE_FILE = ".keystore.json"
_PASSPHRASE_SETTING = "AUTHORITY_KEYSTORE_PASSPHRASE"  # noqa: S105 - a setting name
_DIR_SETTING = "AUTHORITY_KEYS_DIR"
_MAX_LABEL = 128
_MIN_PASSPHRASE_CHARS = 16
_MIN_PASSPHRASE_BITS = 60


def validate_key_label(label: str) -> str:
    """Return ``label`` if it can name a key (1-128 characters, no control characters)."""
    if not isinstance(label, str) or not 0 < len(label) <= _MAX_LABEL:
        raise InvalidInput(f"a key label must be 1 to {_MAX_LABEL} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in label):
        raise InvalidInput("a key label must not contain control characters")
    return label


def passphrase_strength_problem(passphrase: str) -> str | None:
    """Say why ``passphrase`` is too weak to protect production keys, or None if it is not.

    The estimate is deliberately simple: each new character is worth
    log2(size of the character classes used), each repeated one 1 bit. It is
    a floor that rejects short or repetitive passphrases, not proof of
    strength (it knows no dictionary).
    """
    if len(passphrase) < _MIN_PASSPHRASE_CHARS:
        return (
            f"{_PASSPHRASE_SETTING} has {len(passphrase)} characters; "
            f"use at least {_MIN_PASSPHRASE_CHARS}"
        )
    pool = 0
    pool += 26 if any(c.islower() and c.isascii() for c in passphrase) else 0
    pool += 26 if any(c.isupper() and c.isascii() for c in passphrase) else 0
    pool += 10 if any(c.isdigit() and c.isascii() for c in passphrase) else 0
    pool += 33 if any(c.isascii() and not c.isalnum() for c in passphrase) else 0
    pool += 100 if any(not c.isascii() for c in passphrase) else 0
    distinct = len(set(passphrase))
    bits = distinct * math.log2(max(pool, 2)) + (len(passphrase) - distinct)
    if bits < _MIN_PASSPHRASE_BITS:
        return (
            f"{_PASSPHRASE_SETTING} is too predictable (about {bits:.0f} bits, "
            f"{_MIN_PASSPHRASE_BITS} needed); use a longer passphrase with varied characters"
        )
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _encrypt_pkcs8(key: ec.EllipticCurvePrivateKey, passphrase: bytes) -> bytes:
    """PEM ``ENCRYPTED PRIVATE KEY`` of ``key``: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC."""
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, iv = secrets.token_bytes(16), secrets.token_bytes(16)
    kek = PBKDF2HMAC(hashes.SHA256(), 32, salt, PBKDF2_ITERATIONS).derive(passphrase)
    padder = padding.PKCS7(128).padder()  # RFC 8018 §B.2.5: aes256-CBC-Pad
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    info = keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": algos.Pbkdf2Salt(name="specified", value=salt),
                            "iteration_count": PBKDF2_ITERATIONS,
                            # RFC 8018 §B.1.2: the PRF's parameters SHALL be NULL.
                            "prf": {"algorithm": "sha256", "parameters": core.Null()},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": encrypted,
        }
    )
    armored: bytes = pem.armor(_PEM_LABEL.decode("ascii"), info.dump())
    return armored


class FileKeyStore(KeyStore):
    """Keys in a directory, each encrypted under the store passphrase."""

    kind = "file"

    def __init__(self, directory: Path, passphrase: str) -> None:
        if not passphrase:
            raise ConfigurationError(f"{_PASSPHRASE_SETTING} must be set for the file key store")
        self.directory = Path(directory)
        self._passphrase = passphrase.encode("utf-8")
        self._lock = threading.RLock()
        self._mac_key: bytes | None = None
        self._infos: dict[str, KeyInfo] = {}
        self._signers: dict[str, tuple[ec.EllipticCurvePrivateKey, ec.ECDSA]] = {}
        try:
            if not self.directory.exists():
                self.directory.mkdir(mode=0o700, parents=True)
                self.directory.chmod(0o700)
        except OSError as exc:
            raise KeyStoreUnavailable(
                f"cannot create the key directory {self.directory} ({exc.strerror}); "
                f"check {_DIR_SETTING}"
            ) from exc

    # -- the KeyStore interface ------------------------------------------------

    def generate(self, label: str, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> KeyInfo:
        """Create a key pair labelled ``label``, store it encrypted and describe it."""
        validate_key_label(label)
        key = ec.generate_private_key(algorithm.curve)
        with self._lock:
            self._verify_passphrase()  # never mix keys under two passphrases
            mac_key = self._get_mac_key(create=True)
            handle = "k-" + secrets.token_hex(8)
            while self._pem_path(handle).exists() or self._json_path(handle).exists():
                handle = "k-" + secrets.token_hex(8)  # pragma: no cover - 2^-64 odds
            created_at = datetime.now(UTC)
            public_pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            fields: dict[str, Any] = {
                "format": _FORMAT,
                "handle": handle,
                "label": label,
                "algorithm": algorithm.value,
                "created_at": created_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "public_key": public_pem.decode("ascii"),
            }
            fields["mac"] = _b64(hmac.digest(mac_key, _canonical(fields), hashlib.sha256))
            self._write(self._pem_path(handle), _encrypt_pkcs8(key, self._passphrase))
            try:
                self._write(self._json_path(handle), _canonical(fields) + b"\n")
            except BaseException:
                self._pem_path(handle).unlink(missing_ok=True)
                raise
            info = KeyInfo(handle, label, algorithm, created_at, key.public_key())
            self._infos[handle] = info
            self._signers[handle] = (key, ec.ECDSA(algorithm.hash_algorithm))
            return info

    def get(self, handle: str) -> KeyInfo:
        """Describe key ``handle`` from its sidecar, whose MAC must verify."""
        info = self._infos.get(handle)
        if info is not None:
            return info
        self._require_handle(handle)
        with self._lock:
            info = self._read_info(handle)
            self._infos[handle] = info
            return info

    def sign(self, handle: str, data: bytes) -> bytes:
        """Sign ``data`` with key ``handle`` (ECDSA, the key type's hash); return DER."""
        entry = self._signers.get(handle)
        if entry is None:
            entry = self._load_signer(handle)
        key, scheme = entry
        # cryptography returns the DER Ecdsa-Sig-Value of RFC 3279 §2.2.3.
        return key.sign(data, scheme)

    def all_keys(self) -> list[KeyInfo]:
        """Describe every key in the directory, oldest first."""
        infos = [self.get(handle) for handle in self._handles()]
        return sorted(infos, key=lambda info: (info.created_at, info.handle))

    def check(self) -> None:
        """Raise :class:`KeyStoreUnavailable` unless the directory is usable and a key decrypts."""
        directory = self.directory
        if not directory.is_dir():
            raise KeyStoreUnavailable(f"key directory {directory} is missing; check {_DIR_SETTING}")
        if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            raise KeyStoreUnavailable(
                f"key directory {directory} is not readable and writable; check {_DIR_SETTING}"
            )
        self._verify_passphrase()

    # -- helpers -------------------------------------------------------------------

    def _pem_path(self, handle: str) -> Path:
        return self.directory / f"{handle}.pem"

    def _json_path(self, handle: str) -> Path:
        return self.directory / f"{handle}.json"

    @staticmethod
    def _require_handle(handle: str) -> None:
        # Checked before any path is built from it: no traversal, no odd names.
        if not isinstance(handle, str) or not HANDLE_PATTERN.fullmatch(handle):
            raise KeyNotFound(f"no key with handle {handle!r} in the file key store")

    def _handles(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError as exc:
            raise KeyStoreUnavailable(
                f"cannot read key directory {self.directory} ({exc.strerror}); check {_DIR_SETTING}"
            ) from exc
        handles = set()
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if dot and suffix in ("pem", "json") and HANDLE_PATTERN.fullmatch(stem):
                handles.add(stem)
        return sorted(handles)

    def _write(self, path: Path, content: bytes) -> None:
        """Write ``content`` to ``path`` whole or not at all, readable by the owner only."""
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=self.directory)
        try:
            os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _verify_passphrase(self) -> None:
        """Raise :class:`KeyStoreUnavailable` unless the passphrase opens a stored key."""
        if self._signers:
            return  # a key already decrypted under this passphrase
        handles = self._handles()
        if handles:
            self._load_signer(handles[0])

    def _get_mac_key(self, *, create: bool) -> bytes:
        """The sidecar MAC key, derived from the passphrase and the store's salt."""
        if self._mac_key is not None:
            return self._mac_key
        path = self.directory / _STORE_FILE
        try:
            record = json.loads(path.read_bytes())
            salt = base64.b64decode(record["salt"], validate=True)
            iterations = int(record["iterations"])
        except FileNotFoundError:
            if not create:
                raise KeyStoreError(
                    f"{path} is missing, so no key metadata in {self.directory} can be verified"
                ) from None
            salt, iterations = secrets.token_bytes(16), PBKDF2_ITERATIONS
            record = {"format": _FORMAT, "iterations": iterations, "salt": _b64(salt)}
            self._write(path, _canonical(record) + b"\n")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"{path} is unreadable or corrupt ({exc})") from exc
        if iterations < PBKDF2_ITERATIONS:
            raise KeyStoreError(f"{path} asks for a weakened key derivation")
        kdf = PBKDF2HMAC(hashes.SHA256(), 32, salt + b"authority-sidecar-mac", iterations)
        self._mac_key = kdf.derive(self._passphrase)
        return self._mac_key

    def _read_info(self, handle: str) -> KeyInfo:
        json_path, pem_path = self._json_path(handle), self._pem_path(handle)
        try:
            raw = json_path.read_bytes()
        except FileNotFoundError:
            if pem_path.exists():
                raise KeyStoreError(f"key {handle} has no metadata file {json_path}") from None
            raise KeyNotFound(f"no key with handle {handle!r} in the file key store") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {json_path} ({exc.strerror})") from exc
        try:
            fields = json.loads(raw)
            mac = base64.b64decode(fields.pop("mac"), validate=True)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyStoreError(f"metadata file {json_path} is corrupt") from exc
        expected = hmac.digest(self._get_mac_key(create=False), _canonical(fields), hashlib.sha256)
        if not hmac.compare_digest(mac, expected):
            if self._decrypt(handle) is None:
                raise self._wrong_passphrase()
            raise KeyStoreError(f"metadata file {json_path} fails its integrity check (altered)")
        try:
            if fields["format"] != _FORMAT or fields["handle"] != handle:
                raise ValueError("format or handle mismatch")
            public = serialization.load_pem_public_key(fields["public_key"].encode("ascii"))
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise ValueError("not an EC key")
            created_at = datetime.fromisoformat(fields["created_at"])
            if created_at.tzinfo is None:
                raise ValueError("created_at lacks a time zone")
            return KeyInfo(
                handle=handle,
                label=str(fields["label"]),
                algorithm=KeyAlgorithm(fields["algorithm"]),
                created_at=created_at.astimezone(UTC),
                public_key=public,
            )
        except (ValueError, KeyError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyStoreError(f"metadata file {json_path} is corrupt ({exc})") from exc

    def _decrypt(self, handle: str) -> ec.EllipticCurvePrivateKey | None:
        """The decrypted key ``handle``, or None if the passphrase does not open it."""
        pem_path = self._pem_path(handle)
        try:
            data = pem_path.read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(f"key {handle} has no private key file {pem_path}") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {pem_path} ({exc.strerror})") from exc
        if b"-----BEGIN " + _PEM_LABEL + b"-----" not in data:
            raise KeyStoreError(f"{pem_path} is not an encrypted PKCS#8 private key")
        try:
            key = serialization.load_pem_private_key(data, self._passphrase)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            return None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyStoreError(f"{pem_path} does not hold an EC private key")
        return key

    def _load_signer(self, handle: str) -> tuple[ec.EllipticCurvePrivateKey, ec.ECDSA]:
        info = self.get(handle)  # its MAC verified, so the passphrase is the right one
        with self._lock:
            entry = self._signers.get(handle)
            if entry is not None:
                return entry
            key = self._decrypt(handle)
            if key is None:
                raise KeyStoreError(f"private key file {self._pem_path(handle)} is corrupt")
            encoding = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            if key.public_key().public_bytes(*encoding) != info.public_key.public_bytes(*encoding):
                raise KeyStoreError(f"key {handle}: private key and metadata do not match")
            entry = (key, ec.ECDSA(info.algorithm.hash_algorithm))
            self._signers[handle] = entry
            return entry

    @staticmethod
    def _wrong_passphrase() -> KeyStoreUnavailable:
        return KeyStoreUnavailable(
            f"the file key store cannot decrypt its keys: {_PASSPHRASE_SETTING} is not the "
            "passphrase they were stored with"
        )
