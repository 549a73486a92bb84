"""PKI benchmark: seals per second per key store, time-stamps and OCSP per second.

Run from the repository root:

    .venv/bin/python bench/pki_bench.py [--seconds 10] [--concurrency 4] [--write]

What it measures, on one core each time:

a. ``KeyStore.sign`` over a 300-byte message (the size of a CMS
   signed-attributes blob) through the file key store (key decrypted once,
   then cached) and through the PKCS#11 key store on a SoftHSM2 token made in
   a temporary directory (skipped, with a note, without SoftHSM2);
b. ``TimeStampAuthority.respond()`` and ``OcspResponder.respond()``
   in-process, then ``POST /pki/tsa`` and ``POST /pki/ocsp`` over HTTP
   against ``authority serve --workers 1`` (pinned to core 0) on a fresh
   SQLite database initialised by ``authority init``, with the load generator
   pinned to core 1 (and ``GET /healthz`` first, the framework's floor);
c. ``openssl speed -seconds 3 ecdsap256`` (single-threaded), the physical
   reference.

Every reply is checked (granted time-stamp with our nonce, successful OCSP
response with status good and our nonce); one failure aborts the run. Traffic
goes to 127.0.0.1 only; each phase is bounded in time and in count; the
server and the temporary directory are removed even on failure. With
``--write`` the "## PKI" section of docs/performance.md is rewritten (other
sections are kept).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
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

import httpx
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from harness import (
    PASSPHRASE,
    PERFORMANCE_DOC,
    ROOT,
    SERVER_START_TIMEOUT,
    BenchFailure,
    authority_command,
    available_cores,
    fmt_rate,
    free_port,
    paragraph,
    pin,
    python_path,
    run_cli,
    say,
    stop,
    write_section,
)

from authority.errors import AuthorityError
from authority.pki import profiles
from authority.pki.file_keystore import FileKeyStore
from authority.pki.keystore import KeyInfo, KeyStore, Signer
from authority.pki.ocsp import CertStatus, OcspResponder
from authority.pki.service import timestamp_serial
from authority.pki.tsa import TimeStampAuthority, TimeStampResp, build_request
from authority.pki.x509sign import check_signature

SECTION_HEADING = "## PKI"
MESSAGE_BYTES = 300
IN_PROCESS_SECONDS = 3.0
MAX_IN_PROCESS_OPS = 200_000
REQUEST_POOL = 512  # distinct requests (distinct nonces) cycled through by the load
SOFTHSM_PIN = "1234"
SOFTHSM_SO_PIN = "5678"
SOFTHSM_LABEL = "authority-bench"


# -- measuring ---------------------------------------------------------------------


@dataclass
class Result:
    """One measured operation."""

    name: str
    where: str
    ops: int
    seconds: float
    latencies_ns: list[int] = field(repr=False)
    concurrency: int = 1
    failures: int = 0

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """Latency at ``fraction`` (nearest rank), in seconds."""
        ordered = sorted(self.latencies_ns)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1] / 1e9


def measure(
    name: str, where: str, operation: Callable[[int], object], seconds: float
) -> tuple[Result, list[object]]:
    """Call ``operation(i)`` for ``seconds`` (at most MAX_IN_PROCESS_OPS times)."""
    operation(-1)  # warm-up: first use decrypts keys, fills caches
    outputs: list[object] = []
    latencies: list[int] = []
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(seconds * 1e9)
    i = 0
    while i < MAX_IN_PROCESS_OPS:
        t0 = clock()
        if t0 >= deadline:
            break
        outputs.append(operation(i))
        latencies.append(clock() - t0)
        i += 1
    elapsed = (clock() - start) / 1e9
    return Result(name, where, i, elapsed, latencies), outputs


# -- a. key stores -----------------------------------------------------------------


def bench_keystore(store: KeyStore, label: str, seconds: float) -> Result:
    key = store.generate(f"bench {label}")
    message = os.urandom(MESSAGE_BYTES)
    signer = store.signer(key.handle)
    result, signatures = measure(
        "KeyStore.sign, 300-byte message",
        label,
        lambda _i: store.sign(key.handle, message),
        seconds,
    )
    # Signatures must verify (outside the timed loop): the first 1000, then every 100th.
    for signature in signatures[:1000] + signatures[1000::100]:
        check_signature(signer, signature, message)  # type: ignore[arg-type]
    return result


def make_softhsm_store(directory: Path) -> tuple[KeyStore | None, str]:
    """A Pkcs11KeyStore on a fresh SoftHSM2 token under ``directory``, or a note why not."""
    try:
        from authority.pki.pkcs11_keystore import Pkcs11KeyStore, find_softhsm2_module
    except ImportError as exc:
        return None, f"python-pkcs11 is not importable ({exc})"
    util = shutil.which("softhsm2-util")
    module = find_softhsm2_module()
    if util is None or module is None:
        return None, "SoftHSM2 is not installed (Debian package softhsm2)"
    token_dir = directory / "tokens"
    token_dir.mkdir(mode=0o700)
    config = directory / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    # SoftHSM2 reads its configuration when the module initialises: set it first.
    os.environ["SOFTHSM2_CONF"] = str(config)
    pins = ["--pin", SOFTHSM_PIN, "--so-pin", SOFTHSM_SO_PIN]
    init = subprocess.run(
        [util, "--init-token", "--free", "--label", SOFTHSM_LABEL, *pins],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        return None, f"softhsm2-util --init-token failed: {init.stderr.strip()}"
    version = subprocess.run([util, "--version"], capture_output=True, text=True).stdout.strip()
    return Pkcs11KeyStore(module, SOFTHSM_LABEL, SOFTHSM_PIN), f"SoftHSM2 {version}"


# -- b. in-process TSA and OCSP ------------------------------------------------------


@dataclass
class Hierarchy:
    seal_ca: x509.Certificate
    tsa: TimeStampAuthority
    ocsp: OcspResponder
    seal: x509.Certificate


def build_hierarchy(store: KeyStore) -> Hierarchy:
    """Root, seal CA, TSA, OCSP responder and one agency seal, keys in ``store``."""
    identity = profiles.AuthorityIdentity("Bench", "Bench Authority", "CN")
    base = "http://127.0.0.1:9"

    def new_key(label: str) -> tuple[KeyInfo, Signer]:
        info = store.generate(label)
        return info, store.signer(info.handle)

    _root_key, root_signer = new_key("bench root")
    root = profiles.root_ca_certificate(identity.root_subject(), root_signer)
    ca_key, ca_signer = new_key("bench seal CA")
    seal_ca = profiles.issuing_ca_certificate(
        identity.seal_ca_subject(),
        ca_key.public_key,
        root,
        root_signer,
        profiles.PkiUrls.for_issuer(base, "root", ocsp=False),
    )
    urls = profiles.PkiUrls.for_issuer(base, "seal-ca")
    tsa_key, tsa_signer = new_key("bench TSA")
    tsa_cert = profiles.tsa_certificate(
        identity.tsa_subject(), tsa_key.public_key, seal_ca, ca_signer, urls
    )
    ocsp_key, ocsp_signer = new_key("bench OCSP")
    ocsp_cert = profiles.ocsp_responder_certificate(
        identity.ocsp_subject(), ocsp_key.public_key, seal_ca, ca_signer, urls
    )
    seal_key, _ = new_key("bench seal")
    seal = profiles.seal_certificate(
        profiles.AgencySeal("BENCH", "Bench Agency", "CN"),
        seal_key.public_key,
        seal_ca,
        ca_signer,
        urls,
    )
    tsa = TimeStampAuthority(tsa_cert, tsa_signer, serial_source=timestamp_serial, chain=[seal_ca])
    responder = OcspResponder(
        ocsp_cert, ocsp_signer, [seal_ca], lambda _issuer, _serial: CertStatus.good()
    )
    return Hierarchy(seal_ca, tsa, responder, seal)


def tsa_requests(count: int) -> list[tuple[int, bytes]]:
    """``count`` (nonce, DER TimeStampReq) pairs over distinct 32-byte documents."""
    pool = []
    for i in range(count):
        nonce = int.from_bytes(os.urandom(8), "big") | 1
        pool.append((nonce, build_request(os.urandom(32) + i.to_bytes(4, "big"), nonce=nonce)))
    return pool


def check_tsa_reply(reply: bytes, nonce: int) -> str | None:
    """None if ``reply`` grants a token carrying ``nonce``, else what is wrong.

    (Not ``authority.pki.tsa.token_from_response``: it costs ~100 ms a call,
    see docs/performance.md.)
    """
    try:
        response = TimeStampResp.load(reply, strict=True)
        status = response["status"]["status"].native
        token = response["time_stamp_token"]
        if status != "granted" or isinstance(token, core.Void):
            return f"time-stamp request {status}: {response['status']['fail_info'].native}"
        signed_data = token["content"]
        info = signed_data["encap_content_info"]["content"].parsed
        if info["nonce"].native != nonce:
            return "time-stamp token carries another nonce"
        if len(signed_data["signer_infos"]) != 1:
            return "time-stamp token without exactly one signer"
    except Exception as exc:
        return f"unreadable time-stamp reply: {type(exc).__name__}: {exc}"
    return None


def ocsp_requests(
    cert: x509.Certificate, issuer: x509.Certificate, count: int
) -> list[tuple[bytes, bytes]]:
    """``count`` (nonce, DER OCSPRequest) pairs for ``cert``, built with cryptography."""
    pool = []
    for _ in range(count):
        nonce = os.urandom(16)
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(cert, issuer, hashes.SHA1())  # CertID hash, as openssl sends
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
        )
        pool.append((nonce, request.public_bytes(serialization.Encoding.DER)))
    return pool


def check_ocsp_reply(reply: bytes, nonce: bytes, serial: int) -> str | None:
    """None if ``reply`` is a successful OCSP response: ``serial`` good, ``nonce`` echoed."""
    try:
        response = ocsp.load_der_ocsp_response(reply)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return f"OCSP response status {response.response_status.name}"
        if response.serial_number != serial:
            return "OCSP response about another certificate"
        if response.certificate_status is not ocsp.OCSPCertStatus.GOOD:
            return f"OCSP certificate status {response.certificate_status.name}"
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except Exception as exc:
        return f"unreadable OCSP response: {exc}"
    if echoed != nonce:
        return "OCSP response carries another nonce"
    return None


def verify_ocsp_signature(reply: bytes) -> None:
    """The response's signature verifies with the responder certificate it carries."""
    response = ocsp.load_der_ocsp_response(reply)
    responder = response.certificates[0]
    key = responder.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert response.signature_hash_algorithm is not None
    key.verify(
        response.signature,
        response.tbs_response_bytes,
        ec.ECDSA(response.signature_hash_algorithm),
    )


