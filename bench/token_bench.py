"""Token endpoint benchmark: Authority's client credentials grant against oidc-provider.

Run from the repository root:

    .venv/bin/python bench/token_bench.py [--seconds 10] [--concurrency 8] [--write]

What it measures:

a. ``POST /oauth/token`` with ``grant_type=client_credentials`` and HTTP Basic
   client authentication (client_secret_basic) against
   ``authority serve --workers 1`` pinned to core 0, on a fresh SQLite
   database and file key store set up by ``authority init``, with one agency
   client (``authority agency create``). Each reply is an ES256-signed RFC
   9068 JWT access token;
b. the same request against the reference: panva's oidc-provider (npm,
   OpenID Certified) in one Node process pinned to core 0
   (bench/oidc-provider/server.mjs), one client_secret_basic client, ES256
   JWT access tokens through a default resource indicator;
c. where Authority's time goes: the ASGI app in-process on core 0, with and
   without its thread-pool hand-offs, and a cProfile of the request.

The load generator (``wrk`` when installed, else a small asyncio client) runs
on core 1 with ``--concurrency`` keep-alive connections for ``--seconds``, then
with one connection for the latency of a lone request; each row is capped at
``--max-requests``. Every reply's status is counted (one non-200 aborts the
run) and a sample of the tokens (every 10th, up to 1000 per row) is verified
against the server's JWKS with PyJWT. Traffic goes to 127.0.0.1 only; the
servers and the temporary directory are removed on every exit. With
``--write`` the "## Token endpoint" section of docs/performance.md is
rewritten (other sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import datetime as dt
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import math
import os
import platform
import pstats
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
from harness import (
    PASSPHRASE,
    PERFORMANCE_DOC,
    ROOT,
    SERVER_START_TIMEOUT,
    BenchFailure,
    authority_command,
    available_cores,
    cpu_seconds,
    fmt_rate,
    free_port,
    log_tail,
    paragraph,
    pin,
    python_package,
    python_path,
    run_cli,
    say,
    stop,
    write_section,
)

NODE_DIR = ROOT / "bench" / "oidc-provider"
SECTION_HEADING = "## Token endpoint"
SCOPES = ("licences:issue", "licences:revoke", "licences:read")
BODY = urlencode({"grant_type": "client_credentials", "scope": " ".join(SCOPES)}).encode()
TOKEN_LIFETIME = 600  # seconds; Authority's default, and what server.mjs configures
SAMPLE_EVERY = 10  # verify every 10th token...
MAX_SAMPLES = 1000  # ...up to this many per row
WARM_UP_SECONDS = 2.0  # load at full concurrency before measuring (JIT, caches, pools)
IN_PROCESS_SECONDS = 2.0  # each in-process mode (in alternating spells), and the profile
IN_PROCESS_SPELLS = 8
NODE_RESOURCE = "urn:authority-bench:api"  # the audience of oidc-provider's tokens
TARGET_RATIO = 1.5  # the goal: Authority's tokens/s at least 1.5x oidc-provider's
BUSY_SHARE = 0.15  # CPU used by others before the run from which it is flagged as disturbed


# -- processes -----------------------------------------------------------------------


def cpu_busy(seconds: float) -> float | None:
    """The share of all cores' time spent busy over ``seconds`` (Linux), or None."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return idle, sum(fields[:8])  # guest time is already counted in user time

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 1 - (idle1 - idle0) / total if total > 0 else None


