"""One running Authority instance: its settings and the components built from them.

The command line and the HTTP app both open an :class:`Instance`; nothing is
built at import time. Domain services take what they need from it as
arguments.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from authority.config import Environment, KeyStoreKind, Settings
from authority.db.migrate import current_revision, head_revision
from authority.db.session import Database
from authority.errors import AuthorityError, Unavailable
from authority.identity.login import Authenticator
from authority.identity.passwords import PasswordHasher
from authority.identity.throttle import (
    ACCOUNT_POLICY,
    ADDRESS_POLICY,
    CLIENT_POLICY,
    Throttle,
    configured_policy,
)
from authority.licences.sealing import SealerCache
from authority.oidc.cache import ProviderCache
from authority.oidc.clients import ClientSecretKey
from authority.pki.keystore import KeyStore, KeyStoreUnavailable
from authority.pki.keystores import open_keystore
from authority.pki.service import TimeStampingUnits
from authority.verification.cache import StatusCache


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one readiness check."""

    name: str
    ok: bool
    detail: str


DEVELOPMENT_PASSPHRASE_FILE = "keystore-passphrase"  # noqa: S105 - a file name


def development_passphrase_path(settings: Settings) -> Path:
    """Where `authority init` keeps a generated passphrase when none is configured."""
    return settings.var_dir / DEVELOPMENT_PASSPHRASE_FILE


def keystore_passphrase(settings: Settings) -> str | None:
    """The file store's passphrase: configured, else (development only) the generated one."""
    if settings.keystore_passphrase:
        return settings.keystore_passphrase
    if settings.env is Environment.PRODUCTION:
        return None
    path = development_passphrase_path(settings)
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


CLIENT_SECRET_KEY_FILE = "client-secret.key"  # noqa: S105 - a file name


def _client_secret_key(keys_dir: Path) -> bytes:
    """The installation's HMAC key for client secrets, created once (mode 0600).

    It lives beside the key store, so hosts that share keys share it, and a
    database dump alone cannot confirm a client secret.
    """
    path = keys_dir / CLIENT_SECRET_KEY_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    ensure_directory(keys_dir)
    temporary = keys_dir / f".{CLIENT_SECRET_KEY_FILE}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)  # fails if another process created it first: use theirs
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


class Instance:
    """Settings, database and key store of one Authority."""

    def __init__(
        self, settings: Settings, database: Database, keystore: KeyStore | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self._keystore = keystore
        self._client_secret_key: ClientSecretKey | None = None
        self._authenticator: Authenticator | None = None
        #: Licence sealers by seal and TSA certificate, shared by this instance's requests.
        self.sealers = SealerCache()
        #: Clients and the token-signing key for the token endpoint (see oidc.cache).
        self.provider_cache = ProviderCache()
        database.after_commit(self.provider_cache.changed)
        #: The time-stamping unit that answers /pki/tsa, for its current certificate.
        self.time_stamping = TimeStampingUnits()
        #: Certificate and licence status for online verification (see verification.cache).
        self.verification_cache = StatusCache()
        database.after_commit(self.verification_cache.changed)

    @property
    def client_secret_key(self) -> ClientSecretKey:
        """The HMAC key client secrets are stored under."""
        if self._client_secret_key is None:
            self._client_secret_key = ClientSecretKey(_client_secret_key(self.settings.keys_dir))
        return self._client_secret_key

    @property
    def authenticator(self) -> Authenticator:
        """Password and second-factor checks, throttled (built on first use)."""
        if self._authenticator is None:
            settings = self.settings
            throttle = Throttle(
                self.client_secret_key.digest,
                account=configured_policy(ACCOUNT_POLICY, settings.throttle_account),
                address=configured_policy(ADDRESS_POLICY, settings.throttle_address),
                client=configured_policy(CLIENT_POLICY, settings.throttle_client),
            )
            self._authenticator = Authenticator(PasswordHasher(), throttle)
        return self._authenticator

    @property
    def keystore(self) -> KeyStore:
        """The configured key store, opened on first use.

        Raises :class:`~authority.errors.ConfigurationError` when the file store
        has no passphrase yet (run `authority init` in development).
        """
        if self._keystore is None:
            settings = self.settings
            passphrase = keystore_passphrase(settings)
            if settings.keystore is KeyStoreKind.FILE and passphrase is None:
                raise KeyStoreUnavailable(
                    "AUTHORITY_KEYSTORE_PASSPHRASE is not set and no development passphrase "
                    f"exists in {development_passphrase_path(settings)}: run `authority init`"
                )
            self._keystore = open_keystore(
                settings.keystore.value,
                keys_dir=settings.keys_dir,
                passphrase=passphrase,
                pkcs11_module=settings.pkcs11_module,
                pkcs11_token=settings.pkcs11_token,
                pkcs11_pin=settings.pkcs11_pin,
            )
        return self._keystore

    @classmethod
    def open(cls, settings: Settings) -> Instance:
        """Build the components ``settings`` describe (connects lazily)."""
        return cls(settings, Database.from_url(settings.database_url))

    def close(self) -> None:
        """Release connections and handles."""
        if self._keystore is not None:
            self._keystore.close()
        self.database.dispose()

    def readiness(self) -> list[CheckResult]:
        """Run every readiness check: can this instance serve requests now?"""
        return [self._check_database(), self._check_keys()]

    def _check_database(self) -> CheckResult:
        try:
            self.database.ping()
            revision = current_revision(self.database)
        except AuthorityError as exc:
            return CheckResult("database", False, exc.detail)
        head = head_revision()
        if revision != head:
            return CheckResult(
                "database",
                False,
                f"schema at {revision or 'nothing'}, code needs {head}: run `authority init`",
            )
        return CheckResult("database", True, f"reachable, schema at {revision}")

    def _check_keys(self) -> CheckResult:
        try:
            store = self.keystore
            store.check()
        except AuthorityError as exc:
            return CheckResult("keys", False, exc.detail)
        return CheckResult("keys", True, f"{store.kind} key store usable")


def ensure_directory(path: Path, mode: int = 0o700) -> None:
    """Create ``path`` (and parents) if missing, private to the service's user."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except OSError as exc:
        raise Unavailable(f"cannot create directory {path}: {exc.strerror}") from exc
