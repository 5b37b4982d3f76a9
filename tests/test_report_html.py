"""HTML report: self-contained, escaped, complete on the sample findings."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sightline.report.html import build_view, summary_sentence, write_html

from .share_support import shared

SAMPLE = Path(__file__).parent / "data" / "sample_findings.json"


@pytest.fixture()
def findings() -> dict:
    # as every output receives it: through the sharing policy (the workspace's own view)
    return shared(json.loads(SAMPLE.read_text("utf-8")))[0]


class _Collector(HTMLParser):
    """Collects every URL-bearing attribute and the text, and checks tags balance."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "line", "rect", "path", "circle"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, val in attrs:
            if k in ("src", "href", "xlink:href", "action", "data") and val and not val.startswith("#"):
                self.urls.append(val)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        for k, val in attrs:
            if k in ("src", "href") and val and not val.startswith("#"):
                self.urls.append(val)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>, open: {self.stack[-3:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    c.close()
    return c


def test_report_is_self_contained_and_complete(tmp_path, findings):
    out = tmp_path / "report.html"
    write_html(findings, out)
    html = out.read_text("utf-8")
    page = _parse(html)
    assert page.urls == []  # no external request of any kind
    assert "<script" not in html and "@import" not in html and "url(" not in html
    assert page.stack == []
    text = " ".join(page.text)
    assert "1 organization compromised between 2024-03-02 and 2024-03-07; 1 more saw reconnaissance" in text
    # per-org detail: hosts, indicators, evidence values
    for needle in (
        "Hsinchu Wafer Technology",
        "203.0.113.5",
        "198.51.100.7",
        "2001:db8:1::10",
        "interval 300s ±4s over 6 days",
        "412",
        "1.6 MB",
        "beacon",
        "scan",
        "198.51.100.99",  # stale match
        "198.51.100.200",
    ):  # suspected infrastructure
        assert needle in text, needle
    assert page.tags.count("svg") == 5  # timeline, sector, country; actor servers by country and by network
    # marked with the most restrictive TLP it contains (AS4780 is TLP:RED)
    assert "TLP:RED" in text
    assert "@media print" in html


def test_untrusted_values_are_escaped(tmp_path, findings):
    evil = "<script>alert(1)</script>"
    findings["organizations"][0]["name"] = evil
    findings["organizations"][0]["sector"] = '"><img src=x onerror=alert(1)>'
    findings["organizations"][0]["hosts"][0]["evidence"][0]["detail"] = evil
    out = tmp_path / "r.html"
    write_html(findings, out)
    html = out.read_text("utf-8")
    assert "<script" not in html
    assert "<img" not in html
    page = _parse(html)
    assert page.urls == []
    assert evil in " ".join(page.text)  # shown as text, not dropped


def test_empty_and_minimal_documents_render(tmp_path):
    for doc in ({}, {"organizations": []}, {"organizations": [{"org_id": "x", "verdict": "reconnaissance"}]}):
        out = tmp_path / "r.html"
        write_html(doc, out)
        page = _parse(out.read_text("utf-8"))
        assert page.stack == []


def test_optional_lists_render_when_present(tmp_path, findings):
    findings["exposure"] = [
        {
            "ip": "203.0.113.1",
            "port": 443,
            "product": "Fortinet FortiOS",
            "version": "7.2.4",
            "cves": [{"cve": "CVE-2023-27997", "kev": {"known_ransomware": True}, "actor_linked": True}],
            "priority": "scanned_and_vulnerable",
            "tlp": "amber",
        }
    ]
    findings["actor_infrastructure"] = [{"ip": "198.51.100.7", "hosting": "VPS", "roles": ["c2", "softether"]}]
    out = tmp_path / "r.html"
    write_html(findings, out)
    text = " ".join(_parse(out.read_text("utf-8")).text)
    assert "CVE-2023-27997 (KEV, ransomware) [actor]" in text and "Fortinet FortiOS 7.2.4" in text
    assert "203.0.113.1:443" in text
    assert "c2, softether" in text


@pytest.mark.parametrize(
    ("orgs", "expected"),
    [
        ([], "No organization found compromised."),
        (
            [{"verdict": "reconnaissance"}],
            "No organization found compromised; 1 more saw reconnaissance or exploitation attempts.",
        ),
        (
            [
                {"verdict": "compromised", "first_seen": "2023-11-01T00:00:00Z", "last_seen": "2024-01-05T00:00:00Z"},
                {"verdict": "compromised", "first_seen": "2023-12-01T00:00:00Z", "last_seen": "2024-04-30T00:00:00Z"},
                {"verdict": "exploitation_attempt"},
                {"verdict": "reconnaissance"},
            ],
            "2 organizations compromised between 2023-11-01 and 2024-04-30; 2 more saw reconnaissance or exploitation attempts.",
        ),
    ],
    ids=["none", "recon-only", "mixed"],
)
def test_summary_sentence(orgs, expected):
    assert summary_sentence(orgs) == expected


def test_sector_breakdown_counts(findings):
    extra = copy.deepcopy(findings["organizations"][0])
    extra["org_id"] = "tw-semi-02"
    findings["organizations"].append(extra)
    view = build_view(findings)
    semi = next(r for r in view["sectors"] if r["name"] == "semiconductor")
    assert semi["counts"]["compromised"] == 2 and semi["total"] == 2
    assert "2 semiconductor" in " ".join(view["breakdown"])
    assert re.search(r"Compromised by country: 2 TW", " ".join(view["breakdown"]))
