"""Settings: every knob Authority reads, from ``AUTHORITY_*`` environment variables.

One documented source of defaults (this class), validated when constructed:
an unknown ``AUTHORITY_*`` variable, a malformed value or an unsafe
combination raises :class:`~authority.errors.ConfigurationError` naming the
setting, so the service never starts half-configured.
"""

from __future__ import annotations

import difflib
import enum
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from authority.errors import ConfigurationError
from authority.pki.file_keystore import passphrase_strength_problem

ENV_PREFIX = "AUTHORITY_"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class Environment(enum.StrEnum):
    """Where the service runs; ``production`` turns unsafe defaults into errors."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class KeyStoreKind(enum.StrEnum):
    """Where private keys live."""

    FILE = "file"
    PKCS11 = "pkcs11"


class LogFormat(enum.StrEnum):
    """How log lines are written to standard error."""

    TEXT = "text"
    JSON = "json"


def parse_throttle(value: str) -> tuple[int, int, int]:
    """``FREE/LOCK_AFTER/LOCK_MINUTES`` as three integers; ``ValueError`` saying what is wrong."""
    parts = value.split("/")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ValueError("must be FREE/LOCK_AFTER/LOCK_MINUTES, e.g. 3/10/15")
    free, lock_after, minutes = (int(p) for p in parts)
    if not 0 <= free < lock_after <= 10_000:
        raise ValueError("needs 0 <= FREE < LOCK_AFTER <= 10000")
    if not 1 <= minutes <= 1440:
        raise ValueError("LOCK_MINUTES must be 1 to 1440")
    return free, lock_after, minutes


class Settings(BaseSettings):
    """The whole configuration of one Authority instance."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    env: Environment = Field(Environment.DEVELOPMENT, description="`development` or `production`.")
    database_url: str = Field(
        "sqlite:///var/authority.db",
        description="SQLAlchemy URL; `sqlite:///path` or `postgresql://user@host/db`.",
    )
    issuer: str = Field(
        "http://127.0.0.1:8000",
        description="Public base URL: the OIDC issuer and the base of every published link.",
    )
    var_dir: Path = Field(Path("var"), description="Directory for local state.")
    keys_dir: Path = Field(Path("keys"), description="Directory of the file key store.")
    keystore: KeyStoreKind = Field(KeyStoreKind.FILE, description="`file` or `pkcs11`.")
    keystore_passphrase: str | None = Field(
        None, description="Encrypts the file key store.", repr=False
    )
    pkcs11_module: str | None = Field(None, description="Path of the PKCS#11 module (.so).")
    pkcs11_token: str | None = Field(None, description="Label of the PKCS#11 token.")
    pkcs11_pin: str | None = Field(None, description="User PIN of the token.", repr=False)
    pki_name: str = Field(
        "Authority",
        min_length=1,
        max_length=40,
        description="Short name in the CA certificates' common names (e.g. `Authority Root CA`).",
    )
    pki_organisation: str = Field(
        "Authority Demonstration",
        min_length=1,
        max_length=64,
        description="organizationName of the authority's own certificates.",
    )
    pki_country: str = Field(
        "CN", pattern=r"^[A-Z]{2}$", description="ISO 3166 country code of the certificates."
    )
    log_format: LogFormat = Field(LogFormat.TEXT, description="`text` or `json`.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    audit_checkpoint_seconds: int = Field(
        60, ge=0, description="Seconds between automatic audit checkpoints while serving; 0: none."
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes."
    )
    throttle_account: str = Field(
        "3/10/15",
        description="Failed logins per account: FREE/LOCK_AFTER/LOCK_MINUTES (docs/identity.md).",
    )
    throttle_address: str = Field(
        "20/100/15", description="Failed logins per client address: FREE/LOCK_AFTER/LOCK_MINUTES."
    )
    throttle_client: str = Field(
        "10/30/5",
        description="Failed client authentications per client and address at the token "
        "endpoint: FREE/LOCK_AFTER/LOCK_MINUTES.",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].lower()
        backend = scheme.split("+", 1)[0]
        if backend not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        if backend == "postgres":
            value = "postgresql" + value[len(scheme) :]
            scheme = "postgresql"
        if scheme == "postgresql":
            # A plain postgresql:// URL works as written (DESIGN.md): use psycopg 3.
            value = "postgresql+psycopg" + value[len(scheme) :]
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL, e.g. https://id.example.gov")
        # OpenID Connect Discovery §3: the issuer has no query or fragment component.
        if parts.query or parts.fragment:
            raise ValueError("must not contain a query or a fragment")
        return value.rstrip("/")

    @field_validator("throttle_account", "throttle_address", "throttle_client")
    @classmethod
    def _throttle(cls, value: str) -> str:
        parse_throttle(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _safe_combination(self) -> Settings:
        if self.keystore is KeyStoreKind.PKCS11:
            for name in ("pkcs11_module", "pkcs11_token", "pkcs11_pin"):
                if not getattr(self, name):
                    raise ValueError(
                        f"{ENV_PREFIX}{name.upper()} is required when {ENV_PREFIX}KEYSTORE=pkcs11"
                    )
        if self.env is Environment.PRODUCTION:
            parts = urlsplit(self.issuer)
            if parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
                raise ValueError(f"{ENV_PREFIX}ISSUER must use https in production")
            if self.keystore is KeyStoreKind.FILE:
                if not self.keystore_passphrase:
                    raise ValueError(
                        f"{ENV_PREFIX}KEYSTORE_PASSPHRASE is required in production "
                        "with the file key store"
                    )
                weakness = passphrase_strength_problem(self.keystore_passphrase)
                if weakness:
                    raise ValueError(weakness)
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite default."""
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None for PostgreSQL or an in-memory database."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        return Path(path) if path and path != ":memory:" else None


def _unknown_variables(environ: Mapping[str, str]) -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``environ`` (default: the process environment) plus overrides.

    Raises :class:`ConfigurationError` naming the first bad setting.
    """
    environ = os.environ if environ is None else environ
    unknown = _unknown_variables(environ)
    if unknown:
        name = unknown[0]
        known = [ENV_PREFIX + n.upper() for n in Settings.model_fields]
        hint = difflib.get_close_matches(name.upper(), known, n=1)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        raise ConfigurationError(f"unknown setting {name}{suggestion}")
    values: dict[str, Any] = {
        k[len(ENV_PREFIX) :].lower(): v
        for k, v in environ.items()
        if k.upper().startswith(ENV_PREFIX)
    }
    values.update(overrides)
    try:
        # Values come from `environ`, not from pydantic-settings' own reading of
        # os.environ, so tests and the CLI can pass an explicit environment.
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = [str(part) for part in error["loc"]]
    message = error["msg"].removeprefix("Value error, ")
    if location:
        return f"{ENV_PREFIX}{location[0].upper()}: {message}"
    return message
