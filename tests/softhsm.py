"""A real SoftHSM2 token for PKCS#11 tests.

Without SoftHSM2 (or python-pkcs11) the PKCS#11 tests are skipped locally and
fail in CI (CI=true): a missing component there is a broken build, not a pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

TOKEN_LABEL = "authority-test"
USER_PIN = "1234"
SO_PIN = "5678"
TOKEN_DIR_NAME = "softhsm-tokens"


class SoftHsmToken(NamedTuple):
    """What a PKCS#11 key store needs to reach the test token."""

    module_path: str
    label: str
    pin: str


def missing(what: str) -> None:
    """Skip locally, fail in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI", pytrace=False)
    pytest.skip(f"{what} is not installed")


def create_token(directory: Path) -> tuple[SoftHsmToken, Path]:
    """Initialise a new token whose files live under ``directory``.

    Returns the token and its configuration file: the caller points
    SOFTHSM2_CONF at it (in a child's environment, or monkeypatched here).
    """
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        missing("python-pkcs11")
    from authority.pki.pkcs11_keystore import find_softhsm2_module

    util = shutil.which("softhsm2-util")
    module = find_softhsm2_module()
    if util is None or module is None:
        missing("SoftHSM2 (Debian package softhsm2)")
    assert util is not None and module is not None
    token_dir = directory / TOKEN_DIR_NAME
    token_dir.mkdir(mode=0o700)
    config = directory / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    init = ["--init-token", "--free", "--label", TOKEN_LABEL, "--pin", USER_PIN, "--so-pin", SO_PIN]
    subprocess.run(
        [util, *init],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(config)},
    )
    return SoftHsmToken(module, TOKEN_LABEL, USER_PIN), config
