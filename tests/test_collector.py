"""Live collector: UDP on loopback -> committed batches; restart keeps templates; CLI."""

from __future__ import annotations

import socket
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from typer.testing import CliRunner

from sightline.cli import app
from sightline.ingest.collector import Collector
from sightline.ingest.nfexport import encode_export, synthetic_flows
from sightline.store import Workspace


def _send(port: int, packets: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in packets:
            s.sendto(p, ("127.0.0.1", port))


def _run(col: Collector, packets: list[bytes], port: int | None = None) -> None:
    stop = threading.Event()
    th = threading.Thread(target=col.run, args=(stop,))
    th.start()
    _send(port or col.bound_ports[0], packets)
    stop.set()  # run() drains what is already in the socket buffer before it exits
    th.join(timeout=60)
    assert not th.is_alive()


def _store(ws: Workspace) -> pa.Table:
    files = ws.flow_files()
    return pa.concat_tables(pq.read_table(f) for f in files) if files else pa.table({})


def test_collects_v5_v9_ipfix_in_batches(tmp_path):
    ws = Workspace(tmp_path / "ws")
    col = Collector(ws, [0, 0], batch_records=500)
    a, b, c = (
        synthetic_flows(700, seed=1),
        synthetic_flows(800, seed=2, v6_every=3),
        synthetic_flows(600, seed=3, biflow=True),
    )
    pk = encode_export(a, 5) + encode_export(b, 9)
    k = len(pk)
    pk += encode_export(c, 10, biflow=True)
    stop = threading.Event()
    th = threading.Thread(target=col.run, args=(stop,))
    th.start()
    _send(col.bound_ports[0], pk[:k])
    _send(col.bound_ports[1], pk[k:])
    stop.set()
    th.join(timeout=60)
    t = _store(ws)
    assert t.num_rows == 2100
    assert pc.sum(t["bytes_out"]).as_py() == sum(pc.sum(x["bytes_out"]).as_py() for x in (a, b, c))
    m = ws.manifest()["files"]
    assert len(m) >= 4 and {e["format"] for e in m.values()} == {"netflow_collector"}  # rotated batches
    assert all(e["exporters"] for e in m.values())
    assert col.stats.quarantined == 0


def test_restart_keeps_templates(tmp_path):
    ws = Workspace(tmp_path / "ws")
    src = synthetic_flows(300)
    pk = encode_export(src, 9, per_packet=20, template_every=1000)  # template only in the first packet
    _run(Collector(ws, [0]), pk[:1])
    col2 = Collector(ws, [0])  # a new process would load the same state file
    _run(col2, pk[1:])
    assert _store(ws).num_rows == 300 and col2.stats.quarantined == 0


def test_garbage_datagrams_are_quarantined(tmp_path):
    ws = Workspace(tmp_path / "ws")
    col = Collector(ws, [0])
    good = encode_export(synthetic_flows(10), 10)
    _run(col, [b"\x00\x0a\xff\xff" + b"x" * 30, b"hello", *good])
    assert _store(ws).num_rows == 10 and col.stats.quarantined == 2
    import pyarrow.parquet as pq2

    q = pa.concat_tables(pq2.read_table(f) for f in ws.quarantine_files())
    assert q.num_rows == 2 and all(r for r in q.column("reason").to_pylist())


def test_cli_collect_runs_and_stops(tmp_path):
    res = CliRunner().invoke(
        app, ["collect", "--netflow-port", "0", "--workspace", str(tmp_path / "ws"), "--max-seconds", "0.3"]
    )
    assert res.exit_code == 0, res.output
    assert "0 flows" in res.output


def test_cli_collect_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        res = CliRunner().invoke(
            app, ["collect", "--netflow-port", str(port), "--workspace", str(tmp_path / "ws"), "--max-seconds", "0.1"]
        )
    assert res.exit_code != 0
    assert "cannot listen" in str(res.exception) + res.output


def test_export_packets_that_never_arrive_are_counted(tmp_path):
    """Sequence gaps in the exporters' headers: v9 numbers packets, v5 numbers flows."""
    ws = Workspace(tmp_path / "ws")
    col = Collector(ws, [0])
    v9 = encode_export(synthetic_flows(900, seed=4), 9)
    v5 = encode_export(synthetic_flows(900, seed=5), 5)
    assert len(v9) > 4 and len(v5) > 4
    gone5 = int.from_bytes(v5[2][2:4], "big")  # records in the dropped v5 packet
    _run(col, v9[:2] + v9[4:] + v5[:2] + v5[3:])  # two v9 packets and one v5 packet lost on the way
    assert (col.stats.lost_packets, col.stats.lost_records) == (2, gone5)
    (entry,) = ws.manifest()["files"].values()
    (exp,) = entry["exporters"].values()
    assert (exp["lost_packets"], exp["lost_records"]) == (2, gone5)
    full = Workspace(tmp_path / "full")
    col2 = Collector(full, [0])
    _run(col2, v9 + v5)
    assert (col2.stats.lost_packets, col2.stats.lost_records) == (0, 0)
