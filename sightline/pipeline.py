"""The main job: ingest -> intel -> registry -> detect -> assess -> findings -> report.

Used by ``sightline hunt``, ``detect``, ``report`` and ``demo``.  Every stage is timed; the
run record (counts, seconds, peak memory) is stored under ``<workspace>/runs/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from .assess import assess, iso
from .detect import run_detection
from .engines import get_engine
from .enrich.orgs import load_orgs_csv, read_orgs, store_orgs
from .errors import SightlineError
from .ingest import IngestSummary, ingest_paths
from .report.findings import build_findings
from .schema import FLOW_SCHEMA, INDICATOR_SCHEMA
from .workspace import Workspace, atomic_write_json

log = logging.getLogger("sightline.pipeline")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class Stage:
    stage: str
    rows: int | None
    seconds: float
    peak_rss_mb: float


@dataclass
class RunRecord:
    run_id: str
    command: str
    started_at: str
    stages: list[Stage] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def timed(self, name: str) -> _Timer:
        return _Timer(self, name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "command": self.command,
            "started_at": self.started_at,
            "stages": [s.__dict__ for s in self.stages],
            "counts": self.counts,
            "notes": self.notes,
            "seconds": round(sum(s.seconds for s in self.stages), 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }


class _Timer:
    def __init__(self, run: RunRecord, name: str) -> None:
        self.run, self.name, self.rows = run, name, None

    def __enter__(self) -> _Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.run.stages.append(Stage(self.name, self.rows, round(time.perf_counter() - self.t0, 3), round(peak_rss_mb(), 1)))


def new_run(command: str) -> RunRecord:
    now = datetime.now(timezone.utc)
    rid = now.strftime("%Y%m%dT%H%M%S%fZ")
    return RunRecord(rid, command, now.strftime("%Y-%m-%dT%H:%M:%SZ"))


def read_indicators(ws: Workspace) -> pa.Table:
    try:
        from .intel import read_indicators as _read
    except ImportError:
        return INDICATOR_SCHEMA.empty_table()
    return _read(ws)


def add_intel(ws: Workspace, paths: Sequence[str | Path]) -> dict[str, Any]:
    from .intel import add_to_workspace, load_intel_files

    from .ingest import expand_paths

    load = load_intel_files(expand_paths(paths))
    counts = add_to_workspace(ws, load)
    return {"counts": counts, "report": load.report}


def workspace_state(ws: Workspace) -> str:
    """A stamp that changes whenever flows, intel, registry or geo change."""
    parts = []
    for p in (ws.manifest_path, ws.indicators_path, ws.orgs_path, ws.geo_dir, ws.root / "exposure"):
        if p.exists():
            st = p.stat()
            parts.append(f"{p.name}:{st.st_mtime_ns}:{st.st_size}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _host_info(engine: Any, ws: Workspace, hosts: pa.Table) -> dict[str, dict[str, Any]]:
    """ASN / AS organization / country for victim hosts, from the workspace geo tables."""
    try:
        from .enrich import geo
    except ImportError:
        return {}
    if not hasattr(geo, "lookup_hosts"):
        return {}
    try:
        return geo.lookup_hosts(engine, ws, hosts)
    except Exception as e:  # enrichment must never sink a hunt
        log.warning("geo enrichment skipped: %s", e)
        return {}


def _shared_checker(ws: Workspace) -> Callable[[str], str | None] | None:
    """``actor ip -> "category: list name"`` for the addresses assess treats as shared (crowded).

    The classifier marks more (cloud compute, VPN/datacenter ranges); those stay ordinary
    indicators here: an actor's rented VPS must not weigh less.  Multi-tenant addresses
    (resolver, CDN, SaaS, CRL/OCSP) and known scanners keep the meaning the old lists had."""
    try:
        from .enrich import shared_infra
    except ImportError:
        return None
    fn = getattr(shared_infra, "classifier", None)
    if fn is None:
        return None
    try:
        check = fn(ws)
    except Exception as e:
        log.warning("shared-infrastructure marks skipped: %s", e)
        return None

    def kind(ip: str) -> str | None:
        mark = check(ip)
        if mark is None or not (mark.multi_tenant or mark.category == "scanner"):
            return None
        return str(mark)

    return kind


def _sector_of() -> Callable[[str], str] | None:
    try:
        from .enrich.sector import classify_sector
    except ImportError:
        return None

    def f(name: str) -> str:
        res = classify_sector(name)
        return res[0] if isinstance(res, tuple) else str(res)

    return f


def _indexed_flows(ws: Workspace, files: list[str], indicators: pa.Table, mode: str) -> pa.Table | None:
    """Candidate flows from the indicator index, or None for a full scan.

    ``auto`` uses the index when it rules out at least half of the row groups; ``on`` always.
    Any index problem falls back to the full scan: the index may speed a hunt up, never sink it.
    """
    if mode == "off" or not files:
        return None
    try:
        from . import index as ix

        sel = (ix.candidate_row_groups if mode == "on" else ix.selective_row_groups)(ws, files, indicators)
        from .detect.sql import MATCH_COLUMNS

        return None if sel is None else ix.load_candidates(sel, indicators, list(MATCH_COLUMNS))
    except Exception as e:
        log.warning("indicator index not used (%s): scanning the whole store", e)
        return None


def _distinct_hosts(contacts: pa.Table) -> pa.Table:
    """The distinct victim hosts of the contacts (``host_ip4``, ``host_ip6``)."""
    import pyarrow.compute as pc

    v4 = pc.unique(contacts.column("host_ip4").drop_null()).cast(pa.uint32())
    v6 = pc.unique(contacts.column("host_ip6").drop_null()).cast(pa.binary(16))
    return pa.table({"host_ip4": pa.concat_arrays([v4, pa.nulls(len(v6), pa.uint32())]),
                     "host_ip6": pa.concat_arrays([pa.nulls(len(v4), pa.binary(16)), v6])})


def _index_flows_for(engine: Any, ws: Workspace, files: list[str]) -> Callable[..., None]:
    """Register, as a view, the stored flows of some addresses through the indicator index
    (the whole store when the index would select more than half of it).  ``columns`` names
    what the reader needs; the other columns are left null, not decoded."""
    from . import index as ix

    def flows_for(view: str, ips: pa.Table, columns: list[str] | None = None) -> None:
        ind = ix.ips_as_indicators(ips)
        sel = ix.selective_row_groups(ws, files, ind) if ips.num_rows else {}
        if sel is None:
            engine.register_parquet(view, files, FLOW_SCHEMA)
        else:
            engine.register_table(view, ix.load_candidates(sel, ind, columns) if sel else FLOW_SCHEMA.empty_table())

    return flows_for


def detect_workspace(ws: Workspace, *, engine_name: str = "duckdb", run: RunRecord | None = None,
                     engine_opts: dict[str, Any] | None = None, index: str | None = None) -> dict[str, Any]:
    """Hunt everything the workspace holds; store and return the findings document.

    ``index`` is ``auto`` (default; env ``SIGHTLINE_INDEX``), ``on`` or ``off``: whether to read
    only the row groups the indicator index selects (same findings either way).
    """
    run = run or new_run("detect")
    engine = get_engine(engine_name, **(engine_opts or {}))
    try:
        with run.timed("load") as t:
            indicators = read_indicators(ws)
            orgs = read_orgs(ws)
            files = ws.flow_files()
            t.rows = indicators.num_rows
        listed = int(indicators.num_rows)
        name_files = ws.name_files()
        if name_files:  # domains and certificates stand for the addresses name telemetry links them to
            from .detect.derive import derived_indicators

            with run.timed("derive") as t:
                derived = derived_indicators(engine, name_files, indicators)
                t.rows = derived.num_rows
                if derived.num_rows:
                    indicators = pa.concat_tables([indicators.cast(INDICATOR_SCHEMA), derived])
        mode = (index or os.environ.get("SIGHTLINE_INDEX") or "auto").lower()
        with run.timed("index") as t:
            candidates = _indexed_flows(ws, files, indicators, mode)
            t.rows = None if candidates is None else candidates.num_rows
        flows_for = _index_flows_for(engine, ws, files) if candidates is not None else None
        with run.timed("detect") as t:
            det = run_detection(engine, files, indicators, orgs, flows=candidates, flows_for=flows_for)
            t.rows = det.matched_flows
        for tm in det.timings:
            run.stages.append(Stage("detect." + tm["stage"], tm["rows"], tm["seconds"], round(peak_rss_mb(), 1)))
        # the engine's working tables are in Python now (or summarized there): free them for pivoting
        engine.release("matched", "contacts", "series", "host_baseline")
        with run.timed("enrich") as t:
            hosts = _distinct_hosts(det.contacts)
            info = _host_info(engine, ws, hosts) if hosts.num_rows else {}
            t.rows = len(info)
            del hosts
        with run.timed("assess") as t:
            result = assess(det, orgs, host_info=info, shared=_shared_checker(ws), sector_of=_sector_of())
            _intel_provenance(result.organizations, indicators)
            t.rows = len(result.organizations)
        matched_flows = det.matched_flows
        del det  # per-contact tables: the findings hold what is left of them
        engine.fit_memory()  # pivoting scans the flows again; the findings stay in Python meanwhile
        with run.timed("pivot") as t:
            result.suspected_infrastructure = _pivot(engine, result.organizations, flows_for)
            t.rows = len(result.suspected_infrastructure)
        with run.timed("actor_profile") as t:
            actor_infra, actor_summary = _actor_profile(engine, ws, result, indicators)
            t.rows = len(actor_infra)
        counts = ws.counts()
        m = ws.manifest().get("files", {}).values()
        lo = min((e["min_ts_us"] for e in m if e.get("min_ts_us") is not None), default=None)
        hi = max((e["max_ts_us"] for e in m if e.get("max_ts_us") is not None), default=None)
        to_iso = (lambda us: iso(datetime.fromtimestamp(us / 1e6, tz=timezone.utc)) if us is not None else None)
        extra: dict[str, Any] = {"workspace_state": workspace_state(ws), "actor_infrastructure": actor_infra,
                                 "actor_infrastructure_summary": actor_summary}
        exposure = _exposure_section(ws, result.organizations, orgs)
        if exposure is not None:
            extra["exposure"] = exposure
        doc = build_findings(
            result.organizations,
            window=(to_iso(lo), to_iso(hi)),
            inputs={"flows": counts["flows"], "indicators": listed,
                    "derived_indicators": int(indicators.num_rows) - listed,
                    "quarantined": counts["quarantined"], "files": counts["files"],
                    "matched_flows": matched_flows, "registry_organizations": len(set(orgs.column("org_id").to_pylist()))},
            stale_matches=result.stale_matches,
            suspected_infrastructure=result.suspected_infrastructure,
            extra=extra,
            run_id=run.run_id,
            engine=engine_name,
        )
        from .suppress import apply_suppressions  # allowlists, suppressions, detector control (issue 12)

        doc = apply_suppressions(doc, ws, copy=False)
    finally:
        engine.close()
    ws.ensure()
    atomic_write_json(ws.findings_dir / "latest.json", doc)
    run.counts.update({"organizations": doc["summary"]["by_verdict"], "flows": doc["inputs"]["flows"],
                       "indicators": doc["inputs"]["indicators"], "quarantined": doc["inputs"]["quarantined"]})
    return doc


def _pivot(engine: Any, organizations: list[dict], flows_for: Callable[[str, pa.Table], None] | None = None) -> list[dict]:
    import ipaddress

    from .detect.pivot import suspected_infrastructure

    ranked: list[tuple[int, tuple[int | None, bytes | None]]] = []
    host_org: dict[str, str] = {}
    for o in organizations:
        for h in o["hosts"]:
            host_org[h["ip"]] = o["org_id"]
            if h["verdict"] == "compromised":
                a = ipaddress.ip_address(h["ip"])
                ranked.append((-int(h["confidence"]), (int(a), None) if a.version == 4 else (None, a.packed)))
    ranked.sort(key=lambda r: r[0])  # most confident first (pivoting keeps the top ones)
    return suspected_infrastructure(engine, [h for _, h in ranked], host_org, flows_for)


def _intel_provenance(organizations: list[dict], indicators: pa.Table) -> None:
    """Record on each evidence row which intel produced it: sources, when they were imported,
    and when the intel first named the indicator (as against first seen in traffic)."""
    if not organizations or indicators.num_rows == 0:
        return
    prov: dict[str, dict[str, Any]] = {}
    for r in indicators.select(["value", "source", "source_id", "imported_at", "valid_from"]).to_pylist():
        p = prov.setdefault(r["value"], {"sources": set(), "imported_at": None, "first_seen": None})
        if r["source"]:
            p["sources"].add(r["source"])
        if r["imported_at"] is not None and (p["imported_at"] is None or r["imported_at"] > p["imported_at"]):
            p["imported_at"] = r["imported_at"]
        if r["valid_from"] is not None and (p["first_seen"] is None or r["valid_from"] < p["first_seen"]):
            p["first_seen"] = r["valid_from"]
    for o in organizations:
        for h in o["hosts"]:
            for e in h["evidence"]:
                p = prov.get(e["indicator"])
                if p:
                    e["intel_sources"] = sorted(p["sources"])
                    e["intel_imported_at"] = iso(p["imported_at"])
                    e["intel_first_seen"] = iso(p["first_seen"])


def _actor_profile(engine: Any, ws: Workspace, result: Any, indicators: pa.Table) -> tuple[list, dict]:
    import ipaddress

    from .assess.infrastructure import actor_profile

    ips = sorted({e.get("actor_ip") or e["indicator"] for o in result.organizations for h in o["hosts"]
                  for e in h["evidence"]} | {s["ip"] for s in result.suspected_infrastructure})
    geo: dict[str, dict[str, Any]] = {}
    if ips:
        v4, v6 = [], []
        for ip in ips:
            try:
                a = ipaddress.ip_address(ip)
            except ValueError:
                continue
            v4.append(int(a) if a.version == 4 else None)
            v6.append(a.packed if a.version == 6 else None)
        geo = _host_info(engine, ws, pa.table({"host_ip4": pa.array(v4, pa.uint32()),
                                                "host_ip6": pa.array(v6, pa.binary(16))}))
    windows: dict[str, tuple[str | None, str | None]] = {}
    if indicators.num_rows:
        for r in indicators.select(["value", "valid_from", "valid_until"]).to_pylist():
            windows[r["value"]] = (iso(r["valid_from"]), iso(r["valid_until"]))
    return actor_profile(result.organizations, suspected=result.suspected_infrastructure,
                         intel_windows=windows, geo=geo)


def _exposure_section(ws: Workspace, organizations: list[dict], orgs: pa.Table) -> list[dict] | None:
    try:
        from . import exposure as ex
    except ImportError:
        return None
    if not all(hasattr(ex, n) for n in ("read_services", "assess_exposure", "load_kev")):
        return None
    try:
        services = ex.read_services(ws)
        if services is None or services.num_rows == 0:
            return None
        rows = []
        for o in organizations:
            for h in o["hosts"]:
                ports = {e.get("dst_port") for e in h["evidence"] if e.get("direction") == "inbound"} or {None}
                for p in ports:
                    rows.append({"ip": h["ip"], "port": p, "org_id": o["org_id"], "activity": h["verdict"]})
        activity = pa.table({
            "ip": pa.array([r["ip"] for r in rows], pa.string()),
            "port": pa.array([r["port"] for r in rows], pa.int32()),
            "org_id": pa.array([r["org_id"] for r in rows], pa.string()),
            "activity": pa.array([r["activity"] for r in rows], pa.string()),
        })
        actor_cves: list[str] = []
        try:
            from .intel.store import intel_status

            actor_cves = list(intel_status(ws).get("actor_cves", []))
        except (ImportError, OSError, SightlineError) as e:
            log.warning("actor-linked CVEs unavailable: %s", e)
        return ex.assess_exposure(services, ex.load_kev(ws), activity=activity, orgs=orgs, actor_cves=actor_cves)
    except Exception as e:
        log.warning("exposure section skipped: %s", e)
        return None


def latest_findings(ws: Workspace, *, engine_name: str = "duckdb") -> dict[str, Any]:
    """The workspace's findings, re-detected if flows, intel or registry changed since."""
    p = ws.findings_dir / "latest.json"
    if p.exists():
        doc = json.loads(p.read_text("utf-8"))
        if doc.get("workspace_state") == workspace_state(ws):
            from .suppress import refresh_findings  # re-applies changed allowlists/suppressions

            fresh = refresh_findings(ws, doc)
            if fresh is not None:
                return fresh
    return detect_workspace(ws, engine_name=engine_name)


