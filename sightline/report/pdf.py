"""PDF report: the HTML report printed by a headless Chromium (A4, backgrounds kept).

The HTML report is self-contained (inline CSS and SVG), so the browser is given the page
text directly, with JavaScript off and every network request refused: printing never
fetches anything, whatever the findings contain.

Needs Playwright (``pip install 'sightline[pdf]'``) and a Chromium binary: Debian's
``chromium`` package, or the path in ``$SIGHTLINE_CHROMIUM``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..core.settings import settings
from ..errors import ConfigError
from ..store import atomic_write_bytes
from .html import render_html

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str:
    """The Chromium to print with: ``$SIGHTLINE_CHROMIUM``, else the first one on PATH."""
    exe = settings().chromium or next(filter(None, map(shutil.which, _CANDIDATES)), None)
    if not exe or not Path(exe).exists():
        raise ConfigError(
            "PDF output needs a Chromium browser and none was found",
            hint="install one (Debian: apt-get install chromium) or set SIGHTLINE_CHROMIUM to its path",
        )
    return exe


def render_pdf(findings: dict[str, Any]) -> bytes:
    """The findings' HTML report as PDF bytes."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise ConfigError("PDF output needs Playwright", hint="pip install 'sightline[pdf]'") from e
    exe = chromium_path()
    html = render_html(findings)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=exe,
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
            try:
                page = browser.new_page(java_script_enabled=False)
                page.route("**/*", lambda route: route.abort())
                page.set_content(html, wait_until="load")
                return page.pdf(
                    format="A4",
                    print_background=True,
                    margin={"top": "14mm", "bottom": "14mm", "left": "12mm", "right": "12mm"},
                )
            finally:
                browser.close()
    except PlaywrightError as e:
        raise ConfigError(
            f"Chromium could not print the report: {str(e).splitlines()[0]}",
            hint="check that the Chromium in SIGHTLINE_CHROMIUM (or on PATH) starts headless",
        ) from e


def write_pdf(findings: dict[str, Any], path: Path) -> Path:
    atomic_write_bytes(Path(path), render_pdf(findings))
    return Path(path)


__all__ = ["chromium_path", "render_pdf", "write_pdf"]