@dataclass
class Target:
    """A running token endpoint and the client that asks it for tokens."""

    name: str
    token_url: str
    jwks_url: str
    issuer: str
    audience: str
    client_id: str
    client_secret: str
    process: subprocess.Popen[bytes]
    log_path: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def authorization(self) -> str:
        # RFC 6749 §2.3.1: id and secret are form-encoded, then Basic (both are URL-safe).
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def wait_http(process: subprocess.Popen[bytes], url: str, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchFailure(f"{what} exited early:\n{log_tail(log_path)}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.1)
    raise BenchFailure(f"{what} not ready in {SERVER_START_TIMEOUT:.0f} s:\n{log_tail(log_path)}")


# -- a. Authority ------------------------------------------------------------------


def authority_env(directory: Path, port: int) -> dict[str, str]:
    # Start from the caller's environment without any AUTHORITY_* setting of theirs.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AUTHORITY_")}
    env.update(
        {
            "AUTHORITY_DATABASE_URL": f"sqlite:///{directory / 'var' / 'authority.db'}",
            "AUTHORITY_KEYS_DIR": str(directory / "keys"),
            "AUTHORITY_VAR_DIR": str(directory / "var"),
            "AUTHORITY_KEYSTORE_PASSPHRASE": PASSPHRASE,
            "AUTHORITY_ISSUER": f"http://127.0.0.1:{port}",
            # An access-log line per request would measure the logging, not the endpoint.
            "AUTHORITY_LOG_LEVEL": "WARNING",
        }
    )
    return env


@dataclass
class AuthoritySetup:
    """The temporary instance: its environment and its agency client."""

    directory: Path
    env: dict[str, str]
    port: int
    client_id: str
    client_secret: str


def set_up_authority(directory: Path) -> AuthoritySetup:
    port = free_port()
    env = authority_env(directory, port)
    say("authority init (temporary SQLite database and file key store)")
    run_cli(env, "init")
    agency = run_cli(env, "agency", "create", "--code", "BENCH", "--name", "Bench")
    client = agency["client"]
    if sorted(str(client.get("scope", "")).split()) != sorted(SCOPES):
        raise BenchFailure(f"the agency client has scopes {client.get('scope')!r}")
    say(f"agency BENCH created; its API client {client['client_id']} asks for the tokens")
    return AuthoritySetup(
        directory, env, port, str(client["client_id"]), str(client["client_secret"])
    )


@contextlib.contextmanager
def authority_server(setup: AuthoritySetup, core: int) -> Iterator[Target]:
    """`authority serve --workers 1` pinned to ``core``; always stopped."""
    log_path = setup.directory / "serve.log"
    options = ["--host", "127.0.0.1", "--port", str(setup.port), "--workers", "1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*authority_command(), "serve", *options],
            env=setup.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not it
        )
    url = f"http://127.0.0.1:{setup.port}"
    try:
        wait_http(process, f"{url}/readyz", log_path, "authority serve")
        say(f"authority serve --workers 1 ready at {url}, pinned to core {core}")
        yield Target(
            "Authority",
            f"{url}/oauth/token",
            f"{url}/oauth/jwks.json",
            url,
            url,  # RFC 9068 §3: Authority's tokens are for its own API: aud is the issuer
            setup.client_id,
            setup.client_secret,
            process,
            log_path,
        )
    finally:
        say("stopping authority serve")
        stop(process)


# -- b. oidc-provider ----------------------------------------------------------------


def node_reference_missing() -> str | None:
    """Why the oidc-provider rows cannot run, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return "oidc-provider is not installed: run `cd bench/oidc-provider && npm ci`"
    return None


def package_version(directory: Path, name: str) -> str:
    try:
        data = json.loads((directory / "node_modules" / name / "package.json").read_text())
        return str(data["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


@contextlib.contextmanager
def node_server(directory: Path, core: int, client_id: str, secret: str) -> Iterator[Target]:
    """bench/oidc-provider/server.mjs in one Node process pinned to ``core``; always stopped."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "DEBUG"))}
    env.update(
        {
            "NODE_ENV": "production",
            "BENCH_PORT": str(port),
            "BENCH_CLIENT_ID": client_id,
            "BENCH_CLIENT_SECRET": secret,
            "BENCH_SCOPES": " ".join(SCOPES),
            "BENCH_RESOURCE": NODE_RESOURCE,
        }
    )
    log_path = directory / "oidc-provider.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["node", "server.mjs"],
            env=env,
            cwd=NODE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
            start_new_session=True,
        )
    issuer = f"http://127.0.0.1:{port}"
    try:
        discovery = f"{issuer}/.well-known/openid-configuration"
        wait_http(process, discovery, log_path, "oidc-provider")
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            metadata = client.get(discovery).json()
        say(f"oidc-provider ready at {issuer} (one Node process), pinned to core {core}")
        warnings = [
            line.split("WARNING:", 1)[1].strip()
            for line in log_path.read_text(errors="replace").splitlines()
            if line.startswith("oidc-provider WARNING:")
        ]
        yield Target(
            "oidc-provider",
            str(metadata["token_endpoint"]),
            str(metadata["jwks_uri"]),
            issuer,
            NODE_RESOURCE,
            client_id,
            secret,
            process,
            log_path,
            warnings,
        )
    finally:
        say("stopping oidc-provider")
        stop(process)


# -- load ------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """One load row: how many tokens, how fast, and what the replies were."""

    target: str
    generator: str
    concurrency: int
    requests: int
    seconds: float
    percentiles: dict[float, float]  # fraction -> seconds
    statuses: dict[int, int]
    samples: list[bytes] = field(repr=False)
    failures: list[str] = field(default_factory=list)
    verified: int = 0
    generator_cpu: float = 0.0  # CPU seconds the load generator used, per second of load
    capped: bool = False  # stopped at --max-requests before --seconds ran out
    server_cpu: float = math.nan  # the server's CPU seconds (all its threads) per reply

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_200(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


WRK_SCRIPT = """\
-- Written by bench/token_bench.py for one run.
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = {authorization}

local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(1, timespec)  -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

local max_requests, sample_every, max_samples = 0, 1, 0
count = 0
statuses = {{}}
samples = {{}}
failures = {{}}

local started_us = 0
capped_us = 0  -- how long the thread ran when it stopped at max_requests (wrk waits anyway)

function init(args)
  started_us = now_us()
  max_requests = tonumber(args[1])
  sample_every = tonumber(args[2])
  max_samples = tonumber(args[3])
end

function response(status, headers, body)
  count = count + 1
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 then
    if #failures < 5 then failures[#failures + 1] = status .. " " .. body end
  elseif (count - 1) % sample_every == 0 and #samples < max_samples then
    samples[#samples + 1] = body
  end
  if count >= max_requests and capped_us == 0 then
    capped_us = now_us() - started_us
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local out = assert(io.open({out}, "w"))
  local e = summary.errors
  out:write(string.format("duration_us %d\\n", summary.duration))
  out:write(string.format("requests %d\\n", summary.requests))
  out:write(string.format("socket_errors %d %d %d %d %d\\n",
    e.connect, e.read, e.write, e.status, e.timeout))
  for _, p in ipairs({{50, 90, 99, 99.9}}) do
    out:write(string.format("percentile %s %d\\n", tostring(p), latency:percentile(p)))
  end
  for _, thread in ipairs(threads) do
    out:write(string.format("capped_us %d\\n", thread:get("capped_us")))
    for status, n in pairs(thread:get("statuses")) do
      out:write(string.format("status %d %d\\n", status, n))
    end
    for _, body in ipairs(thread:get("samples")) do
      out:write("sample " .. string.gsub(body, "\\n", " ") .. "\\n")
    end
    for _, failure in ipairs(thread:get("failures")) do
      out:write("failure " .. string.gsub(failure, "\\n", " ") .. "\\n")
    end
  end
  out:close()
end
"""


def lua_string(text: str) -> str:
    """``text`` (ASCII) as a Lua string literal: JSON's escapes are Lua's too."""
    return json.dumps(text, ensure_ascii=True)


def wrk_version() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    match = re.search(r"wrk (\S+)", done.stdout + done.stderr)
    return f"wrk {match[1]}" if match else "wrk"


def load_wrk(
    target: Target,
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
    core: int,
    workdir: Path,
) -> LoadResult:
    """``wrk -t1 -c{concurrency}`` for ``seconds`` on ``core``; statuses and samples kept."""
    out = workdir / f"wrk-{target.name}-{concurrency}.out"
    out.unlink(missing_ok=True)
    script = workdir / "token.lua"
    script.write_text(
        WRK_SCRIPT.format(
            body=lua_string(BODY.decode("ascii")),
            authorization=lua_string(target.authorization),
            out=lua_string(str(out)),
        )
    )
    duration = max(1, math.ceil(seconds))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        "wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "--timeout", "10s", "--latency",
        "-s", str(script), target.token_url, "--",
        str(max_requests), str(SAMPLE_EVERY), str(MAX_SAMPLES),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    if done.returncode != 0 or not out.exists():
        raise BenchFailure(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    requests = 0
    duration_us = 0
    percentiles: dict[float, float] = {}
    statuses: dict[int, int] = {}
    samples: list[bytes] = []
    failures: list[str] = []
    socket_errors: list[int] = []
    capped = False
    for line in out.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "duration_us":
            duration_us = int(rest)
        elif kind == "requests":
            requests = int(rest)
        elif kind == "capped_us" and int(rest):
            # The run stopped at --max-requests: wrk still reports its full -d.
            duration_us = int(rest)
            capped = True
        elif kind == "socket_errors":
            socket_errors = [int(n) for n in rest.split()]
        elif kind == "percentile":
            p, value = rest.split()
            percentiles[float(p) / 100] = int(value) / 1e6
        elif kind == "status":
            status, n = rest.split()
            statuses[int(status)] = statuses.get(int(status), 0) + int(n)
        elif kind == "sample":
            samples.append(rest.encode())
        elif kind == "failure":
            failures.append(rest[:300])
    connect, read, write, _status, timeout = socket_errors or [0] * 5
    if connect or read or write or timeout:
        failures.append(
            f"wrk socket errors: connect {connect}, read {read}, write {write}, timeout {timeout}"
        )
    counted = sum(statuses.values())
    if counted != requests:
        # wrk counts a reply cut by the stop at the end; the Lua callback does not.
        failures.append(f"wrk counted {requests} replies, the script {counted}")
    return LoadResult(
        target.name,
        "wrk",
        concurrency,
        counted,
        duration_us / 1e6,
        percentiles,
        statuses,
        samples,
        failures,
        generator_cpu=cpu / (duration_us / 1e6) if duration_us else 0.0,
        capped=capped,
    )


async def _python_load(
    target: Target, concurrency: int, seconds: float, max_requests: int
) -> LoadResult:
    """An asyncio HTTP/1.1 keep-alive client: raw sockets, prebuilt request bytes."""
    url = urlsplit(target.token_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    request = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Authorization: {target.authorization}\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    latencies: list[int] = []
    statuses: dict[int, int] = {}
    samples: list[bytes] = []
    failures: list[str] = []
    issued = 0
    clock = time.perf_counter_ns
    cpu_start = time.process_time()
    start = clock()
    deadline = start + int(seconds * 1e9)

    async def connection() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while issued < max_requests and clock() < deadline:
                issued += 1
                t0 = clock()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length is None:
                    raise BenchFailure(f"{target.name}: a reply without Content-Length")
                body = await reader.readexactly(length)
                latencies.append(clock() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    if len(failures) < 5:
                        failures.append(f"{status} {body[:300].decode(errors='replace')}")
                elif (len(latencies) - 1) % SAMPLE_EVERY == 0 and len(samples) < MAX_SAMPLES:
                    samples.append(body)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = (clock() - start) / 1e9
    cpu = time.process_time() - cpu_start
    ordered = sorted(latencies)

    def nearest_rank(fraction: float) -> float:
        if not ordered:
            return 0.0
        return ordered[max(1, math.ceil(fraction * len(ordered))) - 1] / 1e9

    percentiles = {f: nearest_rank(f) for f in (0.5, 0.9, 0.99, 0.999)}
    return LoadResult(
        target.name,
        "asyncio client",
        concurrency,
        len(latencies),
        elapsed,
        percentiles,
        statuses,
        samples,
        failures,
        generator_cpu=cpu / elapsed if elapsed else 0.0,
        capped=issued >= max_requests,
    )


def load_python(
    target: Target, *, concurrency: int, seconds: float, max_requests: int, core: int
) -> LoadResult:
    """The asyncio client in this process, pinned to ``core`` while it runs."""
    before = available_cores()
    pin({core})
    try:
        return asyncio.run(_python_load(target, concurrency, seconds, max_requests))
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise BenchFailure(f"{target.name}: {type(exc).__name__}: {exc}") from exc
    finally:
        pin(set(before))


# -- checking replies ------------------------------------------------------------------


def fetch_jwks(target: Target) -> dict[str, Any]:
    """kid -> public key, from the target's JWKS."""
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        reply = client.get(target.jwks_url)
    if reply.status_code != 200:
        raise BenchFailure(f"{target.name}: JWKS answered {reply.status_code}")
    keys = {}
    for jwk in jwt.PyJWKSet.from_dict(reply.json()).keys:
        if jwk.key_id:
            keys[jwk.key_id] = jwk.key
    return keys


def check_reply(target: Target, body: bytes, keys: dict[str, Any], seen: set[str]) -> str | None:
    """None if ``body`` is a token response with a valid RFC 9068 ES256 token, else why not."""
    try:
        reply = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if str(reply.get("token_type", "")).lower() != "bearer":
        return f"token_type {reply.get('token_type')!r}"
    if reply.get("expires_in") != TOKEN_LIFETIME:
        return f"expires_in {reply.get('expires_in')!r}"
    if sorted(str(reply.get("scope", "")).split()) != sorted(SCOPES):
        return f"scope {reply.get('scope')!r}"
    token = reply.get("access_token")
    if not isinstance(token, str):
        return "no access_token"
    try:
        header = jwt.get_unverified_header(token)
        # RFC 9068 §2.1: typ at+jwt; here always ES256, from a key the JWKS publishes.
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            return f"typ {header.get('typ')!r}"
        if header.get("alg") != "ES256":
            return f"alg {header.get('alg')!r}"
        key = keys.get(str(header.get("kid")))
        if key is None:
            return f"kid {header.get('kid')!r} is not in the JWKS"
        claims = jwt.decode(
            token,
            key=key,
            algorithms=["ES256"],
            audience=target.audience,
            issuer=target.issuer,
            leeway=60,
            options={"require": ["exp", "iat", "jti", "sub", "client_id", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        return f"token does not verify: {exc}"
    if claims["client_id"] != target.client_id or claims["sub"] != target.client_id:
        return f"token for {claims['client_id']!r} / {claims['sub']!r}"
    if claims["exp"] - claims["iat"] != TOKEN_LIFETIME:
        return f"token lifetime {claims['exp'] - claims['iat']} s"
    if claims["jti"] in seen:
        return f"jti {claims['jti']!r} issued twice"
    seen.add(claims["jti"])
    return None


def check_result(target: Target, result: LoadResult, keys: dict[str, Any]) -> None:
    """Abort on any non-200 or socket error; verify every sampled token."""
    if result.failures or result.non_200:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses.items()))
        first = result.failures[0] if result.failures else "(no body kept)"
        raise BenchFailure(
            f"{target.name}, {result.concurrency} connections: {result.non_200} non-200 "
            f"replies or errors ({statuses}); first: {first}\nserver log:\n"
            f"{log_tail(target.log_path)}"
        )
    if not result.requests:
        raise BenchFailure(f"{target.name}: no reply")
    seen: set[str] = set()
    for i, body in enumerate(result.samples):
        problem = check_reply(target, body, keys, seen)
        if problem:
            raise BenchFailure(f"{target.name}: sampled reply {i}: {problem}")
    result.verified = len(result.samples)


def bench_target(
    target: Target, args: argparse.Namespace, core: int, workdir: Path
) -> list[LoadResult]:
    """Warm up, then one row at ``--concurrency`` and one with a single connection."""
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        reply = client.post(
            target.token_url,
            content=BODY,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": target.authorization,
            },
        )
    keys = fetch_jwks(target)
    problem = f"HTTP {reply.status_code}" if reply.status_code != 200 else None
    problem = problem or check_reply(target, reply.content, keys, set())
    if problem:
        raise BenchFailure(
            f"{target.name}: first token request: {problem}: {reply.text[:300]}\n"
            f"{log_tail(target.log_path)}"
        )

    def run(concurrency: int, seconds: float) -> LoadResult:
        before = cpu_seconds(target.process.pid)
        if args.generator == "wrk":
            result = load_wrk(
                target, concurrency=concurrency, seconds=seconds,
                max_requests=args.max_requests, core=core, workdir=workdir,
            )  # fmt: skip
        else:
            result = load_python(
                target, concurrency=concurrency, seconds=seconds,
                max_requests=args.max_requests, core=core,
            )  # fmt: skip
        if result.requests:
            result.server_cpu = (cpu_seconds(target.process.pid) - before) / result.requests
        return result

    say(f"{target.name}: warm-up, {WARM_UP_SECONDS:g} s at {args.concurrency} connections")
    check_result(target, run(args.concurrency, WARM_UP_SECONDS), keys)
    results = []
    for concurrency in dict.fromkeys((args.concurrency, 1)):
        say(
            f"{target.name}: {args.seconds:g} s, {concurrency} connection(s), "
            f"{args.generator} on core {core}"
        )
        result = run(concurrency, args.seconds)
        check_result(target, result, keys)
        print_result(result)
        results.append(result)
    return results


# -- c. where Authority's time goes ------------------------------------------------


@dataclass
class ProfileStep:
    label: str
    share: float  # of the profiled in-process request time


@dataclass
class Profile:
    threads_s: float  # per request, in-process, FastAPI's thread pool as served
    inline_s: float  # per request, in-process, sync code run inline (no thread hand-off)
    hand_offs: float  # thread-pool hand-offs per request
    sign_s: float  # one ES256 signature through the file key store
    steps: list[ProfileStep]
    profiled_requests: int
    packages: list[tuple[str, float]]  # own time by package, shares


def _code(obj: Any) -> CodeType | None:
    """The code object of a function (through decorators), or None."""
    obj = getattr(obj, "__func__", obj)
    obj = getattr(obj, "__wrapped__", obj)
    code = getattr(obj, "__code__", None)
    return code if isinstance(code, CodeType) else None


def _profile_steps() -> list[tuple[str, list[Any], list[Any]]]:
    """(label, functions counted in, functions taken out): distinct pieces of work."""
    from authority.db.session import Database
    from authority.identity.throttle import Throttle
    from authority.oidc import cache, client_credentials, clients, server, tokens
    from authority.pki.file_keystore import FileKeyStore
    from authority.web import metrics, oauth

    return [
        (
            "client lookup: `ProviderCache.held` / `ProviderCache.client` (a copy kept up "
            "to 2 s; `find_client`, an ORM select, on a miss)",
            [cache.ProviderCache.held, cache.ProviderCache.client],
            [],
        ),
        (
            "signing-key lookup: `ProviderCache.signing_key` (a copy kept up to 2 s; "
            "`current_signing_key` on a miss)",
            [cache.ProviderCache.signing_key],
            [],
        ),
        (
            "throttle: `Throttle.known_clear` and its keys (`Throttle.client_keys`)",
            [Throttle.known_clear, Throttle.client_keys],
            [],
        ),
        (
            "hot path's own checks: content type, form parsing, claimed client id "
            "(`HotTokenEndpoint` less what is listed here)",
            [oauth.HotTokenEndpoint.__call__],
            [
                client_credentials.token_from_memory,
                Throttle.known_clear,
                Throttle.client_keys,
                cache.ProviderCache.held,
                server.json_body,
            ],
        ),
        (
            "unit of work (requests not answered from memory): `Database.transaction`",
            [Database.transaction],
            [],
        ),
        (
            "form body and authlib request (requests not answered from memory): "
            "`oauth_request`",
            [oauth.oauth_request],
            [],
        ),
        (
            "authlib grant (requests not answered from memory): "
            "`AuthorityServer.create_token_response`",
            [server.AuthorityServer.create_token_response],
            [tokens.jws_compact],
        ),
        (
            "client-credentials checks from memory: `token_from_memory`, less the token "
            "and the secret check",
            [client_credentials.token_from_memory],
            [tokens.sign_access_token, clients.ClientSecretKey.matches, cache.ProviderCache.held],
        ),
        ("ES256 signature: `FileKeyStore.sign`", [FileKeyStore.sign], []),
        (
            "JWS assembly: claims, JSON, base64url, DER to R‖S (`sign_access_token` less "
            "the signature)",
            [tokens.sign_access_token],
            [FileKeyStore.sign],
        ),
        (
            "HMAC-SHA256 secret check: `ClientSecretKey.matches`",
            [clients.ClientSecretKey.matches],
            [],
        ),
        ("response body: `json_body`", [server.json_body], []),
        (
            "response (requests not answered from memory): `to_response`",
            [oauth.to_response],
            [],
        ),
        (
            "metrics and access log: `Metrics.observe`, `Logger.info`",
            [metrics.Metrics.observe, logging.Logger.info],
            [],
        ),
    ]  # fmt: skip


def profile_authority(setup: AuthoritySetup, core: int) -> Profile:
    """The ASGI app in this process (server stopped, same database and keys), on ``core``."""
    import anyio.to_thread

    from authority.app import create_app
    from authority.config import load_settings
    from authority.logs import configure_logging
    from authority.oidc.tokens import TOKEN_PURPOSE, current_signing_key

    settings = load_settings(setup.env)
    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    instance = app.state.instance
    url = urlsplit(settings.issuer)
    pair = f"{setup.client_id}:{setup.client_secret}".encode()
    headers = [
        (b"host", url.netloc.encode()),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"authorization", b"Basic " + base64.b64encode(pair)),
        (b"content-length", str(len(BODY)).encode()),
    ]

    async def call() -> None:
        """One POST /oauth/token straight into the ASGI app (no HTTP client, no socket)."""
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/oauth/token",
            "raw_path": b"/oauth/token", "root_path": "", "query_string": b"",
            "headers": headers, "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", url.port or 80), "state": {},
        }  # fmt: skip
        received = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": BODY, "more_body": False}
            await asyncio.sleep(3600)  # pragma: no cover - nothing waits for a disconnect
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        if status != 200:
            raise BenchFailure(f"in-process POST /oauth/token answered {status}")

    original = anyio.to_thread.run_sync
    hand_offs = 0

    async def inline(func: Callable[..., Any], *args: Any, **_kwargs: Any) -> Any:
        nonlocal hand_offs
        hand_offs += 1
        return func(*args)

    async def per_request(seconds: float) -> float:
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            await call()
            count += 1
        return (time.perf_counter() - start) / count

    async def main() -> tuple[float, float, float, cProfile.Profile, int]:
        nonlocal hand_offs
        try:
            anyio.to_thread.run_sync = inline  # type: ignore[assignment]
            for _ in range(20):  # warm-up; count the hand-offs of one request
                await call()
            hand_offs = 0
            for _ in range(10):
                await call()
            per_call = hand_offs / 10
            # Alternate short spells of each mode, so that a noisy neighbour on this
            # shared machine slows both alike; keep each mode's median.
            as_served: list[float] = []
            inlined: list[float] = []
            spell = IN_PROCESS_SECONDS / IN_PROCESS_SPELLS
            for _ in range(IN_PROCESS_SPELLS):
                anyio.to_thread.run_sync = original  # type: ignore[assignment]
                as_served.append(await per_request(spell))
                anyio.to_thread.run_sync = inline  # type: ignore[assignment]
                inlined.append(await per_request(spell))
            profiler = cProfile.Profile()
            count = 0
            start = time.perf_counter()
            profiler.enable()
            while time.perf_counter() - start < IN_PROCESS_SECONDS:
                await call()
                count += 1
            profiler.disable()
        finally:
            anyio.to_thread.run_sync = original  # type: ignore[assignment]
        return statistics.median(as_served), statistics.median(inlined), per_call, profiler, count

    before = available_cores()
    pin({core})
    try:
        threads_s, inline_s, per_request, profiler, count = asyncio.run(main())
        with instance.database.transaction() as session:
            key = current_signing_key(session, TOKEN_PURPOSE)
            handle = key.key_handle if key is not None else None
        sign_s = 0.0
        if handle is not None:
            message = b"e" * 350  # a token's signing input is about this long
            instance.keystore.sign(handle, message)
            rounds = 2000
            start = time.perf_counter()
            for _ in range(rounds):
                instance.keystore.sign(handle, message)
            sign_s = (time.perf_counter() - start) / rounds
    finally:
        pin(set(before))
        instance.close()

    stats = pstats.Stats(profiler)
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def cumulative(function: Any) -> float:
        code = _code(function)
        if code is None:
            return 0.0
        entry = table.get((code.co_filename, code.co_firstlineno, code.co_name))
        return float(entry[3]) if entry else 0.0

    total = cumulative(call)
    steps = []
    for label, plus, minus in _profile_steps():
        value = sum(cumulative(f) for f in plus) - sum(cumulative(f) for f in minus)
        steps.append(ProfileStep(label, max(0.0, value) / total if total else 0.0))
    steps.sort(key=lambda step: step.share, reverse=True)
    rest = 1.0 - sum(step.share for step in steps)
    steps.append(
        ProfileStep(
            "the rest: the ASGI layers crossed (FastAPI's entry, Starlette's error "
            "middleware, the hot path: request id, body read, response messages), asyncio",
            max(0.0, rest),
        )
    )
    packages = package_shares(table)
    return Profile(threads_s, inline_s, per_request, sign_s, steps, count, packages)


# Own time by where the code lives. C functions ("~" in pstats) named here keep
# their own bucket; other C calls (isinstance, dict.get...) go to their caller's.
_C_BUCKETS = (
    ("sqlite3", "SQLite (C)"),
    ("cryptography", "cryptography, hmac, hashlib"),
    ("_hashlib", "cryptography, hmac, hashlib"),
    ("_hmac", "cryptography, hmac, hashlib"),
    ("_json", "json"),
)
_PATH_BUCKETS = (
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/fastapi/", "FastAPI and Starlette"),
    ("/starlette/", "FastAPI and Starlette"),
    ("/authlib/", "Authlib"),
    ("/python_multipart/", "python-multipart"),
    ("/multipart/", "python-multipart"),
    ("/prometheus_client/", "prometheus_client and logging"),
    ("/logging/", "prometheus_client and logging"),
    ("/json/", "json"),
    ("/hmac.py", "cryptography, hmac, hashlib"),
    ("/cryptography/", "cryptography, hmac, hashlib"),
    ("/jwt/", "PyJWT"),
    ("/pydantic", "pydantic"),
    ("/authority/", "Authority's own code"),
    ("/anyio/", "asyncio, anyio and the rest of the standard library"),
    ("/bench/", "the benchmark's ASGI driver"),
)


def _bucket(key: tuple[str, int, str]) -> str | None:
    filename, _line, name = key
    if filename == "~":
        return next((label for needle, label in _C_BUCKETS if needle in name), None)
    path = filename.replace(os.sep, "/")
    for needle, label in _PATH_BUCKETS:
        if needle in path:
            return label
    return "asyncio, anyio and the rest of the standard library"


def package_shares(table: dict[tuple[str, int, str], tuple[Any, ...]]) -> list[tuple[str, float]]:
    """Own (exclusive) time per package, as shares of the whole, largest first."""
    own: dict[str, float] = {}
    for key, (_cc, _nc, tottime, _ct, callers) in table.items():
        bucket = _bucket(key)
        if bucket is not None:
            own[bucket] = own.get(bucket, 0.0) + tottime
            continue
        # An anonymous C call: charge each caller with the time it spent in it.
        for caller, edge in callers.items():
            caller_bucket = _bucket(caller) or "asyncio, anyio and the rest of the standard library"
            own[caller_bucket] = own.get(caller_bucket, 0.0) + edge[2]
    own.pop("the benchmark's ASGI driver", None)
    measured = sum(own.values()) or 1.0
    shares = [(label, seconds / measured) for label, seconds in own.items()]
    return sorted(shares, key=lambda item: item[1], reverse=True)


def summary_steps(profile: Profile) -> list[str]:
    """The profile's named steps of 1 % or more, the small ones on one line, the rest."""
    named, rest = profile.steps[:-1], profile.steps[-1]
    lines = [f"{step.share:.0%} {step.label}" for step in named if step.share >= 0.005]
    small = [step.label.split(":")[0] for step in named if step.share < 0.005]
    lines.append(f"{rest.share:.0%} {rest.label}")
    if small:
        lines.append("under 1 % each: " + "; ".join(small))
    return lines


def summary_packages(profile: Profile, top: int = 6) -> str:
    shown = [f"{label} {share:.0%}" for label, share in profile.packages[:top]]
    others = sum(share for _label, share in profile.packages[top:])
    return ", ".join(shown) + (f", others {others:.0%}" if others >= 0.005 else "")


# -- reporting -----------------------------------------------------------------------


def fmt_latency(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.2f} ms"


def print_result(r: LoadResult) -> None:
    say(
        f"{r.target:<14} {r.concurrency:>2} conn  {fmt_rate(r.rate):>7} tokens/s  "
        f"p50 {fmt_latency(r.percentiles[0.5]):>8}  p99 {fmt_latency(r.percentiles[0.99]):>9}"
        f"  ({r.requests:,} replies, all 200; {r.verified} tokens verified; "
        f"generator at {r.generator_cpu:.0%} of its core; server CPU "
        f"{fmt_latency(r.server_cpu)} a token)"
        + (" [stopped at --max-requests]" if r.capped else "")
    )


def machine_facts(generator: str, busy: float | None) -> dict[str, str]:
    from cryptography.hazmat.backends.openssl.backend import backend

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    node = "absent"
    if shutil.which("node"):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_stack": (
            f"uvicorn {python_package('uvicorn')} ({http} HTTP parser, {loop} event loop), "
            f"FastAPI {python_package('fastapi')}, Starlette {python_package('starlette')}, "
            f"Authlib {python_package('authlib')}, SQLAlchemy {python_package('sqlalchemy')}, "
            f"cryptography {python_package('cryptography')} ({backend.openssl_version_text()})"
        ),
        "node": node.strip(),
        "oidc_provider": package_version(NODE_DIR, "oidc-provider"),
        "jose": package_version(NODE_DIR, "jose"),
        "generator": generator,
        "busy": "unknown" if busy is None else f"{busy:.0%}",
    }


