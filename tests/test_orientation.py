"""Orientation from Zeek's ``history``: a record whose sensor missed the connection's start (no
originator SYN, or flipped by the sensor, ``^``) is no evidence its responder was attacked.

Seen on real captures: DNS-over-TLS answers from a public resolver (orig 1.1.1.1:853 -> resp the
workstation's ephemeral port, no SYN) read as the resolver exploiting the workstation; C2
sessions older than the capture have no SYN either and must stay C2.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.detect import run_detection
from sightline.engines.duckdb import DuckDBEngine
from sightline.enrich.orgs import read_orgs
from sightline.ingest import ingest_paths
from sightline.pipeline import read_indicators
from sightline.schema import FLOW_SCHEMA
from sightline.store import Workspace, read_parts

from .zeekgen import conn, write_json, write_tsv

DAY = 1709251200.0  # 2024-03-01T00:00:00Z
RESOLVER, C2, EXPLOITER, FLIPPER, LURKER = "1.1.1.1", "45.77.1.10", "45.77.1.12", "45.77.1.13", "45.77.1.14"
WORKSTATION, INSIDE, FLIPPED_HOST, EDGE, MID_HOST = (
    "203.0.113.10",
    "203.0.113.70",
    "198.18.0.5",
    "198.18.1.1",
    "198.18.2.5",
)


def _rec(ts: float, src: str, sport: int, dst: str, dport: int, history: str | None, **kw) -> dict:
    r = conn(ts, src, sport, dst, dport, **kw)
    r["history"] = history
    return r


def orientation_rows() -> list[dict]:
    rows = []
    # (a) DoT answers from a public resolver, Zeek oriented them backwards (no SYN seen): the
    # "originator" is the resolver on 853, the "responder" the workstation's ephemeral port, and
    # the resolver's answers (orig_bytes) are over the 1 kB an exploit request would need
    for k, hist in enumerate(("Dd", "dA", "Dd", "dDa")):
        rows.append(
            _rec(
                DAY + 600 + k * 900,
                RESOLVER,
                853,
                WORKSTATION,
                52344 + k,
                hist,
                state="OTH",
                duration=30.0,
                ob=1500 + k,
                rb=600,
                op=4,
                rp=4,
            )
        )
    # (b) a C2 session older than the capture: no SYN, two hours, inside host -> indicator:443;
    # and one Zeek oriented backwards (the C2 server's packet came first)
    rows.append(
        _rec(
            DAY + 1000,
            INSIDE,
            50123,
            C2,
            443,
            "DdAa",
            state="OTH",
            duration=7200.0,
            ob=200_000,
            rb=3_000_000,
            op=900,
            rp=2500,
        )
    )
    rows.append(
        _rec(
            DAY + 9000,
            C2,
            443,
            INSIDE,
            50200,
            "dDa",
            state="OTH",
            duration=5400.0,
            ob=2_500_000,
            rb=150_000,
            op=2000,
            rp=800,
        )
    )
    # (c) records Zeek flipped ('^'): one from the indicator's service port to the host's
    # ephemeral one, one that stays inbound (Zeek saw the host's SYN-ACK first, not the SYN)
    rows.append(
        _rec(DAY + 2000, FLIPPER, 8443, FLIPPED_HOST, 50500, "^dDa", state="OTH", duration=12.0, ob=2400, rb=900)
    )
    rows.append(
        _rec(DAY + 2100, FLIPPER, 51000, FLIPPED_HOST, 443, "^hADadfF", state="SF", duration=3.0, ob=5200, rb=7000)
    )
    # mid-session records that stay inbound after orientation by ports: payload to a service port
    # and a run of empty records to several ports; without SYN they show no attack
    rows.append(_rec(DAY + 3000, LURKER, 51500, MID_HOST, 443, "DdA", state="OTH", duration=40.0, ob=6000, rb=12000))
    for p in (22, 8443, 10443, 4433):
        rows.append(
            _rec(
                DAY + 3100 + p / 1000,
                LURKER,
                41000,
                MID_HOST,
                p,
                "Aa",
                state="OTH",
                duration=0.1,
                ob=0,
                rb=0,
                op=1,
                rp=1,
            )
        )
    # (d) a real, SYN-started exploitation attempt on an edge VPN portal
    for k in range(2):
        rows.append(
            _rec(DAY + 4000 + k * 60, EXPLOITER, 52000 + k, EDGE, 4433, "ShADad", duration=2.0, ob=2600, rb=3100)
        )
    rows.sort(key=lambda r: r["ts"])
    return rows


def write_intel_orgs(tmp: Path) -> tuple[Path, Path]:
    intel = tmp / "intel.csv"
    intel.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
        + "".join(f"{ip},ipv4,RedJuliett,,,85,amber\n" for ip in (RESOLVER, C2, EXPLOITER, FLIPPER, LURKER))
    )
    orgs = tmp / "orgs.csv"
    orgs.write_text(
        "org_id,name,sector,country,cidr\n"
        "tw-ws-01,Workstation Office,semiconductor,TW,203.0.113.0/26\n"
        "tw-c2-02,Hsinchu Wafer Works,semiconductor,TW,203.0.113.64/26\n"
        "tw-flip-03,Flipped Records Ltd,government,TW,198.18.0.0/24\n"
        "tw-edge-04,National Tainan University,university,TW,198.18.1.0/24\n"
        "tw-mid-05,Mid Session Trade Association,industry association,TW,198.18.2.0/24\n"
    )
    return intel, orgs


def _hunt(tmp: Path, log: Path) -> dict:
    intel, orgs = write_intel_orgs(tmp)
    out = tmp / "out"
    res = CliRunner().invoke(
        app,
        ["hunt", "-t", str(log), "-i", str(intel), "--orgs", str(orgs), "--out", str(out), "-w", str(tmp / "ws")],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    doc["_ws"] = tmp / "ws"
    return doc


def _contacts(ws_root: Path) -> list[dict]:
    """The detection's per-contact aggregates of the hunted workspace (what assess scores)."""
    eng = DuckDBEngine()
    try:
        ws = Workspace(ws_root)
        det = run_detection(eng, ws.flow_files(), read_indicators(ws), read_orgs(ws))
    finally:
        eng.close()
    return det.contacts.to_pylist()


