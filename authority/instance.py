"""One running Authority instance: its settings and the components built from them.

The command line and the HTTP app both open an :class:`Instance`; nothing is
built at import time. Domain services take what they need from it as
arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from authority.config import Settings
from authority.db.migrate import current_revision, head_revision
from authority.db.session import Database
from authority.errors import AuthorityError, Unavailable


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one readiness check."""

    name: str
    ok: bool
    detail: str


class Instance:
    """Settings, database and (as the PKI lands) key store of one Authority."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database

    @classmethod
    def open(cls, settings: Settings) -> Instance:
        """Build the components ``settings`` describe (connects lazily)."""
        return cls(settings, Database.from_url(settings.database_url))

    def close(self) -> None:
        """Release connections and handles."""
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
        keys_dir = self.settings.keys_dir
        if not keys_dir.is_dir():
            return CheckResult("keys", False, f"{keys_dir} is missing: run `authority init`")
        if not os.access(keys_dir, os.R_OK | os.W_OK | os.X_OK):
            return CheckResult("keys", False, f"{keys_dir} is not readable and writable")
        return CheckResult("keys", True, f"key directory {keys_dir} usable")


def ensure_directory(path: Path, mode: int = 0o700) -> None:
    """Create ``path`` (and parents) if missing, private to the service's user."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except OSError as exc:
        raise Unavailable(f"cannot create directory {path}: {exc.strerror}") from exc
