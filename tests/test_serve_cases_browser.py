"""Cases and the campaign graph in a real browser (Debian's chromium via Playwright, real uvicorn)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sightline.cases import CaseStore, case_id
from sightline.serve import UserStore, create_app
from sightline.store import Workspace, atomic_write_json

from .serve_support import PASSWORDS, findings, make_workspace

CHROMIUM = "/usr/bin/chromium"
GREEN_PW = "green-reader-passphrase"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def _green_org() -> dict[str, Any]:
    ev = [
        {
            "behaviour": "scan",
            "indicator": "198.51.100.99",
            "actor": "RedJuliett",
            "direction": "inbound",
            "dst_port": port,
            "flows": 3,
            "bytes_out": 0,
            "bytes_in": 0,
            "first_seen": "2024-03-02T00:00:00Z",
            "last_seen": "2024-03-02T00:05:00Z",
            "score": 0.4,
            "detail": "S0 probes",
            "tlp": "green",
            "indicator_confidence": 60,
            "confidence": 40,
        }
        for port in (443, 8443)
    ]
    return {
        "org_id": "tw-assn-09",
        "name": "Green Chamber of Commerce",
        "sector": "industry association",
        "country": "TW",
        "asns": [],
        "verdict": "reconnaissance",
        "confidence": 40,
        "tlp": "green",
        "first_seen": "2024-03-02T00:00:00Z",
        "last_seen": "2024-03-02T00:05:00Z",
        "hosts": [
            {
                "ip": "203.0.113.90",
                "verdict": "reconnaissance",
                "confidence": 40,
                "tlp": "green",
                "indicators": ["198.51.100.99"],
                "evidence": ev,
            }
        ],
    }


def _serve(app: object) -> tuple[str, Any]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Workspace]]:
    ws = make_workspace(tmp_path_factory.mktemp("cases-browser") / "ws")
    doc = findings()
    doc["organizations"].append(_green_org())
    atomic_write_json(ws.findings_dir / "latest.json", doc)
    UserStore(ws).add("gus", GREEN_PW, role="analyst", clearance="green")
    url, stop = _serve(create_app(ws, secret=b"c" * 32))
    yield url, ws
    stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
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


def _login(browser: Any, base: str, user: str, password: str | None = None) -> tuple[Any, Any, list[str]]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(base) else errors.append("external " + r.url))
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password or PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return ctx, page, errors


def test_analyst_walks_a_case_from_new_to_remediated(browser: Any, site: tuple[str, Workspace]) -> None:
    base, ws = site
    ctx, page, errors = _login(browser, base, "ana")
    page.click("nav >> text=Cases")
    page.wait_for_url(f"{base}/cases")
    assert page.inner_text("#cases-new") == "2"  # the AMBER case and the GREEN one; the RED ones are not counted
    page.click(f"a[href='/cases/{case_id('tw-semi-01')}']")
    assert "is compromised" in page.inner_text("p.reason")
    page.select_option("#assignee", "ana")
    page.fill("#note", "Called their CERT; FortiGate 203.0.113.5 to be patched.")
    page.select_option("#state", "triaged")
    page.click("#case-form button[type=submit]")
    for state in ("notified", "acknowledged", "remediated"):
        page.wait_for_selector("#case-state")
        page.select_option("#state", state)
        page.click("#case-form button[type=submit]")
    page.wait_for_selector("#case-state .s-remediated")
    assert page.inner_text("#case-assignee") == "ana"
    history = page.inner_text("#history")
    for move in ("new → triaged", "triaged → notified", "notified → acknowledged", "acknowledged → remediated"):
        assert move in history
    assert "Called their CERT" in page.inner_text("main")
    # a move the state machine does not allow is refused with what is allowed
    page.select_option("#state", "triaged")
    page.click("#case-form button[type=submit]")
    page.select_option("#state", "false_positive")
    page.click("#case-form button[type=submit]")
    assert "needs a reason" in page.inner_text("#case-error")
    assert CaseStore(ws).get("tw-semi-01")["state"] == "triaged"
    assert errors == []
    ctx.close()


def test_viewer_cannot_change_a_case(browser: Any, site: tuple[str, Workspace]) -> None:
    base, ws = site
    ctx, page, errors = _login(browser, base, "vic")
    cid = case_id("tw-semi-01")
    page.goto(f"{base}/cases/{cid}")
    assert page.locator("#read-only").count() == 1 and page.locator("#case-form").count() == 0
    before = CaseStore(ws).get(cid)["state"]
    csrf = page.get_attribute("form[action='/logout'] input[name=csrf]", "value")
    r = page.request.post(f"{base}/cases/{cid}", form={"csrf": csrf, "state": "false_positive", "reason": "x"})
    assert r.status == 403
    token = UserStore(ws).new_token("vic")
    r = page.request.patch(
        f"{base}/api/v1/cases/{cid}", data={"state": "notified"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status == 403
    assert CaseStore(ws).get(cid)["state"] == before
    ctx.close()


def test_green_user_sees_neither_amber_cases_nor_their_counts(browser: Any, site: tuple[str, Workspace]) -> None:
    base, ws = site
    ctx, page, errors = _login(browser, base, "gus", GREEN_PW)
    page.goto(f"{base}/cases")
    counts = {
        s: int(page.inner_text(f"#cases-{s}"))
        for s in ("new", "triaged", "notified", "acknowledged", "remediated", "false_positive")
    }
    assert sum(counts.values()) == 1 and counts["new"] == 1
    text = page.content()
    assert case_id("tw-assn-09") in text
    for hidden in ("tw-semi-01", "tw-gov-03", "AS4780", "Hsinchu"):
        assert hidden not in text and case_id(hidden if hidden != "Hsinchu" else "tw-semi-01") not in text
    resp = page.goto(f"{base}/cases/{case_id('tw-semi-01')}")
    assert resp is not None and resp.status == 404
    token = UserStore(ws).new_token("gus")
    api = page.request.get(f"{base}/api/v1/cases", headers={"Authorization": f"Bearer {token}"}).json()
    assert api["total"] == 1 and sum(api["counts"].values()) == 1
    ctx.close()


def _big_campaign(n_hosts: int, n_servers: int) -> dict[str, Any]:
    servers = [f"45.77.{i // 250}.{i % 250 + 1}" for i in range(n_servers)]
    orgs = []
    for o in range(50):
        hosts = []
        for k in range(n_hosts // 50):
            ip = f"10.{o}.{k // 250}.{k % 250 + 1}"
            s = servers[(o * 7 + k) % n_servers]
            hosts.append(
                {
                    "ip": ip,
                    "verdict": "compromised" if k == 0 else "reconnaissance",
                    "confidence": 80,
                    "indicators": [s],
                    "tlp": "amber",
                    "evidence": [
                        {
                            "behaviour": "beacon" if k == 0 else "scan",
                            "indicator": s,
                            "direction": "outbound",
                            "dst_port": 443,
                            "flows": 10,
                            "bytes_out": 1,
                            "bytes_in": 1,
                            "first_seen": "2024-03-01T00:00:00Z",
                            "last_seen": "2024-03-02T00:00:00Z",
                            "score": 0.9,
                            "detail": "",
                            "tlp": "amber",
                            "decisive": k == 0,
                            "indicator_confidence": 90,
                            "confidence": 80,
                        }
                    ],
                }
            )
        orgs.append(
            {
                "org_id": f"org-{o:02d}",
                "name": f"Organization {o}",
                "sector": "government",
                "country": "TW",
                "asns": [],
                "verdict": "compromised",
                "confidence": 80,
                "first_seen": "2024-03-01T00:00:00Z",
                "last_seen": "2024-03-02T00:00:00Z",
                "tlp": "amber",
                "hosts": hosts,
            }
        )
    return {
        "schema": "sightline.findings/1",
        "generated_at": "2024-03-08T00:00:00Z",
        "organizations": orgs,
        "window": {"start": None, "end": None},
        "inputs": {},
        "summary": {},
        "stale_matches": [],
        "suspected_infrastructure": [],
        "actor_infrastructure": [
            {"ip": s, "cluster": f"cluster-{i % 5}", "roles": ["c2"], "tlp": "amber"} for i, s in enumerate(servers)
        ],
        "actor_infrastructure_summary": {
            "clusters": [],
            "handoffs": [{"host": "10.0.0.1", "from": servers[0], "to": servers[1], "tlp": "amber"}],
            "timeline": [],
        },
    }


def test_campaign_graph_is_usable_at_1000_nodes(browser: Any, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    atomic_write_json(ws.findings_dir / "latest.json", _big_campaign(950, 50))
    base, stop = _serve(create_app(ws, secret=b"g" * 32))
    try:
        ctx, page, errors = _login(browser, base, "ana")
        t0 = time.perf_counter()
        page.goto(f"{base}/graph")
        page.wait_for_selector("#graph-view.ready")
        loaded = time.perf_counter() - t0
        nodes = page.locator("circle.n").count()
        assert nodes >= 1000, nodes
        # hovering a server lights its links and neighbours only
        page.hover("circle.actor >> nth=0")
        lit = page.locator("circle.n.hl").count()
        assert 1 < lit < nodes
        assert "link(s)" in page.inner_text("#graph-info")
        page.fill("#graph-find", "Organization 7")
        assert page.locator("circle.found").count() == 19
        home = [float(x) for x in page.get_attribute("#campaign-graph", "viewBox").split()]
        page.click("#graph-zoom-in")
        zoomed = [float(x) for x in page.get_attribute("#campaign-graph", "viewBox").split()]
        assert zoomed[2] < home[2] and zoomed[3] < home[3]  # a smaller window onto the graph: zoomed in
        print(f"\ngraph of {nodes} nodes loaded and scripted in {loaded:.2f} s")
        assert errors == []
        ctx.close()
    finally:
        stop()
