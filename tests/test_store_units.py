"""Whole-millisecond timestamps (NetFlow, IPFIX, nfdump) are stored in ms: the same instants
come back through every reader, a part with one finer timestamp stays in µs, and compaction
and mixed stores keep every value exact."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sightline import net
from sightline.engines import get_engine
from sightline.schema import FLOW_SCHEMA
from sightline.store import FlowWriter, Workspace, compact, flows_table_from_columns, layout, read_parts, writer
from sightline.store import index as ix

DAY_US = 1_709_251_200 * 1_000_000  # 2024-03-01


def _flows(n: int, seed: int, step_us: int, jitter_us: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ts = DAY_US + np.sort(rng.integers(0, 80_000_000, n)) * step_us // 1000 * 1000
    if jitter_us:
        ts[n // 2] += jitter_us  # one timestamp finer than a millisecond
    cols = {
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "duration_s": pa.array(rng.integers(0, 60_000, n) / 1000.0),
        "src_ip": pa.array(rng.integers(0x0A000001, 0x0A0000FF, n, dtype=np.uint32)),
        "dst_ip": pa.array(rng.integers(0x2D000000, 0x2D00FFFF, n, dtype=np.uint32)),
        "src_port": pa.array(rng.integers(1024, 65535, n, dtype=np.int32)),
        "dst_port": pa.array(np.full(n, 443, np.int32)),
        "proto": pa.array(["tcp"] * n),
        "bytes_out": pa.array(rng.integers(40, 9000, n)),
        "bytes_in": pa.nulls(n, pa.int64()),
        "packets_out": pa.array(rng.integers(1, 20, n)),
        "source_format": pa.array(["netflow_v9"] * n),
    }
    return flows_table_from_columns(cols, n)


def _ingest(ws: Workspace, t: pa.Table, sha: str) -> Path:
    w = FlowWriter(ws, sha * 32, f"{sha}.nf", "netflow_v9")
    w.write(t)
    entry = w.commit(None)
    (rel,) = entry["parts"]
    return ws.root / rel


def _stored_unit(part: Path) -> str:
    return pq.read_schema(part).field("ts").type.unit


def _duck_ts(files: list[str]) -> list[int]:
    lst = ", ".join(f"'{f}'" for f in files)
    rows = duckdb.sql(f"SELECT epoch_us(ts) FROM read_parquet([{lst}]) ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def _exact(t: pa.Table) -> list[int]:
    return sorted(t.column("ts").cast(pa.int64()).to_pylist())


@pytest.fixture
def ws(tmp_path: Path, monkeypatch) -> Workspace:
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 500)
    monkeypatch.setattr(compact, "ROW_GROUP_ROWS", 500)
    w = Workspace(tmp_path / "ws")
    w.ensure()
    return w


def test_whole_ms_timestamps_are_stored_in_ms_and_read_back_exactly(ws: Workspace) -> None:
    t = _flows(3_000, 1, 1000)
    part = _ingest(ws, t, "a1")
    assert _stored_unit(part) == "ms"
    assert _duck_ts([str(part)]) == _exact(t)
    # sightline's own readers see FLOW_SCHEMA (µs), whatever the part stores
    (run,) = list(writer.read_runs([part], FLOW_SCHEMA))
    assert run.schema.field("ts").type == FLOW_SCHEMA.field("ts").type and _exact(run) == _exact(t)
    ind = ix.ips_as_indicators(pa.table({"ip4": t.column("dst_ip").slice(0, 5), "ip6": pa.nulls(5, net.IPV6_TYPE)}))
    got = ix.load_candidates(ix.candidate_row_groups(ws, [str(part)], ind), ind)
    assert got.schema.field("ts").type == FLOW_SCHEMA.field("ts").type
    want = t.filter(pa.compute.is_in(t.column("dst_ip"), value_set=t.column("dst_ip").slice(0, 5)))
    assert _exact(got) == _exact(want)


def test_one_finer_timestamp_keeps_the_part_in_microseconds(ws: Workspace) -> None:
    t = _flows(3_000, 2, 1000, jitter_us=7)
    part = _ingest(ws, t, "b2")
    assert _stored_unit(part) == "us"
    assert _duck_ts([str(part)]) == _exact(t)


def test_staged_parts_get_the_same_choice(ws: Workspace, monkeypatch) -> None:
    """A file too big for one in-memory sort run is staged, then sorted: same unit decision."""
    monkeypatch.setattr(writer, "SORT_RUN_ROWS", 1_000)
    ms, fine = _flows(3_000, 3, 1000), _flows(3_000, 4, 1000, jitter_us=1)
    p1, p2 = _ingest(ws, ms, "c3"), _ingest(ws, fine, "d4")
    assert (_stored_unit(p1), _stored_unit(p2)) == ("ms", "us")
    assert _duck_ts([str(p1)]) == _exact(ms) and _duck_ts([str(p2)]) == _exact(fine)


def test_a_store_of_both_units_reads_exactly_in_either_order(ws: Workspace) -> None:
    ms, fine = _flows(2_000, 5, 1000), _flows(2_000, 6, 1000, jitter_us=3)
    p1, p2 = _ingest(ws, ms, "e5"), _ingest(ws, fine, "f6")
    want = sorted(_exact(ms) + _exact(fine))
    assert _duck_ts([str(p1), str(p2)]) == want and _duck_ts([str(p2), str(p1)]) == want
    eng = get_engine("duckdb")
    eng.register_parquet("flows", [str(p1), str(p2)], FLOW_SCHEMA)
    got = eng.query(
        "SELECT count(*) AS n, count(DISTINCT CAST(ts AS DATE)) AS days, min(ts) AS lo, max(ts) AS hi FROM flows"
    )
    eng.close()
    assert got.column("n")[0].as_py() == 4_000
    assert got.column("lo").cast(pa.int64())[0].as_py() == want[0]
    assert got.column("hi").cast(pa.int64())[0].as_py() == want[-1]


def test_compaction_keeps_ms_only_when_every_part_is_whole_ms(ws: Workspace) -> None:
    a, b, fine = _flows(1_500, 7, 1000), _flows(1_500, 8, 1000), _flows(1_500, 9, 1000, jitter_us=11)
    _ingest(ws, a, "a7")
    _ingest(ws, b, "b8")
    res = compact.compact(ws, include_today=True, min_parts=2)
    (merged,) = ws.flow_files()
    assert res.days and _stored_unit(Path(merged)) == "ms"
    assert _duck_ts([merged]) == sorted(_exact(a) + _exact(b))
    _ingest(ws, fine, "c9")
    compact.compact(ws, include_today=True, min_parts=2)
    (merged2,) = ws.flow_files()
    assert _stored_unit(Path(merged2)) == "us"
    assert _duck_ts([merged2]) == sorted(_exact(a) + _exact(b) + _exact(fine))


def test_a_finer_timestamp_is_never_truncated_into_ms(tmp_path: Path) -> None:
    """The ms promise is checked by the writer: data that breaks it fails, it is not rounded."""
    t = _flows(100, 10, 1000, jitter_us=1)
    with pytest.raises(pa.ArrowInvalid):
        writer.write_sorted_runs([t], tmp_path / "x.parquet", FLOW_SCHEMA, 50, ts_ms=True)


def test_columns_without_any_value_are_recorded_and_reads_stay_exact(ws: Workspace) -> None:
    """A part records which columns hold no value at all; selective reads skip them and still
    return exactly the rows and values of a full read (IPv4 and IPv6 parts side by side)."""
    v4 = _flows(2_000, 11, 1000)
    p4 = _ingest(ws, v4, "aa")
    n = 600
    six = net.parse_ips(pa.array([f"2001:db8::{k % 50 + 1:x}" for k in range(n)]))
    far = net.parse_ips(pa.array([f"2001:db8:bad::{k % 7 + 1:x}" for k in range(n)]))
    v6 = flows_table_from_columns(
        {
            "ts": pa.array(DAY_US + np.arange(n, dtype=np.int64) * 1_000_003, pa.timestamp("us", tz="UTC")),
            "src_ip6": six.v6,
            "dst_ip6": far.v6,
            "src_port": pa.array(np.full(n, 40000, np.int32)),
            "dst_port": pa.array(np.full(n, 443, np.int32)),
            "bytes_out": pa.array(np.arange(n, dtype=np.int64)),
            "bytes_in": pa.array(np.arange(n, dtype=np.int64) * 3),
            "service": pa.array(["ssl"] * n),
        },
        n,
    )
    p6 = _ingest(ws, v6, "bb")
    assert {"src_ip6", "dst_ip6", "bytes_in", "service"} <= layout.null_columns(p4)
    assert not {"src_ip6", "dst_ip6", "bytes_in", "service"} & layout.null_columns(p6)
    assert {"src_ip", "dst_ip"} <= layout.null_columns(p6)
    ips = pa.table(
        {
            "ip4": pa.concat_arrays([v4.column("dst_ip").slice(0, 3).combine_chunks(), pa.nulls(2, pa.uint32())]),
            "ip6": pa.concat_arrays([pa.nulls(3, net.IPV6_TYPE), far.v6.slice(0, 2)]),
        }
    )
    ind = ix.ips_as_indicators(ips)
    parts = [str(p4), str(p6)]
    got = ix.load_candidates(ix.candidate_row_groups(ws, parts, ind), ind)
    full = pa.concat_tables([v4, v6])
    key = [("ts", "ascending"), ("bytes_out", "ascending")]
    m4 = pa.compute.is_in(full.column("dst_ip"), value_set=ips.column("ip4").drop_null())
    m6 = pa.compute.is_in(full.column("dst_ip6"), value_set=ips.column("ip6").drop_null())
    want = full.filter(pa.compute.or_(pa.compute.fill_null(m4, False), pa.compute.fill_null(m6, False)))
    assert got.num_rows == want.num_rows > 0
    assert got.sort_by(key).equals(want.cast(FLOW_SCHEMA).sort_by(key))


def test_parts_written_before_null_columns_were_recorded_read_in_full(ws: Workspace, tmp_path: Path) -> None:
    t = _flows(1_000, 12, 1000)
    old = tmp_path / "old.parquet"
    pq.write_table(t, old)
    assert layout.null_columns(old) == frozenset()


def test_one_batch_across_days_is_filed_by_day_with_nothing_lost(ws: Workspace) -> None:
    """A batch holding flows of several days, with an empty day between them, lands in one part
    per day that has flows, each with exactly that day's flows."""
    t = _flows(3_000, seed=9, step_us=1)
    day = 86_400_000_000
    shift = np.repeat(np.array([0, 1, 3], np.int64) * day, 1_000)  # days 1, 2 and 4; day 3 empty
    ts = t.column("ts").cast(pa.int64()).to_numpy() + shift
    t = t.set_column(0, "ts", pa.array(ts, pa.timestamp("us", tz="UTC")))
    w = FlowWriter(ws, "d" * 64, "days.nf", "netflow_v9")
    w.write(t)
    entry = w.commit(None)
    days = sorted(p.split("/")[1] for p in entry["parts"])
    assert days == ["day=2024-03-01", "day=2024-03-02", "day=2024-03-04"]
    for rel in entry["parts"]:
        part = pq.read_table(ws.root / rel)
        assert part.num_rows == 1_000
        got = {int(v) // day for v in part.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()}
        assert len(got) == 1
    assert _exact(read_parts([ws.root / p for p in entry["parts"]])) == sorted(ts.tolist())


def test_duration_codec_follows_the_clock(tmp_path: Path) -> None:
    """Whole-ms clocks (NetFlow) keep durations PLAIN at zstd 6, where zstd finds their patterns;
    µs clocks (Zeek, Suricata) byte-stream-split them (cheaper to encode, nearly as small)."""
    ws = Workspace(tmp_path / "ws")
    ms_part = _ingest(ws, _flows(5000, 1, step_us=1000), "a")
    us_flows = _flows(5000, 2, step_us=1000, jitter_us=7)
    us_part = _ingest(ws, us_flows, "b")
    for part, split in ((ms_part, False), (us_part, True)):
        col = pq.ParquetFile(part).metadata.row_group(0).column(1)
        assert col.path_in_schema == "duration_s"
        assert ("BYTE_STREAM_SPLIT" in col.encodings) == split
    got = sorted(pq.read_table(us_part).column("duration_s").to_pylist())
    assert got == sorted(us_flows.column("duration_s").to_pylist())  # lossless
