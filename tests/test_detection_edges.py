"""Shapes an independent evaluation found: beacons seen in one direction only, a lone probe,
and an address most of the constituency polls on a schedule."""

from __future__ import annotations

import json
import random
from pathlib import Path

from .test_hunt_e2e import DAY, hunt_findings
from .zeekgen import conn, write_tsv

ACTOR = "45.77.9.9"
SERVICE = "52.84.60.155"


def _orgs(tmp: Path, n: int) -> Path:
    p = tmp / "orgs.csv"
    p.write_text(
        "org_id,name,sector,country,cidr\n"
        + "".join(f"org-{i:02d},Org {i},electronics,TW,10.{i}.0.0/16\n" for i in range(n))
    )
    return p


def _hunt(tmp: Path, rows: list[dict], intel: str, orgs: Path, engine_name: str) -> dict[str, str]:
    log = write_tsv(tmp / "c.log", sorted(rows, key=lambda r: r["ts"]))
    ip = tmp / "i.csv"
    ip.write_text("indicator,type,actor,first_seen,last_seen,confidence,tlp\n" + intel)
    doc = hunt_findings(tmp, log, ip, orgs, engine_name)
    assert doc["engine"] == engine_name
    return {o["org_id"]: o["verdict"] for o in doc["organizations"]}


def _schedule(host: str, dst: str, start: float, every: float, n: int, rnd: random.Random, **kw) -> list[dict]:
    return [
        conn(start + k * every + rnd.uniform(-0.05, 0.05) * every, host, rnd.randint(30000, 60000), dst, 443, **kw)
        for k in range(n)
    ]


def test_a_beacon_seen_only_one_way_is_a_compromise(tmp_path: Path, engine_name: str) -> None:
    """Asymmetric routing: the sensor sees the requests (payload, OTH) but never the replies."""
    rnd = random.Random(1)
    rows = _schedule("10.1.0.5", ACTOR, DAY + 600, 600, 120, rnd, ob=350, rb=None, state="OTH", rp=0)
    # a refused schedule (S0, no payload) to the same address from another org is no beacon: it is
    # a host calling a C2 that never answers, a compromise sign of its own, at lower confidence
    rows += _schedule("10.2.0.5", ACTOR, DAY + 900, 600, 120, rnd, ob=0, rb=None, state="S0", rp=0, duration=None)
    v = _hunt(tmp_path, rows, f"{ACTOR},ipv4,RedJuliett,,,70,amber\n", _orgs(tmp_path, 3), engine_name)
    assert v.get("org-01") == "compromised" and v.get("org-02") == "compromised"
    doc = json.loads((tmp_path / "out" / "findings.json").read_text())
    decisive = {
        o["org_id"]: ({e["behaviour"] for h in o["hosts"] for e in h["evidence"] if e["decisive"]}, o["confidence"])
        for o in doc["organizations"]
    }
    assert decisive["org-01"][0] == {"beacon"} and decisive["org-02"][0] == {"failed_callback"}
    assert decisive["org-02"][1] < decisive["org-01"][1]


def test_a_lone_probe_is_not_reconnaissance_but_two_are(tmp_path: Path, engine_name: str) -> None:
    rows = [conn(DAY + 100, ACTOR, 41000, "10.1.0.9", 3389, ob=0, rb=0, state="S0", op=1, rp=0, duration=None)]
    # probes from an address the intel barely trusts decide nothing, nor do they make the lone probe "many"
    rows += [
        conn(DAY + 150 + k, "45.77.9.10", 43000 + k, "10.1.0.10", 22, ob=0, rb=0, state="S0", op=1, rp=0, duration=None)
        for k in range(3)
    ]
    rows += [
        conn(DAY + 200 + k, ACTOR, 42000 + k, "10.2.0.9", port, ob=0, rb=0, state="REJ", op=1, rp=1, duration=None)
        for k, port in enumerate((22, 3389))
    ]
    v = _hunt(
        tmp_path,
        rows,
        f"{ACTOR},ipv4,RedJuliett,,,80,amber\n45.77.9.10,ipv4,RedJuliett,,,20,amber\n",
        _orgs(tmp_path, 3),
        engine_name,
    )
    assert "org-01" not in v
    assert v.get("org-02") == "reconnaissance"


