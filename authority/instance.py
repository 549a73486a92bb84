"""One running Authority instance: its settings and the components built from them.

The command line and the HTTP app both open an :class:`Instance`; nothing is
built at import time. Domain services take what they need from it as
arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from authority.config import Environment, KeyStoreKind, Settings
from authority.db.migrate import current_revision, head_revision
from authority.db.session import Database
from authority.errors import AuthorityError, Unavailable
from authority.pki.keystore import KeyStore, KeyStoreUnavailable
from authority.pki.keystores import open_keystore


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


class Instance:
    """Settings, database and key store of one Authority."""

    def __init__(
        self, settings: Settings, database: Database, keystore: KeyStore | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self._keystore = keystore

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