def verify_tsa_signature(reply: bytes) -> None:
    """The token's signature verifies with the TSA certificate it carries (certReq)."""
    token = TimeStampResp.load(reply)["time_stamp_token"]
    signer_info = token["content"]["signer_infos"][0]
    serial = signer_info["sid"].chosen["serial_number"].native
    # The certificates are a SET OF, sorted by encoding: find the signer's by serial.
    certificate = next(
        cert
        for cert in (
            x509.load_der_x509_certificate(choice.chosen.dump())
            for choice in token["content"]["certificates"]
        )
        if cert.serial_number == serial
    )
    # RFC 5652 §5.4: the signature covers the signed attributes as a SET OF (tag 0x31).
    signed = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signer_info["signature"].native, signed, ec.ECDSA(hashes.SHA256()))


def bench_in_process(hierarchy: Hierarchy, seconds: float) -> list[Result]:
    results = []
    now = dt.datetime.now(dt.UTC)
    pool = tsa_requests(REQUEST_POOL)
    result, replies = measure(
        "TimeStampAuthority.respond()",
        "in-process, file key store",
        lambda i: hierarchy.tsa.respond(pool[i % len(pool)][1], now),
        seconds,
    )
    for i, reply in enumerate(replies):
        problem = check_tsa_reply(reply, pool[i % len(pool)][0])  # type: ignore[arg-type]
        if problem:
            raise BenchFailure(f"in-process TSA reply {i}: {problem}")
    verify_tsa_signature(replies[0])  # type: ignore[arg-type]
    results.append(result)

    opool = ocsp_requests(hierarchy.seal, hierarchy.seal_ca, REQUEST_POOL)
    result, replies = measure(
        "OcspResponder.respond()",
        "in-process, file key store",
        lambda i: hierarchy.ocsp.respond(opool[i % len(opool)][1], now),
        seconds,
    )
    serial = hierarchy.seal.serial_number
    for i, reply in enumerate(replies):
        problem = check_ocsp_reply(reply, opool[i % len(opool)][0], serial)  # type: ignore[arg-type]
        if problem:
            raise BenchFailure(f"in-process OCSP reply {i}: {problem}")
    verify_ocsp_signature(replies[0])  # type: ignore[arg-type]
    results.append(result)
    return results


