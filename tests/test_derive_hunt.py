"""End to end: domains and certificates in the intel find victims through name telemetry."""

from __future__ import annotations

import json
import random
from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app
from sightline.findings import validate_findings

from . import namesgen as ng
from .zeekgen import conn
from .zeekgen import write_tsv as write_conn

DAY = 1709251200.0  # 2024-03-01T00:00:00Z
CERT = "5d0f3a41b2c0e6f1a9d2c4b7e8f90123456789abcdef0123456789abcdef0123"
ORGS = (
    "org_id,name,sector,country,cidr\n"
    "tw-semi-01,Hsinchu Wafer Works,semiconductor,TW,203.0.113.0/26\n"
    "tw-univ-02,National Tainan University,university,TW,203.0.113.64/26\n"
    "tw-gov-03,Ministry of Digital Things,government,TW,198.18.0.0/24\n"
)


def beacons(host: str, dst: str, start: float, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    rows, t = [], start
    while t < start + 86400:
        rows.append(
            conn(
                t,
                host,
                rnd.randint(30000, 60000),
                dst,
                443,
                service="ssl",
                duration=2.0,
                ob=480 + rnd.randint(-20, 20),
                rb=1800 + rnd.randint(-50, 50),
            )
        )
        t += 300 + rnd.uniform(-10, 10)
    return rows


def scenario(tmp: Path) -> dict[str, Path]:
    # semi: resolves a subdomain of the listed domain, then beacons to the answer
    # univ: resolves notevil.com (a suffix of the name, not a label boundary), then beacons
    # gov: reaches a server presenting the listed certificate (no DNS), and beacons to it
    rows = (
        beacons("203.0.113.5", "45.77.2.20", DAY + 3700, 1)
        + beacons("203.0.113.70", "45.77.2.30", DAY + 3700, 2)
        + beacons("198.18.0.9", "45.77.2.40", DAY + 3700, 3)
    )
    rows.sort(key=lambda r: r["ts"])
    files = {"conn": write_conn(tmp / "conn.log", rows)}
    files["dns"] = ng.write_tsv(
        tmp / "dns.log",
        "dns",
        ng.DNS_FIELDS,
        [
            ng.dns(
                DAY + 3600, "203.0.113.5", "cdn.evil.com.", ["cdn.evil.com.edge.example", "45.77.2.20"], [60.0, 60.0]
            ),
            ng.dns(DAY + 3600, "203.0.113.70", "notevil.com", ["45.77.2.30"]),
        ],
    )
    files["ssl"] = ng.write_json(tmp / "ssl.log", [ng.ssl(DAY + 3650, "198.18.0.9", "45.77.2.40", 443, None, [CERT])])
    files["intel"] = tmp / "intel.csv"
    files["intel"].write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
        "evil.com,domain,RedJuliett,2024-01-01,,90,amber\n"
        f"{CERT},x509_sha256,RedJuliett,,,85,green\n"
    )
    files["orgs"] = tmp / "orgs.csv"
    files["orgs"].write_text(ORGS)
    return files


def hunt(tmp: Path, files: dict[str, Path], engine_name: str, *telemetry: str) -> dict:
    out = tmp / "out"
    args = [
        "hunt",
        "--intel",
        str(files["intel"]),
        "--orgs",
        str(files["orgs"]),
        "--out",
        str(out),
        "--workspace",
        str(tmp / "ws"),
        "--engine",
        engine_name,
    ]
    for k in telemetry:
        args += ["--telemetry", str(files[k])]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    assert doc["engine"] == engine_name
    return doc


def org(doc: dict, org_id: str) -> dict | None:
    return next((o for o in doc["organizations"] if o["org_id"] == org_id), None)


def test_domain_and_certificate_indicators_find_victims(tmp_path: Path, engine_name: str) -> None:
    files = scenario(tmp_path)
    doc = hunt(tmp_path, files, engine_name, "conn", "dns", "ssl")
    validate_findings(doc)
    semi = org(doc, "tw-semi-01")
    assert semi is not None and semi["verdict"] == "compromised"
    ev = semi["hosts"][0]["evidence"]
    assert {e["indicator"] for e in ev} == {"evil.com"}
    assert any(e["behaviour"] == "beacon" for e in ev)
    gov = org(doc, "tw-gov-03")
    assert gov is not None and gov["verdict"] == "compromised"
    assert {e["indicator"] for h in gov["hosts"] for e in h["evidence"]} == {CERT}
    # notevil.com ends with "evil.com" but is another domain
    assert org(doc, "tw-univ-02") is None
    assert doc["inputs"]["indicators"] == 2 and doc["inputs"]["derived_indicators"] == 2


def test_without_name_telemetry_nothing_is_found(tmp_path: Path, engine_name: str) -> None:
    files = scenario(tmp_path)
    doc = hunt(tmp_path, files, engine_name, "conn")
    assert doc["organizations"] == []


def test_names_added_later_retro_hunt(tmp_path: Path, engine_name: str) -> None:
    """Flows first, DNS later: the hunt over the stored flows finds the victim."""
    files = scenario(tmp_path)
    assert hunt(tmp_path, files, engine_name, "conn")["organizations"] == []
    doc = hunt(tmp_path, files, engine_name, "dns")
    assert org(doc, "tw-semi-01")["verdict"] == "compromised"
    assert org(doc, "tw-gov-03") is None  # its ssl.log was not given
