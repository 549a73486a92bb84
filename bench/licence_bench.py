"""Licence issuance benchmark: sealed licences per second, and PDFs per second.

Run from the repository root:

    .venv/bin/python bench/licence_bench.py [--seconds 10] [--batch 100] [--write]

What it measures:

a. ``POST /api/v1/licences/batch`` with ``--batch`` copies of the demo
   licence (``authority demo``, type DEMO-PERMIT; each holder name differs)
   and ``POST /api/v1/licences`` with one, against
   ``authority serve --workers 1`` pinned to core 0, from a load generator
   pinned to core 1. Every licence issued carries its CAdES-B-T document seal
   (with an RFC 3161 time-stamp from the in-process TSA) and its QR seal;
b. ``GET links.pdf`` of licences just issued: the PDF is made (rendered and
   sealed PAdES-B-LT) on first download, not at issuance, so it is its own row;
c. both on SQLite and, when it is reachable, on PostgreSQL (a throw-away
   database ``authority_bench_<random>``, dropped afterwards);
d. where the time goes: the ASGI app in-process on core 0 (SQLite), its
   thread-pool hand-offs run inline, timed per named step and profiled with
   cProfile;
e. ``openssl speed -seconds 3 ecdsap256`` (single-threaded), the physical
   reference.

Every reply is checked (status, count, request order, unique numbers); a
sample of licences is verified: ``verify_document_seal`` over ``/document``
and ``/seal`` (B-T, signed by the demo agency's seal) and the QR seal of
``links.verify``. One failure aborts the run with exit status 1. Traffic goes
to 127.0.0.1 only; each row is bounded in time and in count; the servers, the
temporary directory and the PostgreSQL database are removed on every exit.
With ``--write`` the "## Licence issuance" section of docs/performance.md is
rewritten (other sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import datetime as dt
import functools
import gc
import json
import math
import os
import platform
import pstats
import random
import re
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
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

SECTION_HEADING = "## Licence issuance"
SCOPE = "licences:issue licences:read"  # read: to fetch /document, /seal and the PDF
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_PER_CORE = 2000  # licences per second per core: the goal
MAX_PDFS = 400  # per PDF row
PDF_SECONDS_CAP = 5.0  # the PDF row runs min(--seconds, this)
SAMPLE = 6  # licences verified per issuance row
WARM_UP_BATCHES = 2
IN_PROCESS_SECONDS = 1.5  # each in-process phase
RATE_SPELLS = 3  # the in-process rates: the best of this many spells
DISTURBED = 0.15  # other processes using this share of a core flag the run as disturbed
REQUEST_TIMEOUT = 120.0  # a batch of 1,000 on a slow machine


# -- processes -----------------------------------------------------------------------


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def postgres_cpu_seconds() -> float:
    """CPU time of the machine's PostgreSQL processes (any database), from /proc."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
    return total


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used (all cores), from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU used during a measurement by the server, by this process and by everyone else."""

    server_pid: int | None
    postgres: bool = False  # count PostgreSQL's processes apart from the others
    _server: float = 0.0
    _postgres: float = 0.0
    _own: float = 0.0
    _machine: float = 0.0
    _start: float = 0.0

    def __enter__(self) -> CpuMeter:
        self._server = cpu_seconds(self.server_pid) if self.server_pid else 0.0
        self._own, self._machine = own_cpu_seconds(), machine_busy_seconds()
        self._postgres = postgres_cpu_seconds() if self.postgres else 0.0
        self._start = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        elapsed = time.perf_counter() - self._start
        server = (cpu_seconds(self.server_pid) - self._server) if self.server_pid else 0.0
        own = own_cpu_seconds() - self._own
        machine = machine_busy_seconds() - self._machine
        postgres = postgres_cpu_seconds() - self._postgres if self.postgres else 0.0
        self.server = server / elapsed
        self.own = own / elapsed
        self.database = postgres / elapsed if self.postgres else math.nan
        # Others: whatever else ran on the machine meanwhile (a disturbance indicator).
        self.others = max(0.0, (machine - server - own - postgres) / elapsed)


# -- the databases -------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A throw-away database on ``admin_url``'s server, dropped on exit; yields its URL."""
    import psycopg

    name = f"authority_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # name: fixed prefix and hex only
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        say(f"dropped the PostgreSQL database {name}")


