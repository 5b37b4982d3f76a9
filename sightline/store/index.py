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
    selective_row_groups(ws, parts, indicators) -> dict | None   # None: scan the store instead
    ips_as_indicators(ips) -> pa.Table               # plain addresses as lookup input
    load_candidates(selection, indicators, columns=None) -> pa.Table   # FLOW_SCHEMA, pre-filtered rows
    candidate_flows(ws, files, indicators, mode, columns) -> pa.Table | None   # a hunt's candidates
    flows_for_addresses(engine, ws, files) -> flows_for(view, ips, columns)
    register_candidate_flows(engine, ws, files, indicators, mode, columns) -> int | None
    register_rows_of(engine, ws, files, view, indicators, mode) -> bool  # read by the engine
    prune_orphans(ws) -> int

Locality: a part is committed sorted by each flow's rarer endpoint
(:func:`sightline.store.layout.locality_order`) in small row groups, so the flows of a rarely
seen address -- what new intelligence is mostly about -- sit in one or two row groups instead
of in every one.  Addresses seen in more than ``EVERYWHERE_FRACTION`` of a part's row groups are
stored once with row group ``-1`` ("all").
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core.settings import settings
from ..net import IPV6_TYPE
from ..schema import FLOW_SCHEMA
from .layout import _v6_values, null_columns, part_metadata, total_row_groups
from .workspace import Workspace, atomic_write_parquet

log = logging.getLogger("sightline.index")

INDEX_VERSION = "2"
EVERYWHERE_FRACTION = 0.125  # of a part's row groups: above it an IP is stored once, as "all"
EVERYWHERE_MIN_RGS = 4
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


def _rg_of_rows(pf: pq.ParquetFile) -> np.ndarray:
    counts = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
    return np.repeat(np.arange(pf.num_row_groups, dtype=np.int32), counts)


def _cap_everywhere(ip: np.ndarray, rg: np.ndarray, num_rgs: int) -> tuple[np.ndarray, np.ndarray]:
    """Collapse the pairs of IPs found in many row groups into one ``(ip, -1)`` row.

    Internal hosts and popular services appear in most row groups; listing them all would make
    the index as big as the data and buys nothing (a hunt for them reads everything anyway).
    ``ip`` must be sorted, with ``rg`` sorted within each ip.
    """
    if len(ip) == 0:
        return ip, rg
    new = np.ones(len(ip), bool)
    new[1:] = ip[1:] != ip[:-1]
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(ip)))
    cap = max(EVERYWHERE_MIN_RGS, int(num_rgs * EVERYWHERE_FRACTION))
    wide = np.repeat(counts > cap, counts)
    keep = ~wide | new  # first row of a wide ip stays, as -1
    rg = np.where(wide, np.int32(-1), rg)
    return ip[keep], rg[keep]


