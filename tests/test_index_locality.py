"""Locality layout of committed flow parts: a rare address's flows sit in few row groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sightline.schema import FLOW_SCHEMA
from sightline.store import flows_table_from_columns, writer
from sightline.store import index as ix

RARE = 0x2D000001  # 45.0.0.1: 40 flows, both directions
DAY_US = 1_709_251_200_000_000


def _flows(n: int, seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)
    host = (0x0A000000 + rng.integers(1, 200, n)).astype(np.uint32)  # few busy internal hosts
    ext = (0x5DB80000 + rng.integers(0, 1 << 16, n)).astype(np.uint32)
    pos = rng.choice(n, 40, replace=False)
    ext[pos] = RARE
    inbound = np.zeros(n, bool)
    inbound[pos[:15]] = True  # the rare address is the source of 15 of its flows
    src, dst = np.where(inbound, ext, host), np.where(inbound, host, ext)
    cols = {
        "ts": pa.array(DAY_US + np.arange(n, dtype=np.int64) * 1000, pa.timestamp("us", tz="UTC")),
        "src_ip": pa.array(src, pa.uint32()),
        "dst_ip": pa.array(dst, pa.uint32()),
        "src_port": pa.array(rng.integers(1024, 65535, n, dtype=np.int32)),
        "dst_port": pa.array(np.full(n, 443, np.int32)),
        "proto": pa.array(["tcp"] * n),
        "duration_s": pa.array(rng.exponential(3.0, n)),
        "bytes_out": pa.array(rng.integers(0, 9000, n)),
    }
    return flows_table_from_columns(cols, n)


def _staged(tmp_path: Path, t: pa.Table) -> Path:
    p = tmp_path / "staged.parquet"
    pq.write_table(t, p, row_group_size=5_000)
    return p


def _rows(path: Path) -> list[tuple]:
    t = pq.read_table(path, columns=["ts", "src_ip", "dst_ip", "src_port", "bytes_out"])
    return sorted(zip(*(t.column(c).to_pylist() for c in t.column_names)))


def test_sorted_part_keeps_every_row_and_clusters_the_rare_address(tmp_path: Path) -> None:
    t = _flows(60_000)
    out = tmp_path / "part.parquet"
    assert writer.write_locality_sorted(_staged(tmp_path, t), out, FLOW_SCHEMA, 1_000) == 60_000
    assert _rows(out) == _rows(tmp_path / "staged.parquet")
    got = pq.read_table(out, columns=["src_ip", "dst_ip"])
    rare = np.flatnonzero((got.column("src_ip").to_numpy() == RARE) | (got.column("dst_ip").to_numpy() == RARE))
    assert len(rare) == 40
    assert rare[-1] - rare[0] == 39  # contiguous, inbound and outbound alike
    assert len(set(rare // 1_000)) <= 2  # so in one or two of the 60 row groups
    assert pq.ParquetFile(out).metadata.num_row_groups == 60


def test_bounded_runs_cost_locality_not_rows(tmp_path: Path) -> None:
    t = _flows(60_000)
    out = tmp_path / "part.parquet"
    writer.write_locality_sorted(_staged(tmp_path, t), out, FLOW_SCHEMA, 1_000, run_rows=20_000)
    assert _rows(out) == _rows(tmp_path / "staged.parquet")
    got = pq.read_table(out, columns=["src_ip", "dst_ip"])
    rare = np.flatnonzero((got.column("src_ip").to_numpy() == RARE) | (got.column("dst_ip").to_numpy() == RARE))
    assert len(rare) == 40 and len(set(rare // 1_000)) <= 6  # at most two row groups per 20k-row run


def test_everywhere_addresses_are_stored_once(tmp_path: Path) -> None:
    from sightline.store import Workspace

    ws = Workspace(tmp_path / "ws")
    ws.ensure()
    part = ws.root / "flows" / "day=2024-03-01" / "x.parquet"
    part.parent.mkdir(parents=True)
    writer.write_locality_sorted(_staged(tmp_path, _flows(60_000)), part, FLOW_SCHEMA, 1_000)
    idx = pq.read_table(ix.build_part_index(ws, part))
    ip4 = idx.column("ip4").to_numpy(zero_copy_only=False)
    rg = idx.column("rg").to_numpy()
    busy_host = 0x0A000000 + 7  # ~300 flows spread over the part
    assert rg[ip4 == busy_host].tolist() == [-1]
    assert 1 <= len(rg[ip4 == RARE]) <= 2 and (rg[ip4 == RARE] >= 0).all()
    ind = pa.table(
        {
            "type": ["ipv4"],
            "ip_start4": pa.array([busy_host], pa.uint32()),
            "ip_end4": pa.array([busy_host], pa.uint32()),
            "revoked": [False],
            "ip_start6": pa.nulls(1, pa.binary(16)),
            "ip_end6": pa.nulls(1, pa.binary(16)),
        }
    )
    sel = ix.candidate_row_groups(ws, [str(part)], ind)
    assert sel[str(part)] == list(range(60))  # "everywhere" means every row group is read


def test_ingest_sorts_in_memory_or_through_staged_runs_with_the_same_rows(tmp_path: Path, monkeypatch) -> None:
    """A file whose rows fit one sort run is sorted straight from memory; a bigger one spills to
    staged files and is sorted run by run.  Either way every row lands, each day in one part."""
    from sightline.store import Workspace

    t = _flows(60_000)
    # a second day: the writer files rows by day
    t2 = t.set_column(
        0,
        "ts",
        pa.array(DAY_US + 86_400_000_000 + np.arange(t.num_rows, dtype=np.int64) * 1000, pa.timestamp("us", tz="UTC")),
    )

    def ingest(root: Path) -> tuple[Workspace, list[list[str]]]:
        ws = Workspace(root)
        ws.ensure()
        w = writer.FlowWriter(ws, "ab" * 32, "f.log", "zeek_tsv")
        staged = []
        for off in range(0, t.num_rows, 5_000):
            w.write(t.slice(off, 5_000))
            w.write(t2.slice(off, 5_000))
            staged.append(sorted(p.name for p in w.stage.glob("*.parquet")))
        w.commit(None)
        return ws, staged

    mem, staged_mem = ingest(tmp_path / "mem")
    assert all(s == [] for s in staged_mem)  # nothing written before commit
    monkeypatch.setattr(writer, "SORT_RUN_ROWS", 20_000)
    spill, staged_spill = ingest(tmp_path / "spill")
    assert staged_spill[-1] == ["day=2024-03-01.parquet", "day=2024-03-02.parquet"]
    for a, b in zip(mem.flow_files(), spill.flow_files()):
        assert _rows(Path(a)) == _rows(Path(b))
    assert len(mem.flow_files()) == 2
    part = Path(mem.flow_files()[0])
    got = pq.read_table(part, columns=["src_ip", "dst_ip"])
    rare = np.flatnonzero((got.column("src_ip").to_numpy() == RARE) | (got.column("dst_ip").to_numpy() == RARE))
    assert rare[-1] - rare[0] == 39  # one run: the rare address is contiguous
