"""Suricata eve.json: real file, mapping, bad lines, store integration."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa

from sightline.ingest import detect_file_format, ingest_paths, open_input
from sightline.ingest.base import ReaderContext
from sightline.ingest.suricata import LAST_STATS, read_suricata_eve
from sightline.store import Workspace

from .datafiles import SLIPS

EVE = SLIPS / "test6-malicious.suricata.json.gz"


def _read(data: bytes) -> tuple[pa.Table, ReaderContext]:
    ctx = ReaderContext(Path("eve.json"), io.BytesIO(data))
    b = list(read_suricata_eve(ctx))
    return (pa.Table.from_batches(b) if b else pa.table({})), ctx


def test_real_eve_all_flow_events():
    assert detect_file_format(EVE).name == "suricata_eve"
    ctx = ReaderContext(EVE, open_input(EVE))
    t = pa.Table.from_batches(list(read_suricata_eve(ctx)))
    lines = gzip.open(EVE).read().splitlines()
    n_flow = sum(1 for ln in lines if json.loads(ln).get("event_type") == "flow")
    assert t.num_rows == n_flow == 3512 and ctx.bad_count == 0
    assert LAST_STATS["alert_events"] == 745
    first = json.loads(next(ln for ln in lines if b'"tcp_flags_ts":"02"' in ln and b'"tcp_flags_tc":"14"' in ln))
    row = [r for r in t.to_pylist() if r["src_port"] == first["src_port"] and r["dst_port"] == first["dest_port"]][0]
    assert row["conn_state"] == "REJ"
    assert row["bytes_out"] == first["flow"]["bytes_toserver"] and row["packets_in"] == first["flow"]["pkts_toclient"]


def test_flow_and_netflow_events_and_bad_lines():
    lines = [
        {
            "timestamp": "2024-01-02T03:04:05.5+0000",
            "event_type": "flow",
            "src_ip": "10.0.0.1",
            "src_port": 5000,
            "dest_ip": "2001:db8::1",
            "dest_port": 443,
            "proto": "TCP",
            "app_proto": "tls",
            "flow": {
                "pkts_toserver": 5,
                "pkts_toclient": 4,
                "bytes_toserver": 500,
                "bytes_toclient": 4000,
                "start": "2024-01-02T05:04:05.250000+0200",
                "end": "2024-01-02T05:04:07.250000+0200",
            },
            "tcp": {"tcp_flags_ts": "1b", "tcp_flags_tc": "1b"},
        },
        {
            "timestamp": "2024-01-02T03:04:06+0000",
            "event_type": "netflow",
            "src_ip": "10.0.0.2",
            "src_port": 53,
            "dest_ip": "10.0.0.3",
            "dest_port": 5353,
            "proto": "UDP",
            "netflow": {
                "pkts": 2,
                "bytes": 180,
                "start": "2024-01-02T03:04:06.000000+0000",
                "end": "2024-01-02T03:04:06.100000+0000",
            },
        },
        {"event_type": "alert", "src_ip": "10.0.0.1"},
    ]
    data = (
        "\n".join(json.dumps(x) for x in lines).encode()
        + b"\n{not json\n"
        + json.dumps({**lines[1], "src_ip": "300.1.1.1"}).encode()
        + b"\n"
    )
    t, ctx = _read(data)
    rows = t.to_pylist()
    assert len(rows) == 2
    f, n = rows
    assert f["dst_ip6"] == bytes.fromhex("20010db8000000000000000000000001") and f["dst_ip"] is None
    assert f["ts"].isoformat() == "2024-01-02T03:04:05.250000+00:00" and f["duration_s"] == 2.0
    assert (f["conn_state"], f["service"], f["bytes_in"]) == ("SF", "tls", 4000)
    assert n["bytes_in"] is None and n["packets_out"] == 2 and n["proto"] == "udp"
    assert sorted((b[0], b[2].split(":")[0]) for b in ctx._bad) == [(4, "bad JSON record"), (5, "netflow event")]


def test_ingest_twice_adds_nothing(tmp_path):
    rec = {
        "event_type": "flow",
        "src_ip": "10.0.0.1",
        "src_port": 1,
        "dest_ip": "10.0.0.2",
        "dest_port": 2,
        "proto": "TCP",
        "flow": {
            "pkts_toserver": 1,
            "pkts_toclient": 0,
            "bytes_toserver": 60,
            "bytes_toclient": 0,
            "start": "2024-01-02T03:04:05.000000+0000",
            "end": "2024-01-02T03:04:05.000000+0000",
        },
        "timestamp": "2024-01-02T03:04:05.000000+0000",
    }
    f = tmp_path / "eve.json"
    f.write_text(json.dumps(rec) + "\n")
    ws = Workspace(tmp_path / "ws")
    assert ingest_paths(ws, [f]).rows == 1
    assert ingest_paths(ws, [f]).rows == 0
    assert ws.counts()["flows"] == 1
