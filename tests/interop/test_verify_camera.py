"""Scanning a licence's QR with the device camera on /verify, in a real browser.

Debian's Chromium gets a fake camera (its own test switches) whose picture is
the licence's QR code, printed on a page; the page's script finds the code
(BarcodeDetector where the browser has it, else frames sent to
POST /api/v1/verify) and the browser lands on the report: VALID.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright import sync_api as playwright_api

from tests.live import LiveAuthority, serve_initialised

pytestmark = [pytest.mark.interop, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required in CI (.ci/run installs chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    yield from serve_initialised(request, tmp_path_factory, "file-sqlite")


def _qr_png(live: LiveAuthority) -> tuple[bytes, str]:
    agency = live.cli_json("demo")["agency"]
    token = httpx.post(
        f"{live.url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "licences:issue licences:read"},
        auth=(agency["client_id"], agency["client_secret"]),
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    issued = httpx.post(
        f"{live.url}/api/v1/licences", json=agency["licence_example"], headers=headers, timeout=30
    )
    assert issued.status_code == 201, issued.text
    licence: dict[str, Any] = issued.json()
    png = httpx.get(licence["links"]["qr"], headers=headers, timeout=10)
    assert png.status_code == 200
    return png.content, str(licence["number"])


def _camera_file(png: bytes, target: Path) -> Path:
    """A Y4M video (YUV 4:2:0) of the QR on a sheet, as Chromium's fake camera plays it."""
    code = Image.open(io.BytesIO(png)).convert("L")
    side = 400
    sheet = Image.new("RGB", (640, 480), (235, 235, 230))
    sheet.paste(code.resize((side, side), Image.NEAREST).convert("RGB"), (120, 40))
    y, cb, cr = sheet.convert("YCbCr").split()
    half = (sheet.width // 2, sheet.height // 2)
    frame = y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    header = f"YUV4MPEG2 W{sheet.width} H{sheet.height} F10:1 Ip A1:1 C420jpeg\n".encode()
    target.write_bytes(header + (b"FRAME\n" + frame) * 10)
    return target


def test_scanning_the_qr_with_the_camera_shows_valid(live: LiveAuthority, tmp_path: Path) -> None:
    png, number = _qr_png(live)
    video = _camera_file(png, tmp_path / "camera.y4m")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={video}",
            ],
        )
        try:
            context = browser.new_context(locale="en-GB", permissions=["camera"])
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{live.url}/verify")
            page.locator("#scan-start").click()
            verdict = page.locator("[data-verdict]")
            verdict.wait_for(timeout=30_000)
            assert verdict.get_attribute("data-verdict") == "VALID"
            assert number in page.content()
            assert errors == []
            # The result can be printed: the button appears where script runs.
            assert page.locator("[data-print]").is_visible()
        finally:
            browser.close()