def bullet(text: str) -> list[str]:
    return textwrap.wrap(
        text, width=78, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False
    )


def render_section(
    results: list[LoadResult],
    profile: Profile | None,
    notes: list[str],
    facts: dict[str, str],
    command: str,
    args: argparse.Namespace,
) -> str:
    by_key = {(r.target, r.concurrency): r for r in results}
    c = args.concurrency
    lines = [SECTION_HEADING, "", f"Measured {facts['date']} with:", "", "```sh"]
    lines += [
        "apt-get install -y wrk                   # the load generator (optional)",
        "(cd bench/oidc-provider && npm ci)       # the reference, once",
        command,
        "```",
        "",
    ]
    lines += paragraph(
        "(`--write` rewrites this section; run it again to refresh.) The request is "
        "`POST /oauth/token` (oidc-provider: `POST /token`) with the body "
        f"`{BODY.decode()}` and HTTP Basic client authentication "
        "(client_secret_basic); the reply is an RFC 9068 JWT access token signed with "
        "ES256 (P-256), valid 10 minutes. **Authority**: `authority serve --workers 1` "
        "(SQLite, file key store, set up by `authority init` in a temporary directory, "
        "log level WARNING) with the API client of `authority agency create`. "
        f"**oidc-provider** {facts['oidc_provider']} (panva's OpenID Certified provider, "
        f"on Node.js {facts['node']}): `bench/oidc-provider/server.mjs`, one Node process, "
        "one static client_secret_basic client, ES256 JWT access tokens for a default "
        "resource indicator. Each server is pinned to core 0 (with all its threads); "
        f"the load generator ({facts['generator']}) runs on core 1 with keep-alive "
        f"connections, {args.seconds:g} s per row after a {WARM_UP_SECONDS:g} s warm-up, "
        f"at most {args.max_requests:,} requests per row. Every reply was 200; every "
        f"{SAMPLE_EVERY}th token (up to {MAX_SAMPLES:,} per row) was verified with PyJWT "
        "against the server's JWKS: ES256, typ at+jwt, issuer, audience, client, "
        "lifetime, scope, unique jti."
    )
    header = (
        f"| server | tokens/s, {c} connections | p50 | p99 | server CPU a token "
        "| tokens/s, 1 connection | p50 | p99 | replies |"
    )
    lines += [header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in ("Authority", "oidc-provider"):
        many, one = by_key.get((name, c)), by_key.get((name, 1))
        if many is None or one is None:
            lines.append(f"| {name} | not measured | | | | | | | |")
            continue
        lines.append(
            f"| {name} | {fmt_rate(many.rate)} | {fmt_latency(many.percentiles[0.5])} "
            f"| {fmt_latency(many.percentiles[0.99])} | {fmt_latency(many.server_cpu)} "
            f"| {fmt_rate(one.rate)} "
            f"| {fmt_latency(one.percentiles[0.5])} | {fmt_latency(one.percentiles[0.99])} "
            f"| {many.requests:,} + {one.requests:,} |"
        )
    lines.append("")
    ours, theirs = by_key.get(("Authority", c)), by_key.get(("oidc-provider", c))
    if ours and theirs and theirs.rate:
        ratio = ours.rate / theirs.rate
        verdict = "met" if ratio >= TARGET_RATIO else "not met"
        one_ours, one_theirs = by_key.get(("Authority", 1)), by_key.get(("oidc-provider", 1))
        latency_ratio = ""
        if one_ours and one_theirs and one_theirs.percentiles[0.5]:
            slower = one_ours.percentiles[0.5] / one_theirs.percentiles[0.5]
            latency_ratio = (
                f" A lone request takes {slower:.1f}× as long on Authority as on "
                "oidc-provider (p50, 1 connection)."
            )
        cpu_ratio = ""
        if ours.server_cpu > 0 and theirs.server_cpu > 0:
            cpu_ratio = (
                f" In server CPU a token (all the server's threads, less sensitive to other "
                f"load on the machine): {fmt_latency(ours.server_cpu)} against "
                f"{fmt_latency(theirs.server_cpu)}, "
                f"{theirs.server_cpu / ours.server_cpu:.2f}× as many tokens per CPU second."
            )
        lines += paragraph(
            f"**Authority / oidc-provider: {ratio:.2f}×** in tokens per second at {c} "
            f"connections. The target is {TARGET_RATIO:g}×: **{verdict}**.{latency_ratio}"
            f"{cpu_ratio}"
        )
    busiest = max((r.generator_cpu for r in results), default=0.0)
    capped = [f"{r.target} at {r.concurrency}" for r in results if r.capped]
    if capped:
        notes = [
            *notes,
            f"Rows stopped at --max-requests {args.max_requests:,} before {args.seconds:g} s: "
            f"{', '.join(capped)} connection(s); their rate is over the time they ran.",
        ]
    lines += paragraph(
        f"The load generator used at most {busiest:.0%} of its core in any row, so it "
        "was not the limit. Latency runs from sending the request to reading the whole reply; with "
        f"{c} connections it includes queueing (p50 ≈ connections / throughput). "
        "What the two do per token: oidc-provider holds its client in memory and compares "
        "the secret directly; Authority keeps copies of the client, the current signing "
        "key and the client's throttle state for up to 2 s (docs/oauth.md), checks an "
        "HMAC of the secret, and, while those copies are fresh, answers on the event loop "
        "(ahead of the middleware chain, authority/web/hot.py: no routing, no thread-pool "
        "hand-off, no database); otherwise in "
        "one thread-pool hand-off. Neither stores the token. "
        "oidc-provider signs with WebCrypto (off the event loop, on libuv's thread "
        "pool, pinned to the same core); Authority signs through its key store."
    )
    if ours is not None and ours.percentiles[0.99] > 10 * ours.percentiles[0.5]:
        tail = ours.percentiles[0.99] / ours.percentiles[0.5]
        text = (
            f"Authority's p99 at {c} connections is {tail:.0f}× its p50: a tail of "
            "requests that wait."
        )
        if sqlite_begins_immediate():
            text += (
                " Every unit of work on SQLite starts with `BEGIN IMMEDIATE` "
                "(`authority/db/session.py`), so this read-only request takes the "
                "database's write lock, and concurrent token requests queue for it "
                "through SQLite's busy handler, which retries after sleeps of up to "
                "100 ms."
            )
        lines += paragraph(text)
    for note in notes:
        lines += bullet(note)
    if notes:
        lines.append("")
    alone = by_key.get(("Authority", 1))
    if profile is not None and alone is not None:
        lines += render_profile(profile, alone)
    lines += ["Machine:", ""]
    for fact in (
        f"CPU: {facts['cpu']}, nproc {facts['nproc']}, memory {facts['memory']}",
        f"OS: {facts['os']}",
        f"Python {facts['python']}: {facts['python_stack']}",
        f"Node.js {facts['node']}: oidc-provider {facts['oidc_provider']}, jose {facts['jose']}",
        f"load generator: {facts['generator']}",
        f"CPU busy with other work in the second before the run: {facts['busy']}. This is "
        "a virtual machine on a shared host: compare rows within one run, not across runs.",
    ):
        lines += bullet(fact)
    lines.append("")
    return "\n".join(lines)


def sqlite_begins_immediate() -> bool:
    """Whether Authority opens every SQLite transaction with BEGIN IMMEDIATE."""
    try:
        from authority.db import session

        return "BEGIN IMMEDIATE" in inspect.getsource(session._sqlite_begin)
    except (ImportError, AttributeError, OSError, TypeError):
        return False


def render_profile(profile: Profile, alone: LoadResult) -> list[str]:
    """Where the time goes, against ``alone``: Authority's one-connection row."""
    http_s = 1 / alone.rate if alone.rate else 0.0
    server_s = http_s - profile.threads_s
    hop_s = max(0.0, profile.threads_s - profile.inline_s)
    lines = ["### Token endpoint: where Authority's time goes", ""]
    text = (
        f"With one connection, one request at a time, a token takes {fmt_latency(http_s)} "
        "over HTTP (1 / throughput, the client's share included). Sent one at a time "
        "straight into the ASGI app in-process on the same core (no socket, no HTTP "
        "parsing; medians of alternating spells), the request "
        f"takes {fmt_latency(profile.threads_s)} as served, and "
        f"{fmt_latency(profile.inline_s)} when its {profile.hand_offs:.0f} "
        "thread-pool hand-off(s) per request run inline instead. "
    )
    if server_s > 0 and http_s:
        text += (
            "Read together, and roughly (the rows ran at different moments): about "
            f"{fmt_latency(server_s)} ({server_s / http_s:.0%}) goes to uvicorn, HTTP "
            f"parsing and sockets, about {fmt_latency(hop_s)} ({hop_s / http_s:.0%}) to "
            f"the thread hand-offs and {fmt_latency(profile.inline_s)} "
            f"({profile.inline_s / http_s:.0%}) to the application itself. "
        )
    else:
        text += (
            "In this run the in-process request took longer than one over HTTP (other "
            "work on the machine, or thread wake-ups that concurrent requests overlap), so "
            "the share of uvicorn and sockets cannot be read from it. "
        )
    text += (
        "One ES256 signature through the file key store costs "
        f"{fmt_latency(profile.sign_s)} ({profile.sign_s / http_s:.1%} of a token)."
        if http_s
        else ""
    )
    lines += paragraph(text)
    lines += paragraph(
        "Inside the application (cProfile of the inline request, "
        f"{profile.profiled_requests:,} requests; cProfile's per-call overhead inflates "
        "Python-heavy steps such as SQLAlchemy's relative to C calls such as the "
        "signature), the share of each piece of work:"
    )
    for line in summary_steps(profile):
        lines += bullet(line)
    lines.append("")
    lines += paragraph(
        "The same profile by where the code lives (own time, C calls charged to their "
        f"caller): {summary_packages(profile)}."
    )
    return lines


# -- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="duration of each row (default 10)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="keep-alive connections (default 8)"
    )
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="cap per row (default 100000)"
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk if installed (auto), or the asyncio client",
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the in-process profile of Authority"
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="rewrite the Token endpoint section of docs/performance.md",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 60:
        parser.error("--seconds must be between 1 and 60")
    if not 1 <= args.concurrency <= 64:
        parser.error("--concurrency must be between 1 and 64")
    if not 1 <= args.max_requests <= 1_000_000:
        parser.error("--max-requests must be between 1 and 1000000")
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    elif args.generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    return args