class IndexBuilder:
    """The (address, row group) pairs of a part, taken from its rows as they are written (so
    the part need not be read back) or from the part itself (:func:`build_part_index`)."""

    def __init__(self) -> None:
        self._v4: list[np.ndarray] = []  # distinct (ip << 32 | row group), per batch of row groups
        self._v6: list[np.ndarray] = []
        self.failed = False  # a batch could not be taken: build the index from the part instead

    def add(self, t: pa.Table, rows_rg: np.ndarray) -> None:
        """``t``: rows with ``src_ip``, ``dst_ip``, ``src_ip6``, ``dst_ip6``; ``rows_rg``: the
        row group of each.  Batches must not share a row group."""
        packed = []
        for c in ("src_ip", "dst_ip"):
            col = t.column(c)
            v = pc.fill_null(col, 0).to_numpy().astype(np.uint64)
            if col.null_count:
                ok = pc.is_valid(col).to_numpy(zero_copy_only=False)
                packed.append((v[ok] << np.uint64(32)) | rows_rg[ok].astype(np.uint64))
            else:
                packed.append((v << np.uint64(32)) | rows_rg.astype(np.uint64))
        # hash-dedup here, sort the (far fewer) distinct pairs at the end: 3.6x faster than np.unique
        self._v4.append(pc.unique(pa.array(np.concatenate(packed))).to_numpy())
        for c in ("src_ip6", "dst_ip6"):  # IPv6: rare in practice; a structured unique keeps it simple
            col = t.column(c)
            if col.null_count == len(col):
                continue
            ok = pc.is_valid(col).to_numpy(zero_copy_only=False)
            vals = _v6_values(pc.fill_null(col, pa.scalar(b"\x00" * 16, IPV6_TYPE)) if col.null_count else col)
            rec = np.empty(int(ok.sum()), dtype=[("ip", "S16"), ("rg", "<i4")])
            rec["ip"], rec["rg"] = vals[ok], rows_rg[ok]
            self._v6.append(rec)

    def write(self, ws: Workspace, part: Path, out: Path | None = None) -> Path:
        """Write the index of ``part`` (closed: its size, mtime and row groups are recorded)."""
        stamp = _stamp(part)
        nrg = part_metadata(part).num_row_groups
        u = np.sort(np.concatenate(self._v4)) if self._v4 else np.empty(0, np.uint64)
        ip4, rg4 = _cap_everywhere(
            (u >> np.uint64(32)).astype(np.uint32), (u & np.uint64(0xFFFFFFFF)).astype(np.int32), nrg
        )
        if self._v6:
            u6 = np.unique(np.concatenate(self._v6))
            ip6, rg6 = _cap_everywhere(u6["ip"].astype("S16"), u6["rg"].astype(np.int32), nrg)
        else:
            ip6, rg6 = np.empty(0, "S16"), np.empty(0, np.int32)
        n4, n6 = len(ip4), len(ip6)
        ip6_arr = pa.FixedSizeBinaryArray.from_buffers(
            IPV6_TYPE, n6, [None, pa.py_buffer(np.ascontiguousarray(ip6).tobytes())]
        )
        table = pa.table(
            {
                "ip4": pa.concat_arrays([pa.array(ip4, pa.uint32()), pa.nulls(n6, pa.uint32())]),
                "ip6": pa.concat_arrays([pa.nulls(n4, IPV6_TYPE), ip6_arr]),
                "rg": pa.array(np.concatenate([rg4, rg6]).astype(np.int32), pa.int32()),
            },
            schema=_IDX_SCHEMA.with_metadata({**stamp, "num_row_groups": str(nrg), "v4_rows": str(n4)}),
        )
        out = index_path(ws, part) if out is None else out
        atomic_write_parquet(out, table)
        return out


def build_part_index(ws: Workspace, part: str | Path, out: Path | None = None) -> Path:
    """Build (or rebuild) the index of one flow part, atomically; return its path.

    ``out``: write it there instead of its place in the workspace (a part built in staging,
    whose index is moved in beside it: the index records the part's size and mtime, which a
    rename keeps)."""
    part = Path(part)
    pf = pq.ParquetFile(part)
    b = IndexBuilder()
    b.add(pf.read(columns=["src_ip", "dst_ip", "src_ip6", "dst_ip6"]), _rg_of_rows(pf))
    return b.write(ws, part, out)


def ensure_index(ws: Workspace, parts: list[str]) -> int:
    """Build the index of every part that has none or a stale one; return how many were built."""
    built = 0
    for p in parts:
        if not _is_current(index_path(ws, p), Path(p)):
            build_part_index(ws, p)
            built += 1
    return built


_IndexArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]
_INDEX_CACHE: OrderedDict[tuple[str, int, int], _IndexArrays] = OrderedDict()
_INDEX_CACHE_LOCK = threading.Lock()
INDEX_CACHE_BYTES = settings().index_cache_bytes
"""A hunt through the index looks addresses up three times (indicators, then the compromised
hosts and the candidates of pivoting); the part indexes it read stay in memory up to this size."""


def _read_index(ws: Workspace, part: str) -> _IndexArrays:
    idx = index_path(ws, part)
    if not _is_current(idx, Path(part)):
        log.info("index of %s missing or stale: rebuilding", part)
        build_part_index(ws, part)
    st = idx.stat()
    key = (str(idx), st.st_mtime_ns, st.st_size)
    with _INDEX_CACHE_LOCK:
        hit = _INDEX_CACHE.get(key)
        if hit is not None:
            _INDEX_CACHE.move_to_end(key)
            return hit
    arrays = _load_index(idx)
    if sum(a.nbytes for a in arrays[:4]) <= INDEX_CACHE_BYTES:
        with _INDEX_CACHE_LOCK:
            _INDEX_CACHE[key] = arrays
            while sum(sum(a.nbytes for a in v[:4]) for v in _INDEX_CACHE.values()) > INDEX_CACHE_BYTES:
                _INDEX_CACHE.popitem(last=False)
    return arrays


