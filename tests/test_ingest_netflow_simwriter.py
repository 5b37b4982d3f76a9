"""Simulator NetFlow/IPFIX writers: the same flows come back through ingest."""

from __future__ import annotations

import pyarrow as pa
import pytest

import sightline.simulate.netflow_writer  # noqa: F401  (registers the writers)
from sightline.ingest import ingest_paths
from sightline.ingest.nfexport import synthetic_flows
from sightline.simulate.writers import get_writer
from sightline.store import Workspace, read_parts

COMMON = ["ts", "src_ip", "src_ip6", "src_port", "dst_ip", "dst_ip6", "dst_port", "proto", "bytes_out", "packets_out"]


@pytest.mark.parametrize("name,extra", [("netflow_v9", []), ("ipfix", ["bytes_in", "packets_in"])])
def test_writer_round_trip_with_corrupt_records(tmp_path, name, extra):
    flows = synthetic_flows(500, v6_every=7, biflow=True)
    corrupt = [1 if i % 100 == 0 else 0 for i in range(500)]
    spec = get_writer(name)
    w = spec.open(tmp_path / f"out.{spec.suffix}", {})
    w.write(flows.append_column("corrupt", pa.array(corrupt, pa.uint8())))
    w.close()
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [w.path])
    assert s.rows == 495 and s.quarantined == 5
    got = read_parts(ws.flow_files())
    want = flows.filter(pa.array([c == 0 for c in corrupt]))
    key = [("ts", "ascending"), ("src_port", "ascending")]
    assert got.select(COMMON + extra).sort_by(key).equals(want.select(COMMON + extra).sort_by(key))
