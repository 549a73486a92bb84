"""The page frame: language from the browser, a remembered switch, safe headers."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_home_follows_the_browser_language(client: TestClient) -> None:
    english = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert english.status_code == 200
    assert english.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in english.text
    assert english.headers["content-language"] == "en"
    chinese = client.get("/", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="zh-CN">' in chinese.text
    assert "政务信任服务" in chinese.text


def test_language_switch_is_remembered_and_returns_to_the_page(client: TestClient) -> None:
    switched = client.get(
        "/language",
        params={"to": "en", "next": "/verify?x=1"},
        follow_redirects=False,
    )
    assert switched.status_code == 303
    assert switched.headers["location"] == "/verify?x=1"
    assert "lang=en" in switched.headers["set-cookie"]
    page = client.get("/", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in page.text


def test_language_switch_never_redirects_off_site(client: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"):
        response = client.get(
            "/language", params={"to": "en", "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == "/"


def test_pages_are_unframeable_and_load_nothing_from_elsewhere(client: TestClient) -> None:
    response = client.get("/")
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'self'" in policy
    assert "<script>" not in response.text
    assert "http://" not in response.text.replace(client.base_url.__str__(), "")


def test_home_leads_to_verification_login_and_developer_documents(client: TestClient) -> None:
    page = client.get("/", headers={"Accept-Language": "en"})
    for target in (
        "/verify",
        "/account",
        "/agency",
        "/.well-known/openid-configuration",
        "/docs",
        "/pki/trust-list.json",
    ):
        assert f'href="{target}"' in page.text, target
    assert "lets anyone check that a licence is genuine" in page.text
    chinese = client.get("/", headers={"Accept-Language": "zh-CN"})
    assert "登录我的账户" in chinese.text


def test_every_message_a_template_uses_exists() -> None:
    import re
    from pathlib import Path

    import authority.web.people
    import authority.web.routes.account
    import authority.web.routes.agency
    import authority.web.verify_view
    from authority.web.i18n import CATALOGUE

    templates = Path(authority.web.people.__file__).parent / "templates"
    used = {
        key
        for path in templates.glob("*.html")
        for key in re.findall(r"""\bt\(\s*["']([a-z_.]+)["']""", path.read_text())
        if not key.endswith((".", "_"))  # a prefix completed at run time ("status." + s)
    }
    assert used and sorted(used - CATALOGUE.messages.keys()) == []