def test_one_session_after_exploitation_of_its_organization_is_a_compromise(tmp_path: Path, engine_name: str) -> None:
    """org-01's edge device is exploited (requests with payload from the actor); afterwards another
    of its hosts opens one ordinary two-way session to the actor: a callback, so that host is
    compromised although the session alone shows nothing.  The same lone session from org-02,
    which saw no exploitation, decides nothing."""
    rows = [conn(DAY + 100 + 60 * k, ACTOR, 41000 + k, "10.1.0.7", 443, ob=6000, rb=900, state="SF") for k in range(3)]
    rows.append(conn(DAY + 4000, "10.1.0.8", 50000, ACTOR, 443, ob=300, rb=900, state="SF"))
    rows.append(conn(DAY + 4000, "10.2.0.8", 50001, ACTOR, 443, ob=300, rb=900, state="SF"))
    _hunt(tmp_path, rows, f"{ACTOR},ipv4,RedJuliett,,,80,amber\n", _orgs(tmp_path, 3), engine_name)
    doc = json.loads((tmp_path / "out" / "findings.json").read_text())
    hosts = {h["ip"]: h for o in doc["organizations"] for h in o["hosts"]}
    assert hosts["10.1.0.8"]["verdict"] == "compromised"
    assert [e["behaviour"] for e in hosts["10.1.0.8"]["evidence"] if e["follows_exploitation"]] == ["contact"]
    assert "10.2.0.8" not in hosts and _org(doc, "org-02") is None


def _browse(host: str, dst: str, rnd: random.Random) -> list[dict]:
    return [
        conn(
            DAY + rnd.uniform(0, 86400 * 3),
            host,
            rnd.randint(30000, 60000),
            dst,
            443,
            ob=rnd.randint(400, 3000),
            rb=rnd.randint(3000, 90000),
        )
        for _ in range(6)
    ]


def test_an_address_most_organizations_poll_on_a_schedule_is_a_service(tmp_path: Path, engine_name: str) -> None:
    """15 of 20 organizations have a host polling the address every 30 min (an update service the
    intel names at medium confidence): no compromise.  Beacons to another listed address that
    everybody browses but only 3 organizations beacon to (C2 on a popular address, in no list of
    shared infrastructure) still decide."""
    rnd = random.Random(3)
    rows: list[dict] = []
    for i in range(20):
        host = f"10.{i}.0.20"
        rows += _browse(host, SERVICE, rnd)
        if i < 15:
            rows += _schedule(host, SERVICE, DAY + 60 * i, 1800, 140, rnd, ob=300, rb=900)
    cdn = "203.0.113.77"
    for i in range(20):
        rows += _browse(f"10.{i}.0.30", cdn, rnd)
    for i in (16, 17, 18):
        rows += _schedule(f"10.{i}.0.31", cdn, DAY + 77 * i, 900, 280, rnd, ob=420, rb=1500)
    intel = f"{SERVICE},ipv4,RedJuliett,,,60,amber\n{cdn},ipv4,RedJuliett,,,60,amber\n"
    v = _hunt(tmp_path, rows, intel, _orgs(tmp_path, 20), engine_name)
    assert {o for o, verdict in v.items() if verdict == "compromised"} == {"org-16", "org-17", "org-18"}


# --- flow records of one direction in formats that carry both (IPFIX biflow, Suricata) -------


def _records(rows: list[dict], fmt: str = "ipfix"):
    import pyarrow as pa

    from sightline import net
    from sightline.store import flows_table_from_columns

    n = len(rows)
    col = lambda k, t=None: pa.array([r.get(k) for r in rows], t)  # noqa: E731
    return flows_table_from_columns(
        {
            "ts": pa.array([int(r["ts"] * 1e6) for r in rows], pa.timestamp("us", tz="UTC")),
            "duration_s": col("duration", pa.float64()),
            "src_ip": net.parse_ips(col("src")).v4,
            "dst_ip": net.parse_ips(col("dst")).v4,
            "src_port": col("sport", pa.int32()),
            "dst_port": col("dport", pa.int32()),
            "proto": col("proto"),
            "bytes_out": col("bo", pa.int64()),
            "bytes_in": col("bi", pa.int64()),
            "packets_out": col("po", pa.int64()),
            "packets_in": col("pi", pa.int64()),
            "conn_state": col("state"),
            "source_format": pa.array([fmt] * n),
            "sensor": pa.array(["s1"] * n),
        },
        n,
    )