def postgres_unreachable(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used at ``admin_url``, or None."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not importable ({exc})"
    try:
        with psycopg.connect(admin_url, connect_timeout=3) as connection:
            version = connection.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        return f"not reachable ({type(exc).__name__}: {str(exc).strip()[:160]})"
    return None if version else "no server version"


def postgres_version(admin_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, connect_timeout=3) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


# -- the instance --------------------------------------------------------------------


def authority_env(directory: Path, port: int, database_url: str) -> dict[str, str]:
    # Start from the caller's environment without any AUTHORITY_* setting of theirs.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AUTHORITY_")}
    env.pop("SOFTHSM2_CONF", None)
    env.update(
        {
            "AUTHORITY_DATABASE_URL": database_url,
            "AUTHORITY_KEYS_DIR": str(directory / "keys"),
            "AUTHORITY_VAR_DIR": str(directory / "var"),
            "AUTHORITY_KEYSTORE_PASSPHRASE": PASSPHRASE,
            "AUTHORITY_ISSUER": f"http://127.0.0.1:{port}",
            # An access-log line per request would measure the logging, not issuance.
            "AUTHORITY_LOG_LEVEL": "WARNING",
        }
    )
    return env


@dataclass
class Setup:
    """A temporary instance: its environment, the demo agency's client and licence."""

    label: str  # "SQLite" or "PostgreSQL"
    directory: Path
    env: dict[str, str]
    port: int
    client_id: str
    client_secret: str
    seal_serial: int
    example: dict[str, Any]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def set_up(label: str, directory: Path, database_url: str | None) -> Setup:
    directory.mkdir(parents=True)
    (directory / "var").mkdir()
    port = free_port()
    url = database_url or f"sqlite:///{directory / 'var' / 'authority.db'}"
    env = authority_env(directory, port, url)
    say(f"{label}: authority init and authority demo (temporary instance)")
    run_cli(env, "init")
    demo = run_cli(env, "demo")
    agency = demo["agency"]
    return Setup(
        label,
        directory,
        env,
        port,
        str(agency["client_id"]),
        str(agency["client_secret"]),
        int(agency["seal_serial"], 16),
        agency["licence_example"],
    )


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


@contextlib.contextmanager
def running_server(setup: Setup, core: int) -> Iterator[Server]:
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
    server = Server(setup.url, process, log_path)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        with httpx.Client(base_url=server.url, trust_env=False, timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise BenchFailure(f"authority serve exited early:\n{log_tail(log_path)}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/readyz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchFailure(f"authority serve not ready in {SERVER_START_TIMEOUT:.0f} s")
                time.sleep(0.1)
        say(f"{setup.label}: authority serve --workers 1 ready at {server.url}, core {core}")
        yield server
    finally:
        say(f"{setup.label}: stopping the server")
        stop(process)


def basic(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: id and secret are form-encoded, then Basic (both are URL-safe).
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")


def fetch_token(setup: Setup) -> str:
    """A client-credentials access token of the demo agency's API client."""
    with httpx.Client(base_url=setup.url, trust_env=False, timeout=30.0) as client:
        reply = client.post(
            "/oauth/token",
            content=urlencode({"grant_type": "client_credentials", "scope": SCOPE}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": basic(setup.client_id, setup.client_secret),
            },
        )
    if reply.status_code != 200:
        raise BenchFailure(f"token request: HTTP {reply.status_code}: {reply.text[:300]}")
    return str(reply.json()["access_token"])


# -- load ----------------------------------------------------------------------------


@dataclass
class Row:
    """One measured HTTP row."""

    operation: str
    database: str
    requests: int = 0
    items: int = 0  # licences issued, or PDFs made
    seconds: float = 0.0
    latencies_ns: list[int] = field(default_factory=list, repr=False)
    unit: str = "licences"
    server_cpu: float = math.nan  # share of one core the server used during the row
    client_cpu: float = math.nan  # share of one core the load generator used
    others_cpu: float = math.nan  # share of one core every other process used
    database_cpu: float = math.nan  # share of one core PostgreSQL's processes used

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """Latency at ``fraction`` (nearest rank), in seconds."""
        ordered = sorted(self.latencies_ns)
        if not ordered:
            return math.nan
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1] / 1e9


@dataclass
class Issued:
    """A licence as the API described it, with the holder name we sent."""

    id: str
    number: str
    name: str
    links: dict[str, str]


Sender = Callable[[httpx.Client, int], tuple[httpx.Response, Any]]
Checker = Callable[[httpx.Response, Any], str | None]


def drive(
    server: Server,
    row: Row,
    *,
    send: Sender,
    check: Checker,
    per_reply: int,
    seconds: float,
    max_items: int,
    concurrency: int,
    headers: dict[str, str],
) -> Row:
    """Closed-loop load for ``seconds`` (at most ``max_items``); fills in and returns ``row``.

    Every reply is checked; each good one counts ``per_reply`` items (licences or PDFs).
    """
    lock = threading.Lock()
    issued = 0
    items = 0
    latencies: list[int] = []
    problems: list[str] = []
    stop_at = time.perf_counter_ns() + int(seconds * 1e9)

    def worker() -> None:
        nonlocal issued, items
        mine: list[int] = []
        with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT, headers=headers) as client:
            while True:
                with lock:
                    if items >= max_items or problems:
                        break
                    index = issued
                    issued += 1
                t0 = time.perf_counter_ns()
                if t0 >= stop_at:
                    break
                try:
                    reply, expected = send(client, index)
                except httpx.HTTPError as exc:
                    with lock:
                        problems.append(f"request {index}: {type(exc).__name__}: {exc}")
                    break
                mine.append(time.perf_counter_ns() - t0)
                problem = check(reply, expected)
                with lock:
                    if problem:
                        problems.append(f"request {index}: {problem}")
                    else:
                        items += per_reply
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    with CpuMeter(server.process.pid, postgres=row.database == "PostgreSQL") as meter:
        start = time.perf_counter_ns()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + REQUEST_TIMEOUT + 10)
        elapsed = (time.perf_counter_ns() - start) / 1e9
    if problems:
        raise BenchFailure(f"{problems[0]}\nserver log:\n{log_tail(server.log_path)}")
    if not latencies:
        raise BenchFailure(f"no reply within {seconds:g} s")
    row.requests, row.items, row.seconds, row.latencies_ns = (
        len(latencies), items, elapsed, latencies
    )  # fmt: skip
    row.server_cpu, row.client_cpu, row.others_cpu = meter.server, meter.own, meter.others
    row.database_cpu = meter.database
    return row


class Issuer:
    """Builds issuance requests from the demo licence and checks their replies."""

    def __init__(self, setup: Setup, token: str) -> None:
        self.setup = setup
        self.headers = {"Authorization": f"Bearer {token}"}
        self.example = setup.example
        self.base_name = str(setup.example["holder"]["name"])
        self.counter = 0
        self.lock = threading.Lock()
        self.issued: list[Issued] = []
        self.numbers: set[str] = set()

    def bodies(self, count: int) -> list[dict[str, Any]]:
        with self.lock:
            first = self.counter
            self.counter += count
        return [
            {**self.example, "holder": {**self.example["holder"], "name": f"{self.base_name} {i}"}}
            for i in range(first, first + count)
        ]

    def send_batch(self, size: int) -> Sender:
        url = f"{self.setup.url}/api/v1/licences/batch"

        def send(client: httpx.Client, _index: int) -> tuple[httpx.Response, Any]:
            bodies = self.bodies(size)
            payload = json.dumps({"licences": bodies}, ensure_ascii=False).encode()
            reply = client.post(url, content=payload, headers={"Content-Type": "application/json"})
            return reply, [b["holder"]["name"] for b in bodies]

        return send

    def send_single(self) -> Sender:
        url = f"{self.setup.url}/api/v1/licences"

        def send(client: httpx.Client, _index: int) -> tuple[httpx.Response, Any]:
            (body,) = self.bodies(1)
            payload = json.dumps(body, ensure_ascii=False).encode()
            reply = client.post(url, content=payload, headers={"Content-Type": "application/json"})
            return reply, [body["holder"]["name"]]

        return send

    def check(self, reply: httpx.Response, names: Any) -> str | None:
        single = len(names) == 1 and reply.request.url.path.endswith("/licences")
        expected_status = 201 if single else 200
        if reply.status_code != expected_status:
            return f"HTTP {reply.status_code} (expected {expected_status}): {reply.text[:300]}"
        try:
            data = reply.json()
            licences = [data] if single else data["licences"]
            if len(licences) != len(names):
                return f"{len(licences)} licences for {len(names)} asked"
            found = [
                Issued(d["id"], d["number"], d["holder"]["name"], d["links"]) for d in licences
            ]
        except (ValueError, KeyError, TypeError) as exc:
            return f"unreadable reply: {type(exc).__name__}: {exc}"
        if [f.name for f in found] != list(names):
            return "licences not in request order"
        if single and reply.headers.get("location") != found[0].links.get("self"):
            return "Location is not links.self"
        if any(d["status"] != "valid" for d in licences):
            return "a licence issued with a status other than valid"
        with self.lock:
            for licence in found:
                if licence.number in self.numbers:
                    return f"number {licence.number} issued twice"
                self.numbers.add(licence.number)
            self.issued.extend(found)
        return None


def warm_up(server: Server, issuer: Issuer, batch: int) -> None:
    """First requests decrypt keys, fill caches and pools: not measured."""
    with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT, headers=issuer.headers) as client:
        for sender, times in (
            (issuer.send_batch(batch), WARM_UP_BATCHES),
            (issuer.send_single(), 5),
        ):
            for i in range(times):
                reply, names = sender(client, i)
                problem = issuer.check(reply, names)
                if problem:
                    raise BenchFailure(f"warm-up: {problem}\n{log_tail(server.log_path)}")


