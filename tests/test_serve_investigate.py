"""The organization page, investigation first, over a real hunt: the verdict's reason, the
decisive rows, hosts by verdict, and the flows behind a row read back from the parquet store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sightline.serve import UserStore, create_app
from sightline.serve.investigate import reason_sentence
from sightline.store import Workspace

from .serve_support import TestClient
from .test_hunt_e2e import C2, EXPLOITER, SCANNER, run, scenario

PW = "investigator-passphrase"


@pytest.fixture(scope="module")
def hunted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("investigate")
    files = scenario(tmp)
    ws = tmp / "ws"
    res = run(
        [
            "hunt",
            "--telemetry",
            str(files["conn"]),
            "--telemetry",
            str(files["conn6"]),
            "--intel",
            str(files["intel"]),
            "--orgs",
            str(files["orgs"]),
            "--workspace",
            str(ws),
        ]
    )
    assert res.exit_code == 0, res.output
    store = UserStore(Workspace(ws))
    store.add("ana", PW, role="analyst", clearance="amber")
    store.add("gus", PW, role="viewer", clearance="green")
    return Workspace(ws), files


@pytest.fixture(scope="module")
def client(hunted: tuple[Workspace, dict[str, Path]]) -> TestClient:
    c = TestClient(create_app(hunted[0], secret=b"i" * 32, api_rate=0))
    page = c.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert (
        c.post("/login", data={"username": "ana", "password": PW, "csrf": csrf}, follow_redirects=False).status_code
        == 303
    )
    return c


def _beacon_rows(files: dict[str, Path]) -> int:
    import gzip

    text = gzip.decompress(files["conn"].read_bytes()).decode()
    return sum(
        1
        for line in text.splitlines()
        if not line.startswith("#") and "\t203.0.113.5\t" in line and f"\t{C2}\t" in line
    )


def test_org_page_starts_with_why(client: TestClient) -> None:
    html = client.get("/orgs/tw-semi-01").text
    reason = re.search(r'<p class="reason" id="reason">(.*?)</p>', html, re.S).group(1)
    assert "is compromised" in reason and "host 203.0.113.5" in reason and C2 in reason and "beaconed" in reason
    assert "intel.csv" in reason  # which intel named the indicator
    # the order an investigator reads: why, decisive rows, then the other hosts, then the timeline
    order = [html.index(s) for s in ('id="reason"', 'id="decisive"', "Hosts by verdict", "<h2>Timeline</h2>")]
    assert order == sorted(order)
    decisive = html[html.index('id="decisive"') : html.index("</table>", html.index('id="decisive"'))]
    assert "203.0.113.5" in decisive and "beacon" in decisive and "interval" in decisive
    assert 'id="hosts-compromised">1<' in html


def test_reason_for_each_verdict(client: TestClient) -> None:
    tok = UserStore(Workspace(client.app.state.sightline.ws.root)).new_token("ana")  # type: ignore[attr-defined]
    h = {"Authorization": f"Bearer {tok}"}
    univ = client.get("/api/v1/orgs/tw-univ-02", headers=h).json()
    assert univ["reason"].startswith("National Tainan University is the target of exploitation attempts")
    assert EXPLOITER in univ["reason"] and univ["decisive"][0]["behaviour"] == "exploitation"
    gov = client.get("/api/v1/orgs/tw-gov-03", headers=h).json()
    assert "under reconnaissance" in gov["reason"] and "was probed by" in gov["reason"] and SCANNER in gov["reason"]
    assert "more decisive row" in gov["reason"] and "hosts" in gov["reason"]
    assert reason_sentence({"org_id": "x", "verdict": "none", "hosts": []}).endswith("no verdict on what you may see.")


def test_host_drill_down_reads_the_actual_flows(client: TestClient, hunted: tuple[Workspace, dict[str, Path]]) -> None:
    expected = _beacon_rows(hunted[1])
    assert expected > 200
    page = client.get(f"/orgs/tw-semi-01/hosts/203.0.113.5?indicator={C2}")
    assert page.status_code == 200
    assert re.search(r'id="flow-total">(\d+)<', page.text).group(1) == str(expected)
    assert 'rel="next"' in page.text
    tok = UserStore(hunted[0]).new_token("ana")
    h = {"Authorization": f"Bearer {tok}"}
    pages: list[dict[str, Any]] = []
    offset = 0
    while True:
        p = client.get(
            f"/api/v1/orgs/tw-semi-01/flows?host=203.0.113.5&indicator={C2}&limit=100&offset={offset}", headers=h
        ).json()
        pages.append(p)
        offset += 100
        if offset >= p["total"]:
            break
    rows = [r for p in pages for r in p["items"]]
    assert len(rows) == expected and all(p["total"] == expected for p in pages)
    assert {(r["src"], r["dst"], r["dst_port"]) for r in rows} == {("203.0.113.5", C2, 443)}
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    # the exploitation that came first is found from the other direction
    both = client.get("/api/v1/orgs/tw-semi-01/flows?host=203.0.113.5&limit=500", headers=h).json()
    assert both["total"] == expected + 1 and both["items"][0]["src"] == EXPLOITER


def test_drill_down_follows_clearance(client: TestClient, hunted: tuple[Workspace, dict[str, Path]]) -> None:
    tok = UserStore(hunted[0]).new_token("gus")  # GREEN: the C2 and the exploiter are AMBER intel
    h = {"Authorization": f"Bearer {tok}"}
    assert client.get(f"/api/v1/orgs/tw-semi-01/flows?host=203.0.113.5&indicator={C2}", headers=h).status_code == 404
    assert client.get("/api/v1/orgs/tw-gov-03/flows?host=198.18.0.1", headers=h).json()["total"] > 0  # GREEN scanner
    assert client.get("/api/v1/orgs/tw-gov-03/flows?host=10.9.9.9", headers=h).status_code == 404


def test_graph_links_victims_and_servers(client: TestClient, hunted: tuple[Workspace, dict[str, Path]]) -> None:
    tok = UserStore(hunted[0]).new_token("ana")
    g = client.get("/api/v1/graph", headers={"Authorization": f"Bearer {tok}"}).json()
    ids = {n["id"]: n for n in g["nodes"]}
    assert ids["h:203.0.113.5"]["verdict"] == "compromised" and ids[f"a:{C2}"]["kind"] == "actor"
    edge = next(e for e in g["edges"] if e["s"] == "h:203.0.113.5" and e["t"] == f"a:{C2}")
    assert edge["behaviour"] == "beacon" and edge["decisive"]
    html = client.get("/graph").text
    assert html.count('class="n host') == sum(1 for n in g["nodes"] if n["kind"] == "host")
