"""A real `authority serve` process for tests that need a live server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.softhsm import create_token

STARTUP_SECONDS = 30


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without AUTHORITY_* variables, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTHORITY_")}
    return {**base, **extra}


@dataclass
class LiveAuthority:
    """An initialised instance served on 127.0.0.1; run its CLI with :meth:`cli`."""

    url: str
    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen[str] | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `authority ARGS` against this instance's configuration."""
        result = subprocess.run(
            [sys.executable, "-m", "authority", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"authority {' '.join(args)} failed: {result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        """Run a command with --json and parse its output."""
        return json.loads(self.cli(*args, "--json").stdout)

    def start(self, workers: int = 1) -> None:
        """Serve, and wait until /readyz says ready."""
        port = self.url.rsplit(":", 1)[1]
        # The log goes to a file: a pipe nobody reads until stop() fills up after a few
        # thousand requests and then blocks the server in its next write.
        with self.log.open("a", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "authority", "serve"),
                    *("--port", port, "--workers", str(workers)),
                ],
                env=self.env,
                cwd=self.workdir,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("authority serve did not become ready")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no flush, as a crash or the OOM killer would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self.process = None

    def demo_agency(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Seed the demo; return its agency and bearer headers for the agency's API client."""
        agency = self.cli_json("demo")["agency"]
        response = httpx.post(
            f"{self.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(agency["client_id"], agency["client_secret"]),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return agency, {"Authorization": f"Bearer {response.json()['access_token']}"}

    @property
    def log(self) -> Path:
        """Where the server's log (its standard error) goes, across restarts."""
        return self.workdir / "serve.log"

    def stop(self) -> str:
        """Stop the server gracefully; return what it logged."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        return self.log.read_text(encoding="utf-8")


PASSPHRASE = "live test passphrase, not a secret: 41c9"


def initialised(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    variant: str,
    host: str = "127.0.0.1",
) -> LiveAuthority:
    """An instance on which `authority init` ran, not yet serving, for a
    ``keystore-database`` variant such as ``file-sqlite`` or ``pkcs11-postgresql``."""
    keystore, database = variant.split("-")
    workdir = tmp_path_factory.mktemp(variant)
    port = free_port()
    env = {
        # ``host`` names the issuer (e.g. localhost: WebAuthn refuses IP addresses);
        # the server listens on 127.0.0.1 either way.
        "AUTHORITY_ISSUER": f"http://{host}:{port}",
        "AUTHORITY_KEYS_DIR": str(workdir / "keys"),
        "AUTHORITY_VAR_DIR": str(workdir / "var"),
    }
    if database == "postgresql":
        server = request.getfixturevalue("postgres_server")
        env["AUTHORITY_DATABASE_URL"] = server.create()
    else:
        env["AUTHORITY_DATABASE_URL"] = f"sqlite:///{workdir / 'var' / 'authority.db'}"
    if keystore == "pkcs11":
        token, config = create_token(workdir)
        env |= {
            "AUTHORITY_KEYSTORE": "pkcs11",
            "AUTHORITY_PKCS11_MODULE": token.module_path,
            "AUTHORITY_PKCS11_TOKEN": token.label,
            "AUTHORITY_PKCS11_PIN": token.pin,
            "SOFTHSM2_CONF": str(config),
        }
    else:
        env["AUTHORITY_KEYSTORE_PASSPHRASE"] = PASSPHRASE
    authority = LiveAuthority(
        url=f"http://{host}:{port}", env=clean_environment(env), workdir=workdir
    )
    authority.cli("init")
    return authority


def serve_initialised(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    variant: str,
    workers: int = 1,
    host: str = "127.0.0.1",
) -> Iterator[LiveAuthority]:
    """:func:`initialised`, served; stopped afterwards."""
    authority = initialised(request, tmp_path_factory, variant, host)
    authority.start(workers)
    yield authority
    authority.stop()
