"""OpenSSL's command line as the independent checker of our CMS seals."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def cms_verify(
    workdir: Path, document: bytes, seal: bytes, root_pem: bytes
) -> subprocess.CompletedProcess[str]:
    """`openssl cms -verify` of a detached DER ``seal`` over ``document``, trusting
    ``root_pem``; "Verification successful" on stderr and exit 0 when it holds."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is required", pytrace=False)
    (workdir / "doc.json").write_bytes(document)
    (workdir / "seal.der").write_bytes(seal)
    (workdir / "root.pem").write_bytes(root_pem)
    command = [
        "openssl",
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "seal.der",
        "-content",
        "doc.json",
        "-CAfile",
        "root.pem",
        "-out",
        "/dev/null",
    ]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