def run(args: argparse.Namespace) -> int:
    cores = available_cores()
    server_core = cores[0]
    client_core = cores[1] if len(cores) > 1 else cores[0]
    notes: list[str] = []
    if client_core == server_core:
        notes.append("Only one core was available: the servers and the load shared it.")
    if args.generator == "python":
        notes.append(
            "wrk was not installed: the load came from the script's asyncio client, which "
            "may itself limit the faster server's rate."
        )
    generator = wrk_version() if args.generator == "wrk" else "the script's asyncio client"
    results: list[LoadResult] = []
    profile: Profile | None = None
    busy = cpu_busy(1.0)
    if busy is not None and busy >= BUSY_SHARE:
        notes.append(
            f"Other processes were busy when this ran ({busy:.0%} of the machine's CPU time "
            "in the second before it started): the rows are slowed by them, unevenly. Run "
            "it again on a quiet machine for clean figures."
        )
        say(f"warning: other processes use {busy:.0%} of the CPU: they will disturb the figures")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="authority-token-bench-") as temp:
        directory = Path(temp)
        setup = set_up_authority(directory / "authority")
        say("a. Authority")
        with authority_server(setup, server_core) as target:
            results += bench_target(target, args, client_core, directory)
        say("b. oidc-provider")
        missing = node_reference_missing()
        if missing:
            notes.append(f"oidc-provider rows skipped: {missing}.")
            say(f"skipped: {missing}")
        else:
            # A secret of the same shape as Authority's (32 random bytes, base64url).
            secret = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
            with node_server(directory, server_core, "bench-client", secret) as target:
                results += bench_target(target, args, client_core, directory)
            if target.warnings:
                notes.append(
                    "oidc-provider warned at start-up: "
                    + " ".join(f"“{w}”" for w in target.warnings)
                    + " (its in-memory adapter holds no JWT access token: it does not store them)."
                )
        if not args.no_profile:
            say("c. where Authority's time goes (in-process, core 0)")
            profile = profile_authority(setup, server_core)
            say(
                f"in-process: {fmt_latency(profile.threads_s)} per request as served, "
                f"{fmt_latency(profile.inline_s)} with {profile.hand_offs:.0f} thread "
                f"hand-offs inlined; ES256 sign {fmt_latency(profile.sign_s)}"
            )
            for line in summary_steps(profile):
                say(f"  {line}")
            say(f"  by package: {summary_packages(profile)}")
    by_key = {(r.target, r.concurrency): r for r in results}
    ours, theirs = (
        by_key.get(("Authority", args.concurrency)),
        by_key.get(("oidc-provider", args.concurrency)),
    )
    if ours and theirs:
        say(
            f"Authority / oidc-provider at {args.concurrency} connections: "
            f"{ours.rate / theirs.rate:.2f}x (target {TARGET_RATIO:g}x)"
        )
    say(f"done in {time.monotonic() - began:.0f} s")
    if args.write:
        facts = machine_facts(generator or "wrk", busy)
        command = shlex.join([python_path(), "bench/token_bench.py", *sys.argv[1:]])
        write_section(
            SECTION_HEADING, render_section(results, profile, notes, facts, command, args)
        )
        say(f"wrote the Token endpoint section of {PERFORMANCE_DOC.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through every `finally`: servers, temp dir

    signal.signal(signal.SIGTERM, terminated)
    try:
        return run(args)
    except BenchFailure as exc:
        print(f"token_bench: aborted: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("token_bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
