"""Fixtures of the key store tests: a fresh SoftHSM2 token per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.softhsm import TOKEN_DIR_NAME, TOKEN_LABEL, USER_PIN, SoftHsmToken, create_token

__all__ = ["TOKEN_DIR_NAME", "TOKEN_LABEL", "USER_PIN", "SoftHsmToken", "softhsm_token"]


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsmToken]:
    """A newly initialised SoftHSM2 token in ``tmp_path``: (module_path, label, pin)."""
    import pkcs11

    token, config = create_token(tmp_path)
    monkeypatch.setenv("SOFTHSM2_CONF", str(config))
    # SoftHSM2 reads SOFTHSM2_CONF in C_Initialize: make a module loaded by an
    # earlier test see this token directory.
    pkcs11.lib(token.module_path).reinitialize()
    yield token
