"""The dashboard in a real browser (Debian's chromium driven by Playwright) over real uvicorn."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sightline.serve import create_app

from .serve_support import PASSWORDS, RED_TRACES, make_workspace

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    ws = make_workspace(tmp_path_factory.mktemp("browser") / "ws")
    app = create_app(ws, secret=b"b" * 32)
    # Bind before starting the server thread: the browser's first request waits in the
    # listen backlog instead of racing the start-up.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


def _login(page: object, base_url: str, user: str) -> None:
    page.goto(f"{base_url}/")  # type: ignore[attr-defined]
    assert "/login" in page.url  # type: ignore[attr-defined]
    page.fill("input[name=username]", user)  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORDS[user])  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(f"{base_url}/")  # type: ignore[attr-defined]


def _watch(page: object, base_url: str) -> tuple[list[str], list[str]]:
    """Collect requests leaving the server and console errors (e.g. CSP violations)."""
    external: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base_url) else external.append(r.url))  # type: ignore[attr-defined]
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    return external, errors


def test_analyst_logs_in_opens_an_org_and_sees_evidence(browser: object, base_url: str) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = ctx.new_page()
    external, errors = _watch(page, base_url)
    _login(page, base_url, "ana")
    assert page.inner_text("#count-compromised") == "1"
    assert page.locator("svg.chart").count() == 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    assert (ARTIFACTS / "overview.png").stat().st_size > 10_000

    page.click("nav >> text=Organizations")
    page.fill("input[name=q]", "Hsinchu")  # client-side filter as you type (static app.js)
    assert page.locator("#orgs-table tbody tr:visible").count() == 1
    page.click("text=Hsinchu Wafer Technology")
    page.wait_for_url(f"{base_url}/orgs/tw-semi-01")
    evidence = page.inner_text("table.evidence")
    assert "beacon" in evidence and "interval 300s" in evidence and "198.51.100.7" in evidence
    assert "203.0.113.5" in page.inner_text("main")
    # Log out through the CSRF-protected form; the pages are closed again.
    page.click("text=Log out")
    page.wait_for_url(f"{base_url}/login")
    page.goto(f"{base_url}/orgs/tw-semi-01")
    assert "/login" in page.url
    assert external == [] and errors == []
    ctx.close()


def test_viewer_without_red_clearance_sees_no_trace(browser: object, base_url: str) -> None:
    ctx = browser.new_context()  # type: ignore[attr-defined]
    page = ctx.new_page()
    external, errors = _watch(page, base_url)
    _login(page, base_url, "vic")
    seen = []
    for path in [
        "/",
        "/orgs",
        "/orgs/tw-gov-03",
        "/orgs/tw-semi-01",
        "/indicators",
        "/infrastructure",
        "/exposure",
        "/orgs?verdict=reconnaissance",
    ]:
        page.goto(f"{base_url}{path}")
        seen.append(page.content())
    text = "\n".join(seen)
    for trace in RED_TRACES:
        assert trace not in text, trace
    # Counts and charts are of the visible findings only.
    page.goto(f"{base_url}/")
    assert page.inner_text("#count-reconnaissance") == "0"
    resp = page.goto(f"{base_url}/orgs/AS4780")
    assert resp is not None and resp.status == 404
    assert "Digital United" not in page.content()
    assert external == []
    # The only console error is the 404 of the hidden organization itself.
    assert len(errors) == 1 and "404" in errors[0]
    ctx.close()


def test_admin_sees_the_red_finding(browser: object, base_url: str) -> None:
    ctx = browser.new_context()  # type: ignore[attr-defined]
    page = ctx.new_page()
    _login(page, base_url, "admin")
    page.goto(f"{base_url}/orgs/AS4780")
    assert "Digital United Inc." in page.inner_text("h1")
    assert "120 failed connections" in page.inner_text("table.evidence")
    ctx.close()


def test_chromium_is_the_system_one() -> None:
    assert shutil.which("chromium") == CHROMIUM
