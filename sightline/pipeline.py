"""The main job: ingest -> intel -> registry -> detect -> assess -> findings -> report.

Used by ``sightline hunt``, ``detect``, ``report`` and ``demo``.  Every stage is timed; the
run record (counts, seconds, peak memory) is stored under ``<workspace>/runs/``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import __version__
from .assess import assess, iso, record_provenance
from .core.settings import settings
from .detect import run_detection
from .engines import get_engine
from .enrich.orgs import load_orgs_csv, read_orgs, store_orgs
from .errors import SightlineError
from .findings import Findings, save
from .ingest import IngestSummary, ingest_paths
from .schema import INDICATOR_SCHEMA
from .store import Workspace, atomic_write_json

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
        self.run, self.name = run, name
        self.rows: int | None = None

    def __enter__(self) -> _Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.run.stages.append(
            Stage(self.name, self.rows, round(time.perf_counter() - self.t0, 3), round(peak_rss_mb(), 1))
        )


def new_run(command: str) -> RunRecord:
    now = datetime.now(UTC)
    rid = now.strftime("%Y%m%dT%H%M%S%fZ")
    return RunRecord(rid, command, now.strftime("%Y-%m-%dT%H:%M:%SZ"))


def read_indicators(ws: Workspace) -> pa.Table:
    try:
        from .intel import read_indicators as _read
    except ImportError:
        return INDICATOR_SCHEMA.empty_table()
    return _read(ws)


def add_intel(ws: Workspace, paths: Sequence[str | Path], *, include_non_ids: bool = False) -> dict[str, Any]:
    """Add intel files, directories and globs; files that cannot be used are skipped (listed
    in ``refused``), and an error is raised only when none of them gave anything."""
    from .errors import IntelError
    from .intel import add_to_workspace, load_intel_files
    from .intel.loader import non_ids_rule

    load = load_intel_files(paths, include_non_ids=non_ids_rule(ws.root, include_non_ids), skip_bad_files=True)
    if not load.report:
        first = load.refused[0] if load.refused else None
        raise IntelError(
            "none of the intel given holds a usable indicator"
            + (f": {first.path}: {first.reason}" if first else "")
            + (f" (and {len(load.refused) - 1} more file(s))" if len(load.refused) > 1 else ""),
            hint=(first.hint if first and first.hint else None) or "pass STIX 2.1, MISP, CSV or lists of indicators",
        )
    counts = add_to_workspace(ws, load)
    return {"counts": counts, "report": load.report, "refused": load.refused}


def workspace_state(ws: Workspace) -> str:
    """A stamp that changes whenever flows, intel, registry or geo change."""
    parts = []
    for p in (ws.manifest_path, ws.indicators_path, ws.orgs_path, ws.geo_dir, ws.root / "exposure"):
        if p.exists():
            st = p.stat()
            parts.append(f"{p.name}:{st.st_mtime_ns}:{st.st_size}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _geo_lookup(engine: Any, ws: Workspace) -> Callable[[list[str]], dict[str, dict[str, Any]]]:
    """ASN / AS organization / country of addresses, from the workspace geo tables ({} without)."""
    import ipaddress

    def lookup(ips: list[str]) -> dict[str, dict[str, Any]]:
        v4: list[int | None] = []
        v6: list[bytes | None] = []
        for ip in ips:
            try:
                a = ipaddress.ip_address(ip)
            except ValueError:
                continue
            v4.append(int(a) if a.version == 4 else None)
            v6.append(a.packed if a.version == 6 else None)
        return _host_info(
            engine, ws, pa.table({"host_ip4": pa.array(v4, pa.uint32()), "host_ip6": pa.array(v6, pa.binary(16))})
        )

    return lookup


def _host_info(engine: Any, ws: Workspace, hosts: pa.Table) -> dict[str, dict[str, Any]]:
    from .enrich import geo

    if not hosts.num_rows:
        return {}
    try:
        return geo.lookup_hosts(engine, ws, hosts)
    except Exception as e:  # enrichment must never sink a hunt
        log.warning("geo enrichment skipped: %s", e)
        return {}


def _shared_checker(
    ws: Workspace, engine: Any = None, name_files: Sequence[str] = (), actor_ips: Sequence[str] = ()
) -> Callable[[str], Any] | None:
    """``actor ip -> SharedMark | None``: every mark (multi-tenant, rented compute, scanner) the
    lists give, and -- where name telemetry (Zeek ssl/dns, Suricata tls/dns) shows an address
    serving a popular site -- that; what each means for a verdict is decided in assess
    (:func:`sightline.assess.guards_for`)."""
    from .enrich import shared_infra

    try:
        listed = shared_infra.classifier(ws)
    except Exception as e:
        log.warning("shared-infrastructure marks skipped: %s", e)
        return None
    served: dict[str, Any] = {}
    if engine is not None and name_files and actor_ips:
        try:
            served = shared_infra.served_name_marks(
                engine, list(name_files), actor_ips, shared_infra.name_classifier(ws)
            )
        except Exception as e:  # names enrich a hunt; they must never sink one
            log.warning("names served by actor addresses not used: %s", e)

    def mark(ip: str) -> Any:
        m = listed(ip)
        if m is not None and m.multi_tenant:
            return m
        return served.get(ip) or m

    return mark


def _as_org_checker() -> Callable[[str], Any] | None:
    from .enrich import shared_infra

    return getattr(shared_infra, "classify_as_org", None)


def _sector_of() -> Callable[[str], str]:
    from .enrich.sector import classify_sector

    def f(name: str) -> str:
        res = classify_sector(name)
        return str(res[0]) if isinstance(res, tuple) else str(res)

    return f


def _distinct_hosts(contacts: pa.Table) -> pa.Table:
    """The distinct victim hosts of the contacts (``host_ip4``, ``host_ip6``)."""
    import pyarrow.compute as pc

    v4 = pc.unique(contacts.column("host_ip4").drop_null()).cast(pa.uint32())
    v6 = pc.unique(contacts.column("host_ip6").drop_null()).cast(pa.binary(16))
    return pa.table(
        {
            "host_ip4": pa.concat_arrays([v4, pa.nulls(len(v6), pa.uint32())]),
            "host_ip6": pa.concat_arrays([pa.nulls(len(v4), pa.binary(16)), v6]),
        }
    )


def _actor_addresses(det: Any) -> list[str]:
    """Distinct actor addresses of the contacts (text)."""
    from .net import ip_text

    t = det.contacts.select(["actor_ip4", "actor_ip6"]).group_by(["actor_ip4", "actor_ip6"]).aggregate([])
    found = {ip_text(a, b) for a, b in zip(t.column(0).to_pylist(), t.column(1).to_pylist())}
    return sorted(ip for ip in found if ip is not None)


def intel_coverage(indicators: pa.Table, window: tuple[int | None, int | None]) -> list[str]:
    """Notes when the hunt cannot say "nothing found": no usable indicator, or none whose
    validity window meets the telemetry's time range (``window`` in microseconds)."""
    import pyarrow.compute as pc

    if indicators.num_rows == 0:
        return [
            "no usable indicators: the hunt cannot find the actor's victims without intel "
            "(add some with `sightline intel add FILE` or `--intel`)"
        ]
    live = indicators.filter(pc.invert(pc.fill_null(indicators.column("revoked"), False)))
    if live.num_rows == 0:
        return ["every indicator is revoked: nothing to hunt with"]
    lo, hi = window
    if lo is None or hi is None:
        return []  # no telemetry: ingest said so; there is no time range to compare with
    vf = pc.cast(live.column("valid_from"), pa.int64()).to_numpy(zero_copy_only=False)
    vu = pc.cast(live.column("valid_until"), pa.int64()).to_numpy(zero_copy_only=False)
    import numpy as np

    vf = np.where(np.isnan(vf.astype(float)), -np.inf, vf.astype(float))
    vu = np.where(np.isnan(vu.astype(float)), np.inf, vu.astype(float))
    overlap = (vf <= hi) & (vu >= lo)
    if not overlap.any():
        return [
            f"none of the {live.num_rows} indicators was valid during the telemetry's time range: every match "
            'would be stale, so "no activity found" says nothing (check the intel\'s validity windows)'
        ]
    return []


