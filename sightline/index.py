"""Indicator index for retro-hunts: which row groups of which flow parts hold an IP.

New intelligence must be checked against months of stored flows.  A full scan decodes every
row; with this index a hunt reads only the row groups that can hold an indicator's flows.

Layout: one small parquet file per flow part under ``<workspace>/index/``, holding the sorted
distinct (IP, row group) pairs of the part (source and destination addresses; IPv4 rows
first, then IPv6 rows).  Its metadata records the part's size, mtime and row-group count; an
index that does not match its part (crash mid-ingest, part rewritten, index missing) is
rebuilt from the part on first use, so the index can never make a hunt miss a flow.

Public API::

    build_part_index(ws, part) -> Path
    ensure_index(ws, parts) -> int                  # (re)build missing / stale ones
    candidate_row_groups(ws, parts, indicators) -> dict[str, list[int]]
    load_candidates(selection, indicators) -> pa.Table   # FLOW_SCHEMA, pre-filtered rows
    prune_orphans(ws) -> int
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .net import IPV6_TYPE
from .schema import FLOW_SCHEMA
from .workspace import Workspace, atomic_write_parquet

log = logging.getLogger("sightline.index")

INDEX_VERSION = "1"
_IDX_SCHEMA = pa.schema([pa.field("ip4", pa.uint32()), pa.field("ip6", IPV6_TYPE), pa.field("rg", pa.int32())])


def index_dir(ws: Workspace) -> Path:
    return ws.root / "index"


def index_path(ws: Workspace, part: str | Path) -> Path:
    """Where the index of ``part`` lives (outside ``flows/``, which orphan cleanup owns)."""
    p = Path(part).resolve()
    try:
        rel = p.relative_to(ws.root.resolve())
        name = str(rel).replace(os.sep, "__")
    except ValueError:
        name = hashlib.sha256(str(p).encode()).hexdigest()[:32]
    return index_dir(ws) / (name + ".idx.parquet")


def _stamp(part: Path) -> dict[str, str]:
    st = part.stat()
    return {"version": INDEX_VERSION, "part_size": str(st.st_size), "part_mtime_ns": str(st.st_mtime_ns)}


def _is_current(idx: Path, part: Path) -> bool:
    try:
        meta = pq.read_schema(idx).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    want = _stamp(part)
    return all(meta.get(k.encode()) == v.encode() for k, v in want.items())


def _distinct_pairs(values: list[np.ndarray], rg: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.unique(np.concatenate(values)) if values else np.empty(0)
    return v, np.full(len(v), rg, np.int32)


def build_part_index(ws: Workspace, part: str | Path) -> Path:
    """Build (or rebuild) the index of one flow part, atomically; return its path."""
    part = Path(part)
    stamp = _stamp(part)
    pf = pq.ParquetFile(part)
    ip4s, rg4s, ip6s, rg6s = [], [], [], []
    for rg in range(pf.num_row_groups):
        t = pf.read_row_group(rg, columns=["src_ip", "dst_ip", "src_ip6", "dst_ip6"])
        v4 = [pc.drop_null(t.column(c)).to_numpy().astype(np.uint32) for c in ("src_ip", "dst_ip")]
        a, r = _distinct_pairs([x for x in v4 if len(x)], rg)
        ip4s.append(a.astype(np.uint32))
        rg4s.append(r)
        v6 = []
        for name in ("src_ip6", "dst_ip6"):
            col = pc.drop_null(t.column(name)).combine_chunks()
            if len(col):
                v6.append(np.frombuffer(col.buffers()[1], dtype="S16", count=len(col), offset=col.offset * 16)
                          if pa.types.is_fixed_size_binary(col.type)
                          else np.array(col.to_pylist(), dtype="S16"))
        b, r6 = _distinct_pairs(v6, rg)
        ip6s.append(b.astype("S16"))
        rg6s.append(r6)
    ip4 = np.concatenate(ip4s) if ip4s else np.empty(0, np.uint32)
    rg4 = np.concatenate(rg4s) if rg4s else np.empty(0, np.int32)
    o = np.lexsort((rg4, ip4))
    ip6 = np.concatenate(ip6s) if ip6s else np.empty(0, "S16")
    rg6 = np.concatenate(rg6s) if rg6s else np.empty(0, np.int32)
    o6 = np.argsort(ip6, kind="stable")
    n4, n6 = len(ip4), len(ip6)
    ip6_arr = pa.FixedSizeBinaryArray.from_buffers(IPV6_TYPE, n6, [None, pa.py_buffer(ip6[o6].tobytes())])
    table = pa.table({
        "ip4": pa.concat_arrays([pa.array(ip4[o], pa.uint32()), pa.nulls(n6, pa.uint32())]),
        "ip6": pa.concat_arrays([pa.nulls(n4, IPV6_TYPE), ip6_arr]),
        "rg": pa.array(np.concatenate([rg4[o], rg6[o6]]), pa.int32()),
    }, schema=_IDX_SCHEMA.with_metadata({**stamp, "num_row_groups": str(pf.num_row_groups),
                                          "v4_rows": str(n4)}))
    out = index_path(ws, part)
    atomic_write_parquet(out, table)
    return out


def ensure_index(ws: Workspace, parts: list[str]) -> int:
    """Build the index of every part that has none or a stale one; return how many were built."""
    built = 0
    for p in parts:
        if not _is_current(index_path(ws, p), Path(p)):
            build_part_index(ws, p)
            built += 1
    return built


def _read_index(ws: Workspace, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    idx = index_path(ws, part)
    if not _is_current(idx, Path(part)):
        log.info("index of %s missing or stale: rebuilding", part)
        build_part_index(ws, part)
    t = pq.read_table(idx)
    meta = t.schema.metadata
    n4 = int(meta[b"v4_rows"])
    rg = t.column("rg").to_numpy()
    ip4 = t.column("ip4").slice(0, n4).to_numpy(zero_copy_only=False).astype(np.uint32)
    c6 = t.column("ip6").slice(n4).combine_chunks()
    ip6 = (np.frombuffer(c6.buffers()[1], dtype="S16", count=len(c6), offset=c6.offset * 16)
           if len(c6) else np.empty(0, "S16"))
    return ip4, rg[:n4], ip6, rg[n4:], int(meta[b"num_row_groups"])


def _ranges(indicators: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merged, sorted [start, end] ranges of the live IP indicators (IPv4 as uint32, IPv6 as S16)."""
    if indicators.num_rows == 0:
        e4, e6 = np.empty(0, np.uint32), np.empty(0, "S16")
        return e4, e4, e6, e6
    live = pc.and_(pc.is_in(indicators.column("type"), pa.array(["ipv4", "ipv6"])),
                   pc.invert(pc.fill_null(indicators.column("revoked"), False))
                   if "revoked" in indicators.column_names else pa.array([True] * indicators.num_rows))
    ind = indicators.filter(live)
    m4 = pc.and_(pc.is_valid(ind.column("ip_start4")), pc.is_valid(ind.column("ip_end4")))
    s4 = ind.column("ip_start4").filter(m4).to_numpy().astype(np.uint32)
    e4 = ind.column("ip_end4").filter(m4).to_numpy().astype(np.uint32)
    m6 = pc.and_(pc.is_valid(ind.column("ip_start6")), pc.is_valid(ind.column("ip_end6")))
    s6 = np.array(ind.column("ip_start6").filter(m6).to_pylist(), dtype="S16")
    e6 = np.array(ind.column("ip_end6").filter(m6).to_pylist(), dtype="S16")
    return (*_merge(s4, e4), *_merge(s6, e6))