def _ip4(a: str) -> int:
    return int(ipaddress.IPv4Address(a))


def _org(doc: dict, org_id: str) -> dict | None:
    return next((o for o in doc["organizations"] if o["org_id"] == org_id), None)


def _evidence(doc: dict, host: str) -> list[dict]:
    return [e for o in doc["organizations"] for h in o["hosts"] if h["ip"] == host for e in h["evidence"]]


@pytest.fixture(params=["tsv", "json"])
def doc(request, tmp_path: Path) -> dict:
    rows = orientation_rows()
    log = write_tsv(tmp_path / "conn.log", rows) if request.param == "tsv" else write_json(tmp_path / "conn.json", rows)
    return _hunt(tmp_path, log)


def test_backwards_dot_answers_are_an_outbound_contact(doc: dict) -> None:
    ws = _org(doc, "tw-ws-01")
    assert ws is None or ws["verdict"] not in ("exploitation_attempt", "reconnaissance")
    assert not {"exploitation", "scan"} & {e["behaviour"] for e in _evidence(doc, WORKSTATION)}
    # the resolver is not profiled as an exploitation source (it was, read backwards)
    clusters = doc.get("actor_infrastructure_summary", {}).get("clusters", [])
    assert not [c for c in clusters if RESOLVER in c["members"] and c["kind"] != "C2/VPN"]
    # the contact the detection hands to scoring: the workstation asked the resolver on 853; the
    # resolver's answers are the response, the workstation's queries the request
    dot = [c for c in _contacts(doc["_ws"]) if c["host_ip4"] == _ip4(WORKSTATION)]
    assert [(c["outbound"], c["service_port"], c["indicator"], c["flows"]) for c in dot] == [(True, 853, RESOLVER, 4)]
    assert dot[0]["two_way"] == 4 and dot[0]["req_bytes"] == 4 * 600
    assert dot[0]["resp_bytes"] == sum(1500 + k for k in range(4))