# -- b. over HTTP --------------------------------------------------------------------


@dataclass
class Server:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def server_env(directory: Path, port: int) -> dict[str, str]:
    # Start from the caller's environment without any AUTHORITY_* setting of theirs.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AUTHORITY_")}
    env.pop("SOFTHSM2_CONF", None)
    env.update(
        {
            "AUTHORITY_DATABASE_URL": f"sqlite:///{directory / 'var' / 'authority.db'}",
            "AUTHORITY_KEYS_DIR": str(directory / "keys"),
            "AUTHORITY_VAR_DIR": str(directory / "var"),
            "AUTHORITY_KEYSTORE_PASSPHRASE": PASSPHRASE,
            "AUTHORITY_ISSUER": f"http://127.0.0.1:{port}",
        }
    )
    return env


@contextlib.contextmanager
def running_server(directory: Path, core: int) -> Iterator[Server]:
    """`authority serve --workers 1` on a free port, pinned to ``core``; always stopped."""
    port = free_port()
    env = server_env(directory, port)
    say("authority init (temporary SQLite database and file key store)")
    run_cli(env, "init")
    log_path = directory / "serve.log"
    serve_options = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*authority_command(), "serve", *serve_options],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not it
        )
    server = Server(f"http://127.0.0.1:{port}", env, process, log_path)
    try:
        wait_ready(server)
        say(f"authority serve --workers 1 ready at {server.url}, pinned to core {core}")
        yield server
    finally:
        say("stopping the server")
        stop(process)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    with httpx.Client(base_url=server.url, trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise BenchFailure(f"authority serve exited early:\n{server.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
    raise BenchFailure(f"authority serve not ready in {SERVER_START_TIMEOUT:.0f} s")


Checker = Callable[[bytes, object], str | None]


def load(
    server: Server,
    name: str,
    path: str,
    content_type: str | None,
    pool: list[tuple[object, bytes]],
    check: Checker,
    *,
    seconds: float,
    concurrency: int,
    max_requests: int,
) -> Result:
    """POST requests from ``pool`` for ``seconds`` with ``concurrency`` keep-alive clients."""
    lock = threading.Lock()
    issued = 0
    latencies: list[int] = []
    replies: list[tuple[int, int, bytes]] = []  # (pool index, HTTP status, body)
    errors: list[str] = []
    headers = {"Content-Type": content_type} if content_type else {}

    def send(client: httpx.Client, body: bytes) -> httpx.Response:
        if content_type is None:
            return client.get(path)
        return client.post(path, content=body, headers=headers)

    with httpx.Client(base_url=server.url, trust_env=False, timeout=30.0) as client:
        for _ in range(20):  # warm-up: key decryption, caches
            reply = send(client, pool[0][1])
            problem = f"HTTP {reply.status_code}" if reply.status_code != 200 else None
            problem = problem or check(reply.content, pool[0][0])
            if problem:
                raise BenchFailure(f"{name}: warm-up reply: {problem}\n{server.log_tail()}")
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)

    def worker() -> None:
        nonlocal issued
        mine_lat: list[int] = []
        mine: list[tuple[int, int, bytes]] = []
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30.0) as client:
            while True:
                with lock:
                    if issued >= max_requests:
                        break
                    index = issued
                    issued += 1
                t0 = time.perf_counter_ns()
                if t0 >= deadline:
                    break
                try:
                    reply = send(client, pool[index % len(pool)][1])
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(f"request {index}: {type(exc).__name__}: {exc}")
                    break
                mine_lat.append(time.perf_counter_ns() - t0)
                mine.append((index, reply.status_code, reply.content))
        with lock:
            latencies.extend(mine_lat)
            replies.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed = (time.perf_counter_ns() - start) / 1e9
    failures = list(errors)
    for index, status, body in replies:
        nonce = pool[index % len(pool)][0]
        problem = f"HTTP {status}" if status != 200 else check(body, nonce)
        if problem:
            failures.append(f"request {index}: {problem}")
    where = f"HTTP, 1 worker, {concurrency} connections"
    result = Result(name, where, len(replies), elapsed, latencies, concurrency)
    result.failures = len(failures)
    if failures:
        raise BenchFailure(
            f"{name}: {len(failures)} of {len(replies)} replies failed; first: {failures[0]}\n"
            f"server log:\n{server.log_tail()}"
        )
    if not replies:
        raise BenchFailure(f"{name}: no reply within {seconds} s")
    return result


