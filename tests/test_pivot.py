"""Infrastructure pivoting: an address two compromised hosts beacon to, absent from the intel."""

from __future__ import annotations

import json
import random
from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app

from .test_hunt_e2e import C2, DAY, scenario
from .zeekgen import conn, write_tsv

UNKNOWN_C2 = "185.220.101.7"
POPULAR = "142.250.1.1"


def pivot_scenario(tmp_path: Path) -> tuple[dict[str, Path], Path]:
    """The e2e scenario plus two compromised hosts beaconing to an address no intel names."""
    files = scenario(tmp_path)
    rnd = random.Random(3)
    rows = []
    for host in ("203.0.113.5", "203.0.113.71"):
        t = DAY + 5000
        while t < DAY + 5000 + 43200:
            rows.append(conn(t, host, rnd.randint(30000, 60000), UNKNOWN_C2, 8443, ob=300, rb=900))
            t += 600 + rnd.uniform(-20, 20)
    # the second org's host also beacons to the known C2, so it is compromised too
    t = DAY + 9000
    while t < DAY + 9000 + 43200:
        rows.append(conn(t, "203.0.113.71", rnd.randint(30000, 60000), C2, 443, ob=500, rb=1500))
        t += 300 + rnd.uniform(-10, 10)
    # everybody (compromised or not) talks to a popular service: not suspicious
    for _ in range(400):
        rows.append(
            conn(
                DAY + rnd.uniform(0, 86400),
                f"203.0.113.{rnd.randint(1, 120)}",
                rnd.randint(1024, 65535),
                POPULAR,
                443,
                ob=rnd.randint(200, 3000),
                rb=rnd.randint(1000, 50000),
            )
        )
    return files, write_tsv(tmp_path / "extra.log", sorted(rows, key=lambda r: r["ts"]))


def test_suspected_infrastructure_listed_not_judged(tmp_path: Path, engine_name: str) -> None:
    files, extra = pivot_scenario(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "hunt",
            "-t",
            str(files["conn"]),
            "-t",
            str(extra),
            "-i",
            str(files["intel"]),
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
    assert verdicts["tw-semi-01"] == "compromised" and verdicts["tw-univ-02"] == "compromised"
    suspected = {s["ip"]: s for s in doc["suspected_infrastructure"]}
    assert UNKNOWN_C2 in suspected and POPULAR not in suspected
    s = suspected[UNKNOWN_C2]
    assert s["hosts"] == 2 and s["port"] == 8443 and set(s["organizations"]) == {"tw-semi-01", "tw-univ-02"}
    # never a verdict of its own: the address is in no organization's evidence
    assert all(UNKNOWN_C2 not in h["indicators"] for o in doc["organizations"] for h in o["hosts"])