@contextlib.contextmanager
def bulk_objects() -> Iterator[None]:
    """Python's cyclic garbage collector off while a hunt makes its findings.

    A big hunt's findings are hundreds of thousands of small objects (evidence rows, hosts) made
    at once, none of them part of a reference cycle; the collector, re-scanning the growing heap
    as they are made, cost more than making them (measured: 408k evidence rows made in 0.47 s
    without it, 1.13 s with it).  It is back on when the hunt ends: cycles made meanwhile are
    collected then."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def detect_workspace(
    ws: Workspace,
    *,
    engine_name: str = "duckdb",
    run: RunRecord | None = None,
    engine_opts: dict[str, Any] | None = None,
    index: str | None = None,
) -> Findings:
    """Hunt everything the workspace holds; store and return the findings.

    ``index`` is ``auto`` (default; env ``SIGHTLINE_INDEX``), ``on`` or ``off``: whether to read
    only the row groups the indicator index selects (same findings either way).
    """
    with bulk_objects():
        return _detect_workspace(ws, engine_name=engine_name, run=run, engine_opts=engine_opts, index=index)


def _detect_workspace(
    ws: Workspace,
    *,
    engine_name: str,
    run: RunRecord | None,
    engine_opts: dict[str, Any] | None,
    index: str | None,
) -> Findings:
    from .assess.infrastructure import profile_actors
    from .config import load_config
    from .detect.pivot import pivot
    from .detect.sql import MATCH_COLUMNS
    from .exposure import exposure_section
    from .findings import build_findings
    from .findings.share import content_level
    from .store import index as ix
    from .suppress import apply_suppressions

    run = run or new_run("detect")
    config = load_config(workspace=ws.root)
    dflt = config.sharing.default_tlp
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
        mode = (index or settings().index_mode).lower()
        with run.timed("index") as t:
            # the candidate rows become the engine's ``flows`` view (read by the engine itself
            # where it runs elsewhere, e.g. Spark executors)
            t.rows = ix.register_candidate_flows(engine, ws, files, indicators, mode, list(MATCH_COLUMNS))
        indexed = t.rows is not None
        flows_for = ix.flows_for_addresses(engine, ws, files) if indexed else None
        with run.timed("detect") as t:
            det = run_detection(
                engine, files, indicators, orgs, flows_for=flows_for, flows_registered=indexed, params=config.detection
            )
            t.rows = det.matched_flows
        for tm in det.timings:
            run.stages.append(Stage("detect." + tm["stage"], tm["rows"], tm["seconds"], round(peak_rss_mb(), 1)))
        # the engine's working tables are in Python now (or summarized there): free them for pivoting
        engine.release("matched", "contacts", "series", "fail_series", "host_baseline", "actor_org")
        geo_lookup = _geo_lookup(engine, ws)
        with run.timed("enrich") as t:
            hosts = _distinct_hosts(det.contacts)
            info = _host_info(engine, ws, hosts)
            actor_ips = _actor_addresses(det)
            info.update(geo_lookup(actor_ips))  # actor addresses: AS organizations of shared services
            shared = _shared_checker(ws, engine, name_files, actor_ips)
            t.rows = len(info)
            del hosts
        with run.timed("assess") as t:
            result = assess(
                det,
                orgs,
                host_info=info,
                shared=shared,
                sector_of=_sector_of(),
                internal_ranges=config.network.internal_ranges,
                as_org_mark=_as_org_checker(),
                params=config.detection,
            )
            record_provenance(result.organizations, indicators)
            t.rows = len(result.organizations)
        matched_flows = det.matched_flows
        del det  # per-contact tables: the findings hold what is left of them
        engine.fit_memory()  # pivoting scans the flows again; the findings stay in Python meanwhile
        with run.timed("pivot") as t:
            result.suspected_infrastructure = pivot(engine, result.organizations, flows_for, dflt, config.detection)
            t.rows = len(result.suspected_infrastructure)
        with run.timed("actor_profile") as t:
            actors = profile_actors(result.organizations, result.suspected_infrastructure, indicators, geo_lookup, dflt)
            t.rows = len(actors[0])
        counts = ws.counts()
        m = ws.manifest().get("files", {}).values()
        lo = min((e["min_ts_us"] for e in m if e.get("min_ts_us") is not None), default=None)
        hi = max((e["max_ts_us"] for e in m if e.get("max_ts_us") is not None), default=None)

        def to_iso(us: int | None) -> str | None:
            return iso(datetime.fromtimestamp(us / 1e6, tz=UTC)) if us is not None else None

        with run.timed("build") as t:
            doc = build_findings(
                result.organizations,
                window=(to_iso(lo), to_iso(hi)),
                inputs={
                    "flows": counts["flows"],
                    "indicators": listed,
                    "derived_indicators": int(indicators.num_rows) - listed,
                    "quarantined": counts["quarantined"],
                    "files": counts["files"],
                    "matched_flows": matched_flows,
                    "registry_organizations": len(set(orgs.column("org_id").to_pylist())),
                },
                stale_matches=result.stale_matches,
                suspected_infrastructure=result.suspected_infrastructure,
                actor_infrastructure=actors,
                exposure=exposure_section(ws, result.organizations, orgs, default_tlp=dflt, engine=engine),
                run_id=run.run_id,
                engine=engine_name,
                workspace_state=workspace_state(ws),
            )
            t.rows = sum(len(o.hosts) for o in doc.organizations)
        coverage = intel_coverage(read_indicators(ws), (lo, hi))
        if coverage:
            doc.notes = [*(doc.notes or []), *coverage]
        with run.timed("suppress") as t:
            doc = apply_suppressions(doc, ws, config, copy=False)  # allowlists, suppressions, detector control
            doc.tlp = content_level(doc, dflt).label
            t.rows = len(doc.suppressed or [])
    finally:
        engine.close()
    ws.ensure()
    with run.timed("store"):
        save(doc, ws.findings_dir / "latest.json")  # compact: read by sightline
    with run.timed("cases"):
        _sync_cases(ws, doc, run)
    run.counts.update(
        {
            "organizations": doc.summary["by_verdict"],
            "flows": doc.inputs["flows"],
            "indicators": doc.inputs["indicators"],
            "quarantined": doc.inputs["quarantined"],
        }
    )
    run.notes.extend(coverage)
    return doc


def _sync_cases(ws: Workspace, doc: Findings, run: RunRecord) -> None:
    """Open a case for each newly affected organization and attach the findings to the open
    ones (sightline.cases); a failure there never costs the hunt its findings."""
    try:
        from .cases import CaseStore

        res = CaseStore(ws).sync(doc, who="sightline", where=run.command)
    except SightlineError as e:
        run.notes.append(f"cases not updated ({e}); `sightline case sync` retries")
        return
    if res.created or res.reopened:
        run.notes.append(f"cases: {len(res.created)} opened, {len(res.reopened)} reopened")


def latest_findings(ws: Workspace, *, engine_name: str = "duckdb") -> Findings:
    """The workspace's findings, re-detected if flows, intel, registry or sightline changed since."""
    from .findings import load

    p = ws.findings_dir / "latest.json"
    if p.exists():
        try:
            doc = load(p)
        except SightlineError:
            doc = None
        if doc is not None and doc.workspace_state == workspace_state(ws) and doc.sightline_version == __version__:
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
    findings: Findings
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
    include_non_ids: bool = False,
    jobs: int = 1,
) -> HuntResult:
    """Add what is given to the workspace, then hunt everything the workspace holds.

    ``include_non_ids`` loads the given MISP intel's ``to_ids = false`` attributes too;
    ``jobs`` telemetry files are read at once (0: one per core, see :func:`sightline.ingest.run.auto_jobs`)."""
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
            res = add_intel(ws, intel, include_non_ids=include_non_ids)
            for r in res["refused"]:
                run.notes.append(f"intel file skipped: {r.path}: {r.reason}")
            t.rows = (
                sum(v for v in res["counts"].values() if isinstance(v, int))
                if isinstance(res["counts"], dict)
                else None
            )
    if telemetry:
        stage("ingest")
        with run.timed("ingest") as t:
            summary = ingest_paths(ws, telemetry, sensor=sensor, progress=on_file, jobs=jobs)
            t.rows = summary.rows
    if read_indicators(ws).num_rows == 0:
        # a hunt without intel cannot find anybody: saying "no organization shows activity"
        # would read as an all-clear
        from .errors import IntelError

        raise IntelError(
            "no usable indicators in the workspace: a hunt cannot find the actor's victims without intel"
            + (" (the telemetry given was stored)" if telemetry else ""),
            hint="add intel with `--intel FILE` or `sightline intel add FILE`, then hunt again",
        )
    stage("detect")
    doc = detect_workspace(ws, engine_name=engine_name, run=run)
    outputs: list[Path] = []
    if out is not None:
        stage("report")
        with run.timed("report"):
            outputs = write_outputs(doc, out, ws)
    write_run(ws, run)
    return HuntResult(doc, summary, run, outputs)


def write_outputs(doc: Findings, out: Path, ws: Workspace | None = None) -> list[Path]:
    """``hunt --out DIR``: the workspace's own findings.json and report.html (its audience is the
    workspace's operator: nothing withheld, every item marked, derived parts recomputed by the
    same sharing policy as every other output)."""
    from .report import render

    out.mkdir(parents=True, exist_ok=True)
    with bulk_objects():
        paths = render(doc, "json", out / "findings.json", ws=ws)
        paths += render(doc, "html", out / "report.html", ws=ws)
    return paths


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
