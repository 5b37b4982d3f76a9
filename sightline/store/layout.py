"""How flow parts look on disk, and how they are read back.

A *part* is one parquet file of the flow store (``flows/day=YYYY-MM-DD/<name>.parquet``).
Parts are written in :func:`locality_order` (the flows of a rarely seen address sit together)
with the encodings and codecs of :func:`part_write_options`, and timestamps in milliseconds when
every one of them is a whole millisecond (:func:`part_schema`).  Readers never see that choice:
:func:`read_parts` and :func:`conform` give the store's contract, FLOW_SCHEMA.

Public API::

    locality_order(table) -> np.ndarray                  # row order of a committed part
    part_write_options(schema) -> dict                   # ParquetWriter options of committed parts
    part_schema(schema, whole_ms) / whole_ms(ts) / parts_whole_ms(paths)   # ts stored in ms when exact
    conform(table, schema) -> pa.Table                   # a part's rows as ``schema``
    read_parts(paths, columns=None) -> pa.Table          # FLOW_SCHEMA
    flows_table_from_columns(columns, n) -> pa.Table     # FLOW_SCHEMA from a partial column dict
    part_metadata(part) / total_row_groups(parts) / null_columns(part)
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..net import IPV6_TYPE
from ..schema import FLOW_SCHEMA

_BUCKET_BITS = 23  # hashed histogram for locality_order: 8M buckets, 64 MiB


def _v6_values(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    c = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(c) == 0:
        return np.empty(0, "S16")
    if pa.types.is_fixed_size_binary(c.type):
        return np.frombuffer(c.buffers()[1], dtype="S16", count=len(c), offset=c.offset * 16)
    return np.array(c.to_pylist(), dtype="S16")


def _endpoint_keys(t: pa.Table, side: str) -> np.ndarray:
    """One uint64 per row naming the ``side`` endpoint: the IPv4 value, or a hash of the IPv6 one."""
    c4 = t.column(f"{side}_ip")
    key = pc.fill_null(c4, 0).to_numpy().astype(np.uint64)
    c6 = t.column(f"{side}_ip6")
    if c6.null_count < len(c6):
        ok6 = pc.is_valid(c6).to_numpy(zero_copy_only=False)
        raw = _v6_values(pc.fill_null(c6, pa.scalar(b"\x00" * 16, IPV6_TYPE)) if c6.null_count else c6)
        halves = np.frombuffer(raw.tobytes(), dtype=np.uint64).reshape(-1, 2)
        with np.errstate(over="ignore"):
            h = (halves[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (halves[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F))
        key = np.where(ok6, h | np.uint64(1 << 63), key)
    return key


def locality_order(t: pa.Table) -> np.ndarray:
    """Row order that puts each flow next to the other flows of its rarer endpoint.

    A retro-hunt looks for rarely seen infrastructure.  Sorting a part by "the endpoint of the
    flow that is rarer in this part" (counts from a hashed histogram: a collision only costs
    locality, never correctness) makes all flows of a rare address contiguous, in whichever
    direction they went, so they sit in one or two row groups; flows between two popular
    addresses land wherever, as they would be read by any hunt for them anyway.  Stable, so
    rows of one key keep their arrival (time) order.
    """
    ks, kd = _endpoint_keys(t, "src"), _endpoint_keys(t, "dst")
    shift = np.uint64(64 - _BUCKET_BITS)
    with np.errstate(over="ignore"):
        hs = ((ks * np.uint64(0x9E3779B97F4A7C15)) >> shift).astype(np.int64)
        hd = ((kd * np.uint64(0x9E3779B97F4A7C15)) >> shift).astype(np.int64)
    cnt = np.bincount(hs, minlength=1 << _BUCKET_BITS) + np.bincount(hd, minlength=1 << _BUCKET_BITS)
    key = np.where(cnt[hs] <= cnt[hd], ks, kd)
    n = len(key)
    if n and n < (1 << 32) and int(key.max()) < (1 << 32):
        # IPv4 keys: sort (key, row) packed in one uint64, the same stable order as an argsort
        # at a third of its time
        packed = (key << np.uint64(32)) | np.arange(n, dtype=np.uint64)
        packed.sort()
        return (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return np.argsort(key, kind="stable")


def part_write_options(schema: pa.Schema, ms_clock: bool = True) -> dict:
    """ParquetWriter options of committed flow parts: encodings and a codec chosen per column.

    ``ms_clock``: the part's timestamps are whole milliseconds (a NetFlow/IPFIX/nfdump clock,
    whose durations are whole ms too).  Otherwise (Zeek, Suricata: µs) durations are
    byte-stream-split at zstd level 3: PLAIN at level 6 is worth it only for whole-ms doubles;
    on µs durations it took 6.5 instead of 7.3 B/flow for a third of the whole encoding time
    (0.6 of 1.3 s per 2M Zeek rows).

    Measured on 20M flows, 4k-row groups, one part per day (the bench's NetFlow v5 records as
    sightline decodes them, and its bidirectional synthetic flows; 16k-row groups take 3 % less
    with the same choices):

    - dictionary pages only where values repeat (protocols, states, service ports, sensors and
      the destination address: popular services recur within a row group, 2.0 -> 1.6 B/flow);
      high-cardinality numbers fall back from a dictionary anyway after paying for it;
    - delta encoding for timestamps (sorted within an address's run), byte-stream-split for the
      byte/packet counters and ephemeral source ports (their high bytes become long runs);
    - durations stay float64 and PLAIN: a duration a NetFlow clock measured is a whole number of
      ms, and zstd finds the recurring byte patterns of such doubles that byte-stream-split
      scatters (7.6 -> 3.2 B/flow on NetFlow records; full-precision doubles are ~7.4 either way);
    - zstd (level 3; 6 for durations, +2 % ingest time for 0.3 B/flow) only where its entropy
      coding pays; columns already compact after encoding use lz4.  zstd costs ~20 us per column
      chunk even when empty, and a retro-hunt reads many small row groups;
    - min/max statistics on the numeric columns (pruning, and null counts that let readers
      skip all-null columns such as reverse bytes of unidirectional NetFlow), none on text.

    With :func:`part_schema` (whole-ms timestamps stored as ms) the NetFlow records take 14.7
    instead of 21.1 B/flow; the indicator match and full scans run at the same speed.
    """
    names = set(schema.names)
    zstd = {"src_ip", "dst_ip", "src_port", "duration_s", "bytes_out", "bytes_in", "packets_out", "packets_in"}
    low_card = [
        c
        for c in (
            "proto",
            "conn_state",
            "service",
            "sensor",
            "source_format",
            "source_file",
            "history",
            "src_ip6",
            "dst_ip6",
            "dst_port",
            "dst_ip",
        )
        if c in names
    ]
    enc = {c: "DELTA_BINARY_PACKED" for c in ("ts",) if c in names}
    enc.update(
        {
            c: "BYTE_STREAM_SPLIT"
            for c in ("src_port", "bytes_out", "bytes_in", "packets_out", "packets_in")
            if c in names
        }
    )
    if "duration_s" in names:
        enc["duration_s"] = "PLAIN" if ms_clock else "BYTE_STREAM_SPLIT"
    return {
        "compression": {c: "zstd" if c in zstd else "lz4" for c in schema.names},
        "compression_level": {c: (6 if c == "duration_s" and ms_clock else 3) for c in schema.names if c in zstd},
        "use_dictionary": low_card,
        "column_encoding": enc,
        "write_statistics": [f.name for f in schema if not pa.types.is_string(f.type)],
    }


MS_TS = pa.timestamp("ms", tz="UTC")


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The rows of a part as ``schema``: its columns in order and type; a column the part was
    written without (``history``, added to FLOW_SCHEMA later) comes back null."""
    if table.schema.names == schema.names:
        return table.cast(schema)
    n = table.num_rows
    return pa.Table.from_arrays(
        [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type) for f in schema],
        schema=schema,
    )


