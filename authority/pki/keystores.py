"""Choosing and opening the configured key store (``AUTHORITY_KEYSTORE``)."""

from __future__ import annotations

from pathlib import Path

from authority.errors import ConfigurationError
from authority.pki.keystore import KeyStore

KINDS = ("file", "pkcs11")
"""The values ``AUTHORITY_KEYSTORE`` accepts."""


def open_keystore(
    kind: str,
    *,
    keys_dir: Path,
    passphrase: str | None,
    pkcs11_module: str | None,
    pkcs11_token: str | None,
    pkcs11_pin: str | None,
) -> KeyStore:
    """Open the key store of type ``kind`` from the settings it needs.

    Raises :class:`ConfigurationError` naming the setting that is unknown or
    missing. Opening does not touch the keys; call ``check()`` for that.
    """
    if kind == "file":
        if not passphrase:
            raise ConfigurationError(
                "AUTHORITY_KEYSTORE_PASSPHRASE must be set when AUTHORITY_KEYSTORE is 'file'"
            )
        from authority.pki.file_keystore import FileKeyStore

        return FileKeyStore(Path(keys_dir), passphrase)
    if kind == "pkcs11":
        required = {
            "AUTHORITY_PKCS11_MODULE": pkcs11_module,
            "AUTHORITY_PKCS11_TOKEN": pkcs11_token,
            "AUTHORITY_PKCS11_PIN": pkcs11_pin,
        }
        missing = [setting for setting, value in required.items() if not value]
        if missing or not (pkcs11_module and pkcs11_token and pkcs11_pin):
            raise ConfigurationError(
                f"{' and '.join(missing)} must be set when AUTHORITY_KEYSTORE is 'pkcs11'"
            )
        # Imported here so a file-store deployment never loads the PKCS#11 binding.
        from authority.pki.pkcs11_keystore import Pkcs11KeyStore

        return Pkcs11KeyStore(pkcs11_module, pkcs11_token, pkcs11_pin)
    raise ConfigurationError(
        f"AUTHORITY_KEYSTORE is {kind!r}; it must be one of {', '.join(map(repr, KINDS))}"
    )
