"""Attacker text reaching people: HTML/JS in report.html and the dashboard, formulas in CSV.

Org names come from registries, ``service``/``detail`` text from sensors an attacker can shape,
descriptions and actor names from intel feeds.  Every free-text field of a findings document
is poisoned here; the rendered HTML must show it as text, and every CSV export must make
formula-looking cells inert.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from sightline.store import Workspace, atomic_write_json
from tests.serve_support import PASSWORDS, TestClient, findings, make_workspace

HTML_PAYLOADS = [
    '<script>alert("x1")</script>',
    '"><img src=x onerror=alert(2)>',
    "'><svg onload=alert(3)>",
    "</style></title><iframe srcdoc=x>",
    "javascript:alert(5)",
]
RAW_MARKERS = [
    "<script>alert",
    "<img src=x onerror",
    "<svg onload",
    "<iframe srcdoc",
    'href="javascript:',
    "href='javascript:",
]
CSV_PAYLOADS = [
    '=HYPERLINK("http://evil","x")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
]
FREE_TEXT = (
    "name",
    "sector",
    "detail",
    "actor",
    "service",
    "reason",
    "description",
    "hostname",
    "product",
    "behaviour_note",
    "summary",
)


def _poison(doc: Any, payloads: list[str], counter: list[int]) -> Any:
    """Replace every free-text field (and add ``service``/``description``) with payloads in turn."""
    if isinstance(doc, dict):
        for k, v in list(doc.items()):
            if k in FREE_TEXT and isinstance(v, str):
                doc[k] = payloads[counter[0] % len(payloads)] + f" #{counter[0]}"
                counter[0] += 1
            else:
                _poison(v, payloads, counter)
        if "behaviour" in doc and "indicator" in doc:  # an evidence row: a Zeek service and intel text
            doc["service"] = payloads[counter[0] % len(payloads)]
            doc["description"] = payloads[(counter[0] + 1) % len(payloads)]
            counter[0] += 2
    elif isinstance(doc, list):
        for v in doc:
            _poison(v, payloads, counter)
    return doc


def poisoned(payloads: list[str]) -> dict[str, Any]:
    doc = _poison(copy.deepcopy(findings()), payloads, [0])
    doc["actors"] = [payloads[0]]
    return doc


def assert_inert_html(text: str) -> None:
    for m in RAW_MARKERS:
        assert m not in text, (
            f"unescaped payload {m!r} in output: ...{text[max(0, text.find(m) - 80) : text.find(m) + 80]}..."
        )


def test_report_html_escapes_every_field(tmp_path: Path) -> None:
    from sightline.report.html import write_html

    doc = poisoned(HTML_PAYLOADS)
    out = tmp_path / "report.html"
    write_html(doc, out)
    text = out.read_text("utf-8")
    assert_inert_html(text)
    assert "&lt;script&gt;alert(" in text or "\\u003cscript\\u003e" in text  # shown, as text


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    from sightline.serve import create_app

    root = tmp_path_factory.mktemp("ws")
    ws = make_workspace(root / "ws")
    atomic_write_json(ws.findings_dir / "latest.json", poisoned(HTML_PAYLOADS))
    client = TestClient(create_app(ws, secret=b"s" * 32))
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post(
        "/login",
        data={"username": "admin", "password": PASSWORDS["admin"], "csrf": csrf, "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code in (302, 303)
    return client


@pytest.mark.parametrize("path", ["/", "/orgs", "/indicators", "/infrastructure", "/exposure", "/runs"])
def test_dashboard_pages_escape_every_field(dashboard: TestClient, path: str) -> None:
    r = dashboard.get(path)
    assert r.status_code == 200, r.status_code
    assert_inert_html(r.text)


def test_dashboard_org_pages_escape(dashboard: TestClient) -> None:
    doc = dashboard.get("/api/v1/findings").json() if dashboard.get("/api/v1/findings").status_code == 200 else {}
    org_ids = [o["org_id"] for o in doc.get("organizations", [])] or ["tw-semi-01"]
    for oid in org_ids:
        r = dashboard.get(f"/orgs/{oid}")
        assert r.status_code in (200, 404)
        assert_inert_html(r.text)
    r = dashboard.get("/orgs/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert_inert_html(r.text)


def test_dashboard_static_traversal_refused(dashboard: TestClient) -> None:
    for p in (
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
    ):
        r = dashboard.get(p)
        assert "root:x:0:0" not in r.text
        assert r.status_code in (400, 403, 404)


def test_dashboard_security_headers(dashboard: TestClient) -> None:
    r = dashboard.get("/")
    csp = r.headers.get("content-security-policy", "")
    assert "script-src" in csp or "default-src" in csp
    assert r.headers.get("x-content-type-options") == "nosniff"


# --- CSV --------------------------------------------------------------------------------

_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")


def assert_inert_csv(text: str) -> int:
    """Every cell that starts like a formula is a plain number or was neutralized; returns cells checked."""
    n = 0
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            n += 1
            if cell and cell[0] in "=+-@\t\r":
                assert _NUMBER.match(cell), f"formula-like cell not neutralized: {cell!r}"
    return n


def test_cli_exports_neutralize_formulas(tmp_path: Path) -> None:
    from sightline.export import WHATS, export_table, write_export

    doc = poisoned(CSV_PAYLOADS)
    doc.setdefault("stale_matches", []).append(
        {"org_id": CSV_PAYLOADS[0], "indicator": CSV_PAYLOADS[1], "reason": CSV_PAYLOADS[3]}
    )
    for what in WHATS:
        out = tmp_path / f"{what}.csv"
        write_export(export_table(doc, what), "csv", out)
        text = out.read_text("utf-8")
        assert_inert_csv(text)
        if what == "evidence":
            assert "'=HYPERLINK" in text or "'@SUM" in text  # payloads made it through, as text


def test_dashboard_csv_export_neutralizes(dashboard: TestClient, tmp_path: Path) -> None:
    ws_root = tmp_path / "ws2"
    ws = make_workspace(ws_root)
    atomic_write_json(ws.findings_dir / "latest.json", poisoned(CSV_PAYLOADS))
    from sightline.serve import UserStore, create_app

    token = UserStore(ws).new_token("admin", "t")
    client = TestClient(create_app(ws, secret=b"s" * 32))
    r = client.get("/api/v1/export/csv", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert assert_inert_csv(r.text) > 10
    assert "'=HYPERLINK" in r.text or "'@SUM" in r.text or "'+cmd" in r.text


def test_exposure_csv_neutralizes(tmp_path: Path) -> None:
    from sightline.exposure.export import to_csv

    entries = [
        {
            "priority_rank": 1,
            "priority": p,
            "org_id": p,
            "ip": "203.0.113.5",
            "port": 443,
            "proto": "tcp",
            "hostname": p,
            "vendor": p,
            "product": p,
            "version": p,
            "cpe": p,
            "cves": [{"cve": p, "kev": {"vendor_project": p}, "actor_linked": True}],
        }
        for p in CSV_PAYLOADS
    ]
    out = tmp_path / "exposure.csv"
    to_csv(entries, out)
    assert assert_inert_csv(out.read_text("utf-8")) > 20


def test_findings_json_round_trips_payloads(tmp_path: Path) -> None:
    """JSON output keeps the attacker's text exactly (escaping is the renderer's job, not data loss)."""
    doc = poisoned(HTML_PAYLOADS + CSV_PAYLOADS)
    p = tmp_path / "f.json"
    atomic_write_json(p, doc)
    assert json.loads(p.read_text("utf-8")) == json.loads(json.dumps(doc, default=str))
    shutil.rmtree(tmp_path / "x", ignore_errors=True)
    assert Workspace(tmp_path).root == tmp_path