def write_run(ws: Workspace, run: RunRecord) -> Path:
    ws.ensure()
    path = ws.runs_dir / f"{run.run_id}.json"
    atomic_write_json(path, run.as_dict())
    return path


@dataclass
class HuntResult:
    findings: dict[str, Any]
    ingest: IngestSummary | None
    run: RunRecord
    outputs: list[Path]


def hunt(
    ws: Workspace,
    *,
    telemetry: Sequence[str | Path] = (),
    intel: Sequence[str | Path] = (),
    orgs_csv: str | Path | None = None,
    geo: Sequence[str | Path] = (),
    out: Path | None = None,
    engine_name: str = "duckdb",
    sensor: str | None = None,
    on_file: Callable[[Any], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> HuntResult:
    """Add what is given to the workspace, then hunt everything the workspace holds."""
    run = new_run("hunt")
    ws.ensure()
    stage = on_stage or (lambda s: None)
    summary = None
    if orgs_csv:
        stage("registry")
        with run.timed("orgs") as t:
            load = load_orgs_csv(orgs_csv)
            t.rows = store_orgs(ws, load)
            if load.bad:
                run.notes.append(f"{len(load.bad)} bad registry row(s) skipped in {orgs_csv}")
    if geo:
        stage("geo")
        from .enrich import geo as geo_mod

        with run.timed("geo") as t:
            from .ingest import expand_paths

            for g in expand_paths(geo):
                geo_mod.load_geo(ws, g)
    if intel:
        stage("intel")
        with run.timed("intel") as t:
            res = add_intel(ws, intel)
            t.rows = sum(v for v in res["counts"].values() if isinstance(v, int)) if isinstance(res["counts"], dict) else None
    if telemetry:
        stage("ingest")
        with run.timed("ingest") as t:
            summary = ingest_paths(ws, telemetry, sensor=sensor, progress=on_file)
            t.rows = summary.rows
    stage("detect")
    doc = detect_workspace(ws, engine_name=engine_name, run=run)
    outputs: list[Path] = []
    if out is not None:
        stage("report")
        with run.timed("report"):
            outputs = write_outputs(doc, out)
    write_run(ws, run)
    return HuntResult(doc, summary, run, outputs)


def write_outputs(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "findings.json", doc)
    from .report.html import write_html

    write_html(doc, out / "report.html")
    return [out / "findings.json", out / "report.html"]


__all__ = [
    "RunRecord",
    "HuntResult",
    "hunt",
    "detect_workspace",
    "latest_findings",
    "write_outputs",
    "write_run",
    "new_run",
    "add_intel",
    "read_indicators",
    "workspace_state",
]
