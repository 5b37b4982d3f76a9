"""How indicator confidence gates verdicts: low (< 30) decides nothing; a C2 pattern from a
medium-low indicator (30-49) counts; mere repeated contact needs medium (>= 50)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightline.cli import app

from .test_hunt_e2e import DAY, hunt_findings, scenario
from .zeekgen import conn, write_tsv

ACTOR = "45.77.9.9"


def _beacons(rnd: random.Random) -> list[dict]:
    out, t = [], DAY + 1000
    while t < DAY + 1000 + 36000:
        out.append(conn(t, "203.0.113.9", rnd.randint(30000, 60000), ACTOR, 443, ob=420, rb=1500))
        t += 600 + rnd.uniform(-30, 30)
    return out


def _browsing(rnd: random.Random) -> list[dict]:
    return [
        conn(
            DAY + t,
            "203.0.113.9",
            rnd.randint(30000, 60000),
            ACTOR,
            443,
            ob=rnd.randint(300, 3000),
            rb=rnd.randint(2000, 90000),
        )
        for t in (3000, 3100, 17000, 52000)
    ]


@pytest.mark.parametrize(
    "pattern,confidence,expected",
    [
        ("beacon", 40, "compromised"),
        ("beacon", 20, None),
        ("browsing", 40, None),
        ("browsing", 70, "compromised"),
    ],
    ids=["beacon-conf40", "beacon-conf20", "browsing-conf40", "browsing-conf70"],
)
def test_confidence_gates(
    tmp_path: Path, pattern: str, confidence: int, expected: str | None, engine_name: str
) -> None:
    files = scenario(tmp_path)
    rnd = random.Random(4)
    rows = _beacons(rnd) if pattern == "beacon" else _browsing(rnd)
    log = write_tsv(tmp_path / "c.log", rows)
    intel = tmp_path / "i.csv"
    intel.write_text(
        f"indicator,type,actor,first_seen,last_seen,confidence,tlp\n{ACTOR},ipv4,RedJuliett,,,{confidence},amber\n"
    )
    doc = hunt_findings(tmp_path, log, intel, files["orgs"], engine_name)
    verdicts = {o["org_id"]: o["verdict"] for o in doc["organizations"]}
    assert verdicts.get("tw-semi-01") == expected


def test_browsing_a_popular_address_after_exploitation_is_not_a_compromise(tmp_path: Path, engine_name: str) -> None:
    """tw-univ-02's 203.0.113.70 sees exploitation attempts on day 1; later it, like hosts of
    every other organization, browses an address the intel also names (a shared web host)."""
    files = scenario(tmp_path)
    popular = "93.184.216.34"
    intel = tmp_path / "popular.csv"
    intel.write_text(
        f"indicator,type,actor,first_seen,last_seen,confidence,tlp\n{popular},ipv4,RedJuliett,,,60,amber\n"
    )
    rnd = random.Random(9)
    browsers = ["203.0.113.70", "203.0.113.20", "198.18.0.77", "198.18.1.77", "2001:db8:5::77"]
    # people browsing: irregular times over the afternoon, several pages each
    rows = [
        conn(
            DAY + 9000 + rnd.expovariate(1 / 2400) * (k + 1),
            host,
            rnd.randint(30000, 60000),
            popular,
            443,
            ob=rnd.randint(400, 2000),
            rb=rnd.randint(5000, 80000),
        )
        for host in browsers
        for k in range(8)
    ]
    log = write_tsv(tmp_path / "browse.log", sorted(rows, key=lambda r: r["ts"]))
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "hunt",
            "-t",
            str(files["conn"]),
            "-t",
            str(log),
            "-i",
            str(files["intel"]),
            "-i",
            str(intel),
            "--orgs",
            str(files["orgs"]),
            "--out",
            str(out),
            "-w",
            str(tmp_path / "ws"),
            "--engine",
            engine_name,
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    verdicts = {o["org_id"]: o["verdict"] for o in doc["organizations"]}
    assert verdicts["tw-univ-02"] == "exploitation_attempt"
    assert "tw-misc-04" not in verdicts  # browsing alone decides nothing
