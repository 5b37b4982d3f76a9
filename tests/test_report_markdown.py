"""Markdown report: same content as the HTML one, escaped; golden files for both."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sightline.report.html import render_html
from sightline.report.markdown import render_markdown, write_markdown

from .share_support import shared

HERE = Path(__file__).parent
SAMPLE = HERE / "data" / "sample_findings.json"
GOLDEN = HERE / "golden" / "report"


@pytest.fixture()
def findings() -> dict:
    # as every output receives it: through the sharing policy (the workspace's own view)
    return shared(json.loads(SAMPLE.read_text("utf-8")))[0]


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SIGHTLINE_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    assert text == path.read_text("utf-8")


def test_markdown_content(tmp_path, findings):
    out = tmp_path / "report.md"
    write_markdown(findings, out)
    md = out.read_text("utf-8")
    assert md.startswith("**TLP:RED**")
    assert "1 organization compromised between 2024-03-02 and 2024-03-07; 1 more saw reconnaissance" in md
    for needle in (
        "Hsinchu Wafer Technology",
        "`203.0.113.5`",
        "`198.51.100.7`",
        "interval 300s ±4s over 6 days",
        "| semiconductor | 1 | 0 | 0 | 1 |",
        "| TW | 1 | 0 | 1 | 2 |",
        "## Stale matches",
        "`198.51.100.99`",
        "## Suspected infrastructure",
        "`198.51.100.200`",
    ):
        assert needle in md, needle


def test_markdown_escapes_hostile_values(findings):
    findings["organizations"][0]["name"] = "Evil | Corp [click](http://x) <b>hi</b>\nnext"
    md = render_markdown(findings)
    line = next(ln for ln in md.splitlines() if ln.startswith("| Evil") and "| semiconductor |" in ln)
    # the pipe, link and tag are escaped; the row still has the 8 cells of the organizations table
    assert "\\|" in line and "\\[click\\]" in line and "\\<b\\>" in line
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    assert len(cells) == 8
    assert "\nnext" not in md


def test_markdown_empty_document():
    md = render_markdown({})
    assert "No organization found compromised." in md
    assert "No organization had contact" in md


def test_golden_markdown(findings):
    _golden("sample.md", render_markdown(findings))


def test_golden_html(findings):
    _golden("sample.html", render_html(findings))
