"""A bad time on one Suricata flow event does not cost the other events their durations."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from sightline.ingest import ingest_paths
from sightline.store import Workspace


def _flow(i: int, start: str, end: str) -> dict:
    return {
        "timestamp": start,
        "flow_id": i,
        "event_type": "flow",
        "src_ip": "10.0.0.1",
        "src_port": 40000 + i,
        "dest_ip": "192.0.2.9",
        "dest_port": 443,
        "proto": "TCP",
        "flow": {
            "pkts_toserver": 5,
            "pkts_toclient": 4,
            "bytes_toserver": 900,
            "bytes_toclient": 3000,
            "start": start,
            "end": end,
            "state": "closed",
            "reason": "timeout",
        },
    }


def test_durations_survive_a_bad_neighbour(tmp_path: Path) -> None:
    events = [
        _flow(1, "2024-03-01T10:00:00.000000+0000", "2024-03-01T10:00:05.500000+0000"),
        _flow(2, "2024-03-01T10:01:00.000000+0000", "not a time"),
        _flow(3, "2024-03-01T10:02:00.000000+0000", "2024-03-01T10:02:02.000000+0000"),
    ]
    p = tmp_path / "eve.json"
    p.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [p])
    rows = duckdb.sql(f"SELECT src_port, duration_s FROM read_parquet({ws.flow_files()}) ORDER BY src_port").fetchall()
    durations = dict(rows)
    assert durations[40001] == 5.5 and durations[40003] == 2.0
    assert durations.get(40002) is None