def bench_issuance(
    setup: Setup, server: Server, issuer: Issuer, args: argparse.Namespace
) -> list[Row]:
    rows = []
    batch = args.batch
    for operation, sender, size, concurrency in (
        (f"POST /api/v1/licences/batch ({batch} a request)", issuer.send_batch(batch), batch,
         args.concurrency),
        ("POST /api/v1/licences (one a request)", issuer.send_single(), 1, 1),
    ):  # fmt: skip
        say(f"{setup.label}: {operation}, {args.seconds:g} s, {connections(args, concurrency)}")
        before = len(issuer.issued)
        row = drive(
            server,
            Row(operation, setup.label),
            send=sender,
            check=issuer.check,
            per_reply=size,
            seconds=args.seconds,
            max_items=args.max_licences,
            concurrency=concurrency,
            headers=issuer.headers,
        )
        print_row(row)
        rows.append(row)
        validate_sample(setup, issuer, issuer.issued[before:])
    return rows


def validate_sample(setup: Setup, issuer: Issuer, licences: list[Issued]) -> None:
    """Verify the CAdES seal over /document, and the QR seal, of a sample of ``licences``."""
    from cryptography import x509

    from authority.errors import AuthorityError
    from authority.seals.cades import verify_document_seal
    from authority.seals.qr import verify_qr_seal

    rng = random.Random(len(licences))
    picked = [licences[0], licences[-1], *rng.sample(licences, min(SAMPLE - 2, len(licences)))]
    with httpx.Client(trust_env=False, timeout=30.0, headers=issuer.headers) as client:
        for licence in picked:
            document = client.get(licence.links["document"])
            seal = client.get(licence.links["seal"])
            if document.status_code != 200 or seal.status_code != 200:
                raise BenchFailure(
                    f"{licence.number}: /document {document.status_code}, /seal {seal.status_code}"
                )
            try:
                info = verify_document_seal(document.content, seal.content)
                qr = verify_qr_seal(licence.links["verify"], [info.signer_certificate])
            except AuthorityError as exc:
                raise BenchFailure(f"{licence.number}: {exc.slug}: {exc.detail}") from exc
            if info.signer_certificate.serial_number != setup.seal_serial:
                raise BenchFailure(f"{licence.number}: sealed by another certificate")
            if info.timestamp is None:
                raise BenchFailure(f"{licence.number}: the seal has no signature time-stamp")
            usage = info.timestamp.tsa_certificate.extensions.get_extension_for_class(
                x509.ExtendedKeyUsage
            )
            if list(usage.value) != [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]:
                raise BenchFailure(f"{licence.number}: time-stamped by a non-TSA certificate")
            sealed = json.loads(document.content)
            if (sealed["id"], sealed["number"], sealed["holder"]["name"]) != (
                licence.id,
                licence.number,
                licence.name,
            ):
                raise BenchFailure(f"{licence.number}: /document is not this licence")
            if (qr.claims.number, qr.claims.holder_name) != (licence.number, licence.name):
                raise BenchFailure(f"{licence.number}: the QR seal names another licence")
    say(
        f"{setup.label}: verified {len(picked)} licences: CAdES-B-T over /document "
        "(seal and time-stamp), QR seal"
    )


def bench_pdfs(setup: Setup, server: Server, issuer: Issuer, args: argparse.Namespace) -> Row:
    """First downloads of ``links.pdf`` (each makes and stores the PDF), one connection."""
    pool = issuer.issued[:-2][:MAX_PDFS]  # distinct licences, none downloaded yet
    seconds = min(args.seconds, PDF_SECONDS_CAP)
    say(f"{setup.label}: GET links.pdf (first download), {seconds:g} s, one connection")

    def send(client: httpx.Client, index: int) -> tuple[httpx.Response, Any]:
        if index >= len(pool):
            raise httpx.RequestError(f"only {len(pool)} licences to download")
        return client.get(pool[index].links["pdf"]), index

    def check(reply: httpx.Response, _index: Any) -> str | None:
        if reply.status_code != 200:
            return f"HTTP {reply.status_code}: {reply.text[:300]}"
        if not reply.headers.get("content-type", "").startswith("application/pdf"):
            return f"Content-Type {reply.headers.get('content-type')}"
        if not reply.content.startswith(b"%PDF-") or b"/ByteRange" not in reply.content:
            return "not a signed PDF"
        return None

    # The first PDF loads fonts and fills caches: two downloads outside the clock.
    with httpx.Client(trust_env=False, timeout=60.0, headers=issuer.headers) as client:
        for licence in issuer.issued[-2:]:
            if (problem := check(client.get(licence.links["pdf"]), None)) is not None:
                raise BenchFailure(f"PDF warm-up: {problem}\n{log_tail(server.log_path)}")
    row = drive(
        server,
        Row("GET links.pdf (first download)", setup.label, unit="PDFs"),
        send=send,
        check=check,
        per_reply=1,
        seconds=seconds,
        max_items=len(pool),
        concurrency=1,
        headers=issuer.headers,
    )
    with httpx.Client(trust_env=False, timeout=30.0, headers=issuer.headers) as client:
        first = client.get(pool[0].links["pdf"]).content
        again = client.get(pool[0].links["pdf"]).content
    if first != again:
        raise BenchFailure(f"{pool[0].number}: a second download returned other bytes")
    print_row(row)
    return row


def bench_database(
    label: str, directory: Path, database_url: str | None, cores: tuple[int, int],
    args: argparse.Namespace,
) -> tuple[Setup, list[Row]]:  # fmt: skip
    server_core, client_core = cores
    setup = set_up(label, directory, database_url)
    with running_server(setup, server_core) as server:
        token = fetch_token(setup)
        issuer = Issuer(setup, token)
        pin({client_core})
        try:
            warm_up(server, issuer, args.batch)
            rows = bench_issuance(setup, server, issuer, args)
            if not args.no_pdf:
                rows.append(bench_pdfs(setup, server, issuer, args))
        finally:
            pin({server_core})
    return setup, rows


# -- where the time goes -------------------------------------------------------------


class StepTimer:
    """Exclusive (self) time of named functions: a wrapped call's time minus its wrapped callees.

    Two clock reads per call, so the figures stay close to the unprofiled run,
    unlike cProfile, whose per-call cost inflates Python-heavy code.
    """

    def __init__(self) -> None:
        self.own: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[Any]] = []  # [label, start of the current own segment]
        self._patches: list[tuple[Any, str, Any]] = []

    def _enter(self, label: str) -> None:
        now = time.perf_counter()
        if self._stack:
            top = self._stack[-1]
            self.own[top[0]] = self.own.get(top[0], 0.0) + now - top[1]
        self._stack.append([label, now])

    def _leave(self) -> None:
        now = time.perf_counter()
        label, since = self._stack.pop()
        self.own[label] = self.own.get(label, 0.0) + now - since
        self.calls[label] = self.calls.get(label, 0) + 1
        if self._stack:
            self._stack[-1][1] = now

    def patch(self, owner: Any, name: str, label: str) -> None:
        """Time ``owner.name`` (a function, method or coroutine function) as ``label``."""
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        timer = self
        if asyncio.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                timer._enter(label)
                try:
                    return await original(*args, **kwargs)
                finally:
                    timer._leave()

            wrapper: Any = timed_async
        else:

            @functools.wraps(original)
            def timed(*args: Any, **kwargs: Any) -> Any:
                timer._enter(label)
                try:
                    return original(*args, **kwargs)
                finally:
                    timer._leave()

            wrapper = timed
        self._patches.append((owner, name, original))
        setattr(owner, name, wrapper)

    def restore(self) -> None:
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()

    def reset(self) -> None:
        self.own.clear()
        self.calls.clear()

    def collector(self, phase: str, _info: dict[str, Any]) -> None:
        """A ``gc.callbacks`` hook: collections count apart, not in whatever allocated."""
        if phase == "start":
            self._enter(GC)
        elif self._stack and self._stack[-1][0] == GC:
            self._leave()


