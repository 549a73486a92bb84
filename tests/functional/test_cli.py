"""The `authority` command as operators run it: a real process, real databases."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(
    args: list[str], env: dict[str, str], cwd: Path, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m authority ARGS` with only AUTHORITY_* from ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTHORITY_")}
    return subprocess.run(
        [sys.executable, "-m", "authority", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        input=input_text,
        check=False,
    )


def test_init_is_idempotent(cli_env: dict[str, str], tmp_path: Path) -> None:
    first = run(["init", "--json"], cli_env, tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["schema_before"] is None
    assert "installation record" in report["created"]
    assert f"development key store passphrase in {tmp_path / 'var'}" in report["created"]
    assert report["created"][-7:] == [
        "root CA",
        "seal CA",
        "time-stamping unit certificate",
        "OCSP responder certificate",
        "trust-list seal certificate",
        "token signing key",
        "audit checkpoint",
    ]
    passphrase = tmp_path / "var" / "keystore-passphrase"
    assert passphrase.stat().st_mode & 0o777 == 0o600
    assert "no AUTHORITY_KEYSTORE_PASSPHRASE is set" in first.stderr
    assert (tmp_path / "keys").is_dir()
    assert (tmp_path / "keys").stat().st_mode & 0o077 == 0

    second = run(["init", "--json"], cli_env, tmp_path)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["created"] == []
    assert again["instance_id"] == report["instance_id"]
    assert again["schema"] == report["schema"]


def test_demo_is_idempotent_and_follows_the_contract(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert run(["init"], cli_env, tmp_path).returncode == 0
    first = run(["demo", "--json"], cli_env, tmp_path)
    second = run(["demo", "--json"], cli_env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    demo = json.loads(first.stdout)
    assert demo["issuer"] == "http://127.0.0.1:8000"
    assert set(demo) == {"issuer", "citizen", "business", "portal", "agency"}
    assert demo["citizen"]["username"] == "11010519491231002X"
    assert len(demo["citizen"]["password"]) >= 32
    assert demo["business"] == {"uscc": "91350100M000100Y43", "name": "演示科技有限公司"}
    assert demo["portal"]["redirect_uris"] == ["http://127.0.0.1:8001/callback"]
    assert demo["agency"]["licence_example"]["holder"]["id"] == demo["citizen"]["username"]
    assert demo["agency"]["code"] == "DEMO"
    keys = json.loads(run(["keys", "list", "--json"], cli_env, tmp_path).stdout)["keys"]
    demo_seal = [k for k in keys if any(c["name"] == "DEMO" for c in k["certificates"])]
    assert len(demo_seal) == 1  # the second run created nothing


def test_demo_before_init_says_what_to_do(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run(["demo"], cli_env, tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "authority: error: the database has no schema: run `authority init` first\n"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["client", "create"],
        ["keys", "rotate"],
        [],
        ["init"],
        ["demo"],
        ["serve"],
        ["agency", "create"],
        ["seal", "rotate"],
        ["seal", "revoke"],
        ["keys", "list"],
        ["citizen", "create"],
        ["citizen", "enrol-totp"],
        ["business", "create"],
        ["purge"],
    ],
)
def test_every_command_has_help_and_json(command: list[str], tmp_path: Path) -> None:
    result = run([*command, "--help"], {}, tmp_path)
    assert result.returncode == 0
    assert "Usage: authority" in result.stdout
    if command:
        assert "--json" in result.stdout


def test_bad_setting_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = run(["init"], {"AUTHORITY_ISSUER": "not a url"}, tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("authority: error: AUTHORITY_ISSUER: must be an absolute")
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = {"AUTHORITY_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
    result = run(["init"], env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("authority: error: database unavailable: ")
    assert result.stderr.count("\n") == 1


def test_pki_commands_refuse_bad_input_in_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run(["init"], cli_env, tmp_path).returncode == 0
    bad_code = run(["agency", "create", "--code", "no spaces", "--name", "X"], cli_env, tmp_path)
    assert bad_code.returncode == 1
    assert bad_code.stderr.startswith("authority: error: agency code 'no spaces' must be")
    bad_reason = run(["seal", "revoke", "--agency", "X", "--reason", "lost"], cli_env, tmp_path)
    assert bad_reason.returncode == 1
    assert "keyCompromise" in bad_reason.stderr
    unknown = run(["seal", "rotate", "--agency", "NOPE"], cli_env, tmp_path)
    assert unknown.stderr == "authority: error: no agency with code 'NOPE'\n"
    created = run(
        ["agency", "create", "--code", "MOT", "--name", "Transport", "--json"], cli_env, tmp_path
    )
    assert json.loads(created.stdout)["seal"]["status"] == "good"
    again = run(["agency", "create", "--code", "MOT", "--name", "Transport"], cli_env, tmp_path)
    assert again.stderr == "authority: error: an agency with code 'MOT' already exists\n"


def test_client_create_and_token_key_rotation(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run(["init"], cli_env, tmp_path).returncode == 0
    created = run(
        [
            "client",
            "create",
            "--name",
            "Portal",
            "--redirect-uri",
            "https://p.example.gov/cb",
            "--scope",
            "openid",
            "--scope",
            "email",
            "--json",
        ],
        cli_env,
        tmp_path,
    )
    assert created.returncode == 0, created.stderr
    portal = json.loads(created.stdout)
    assert portal["grant_types"] == ["authorization_code", "refresh_token"]
    assert portal["scope"] == "openid email"
    assert len(portal["client_secret"]) >= 43
    refused = run(
        ["client", "create", "--name", "X", "--redirect-uri", "http://evil.example/"],
        cli_env,
        tmp_path,
    )
    assert refused.returncode == 1
    assert refused.stderr == (
        "authority: error: redirect URI 'http://evil.example/' must use https "
        "(http only for loopback)\n"
    )
    bad_jwks = tmp_path / "jwks.json"
    bad_jwks.write_text("{not json")
    broken = run(
        [
            "client",
            "create",
            "--name",
            "X",
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            str(bad_jwks),
        ],
        cli_env,
        tmp_path,
    )
    assert broken.returncode == 1 and "--jwks is not JSON" in broken.stderr

    first = json.loads(
        run(["keys", "rotate", "--purpose", "token", "--json"], cli_env, tmp_path).stdout
    )
    second = json.loads(
        run(["keys", "rotate", "--purpose", "token", "--json"], cli_env, tmp_path).stdout
    )
    assert second["previous_kid"] == first["kid"]
    keys = json.loads(run(["keys", "list", "--json"], cli_env, tmp_path).stdout)["keys"]
    signing = [k["signing"] for k in keys if k["signing"]]
    assert sorted(s["status"] for s in signing) == ["current", "retired", "retired"]


def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = run(["serve", "--port", "99999"], {}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("authority: Invalid value for '--port'")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_answers_and_stops_gracefully(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run(["init"], cli_env, tmp_path).returncode == 0
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTHORITY_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "authority", "serve", "--port", str(port)],
        env={**base, **cli_env, "AUTHORITY_LOG_FORMAT": "json"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "server did not start in 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["status"] == "ready"
        assert "server" not in response.headers
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    # Uvicorn re-raises the signal after shutting down, as systemd and Docker expect.
    assert server.returncode in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert "Application shutdown complete." in messages
    access = [line for line in lines if line["logger"] == "authority.access"]
    assert access and access[0]["route"] == "/readyz"
    assert len(access[0]["request_id"]) == 16


def test_citizen_and_business_create(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run(["init"], cli_env, tmp_path).returncode == 0
    created = run(
        [
            "citizen",
            "create",
            "--id-number",
            "11010519491231002x",
            "--name",
            "张三",
            "--password-stdin",
            "--json",
        ],
        cli_env,
        tmp_path,
        input_text="correct horse battery\n",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {
        "id_number": "11010519491231002X",
        "name": "张三",
        "email": None,
        "phone": None,
        "password": True,
        "second_factor_required": True,
    }
    again = run(
        ["citizen", "create", "--id-number", "11010519491231002X", "--name", "x"], cli_env, tmp_path
    )
    assert again.returncode == 1
    assert again.stderr == (
        "authority: error: a citizen with identity number 11010519491231002X already exists\n"
    )
    business = run(
        [
            "business",
            "create",
            "--uscc",
            "91350100M000100Y43",
            "--name",
            "演示科技有限公司",
            "--representative",
            "11010519491231002X",
            "--valid-until",
            "2030-12-31",
            "--json",
        ],
        cli_env,
        tmp_path,
    )
    assert business.returncode == 0, business.stderr
    data = json.loads(business.stdout)
    assert data["uscc"] == "91350100M000100Y43"
    assert data["representative"]["role"] == "legal_representative"
    assert data["representative"]["valid_until"] == "2031-01-01T00:00:00+00:00"
    bad = run(
        [
            "business",
            "create",
            "--uscc",
            "91350100M000100Y44",
            "--name",
            "x",
            "--representative",
            "11010519491231002X",
        ],
        cli_env,
        tmp_path,
    )
    assert bad.returncode == 1
    assert "expected 3 (GB 32100)" in bad.stderr
    enrolled = run(
        ["citizen", "enrol-totp", "--id-number", "11010519491231002X", "--json"], cli_env, tmp_path
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert json.loads(enrolled.stdout)["otpauth_uri"].startswith("otpauth://totp/")


def test_agency_staff_add_grants_and_changes_a_role(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert run(["init"], cli_env, tmp_path).returncode == 0
    demo = json.loads(run(["demo", "--json"], cli_env, tmp_path).stdout)
    code, id_number = demo["agency"]["code"], demo["citizen"]["username"]
    args = ["agency", "staff", "add", "--agency", code, "--id-number", id_number, "--json"]
    granted = run([*args, "--role", "clerk"], cli_env, tmp_path)
    assert granted.returncode == 0, granted.stderr
    assert json.loads(granted.stdout) == {"agency": code, "id_number": id_number, "role": "clerk"}
    changed = run(args, cli_env, tmp_path)
    assert json.loads(changed.stdout)["role"] == "officer"
    unknown = run(
        ["agency", "staff", "add", "--agency", code, "--id-number", "110101199003070011"],
        cli_env,
        tmp_path,
    )
    assert unknown.returncode != 0 and "no citizen" in unknown.stderr