def part_schema(schema: pa.Schema, whole_ms: bool) -> pa.Schema:
    """The schema a flow part is written with: ``schema``, with ``ts`` in milliseconds when every
    timestamp of the part is a whole millisecond (NetFlow, IPFIX and nfdump clocks count ms).

    Lossless: the values are the same instants, and every reader of the store sees microseconds
    (DuckDB and Spark map both units to their timestamp type; sightline's own readers cast parts
    to FLOW_SCHEMA).  A µs timestamp stored in ms would take 8 bytes where the ms one takes
    ~3.4 after delta encoding (one factor of 1000 less to encode per delta).
    """
    if not whole_ms or "ts" not in schema.names:
        return schema
    i = schema.get_field_index("ts")
    return schema.set(i, schema.field(i).with_type(MS_TS))


def _ms_or_coarser(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) and t.unit in ("s", "ms")


def whole_ms(ts: pa.Array | pa.ChunkedArray) -> bool:
    """True when every (non-null) timestamp in ``ts`` is a whole millisecond."""
    if _ms_or_coarser(ts.type):
        return True
    v = pc.fill_null(ts.cast(pa.int64()), 0)
    chunks = v.chunks if isinstance(v, pa.ChunkedArray) else [v]
    return all(not (c.to_numpy() % 1000).any() for c in chunks)