def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(starts) == 0:
        return starts, ends
    o = np.argsort(starts, kind="stable")
    s, e = starts[o], ends[o]
    # running max of ends tells where a new disjoint range begins
    run = np.maximum.accumulate(e) if e.dtype.kind != "S" else np.array(_accumulate_max(list(e)), dtype="S16")
    new = np.ones(len(s), bool)
    new[1:] = s[1:] > run[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(s) - 1)
    return s[first], run[last]


def _accumulate_max(vals: list[bytes]) -> list[bytes]:
    out, cur = [], b""
    for v in vals:  # IPv6 indicator ranges: thousands at most, not per flow
        cur = max(cur, v)
        out.append(cur)
    return out


def _hits(sorted_vals: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Boolean mask over ``sorted_vals``: inside any of the disjoint sorted ranges."""
    if len(starts) == 0 or len(sorted_vals) == 0:
        return np.zeros(len(sorted_vals), bool)
    lo = np.searchsorted(sorted_vals, starts, side="left")
    hi = np.searchsorted(sorted_vals, ends, side="right")
    d = np.zeros(len(sorted_vals) + 1, np.int64)
    np.add.at(d, lo, 1)
    np.add.at(d, hi, -1)
    return np.cumsum(d[:-1]) > 0


def _member(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Boolean mask: each value inside one of the disjoint sorted ranges (any order of values)."""
    if len(starts) == 0 or len(values) == 0:
        return np.zeros(len(values), bool)
    i = np.searchsorted(starts, values, side="right") - 1
    ok = i >= 0
    out = np.zeros(len(values), bool)
    out[ok] = values[ok] <= ends[i[ok]]
    return out


def candidate_row_groups(ws: Workspace, parts: list[str], indicators: pa.Table) -> dict[str, list[int]]:
    """Row groups, per part, that hold at least one flow to or from an indicator IP.

    Parts absent from the result hold none.  Stale or missing part indexes are rebuilt.
    """
    s4, e4, s6, e6 = _ranges(indicators)
    out: dict[str, list[int]] = {}
    for p in parts:
        ip4, rg4, ip6, rg6, _ = _read_index(ws, p)
        rgs = np.union1d(rg4[_hits(ip4, s4, e4)], rg6[_hits(ip6, s6, e6)])
        if len(rgs):
            out[p] = rgs.astype(int).tolist()
    return out


def total_row_groups(parts: list[str]) -> int:
    return sum(pq.ParquetFile(p).metadata.num_row_groups for p in parts)


def _col_v4(t: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    c = t.column(name)
    return pc.fill_null(c, 0).to_numpy().astype(np.uint32), pc.is_valid(c).to_numpy(zero_copy_only=False)


def _col_v6(t: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    c = t.column(name).combine_chunks()
    valid = pc.is_valid(c).to_numpy(zero_copy_only=False)
    filled = pc.fill_null(c, pa.scalar(b"\x00" * 16, IPV6_TYPE)).combine_chunks() if c.null_count else c
    if len(filled) == 0:
        return np.empty(0, "S16"), valid
    v = np.frombuffer(filled.buffers()[1], dtype="S16", count=len(filled), offset=filled.offset * 16)
    return v, valid


def load_candidates(selection: dict[str, list[int]], indicators: pa.Table) -> pa.Table:
    """Read the selected row groups and keep the rows whose source or destination is an indicator.

    The result is a superset of what the detection SQL matches (ports and validity windows are
    still checked there), so detecting on it gives the same findings as on the whole store.
    """
    s4, e4, s6, e6 = _ranges(indicators)
    pieces = []
    for part, rgs in sorted(selection.items()):
        t = pq.ParquetFile(part).read_row_groups(rgs)
        keep = np.zeros(t.num_rows, bool)
        for name in ("src_ip", "dst_ip"):
            v, ok = _col_v4(t, name)
            keep |= ok & _member(v, s4, e4)
        if len(s6):
            for name in ("src_ip6", "dst_ip6"):
                v, ok = _col_v6(t, name)
                keep |= ok & _member(v, s6, e6)
        pieces.append(t.filter(pa.array(keep)).cast(FLOW_SCHEMA))
    return pa.concat_tables(pieces) if pieces else FLOW_SCHEMA.empty_table()


def prune_orphans(ws: Workspace) -> int:
    """Remove index files whose part is no longer in the store."""
    keep = {index_path(ws, p).name for p in ws.flow_files()}
    removed = 0
    d = index_dir(ws)
    if d.exists():
        for f in d.glob("*.idx.parquet"):
            if f.name not in keep:
                f.unlink()
                removed += 1
    return removed


__all__ = [
    "INDEX_VERSION",
    "build_part_index",
    "candidate_row_groups",
    "ensure_index",
    "index_path",
    "load_candidates",
    "prune_orphans",
    "total_row_groups",
]
