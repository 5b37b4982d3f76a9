"""The simulator's Suricata eve writer: flows come back through the eve reader unchanged."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from sightline.ingest import ingest_paths
from sightline.schema import FLOW_SCHEMA
from sightline.simulate.writers import get_writer
from sightline.store import Workspace

STATES = ["SF", "S0", "REJ", "RSTOS0", "SH", "RSTRH", "SHR", "RSTO", "RSTR", "S2", "S3", "S1", "OTH"]


def flows() -> pa.Table:
    n = len(STATES) + 2
    ts = [1709251200_000000 + i * 1_500_000 + 123 for i in range(n)]
    t = pa.table(
        {
            "ts": pa.array(ts, pa.int64()).cast(FLOW_SCHEMA.field("ts").type),
            "duration_s": [1.25] * n,
            "src_ip": pa.array([0xCB007105] * (n - 1) + [None], pa.uint32()),
            "src_ip6": pa.array([None] * (n - 1) + [bytes.fromhex("20010db8000000000000000000000001")], pa.binary(16)),
            "src_port": [40000 + i for i in range(n)],
            "dst_ip": pa.array([0x2D4D010A] * (n - 1) + [None], pa.uint32()),
            "dst_ip6": pa.array([None] * (n - 1) + [bytes.fromhex("20010db8000000000000000000000002")], pa.binary(16)),
            "dst_port": [443] * n,
            "proto": ["tcp"] * len(STATES) + ["udp", "udp"],
            "bytes_out": [480] * n,
            "bytes_in": [1800] * n,
            "packets_out": [4] * n,
            "packets_in": [5] * n,
            "conn_state": STATES + ["SF", "SF"],
            "service": ["ssl"] * (n - 1) + [None],
            "sensor": ["sensor-01"] * n,
            "source_format": [None] * n,
            "source_file": [None] * n,
            "history": pa.nulls(n, pa.string()),
        }
    ).cast(FLOW_SCHEMA)
    corrupt = [0] * n
    return t.append_column("corrupt", pa.array(corrupt, pa.uint8()))


def test_eve_writer_round_trip(tmp_path: Path) -> None:
    spec = get_writer("suricata_eve")
    w = spec.open(tmp_path / "eve.json", {"seed": 1})
    src = flows()
    w.write(src)
    w.close()
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [tmp_path / "eve.json"])
    assert s.quarantined == 0 and s.files[0].format == "suricata_eve"
    import pyarrow.parquet as pq

    got = pq.read_table(ws.flow_files()).sort_by("ts")
    assert got.num_rows == src.num_rows
    for c in (
        "ts",
        "src_ip",
        "src_ip6",
        "dst_ip",
        "dst_ip6",
        "src_port",
        "dst_port",
        "proto",
        "conn_state",
        "packets_out",
        "packets_in",
        "sensor",
    ):
        assert got.column(c).to_pylist() == src.column(c).to_pylist(), c
    # history from the flags each direction sent: the originator's SYN seen or not (mid-stream
    # states RSTRH, SHR, OTH have none); UDP has no flags to tell
    hist = dict(zip(STATES, got.column("history").to_pylist()))
    assert {k for k, h in hist.items() if "S" not in h} == {"RSTRH", "SHR", "OTH"}, hist
    assert hist["SF"] == "ShAaFf" and hist["REJ"] == "Sar" and hist["OTH"] == "Aa"
    assert got.column("history").to_pylist()[len(STATES) :] == [None, None]
    # IP-level counts: 40 header bytes per packet on top of the payload
    assert got.column("bytes_out").to_pylist() == [480 + 4 * 40] * src.num_rows
    assert pc.all(pc.equal(got.column("duration_s"), 1.25)).as_py()


def test_eve_writer_corrupt_records_are_quarantined(tmp_path: Path) -> None:
    src = flows()
    src = src.set_column(
        src.schema.get_field_index("corrupt"), "corrupt", pa.array([1, 2, 2, 2] + [0] * (src.num_rows - 4), pa.uint8())
    )
    w = get_writer("suricata_eve").open(tmp_path / "eve.json", {"seed": 3})
    w.write(src)
    w.close()
    s = ingest_paths(Workspace(tmp_path / "ws"), [tmp_path / "eve.json"])
    assert s.rows == src.num_rows - 4 and s.quarantined == 4