REST = "the rest"
GC = "Python's cyclic garbage collector (collections triggered by allocations)"


def _steps() -> list[tuple[Any, str, str]]:
    """(owner, attribute, label) of the pieces of work timed, outermost last."""
    import fastapi.dependencies.utils
    import fastapi.routing
    import starlette.requests
    import starlette.responses
    from sqlalchemy.orm import Session

    from authority.licences import sealing, service
    from authority.licences.sealing import AgencySealer, SealerCache
    from authority.pki.file_keystore import FileKeyStore
    from authority.pki.tsa import TimeStampAuthority
    from authority.seals import cades
    from authority.seals.cades import DocumentSealer
    from authority.seals.qr import QrSealer
    from authority.web import deps
    from authority.web.routes import licences as routes

    steps = [
        (FileKeyStore, "sign", "ECDSA P-256 signing through the key store, 3 a licence: "
         "`FileKeyStore.sign`"),
        (TimeStampAuthority, "stamp", "time-stamp token assembled from DER pieces: "
         "`TimeStampAuthority.stamp`, less its signature"),
        (cades, "_check_token_imprint", "time-stamp imprint checked: `_check_token_imprint`"),
        (DocumentSealer, "seal", "CAdES DER assembly: `DocumentSealer.seal`, less the above"),
        (QrSealer, "seal", "QR seal: `QrSealer.seal`, less its signature"),
        (sealing, "_field_values", "QR fields: `_field_values`"),
        (service, "check_data", "data against the type's JSON Schema (jsonschema-rs, "
         "jsonschema on a refusal): `check_data`"),
        (service, "validate_resident_id", "holder identity number: `validate_resident_id`"),
        (service, "document_bytes", "canonical document (rfc8785): `document_bytes`"),
        (service, "_reserve_numbers", "number reservation (one upsert): `_reserve_numbers`"),
        (service, "_store", "INSERT of licences and events (the driver's executemany), "
         "objects attached as stored: `_store`"),
        (Session, "flush", "SQLAlchemy flush (what the unit of work still writes): "
         "`Session.flush`"),
        (Session, "commit", "commit: `Session.commit`"),
        (AgencySealer, "__init__", "sealer set-up, on a new seal or TSA certificate only "
         "(certificates loaded, TSA built, keys checked): `AgencySealer.__init__`"),
        (SealerCache, "sealer", "sealer look-up, once a request (current seal and TSA "
         "certificates from the database): `SealerCache.sealer`"),
        (routes, "_agency", "agency of the client (ORM query): `_agency`"),
        (deps, "authenticate", "bearer token check (JWT verify, database): `authenticate`"),
        (routes, "describe", "API representation: `describe`"),
        (fastapi.routing, "serialize_response", "batch reply serialised by FastAPI (pydantic "
         "check of the returned dict, JSON dump): `serialize_response`"),
        (starlette.responses.JSONResponse, "render", "JSON response body: "
         "`JSONResponse.render`"),
        (starlette.requests.Request, "json", "JSON request body parsed: `Request.json`"),
        (fastapi.dependencies.utils, "request_body_to_args", "request body validated "
         "(pydantic): `request_body_to_args`"),
    ]  # fmt: skip
    return steps


@dataclass
class Profile:
    batch: int
    batch_rate: float  # licences/s in-process, batch requests
    single_rate: float  # licences/s in-process, single requests
    batch_steps: list[tuple[str, float]]  # (label, share of the request time)
    single_steps: list[tuple[str, float]]
    batch_request_s: float  # per batch request, instrumented run
    single_request_s: float
    packages: list[tuple[str, float]]  # own time by package, cProfile of batches
    profiled_batches: int
    sign_s: float  # one FileKeyStore.sign (300 bytes)
    verify_s: float  # one ECDSA P-256 verify
    others_cpu: float  # share of a core other processes used during the in-process phases


