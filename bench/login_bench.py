"""Login benchmark: complete OpenID Connect logins and token refreshes per second.

Run from the repository root:

    .venv/bin/python bench/login_bench.py [--seconds 10] [--concurrency 4] [--write]

A complete login is what a portal and a browser do, without a browser:
``GET /oauth/authorize`` (code + PKCE S256) → ``GET /login`` → ``POST
/login`` (the demo citizen's password: one argon2id verification) → the
redirect to the portal with the code (consent is remembered after the first)
→ ``POST /oauth/token`` → ``GET /oauth/userinfo``. A refresh is ``POST
/oauth/token`` with ``grant_type=refresh_token``, rotating the token each
time. The server is ``authority serve --workers 1`` pinned to core 0 on a
fresh SQLite database (``authority init`` + ``authority demo``); the
clients are threads pinned to core 1, each with its own cookie jar. Every
ID token of a login is verified against the JWKS; any failure aborts.
With ``--write`` the "## OpenID Connect logins" section of
docs/performance.md is rewritten. Reference: Keycloak's published sizing
guide, about 15 password logins and 120 refreshes per second per vCPU.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import secrets
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

sys.path.insert(0, str(Path(__file__).parent))
import token_bench as tb
from harness import cpu_seconds

SECTION_HEADING = "## OpenID Connect logins"
KEYCLOAK = {"logins": 15.0, "refreshes": 120.0}
CSRF = 'name="csrf" value="'


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Portal:
    def __init__(self, url: str, demo: dict[str, Any]) -> None:
        self.url = url
        self.client_id = demo["portal"]["client_id"]
        self.secret = demo["portal"]["client_secret"]
        self.redirect = demo["portal"]["redirect_uris"][0]
        self.username = demo["citizen"]["username"]
        self.password = demo["citizen"]["password"]
        self.jwks = jwt.PyJWKSet.from_dict(httpx.get(f"{url}/oauth/jwks.json").json())
        # One TLS context for every browser: httpx.Client() otherwise builds one and loads
        # the system's CA certificates each time, about 40 ms of the load generator's CPU,
        # which made the generator's core, not the server's, set the login rate.
        self.tls = ssl.create_default_context()

    def login(self) -> dict[str, Any]:
        """One complete login; the token response."""
        verifier, challenge = _pkce()
        with httpx.Client(base_url=self.url, timeout=30, verify=self.tls) as browser:
            answer = browser.get(
                "/oauth/authorize",
                params={
                    "response_type": "code",
                    "client_id": self.client_id,
                    "redirect_uri": self.redirect,
                    "scope": "openid profile",
                    "state": "bench",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
            )
            page = browser.get(answer.headers["location"])
            csrf = page.text.split(CSRF, 1)[1].split('"', 1)[0]
            request_id = parse_qs(urlsplit(answer.headers["location"]).query)["request"][0]
            form = {"csrf": csrf, "request": request_id}
            answer = browser.post(
                "/login", data={**form, "id_number": self.username, "password": self.password}
            )
            location = answer.headers["location"]
            if location.startswith("/authorize/consent"):
                page = browser.get(location)
                answer = browser.post("/authorize/consent", data={**form, "decision": "allow"})
                location = answer.headers["location"]
            if not location.startswith(self.redirect):
                raise tb.BenchFailure(f"login ended at {location}")
            code = parse_qs(urlsplit(location).query)["code"][0]
            token = browser.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.redirect,
                    "code_verifier": verifier,
                },
                auth=(self.client_id, self.secret),
            )
            if token.status_code != 200:
                raise tb.BenchFailure(f"token: {token.status_code} {token.text}")
            tokens: dict[str, Any] = token.json()
            header = jwt.get_unverified_header(tokens["id_token"])
            jwt.decode(
                tokens["id_token"],
                self.jwks[header["kid"]].key,
                algorithms=["ES256"],
                audience=self.client_id,
            )
            info = browser.get(
                "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
            if info.status_code != 200:
                raise tb.BenchFailure(f"userinfo: {info.status_code}")
            return tokens

    def refresh(self, client: httpx.Client, refresh_token: str) -> str:
        answer = client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(self.client_id, self.secret),
        )
        if answer.status_code != 200:
            raise tb.BenchFailure(f"refresh: {answer.status_code} {answer.text}")
        new: str = answer.json()["refresh_token"]
        return new


def run_row(threads: int, seconds: float, work: Any) -> tuple[int, list[float]]:
    """Run ``work()`` in ``threads`` threads for ``seconds``; count and time each call."""
    stop_at = time.monotonic() + seconds
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def loop(index: int) -> None:
        step = work(index)
        while time.monotonic() < stop_at and not errors:
            started = time.perf_counter()
            try:
                step()
            except BaseException as exc:  # reported after the row
                errors.append(exc)
                return
            latencies[index].append(time.perf_counter() - started)
            counts[index] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise tb.BenchFailure(str(errors[0]))
    return sum(counts), sorted(x for row in latencies for x in row)


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    cores = tb.available_cores()
    server_core, client_core = cores[0], cores[-1]
    tb.pin({client_core})
    busy = tb.cpu_busy(1.0)
    with tempfile.TemporaryDirectory(prefix="authority-login-bench-") as temporary:
        directory = Path(temporary)
        port = tb.free_port()
        env = tb.authority_env(directory, port)
        tb.run_cli(env, "init")
        demo = tb.run_cli(env, "demo")
        setup = tb.AuthoritySetup(directory, env, port, "", "")
        with tb.authority_server(setup, server_core) as server:
            pid = server.process.pid
            portal = Portal(f"http://127.0.0.1:{port}", demo)
            portal.login()  # the first login gives the consent that later ones reuse
            rows = []
            before = cpu_seconds(pid)
            done, times = run_row(args.concurrency, args.seconds, lambda _i: portal.login)
            rows.append(("complete login", done, times, cpu_seconds(pid) - before))
            tb.say(f"logins: {done / args.seconds:.1f}/s")

            def refresher(_index: int) -> Any:
                client = httpx.Client(base_url=portal.url, timeout=30, verify=portal.tls)
                state = {"token": portal.login()["refresh_token"]}

                def step() -> None:
                    state["token"] = portal.refresh(client, state["token"])

                return step

            before = cpu_seconds(pid)
            done, times = run_row(args.concurrency, args.seconds, refresher)
            rows.append(("refresh (rotating)", done, times, cpu_seconds(pid) - before))
            tb.say(f"refreshes: {done / args.seconds:.1f}/s")
    lines = [
        SECTION_HEADING,
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with:",
        "",
        "```sh",
        f".venv/bin/python bench/login_bench.py --seconds {args.seconds:g} "
        f"--concurrency {args.concurrency}" + (" --write" if args.write else ""),
        "```",
        "",
        f"`authority serve --workers 1` on core {server_core} (SQLite, file key store), "
        f"{args.concurrency} client threads on core {client_core}, {args.seconds:g} s per row. "
        "A login is authorize → login page → password (argon2id with docs/identity.md's "
        "parameters, m=7 MiB, t=5, p=1, which are Keycloak's defaults too) → code → token → "
        "userinfo, with the ID token verified; a refresh rotates the refresh token. Each login "
        "is a new browser (a new connection and cookie jar); the browsers share one TLS "
        "context, as building one per client cost the load generator about 40 ms of CPU a "
        "login and made its core, not the server's, set the rate.",
        "",
        "Server CPU is the server process's CPU time during the row divided by the operations "
        "done (the refresh row's includes the login that gives each client its first token).",
        "",
        "| operation | per second (one core) | p50 | p99 | server CPU each | Keycloak per vCPU "
        "| count |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (name, count, times, cpu), reference in zip(rows, KEYCLOAK.values(), strict=True):
        each = f"{cpu / count * 1000:.1f} ms" if count else "–"
        lines.append(
            f"| {name} | {count / args.seconds:.1f} | {percentile(times, 0.5) * 1000:.0f} ms | "
            f"{percentile(times, 0.99) * 1000:.0f} ms | {each} | {reference:g} | {count} |"
        )
    lines += [
        "",
        f"Other load on the machine before the run: {busy:.0%} of a core."
        if busy is not None
        else "",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.write:
        text = tb.PERFORMANCE_DOC.read_text(encoding="utf-8")
        if SECTION_HEADING in text:
            start = text.index(SECTION_HEADING)
            end = text.find("\n## ", start + 1)
            text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + section
        tb.PERFORMANCE_DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
