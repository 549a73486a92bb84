"""QR verifications per second: in process and through `POST /api/v1/verify` on one core.

Run from the repository root:

    .venv/bin/python bench/verify_bench.py [--seconds 10] [--pool 1000] [--write]

Sets up a temporary instance (`authority init`, `authority demo`: SQLite, file
key store), starts ``authority serve --workers 1`` pinned to core 0, issues one
licence and a pool of ``--pool`` distinct licences (``POST
/api/v1/licences/batch``), then measures, for the single licence and for the
pool (its QR payloads cycled through, so the caches are not measured only at
their best):

1. ``POST /api/v1/verify`` with ``{"qr": ...}``, driven by wrk (one thread,
   ``--connections`` keep-alive connections, a Lua script cycling through the
   payloads) pinned to core 1: verifications per second, p50 and p99. Each
   payload is verified once first (a first verification also checks the
   signature and loads what the licence states); every reply must be 200 and
   say VALID;
2. the same verification in process (``verify_qr_online``: the server's own
   path, with its caches), pinned to core 0: microseconds per verification,
   wall clock and CPU time;
3. ``openssl speed -seconds 3 ecdsap256`` on core 0 (verify per second), the
   physical floor of one signature check.

Only 127.0.0.1 is contacted; each row is bounded in time; the server and the
temporary directory are removed on every exit. ``--write`` replaces the
"## Verification" section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from harness import (
    PASSPHRASE,
    ROOT,
    SERVER_START_TIMEOUT,
    BenchFailure,
    authority_command,
    cpu_seconds,
    fmt_rate,
    free_port,
    log_tail,
    paragraph,
    pin,
    run_cli,
    say,
    stop,
    write_section,
)

SECTION_HEADING = "## Verification"
TARGET = 3000.0
MAX_BATCH = 1000  # POST /api/v1/licences/batch takes at most this many


@dataclass
class Setup:
    """The temporary instance: its environment, URL and demo agency."""

    directory: Path
    env: dict[str, str]
    url: str
    agency: dict[str, Any]


def set_up(directory: Path) -> Setup:
    port = free_port()
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
    say("authority init and authority demo (temporary SQLite database and file key store)")
    run_cli(env, "init")
    demo = run_cli(env, "demo")
    return Setup(directory, env, f"http://127.0.0.1:{port}", demo["agency"])


@contextlib.contextmanager
def server(setup: Setup, core: int) -> Iterator[subprocess.Popen[bytes]]:
    """`authority serve --workers 1` pinned to ``core``; always stopped."""
    log_path = setup.directory / "serve.log"
    port = setup.url.rsplit(":", 1)[1]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*authority_command(), "serve", "--host", "127.0.0.1", "--port", port,
             "--workers", "1"],
            env=setup.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, preexec_fn=lambda: os.sched_setaffinity(0, {core}),
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not it
        )  # fmt: skip
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise BenchFailure(f"authority serve exited:\n{log_tail(log_path)}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{setup.url}/readyz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchFailure(f"authority serve not ready:\n{log_tail(log_path)}")
                time.sleep(0.1)
        say(f"authority serve --workers 1 ready at {setup.url}, pinned to core {core}")
        yield process
    finally:
        stop(process)


def issue(setup: Setup, pool: int) -> tuple[str, list[str]]:
    """One licence's QR URL, and ``pool`` other licences' (issued by batches)."""
    agency = setup.agency
    with httpx.Client(base_url=setup.url, trust_env=False, timeout=300.0) as client:
        token = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(agency["client_id"], agency["client_secret"]),
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        example = agency["licence_example"]
        single = client.post("/api/v1/licences", json=example, headers=headers)
        if single.status_code != 201:
            raise BenchFailure(f"issuing a licence: HTTP {single.status_code} {single.text[:300]}")
        urls: list[str] = []
        while len(urls) < pool:
            first, count = len(urls), min(MAX_BATCH, pool - len(urls))
            bodies = [
                {**example, "holder": {**example["holder"], "name": f"Bench Holder {i}"}}
                for i in range(first, first + count)
            ]
            reply = client.post(
                "/api/v1/licences/batch", json={"licences": bodies}, headers=headers
            )
            if reply.status_code != 200:
                raise BenchFailure(f"batch: HTTP {reply.status_code} {reply.text[:300]}")
            urls += [licence["links"]["verify"] for licence in reply.json()["licences"]]
    say(f"issued 1 + {len(urls)} licences")
    return str(single.json()["links"]["verify"]), urls


def warm(url: str, qrs: list[str]) -> None:
    """Verify each QR once (each must say VALID): wrk then measures the steady state,
    in which only the statuses kept for 2 s are read again, not first verifications."""
    with httpx.Client(base_url=url, trust_env=False, timeout=30.0) as client:
        for qr in qrs:
            reply = client.post("/api/v1/verify", json={"qr": qr})
            if reply.status_code != 200 or reply.json().get("verdict") != "VALID":
                raise BenchFailure(f"warm-up: HTTP {reply.status_code} {reply.text[:300]}")
    say(f"verified {len(qrs):,} QR(s) once each over HTTP, all VALID")


WRK_SCRIPT = """\
-- Written by bench/verify_bench.py for one run: cycles through the QR payloads.
local bodies = {{
{bodies}
}}
local next_body = 0
local headers = {{["Content-Type"] = "application/json"}}
local threads = {{}}
statuses, not_valid, failures = {{}}, 0, {{}}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[next_body])
end