def check_healthz(reply: bytes, _nonce: object) -> str | None:
    return None if json.loads(reply) == {"status": "ok"} else f"unexpected /healthz body {reply!r}"


def bench_http(
    directory: Path, server_core: int, client_core: int, args: argparse.Namespace
) -> list[Result]:
    results = []
    with running_server(directory, server_core) as server:
        agency = run_cli(server.env, "agency", "create", "--code", "BENCH", "--name", "Bench")
        say("agency BENCH created; its seal certificate is the subject of the OCSP requests")
        seal_info = agency["seal"]
        assert isinstance(seal_info, dict)
        seal = x509.load_pem_x509_certificate(str(seal_info["pem"]).encode())
        with httpx.Client(base_url=server.url, trust_env=False) as client:
            issuer = x509.load_pem_x509_certificate(client.get("/pki/ca/seal-ca.pem").content)
        serial = seal.serial_number
        tsa_pool: list[tuple[object, bytes]] = list(tsa_requests(REQUEST_POOL))
        ocsp_pool: list[tuple[object, bytes]] = list(ocsp_requests(seal, issuer, REQUEST_POOL))
        phases: list[tuple[str, str, str | None, list[tuple[object, bytes]], Checker, float]] = [
            (
                "GET /healthz (framework floor)",
                "/healthz",
                None,
                [(None, b"")],
                check_healthz,
                min(IN_PROCESS_SECONDS, args.seconds),
            ),
            (
                "POST /pki/tsa",
                "/pki/tsa",
                "application/timestamp-query",
                tsa_pool,
                lambda body, nonce: check_tsa_reply(body, nonce),  # type: ignore[arg-type]
                args.seconds,
            ),
            (
                "POST /pki/ocsp",
                "/pki/ocsp",
                "application/ocsp-request",
                ocsp_pool,
                lambda body, nonce: check_ocsp_reply(body, nonce, serial),  # type: ignore[arg-type]
                args.seconds,
            ),
        ]
        pin({client_core})
        try:
            for name, path, content_type, pool, check, seconds in phases:
                say(
                    f"{name}: {seconds:g} s, {args.concurrency} connections, load on core "
                    f"{client_core}"
                )
                result = load(
                    server, name, path, content_type, pool, check,
                    seconds=seconds, concurrency=args.concurrency,
                    max_requests=args.max_requests,
                )  # fmt: skip
                print_result(result)
                results.append(result)
        finally:
            pin({server_core})
    return results


