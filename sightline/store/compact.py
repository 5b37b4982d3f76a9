"""Compaction: merge a day's flow parts into one part sorted for locality.

Every ingested file (and every batch of the live collector) commits its own part per day, each
sorted on its own.  A rare address then sits in one row group *per part*: a day of hourly Zeek
logs or of one-minute collector batches makes a retro-hunt read tens to thousands of row groups
for it, and a full scan open as many files.  ``sightline compact`` rewrites each closed day's
parts as one part in :func:`sightline.store.layout.locality_order` (in runs of at most
``writer.SORT_RUN_ROWS`` rows, so memory stays bounded), with its index.

Safety, in the store's terms:

- the merged part is written and indexed first, outside the manifest (a crash leaves an
  uncommitted file that the next ingest's cleanup removes);
- one manifest write swaps it in: every file entry that had a part of that day now lists the
  merged part instead (the entries, their row counts and content hashes stay, so re-ingesting
  a file already in the store is still skipped);
- the replaced parts are *retired*, not deleted: hunts that listed them before the swap can
  still read them for ``SIGHTLINE_RETIRE_GRACE_S`` (default 3600 s); later compactions delete
  them.

Each day is compacted under the workspace's writer lock, one day at a time, so an ingest or
the collector waits at most for one day's merge.  The current UTC day is left alone unless
asked (the collector is still writing it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ..schema import FLOW_SCHEMA
from .index import build_part_index, prune_orphans
from .layout import parts_whole_ms
from .workspace import Workspace
from .writer import ROW_GROUP_ROWS, read_runs, write_sorted_runs

log = logging.getLogger("sightline.compact")


@dataclass
class DayResult:
    day: str
    parts_in: int
    rows: int
    seconds: float
    part: str


@dataclass
class CompactSummary:
    days: list[DayResult] = field(default_factory=list)
    retired_deleted: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    """Days left as they were, with the reason (e.g. a part that cannot be read)."""

    @property
    def parts_in(self) -> int:
        return sum(d.parts_in for d in self.days)

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.days)


def _day_of(rel: str) -> str | None:
    parts = Path(rel).parts
    if len(parts) >= 3 and parts[0] == "flows" and parts[1].startswith("day="):
        return parts[1][4:]
    return None


def day_parts(ws: Workspace) -> dict[str, list[str]]:
    """Committed flow parts (paths relative to the workspace) by day."""
    out: dict[str, set[str]] = {}
    for entry in ws.manifest().get("files", {}).values():
        for rel in entry.get("parts", []):
            day = _day_of(rel)
            if day is not None:
                out.setdefault(day, set()).add(rel)
    return {d: sorted(v) for d, v in sorted(out.items())}


def _delete_expired(ws: Workspace) -> int:
    """Delete retired parts past their grace period and forget them.  Call under lock."""
    manifest = ws.manifest()
    retired = manifest.get("retired", {})
    if not retired:
        return 0
    keep = set(ws.retired_files())
    gone = [rel for rel in retired if str((ws.root / rel).resolve()) not in keep]
    for rel in gone:
        try:
            (ws.root / rel).unlink()
        except FileNotFoundError:
            pass
        del retired[rel]
    if gone:
        ws.write_manifest(manifest)
    return len(gone)


def compact_day(ws: Workspace, day: str, rels: list[str]) -> DayResult | None:
    """Merge the committed parts ``rels`` of ``day`` into one; None if they changed meanwhile."""
    t0 = time.perf_counter()
    name = "c" + hashlib.sha256("\n".join(rels).encode()).hexdigest()[:16] + ".parquet"
    new_rel = str(Path("flows") / f"day={day}" / name)
    dst = ws.root / new_rel
    stage = ws.staging_dir / f"compact-{day}"
    stage.mkdir(parents=True, exist_ok=True)
    tmp = stage / name
    with ws.lock():
        current = set(day_parts(ws).get(day, []))
        if not set(rels) <= current:  # another compaction got there first
            return None
        paths = [ws.root / r for r in rels]
        rows = write_sorted_runs(
            read_runs(paths, FLOW_SCHEMA), tmp, FLOW_SCHEMA, ROW_GROUP_ROWS, ts_ms=parts_whole_ms(paths)
        )
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
        build_part_index(ws, dst)
        manifest = ws.manifest()
        gone = set(rels)
        for entry in manifest.get("files", {}).values():
            parts = entry.get("parts", [])
            if gone & set(parts):
                entry["parts"] = [p for p in parts if p not in gone] + [new_rel]
        now = time.time()
        manifest.setdefault("retired", {}).update({rel: now for rel in rels})
        ws.write_manifest(manifest)  # the swap: readers see the old parts or the merged one
    stage.rmdir()
    secs = time.perf_counter() - t0
    log.info("compact %s: %d parts, %d rows -> %s in %.1fs", day, len(rels), rows, new_rel, secs)
    return DayResult(day=day, parts_in=len(rels), rows=rows, seconds=round(secs, 3), part=new_rel)


def compact(
    ws: Workspace,
    *,
    days: list[str] | None = None,
    min_parts: int = 2,
    include_today: bool = False,
    progress: Callable[[DayResult], None] | None = None,
) -> CompactSummary:
    """Compact every day (or those in ``days``) that has at least ``min_parts`` parts."""
    summary = CompactSummary()
    with ws.lock():
        summary.retired_deleted = _delete_expired(ws)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for day, rels in day_parts(ws).items():
        if days is not None and day not in days:
            continue
        if (day >= today and not include_today) or len(rels) < max(min_parts, 1):
            continue
        try:
            res = compact_day(ws, day, rels)
        except (OSError, pa.ArrowException) as e:  # an unreadable part: that day stays as it is
            shutil.rmtree(ws.staging_dir / f"compact-{day}", ignore_errors=True)
            log.error("compact %s: not compacted, its parts stay as they are: %s", day, e)
            summary.failed[day] = str(e)[:300]
            continue
        if res is not None:
            summary.days.append(res)
            if progress:
                progress(res)
    with ws.lock():
        prune_orphans(ws)
    return summary


__all__ = ["compact", "compact_day", "day_parts", "CompactSummary", "DayResult"]
