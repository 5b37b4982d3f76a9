"""Unidirectional telemetry (NetFlow-like: one record per direction, no reverse bytes) gives the
same verdicts as bidirectional Zeek records of the same sessions."""

from __future__ import annotations

import random
from pathlib import Path

from .test_hunt_e2e import C2, DAY, EXPLOITER, SCANNER, hunt_findings, scenario
from .zeekgen import conn, write_tsv


def _split(r: dict) -> list[dict]:
    """One bidirectional record -> a request record and (if answered) a reply record."""
    req = dict(r, resp_bytes=None, resp_pkts=None, resp_ip_bytes=None)
    if r["conn_state"] in ("S0", "REJ") or not r.get("resp_bytes"):
        return [req]
    rep = dict(
        r,
        **{
            "id.orig_h": r["id.resp_h"],
            "id.orig_p": r["id.resp_p"],
            "id.resp_h": r["id.orig_h"],
            "id.resp_p": r["id.orig_p"],
            "orig_bytes": r["resp_bytes"],
            "orig_pkts": r["resp_pkts"],
            "resp_bytes": None,
            "resp_pkts": None,
            "resp_ip_bytes": None,
        },
    )
    return [req, rep]


def test_one_record_per_direction_same_verdicts(tmp_path: Path, engine_name: str) -> None:
    files = scenario(tmp_path)
    rnd = random.Random(11)
    rows = [conn(DAY + 3600, EXPLOITER, 51000, "203.0.113.5", 443, ob=4200, rb=9100)]
    t = DAY + 4000
    while t < DAY + 4000 + 43200:
        rows.append(conn(t, "203.0.113.5", rnd.randint(30000, 60000), C2, 443, ob=480, rb=1800))
        t += 300 + rnd.uniform(-10, 10)
    rows += [conn(DAY + 7200 + k, EXPLOITER, 52000 + k, "203.0.113.70", 4433, ob=2600, rb=3100) for k in range(2)]
    rows += [
        conn(DAY + 9000 + p, SCANNER, 40001, "198.18.0.7", p, duration=None, ob=0, rb=0, state="S0", op=1, rp=0)
        for p in (443, 8443, 10443)
    ]
    uni = [x for r in rows for x in _split(r)]
    log = write_tsv(tmp_path / "uni.log", sorted(uni, key=lambda r: r["ts"]))
    doc = hunt_findings(tmp_path, log, files["intel"], files["orgs"], engine_name)
    verdicts = {o["org_id"]: o["verdict"] for o in doc["organizations"]}
    assert verdicts == {
        "tw-semi-01": "compromised",
        "tw-univ-02": "exploitation_attempt",
        "tw-gov-03": "reconnaissance",
    }
    semi = doc["organizations"][0]
    beh = {e["behaviour"] for h in semi["hosts"] for e in h["evidence"]}
    assert "beacon" in beh
