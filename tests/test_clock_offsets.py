"""Per-sensor clock offsets (``[network] time_offsets`` in sightline.toml) are applied as
flows are stored, recorded in the manifest, and move flows across day partitions if needed."""

from __future__ import annotations

import pyarrow.parquet as pq

from sightline.ingest import ingest_paths
from sightline.store import Workspace

from .zeekgen import conn, write_tsv

DAY = 1709251200.0  # 2024-03-01T00:00:00Z


def _ts(ws: Workspace) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for f in ws.flow_files():
        t = pq.read_table(f, columns=["ts", "src_ip", "sensor"])
        for ts, sensor in zip(t.column("ts").to_pylist(), t.column("sensor").to_pylist()):
            out.setdefault(sensor, []).append(ts.timestamp())
    return {k: sorted(v) for k, v in out.items()}


def test_offsets_per_sensor(tmp_path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    (ws.root / "sightline.toml").write_text("[network]\ntime_offsets = { edge-1 = -3.5, edge-9 = 60 }\n")
    rows = [
        conn(DAY + 2.0, "203.0.113.5", 40000, "45.77.1.10", 443),
        conn(DAY + 7200, "203.0.113.5", 40001, "45.77.1.10", 443),
    ]
    a = write_tsv(tmp_path / "a.log", rows)
    b = write_tsv(tmp_path / "b.log", rows + [conn(DAY + 9000, "203.0.113.6", 40002, "45.77.1.10", 443)])
    ingest_paths(ws, [a], sensor="edge-1")
    ingest_paths(ws, [b], sensor="edge-2")
    ts = _ts(ws)
    assert ts["edge-1"] == [DAY - 1.5, DAY + 7196.5]  # corrected; the first flow moved to the day before
    assert ts["edge-2"] == [DAY + 2.0, DAY + 7200, DAY + 9000]  # no offset configured: untouched
    assert any("day=2024-02-29" in f for f in ws.flow_files())
    entries = {e["source_file"]: e for e in ws.manifest()["files"].values()}
    assert entries[str(a)]["time_offsets_s"] == {"edge-1": -3.5}
    assert "time_offsets_s" not in entries[str(b)]
