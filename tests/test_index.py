"""Indicator index: a retro-hunt reads only the row groups that can match, with the same findings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sightline import net, pipeline
from sightline.engines.duckdb import DuckDBEngine
from sightline.pipeline import detect_workspace, hunt
from sightline.store import FlowWriter, Workspace, flows_table_from_columns, layout, writer
from sightline.store import index as ix

from .test_hunt_e2e import C2, DAY, scenario

VOLATILE = ("generated_at", "run_id", "engine", "workspace_state")


def _stable(doc: dict) -> str:
    return json.dumps({k: v for k, v in doc.items() if k not in VOLATILE}, sort_keys=True)


def _history(ws: Workspace, n: int, seed: int, sha: str, planted: list[tuple[int, str, str]] = ()) -> None:
    """Background flows (random internal host -> random internet IP), plus planted rows at given positions."""
    rng = np.random.default_rng(seed)
    src = rng.integers(
        int(net.parse_ips(pa.array(["203.0.113.1"])).v4[0].as_py()),
        int(net.parse_ips(pa.array(["203.0.113.60"])).v4[0].as_py()),
        n,
        dtype=np.uint32,
    )
    dst = rng.integers(0x5DB80000, 0x5DB8FFFF, n, dtype=np.uint32)  # 93.184.0.0/16
    ts = (DAY + np.sort(rng.uniform(0, 80_000, n))) * 1e6
    dport = np.full(n, 443, np.int32)
    for pos, s, d in planted:
        src[pos] = net.parse_ips(pa.array([s])).v4[0].as_py()
        dst[pos] = net.parse_ips(pa.array([d])).v4[0].as_py()
    cols = {
        "ts": pa.array(ts.astype(np.int64), pa.timestamp("us", tz="UTC")),
        "duration_s": pa.array(np.full(n, 2.0)),
        "src_ip": pa.array(src, pa.uint32()),
        "dst_ip": pa.array(dst, pa.uint32()),
        "src_port": pa.array(rng.integers(30000, 60000, n, dtype=np.int32)),
        "dst_port": pa.array(dport),
        "proto": pa.array(["tcp"] * n),
        "bytes_out": pa.array(np.full(n, 500, np.int64)),
        "bytes_in": pa.array(np.full(n, 1800, np.int64)),
        "packets_out": pa.array(np.full(n, 4, np.int64)),
        "packets_in": pa.array(np.full(n, 4, np.int64)),
        "conn_state": pa.array(["SF"] * n),
        "source_format": pa.array(["zeek_tsv"] * n),
    }
    w = FlowWriter(ws, sha, f"history-{seed}.log", "zeek_tsv")
    table = flows_table_from_columns(cols, n)
    for off in range(0, n, 2_000):  # readers hand over batches; each flush becomes a row group
        w.write(table.slice(off, 2_000))
    w.commit(None)


@pytest.fixture
def store_ws(tmp_path: Path, monkeypatch) -> tuple[Workspace, dict[str, Path]]:
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 2_000)  # many row groups from a small history
    files = scenario(tmp_path)
    ws = Workspace(tmp_path / "ws")
    hunt(ws, intel=[files["intel"]], orgs_csv=files["orgs"])
    # 30 beacons to C2 hidden at the end of a 60k-flow history: one row group holds them
    planted = [(59_500 + 10 * k, "203.0.113.7", C2) for k in range(30)]
    _history(ws, 60_000, 1, "11" * 32, planted)
    _history(ws, 20_000, 2, "22" * 32)
    return ws, files


def test_index_selects_only_matching_row_groups(store_ws) -> None:
    ws, _ = store_ws
    parts = ws.flow_files()
    indicators = pa.table(
        {
            "type": ["ipv4"],
            "value": [C2],
            "ip_start4": net.parse_ips(pa.array([C2])).v4,
            "ip_end4": net.parse_ips(pa.array([C2])).v4,
            "ip_start6": pa.nulls(1, net.IPV6_TYPE),
            "ip_end6": pa.nulls(1, net.IPV6_TYPE),
            "revoked": [False],
        }
    )
    sel = ix.candidate_row_groups(ws, parts, indicators)
    assert layout.total_row_groups(parts) >= 40
    assert len(sel) == 1 and sum(len(v) for v in sel.values()) == 1  # one part, one row group
    rows = ix.load_candidates(sel, indicators)
    assert rows.num_rows == 30


def test_same_findings_with_and_without_index(store_ws) -> None:
    ws, _ = store_ws
    full = detect_workspace(ws, index="off").to_dict()
    indexed = detect_workspace(ws, index="on").to_dict()
    assert full["inputs"]["matched_flows"] == 30
    hosts = {h["ip"] for o in full["organizations"] for h in o["hosts"]}
    assert "203.0.113.7" in hosts
    assert _stable(indexed) == _stable(full)


def test_same_findings_on_the_e2e_scenario(tmp_path: Path) -> None:
    """IPv4 + IPv6 + a CIDR indicator + out-of-window matches: the index changes nothing."""
    files = scenario(tmp_path)
    ws = Workspace(tmp_path / "ws")
    hunt(ws, telemetry=[files["conn"], files["conn6"]], intel=[files["intel"]], orgs_csv=files["orgs"])
    full = detect_workspace(ws, index="off").to_dict()
    indexed = detect_workspace(ws, index="on").to_dict()
    assert full["organizations"] and full.get("stale_matches")
    assert _stable(indexed) == _stable(full)


def test_stale_or_missing_index_is_rebuilt(store_ws) -> None:
    ws, _ = store_ws
    parts = ws.flow_files()
    full = detect_workspace(ws, index="off").to_dict()
    # a crash between writing a part and its index: the index is missing
    ix.index_path(ws, parts[0]).unlink()
    # a part rewritten after its index was built (e.g. re-ingest after a crash): the index is stale
    t = pq.read_table(parts[1])
    shutil.copy(parts[1], parts[1] + ".bak")
    pq.write_table(t, parts[1], row_group_size=500)
    # a torn index file
    assert ix.ensure_index(ws, parts) == 2
    ix.index_path(ws, parts[1]).write_bytes(b"PAR1 torn")
    again = detect_workspace(ws, index="on").to_dict()
    assert _stable(again) == _stable(full)
    assert all(ix.index_path(ws, p).exists() for p in parts)
    assert ix.ensure_index(ws, parts) == 0  # everything consistent again


def test_interrupted_ingest_leaves_a_consistent_index(store_ws) -> None:
    ws, _ = store_ws
    before = detect_workspace(ws, index="off").to_dict()
    w = FlowWriter(ws, "33" * 32, "crashed.log", "zeek_tsv")
    w.write(pq.read_table(ws.flow_files()[0]).slice(0, 5000))
    w.abort()  # the process died before commit: nothing reached the manifest
    with ws.lock():
        ws.cleanup_orphans()
    assert ix.prune_orphans(ws) == 0
    after = detect_workspace(ws, index="on").to_dict()
    assert _stable(after) == _stable(before)


def test_index_failure_falls_back_to_full_scan(store_ws, monkeypatch) -> None:
    ws, _ = store_ws
    full = detect_workspace(ws, index="off").to_dict()

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ix, "candidate_row_groups", broken)
    assert _stable(detect_workspace(ws, index="on").to_dict()) == _stable(full)


def _flows(rows: list[tuple[float, str, str, int, int, int]]) -> pa.Table:
    """(ts, src, dst, dst_port, bytes_out, bytes_in) -> a FLOW_SCHEMA table of completed TCP sessions."""
    n = len(rows)
    ts, src, dst, port, ob, ib = (list(c) for c in zip(*rows))
    cols = {
        "ts": pa.array((np.array(ts) * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC")),
        "duration_s": pa.array(np.full(n, 1.5)),
        "src_ip": net.parse_ips(pa.array(src)).v4,
        "dst_ip": net.parse_ips(pa.array(dst)).v4,
        "src_port": pa.array(np.full(n, 40000, np.int32)),
        "dst_port": pa.array(np.array(port, np.int32)),
        "proto": pa.array(["tcp"] * n),
        "bytes_out": pa.array(np.array(ob, np.int64)),
        "bytes_in": pa.array(np.array(ib, np.int64)),
        "packets_out": pa.array(np.full(n, 8, np.int64)),
        "packets_in": pa.array(np.full(n, 8, np.int64)),
        "conn_state": pa.array(["SF"] * n),
        "source_format": pa.array(["zeek_tsv"] * n),
    }
    return flows_table_from_columns(cols, n)


def test_index_keeps_what_needs_the_whole_history(tmp_path: Path, monkeypatch) -> None:
    """Two findings read flows that are not to or from an indicator: exfiltration judged
    against the host's usual volume (all its flows), and suspected infrastructure (what
    compromised hosts also talk to).  A retro-hunt through the index finds both."""
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 2_000)
    files = scenario(tmp_path)
    ws = Workspace(tmp_path / "ws")
    hunt(ws, intel=[files["intel"]], orgs_csv=files["orgs"])
    _history(ws, 60_000, 3, "33" * 32)
    rng = np.random.default_rng(5)
    other = "198.51.100.99"  # not in the intel
    rows = []
    for host in ("203.0.113.30", "203.0.113.31", "203.0.113.32"):  # beacons: to C2 and to the unlisted server
        rows += [(DAY + 3 * 86400 + k * 600 + rng.uniform(-5, 5), host, C2, 443, 700, 2100) for k in range(60)]
        rows += [(DAY + 3 * 86400 + k * 900 + rng.uniform(-5, 5), host, other, 8443, 900, 1500) for k in range(40)]
    quiet = "203.0.113.40"  # sends ~150 kB a day for five days, then 8 MB to C2 once
    for d in range(5):
        rows += [(DAY + d * 86400 + 600 * k, quiet, f"93.184.{d}.{k + 1}", 443, 3000, 20000) for k in range(50)]
    rows.append((DAY + 4 * 86400 + 40_000, quiet, C2, 443, 8_000_000, 20_000))
    w = FlowWriter(ws, "44" * 32, "planted.log", "zeek_tsv")
    w.write(_flows(rows))
    w.commit(None)

    full = detect_workspace(ws, index="off").to_dict()
    indexed = detect_workspace(ws, index="on").to_dict()
    behaviours = {(h["ip"], e["behaviour"]) for o in full["organizations"] for h in o["hosts"] for e in h["evidence"]}
    assert (quiet, "exfiltration") in behaviours
    assert other in {s["ip"] for s in full["suspected_infrastructure"]}
    assert _stable(indexed) == _stable(full)


def test_part_indexes_are_read_once_per_version(store_ws, monkeypatch) -> None:
    """A hunt looks addresses up several times (indicators, then pivoting): each part's index
    is read from disk once, again only when it was rebuilt, and never beyond the memory budget."""
    ws, _ = store_ws
    parts = ws.flow_files()
    ix._INDEX_CACHE.clear()
    reads: list[str] = []
    real = ix._load_index
    monkeypatch.setattr(ix, "_load_index", lambda p: (reads.append(str(p)), real(p))[1])
    ind = ix.ips_as_indicators(pa.table({"ip4": net.parse_ips(pa.array([C2])).v4, "ip6": pa.nulls(1, net.IPV6_TYPE)}))
    first = ix.candidate_row_groups(ws, parts, ind)
    assert ix.candidate_row_groups(ws, parts, ind) == first
    assert sorted(reads) == sorted(str(ix.index_path(ws, p)) for p in parts)
    ix.build_part_index(ws, parts[0])  # rebuilt: a new version of the file
    assert ix.candidate_row_groups(ws, parts, ind) == first
    assert len(reads) == len(parts) + 1
    monkeypatch.setattr(ix, "INDEX_CACHE_BYTES", 0)
    ix._INDEX_CACHE.clear()
    ix.candidate_row_groups(ws, parts, ind)
    ix.candidate_row_groups(ws, parts, ind)
    assert len(reads) == 3 * len(parts) + 1 and not ix._INDEX_CACHE


def test_committed_parts_use_the_per_column_layout(store_ws) -> None:
    """Codecs and encodings chosen per column (see index.part_write_options) reach the parts,
    and a part reads back the same through pyarrow and DuckDB."""
    ws, _ = store_ws
    part = ws.flow_files()[-1]
    md = pq.ParquetFile(part).metadata
    col = {md.row_group(0).column(j).path_in_schema: md.row_group(0).column(j) for j in range(md.num_columns)}
    assert col["src_ip"].compression == "ZSTD" and col["bytes_out"].compression == "ZSTD"
    assert col["ts"].compression == "LZ4" and "DELTA_BINARY_PACKED" in col["ts"].encodings
    assert "BYTE_STREAM_SPLIT" in col["bytes_in"].encodings and "BYTE_STREAM_SPLIT" in col["src_port"].encodings
    # µs clocks (these flows): durations byte-stream-split; whole-ms clocks (NetFlow) keep them PLAIN
    us_clock = pq.ParquetFile(part).schema_arrow.field("ts").type.unit == "us"
    assert col["duration_s"].compression == "ZSTD"
    assert ("BYTE_STREAM_SPLIT" in col["duration_s"].encodings) == us_clock
    assert col["dst_ip"].has_dictionary_page and col["proto"].has_dictionary_page
    assert col["bytes_out"].is_stats_set and not col["proto"].is_stats_set
    import duckdb

    t = pq.read_table(part)
    got = duckdb.sql(
        f"SELECT sum(bytes_out), sum(bytes_in), sum(packets_out), count(*) FROM read_parquet('{part}')"
    ).fetchall()[0]
    assert got == (
        pa.compute.sum(t["bytes_out"]).as_py(),
        pa.compute.sum(t["bytes_in"]).as_py(),
        pa.compute.sum(t["packets_out"]).as_py(),
        t.num_rows,
    )


def test_index_reads_decode_every_column_the_match_reads() -> None:
    """Candidate flows from the index carry only MATCH_COLUMNS; the match must read nothing else
    of the flows (a column added to the SQL but not to the list would be null in retro-hunts)."""
    sqlglot = pytest.importorskip("sqlglot")
    from sightline.detect import sql
    from sightline.schema import FLOW_SCHEMA

    kinds = {(f, k) for f in ("4", "6") for k in ("exact", "range")}
    tree = sqlglot.parse_one(sql.match_sql(kinds), read="duckdb")
    read = {c.name for c in tree.find_all(sqlglot.exp.Column) if c.table == "f"}
    assert read and read <= set(sql.MATCH_COLUMNS) <= set(FLOW_SCHEMA.names)
    assert set(sql.MATCH_COLUMNS) - read == set()


class _ClusterLikeEngine(DuckDBEngine):
    """DuckDB standing in for an engine whose work runs in other processes (Spark executors):
    callers must hand it files and small tables, and let it read the index and the flows."""

    in_process = False


def _driver_reads_forbidden(monkeypatch) -> None:
    def forbidden(*a, **k):
        raise AssertionError("flows or index rows read in the driver")

    monkeypatch.setattr(ix, "load_candidates", forbidden)
    monkeypatch.setattr(ix, "_load_index", forbidden)


def _same_findings_through_the_engine(ws: Workspace, monkeypatch) -> None:
    full = detect_workspace(ws, index="off").to_dict()
    assert full["organizations"]
    _driver_reads_forbidden(monkeypatch)
    monkeypatch.setattr(pipeline, "get_engine", lambda name, **kw: _ClusterLikeEngine())
    indexed = detect_workspace(ws, index="on").to_dict()
    assert _stable(indexed) == _stable(full)


def test_an_engine_elsewhere_reads_the_index_and_candidates_itself(store_ws, monkeypatch) -> None:
    """Through the engine (index files and flows read with the address filter by the engine, not
    in this process) the indexed hunt finds what the full scan finds, baselines included."""
    ws, _ = store_ws
    _same_findings_through_the_engine(ws, monkeypatch)


def test_an_engine_elsewhere_handles_ipv6_cidrs_and_stale_matches(tmp_path: Path, monkeypatch) -> None:
    files = scenario(tmp_path)
    with open(files["intel"], "a") as fh:  # a range whose bounds end in zero bytes
        fh.write("2001:db8:bad::/48,cidr,RedJuliett,,,75,amber\n")
    ws = Workspace(tmp_path / "ws")
    hunt(ws, telemetry=[files["conn"], files["conn6"]], intel=[files["intel"]], orgs_csv=files["orgs"])
    _same_findings_through_the_engine(ws, monkeypatch)


def test_engine_selects_only_the_parts_holding_an_indicator(store_ws) -> None:
    ws, _ = store_ws
    parts = ws.flow_files()
    c2 = net.parse_ips(pa.array([C2])).v4
    ind = ix.ips_as_indicators(pa.table({"ip4": c2, "ip6": pa.nulls(1, net.IPV6_TYPE)}))
    eng = _ClusterLikeEngine()
    try:
        chosen = ix.engine_candidate_parts(eng, ws, parts, ix.ranges_table(ind))
        assert len(parts) == 2 and chosen == [p for p in parts if "1111" in Path(p).name]  # the beacons' part
        assert ix.register_rows_of(eng, ws, parts, "c2_flows", ind, "on")
        assert eng.query("SELECT count(*) FROM c2_flows").column(0)[0].as_py() == 30
    finally:
        eng.close()


def test_index_taken_while_writing_is_the_index_of_the_part(tmp_path: Path) -> None:
    """Ingest takes a part's (address, row group) pairs as it writes the part, instead of reading
    it back: the index is the one built from the part, over several sort runs, IPv6 and nulls."""
    from sightline.schema import FLOW_SCHEMA

    rng = np.random.default_rng(5)

    def run(n: int) -> pa.Table:
        is6 = np.arange(n) % 13 == 0  # every 13th flow goes to an IPv6 address
        v6 = [bytes([0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [i % 7]) if is6[i] else None for i in range(n)]
        dst = rng.choice(rng.integers(0x2D000000, 0x2D00FFFF, 400, dtype=np.uint32), n)
        cols = {
            "ts": pa.array(int(DAY) * 1_000_000 + np.arange(n) * 1000, pa.timestamp("us", tz="UTC")),
            "src_ip": pa.array(rng.integers(0x0A000001, 0x0A0000FF, n, dtype=np.uint32), mask=rng.random(n) < 0.01),
            "dst_ip": pa.array(dst, pa.uint32(), mask=is6),
            "dst_ip6": pa.array(v6, net.IPV6_TYPE),
            "src_port": pa.array(rng.integers(1024, 65535, n, dtype=np.int32)),
        }
        return flows_table_from_columns(cols, n)

    ws = Workspace(tmp_path / "ws")
    ws.ensure()
    part = tmp_path / "part.parquet"
    taken = ix.IndexBuilder()
    rows = writer.write_sorted_runs([run(5500), run(3333)], part, FLOW_SCHEMA, 256, index=taken)
    assert rows == 8833 and not taken.failed
    a = pq.read_table(taken.write(ws, part, tmp_path / "taken.idx.parquet"))
    b = pq.read_table(ix.build_part_index(ws, part, tmp_path / "read.idx.parquet"))
    assert a.num_rows > 100 and a.column("ip6").null_count < a.num_rows  # both families indexed
    assert a.equals(b) and a.schema.metadata == b.schema.metadata