function response(status, _headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 or not string.find(body, '"verdict":"VALID"', 1, true) then
    not_valid = not_valid + 1
    if #failures < 3 then failures[#failures + 1] = status .. " " .. string.sub(body, 1, 300) end
  end
end

function done(summary, latency, requests)
  local out = assert(io.open({out}, "w"))
  local e = summary.errors
  out:write(string.format("duration_us %d\\n", summary.duration))
  out:write(string.format("requests %d\\n", summary.requests))
  out:write(string.format("socket_errors %d %d %d %d %d\\n",
    e.connect, e.read, e.write, e.status, e.timeout))
  for _, p in ipairs({{50, 99}}) do
    out:write(string.format("percentile %d %d\\n", p, latency:percentile(p)))
  end
  for _, thread in ipairs(threads) do
    out:write(string.format("not_valid %d\\n", thread:get("not_valid")))
    for status, n in pairs(thread:get("statuses")) do
      out:write(string.format("status %d %d\\n", status, n))
    end
    for _, failure in ipairs(thread:get("failures")) do
      out:write("failure " .. string.gsub(failure, "\\n", " ") .. "\\n")
    end
  end
  out:close()
end
"""


def over_http(
    url: str, qrs: list[str], seconds: int, connections: int, core: int, workdir: Path
) -> dict[str, float]:
    """wrk against ``POST /api/v1/verify``, cycling through ``qrs``; every reply VALID."""
    if not shutil.which("wrk"):
        raise BenchFailure("wrk is required for the HTTP rows (Debian package wrk)")
    out = workdir / "wrk.out"
    out.unlink(missing_ok=True)
    script = workdir / "verify.lua"
    bodies = ",\n".join(json.dumps(json.dumps({"qr": qr})) for qr in qrs)  # Lua = JSON escapes
    script.write_text(WRK_SCRIPT.format(bodies=bodies, out=json.dumps(str(out))))
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
         "-s", str(script), f"{url}/api/v1/verify"],
        capture_output=True, text=True, timeout=seconds + 60,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )  # fmt: skip
    if done.returncode != 0 or not out.exists():
        raise BenchFailure(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    figures: dict[str, float] = {}
    statuses: dict[int, int] = {}
    failures: list[str] = []
    for line in out.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind in ("duration_us", "requests", "not_valid"):
            figures[kind] = float(rest)
        elif kind == "percentile":
            p, value = rest.split()
            figures[f"p{p}_ms"] = int(value) / 1000
        elif kind == "status":
            status, n = rest.split()
            statuses[int(status)] = statuses.get(int(status), 0) + int(n)
        elif kind == "socket_errors":
            connect, read, write, _status, timeout = (int(n) for n in rest.split())
            if connect or read or write or timeout:
                failures.append(f"socket errors {rest}")
        elif kind == "failure":
            failures.append(rest)
    if figures.get("not_valid") or failures or set(statuses) - {200}:
        raise BenchFailure(f"not every reply was 200 VALID: {statuses} {failures}")
    figures["rate"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def in_process(env: dict[str, str], qrs: list[str], seconds: float, core: int) -> dict[str, float]:
    """``verify_qr_online`` in a child process pinned to ``core``, cycling through ``qrs``."""
    payloads = Path(env["AUTHORITY_VAR_DIR"]) / "bench-qrs.json"
    payloads.write_text(json.dumps(qrs))
    done = subprocess.run(
        [sys.executable, __file__, "--in-process", str(payloads), "--seconds", str(seconds),
         "--core", str(core)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=seconds * 3 + 120,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchFailure(f"in-process run failed:\n{done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def in_process_child(payloads: Path, seconds: float, core: int) -> None:
    """The child of :func:`in_process`: prints {"wall_us", "cpu_us", "count"} as JSON."""
    pin({core})
    from authority.config import load_settings
    from authority.instance import Instance
    from authority.verification.service import verify_qr_online

    qrs: list[str] = json.loads(payloads.read_text())
    instance = Instance.open(load_settings())
    database, issuer, cache = (
        instance.database,
        instance.settings.issuer,
        instance.verification_cache,
    )

    def verify(qr: str) -> None:
        verdict = verify_qr_online(database, issuer, cache, qr).verdict.value
        if verdict != "VALID":
            raise BenchFailure(f"in-process verification said {verdict}")

    try:
        for qr in qrs:  # warm: first reads, paths validated, signatures checked once
            verify(qr)
        count, started, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            verify(qrs[count % len(qrs)])
            count += 1
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        instance.close()
    print(json.dumps({"wall_us": wall / count * 1e6, "cpu_us": cpu / count * 1e6, "count": count}))


def openssl_verify_rate(core: int) -> float | None:
    if not shutil.which("openssl"):
        return None
    done = subprocess.run(
        ["openssl", "speed", "-seconds", "3", "ecdsap256"],
        capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )  # fmt: skip
    match = re.search(
        r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", done.stdout
    )
    return float(match.group(2)) if match else None


def render(figures: dict[str, Any], args: argparse.Namespace) -> str:
    rows = figures["rows"]
    lines = [
        SECTION_HEADING,
        "",
        *paragraph(
            f"`bench/verify_bench.py` on {figures['machine']}, {figures['date']}: QR "
            "verification online (database, PKI, register), SQLite, file key store; one "
            f"licence's QR, and {args.pool:,} licences' QRs taken in turn. The target is "
            f"{TARGET:,.0f} QR verifications per second per core."
        ),
        "| what | licences | per second | p50 | p99 | server CPU each |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, count in (("single", 1), ("pool", args.pool)):
        local, http = rows[label]["in_process"], rows[label]["http"]
        lines += [
            f"| `verify_qr_online` in process, one core ({local['wall_us']:.0f} µs each, "
            f"{local['cpu_us']:.0f} µs CPU) | {count:,} | "
            f"{fmt_rate(1e6 / local['wall_us'])} | | | |",
            f'| `POST /api/v1/verify` `{{"qr"}}`, `serve --workers 1` on one core, wrk '
            f"({args.connections} connections) on the other | {count:,} | "
            f"{fmt_rate(http['rate'])} | {http['p50_ms']:.1f} ms | {http['p99_ms']:.1f} ms | "
            f"{http['server_cpu_us']:.0f} µs |",
        ]
    if figures["openssl_verify"]:
        lines.append(
            f"| `openssl speed ecdsap256` verify, one core | | "
            f"{fmt_rate(figures['openssl_verify'])} | | | |"
        )
    pool_http = rows["pool"]["http"]["rate"]
    pool_cpu = rows["pool"]["http"]["server_cpu_us"]
    lines += [
        "",
        *paragraph(
            f"Against the target: {pool_http / TARGET:.2f}x over HTTP ({args.pool:,} "
            f"licences). At the server's CPU time per verification, a core of its own "
            f"would answer about {1e6 / pool_cpu:,.0f} a second. The machine's load average "
            f"was {figures['load'][0]:.2f} / "
            f"{figures['load'][1]:.2f} (1 / 5 min) before the run. What is kept in memory "
            '(docs/verifying.md, "Caching"): parsed certificates, validated certificate '
            "paths, what a sealed licence states and the outcome of each QR payload's "
            "signature check (all immutable, bounded); the PKI's certificate status and each "
            "licence's status for at most 2 s (cleared at once by a change made in the same "
            "process). A verification that memory can answer runs on the event loop without "
            "a database session or a thread hand-off."
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, choices=range(1, 61), metavar="N")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--pool", type=int, default=1000, choices=range(1, 10_001), metavar="N")
    parser.add_argument("--write", action="store_true", help="rewrite the docs section")
    parser.add_argument("--in-process", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process is not None:
        in_process_child(args.in_process, args.seconds, args.core)
        return
    load = os.getloadavg()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as directory:
        setup = set_up(Path(directory))
        with server(setup, core=0) as process:
            single, pool = issue(setup, args.pool)
            for label, qrs in (("single", [single]), ("pool", pool)):
                warm(setup.url, qrs)
                say(f"POST /api/v1/verify, {label}: wrk for {args.seconds} s")
                cpu = cpu_seconds(process.pid)
                try:
                    http = over_http(
                        setup.url, qrs, args.seconds, args.connections, 1, Path(directory)
                    )
                except BenchFailure as failure:
                    log = log_tail(Path(directory) / "serve.log", 40)
                    raise BenchFailure(f"{failure}\nserver log:\n{log}") from None
                # What one verification costs the server, however much of its core it got.
                http["server_cpu_us"] = (cpu_seconds(process.pid) - cpu) / http["requests"] * 1e6
                rows[label] = {"http": http}
        for label, qrs in (("single", [single]), ("pool", pool)):
            say(f"verify_qr_online in process, {label}")
            rows[label]["in_process"] = in_process(setup.env, qrs, min(5, args.seconds), 0)
    figures = {
        "load": load,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
        "openssl_verify": openssl_verify_rate(0),
    }
    section = render(figures, args)
    print(section)
    if args.write:
        write_section(SECTION_HEADING, section + "\n")


if __name__ == "__main__":
    try:
        main()
    except BenchFailure as failure:
        print(f"verify_bench: {failure}", file=sys.stderr)
        sys.exit(1)
