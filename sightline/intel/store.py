"""The workspace's indicator table: upsert, revocation, reading, ingest reports.

Revocation keeps the rows and sets ``revoked = True`` (an analyst can still see that an
indicator existed and was withdrawn); :func:`read_indicators` returns only active rows.
Re-importing a newer version of a STIX/MISP object replaces all rows that came from its
older version (a changed pattern drops the values it no longer names).  A CSV/TSV table or
plain list is a feed snapshot: re-importing a file of the same name withdraws (marks revoked)
the stored indicators it no longer lists.

Files (under ``<workspace>/intel/``): ``indicators.parquet`` (INDICATOR_SCHEMA),
``reports/<UTC time>.json`` (one per import) and ``status.json`` (latest report per source
plus totals), all written atomically.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ConfigError
from ..schema import INDICATOR_SCHEMA
from ..store import Workspace, atomic_write_json, atomic_write_parquet
from .model import IntelLoad


def _read_all(path: Path) -> pa.Table:
    if not path.exists():
        return INDICATOR_SCHEMA.empty_table()
    try:
        t = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise ConfigError(
            f"indicator table is unreadable: {e}",
            path=path,
            hint="delete it and re-add the intel with `sightline intel add`",
        ) from e
    return t.select(INDICATOR_SCHEMA.names).cast(INDICATOR_SCHEMA)


def read_indicators(ws: Workspace, *, include_revoked: bool = False) -> pa.Table:
    """The workspace's indicators (INDICATOR_SCHEMA): active, non-revoked rows by default.

    Returns an empty table when no intel was added.
    """
    t = _read_all(ws.indicators_path)
    if include_revoked or t.num_rows == 0:
        return t
    return t.filter(pc.invert(pc.fill_null(t.column("revoked"), False)))


def add_to_workspace(ws: Workspace, load: IntelLoad) -> dict[str, int]:
    """Upsert a load into the workspace's indicator table (by ``indicator_id``), atomically.

    Returns counts ``added``, ``updated`` (ids already stored), ``replaced`` (rows of an
    older object version no longer named by the new one, removed), ``revoked`` (rows newly
    marked revoked by the source), ``withdrawn`` (rows of a re-imported CSV/list it no longer
    lists, marked revoked), ``total`` and ``active`` rows after the import.  Fills each source
    report's ``updated`` count and stores the ingest report.
    """
    with ws.lock():
        old = _read_all(ws.indicators_path)
        new = load.table.cast(INDICATOR_SCHEMA)
        new_ids = pa.array(sorted(set(new.column("indicator_id").to_pylist())), pa.string())
        old_ids = old.column("indicator_id")
        in_new = pc.is_in(old_ids, value_set=new_ids)
        by_object = pc.is_in(old.column("source_id"), value_set=pa.array(sorted(load.replaced_ids), pa.string()))
        by_object = pc.fill_null(by_object, False)
        keep_mask = pc.invert(pc.or_(in_new, by_object))
        replaced = int(pc.sum(pc.and_(by_object, pc.invert(in_new))).as_py() or 0)
        updated = int(pc.sum(in_new).as_py() or 0)
        kept = old.filter(keep_mask)
        # revocation: mark rows of revoked objects (from any source: object ids are global)
        kept, newly = _revoke_where(kept, "source_id", load.revoked_ids)
        revoked_n = int(pc.sum(newly).as_py() or 0)
        # snapshot sources (CSV, plain lists): what the new file no longer names is withdrawn,
        # unless the file yielded nothing at all (a broken download must not empty a feed)
        loaded_by_source = {r.source: r.loaded for r in load.report}
        live = {src for src in load.snapshot_sources if loaded_by_source.get(src, 0) > 0}
        kept, newly = _revoke_where(kept, "source", live)
        withdrawn: dict[str, int] = {}
        for src in pc.filter(kept.column("source"), newly).to_pylist():
            withdrawn[src] = withdrawn.get(src, 0) + 1
        # sources withdrawn whole (a feed's event dropped from its manifest)
        kept, newly = _revoke_where(kept, "source", set(load.withdrawn_sources))
        for src in pc.filter(kept.column("source"), newly).to_pylist():
            withdrawn[src] = withdrawn.get(src, 0) + 1
        for src in sorted(set(load.snapshot_sources) - set(live)):
            for rep in load.report:
                if rep.source == src:
                    rep.notes.append(
                        "nothing loaded from this file: stored indicators of this source kept as they were"
                    )
        merged = pa.concat_tables([kept, new]) if new.num_rows else kept
        atomic_write_parquet(ws.indicators_path, merged)

        stored_ids = set(old_ids.to_pylist())
        per_source: dict[str, int] = {}
        for src, iid in zip(new.column("source").to_pylist(), new.column("indicator_id").to_pylist()):
            if iid in stored_ids:
                per_source[src] = per_source.get(src, 0) + 1
        for rep in load.report:
            rep.updated = per_source.get(rep.source, 0)
            rep.withdrawn = withdrawn.get(rep.source, 0)
        active = int(pc.sum(pc.invert(pc.fill_null(merged.column("revoked"), False))).as_py() or 0)
        counts = {
            "added": new.num_rows - updated,
            "updated": updated,
            "replaced": replaced,
            "revoked": revoked_n,
            "withdrawn": sum(withdrawn.values()),
            "total": merged.num_rows,
            "active": active,
        }
        _store_report(ws, load, counts)
    return counts


def _revoke_where(t: pa.Table, column: str, values: set[str]) -> tuple[pa.Table, pa.ChunkedArray | pa.Array]:
    """Mark revoked the rows whose ``column`` is in ``values``; also return which rows that newly revoked."""
    if not values or t.num_rows == 0:
        return t, pa.array(np.zeros(t.num_rows, bool))
    hit = pc.fill_null(pc.is_in(t.column(column), value_set=pa.array(sorted(values), pa.string())), False)
    was = pc.fill_null(t.column("revoked"), False)
    t = t.set_column(t.schema.get_field_index("revoked"), INDICATOR_SCHEMA.field("revoked"), pc.or_(was, hit))
    return t, pc.and_(hit, pc.invert(was))


def _store_report(ws: Workspace, load: IntelLoad, counts: dict[str, int]) -> None:
    now = datetime.now(UTC)
    doc = {
        "imported_at": now.isoformat(),
        "counts": counts,
        "actor_cves": load.actor_cves,
        "actors": load.actors,
        "sources": [r.to_dict() for r in load.report],
        "refused": [r.to_dict() for r in load.refused],
    }
    reports = ws.intel_dir / "reports"
    atomic_write_json(reports / (now.strftime("%Y%m%dT%H%M%S%fZ") + ".json"), doc)
    status = intel_status(ws)
    for r in load.report:
        d = r.to_dict()
        d["skips"] = d["skips"][:50]  # the full list stays in the per-import report
        d["skip_reasons"] = r.skip_reasons()
        d["imported_at"] = now.isoformat()
        status["sources"][r.source] = d
    status["last_import"] = now.isoformat()
    status["totals"] = {"total": counts["total"], "active": counts["active"]}
    status["actor_cves"] = sorted(set(status.get("actor_cves", [])) | set(load.actor_cves))
    atomic_write_json(ws.intel_dir / "status.json", status)


def intel_status(ws: Workspace) -> dict[str, Any]:
    """The stored intel status: latest report per source, totals, actor CVEs."""
    p = ws.intel_dir / "status.json"
    if not p.exists():
        return {"sources": {}, "totals": {"total": 0, "active": 0}, "actor_cves": [], "last_import": None}
    try:
        return json.loads(p.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"intel status is unreadable: {e}", path=p, hint="delete it; the next `sightline intel add` writes it again"
        ) from e


def actor_cves(ws: Workspace) -> list[str]:
    """CVEs the stored intel links to the actor (STIX ``exploits``/``targets`` -> vulnerability)."""
    return list(intel_status(ws).get("actor_cves", []))


__all__ = ["add_to_workspace", "read_indicators", "intel_status", "actor_cves"]