def profile_in_process(setup: Setup, core: int, batch: int) -> Profile:
    """The ASGI app in this process (server stopped, same database and keys), on ``core``."""
    import anyio.to_thread
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from authority.app import create_app
    from authority.config import load_settings
    from authority.logs import configure_logging

    settings = load_settings(setup.env)
    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    # As the served app's start-up does (authority/app.py): its lifespan does not run here.
    gc.collect()
    gc.freeze()
    instance = app.state.instance
    host = urlsplit(settings.issuer).netloc.encode()
    counter = 0

    async def call(method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", setup.port), "state": {},
            "headers": [(b"host", host), (b"content-length", str(len(body)).encode()),
                        *headers],
        }  # fmt: skip
        received = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # pragma: no cover - nothing waits for a disconnect
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, send)
        return status, b"".join(chunks)

    async def token() -> str:
        body = urlencode({"grant_type": "client_credentials", "scope": SCOPE}).encode()
        status, reply = await call(
            "POST",
            "/oauth/token",
            body,
            [
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"authorization", basic(setup.client_id, setup.client_secret).encode()),
            ],
        )
        if status != 200:
            raise BenchFailure(f"in-process token request answered {status}")
        return str(json.loads(reply)["access_token"])

    def bodies(count: int) -> list[dict[str, Any]]:
        nonlocal counter
        example = setup.example
        name = example["holder"]["name"]
        made = [
            {**example, "holder": {**example["holder"], "name": f"{name} p{counter + i}"}}
            for i in range(count)
        ]
        counter += count
        return made

    def request(size: int) -> tuple[str, bytes, int]:
        """(path, body, expected status) of an issuance request for ``size`` licences."""
        if size == 1:
            return "/api/v1/licences", json.dumps(bodies(1)[0], ensure_ascii=False).encode(), 201
        body = json.dumps({"licences": bodies(size)}, ensure_ascii=False).encode()
        return "/api/v1/licences/batch", body, 200

    async def issue(bearer: bytes, prepared: tuple[str, bytes, int]) -> None:
        path, body, expected = prepared
        headers = [(b"content-type", b"application/json"), (b"authorization", bearer)]
        status, reply = await call("POST", path, body, headers)
        if status != expected:
            raise BenchFailure(f"in-process issuance answered {status}: {reply[:300]!r}")

    async def rate(bearer: bytes, size: int, seconds: float) -> float:
        """Licences per second, the requests' bodies made outside the clock."""
        count = 0
        spent = 0.0
        while spent < seconds or count == 0:
            prepared = request(size)
            start = time.perf_counter()
            await issue(bearer, prepared)
            spent += time.perf_counter() - start
            count += size
        return count / spent

    original = anyio.to_thread.run_sync

    async def inline(func: Callable[..., Any], *args: Any, **_kwargs: Any) -> Any:
        return func(*args)

    timer = StepTimer()

    async def timed(
        bearer: bytes, size: int, seconds: float
    ) -> tuple[list[tuple[str, float]], float]:
        timer.reset()
        requests = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or requests == 0:
            prepared = request(size)
            timer._enter(REST)
            try:
                await issue(bearer, prepared)
            finally:
                timer._leave()
            requests += 1
        total = sum(timer.own.values())
        shares = sorted(
            ((label, own / total) for label, own in timer.own.items() if label != REST),
            key=lambda item: item[1],
            reverse=True,
        )
        shares.append((REST, timer.own.get(REST, 0.0) / total))
        return shares, total / requests

    async def main() -> tuple[Any, ...]:
        try:
            anyio.to_thread.run_sync = inline  # type: ignore[assignment]
            bearer = f"Bearer {await token()}".encode()
            for _ in range(WARM_UP_BATCHES):
                await issue(bearer, request(batch))
            for _ in range(5):
                await issue(bearer, request(1))
            # Alternating short spells, the best of each kept: a noisy neighbour on a
            # shared machine only ever slows a spell down.
            batch_rate = single_rate = 0.0
            for _ in range(RATE_SPELLS):
                spell = IN_PROCESS_SECONDS / RATE_SPELLS
                batch_rate = max(batch_rate, await rate(bearer, batch, spell))
                single_rate = max(single_rate, await rate(bearer, 1, spell))
            for owner, name, label in _steps():
                timer.patch(owner, name, label)
            gc.callbacks.append(timer.collector)
            try:
                batch_steps, batch_s = await timed(bearer, batch, IN_PROCESS_SECONDS)
                single_steps, single_s = await timed(bearer, 1, IN_PROCESS_SECONDS)
            finally:
                gc.callbacks.remove(timer.collector)
                timer.restore()
            profiler = cProfile.Profile()
            batches = 0
            start = time.perf_counter()
            while time.perf_counter() - start < IN_PROCESS_SECONDS or batches == 0:
                prepared = request(batch)
                profiler.enable()
                await issue(bearer, prepared)
                profiler.disable()
                batches += 1
        finally:
            anyio.to_thread.run_sync = original  # type: ignore[assignment]
        return (batch_rate, single_rate, batch_steps, batch_s, single_steps, single_s,
                profiler, batches)  # fmt: skip

    before = available_cores()
    pin({core})
    try:
        with CpuMeter(None) as meter:
            (batch_rate, single_rate, batch_steps, batch_s, single_steps, single_s, profiler,
             batches) = asyncio.run(main())  # fmt: skip
        # One signature and one verification as cryptography does them, in this process.
        key = ec.generate_private_key(ec.SECP256R1())
        message = os.urandom(300)
        scheme = ec.ECDSA(hashes.SHA256())
        signature = key.sign(message, scheme)
        public = key.public_key()
        rounds = 2000
        start = time.perf_counter()
        for _ in range(rounds):
            key.sign(message, scheme)
        sign_s = (time.perf_counter() - start) / rounds
        start = time.perf_counter()
        for _ in range(rounds):
            public.verify(signature, message, scheme)
        verify_s = (time.perf_counter() - start) / rounds
    finally:
        pin(set(before))
        instance.close()
    table: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return Profile(
        batch, batch_rate, single_rate, batch_steps, single_steps, batch_s, single_s,
        package_shares(table), batches, sign_s, verify_s, meter.others,
    )  # fmt: skip


