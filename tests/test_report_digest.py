"""Reports people read stay readable on a big campaign; findings.json keeps everything."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sightline.findings.model import Evidence, Findings, Host, Organization
from sightline.report import render
from sightline.report.digest import DEFAULT_BUDGET, DigestBudget, digest

CHROMIUM = "/usr/bin/chromium"


def _ev(i: int) -> Evidence:
    return Evidence(
        behaviour="beacon" if i % 2 else "callback",
        indicator=f"198.51.{i % 200}.{i % 250}",
        direction="outbound",
        dst_port=443,
        flows=10 + i,
        bytes_out=1000,
        bytes_in=2000,
        first_seen="2024-01-01T00:00:00Z",
        last_seen="2024-01-02T00:00:00Z",
        score=0.9,
        detail=f"evidence row {i}",
        confidence=80,
        tlp="amber",
    )


def _host(org: int, n: int, evidence: int, verdict: str = "compromised") -> Host:
    return Host(
        ip=f"10.{org}.{n // 250}.{n % 250}",
        verdict=verdict,
        confidence=80,
        indicators=[f"198.51.100.{k}" for k in range(30)],
        evidence=[_ev(k) for k in range(evidence)],
    )


def _big(orgs: int, hosts: int, evidence: int) -> Findings:
    return Findings(
        organizations=[
            Organization(
                org_id=f"org-{o}",
                name=f"Organization {o}",
                sector="semiconductor",
                country="TW",
                asns=[],
                verdict="compromised" if o % 3 == 0 else "reconnaissance",
                confidence=90 - o % 50,
                first_seen="2024-01-01T00:00:00Z",
                last_seen="2024-01-02T00:00:00Z",
                hosts=[_host(o, h, evidence) for h in range(hosts)],
            )
            for o in range(orgs)
        ],
        tlp="amber",
        actors=["RedJuliett"],
    )


def test_digest_keeps_every_organization_and_counts_the_rest() -> None:
    doc = _big(orgs=40, hosts=120, evidence=12)
    out = digest(doc, DigestBudget(hosts=300, min_hosts_per_org=2, evidence_per_host=4))
    assert [o["org_id"] for o in out["organizations"]] == [o.org_id for o in doc.organizations]
    shown = sum(len(o["hosts"]) for o in out["organizations"])
    assert shown == 300
    assert all(len(o["hosts"]) >= 2 for o in out["organizations"])
    assert all(o["hosts_total"] == 120 for o in out["organizations"])
    assert all(len(h["evidence"]) == 4 and h["evidence_total"] == 12 for o in out["organizations"] for h in o["hosts"])
    # the extra budget goes to the most serious organizations first
    compromised = [o for o in out["organizations"] if o["verdict"] == "compromised"]
    recon = [o for o in out["organizations"] if o["verdict"] == "reconnaissance"]
    assert all(len(o["hosts"]) == 2 for o in recon)
    assert sum(len(o["hosts"]) for o in compromised) == 300 - 2 * len(recon)
    d = out["digest"]
    assert (d["hosts_total"], d["hosts_shown"], d["evidence_total"], d["evidence_shown"]) == (4800, 300, 57600, 1200)
    assert d["complete"] is False
    # the document itself is untouched
    assert all(len(o.hosts) == 120 and len(o.hosts[0].evidence) == 12 for o in doc.organizations)


def test_small_findings_are_shown_whole() -> None:
    doc = _big(orgs=3, hosts=4, evidence=3)
    out = digest(doc)
    assert out["digest"]["complete"] is True
    assert sum(len(o["hosts"]) for o in out["organizations"]) == 12


def test_more_organizations_than_the_host_budget_still_shows_one_host_each() -> None:
    doc = _big(orgs=50, hosts=3, evidence=1)
    out = digest(doc, DigestBudget(hosts=20))
    assert all(len(o["hosts"]) == 1 for o in out["organizations"])


@pytest.fixture(scope="module")
def big_outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Findings, Path]:
    # about the size of a big campaign seen by an ISP: 4,000 hosts, 110k evidence rows
    doc = _big(orgs=2, hosts=2000, evidence=28)
    out = tmp_path_factory.mktemp("big")
    for fmt in ("json", "html", "md"):
        render(doc, fmt, out)
    return doc, out


def test_big_html_report_stays_small_and_says_where_the_rest_is(big_outputs: tuple[Findings, Path]) -> None:
    doc, out = big_outputs
    html = (out / "report.html").read_text("utf-8")
    assert len(html.encode()) <= 5 * 2**20
    for o in doc.organizations:
        assert o.name in html
    assert "of 4000 hosts and" in html and "of 112000 evidence rows" in html
    m = re.findall(r"(\d+) more hosts of this organization not shown \(2000 in all\)", html)
    assert m and all(int(x) > 0 for x in m)
    assert "sightline export" in html
    # the organizations table counts every host, not only those shown
    assert re.search(r'<td class="n">2000</td></tr>', html)


def test_findings_json_keeps_every_row(big_outputs: tuple[Findings, Path]) -> None:
    _, out = big_outputs
    data = json.loads((out / "findings.json").read_text("utf-8"))
    assert sum(len(h["evidence"]) for o in data["organizations"] for h in o["hosts"]) == 112000
    assert "digest" not in data


def test_big_markdown_report_says_what_is_not_shown(big_outputs: tuple[Findings, Path]) -> None:
    _, out = big_outputs
    md = (out / "report.md").read_text("utf-8")
    assert len(md.encode()) <= 5 * 2**20
    assert "of 4000 hosts" in md and "more host(s) of this organization not shown" in md


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")
def test_big_html_report_opens_in_a_browser(big_outputs: tuple[Findings, Path]) -> None:
    from playwright.sync_api import sync_playwright

    _, out = big_outputs
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto((out / "report.html").as_uri(), wait_until="load")
            sections = page.locator("section.org").count()
            hosts = page.locator("section.org p b code").count()
        finally:
            browser.close()
    assert sections == 2
    assert hosts == DEFAULT_BUDGET.hosts


def test_long_tables_are_cut_and_say_so(tmp_path: Path) -> None:
    from sightline.findings.model import SuspectedInfrastructure

    doc = _big(orgs=1, hosts=1, evidence=1)
    doc.suspected_infrastructure = [
        SuspectedInfrastructure(
            ip=f"203.0.{i // 250}.{i % 250}", score=0.5, tlp="amber", host_ips=["10.0.0.0"], organizations=["org-0"]
        )
        for i in range(600)
    ]
    for fmt in ("html", "md"):
        render(doc, fmt, tmp_path)
    html = (tmp_path / "report.html").read_text("utf-8")
    md = (tmp_path / "report.md").read_text("utf-8")
    assert "203.0.0.0" in html
    assert "100 more rows not shown" in html
    assert "100 more row(s) not shown" in md
    data = json.loads(render(doc, "json", tmp_path)[0].read_text("utf-8"))
    assert len(data["suspected_infrastructure"]) == 600


@pytest.mark.parametrize("orgs", [0, 1, 7])
@pytest.mark.parametrize("indent", [0, 2])
def test_findings_json_written_in_pieces_is_the_same_document(orgs: int, indent: int) -> None:
    """findings.json is written one organization at a time; the text is what encoding the whole
    document at once gives (same keys, order and layout), so readers see no difference."""
    import msgspec

    from sightline.findings import json_chunks, to_json

    doc = _big(orgs=orgs, hosts=3, evidence=2)
    pieces = list(json_chunks(doc, indent=indent))
    assert len(pieces) == orgs + 2  # head, one per organization, tail
    text = b"".join(pieces)
    assert text == to_json(doc, indent=indent)
    once = msgspec.json.encode({"schema": doc.schema, **msgspec.to_builtins(doc)})
    assert json.loads(text)["organizations"] == json.loads(once)["organizations"]
    if indent:
        assert text == msgspec.json.format(text, indent=indent)  # laid out as one formatting pass does
    else:
        assert b"\n" not in text
