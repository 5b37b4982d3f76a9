"""End to end: `sightline hunt` on hand-made Zeek logs, one organization per verdict."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.findings import validate_findings

from .datafiles import SDFT, SLIPS
from .zeekgen import conn, write_json, write_tsv

DAY = 1709251200.0  # 2024-03-01T00:00:00Z

C2, SCANNER, EXPLOITER, STALE, WRONG = "45.77.1.10", "45.77.1.11", "45.77.1.12", "45.77.1.99", "8.8.8.8"


def hunt_findings(tmp: Path, log: Path, intel: Path, orgs: Path, engine: str) -> dict:
    """``sightline hunt`` of one log with one intel file through the CLI; its findings.json."""
    out = tmp / "out"
    res = CliRunner().invoke(
        app,
        [
            "hunt",
            "-t",
            str(log),
            "-i",
            str(intel),
            "--orgs",
            str(orgs),
            "--out",
            str(out),
            "-w",
            str(tmp / "ws"),
            "--engine",
            engine,
        ],
    )
    assert res.exit_code == 0, res.output
    return json.loads((out / "findings.json").read_text())


def scenario(tmp: Path) -> dict[str, Path]:
    rnd = random.Random(7)
    rows = []
    # tw-semi-01: edge device exploited, then beacons home every 300 s +-10 s for a day
    rows.append(conn(DAY + 3600, EXPLOITER, 51000, "203.0.113.5", 443, service="ssl", ob=4200, rb=9100))
    t = DAY + 4000
    while t < DAY + 4000 + 86400:
        rows.append(
            conn(
                t,
                "203.0.113.5",
                rnd.randint(30000, 60000),
                C2,
                443,
                service="ssl",
                duration=2.0,
                ob=480 + rnd.randint(-20, 20),
                rb=1800 + rnd.randint(-50, 50),
            )
        )
        t += 300 + rnd.uniform(-10, 10)
    # tw-univ-02: exploitation attempts against its VPN portal, no callback
    for k in range(2):
        rows.append(conn(DAY + 7200 + k * 60, EXPLOITER, 52000 + k, "203.0.113.70", 4433, ob=2600, rb=3100))
    # tw-gov-03: horizontal + vertical scan, failed/empty
    for h in range(1, 21):
        for port in (443, 8443, 10443, 4433):
            rows.append(
                conn(
                    DAY + 10000 + h * 5 + port / 1000,
                    SCANNER,
                    40000 + h,
                    f"198.18.0.{h}",
                    port,
                    duration=None,
                    ob=0,
                    rb=0,
                    state=rnd.choice(["S0", "REJ"]),
                    op=1,
                    rp=0,
                )
            )
    # tw-misc-04: talks to an indicator outside its validity window, and to a low-confidence "indicator"
    for k in range(6):
        rows.append(conn(DAY + 20000 + k * 900, "198.18.1.5", 50000 + k, STALE, 443, ob=700, rb=5000))
        rows.append(
            conn(DAY + 20000 + k * 900, "198.18.1.5", 50100 + k, WRONG, 53, proto="udp", service="dns", ob=40, rb=120)
        )
    # background between registry hosts and the internet
    for _ in range(500):
        rows.append(
            conn(
                DAY + rnd.uniform(0, 86400 * 2),
                f"203.0.113.{rnd.randint(1, 120)}",
                rnd.randint(1024, 65535),
                f"93.184.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
                443,
                ob=rnd.randint(100, 5000),
                rb=rnd.randint(100, 90000),
            )
        )
    rows.sort(key=lambda r: r["ts"])
    conn_log = write_tsv(
        tmp / "conn.log.gz",
        rows,
        gz=True,
        extra_lines=[
            (10, "garbage line without tabs"),
            (20, "\t".join(["1709251200.1", "Cx", "not-an-ip", "1", "2.2.2.2", "80"] + ["-"] * 15)),
        ],
    )
    # an IPv6 organization scanned, as Zeek JSON
    v6 = [
        conn(DAY + 30000 + p, SCANNER, 41000, "2001:db8:5::10", p, ob=0, rb=0, state="REJ", op=1, rp=1)
        for p in (22, 443, 500, 4500, 8443)
    ]
    json_log = write_json(tmp / "conn6.json", v6)
    intel = tmp / "intel.csv"
    intel.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
        f"{C2},ipv4,RedJuliett,2024-01-01,,90,amber\n"
        f"{SCANNER},ipv4,RedJuliett,,,80,green\n"
        f"{EXPLOITER}/32,cidr,RedJuliett,2024-02-01,2024-12-31,85,amber\n"
        f"{STALE},ipv4,RedJuliett,2022-01-01,2023-06-30,90,green\n"
        f"{WRONG},ipv4,RedJuliett,,,10,clear\n"
    )
    orgs = tmp / "orgs.csv"
    orgs.write_text(
        "org_id,name,sector,country,cidr\n"
        "tw-semi-01,Hsinchu Wafer Works,semiconductor,TW,203.0.113.0/26\n"
        "tw-univ-02,National Tainan University,university,TW,203.0.113.64/26\n"
        "tw-gov-03,Ministry of Digital Things,government,TW,198.18.0.0/24\n"
        "tw-misc-04,Taipei Trade Association,industry association,TW,198.18.1.0/24\n"
        "hk-rel-05,Kowloon Fellowship,religious,HK,2001:db8:5::/48\n"
        "tw-semi-01,Hsinchu Wafer Works,semiconductor,TW,not-a-cidr\n"
    )
    return {"conn": conn_log, "conn6": json_log, "intel": intel, "orgs": orgs}


def run(args: list[str]):
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    return res


@pytest.fixture
def hunted(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[dict, Path, dict[str, Path]]:
    # on both engines for the tests that ask for engine_name (tests/conftest.py), else on DuckDB
    engine = request.getfixturevalue("engine_name") if "engine_name" in request.fixturenames else "duckdb"
    files = scenario(tmp_path)
    out = tmp_path / "out"
    ws = tmp_path / "ws"
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
            "--out",
            str(out),
            "--workspace",
            str(ws),
            "--engine",
            engine,
        ]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    assert doc["engine"] == engine
    return doc, ws, files


def verdicts(doc: dict) -> dict[str, str]:
    return {o["org_id"]: o["verdict"] for o in doc["organizations"]}


def test_each_verdict_is_found(hunted, engine_name):
    doc, _, _ = hunted
    validate_findings(doc)
    assert verdicts(doc) == {
        "tw-semi-01": "compromised",
        "tw-univ-02": "exploitation_attempt",
        "tw-gov-03": "reconnaissance",
        "hk-rel-05": "reconnaissance",
    }
    semi = next(o for o in doc["organizations"] if o["org_id"] == "tw-semi-01")
    host = semi["hosts"][0]
    assert host["ip"] == "203.0.113.5"
    behaviours = {e["behaviour"] for e in host["evidence"]}
    assert {"beacon", "exploitation"} <= behaviours
    beacon = next(e for e in host["evidence"] if e["behaviour"] == "beacon")
    assert beacon["indicator"] == C2 and beacon["direction"] == "outbound" and beacon["dst_port"] == 443
    assert "interval 300s" in beacon["detail"] or "interval 5min" in beacon["detail"]
    # which intel produced it, and when the intel first named it (vs first seen in traffic)
    assert beacon["intel_sources"] and beacon["intel_sources"][0].endswith("intel.csv")
    assert beacon["intel_first_seen"].startswith("2024-01-01") and beacon["first_seen"] > beacon["intel_first_seen"]
    assert beacon["intel_imported_at"]
    assert semi["confidence"] >= 80
    gov = next(o for o in doc["organizations"] if o["org_id"] == "tw-gov-03")
    assert len(gov["hosts"]) == 20
    assert doc["summary"]["by_sector"]["semiconductor"] == {"compromised": 1}
    assert doc["summary"]["by_country"]["TW"]["reconnaissance"] == 1


def test_validity_window_and_low_confidence(hunted, engine_name):
    doc, _, _ = hunted
    assert "tw-misc-04" not in verdicts(doc)
    stale = [s for s in doc["stale_matches"] if s["indicator"] == STALE]
    assert stale and stale[0]["host"] == "198.18.1.5" and stale[0]["flows"] == 6


def test_quarantine_counts_bad_lines(hunted):
    doc, ws, _ = hunted
    assert doc["inputs"]["quarantined"] == 2
    import duckdb

    from sightline.store import Workspace

    q = duckdb.sql(
        f"SELECT position, reason FROM read_parquet({Workspace(ws).quarantine_files()}) ORDER BY position"
    ).fetchall()
    assert [p for p, _ in q] == [19, 30]  # 8 header lines, then data; the bad lines sit before data rows 10 and 20
    assert "expected 21 fields" in q[0][1] and "src_ip" in q[1][1]


def test_report_html_written_and_escaped(hunted, tmp_path):
    doc, _, _ = hunted
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Hsinchu Wafer Works" in html and "compromised" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html.replace(
        "https://www.w3.org", ""
    )


def test_second_ingest_adds_nothing_and_retro_hunt(hunted, tmp_path):
    doc, ws, files = hunted
    res = run(["ingest", str(files["conn"]), "--workspace", str(ws)])
    assert res.exit_code == 0 and "already ingested" in res.output
    # retro-hunt: no telemetry, new intel only -> same flows, indicator count grows
    extra = tmp_path / "more.txt"
    extra.write_text("# new indicator list\n203.0.113.200\n")
    res = run(["hunt", "--intel", str(extra), "--workspace", str(ws), "--out", str(tmp_path / "out2")])
    assert res.exit_code == 0, res.output
    doc2 = json.loads((tmp_path / "out2" / "findings.json").read_text())
    assert doc2["inputs"]["flows"] == doc["inputs"]["flows"]
    assert doc2["inputs"]["indicators"] == doc["inputs"]["indicators"] + 1
    assert verdicts(doc2) == verdicts(doc)


def test_fail_on_compromised_exit_code(hunted, tmp_path):
    _, ws, _ = hunted
    res = run(["hunt", "--workspace", str(ws), "--fail-on", "compromised"])
    assert res.exit_code == 1
    res = run(["report", "--format", "json", "--out", str(tmp_path / "f.json"), "--workspace", str(ws)])
    assert res.exit_code == 0, res.output
    assert verdicts(json.loads((tmp_path / "f.json").read_text()))["tw-semi-01"] == "compromised"


def test_real_zeek_background_raises_nothing_unless_planted(tmp_path):
    files = scenario(tmp_path)
    real = [
        SDFT / "008-zeek-mixed/conn.log.labeled.gz",
        SDFT / "002-zeek-scenario-port-scanning/conn.log.gz",
        SLIPS / "test9-mixed-zeek-dir/conn.log.gz",
    ]
    args = [
        "hunt",
        "--intel",
        str(files["intel"]),
        "--orgs",
        str(files["orgs"]),
        "--workspace",
        str(tmp_path / "ws"),
        "--out",
        str(tmp_path / "o"),
    ]
    for r in real:
        args += ["--telemetry", str(r)]
    res = run(args)
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "o" / "findings.json").read_text())
    assert doc["inputs"]["flows"] > 10_000
    assert doc["organizations"] == []
    # now plant the campaign in the same workspace: it is found among the real traffic
    res = run(
        ["hunt", "--telemetry", str(files["conn"]), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o2")]
    )
    doc2 = json.loads((tmp_path / "o2" / "findings.json").read_text())
    assert verdicts(doc2)["tw-semi-01"] == "compromised"


def test_unreadable_telemetry_only_exits_2(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 20)
    res = run(["hunt", "--telemetry", str(junk), "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "could not read" in text and "unknown format" in text
    # a readable file next to it: the run succeeds and says what it skipped
    files = scenario(tmp_path)
    res = run(
        [
            "hunt",
            "--telemetry",
            str(junk),
            "--telemetry",
            str(files["conn"]),
            "--intel",
            str(files["intel"]),
            "--orgs",
            str(files["orgs"]),
            "--workspace",
            str(tmp_path / "ws2"),
            "--out",
            str(tmp_path / "o2"),
        ]
    )
    assert res.exit_code == 0, res.output
    assert "could not read" in " ".join(res.output.split())


def test_hunt_jobs_two_finds_the_same(tmp_path: Path) -> None:
    """``hunt --jobs 2`` reads its telemetry files in worker processes: same inputs, same verdicts."""
    files = scenario(tmp_path)
    docs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        args = ["hunt", "-t", str(files["conn"]), "-t", str(files["conn6"]), "-i", str(files["intel"])]
        args += ["--orgs", str(files["orgs"]), "--out", str(out), "-w", str(tmp_path / f"ws{jobs}"), "--jobs", jobs]
        res = run(args)
        assert res.exit_code == 0, res.output
        docs[jobs] = json.loads((out / "findings.json").read_text())
    assert docs["2"]["inputs"] == docs["1"]["inputs"] and docs["1"]["inputs"]["flows"] > 0
    assert verdicts(docs["2"]) == verdicts(docs["1"]) and "compromised" in verdicts(docs["1"]).values()