def _load_index(idx: Path) -> _IndexArrays:
    t = pq.read_table(idx)
    meta = t.schema.metadata
    n4 = int(meta[b"v4_rows"])
    rg = t.column("rg").to_numpy()
    ip4 = t.column("ip4").slice(0, n4).to_numpy(zero_copy_only=False).astype(np.uint32)
    c6 = t.column("ip6").slice(n4).combine_chunks()
    ip6 = (
        np.frombuffer(c6.buffers()[1], dtype="S16", count=len(c6), offset=c6.offset * 16)
        if len(c6)
        else np.empty(0, "S16")
    )
    return ip4, rg[:n4], ip6, rg[n4:], int(meta[b"num_row_groups"])


def _ranges(indicators: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merged, sorted [start, end] ranges of the live IP indicators (IPv4 as uint32, IPv6 as S16)."""
    if indicators.num_rows == 0:
        e4, e6 = np.empty(0, np.uint32), np.empty(0, "S16")
        return e4, e4, e6, e6
    live = pc.and_(
        pc.is_in(indicators.column("type"), pa.array(["ipv4", "ipv6"])),
        pc.invert(pc.fill_null(indicators.column("revoked"), False))
        if "revoked" in indicators.column_names
        else pa.array([True] * indicators.num_rows),
    )
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
    """Positions in ``sorted_vals`` of the values inside any of the disjoint sorted ranges.

    Two binary searches per range: the cost follows the indicators, not the size of the index.
    """
    if len(starts) == 0 or len(sorted_vals) == 0:
        return np.empty(0, np.int64)
    lo = np.searchsorted(sorted_vals, starts, side="left")
    n = np.searchsorted(sorted_vals, ends, side="right") - lo
    keep = n > 0
    lo, n = lo[keep], n[keep]
    if len(n) == 0:
        return np.empty(0, np.int64)
    # lo[i], lo[i] + 1, ..., lo[i] + n[i] - 1 for every range, without a Python loop
    return np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))


def _member(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Boolean mask: each value inside one of the disjoint sorted ranges (any order of values)."""
    if len(starts) == 0 or len(values) == 0:
        return np.zeros(len(values), bool)
    i = np.searchsorted(starts, values, side="right") - 1
    ok = i >= 0
    out = np.zeros(len(values), bool)
    out[ok] = values[ok] <= ends[i[ok]]
    return out


def ips_as_indicators(ips: pa.Table) -> pa.Table:
    """Addresses (columns ``ip4`` uint32 / ``ip6`` binary(16)) in the shape index lookups take."""
    ip4 = ips.column("ip4").cast(pa.uint32())
    ip6 = ips.column("ip6").cast(IPV6_TYPE)
    n = ips.num_rows
    kind = pc.if_else(pc.is_valid(ip4), pa.scalar("ipv4"), pa.scalar("ipv6"))
    return pa.table(
        {
            "type": kind,
            "revoked": pa.array(np.zeros(n, bool)),
            "ip_start4": ip4,
            "ip_end4": ip4,
            "ip_start6": ip6,
            "ip_end6": ip6,
        }
    )


def candidate_row_groups(ws: Workspace, parts: list[str], indicators: pa.Table) -> dict[str, list[int]]:
    """Row groups, per part, that hold at least one flow to or from an indicator IP.

    Parts absent from the result hold none.  Stale or missing part indexes are rebuilt.
    """
    s4, e4, s6, e6 = _ranges(indicators)
    out: dict[str, list[int]] = {}
    for p in parts:
        ip4, rg4, ip6, rg6, nrg = _read_index(ws, p)
        rgs = np.union1d(rg4[_hits(ip4, s4, e4)], rg6[_hits(ip6, s6, e6)])
        if len(rgs) and rgs[0] == -1:  # an indicator IP found almost everywhere in this part
            rgs = np.arange(nrg)
        if len(rgs):
            out[p] = rgs.astype(int).tolist()
    return out


SELECTIVE_FRACTION = 0.5
"""Above this share of the store's row groups, reading the whole store is cheaper than the index."""


def selective_row_groups(ws: Workspace, parts: list[str], indicators: pa.Table) -> dict[str, list[int]] | None:
    """:func:`candidate_row_groups`, or None when they are more than SELECTIVE_FRACTION of the
    store (then a plain scan of the store is the cheaper read)."""
    sel = candidate_row_groups(ws, parts, indicators)
    if sum(len(v) for v in sel.values()) > SELECTIVE_FRACTION * total_row_groups(parts):
        return None
    return sel


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


_TEXT_COLUMNS = [f.name for f in FLOW_SCHEMA if pa.types.is_string(f.type)]


def load_candidates(
    selection: dict[str, list[int]], indicators: pa.Table, columns: list[str] | None = None
) -> pa.Table:
    """Read the selected row groups and keep the rows whose source or destination is an indicator.

    The result is a superset of what the detection SQL matches (ports and validity windows are
    still checked there), so detecting on it gives the same findings as on the whole store.
    ``columns`` limits what is decoded (the address columns always are); the others come back
    null, so the result keeps FLOW_SCHEMA.
    """
    s4, e4, s6, e6 = _ranges(indicators)
    ip_cols = ["src_ip", "dst_ip", "src_ip6", "dst_ip6"]
    wanted = None if columns is None else [c for c in FLOW_SCHEMA.names if c in set(columns) | set(ip_cols)]

    def complete(t: pa.Table) -> pa.Table:
        n = t.num_rows
        return pa.table(
            {
                f.name: (t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(n, f.type))
                for f in FLOW_SCHEMA
            },
            schema=FLOW_SCHEMA,
        )

    # single addresses (most indicators) by hash lookup; CIDR ranges by binary search
    single = s4 == e4
    singles4 = pa.array(s4[single], pa.uint32())
    rs4, re4 = s4[~single], e4[~single]

    def keep_mask(t: pa.Table) -> np.ndarray:
        keep = np.zeros(t.num_rows, bool)
        for name in ("src_ip", "dst_ip"):
            if name not in t.column_names:  # null in the whole part: not read
                continue
            col = t.column(name)
            if len(singles4):
                keep |= pc.is_in(col, value_set=singles4).to_numpy(zero_copy_only=False)
            if len(rs4):
                v, ok = _col_v4(t, name)
                keep |= ok & _member(v, rs4, re4)
        if len(s6):
            for name in ("src_ip6", "dst_ip6"):
                if name not in t.column_names:
                    continue
                v, ok = _col_v6(t, name)
                keep |= ok & _member(v, s6, e6)
        return keep

    def one(task: tuple[str, list[int]]) -> pa.Table | None:
        part, rgs = task
        # small row groups: per-chunk costs dominate.  No read-ahead of the whole selection, and
        # text columns stay dictionary-encoded until the few kept rows are cast (1.6x measured)
        pf = pq.ParquetFile(part, metadata=part_metadata(part), pre_buffer=False, read_dictionary=_TEXT_COLUMNS)
        # columns null in the whole part (IPv6 addresses of IPv4 traffic, reverse counters of
        # unidirectional NetFlow) are not read: their chunks cost as much to open as real ones,
        # and complete() gives them back as nulls
        empty = null_columns(part)
        cols = [c for c in (wanted or FLOW_SCHEMA.names) if c not in empty]
        ips = [c for c in ip_cols if c not in empty]
        if len(rgs) > pf.num_row_groups // 2:
            # most of the part: an address found almost everywhere ("-1") was asked for.  Read
            # the address columns first and decode the rest only of the row groups that match
            # (not always: when the index was precise this costs ~40 % more, measured at 100M)
            sizes = np.array([pf.metadata.row_group(r).num_rows for r in rgs])
            hit = (
                np.add.reduceat(
                    keep_mask(pf.read_row_groups(rgs, columns=ips, use_threads=False)), np.r_[0, np.cumsum(sizes)[:-1]]
                )
                > 0
            )
            rgs = [r for r, h in zip(rgs, hit) if h]
            if not rgs:
                return None
        t = pf.read_row_groups(rgs, columns=cols, use_threads=False)
        return complete(t.filter(pa.array(keep_mask(t))))

    # batches of row groups, two threads: Parquet decoding releases the GIL
    tasks = [(part, rgs[i : i + 128]) for part, rgs in sorted(selection.items()) for i in range(0, len(rgs), 128)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        pieces = [t for t in pool.map(one, tasks) if t is not None]
    return pa.concat_tables(pieces) if pieces else FLOW_SCHEMA.empty_table()


def candidate_flows(
    ws: Workspace, files: list[str], indicators: pa.Table, mode: str, columns: list[str]
) -> pa.Table | None:
    """Candidate flows of a hunt from the indicator index, or None for a full scan.

    ``mode``: ``auto`` uses the index when it rules out at least half of the row groups; ``on``
    always; ``off`` never.  Any index problem falls back to the full scan: the index may speed a
    hunt up, never sink it.
    """
    if mode == "off" or not files:
        return None
    try:
        sel = (candidate_row_groups if mode == "on" else selective_row_groups)(ws, files, indicators)
        return None if sel is None else load_candidates(sel, indicators, columns)
    except Exception as e:
        log.warning("indicator index not used (%s): scanning the whole store", e)
        return None


def flows_for_addresses(engine: Any, ws: Workspace, files: list[str]) -> Callable[..., None]:
    """A ``flows_for(view, ips, columns)`` that registers, as a view, the stored flows of some
    addresses through the indicator index (the whole store when the index would select more
    than half of it).  ``columns`` names what the reader needs; the others stay null (an engine
    that is not in this process reads the rows itself, with every column)."""

    def flows_for(view: str, ips: pa.Table, columns: list[str] | None = None) -> None:
        ind = ips_as_indicators(ips)
        if not getattr(engine, "in_process", True):
            if not register_rows_of(engine, ws, files, view, ind, "auto"):
                engine.register_parquet(view, files, FLOW_SCHEMA)
            return
        sel = selective_row_groups(ws, files, ind) if ips.num_rows else {}
        if sel is None:
            engine.register_parquet(view, files, FLOW_SCHEMA)
        else:
            engine.register_table(view, load_candidates(sel, ind, columns) if sel else FLOW_SCHEMA.empty_table())

    return flows_for


# --- the same selection, run by the engine (a cluster reads the index and the flows itself) ---


def ranges_table(indicators: pa.Table) -> pa.Table:
    """The live IP indicators as merged address ranges ``s4, e4`` (uint32) / ``s6, e6``
    (binary(16)), one family per row: small, it follows the indicators, not the store."""
    s4, e4, s6, e6 = _ranges(indicators)
    n4, n6 = len(s4), len(s6)

    def v6(a: np.ndarray) -> pa.Array:  # S16 values keep their trailing zero bytes in the buffer
        return pa.FixedSizeBinaryArray.from_buffers(
            IPV6_TYPE, len(a), [None, pa.py_buffer(np.ascontiguousarray(a, dtype="S16").tobytes())]
        )

    return pa.table(
        {
            "s4": pa.concat_arrays([pa.array(s4, pa.uint32()), pa.nulls(n6, pa.uint32())]),
            "e4": pa.concat_arrays([pa.array(e4, pa.uint32()), pa.nulls(n6, pa.uint32())]),
            "s6": pa.concat_arrays([pa.nulls(n4, IPV6_TYPE), v6(s6)]),
            "e6": pa.concat_arrays([pa.nulls(n4, IPV6_TYPE), v6(e6)]),
        }
    )


def parts_sql(index_view: str, ranges_view: str) -> str:
    """Index files (``idx_file``) holding an address inside one of the ranges."""
    return f"""
SELECT DISTINCT i.idx_file FROM {index_view} i JOIN {ranges_view} r
  ON (i.ip4 BETWEEN r.s4 AND r.e4) OR (i.ip6 BETWEEN r.s6 AND r.e6)
"""


def rows_in_ranges_sql(view: str, source: str, ranges_view: str, ranges: pa.Table) -> str:
    """``view`` := the rows of ``source`` whose source or destination lies in one of the ranges
    (single addresses by semi-join on each address column, CIDR ranges by range join)."""
    single4 = pc.sum(pc.and_(pc.is_valid(ranges["s4"]), pc.equal(ranges["s4"], ranges["e4"]))).as_py() or 0
    wide4 = pc.sum(pc.not_equal(ranges["s4"], ranges["e4"])).as_py() or 0
    single6 = pc.sum(pc.and_(pc.is_valid(ranges["s6"]), pc.equal(ranges["s6"], ranges["e6"]))).as_py() or 0
    wide6 = pc.sum(pc.not_equal(ranges["s6"], ranges["e6"])).as_py() or 0
    conds = []
    if single4:
        conds += [f"f.{c} IN (SELECT s4 FROM {ranges_view} WHERE s4 = e4)" for c in ("src_ip", "dst_ip")]
    if single6:
        conds += [f"f.{c} IN (SELECT s6 FROM {ranges_view} WHERE s6 = e6)" for c in ("src_ip6", "dst_ip6")]
    wide = []
    if wide4:
        wide.append("(r.s4 < r.e4 AND (f.src_ip BETWEEN r.s4 AND r.e4 OR f.dst_ip BETWEEN r.s4 AND r.e4))")
    if wide6:
        wide.append("(r.s6 < r.e6 AND (f.src_ip6 BETWEEN r.s6 AND r.e6 OR f.dst_ip6 BETWEEN r.s6 AND r.e6))")
    if wide:
        conds.append(f"EXISTS (SELECT 1 FROM {ranges_view} r WHERE {' OR '.join(wide)})")
    return f"""
CREATE OR REPLACE TEMP TABLE {view} AS
SELECT * FROM {source} f
WHERE {" OR ".join(conds) if conds else "false"}
"""


def engine_candidate_parts(engine: Any, ws: Workspace, parts: list[str], ranges: pa.Table) -> list[str]:
    """The parts whose index holds an address inside ``ranges``, looked up by the engine
    (its executors read the index files; the driver gets the names of the parts back)."""
    if not parts or ranges.num_rows == 0:
        return []
    ensure_index(ws, parts)  # normally a no-op: ingest builds them
    by_name = {index_path(ws, p).name: p for p in parts}
    engine.register_parquet("_idx_sel", [str(index_path(ws, p)) for p in parts], file_column="idx_file")
    engine.register_table("_idx_ranges", ranges)
    try:
        hits = engine.query(parts_sql("_idx_sel", "_idx_ranges")).column("idx_file").to_pylist()
    finally:
        engine.release("_idx_sel", "_idx_ranges")
    from urllib.parse import unquote

    found = {by_name.get(unquote(str(h).rstrip("/").rsplit("/", 1)[-1])) for h in hits}
    return [p for p in parts if p in found]


def register_rows_of(engine: Any, ws: Workspace, files: list[str], view: str, indicators: pa.Table, mode: str) -> bool:
    """Register as ``view`` the stored flows to or from the indicators' addresses, the engine
    reading the index and the flows (with the address filter) itself.

    ``mode`` as in :func:`candidate_flows`; with ``auto`` the index is not used (False is
    returned, nothing registered) when it selects more than :data:`SELECTIVE_FRACTION` of the
    parts.
    """
    if mode == "off" or not files:
        return False
    ranges = ranges_table(indicators)
    try:
        parts = engine_candidate_parts(engine, ws, files, ranges)
    except Exception as e:
        log.warning("indicator index not used (%s): scanning the whole store", e)
        return False
    if mode != "on" and len(parts) > SELECTIVE_FRACTION * len(files):
        return False
    src = f"_{view}_parts"
    engine.register_parquet(src, parts, FLOW_SCHEMA)
    engine.register_table(f"_{view}_ranges", ranges)
    try:
        engine.execute(rows_in_ranges_sql(view, src, f"_{view}_ranges", ranges))
    finally:
        engine.release(src, f"_{view}_ranges")
    return True


def register_candidate_flows(
    engine: Any, ws: Workspace, files: list[str], indicators: pa.Table, mode: str, columns: list[str]
) -> int | None:
    """Register a hunt's candidate flows (:func:`candidate_flows`) as the engine's ``flows``
    view and return how many there are; None (nothing registered) for a full scan.

    An in-process engine gets the rows the index's own readers pick; any other engine reads
    the index and the flows itself (:func:`register_rows_of`), so nothing that grows with the
    store is read here."""
    if not getattr(engine, "in_process", True):
        if not register_rows_of(engine, ws, files, "flows", indicators, mode):
            return None
        return int(engine.query("SELECT count(*) AS n FROM flows").column(0)[0].as_py())
    candidates = candidate_flows(ws, files, indicators, mode, columns)
    if candidates is None:
        return None
    engine.register_table("flows", candidates.cast(FLOW_SCHEMA))
    return candidates.num_rows


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
    "IndexBuilder",
    "build_part_index",
    "candidate_flows",
    "engine_candidate_parts",
    "candidate_row_groups",
    "ensure_index",
    "flows_for_addresses",
    "index_path",
    "ips_as_indicators",
    "load_candidates",
    "parts_sql",
    "prune_orphans",
    "ranges_table",
    "register_candidate_flows",
    "register_rows_of",
    "rows_in_ranges_sql",
    "selective_row_groups",
]