def test_c2_session_seen_mid_way_is_still_c2(doc: dict) -> None:
    org = _org(doc, "tw-c2-02")
    assert org is not None and org["verdict"] == "compromised"
    long = [e for e in _evidence(doc, INSIDE) if e["behaviour"] == "long_connection"]
    assert long and all(e["direction"] == "outbound" and e["dst_port"] == 443 for e in long)
    # the backwards record joined the same outbound contact: two sessions, 3.5 h in all
    assert long[0]["flows"] == 2 and long[0]["bytes_in"] == 3_000_000 + 2_500_000


def test_flipped_records_are_no_attack_on_the_responder(doc: dict) -> None:
    org = _org(doc, "tw-flip-03")
    assert org is None or org["verdict"] not in ("exploitation_attempt", "reconnaissance")
    ev = _evidence(doc, FLIPPED_HOST)
    assert {(e["direction"], e["dst_port"]) for e in ev} <= {("outbound", 8443)}
    assert not {"exploitation", "scan"} & {e["behaviour"] for e in ev}


def test_mid_session_inbound_records_are_neither_exploitation_nor_probes(doc: dict) -> None:
    assert _org(doc, "tw-mid-05") is None
    assert _evidence(doc, MID_HOST) == []


def test_syn_started_exploitation_still_counts(doc: dict) -> None:
    org = _org(doc, "tw-edge-04")
    assert org is not None and org["verdict"] == "exploitation_attempt"
    ev = _evidence(doc, EDGE)
    assert {(e["behaviour"], e["direction"], e["dst_port"]) for e in ev} == {("exploitation", "inbound", 4433)}


def test_without_history_records_read_as_before(tmp_path: Path) -> None:
    """A conn.log without ``history`` (or NetFlow) keeps the sensor's orientation: the backwards DoT
    answers are then the resolver sending payload into the workstation, as sightline read them."""
    rows = [dict(r, history=None) for r in orientation_rows()]
    doc = _hunt(tmp_path, write_tsv(tmp_path / "conn.log", rows))
    dot = [c for c in _contacts(doc["_ws"]) if c["host_ip4"] == _ip4(WORKSTATION)]
    assert {(c["outbound"], c["service_port"]) for c in dot} == {(False, 52344 + k) for k in range(4)}
    assert _org(doc, "tw-mid-05")["verdict"] == "exploitation_attempt"
    assert _org(doc, "tw-edge-04")["verdict"] == "exploitation_attempt"


@pytest.mark.parametrize("fmt", ["tsv", "json"])
def test_history_survives_zeek_ingest(tmp_path: Path, fmt: str) -> None:
    rows = orientation_rows()[:6] + [dict(orientation_rows()[6], history=None)]
    path = write_tsv(tmp_path / "c.log", rows) if fmt == "tsv" else write_json(tmp_path / "c.json", rows)
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [path])
    got = read_parts(ws.flow_files()).sort_by("ts").column("history").to_pylist()
    assert got == [r["history"] for r in rows]


def test_parts_without_history_read_as_null(tmp_path: Path) -> None:
    """A store written before the column existed: its parts read as null history, by sightline's
    reader and by the detection engine, next to new parts that have it."""
    from sightline.store import FlowWriter

    old_schema = pa.schema([f for f in FLOW_SCHEMA if f.name != "history"])
    ws = Workspace(tmp_path / "ws")
    ws.ensure()
    log = write_tsv(tmp_path / "new.log", orientation_rows()[:3])
    ingest_paths(ws, [log])
    w = FlowWriter(ws, "cd" * 32, "old.log", "zeek_tsv", schema=old_schema)
    w.write(read_parts(ws.flow_files()).drop_columns(["history"]))
    w.commit(None)
    files = ws.flow_files()
    assert sorted("history" in pq.read_schema(f).names for f in files) == [False, True]
    got = read_parts(files).column("history").to_pylist()
    assert sorted(got, key=str) == sorted([None] * 3 + ["Dd", "dA", "DdAa"], key=str)
    eng = DuckDBEngine()
    eng.register_parquet("flows", files, FLOW_SCHEMA)
    n = eng.query("SELECT count(*) AS n, count(history) AS h FROM flows").to_pylist()[0]
    assert n == {"n": 6, "h": 3}
    eng.register_parquet("flows", [f for f in files if "history" not in pq.read_schema(f).names], FLOW_SCHEMA)
    assert eng.query("SELECT count(*) AS n, count(history) AS h FROM flows").to_pylist()[0] == {"n": 3, "h": 0}
    eng.close()
