"""Every page in a real browser (Debian's Chromium, driven by Playwright): both
languages, phone size (360x740) and desktop, no horizontal scrolling on the phone,
axe-core (bundled by the axe-playwright-python package) reporting no serious or
critical violation, no console error under the production Content-Security-Policy;
and the journeys: a staff member issues and revokes a licence in the console, the
citizen sees it in their account and downloads its PDF, and /verify says VALID.

Screenshots of each page land in tests/artifacts/screenshots/ (or $SCREENSHOTS_DIR)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright import sync_api as playwright_api

from tests.live import LiveAuthority, serve_initialised

pytestmark = [pytest.mark.interop, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR", ROOT / "tests" / "artifacts" / "screenshots"))
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
LOCALES = {"zh": "zh-CN", "en": "en-GB"}
AXE = Axe()


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAuthority]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required in CI (.ci/run installs chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    yield from serve_initialised(request, tmp_path_factory, "file-sqlite")


@pytest.fixture(scope="module")
def demo(live: LiveAuthority) -> dict[str, Any]:
    data: dict[str, Any] = live.cli_json("demo")
    live.cli(
        "agency", "staff", "add",
        "--agency", data["agency"]["code"],
        "--id-number", data["citizen"]["username"],
    )  # fmt: skip
    agency = data["agency"]
    token = httpx.post(
        f"{live.url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "licences:issue"},
        auth=(agency["client_id"], agency["client_secret"]),
        timeout=10,
    ).json()["access_token"]
    issued = httpx.post(
        f"{live.url}/api/v1/licences",
        json=agency["licence_example"],
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert issued.status_code == 201, issued.text
    data["licence"] = issued.json()
    return data


@pytest.fixture(scope="module")
def driver() -> Iterator[playwright_api.Browser]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


class Watched:
    """A page whose console errors and uncaught exceptions are collected."""

    def __init__(self, context: playwright_api.BrowserContext) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))


def _log_in(page: playwright_api.Page, live: LiveAuthority, citizen: dict[str, str]) -> None:
    page.goto(f"{live.url}/login")
    page.locator("#id_number").fill(citizen["username"])
    page.locator("#password").fill(citizen["password"])
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(f"{live.url}/account")


def _issue(
    page: playwright_api.Page, live: LiveAuthority, demo: dict[str, Any], vehicle: str
) -> str:
    """Issue the demo licence type to the demo citizen through the console; its page URL."""
    page.goto(f"{live.url}/agency")
    page.get_by_role("link", name="Issue “Demonstration Permit”").click()
    page.get_by_label("Resident identity number or unified social credit code").fill(
        demo["citizen"]["username"]
    )
    page.get_by_label("Holder's name").fill("Demo Citizen")
    page.get_by_label("准驾车型 / Category").select_option("B")
    page.get_by_label("车辆类型 / Vehicle").fill(vehicle)
    page.get_by_role("button", name="Issue and seal").click()
    page.get_by_text("The licence was issued and sealed.").wait_for()
    return page.url


def test_staff_issue_and_revoke_citizen_downloads_and_verify_says_valid(
    live: LiveAuthority, demo: dict[str, Any], driver: playwright_api.Browser, tmp_path: Path
) -> None:
    context = driver.new_context(locale="en-GB", accept_downloads=True)
    watched = Watched(context)
    page = watched.page
    _log_in(page, live, demo["citizen"])

    # A staff member issues a licence through the form made from the type's schema.
    licence_url = _issue(page, live, demo, "Small car")
    number = re.search(r"Licence (\S+)", page.locator("h1").inner_text())
    assert number is not None
    assert page.locator("#licence-status").inner_text() == "Valid"

    # The citizen sees it in their account and downloads the sealed PDF.
    page.goto(f"{live.url}/account")
    assert number[1] in page.locator("main").inner_text()
    with page.expect_download() as download:
        page.get_by_role("link", name=f"Download PDF ({number[1]})").click()
    pdf = tmp_path / "licence.pdf"
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF-")

    # Uploading the PDF on /verify gives the verdict VALID.
    page.goto(f"{live.url}/verify")
    page.get_by_label(re.compile("PDF")).set_input_files(str(pdf))
    page.locator("form[action='/verify'] button[type=submit]").click()
    page.locator(".verdict").wait_for()
    assert "Valid" in page.locator(".verdict").inner_text()
    assert "good" in (page.locator(".verdict").get_attribute("class") or "")

    # A second licence is revoked with a reason.
    page.goto(_issue(page, live, demo, "Truck"))
    page.get_by_label("Action").select_option("revoke")
    page.get_by_label("Reason").fill("Issued by mistake")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("Issued by mistake").wait_for()
    assert page.locator("#licence-status").inner_text() == "Revoked"
    page.goto(licence_url)
    assert page.locator("#licence-status").inner_text() == "Valid"
    context.close()
    assert watched.errors == []


def _pages(demo: dict[str, Any]) -> dict[str, str]:
    """The pages to visit, by screenshot name."""
    licence = demo["licence"]
    return {
        "home": "/",
        "verify": "/verify",
        "verify-result": "/" + licence["links"]["verify"].split("/", 3)[3],
        "login": "/login",
        "account": "/account",
        "security": "/account/security",
        "history": "/account/history",
        "consents": "/account/consents",
        "passkeys": "/account/passkeys",
        "agency": "/agency",
        "agency-issue": f"/agency/issue/{demo['agency']['licence_type']}",
        "agency-licence": f"/agency/licences/{licence['id']}",
    }


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_page_in_each_language_at_phone_and_desktop_size(
    live: LiveAuthority, demo: dict[str, Any], driver: playwright_api.Browser, language: str
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = driver.new_context(locale=LOCALES[language], viewport=PHONE)
    watched = Watched(context)
    page = watched.page
    _log_in(page, live, demo["citizen"])
    pages = _pages(demo)
    problems: list[str] = []
    for name, path in pages.items():
        for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            page.set_viewport_size(viewport)
            page.goto(f"{live.url}{path}")
            assert page.locator("html").get_attribute("lang") == LOCALES[language].replace(
                "en-GB", "en"
            ), path
            if size == "phone":
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                if overflow > 0:
                    problems.append(f"{path}: {overflow}px of horizontal scrolling at 360px")
                results = AXE.run(page)
                for violation in results.response["violations"]:
                    if violation["impact"] in ("serious", "critical"):
                        targets = [n["target"] for n in violation["nodes"]][:3]
                        problems.append(f"{path}: axe {violation['id']} {targets}")
            page.screenshot(path=SCREENSHOTS / f"{name}-{language}-{size}.png", full_page=True)
    context.close()
    assert problems == []
    assert watched.errors == []