# -- c. openssl speed ----------------------------------------------------------------


def openssl_speed(core: int) -> tuple[dict[str, float] | None, str]:
    """sign/s and verify/s of ``openssl speed -seconds 3 ecdsap256`` on ``core``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None, "openssl is not installed"
    command = ["openssl", "speed", "-seconds", "3", "ecdsap256"]
    taskset = shutil.which("taskset")
    if taskset:
        command = ["taskset", "-c", str(core), *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    for line in done.stdout.splitlines():
        # " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  41234.5  13456.7"
        match = re.search(r"ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", line)
        if match:
            return {"sign": float(match[1]), "verify": float(match[2])}, shlex.join(command)
    return None, f"could not parse `{shlex.join(command)}` output:\n{done.stdout}{done.stderr}"


# -- reporting -----------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    from cryptography import __version__ as cryptography_version
    from cryptography.hazmat.backends.openssl.backend import backend

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    openssl_cli = "absent"
    if shutil.which("openssl"):
        openssl_cli = subprocess.run(
            ["openssl", "version"], capture_output=True, text=True
        ).stdout.strip()
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cryptography": f"{cryptography_version} ({backend.openssl_version_text()})",
        "openssl_cli": openssl_cli,
    }


def fmt_latency(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.2f} ms"


def render_section(
    results: list[Result],
    notes: list[str],
    speed: dict[str, float] | None,
    speed_command: str,
    facts: dict[str, str],
    command: str,
    args: argparse.Namespace,
) -> str:
    floor = min(IN_PROCESS_SECONDS, args.seconds)
    lines = [
        SECTION_HEADING,
        "",
        f"Measured {facts['date']} with:",
        "",
        "```sh",
        command,
        "```",
        "",
    ]
    lines += paragraph(
        "(`--write` rewrites this section; run it again to refresh.) Each row uses one "
        f"core. In-process rows run pinned to core 0 for {floor:g} s each. HTTP rows "
        "drive `authority serve --workers 1` (SQLite, file key store, set up by "
        "`authority init` in a temporary directory) pinned to core 0, from a load "
        f"generator pinned to core 1 with {args.concurrency} keep-alive connections, for "
        f"{args.seconds:g} s per PKI row ({floor:g} s for `/healthz`). Every reply was "
        "checked: time-stamps granted with the request's nonce, OCSP responses "
        "successful with status good and the nonce echoed, signatures verified on "
        "samples. None failed."
    )
    lines += [
        "| operation | where | ops/s | p50 | p99 | ops measured |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.where} | {fmt_rate(r.rate)} | {fmt_latency(r.percentile(0.5))} "
            f"| {fmt_latency(r.percentile(0.99))} | {r.ops:,} |"
        )
    if speed is not None:
        for what in ("sign", "verify"):
            lines.append(
                f"| ECDSA P-256 {what} (reference) | `{speed_command}` "
                f"| {fmt_rate(speed[what])} | | | |"
            )
    lines.append("")
    lines += paragraph(
        "Latency is per operation. Over HTTP it runs from sending the request to reading "
        f"the whole reply, so with {args.concurrency} connections it includes queueing: "
        "p50 is about connections / throughput, and one request alone costs roughly the "
        "in-process figure plus the `/healthz` floor. A seal is one `KeyStore.sign`; a "
        "time-stamp or OCSP reply is one signature plus ASN.1 encoding, and over HTTP "
        "also reads the certificates from the database on every request."
    )
    for note in notes:
        lines += textwrap.wrap(
            note, width=78, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False
        )
    if notes:
        lines.append("")
    lines += [
        "Machine:",
        "",
        f"- CPU: {facts['cpu']}, nproc {facts['nproc']}, memory {facts['memory']}",
        f"- OS: {facts['os']}",
        f"- Python {facts['python']}; cryptography {facts['cryptography']} (what the key "
        "stores, TSA and OCSP rows use)",
        f"- `openssl` command: {facts['openssl_cli']} (the reference rows)",
        "",
    ]
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="duration of each HTTP row (default 10)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="keep-alive connections (default 4)"
    )
    parser.add_argument(
        "--max-requests", type=int, default=50_000, help="cap per HTTP row (default 50000)"
    )
    parser.add_argument(
        "--write", action="store_true", help="rewrite the PKI section of docs/performance.md"
    )
    args = parser.parse_args(argv)
    if not 0.5 <= args.seconds <= 60:
        parser.error("--seconds must be between 0.5 and 60")
    if not 1 <= args.concurrency <= 32:
        parser.error("--concurrency must be between 1 and 32")
    if not 1 <= args.max_requests <= 1_000_000:
        parser.error("--max-requests must be between 1 and 1000000")
    return args


def print_result(r: Result) -> None:
    say(
        f"{r.name:<32} {r.where:<30} {fmt_rate(r.rate):>8} ops/s  "
        f"p50 {fmt_latency(r.percentile(0.5)):>8}  p99 {fmt_latency(r.percentile(0.99)):>9}"
        f"  ({r.ops:,} ops)"
    )


def run(args: argparse.Namespace) -> int:
    cores = available_cores()
    server_core = cores[0]
    client_core = cores[1] if len(cores) > 1 else cores[0]
    notes: list[str] = []
    if client_core == server_core:
        notes.append("only one core available: server and load generator shared it")
    pin({server_core})
    in_process_seconds = min(IN_PROCESS_SECONDS, args.seconds)
    results: list[Result] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="authority-pki-bench-") as temp:
        directory = Path(temp)
        say("a. seals per second through each key store")
        file_store = FileKeyStore(directory / "file-keys", PASSPHRASE)
        result = bench_keystore(file_store, "file key store", in_process_seconds)
        print_result(result)
        results.append(result)
        (directory / "softhsm").mkdir()
        hsm, about = make_softhsm_store(directory / "softhsm")
        if hsm is None:
            notes.append(f"PKCS#11 row skipped: {about}")
            say(f"PKCS#11 skipped: {about}")
        else:
            try:
                result = bench_keystore(hsm, "PKCS#11 (SoftHSM2)", in_process_seconds)
            except AuthorityError as exc:
                raise BenchFailure(f"PKCS#11 key store on SoftHSM2: {exc.detail}") from exc
            finally:
                hsm.close()
            print_result(result)
            results.append(result)
            notes.append(
                f"PKCS#11: {about}, token in a temporary directory; the message is hashed "
                "in software and the token computes CKM_ECDSA over the digest."
            )

        say("b. time-stamps and OCSP responses per second")
        hierarchy = build_hierarchy(file_store)
        for result in bench_in_process(hierarchy, in_process_seconds):
            print_result(result)
            results.append(result)
        results += bench_http(directory / "server", server_core, client_core, args)

        say("c. physical reference")
        speed, speed_command = openssl_speed(server_core)
        if speed is None:
            notes.append(f"openssl speed row skipped: {speed_command}")
            say(f"skipped: {speed_command}")
        else:
            say(
                f"{speed_command}: {fmt_rate(speed['sign'])} sign/s, "
                f"{fmt_rate(speed['verify'])} verify/s"
            )
    say(f"done in {time.monotonic() - began:.0f} s")
    if args.write:
        facts = machine_facts()
        command = shlex.join([python_path(), "bench/pki_bench.py", *sys.argv[1:]])
        section = render_section(results, notes, speed, speed_command, facts, command.strip(), args)
        write_section(SECTION_HEADING, section)
        say(f"wrote the PKI section of {PERFORMANCE_DOC.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through every `finally`: server, temp dir

    signal.signal(signal.SIGTERM, terminated)
    try:
        return run(args)
    except BenchFailure as exc:
        print(f"pki_bench: aborted: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pki_bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