def parts_whole_ms(paths: Iterable[Path]) -> bool:
    """:func:`whole_ms` over the ``ts`` column of parquet files, read one row group at a time."""
    for path in paths:
        pf = pq.ParquetFile(path)
        if "ts" not in pf.schema_arrow.names:
            return False
        if _ms_or_coarser(pf.schema_arrow.field("ts").type):
            continue  # stored in ms already
        for i in range(pf.num_row_groups):
            if not whole_ms(pf.read_row_group(i, columns=["ts"]).column(0)):
                return False
    return True


@functools.lru_cache(maxsize=4096)
def _metadata_of(part: str, mtime_ns: int, size: int) -> pq.FileMetaData:
    return pq.read_metadata(part)


def part_metadata(part: str | Path) -> pq.FileMetaData:
    """A part's parquet footer, parsed once per version of the file (a footer of thousands of
    row groups takes tens of milliseconds to parse)."""
    st = os.stat(part)
    return _metadata_of(str(part), st.st_mtime_ns, st.st_size)


def total_row_groups(parts: list[str]) -> int:
    return sum(part_metadata(p).num_row_groups for p in parts)


NULL_COLUMNS_KEY = "sightline.null_columns"


def null_columns(part: str | Path) -> frozenset[str]:
    """Columns with no value in the whole part (recorded when it was written; empty for parts
    written before that was recorded, which are then read in full)."""
    kv = part_metadata(part).metadata or {}
    raw = kv.get(NULL_COLUMNS_KEY.encode())
    if raw is None:
        return frozenset()
    try:
        return frozenset(json.loads(raw))
    except ValueError:
        return frozenset()


def read_parts(paths: list[str] | list[Path], columns: list[str] | None = None) -> pa.Table:
    """The rows of committed flow parts as one FLOW_SCHEMA table (timestamps in µs).

    Parts whose timestamps are all whole milliseconds store ``ts`` in ms (see
    :func:`part_schema`); this reads any mix of parts into the store's contract.
    Outside sightline, pass the schema yourself: ``pyarrow.dataset.dataset(path, schema=FLOW_SCHEMA)``.
    """
    schema = FLOW_SCHEMA if columns is None else pa.schema([FLOW_SCHEMA.field(c) for c in columns])
    # ParquetFile.read skips a column a part lacks (written before it existed): conform makes it null
    tables = [conform(pq.ParquetFile(p).read(columns=columns), schema) for p in paths]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def flows_table_from_columns(columns: dict[str, Any], n: int) -> pa.Table:
    """Build a FLOW_SCHEMA table from a partial column dict, filling absent columns with nulls."""
    arrays = []
    for f in FLOW_SCHEMA:
        col = columns.get(f.name)
        if col is None:
            arrays.append(pa.nulls(n, f.type))
        else:
            arr = col if isinstance(col, (pa.Array, pa.ChunkedArray)) else pa.array(col)
            if arr.type != f.type:
                arr = pc.cast(arr, f.type)
            arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=FLOW_SCHEMA)


__all__ = [
    "MS_TS",
    "NULL_COLUMNS_KEY",
    "conform",
    "flows_table_from_columns",
    "locality_order",
    "null_columns",
    "part_metadata",
    "part_schema",
    "part_write_options",
    "parts_whole_ms",
    "read_parts",
    "total_row_groups",
    "whole_ms",
]