def _detect(tmp: Path, table, intel: str, orgs: Path, engine_name: str) -> dict:
    from sightline.pipeline import detect_workspace, hunt
    from sightline.store import FlowWriter, Workspace

    ip = tmp / "i.csv"
    ip.write_text("indicator,type,actor,first_seen,last_seen,confidence,tlp\n" + intel)
    ws = Workspace(tmp / "ws")
    hunt(ws, intel=[ip], orgs_csv=orgs)
    w = FlowWriter(ws, "cd" * 32, "records.ipfix", "ipfix")
    w.write(table)
    w.commit(None)
    return detect_workspace(ws, engine_name=engine_name).to_dict()


def _org(doc: dict, oid: str) -> dict | None:
    return next((o for o in doc["organizations"] if o["org_id"] == oid), None)


def test_one_way_records_of_a_two_way_format(tmp_path: Path, engine_name: str) -> None:
    """org-01: every connection to the C2 arrives as two records of one direction each (the
    sensor's view of an asymmetric path): the request (S0 flags, data, nothing back) and the
    reply (mid-stream, from 443 to the host's port, nothing back).  That is a beacon, not a
    scan of 120 ports.  org-02: only the requests were seen.  org-03: a SYN scan from a source
    port of 443 stays reconnaissance."""
    rnd = random.Random(5)
    rows = []
    for k in range(120):
        t, sport = DAY + 600 * k + rnd.uniform(-20, 20), rnd.randint(30000, 60000)
        rows.append(
            dict(
                ts=t,
                duration=1.2,
                src="10.1.0.5",
                dst=ACTOR,
                sport=sport,
                dport=443,
                proto="tcp",
                bo=5 * 52 + 400,
                bi=0,
                po=5,
                pi=0,
                state="S0",
            )
        )
        rows.append(
            dict(
                ts=t + 0.05,
                duration=1.1,
                src=ACTOR,
                dst="10.1.0.5",
                sport=443,
                dport=sport,
                proto="tcp",
                bo=4 * 52 + 1800,
                bi=0,
                po=4,
                pi=0,
                state="OTH",
            )
        )
        rows.append(
            dict(
                ts=t + 300,
                duration=1.0,
                src="10.2.0.5",
                dst=ACTOR,
                sport=sport + 1,
                dport=443,
                proto="tcp",
                bo=5 * 52 + 380,
                bi=0,
                po=5,
                pi=0,
                state="S0",
            )
        )
    for k, port in enumerate(range(1000, 1040)):
        rows.append(
            dict(
                ts=DAY + 50 + k,
                duration=0.0,
                src=ACTOR,
                dst="10.3.0.7",
                sport=443,
                dport=port,
                proto="tcp",
                bo=60,
                bi=0,
                po=1,
                pi=0,
                state="S0",
            )
        )
    doc = _detect(tmp_path, _records(rows), f"{ACTOR},ipv4,RedJuliett,,,70,amber\n", _orgs(tmp_path, 4), engine_name)
    o1, o2, o3 = _org(doc, "org-01"), _org(doc, "org-02"), _org(doc, "org-03")
    assert o1 and o1["verdict"] == "compromised"
    ev1 = [e for h in o1["hosts"] for e in h["evidence"]]
    assert not [e for e in ev1 if e["behaviour"] == "scan"]
    assert any(e["behaviour"] == "beacon" and e["flows"] == 120 for e in ev1)  # a connection counts once
    assert o2 and o2["verdict"] == "compromised"
    assert o3 and o3["verdict"] == "reconnaissance"


