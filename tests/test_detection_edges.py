"""Shapes an independent evaluation found: beacons seen in one direction only, a lone probe,
and an address most of the constituency polls on a schedule."""

from __future__ import annotations

import json
import random
from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app

from .test_hunt_e2e import DAY
from .zeekgen import conn, write_tsv

ACTOR = "45.77.9.9"
SERVICE = "52.84.60.155"


def _orgs(tmp: Path, n: int) -> Path:
    p = tmp / "orgs.csv"
    p.write_text("org_id,name,sector,country,cidr\n"
                 + "".join(f"org-{i:02d},Org {i},electronics,TW,10.{i}.0.0/16\n" for i in range(n)))
    return p


def _hunt(tmp: Path, rows: list[dict], intel: str, orgs: Path) -> dict[str, str]:
    log = write_tsv(tmp / "c.log", sorted(rows, key=lambda r: r["ts"]))
    ip = tmp / "i.csv"
    ip.write_text("indicator,type,actor,first_seen,last_seen,confidence,tlp\n" + intel)
    out = tmp / "out"
    res = CliRunner().invoke(app, ["hunt", "-t", str(log), "-i", str(ip), "--orgs", str(orgs), "--out", str(out),
                                   "-w", str(tmp / "ws")])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    return {o["org_id"]: o["verdict"] for o in doc["organizations"]}


def _schedule(host: str, dst: str, start: float, every: float, n: int, rnd: random.Random, **kw) -> list[dict]:
    return [conn(start + k * every + rnd.uniform(-0.05, 0.05) * every, host, rnd.randint(30000, 60000), dst, 443,
                 **kw) for k in range(n)]


def test_a_beacon_seen_only_one_way_is_a_compromise(tmp_path: Path) -> None:
    """Asymmetric routing: the sensor sees the requests (payload, OTH) but never the replies."""
    rnd = random.Random(1)
    rows = _schedule("10.1.0.5", ACTOR, DAY + 600, 600, 120, rnd, ob=350, rb=None, state="OTH", rp=0)
    # a refused schedule (S0, no payload) to the same address from another org is no compromise
    rows += _schedule("10.2.0.5", ACTOR, DAY + 900, 600, 120, rnd, ob=0, rb=None, state="S0", rp=0, duration=None)
    v = _hunt(tmp_path, rows, f"{ACTOR},ipv4,RedJuliett,,,70,amber\n", _orgs(tmp_path, 3))
    assert v.get("org-01") == "compromised"
    assert v.get("org-02") != "compromised"


def test_a_lone_probe_is_not_reconnaissance_but_two_are(tmp_path: Path) -> None:
    rows = [conn(DAY + 100, ACTOR, 41000, "10.1.0.9", 3389, ob=0, rb=0, state="S0", op=1, rp=0, duration=None)]
    # probes from an address the intel barely trusts decide nothing, nor do they make the lone probe "many"
    rows += [conn(DAY + 150 + k, "45.77.9.10", 43000 + k, "10.1.0.10", 22, ob=0, rb=0, state="S0", op=1, rp=0,
                  duration=None) for k in range(3)]
    rows += [conn(DAY + 200 + k, ACTOR, 42000 + k, "10.2.0.9", port, ob=0, rb=0, state="REJ", op=1, rp=1,
                  duration=None) for k, port in enumerate((22, 3389))]
    v = _hunt(tmp_path, rows, f"{ACTOR},ipv4,RedJuliett,,,80,amber\n45.77.9.10,ipv4,RedJuliett,,,20,amber\n",
              _orgs(tmp_path, 3))
    assert "org-01" not in v
    assert v.get("org-02") == "reconnaissance"


def _browse(host: str, dst: str, rnd: random.Random) -> list[dict]:
    return [conn(DAY + rnd.uniform(0, 86400 * 3), host, rnd.randint(30000, 60000), dst, 443, ob=rnd.randint(400, 3000),
                 rb=rnd.randint(3000, 90000)) for _ in range(6)]


def test_an_address_most_organizations_poll_on_a_schedule_is_a_service(tmp_path: Path) -> None:
    """15 of 20 organizations have a host polling the address every 30 min (an update service the
    intel names at medium confidence): no compromise.  Beacons to another listed address that
    everybody browses but only 3 organizations beacon to (C2 behind a CDN) still decide."""
    rnd = random.Random(3)
    rows: list[dict] = []
    for i in range(20):
        host = f"10.{i}.0.20"
        rows += _browse(host, SERVICE, rnd)
        if i < 15:
            rows += _schedule(host, SERVICE, DAY + 60 * i, 1800, 140, rnd, ob=300, rb=900)
    cdn = "52.84.61.7"
    for i in range(20):
        rows += _browse(f"10.{i}.0.30", cdn, rnd)
    for i in (16, 17, 18):
        rows += _schedule(f"10.{i}.0.31", cdn, DAY + 77 * i, 900, 280, rnd, ob=420, rb=1500)
    intel = f"{SERVICE},ipv4,RedJuliett,,,60,amber\n{cdn},ipv4,RedJuliett,,,60,amber\n"
    v = _hunt(tmp_path, rows, intel, _orgs(tmp_path, 20))
    assert {o for o, verdict in v.items() if verdict == "compromised"} == {"org-16", "org-17", "org-18"}
