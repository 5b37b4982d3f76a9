"""What the dashboard reads from a workspace, cached until the files change.

Nothing here filters by TLP: :mod:`sightline.serve.access` does that per request.  A missing
or unreadable file gives an empty view plus a problem message shown on the page, never a
crash (the dashboard must stay up while a hunt rewrites its outputs).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SightlineError
from ..findings import Findings, Window, load, summarize
from ..store import Workspace

__all__ = ["WorkspaceView", "Snapshot"]

log = logging.getLogger(__name__)

_INDICATOR_COLUMNS = (
    "indicator_id",
    "type",
    "value",
    "port",
    "actor",
    "valid_from",
    "valid_until",
    "confidence",
    "tlp",
    "source",
    "description",
    "revoked",
)


@dataclass
class Snapshot:
    """Workspace data as of one request (shared, never mutated)."""

    findings: Findings
    indicators: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    manifest: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    indicator_table: Any = None  # pa.Table (INDICATOR_SCHEMA) or None, for exports


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _iso(v: Any) -> Any:
    return v.isoformat().replace("+00:00", "Z") if hasattr(v, "isoformat") else v


class WorkspaceView:
    """Reads findings, runs, manifest and indicators of ``ws``; re-reads only changed files."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._cache: dict[str, tuple[Any, Any, list[str]]] = {}

    @property
    def findings_path(self) -> Path:
        return self.ws.findings_dir / "latest.json"

    def _cached(self, key: str, stamp: Any, loader: Any) -> tuple[Any, list[str]]:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[1], hit[2]
        with self._load_lock:  # single flight: one thread parses a changed file
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[1], hit[2]
            problems: list[str] = []
            value = loader(problems)
            with self._lock:
                self._cache[key] = (stamp, value, problems)
            return value, problems

    def _load_findings(self, problems: list[str]) -> Findings:
        empty = Findings(generated_at="", window=Window(), inputs={}, organizations=[], summary=summarize([]))
        if not self.findings_path.exists():
            problems.append("no findings yet: run `sightline hunt` or `sightline detect` on this workspace")
            return empty
        try:
            return load(self.findings_path)
        except SightlineError as e:
            problems.append(f"{self.findings_path}: unreadable findings ({e.message}); re-run `sightline detect`")
            return empty

    def _load_runs(self, problems: list[str]) -> list[dict[str, Any]]:
        runs = []
        for p in sorted(self.ws.runs_dir.glob("*.json")) if self.ws.runs_dir.exists() else []:
            try:
                rec = json.loads(p.read_text("utf-8"))
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
            except (OSError, ValueError) as e:
                problems.append(f"{p}: run record skipped ({e})")
                continue
            rec.setdefault("run_id", p.stem)
            runs.append(rec)
        runs.sort(key=lambda r: str(r.get("started_at", "")), reverse=True)
        return runs

    def _load_manifest(self, problems: list[str]) -> dict[str, Any]:
        try:
            return self.ws.manifest()
        except Exception as e:  # a ConfigError with a hint; keep serving the rest
            problems.append(str(e))
            return {"version": 1, "files": {}}

    def _load_indicators(self, problems: list[str]) -> tuple[list[dict[str, Any]], Any]:
        try:
            from ..intel import read_indicators  # built by the intel area; may not exist yet
        except ImportError:
            read_indicators = None
        try:
            if read_indicators is not None:
                table = read_indicators(self.ws)
            elif self.ws.indicators_path.exists():
                import pyarrow.parquet as pq

                table = pq.read_table(self.ws.indicators_path)
            else:
                return [], None
        except Exception as e:  # the intel reader's own errors say what to do
            problems.append(f"indicators unavailable: {e}")
            return [], None
        if table is None:
            return [], None
        cols = [c for c in _INDICATOR_COLUMNS if c in table.column_names]
        rows = table.select(cols).to_pylist()
        for r in rows:
            for k in ("valid_from", "valid_until"):
                r[k] = _iso(r.get(k))
        return rows, table

    def snapshot(self) -> Snapshot:
        """Current workspace data (re-read where files changed since the last call)."""
        findings, p1 = self._cached("findings", _stamp(self.findings_path), self._load_findings)
        runs_stamp = (
            tuple(sorted((p.name, _stamp(p)) for p in self.ws.runs_dir.glob("*.json")))
            if self.ws.runs_dir.exists()
            else ()
        )
        runs, p2 = self._cached("runs", runs_stamp, self._load_runs)
        manifest, p3 = self._cached("manifest", _stamp(self.ws.manifest_path), self._load_manifest)
        ind_stamp = (
            _stamp(self.ws.indicators_path),
            tuple(sorted((p.name, _stamp(p)) for p in self.ws.intel_dir.glob("*")))
            if self.ws.intel_dir.exists()
            else (),
        )
        (indicators, table), p4 = self._cached("indicators", ind_stamp, self._load_indicators)
        return Snapshot(findings, indicators, runs, manifest, [*p1, *p2, *p3, *p4], table)