# Own time by where the code lives. C functions ("~" in pstats) named here keep
# their own bucket; other C calls (isinstance, dict.get...) go to their caller's.
_C_BUCKETS = (
    ("sqlite3", "SQLite (C)"),
    ("cryptography", "cryptography (OpenSSL ECDSA)"),
    ("_hashlib", "cryptography (OpenSSL ECDSA)"),
    ("_json", "json"),
)
_PATH_BUCKETS = (
    ("/asn1crypto/", "asn1crypto"),
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/fastapi/", "FastAPI, Starlette, pydantic"),
    ("/starlette/", "FastAPI, Starlette, pydantic"),
    ("/pydantic", "FastAPI, Starlette, pydantic"),
    ("/jsonschema", "jsonschema, referencing"),
    ("/referencing/", "jsonschema, referencing"),
    ("/rpds", "jsonschema, referencing"),
    ("/rfc8785/", "rfc8785"),
    ("/cryptography/", "cryptography (OpenSSL ECDSA)"),
    ("/json/", "json"),
    ("/psycopg/", "psycopg"),
    ("/authority/", "Authority's own code"),
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
    return "the standard library and others (asyncio, anyio, copy, datetime...)"


def package_shares(table: dict[tuple[str, int, str], tuple[Any, ...]]) -> list[tuple[str, float]]:
    """Own (exclusive) time per package, as shares of the whole, largest first."""
    own: dict[str, float] = {}
    rest = "the standard library and others (asyncio, anyio, copy, datetime...)"
    for key, (_cc, _nc, tottime, _ct, callers) in table.items():
        bucket = _bucket(key)
        if bucket is not None:
            own[bucket] = own.get(bucket, 0.0) + tottime
            continue
        # An anonymous C call: charge each caller with the time it spent in it.
        for caller, edge in callers.items():
            caller_bucket = _bucket(caller) or rest
            own[caller_bucket] = own.get(caller_bucket, 0.0) + edge[2]
    own.pop("the benchmark's ASGI driver", None)
    measured = sum(own.values()) or 1.0
    shares = [(label, seconds / measured) for label, seconds in own.items()]
    return sorted(shares, key=lambda item: item[1], reverse=True)


# -- c. openssl speed ----------------------------------------------------------------


def openssl_speed(core: int) -> tuple[dict[str, float] | None, str]:
    """sign/s and verify/s of ``openssl speed -seconds 3 ecdsap256`` on ``core``."""
    if shutil.which("openssl") is None:
        return None, "openssl is not installed"
    command = ["openssl", "speed", "-seconds", "3", "ecdsap256"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    for line in done.stdout.splitlines():
        # " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  41234.5  13456.7"
        match = re.search(r"ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", line)
        if match:
            return {"sign": float(match[1]), "verify": float(match[2])}, shlex.join(command)
    return None, f"could not parse `{shlex.join(command)}` output:\n{done.stdout}{done.stderr}"


# -- reporting -----------------------------------------------------------------------


def connections(args: argparse.Namespace, count: int | None = None) -> str:
    count = args.concurrency if count is None else count
    return "one connection" if count == 1 else f"{count} keep-alive connections"


def fmt_latency(seconds: float) -> str:
    if math.isnan(seconds):
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_share(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.0%}"


def print_row(r: Row) -> None:
    say(
        f"{r.database:<10} {r.operation:<44} {fmt_rate(r.rate):>7} {r.unit}/s "
        f"p50 {fmt_latency(r.percentile(0.5)):>8}  p99 {fmt_latency(r.percentile(0.99)):>8}  "
        f"({r.items:,} {r.unit}, {r.requests:,} requests; CPU: server {fmt_share(r.server_cpu)}, "
        f"load generator {fmt_share(r.client_cpu)}, PostgreSQL {fmt_share(r.database_cpu)}, "
        f"other processes {fmt_share(r.others_cpu)})"
    )


def machine_facts() -> dict[str, str]:
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
    openssl_cli = "absent"
    if shutil.which("openssl"):
        openssl_cli = subprocess.run(
            ["openssl", "version"], capture_output=True, text=True
        ).stdout.strip()
    packages = ", ".join(
        f"{name} {python_package(name)}"
        for name in ("fastapi", "uvicorn", "SQLAlchemy", "asn1crypto", "jsonschema", "rfc8785",
                     "psycopg", "pyHanko")
    )  # fmt: skip
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": packages,
        "cryptography": f"{python_package('cryptography')} ({backend.openssl_version_text()})",
        "openssl_cli": openssl_cli,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def bullet(text: str) -> list[str]:
    return textwrap.wrap(
        text, width=78, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False,
        break_long_words=False,
    )  # fmt: skip


def _share_of(steps: list[tuple[str, float]], *needles: str) -> float:
    return sum(share for label, share in steps if any(n in label for n in needles))


@dataclass
class Report:
    rows: list[Row]
    notes: list[str]
    profile: Profile | None
    speed: dict[str, float] | None
    speed_command: str
    facts: dict[str, str]
    command: str
    postgres: str | None  # the server version, when measured


def render_section(report: Report, args: argparse.Namespace) -> str:
    rows, profile, speed = report.rows, report.profile, report.speed
    lines = [SECTION_HEADING, "", f"Measured {report.facts['date']} with:", "", "```sh",
             report.command, "```", ""]  # fmt: skip
    databases = "SQLite" + (
        f" and PostgreSQL {report.postgres} (a throw-away database on 127.0.0.1)"
        if report.postgres
        else ""
    )
    lines += paragraph(
        "(`--write` rewrites this section; run it again to refresh.) Each database gets a "
        "temporary instance (`authority init`, then `authority demo` for the agency, its API "
        "client and the DEMO-PERMIT licence type, file key store) served by `authority serve "
        "--workers 1` (log level WARNING) pinned to core 0. A load generator pinned to core 1 "
        "gets a client-credentials token (HTTP Basic, scope `licences:issue licences:read`) "
        f"and posts, for {args.seconds:g} s per row after a warm-up, batches of {args.batch} "
        f"copies of the demo licence (each holder name differs) over {connections(args)}"
        + (
            " (over one, the core would idle while each batch's commit waits for its fsync)"
            if args.concurrency == 2
            else ""
        )
        + ", then single licences over one connection, waiting for each reply; at most "
        f"{args.max_licences:,} licences per row. Databases: {databases}."
    )
    lines += paragraph(
        "Every licence issued is sealed: its canonical document carries a detached "
        "CAdES-B-T seal (ECDSA P-256 with the agency's seal, plus an RFC 3161 signature "
        "time-stamp from the in-process TSA) and its QR payload a compact ES256 seal. **The "
        "PDF is not made at issuance**: it is rendered and sealed PAdES-B-LT on its first "
        "download, then stored. The PDF row downloads `links.pdf` of licences just issued, "
        f"each once (one connection, {min(args.seconds, PDF_SECONDS_CAP):g} s)."
    )
    lines += paragraph(
        "Every reply was checked: status (201 single, 200 batch), one licence per item in "
        "request order, status valid, numbers unique. After each issuance row, "
        f"{SAMPLE} licences were verified: `verify_document_seal` over `/document` and "
        "`/seal` (signed by the demo agency's seal, time-stamped by the TSA, the document "
        "naming the licence) and the QR seal of `links.verify`. PDFs: 200, `application/pdf`, "
        "signed (`/ByteRange`), the same bytes on a second download. None failed."
    )
    lines += [
        "| operation | database | licences/s | requests/s | p50 | p99 | measured | server CPU "
        "| PostgreSQL CPU | others' CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        rate = fmt_rate(r.rate) if r.unit == "licences" else f"{fmt_rate(r.rate)} PDFs/s"
        lines.append(
            f"| {r.operation} | {r.database} | {rate} | {fmt_rate(r.requests / r.seconds)} "
            f"| {fmt_latency(r.percentile(0.5))} | {fmt_latency(r.percentile(0.99))} "
            f"| {r.items:,} {r.unit} | {fmt_share(r.server_cpu)} | {fmt_share(r.database_cpu)} "
            f"| {fmt_share(r.others_cpu)} |"
        )
    if profile is not None:
        lines.append(
            f"| in-process ASGI, batch of {profile.batch} (no HTTP; best of {RATE_SPELLS} "
            f"spells) | SQLite "
            f"| {fmt_rate(profile.batch_rate)} | {fmt_rate(profile.batch_rate / profile.batch)} "
            f"| | | | | | {fmt_share(profile.others_cpu)} |"
        )
        lines.append(
            f"| in-process ASGI, one a request (no HTTP; best of {RATE_SPELLS} spells) | SQLite "
            f"| {fmt_rate(profile.single_rate)} | {fmt_rate(profile.single_rate)} | | | | | "
            f"| {fmt_share(profile.others_cpu)} |"
        )
    if speed is not None:
        lines.append(
            f"| ECDSA P-256 sign (reference) | `{report.speed_command}` | {fmt_rate(speed['sign'])}"
            " signatures/s | | | | | | | |"
        )
    lines.append("")
    lines += paragraph(
        "Latency is per request, from sending it to reading the whole reply; a batch "
        "request's latency covers all its licences. Server CPU is the server process's CPU "
        "time over the row's duration (100% = its one core busy), PostgreSQL CPU that of the "
        "machine's PostgreSQL processes (not pinned), and others' CPU what every other "
        "process on the machine used meanwhile (the load generator excluded): a measure of "
        "disturbance."
    )
    lines += render_target(report, args)
    if profile is not None:
        lines += render_profile(profile)
        lines += render_gap(report)
    for note in report.notes:
        lines += bullet(note)
    if report.notes:
        lines.append("")
    facts = report.facts
    lines += [
        "Machine:",
        "",
        f"- CPU: {facts['cpu']}, nproc {facts['nproc']}, memory {facts['memory']}",
        f"- OS: {facts['os']}",
        *bullet(
            f"Python {facts['python']}: {facts['packages']}, cryptography {facts['cryptography']}"
        ),
        f"- `openssl` command: {facts['openssl_cli']} (the reference row)",
        *bullet(
            f"load average (1, 5, 15 min) before the run: {facts['load']}. This is a shared "
            "machine: compare rows within one run, not across runs."
        ),
        "",
    ]
    return "\n".join(lines)


def best_batch(rows: list[Row]) -> Row | None:
    batch_rows = [r for r in rows if r.operation.startswith("POST /api/v1/licences/batch")]
    return max(batch_rows, key=lambda r: r.rate, default=None)


def render_target(report: Report, args: argparse.Namespace) -> list[str]:
    best = best_batch(report.rows)
    if best is None:
        return []
    ratio = best.rate / TARGET_PER_CORE
    text = (
        f"**Target: {TARGET_PER_CORE:,} sealed licences per second per core. Best here: "
        f"{fmt_rate(best.rate)}/s ({best.database}, batches of {args.batch}), {ratio:.1%} of "
        f"the target, {1 / ratio:.1f}× short.** "
        if ratio
        else ""
    )
    singles = [r for r in report.rows if r.operation.startswith("POST /api/v1/licences (")]
    if singles:
        single = max(singles, key=lambda r: r.rate)
        text += (
            f"One licence a request reaches {fmt_rate(single.rate)}/s "
            f"({single.rate / TARGET_PER_CORE:.1%} of the target). "
        )
    if report.speed is not None:
        sign, verify = report.speed["sign"], report.speed["verify"]
        floor = 3 / sign
        text += (
            f"The physical floor: a licence needs 3 ECDSA P-256 signatures (document seal, "
            f"time-stamp, QR seal), {floor * 1e6:.0f} µs at `openssl speed`'s "
            f"{fmt_rate(sign)} signatures/s, so one core could seal about "
            f"{fmt_rate(1 / floor)} licences/s (Authority no longer adds a verification, at "
            f"{fmt_rate(verify)}/s, per signature). The target leaves "
            f"{1e6 / TARGET_PER_CORE:.0f} µs a licence; Authority now spends "
            f"{1e6 / best.rate:,.0f} µs."
        )
    return paragraph(text)


def _ordered_labels(profile: Profile) -> list[str]:
    """Every timed label of either run, by batch share then single share; the rest last."""
    batch, single = dict(profile.batch_steps), dict(profile.single_steps)
    labels = {*batch, *single} - {REST}
    ordered = sorted(labels, key=lambda label: (batch.get(label, 0.0), single.get(label, 0.0)))
    return [*reversed(ordered), REST]


def render_profile(profile: Profile) -> list[str]:
    lines = ["### Licence issuance: where the time goes", ""]
    per_licence = profile.batch_request_s / profile.batch
    lines += paragraph(
        "The ASGI app in-process on core 0 (SQLite, the same instance, the server stopped), "
        "FastAPI's thread-pool hand-offs run inline, each named function timed by a wrapper "
        "that counts its own time (its time less that of the named functions it calls), "
        f"for {IN_PROCESS_SECONDS:g} s of batch requests ({profile.batch} licences) and "
        f"{IN_PROCESS_SECONDS:g} s of single requests. Per request, with the wrappers: "
        f"{fmt_latency(profile.batch_request_s)} a batch ({fmt_latency(per_licence)} a "
        f"licence), {fmt_latency(profile.single_request_s)} a single licence. The share of "
        "each piece of work, and its time per licence in a batch:"
    )
    batch, single = dict(profile.batch_steps), dict(profile.single_steps)
    lines += [
        f"| work | batch of {profile.batch} | µs a licence | one a request |",
        "| --- | ---: | ---: | ---: |",
    ]
    small = []
    for label in _ordered_labels(profile):
        b, o = batch.get(label, 0.0), single.get(label, 0.0)
        if label != REST and b < 0.005 and o < 0.005:
            small.append(label.split(":")[0])
            continue
        shown = (
            "the rest: ORM objects, `_check`, FastAPI/Starlette routing and dependencies, "
            "middleware, Python glue"
            if label == REST
            else label
        )
        lines.append(f"| {shown} | {b:.1%} | {b * per_licence * 1e6:,.0f} | {o:.1%} |")
    lines.append("")
    if small:
        lines += paragraph("Under 0.5 % of both: " + "; ".join(small) + ".")
    steps = profile.batch_steps
    lines += paragraph(
        f"In a batch, the in-process time-stamp (token assembly and imprint check, its "
        f"signature excluded) takes {_share_of(steps, 'time-stamp'):.0%}; the three ECDSA "
        f"signatures themselves {_share_of(steps, 'ECDSA P-256 signing'):.0%} "
        f"({fmt_latency(profile.sign_s)} each with cryptography in this process). Signatures "
        "are no longer verified one by one (a verification costs "
        f"{fmt_latency(profile.verify_s)}): each key is checked once, when its sealer is built."
    )
    shown = [f"{label} {share:.0%}" for label, share in profile.packages[:8]]
    others = sum(share for _label, share in profile.packages[8:])
    lines += paragraph(
        f"By where the code lives (cProfile of {profile.profiled_batches} batch requests, own "
        "time, C calls charged to their caller; cProfile's per-call cost inflates "
        "Python-heavy code such as asn1crypto's relative to C such as the signatures): "
        + ", ".join(shown)
        + (f", others {others:.0%}." if others >= 0.005 else ".")
    )
    return lines


def render_gap(report: Report) -> list[str]:
    profile = report.profile
    assert profile is not None
    steps = profile.batch_steps
    per_licence = profile.batch_request_s / profile.batch
    lines = paragraph(
        "Done since the first profile (2026-11-23: 376 licences/s over HTTP, 58% of a "
        "licence in asn1crypto building and re-parsing RFC 3161 tokens): time-stamp tokens "
        "assembled from DER pieces in process (`TimeStampAuthority.stamp`, the code that "
        "also answers `/pki/tsa`) instead of a request and reply round trip through "
        "asn1crypto; the token's imprint checked by walking its DER; each key checked with "
        "one signature when its sealer is built instead of verifying every signature; "
        "sealers kept per seal and TSA certificate (`SealerCache`, looked up per request so "
        "a rotation or revocation applies at once); the canonical document written by the C "
        "JSON encoder where that gives RFC 8785's bytes. Then (2026-12-01, 22% fewer "
        "instructions a licence by callgrind, 4.36 million to 3.39 million): licences and "
        "their events stored with one Core executemany INSERT per table instead of the unit "
        "of work's flush, the objects attached to the session as already stored; one "
        "jsonschema validator per type in a batch; the QR payload's base-42 text by table and"
        " its packed text by `str.translate`; the time-stamp's imprint algorithm, the signing"
        " time and genTime encoded once; the imprint check walking header offsets without "
        "copying; the QR field names and URL head worked out once. Then (2026-12-01, "
        "later; 3.52 million to 3.00 million instructions a licence by callgrind, 15% "
        "fewer): valid data accepted by jsonschema-rs where it reads the schema as "
        "jsonschema does (2 µs instead of 21; refusals, their 422 errors and other schemas "
        "stay with jsonschema); the audit entries hashed through the same RFC 8785 fast "
        "path as documents; issued licences made as the ORM makes loaded objects, without "
        "an event per attribute; the reply's types and agencies taken from the unit of "
        "work instead of two queries, and the client's agency found with one query instead "
        "of two; start-up objects frozen out of the cyclic garbage "
        "collector (`authority serve`, and this profile), so a full collection no longer "
        "scans some 217,000 of them (about 110 ms, once per some 4,000 licences). Then "
        "(2026-12-01, night; 2.80 million to 2.61 million instructions a licence by "
        "callgrind on an AMD EPYC host, 7% fewer, the WAL checkpoint aside): SQLite's WAL "
        "checkpointed by a thread of its own after commits (`WalCheckpointer`) instead of "
        "inside the COMMIT that takes the log past 1,000 pages, which made one batch commit "
        "in five take 30-55 ms instead of about 3; licences, their events and the audit "
        "entries INSERTed by the driver's executemany with each column type's own bind "
        "processing (`authority/db/bulk.py`) instead of Core's per-row parameter handling; "
        "the QR payload's text by one table look-up per two-byte group; the RFC 8785 fast "
        "path's domain check walking with loops, strings taken without a call. Then "
        "(2026-12-07; 2.60 million to 2.23 million instructions a licence by callgrind, and "
        "22-29% less CPU a licence, more than the instructions say): a batch's signatures "
        "made back to back (every document's attributes signed, then every time-stamp "
        "token, then every QR body, the DER assembled afterwards): one signature timed "
        "inside a batch took 53-69 µs of CPU against 22-24 µs in a tight loop, and with "
        "them back to back the batch row over HTTP gained 13-38% in alternated runs; the QR "
        "text's table one machine word per group (256 KB) instead of 65,536 strings (4 MB, "
        "which missed the cache at each look-up); each distinct timestamp of a batch's rows "
        "bind-processed once; the API's issued licences left out of the session (the reply "
        "only reads them); the in-process TSA's imprints not re-read; licence ids UUIDv7 "
        "(RFC 9562), so new rows go to the end of their indexes instead of a random leaf "
        "page each."
    )
    remaining = sorted(
        ((label, share) for label, share in steps if label != REST),
        key=lambda item: item[1],
        reverse=True,
    )[:6]
    listed = "; ".join(
        f"{label.split(':')[0]} {share * per_licence * 1e6:,.0f} µs" for label, share in remaining
    )
    rest = dict(steps).get(REST, 0.0)
    lines += paragraph(
        f"What is left, largest first (µs of a licence in a batch): {listed}; the rest (ORM "
        f"objects, validation glue, FastAPI, middleware) {rest * per_licence * 1e6:,.0f} µs. "
        f"The target leaves {1e6 / TARGET_PER_CORE:.0f} µs a licence; one core spends "
        f"{per_licence * 1e6:,.0f} µs in process with the wrappers (the commit's time is "
        "mostly its wait for the fsync, which over HTTP the other connection's batch "
        "overlaps). The three signatures are all needed (document seal, time-stamp, QR "
        "seal; cryptography signs in about 23 µs of CPU each when the signatures run back "
        "to back); the rest is Python spread thin (DER and QR assembly, the audit entry per "
        "licence, the rows' bind processing, FastAPI per request), a few µs a piece. Per "
        "machine, one worker per core (`--workers N`, on PostgreSQL for concurrent writers) "
        "scales it."
    )
    return lines


# -- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="duration of each issuance row (default 10)"
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="licences per batch request (default 100)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="connections of the batch row (default 2: one batch's commit waits on fsync "
        "while the other's licences are sealed)",
    )
    parser.add_argument(
        "--max-licences", type=int, default=50_000, help="cap per row (default 50000)"
    )
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help=f"PostgreSQL server to create a throw-away database on (default {DEFAULT_POSTGRES})",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-pdf", action="store_true", help="skip the PDF rows")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process profile")
    parser.add_argument(
        "--write", action="store_true", help=f'rewrite "{SECTION_HEADING}" in docs/performance.md'
    )
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 60:
        parser.error("--seconds must be between 1 and 60")
    if not 1 <= args.batch <= 1000:
        parser.error("--batch must be between 1 and 1000 (the API's limit)")
    if not 1 <= args.concurrency <= 8:
        parser.error("--concurrency must be between 1 and 8")
    if not 1 <= args.max_licences <= 1_000_000:
        parser.error("--max-licences must be between 1 and 1000000")
    return args


def run(args: argparse.Namespace) -> int:
    cores = available_cores()
    server_core = cores[0]
    client_core = cores[1] if len(cores) > 1 else cores[0]
    notes: list[str] = []
    if client_core == server_core:
        notes.append("Only one core was available: the server and the load generator shared it.")
    facts = machine_facts()  # the load average before the run
    pin({server_core})
    began = time.monotonic()
    rows: list[Row] = []
    profile: Profile | None = None
    postgres: str | None = None
    with tempfile.TemporaryDirectory(prefix="authority-licence-bench-") as temp:
        directory = Path(temp)
        setup, measured = bench_database(
            "SQLite", directory / "sqlite", None, (server_core, client_core), args
        )
        rows += measured
        if not args.no_profile:
            say("where the time goes: the ASGI app in-process (SQLite), timed and profiled")
            profile = profile_in_process(setup, server_core, args.batch)
            say(
                f"in-process: {fmt_rate(profile.batch_rate)} licences/s in batches of "
                f"{args.batch}, {fmt_rate(profile.single_rate)}/s one a request"
            )
            for label, share in profile.batch_steps:
                if share >= 0.01:
                    say(f"  {share:6.1%}  {label}")
            say("  by package: " + ", ".join(f"{k} {v:.0%}" for k, v in profile.packages[:8]))
        if args.no_postgres:
            notes.append("PostgreSQL rows skipped: --no-postgres.")
        else:
            why = postgres_unreachable(args.postgres)
            if why is not None:
                notes.append(f"PostgreSQL rows skipped: {why}.")
                say(f"PostgreSQL skipped: {why}")
            else:
                postgres = postgres_version(args.postgres)
                with postgres_database(args.postgres) as url:
                    _setup, measured = bench_database(
                        "PostgreSQL", directory / "postgresql", url, (server_core, client_core),
                        args,
                    )  # fmt: skip
                    rows += measured
    say("the physical reference")
    speed, speed_command = openssl_speed(server_core)
    if speed is None:
        notes.append(f"openssl speed row skipped: {speed_command}")
    else:
        sign, verify = fmt_rate(speed["sign"]), fmt_rate(speed["verify"])
        say(f"{speed_command}: {sign} sign/s, {verify} verify/s")
    disturbed = [r.others_cpu for r in rows if not math.isnan(r.others_cpu)]
    if profile is not None:
        disturbed.append(profile.others_cpu)
    if disturbed and max(disturbed) >= DISTURBED:
        notes.append(
            f"Other processes used up to {max(disturbed):.0%} of a core during the measurements "
            "(column others' CPU): this run was disturbed and its figures are low."
        )
        say(notes[-1])
    best = best_batch(rows)
    if best is not None:
        say(
            f"best: {fmt_rate(best.rate)} licences/s ({best.database}), "
            f"{best.rate / TARGET_PER_CORE:.1%} of the {TARGET_PER_CORE:,}/s target"
        )
    say(f"done in {time.monotonic() - began:.0f} s")
    if args.write:
        command = shlex.join([python_path(), "bench/licence_bench.py", *sys.argv[1:]])
        report = Report(rows, notes, profile, speed, speed_command, facts, command, postgres)
        write_section(SECTION_HEADING, render_section(report, args))
        say(f"wrote {SECTION_HEADING!r} in {PERFORMANCE_DOC}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through every `finally`: servers, database

    signal.signal(signal.SIGTERM, terminated)
    try:
        return run(args)
    except BenchFailure as exc:
        print(f"licence_bench: aborted: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("licence_bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