def test_sessions_given_as_two_records_count_their_time_once(tmp_path: Path, engine_name: str) -> None:
    """37 one-minute HTTPS sessions (37 minutes in all, 74 if each record counted), each as a request and a reply
    record (NetFlow): not a long connection nor a VPN tunnel, whatever the volume."""
    rnd = random.Random(6)
    rows = []
    for _ in range(37):
        t, sport = DAY + rnd.uniform(0, 3 * 86400), rnd.randint(30000, 60000)
        rows.append(
            dict(
                ts=t,
                duration=60.0,
                src="10.1.0.9",
                dst=ACTOR,
                sport=sport,
                dport=443,
                proto="tcp",
                bo=3000 + 40 * 52,
                po=40,
                state="SF",
            )
        )
        rows.append(
            dict(
                ts=t,
                duration=60.0,
                src=ACTOR,
                dst="10.1.0.9",
                sport=443,
                dport=sport,
                proto="tcp",
                bo=280_000 + 200 * 52,
                po=200,
                state="SF",
            )
        )
    doc = _detect(
        tmp_path, _records(rows, "netflow_v9"), f"{ACTOR},ipv4,RedJuliett,,,60,amber\n", _orgs(tmp_path, 3), engine_name
    )
    ev = [e for o in doc["organizations"] for h in o["hosts"] for e in h["evidence"]]
    assert ev, "the contact is listed"
    assert not [e for e in ev if e["behaviour"] in ("long_connection", "vpn_tunnel")]
    assert {e["flows"] for e in ev if e["direction"] == "outbound"} == {37}


def test_an_empty_handshake_in_ip_bytes_carries_no_payload(tmp_path: Path, engine_name: str) -> None:
    """NetFlow counts IP bytes: a handshake and a close with TCP timestamps (SYN 60, ACKs 52)
    and nothing else is an empty session, so an actor doing only that is reconnaissance."""
    rows = []
    for k, port in enumerate((443, 8443, 10443, 4433)):
        sport = 40000 + k
        rows.append(
            dict(
                ts=DAY + 10 * k,
                duration=0.2,
                src=ACTOR,
                dst="10.1.0.4",
                sport=sport,
                dport=port,
                proto="tcp",
                bo=60 + 52 + 52,
                po=3,
                state="SF",
            )
        )
        rows.append(
            dict(
                ts=DAY + 10 * k,
                duration=0.2,
                src="10.1.0.4",
                dst=ACTOR,
                sport=port,
                dport=sport,
                proto="tcp",
                bo=60 + 52,
                po=2,
                state="SF",
            )
        )
    doc = _detect(
        tmp_path, _records(rows, "netflow_v9"), f"{ACTOR},ipv4,RedJuliett,,,80,amber\n", _orgs(tmp_path, 3), engine_name
    )
    o = _org(doc, "org-01")
    assert o and o["verdict"] == "reconnaissance"
    (scan,) = [e for h in o["hosts"] for e in h["evidence"] if e["behaviour"] == "scan"]
    assert (scan["bytes_out"], scan["bytes_in"]) == (0, 0) and "4 failed or empty" in scan["detail"]


def test_each_contact_names_the_actor_its_indicator_was_listed_for(tmp_path: Path, engine_name: str) -> None:
    """Evidence names the actor of its indicator, and none for an address listed without one
    (matches carry the actor as a rank of the names; the name comes back after aggregating)."""
    rnd = random.Random(3)
    other = "45.77.9.20"
    rows = _schedule("10.1.0.5", ACTOR, DAY + 600, 600, 60, rnd, ob=350, rb=900)
    rows += _schedule("10.2.0.5", other, DAY + 900, 600, 60, rnd, ob=350, rb=900)
    intel = f"{ACTOR},ipv4,Volt Typhoon,,,80,amber\n45.77.9.30,ipv4,RedJuliett,,,80,amber\n{other},ipv4,,,,80,amber\n"
    v = _hunt(tmp_path, rows, intel, _orgs(tmp_path, 3), engine_name)
    assert v.get("org-01") == "compromised" and v.get("org-02") == "compromised"
    doc = json.loads((tmp_path / "out" / "findings.json").read_text())
    actors = {e["indicator"]: e.get("actor") for o in doc["organizations"] for h in o["hosts"] for e in h["evidence"]}
    assert actors[ACTOR] == "Volt Typhoon"
    assert not actors[other]
