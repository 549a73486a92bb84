"""What the benchmark scripts share: paths, logging, pinning, the `authority` CLI, servers
they start, number formats and docs/performance.md sections.

Imported by ``pki_bench.py``, ``token_bench.py`` and ``licence_bench.py``, which
run as scripts from the repository root (``.venv/bin/python bench/...``), so
this directory is on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"
# The temporary instances' key store passphrase: they live and die with one run.
PASSPHRASE = "bench-only passphrase: 7f3a9c Quokka-Lantern-42!"
SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 35.0  # `authority serve` drains for up to 30 s on SIGTERM

_STARTED = time.monotonic()


def say(message: str) -> None:
    """Print ``message`` with the time elapsed since the start."""
    print(f"[{time.monotonic() - _STARTED:5.1f} s] {message}", flush=True)


class BenchFailure(Exception):
    """The benchmark cannot go on (a bad reply, a server that does not start)."""


def pin(cores: set[int]) -> None:
    """Pin the calling process to ``cores`` (ignored where the OS cannot)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cores)


def available_cores() -> list[int]:
    """The cores this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a server's log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def authority_command() -> list[str]:
    """How to run the `authority` command of this checkout."""
    return [sys.executable, "-m", "authority"]


def run_cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    """The JSON output of `authority ARGS --json`; :class:`BenchFailure` if it fails."""
    done = subprocess.run(
        [*authority_command(), *args, "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise BenchFailure(f"`authority {' '.join(args)}` failed: {done.stderr.strip()}")
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a server we started, then SIGKILL it if it does not go."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fmt_rate(rate: float) -> str:
    """A rate with thousands separators, one decimal under 100."""
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:,.1f}"


def python_package(name: str) -> str:
    """The installed version of distribution ``name``, or ``absent``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def python_path() -> str:
    """The interpreter running this script, relative to the checkout when inside it."""
    executable = Path(sys.executable)
    with contextlib.suppress(ValueError):
        return str(executable.relative_to(ROOT))
    return str(executable)


def paragraph(text: str) -> list[str]:
    """``text`` wrapped for Markdown, then a blank line."""
    return [*textwrap.wrap(text, width=78, break_on_hyphens=False, break_long_words=False), ""]


def write_section(heading: str, section: str) -> None:
    """Replace the section of docs/performance.md under ``heading`` (or append it).

    The section ends at the next ``## `` heading, so its own ``### `` sub-headings
    go with it; the rest of the file is kept.
    """
    text = PERFORMANCE_DOC.read_text(encoding="utf-8") if PERFORMANCE_DOC.exists() else ""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        prefix = text.rstrip("\n") + "\n\n" if text.strip() else ""
        PERFORMANCE_DOC.write_text(prefix + section, encoding="utf-8")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    after = "".join(lines[end:])
    new = "".join(lines[:start]) + section + ("\n" + after if after else "")
    PERFORMANCE_DOC.write_text(new, encoding="utf-8")
