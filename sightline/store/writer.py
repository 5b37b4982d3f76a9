"""Writing flows into the store: per-day parquet parts, staged, committed atomically.

Public API::

    FlowWriter(ws, sha256, source_file, fmt).write(batch) / .commit(quarantine) / .abort()
    write_sorted_runs(runs, dst, schema, rows_per_group, ts_ms=False) -> int   # a part in locality order
    read_runs(paths, schema, run_rows) -> Iterator[pa.Table]   # bounded runs for write_sorted_runs
    write_locality_sorted(src, dst, schema, rows_per_group) -> int

Name and certificate rows (:data:`sightline.ingest.names.NAMES_SCHEMA`) a reader yields
beside flows go to ``names/day=.../<sha16>.parquet`` through the same staging and the same
manifest entry (``name_parts``, ``name_rows``), so they are committed with the file's flows
or not at all.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core.settings import settings
from ..schema import FLOW_SCHEMA
from .index import IndexBuilder, build_part_index, index_path
from .layout import NULL_COLUMNS_KEY, conform, locality_order, part_schema, part_write_options, parts_whole_ms, whole_ms
from .workspace import Workspace, atomic_write_parquet

# Row groups of committed flow parts.  Parts are sorted for locality at commit
# (sightline.store.layout.locality_order) so that a retro-hunt, which reads whole row groups, reads
# few of them; the size trades those reads for full-scan speed.  Measured on the bench's
# synthetic flows (docs/scaling.md): with 4k / 16k / 64k rows a retro-hunt for 5,000 new
# indicators selects 6.1 / 8.2 / 10.5 % of a 200M-flow store (256k rows in arrival order:
# all of it), while the indicator match over 20M flows runs at 33-36 / 46 / 47 M flows/s.
# At 200M, 16k against 4k: the detection over the whole store 6.9 vs 10.7 s, through the
# index 1.9 vs 2.1 s (the index reads fewer, larger groups), the whole retro-hunt stage
# 7.5 vs 6.3 s (pivoting reads more); store and index are smaller.
ROW_GROUP_ROWS = settings().row_group_rows
"""``SIGHTLINE_ROW_GROUP_ROWS`` (default 16384) chooses the row-group size of new parts (see
above); 4096 favours retro-hunts through the index, 65536 full scans."""
STAGE_FLUSH_ROWS = 262_144  # staged (temporary) files: bigger writes, rewritten at commit
SORT_PARTS = settings().sort_parts
"""``SIGHTLINE_SORT_PARTS=0`` commits parts in arrival order (no locality sort)."""


SORT_RUN_ROWS = 8_388_608
"""Rows sorted together at most (about 1.5 GB in memory with the sorted copy)."""


def write_locality_sorted(
    src: Path,
    dst: Path,
    schema: pa.Schema,
    row_group_rows: int,
    run_rows: int = SORT_RUN_ROWS,
    index: IndexBuilder | None = None,
) -> int:
    """Rewrite the staged part ``src`` as ``dst`` in :func:`locality_order`, ``row_group_rows`` per row group.

    Memory stays bounded: the part is sorted in runs of about ``run_rows`` rows (whole staged row
    groups), each run on its own, so a huge input file costs some locality (a rare address may sit
    in one row group per run), never all of the RAM.  Returns the rows written.
    """
    return write_sorted_runs(
        read_runs([src], schema, run_rows), dst, schema, row_group_rows, ts_ms=parts_whole_ms([src]), index=index
    )


def read_runs(paths: list[Path], schema: pa.Schema, run_rows: int = SORT_RUN_ROWS) -> Iterator[pa.Table]:
    """The rows of the parquet files ``paths``, in order, as tables of whole row groups of at
    most ``run_rows`` rows each (a run always takes at least one row group)."""
    run: list[tuple[pq.ParquetFile, list[int]]] = []
    acc = 0

    def take() -> pa.Table:
        return pa.concat_tables([conform(pf.read_row_groups(rgs), schema) for pf, rgs in run])

    for path in paths:
        pf = pq.ParquetFile(path)
        for i in range(pf.num_row_groups):
            k = pf.metadata.row_group(i).num_rows
            if run and acc + k > run_rows:
                yield take()
                run, acc = [], 0
            if not run or run[-1][0] is not pf:
                run.append((pf, []))
            run[-1][1].append(i)
            acc += k
    if run:
        yield take()


def write_sorted_runs(
    runs: Iterable[pa.Table],
    dst: Path,
    schema: pa.Schema,
    row_group_rows: int,
    ts_ms: bool = False,
    index: IndexBuilder | None = None,
) -> int:
    """Write each table of ``runs`` in :func:`locality_order` to the part ``dst``; return the rows.

    ``ts_ms``: every timestamp of every run is a whole millisecond; the part stores them as ms
    (:func:`part_schema`).  A run that breaks that promise fails the write (a checked cast),
    it never truncates a timestamp.  ``index`` collects the part's (address, row group) pairs
    as the rows are gathered (beside the encoding, no read-back); ``index.failed`` says when it
    could not.
    """
    rows = 0
    # slices of 256k rows: a million-row part is four, so three gathers run beside an encoding
    step = max(row_group_rows, (1 << 18) // row_group_rows * row_group_rows)
    out_schema = part_schema(schema, ts_ms)
    nulls = dict.fromkeys(out_schema.names, 0)
    with (
        pq.ParquetWriter(dst, out_schema, **part_write_options(out_schema, ms_clock=ts_ms)) as w,
        ThreadPoolExecutor(1, thread_name_prefix="sightline-sort") as pool,
    ):
        first_rg = 0  # row groups written so far: each write_table starts its own
        for t in runs:
            order = locality_order(t)
            gather = _gatherer(t)

            def piece(i: int, rg0: int, order: np.ndarray = order, gather: Callable = gather) -> pa.Table:
                cur = gather(pa.array(order[i : i + step])).cast(out_schema)
                if index is not None and not index.failed:
                    try:
                        index.add(
                            cur.select(_ADDRESSES), rg0 + np.arange(cur.num_rows, dtype=np.int32) // row_group_rows
                        )
                    except Exception:  # derived data: built from the part instead
                        index.failed = True
                return cur

            # the next slice is gathered (and its index pairs taken) while this one is encoded
            # (both release the GIL)
            starts = list(range(0, t.num_rows, step))
            rg0 = [first_rg + s // row_group_rows for s in starts]  # a slice is whole row groups
            first_rg += -(-t.num_rows // row_group_rows)
            nxt = pool.submit(piece, starts[0], rg0[0]) if starts else None
            for k in range(len(starts)):
                cur = nxt.result()
                nxt = pool.submit(piece, starts[k + 1], rg0[k + 1]) if k + 1 < len(starts) else None
                w.write_table(cur, row_group_size=row_group_rows)
                del cur
            rows += t.num_rows
            for c in nulls:
                nulls[c] += t.column(c).null_count
            del t, order
        # columns with no value in the whole part: readers of selected row groups skip them
        w.add_key_value_metadata({NULL_COLUMNS_KEY: json.dumps(sorted(c for c, k in nulls.items() if k == rows))})
    return rows


_ADDRESSES = ["src_ip", "dst_ip", "src_ip6", "dst_ip6"]


def _gatherer(t: pa.Table) -> Callable[[pa.Array], pa.Table]:
    """``t.take`` for the slices of one sort order, cheaper on text: a column holding one value
    (the source file, the format, a sensor) is not gathered at all, and other text is gathered
    as dictionary codes (a random gather of strings costs ~10x one of integers)."""
    t = t.combine_chunks()
    plan: list[tuple[str, pa.Array]] = []
    for col in t.columns:
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            plan.append(("take", arr))
            continue
        enc = pc.dictionary_encode(arr)
        if enc.null_count == len(enc) or (enc.null_count == 0 and len(enc.dictionary) == 1):
            plan.append(("same", arr))
        else:
            plan.append(("dict", enc))

    def gather(idx: pa.Array) -> pa.Table:
        cols = []
        for how, arr in plan:
            if how == "same":
                cols.append(arr.slice(0, len(idx)))
            elif how == "dict":
                cols.append(arr.take(idx).cast(arr.type.value_type))
            else:
                cols.append(arr.take(idx))
        return pa.Table.from_arrays(cols, schema=t.schema)

    return gather


class FlowWriter:
    """Stage the flows of one input file, then commit them all at once.

    Flows go to ``.staging/<sha>/`` as one parquet file per day; :meth:`commit` moves them
    into ``flows/day=.../<sha16>.parquet`` and records them in the manifest, so a reader
    sees either all of the file's flows or none.
    """

    def __init__(
        self,
        ws: Workspace,
        sha256: str,
        source_file: str,
        fmt: str,
        *,
        schema: pa.Schema = FLOW_SCHEMA,
        dataset: str = "flows",
        time_offsets: Mapping[str, float] | None = None,
        stage_tag: str = "",
    ) -> None:
        self.ws = ws
        self.stage_tag = stage_tag
        self.time_offsets = dict(time_offsets or {})
        self.offsets_applied: dict[str, float] = {}
        self.schema = schema
        self.dataset = dataset
        self._names: FlowWriter | None = None
        self.sha = sha256
        self.source_file = source_file
        self.fmt = fmt
        # ``stage_tag`` keeps apart the staging of two files with the same content read at once
        base = sha256[:16] + (f"~{stage_tag}" if stage_tag else "")
        self.stage = ws.staging_dir / (base if dataset == "flows" else f"{base}.{dataset}")
        shutil.rmtree(self.stage, ignore_errors=True)
        self.stage.mkdir(parents=True)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._buffers: dict[str, list[pa.Table]] = {}
        self._buffered: dict[str, int] = {}
        # flow parts are sorted at commit: while the file's rows fit one sort run they stay in
        # memory (the sort would load them anyway); beyond that everything goes to staged files
        self._in_memory = dataset == "flows" and SORT_PARTS
        self._buffered_total = 0
        self.rows = 0
        self.min_ts: int | None = None
        self.max_ts: int | None = None

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if table.num_rows == 0:
            return
        if self.dataset == "flows" and "kind" in table.schema.names and "cert_sha256" in table.schema.names:
            if self._names is None:
                from ..ingest.names import NAMES_SCHEMA

                self._names = FlowWriter(
                    self.ws,
                    self.sha,
                    self.source_file,
                    self.fmt,
                    schema=NAMES_SCHEMA,
                    dataset="names",
                    time_offsets=self.time_offsets,
                    stage_tag=self.stage_tag,
                )
            self._names.write(table)
            return
        table = table.select(self.schema.names).cast(self.schema)
        if self.time_offsets and "sensor" in self.schema.names:
            table = self._correct_clocks(table)
        ts_us = table.column("ts").cast(pa.int64()).to_numpy()
        self.rows += table.num_rows
        lo, hi = int(ts_us.min()), int(ts_us.max())
        self.min_ts = lo if self.min_ts is None else min(self.min_ts, lo)
        self.max_ts = hi if self.max_ts is None else max(self.max_ts, hi)
        lo_day, hi_day = lo // 86_400_000_000, hi // 86_400_000_000
        if lo_day == hi_day:  # the usual batch: one day (no per-row work)
            self._add(lo_day, table)
            return
        # a batch across midnight: the days in order, each distinct day where it starts
        days = ts_us // 86_400_000_000
        order = np.argsort(days, kind="stable")
        sorted_days = days[order]
        uniq = sorted_days[np.r_[True, sorted_days[1:] != sorted_days[:-1]]]
        bounds = np.searchsorted(sorted_days, uniq, side="left").tolist() + [len(order)]
        taken = table.take(pa.array(order))
        for i, d in enumerate(uniq.tolist()):
            self._add(d, taken.slice(bounds[i], bounds[i + 1] - bounds[i]))

    def _correct_clocks(self, table: pa.Table) -> pa.Table:
        """Add each sensor's configured clock offset (``[network] time_offsets``, seconds) to
        its rows' timestamps, before they are filed by day."""
        names = list(self.time_offsets)
        idx = pc.index_in(table.column("sensor"), value_set=pa.array(names, pa.string()))
        if idx.null_count == len(idx):
            return table
        shift_us = np.round(np.array([self.time_offsets[n] for n in names], dtype=np.float64) * 1e6).astype(np.int64)
        i = pc.fill_null(idx, -1).to_numpy()
        delta = np.where(i >= 0, shift_us[np.maximum(i, 0)], 0)
        for k in np.unique(i[i >= 0]).tolist():
            self.offsets_applied[names[k]] = self.time_offsets[names[k]]
        ts = table.column("ts").cast(pa.int64()).to_numpy() + delta
        field = table.schema.field("ts")
        return table.set_column(table.schema.get_field_index("ts"), field, pa.array(ts, pa.int64()).cast(field.type))

    def _add(self, day: int, table: pa.Table) -> None:
        key = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
        self._buffers.setdefault(key, []).append(table)
        self._buffered[key] = self._buffered.get(key, 0) + table.num_rows
        self._buffered_total += table.num_rows
        if self._in_memory:
            if self._buffered_total <= SORT_RUN_ROWS:
                return
            self._in_memory = False
            for k in list(self._buffers):
                self._flush(k)
        elif self._buffered[key] >= STAGE_FLUSH_ROWS:
            self._flush(key)

    def _flush(self, key: str) -> None:
        parts = self._buffers.pop(key, [])
        self._buffered.pop(key, None)
        if not parts:
            return
        table = pa.concat_tables(parts)
        w = self._writers.get(key)
        if w is None:
            # a staged file that is rewritten sorted at commit only needs to be fast to write
            sorted_later = self.dataset == "flows" and SORT_PARTS
            if sorted_later:
                opts: dict = {"compression": "lz4"}
            elif self.dataset == "flows":
                opts = part_write_options(self.schema)
            else:
                opts = {"compression": "zstd", "compression_level": 3}
            w = pq.ParquetWriter(self.stage / f"day={key}.parquet", self.schema, **opts)
            self._writers[key] = w
        w.write_table(table, row_group_size=max(table.num_rows, 1))

    def abort(self) -> None:
        if self._names is not None:
            self._names.abort()
        self._buffers.clear()
        for w in self._writers.values():
            try:
                w.close()
            except Exception:
                pass
        shutil.rmtree(self.stage, ignore_errors=True)

    def commit(self, quarantine: pa.Table | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Move staged parts into the store and record the file in the manifest."""
        return finish_commit(self.ws, self.prepare(quarantine, extra))

    def prepare(self, quarantine: pa.Table | None, extra: dict[str, Any] | None = None) -> StagedCommit:
        """Everything of :meth:`commit` but the moves into the store and the manifest: parts
        sorted, written and indexed in staging.  :func:`finish_commit` (under the workspace
        lock, in any process) makes them visible; until then nothing of the file is."""
        name_moves = self._names._stage_parts() if self._names is not None else []
        moves = self._stage_parts()
        parts = [rel for _src, rel, _idx in moves]
        qrel = None
        nq = 0
        if quarantine is not None and quarantine.num_rows:
            qrel = str(Path("quarantine") / f"{self.sha[:16]}.parquet")
            staged_q = self.stage / "quarantine.parquet"
            atomic_write_parquet(staged_q, quarantine)
            moves.append((str(staged_q), qrel, None))
            nq = quarantine.num_rows
        entry: dict[str, Any] = {
            "sha256": self.sha,
            "source_file": self.source_file,
            "format": self.fmt,
            "rows": self.rows,
            "quarantined": nq,
            "quarantine_file": qrel,
            "parts": parts,
            "min_ts_us": self.min_ts,
            "max_ts_us": self.max_ts,
            "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if self._names is not None:
            entry["name_parts"] = [rel for _src, rel, _idx in name_moves]
            entry["name_rows"] = self._names.rows
        applied = {**(self._names.offsets_applied if self._names is not None else {}), **self.offsets_applied}
        if applied:
            entry["time_offsets_s"] = applied  # what was added to which sensor's timestamps
        if extra:
            entry.update(extra)
        stages = [str(self.stage)] + ([str(self._names.stage)] if self._names is not None else [])
        return StagedCommit(self.sha, entry, name_moves + moves, stages)

    def _stage_parts(self) -> list[tuple[str, str, str | None]]:
        """Close the staged day files and finish each as the part it becomes, still in staging
        (flow parts sorted for locality, with their index beside them).  Returns
        ``(staged file, path in the workspace, staged index or None)`` per part."""
        in_memory = {k: self._buffers.pop(k) for k in list(self._buffers)} if self._in_memory else {}
        for key in list(self._buffers):
            self._flush(key)
        for w in self._writers.values():
            w.close()
        out: list[tuple[str, str, str | None]] = []
        for key in sorted(set(self._writers) | set(in_memory)):
            rel = Path(self.dataset) / f"day={key}" / f"{self.sha[:16]}.parquet"
            index = IndexBuilder() if self.dataset == "flows" else None
            if key in in_memory:  # sorted straight from memory, never staged
                src = self.stage / f"day={key}.sorted.parquet"
                table = pa.concat_tables(in_memory.pop(key))
                ms = whole_ms(table.column("ts"))
                write_sorted_runs([table], src, self.schema, ROW_GROUP_ROWS, ts_ms=ms, index=index)
                del table
            elif self.dataset == "flows" and SORT_PARTS:
                src = self.stage / f"day={key}.sorted.parquet"
                staged = self.stage / f"day={key}.parquet"
                write_locality_sorted(staged, src, self.schema, ROW_GROUP_ROWS, index=index)
            else:
                src = self.stage / f"day={key}.parquet"
                index = None  # written unsorted: built from the part
            with open(src, "rb+") as fh:
                os.fsync(fh.fileno())
            idx = (
                _index_part(self.ws, src, self.stage / f"day={key}.idx.parquet", index)
                if self.dataset == "flows"
                else None
            )
            out.append((str(src), str(rel), None if idx is None else str(idx)))
        return out


@dataclass
class StagedCommit:
    """A file's output, finished in staging and not yet in the store (see :meth:`FlowWriter.prepare`).

    Plain data, so that a worker process can stage a file and the process holding the
    workspace lock commit it (:func:`finish_commit`)."""

    sha: str
    entry: dict[str, Any]
    moves: list[tuple[str, str, str | None]]  # staged file, its path in the workspace, its staged index
    stages: list[str]  # staging directories to remove once committed


def finish_commit(ws: Workspace, staged: StagedCommit) -> dict[str, Any]:
    """Move a staged file's parts (and their indexes) into the store and record it in the
    manifest: the moment its flows become visible.  Call under the workspace lock."""
    for src, rel, idx in staged.moves:
        dst = ws.root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        if idx is not None:
            try:
                to = index_path(ws, dst)
                to.parent.mkdir(parents=True, exist_ok=True)
                os.replace(idx, to)  # a rename keeps the part's size and mtime the index records
            except OSError as e:  # derived data: rebuilt on first use
                logging.getLogger("sightline.index").warning("index of %s not moved in (%s)", dst, e)
    manifest = ws.manifest()
    manifest.setdefault("files", {})[staged.sha] = staged.entry
    ws.write_manifest(manifest)
    for stage in staged.stages:
        shutil.rmtree(stage, ignore_errors=True)
    return staged.entry


def discard_staged(staged: StagedCommit) -> None:
    """Drop a staged file's output (it will not be committed)."""
    for stage in staged.stages:
        shutil.rmtree(stage, ignore_errors=True)


def _index_part(ws: Workspace, part: Path, out: Path, index: IndexBuilder | None = None) -> Path | None:
    """Write the retro-hunt index of a new part at ``out`` (from the pairs ``index`` collected
    as it was written, else from the part); a failure only costs a rebuild on first use."""
    try:
        if index is not None and not index.failed:
            return index.write(ws, part, out)
        return build_part_index(ws, part, out)
    except Exception as e:  # the index is derived data: never fail an ingest over it
        logging.getLogger("sightline.index").warning("index of %s not built now (%s)", part, e)
        return None


__all__ = [
    "FlowWriter",
    "StagedCommit",
    "discard_staged",
    "finish_commit",
    "ROW_GROUP_ROWS",
    "SORT_RUN_ROWS",
    "read_runs",
    "write_locality_sorted",
    "write_sorted_runs",
]
