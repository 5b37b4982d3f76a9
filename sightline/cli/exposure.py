"""Exposure commands: ``sightline exposure SCAN...`` and ``sightline kev update``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import SightlineError
from ..store import Workspace, atomic_write_json, atomic_write_parquet
from .common import (
    DEFAULT_ENGINE,
    DEFAULT_WS,
    EngineOpt,
    JsonFlag,
    WorkspaceOpt,
    console,
    fail,
    out,
    print_json,
    print_table,
    workspace,
)

kev_app = typer.Typer(help="CISA Known Exploited Vulnerabilities catalog.", no_args_is_help=True)

EXPOSURE_SCHEMA_ID = "sightline.exposure/1"
_STYLE = {
    "compromised": "bold red",
    "exploited_and_vulnerable": "red",
    "scanned_and_vulnerable": "yellow",
    "vulnerable": "",
}


def _hunt_activity(ws: Workspace) -> Any:
    """Actor activity from the workspace's last hunt, if there was one."""
    from ..exposure import activity_from_findings
    from ..findings import load

    latest = ws.findings_dir / "latest.json"
    if not latest.exists():
        return None
    try:
        doc = load(latest)
    except SightlineError as e:
        console.print(f"[yellow]warning:[/] ignoring unreadable {latest}: {escape(str(e))}")
        return None
    return activity_from_findings(doc)


def _print_entries(entries: list[dict[str, Any]], limit: int) -> None:
    if not entries:
        out.print("no scanned service runs a version inside a known-exploited CVE range")
        return
    t = Table(title="Exposure (highest priority first)")
    for col in ("#", "priority", "match", "org", "ip:port", "product", "version", "CVEs (KEV due date)", "actor"):
        t.add_column(col)
    for e in entries[:limit]:
        cves = ", ".join(
            c["cve"]
            + (f" ({c['kev']['due_date']})" if c["kev"] else " (not in KEV)")
            + (" [R]" if c["kev"] and c["kev"]["known_ransomware"] else "")
            for c in e["cves"]
        )
        style = _STYLE.get(e["priority"], "")
        prio = f"[{style}]{e['priority']}[/]" if style else e["priority"]
        # Scan content is attacker-influenced: escape it so it cannot inject rich markup.
        t.add_row(
            str(e["priority_rank"]),
            prio,
            e.get("match") or "",
            escape(e["org_id"] or "-"),
            escape(f"{e['ip']}:{e['port']}/{e['proto']}"),
            escape(e["product"] or ""),
            escape(e["version"] or ""),
            escape(cves),
            "yes" if e["actor_linked"] else "",
        )
    caption = "[R] = known ransomware use (CISA KEV); actor = CVE tied to the actor by intel"
    if len(entries) > limit:
        caption += f"; ... and {len(entries) - limit} more (see --csv / exposure.json)"
    t.caption = caption
    print_table(t)


def exposure_cmd(
    scans: Annotated[
        list[Path],
        typer.Argument(
            help="Scan files or directories: nmap XML (-oX, -sV), masscan JSON/list, Shodan/Censys host JSON."
        ),
    ],
    actor_cves: Annotated[
        Path | None,
        typer.Option(
            "--actor-cves",
            help="CVE ids tied to the actor: a list (one per line), a STIX 2.1 bundle (exploits/targets -> vulnerability) or a MISP event (vulnerability attributes).",
        ),
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write the prioritized list as CSV for patch tickets.")
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Print the exposure document as JSON instead of the table; --json FILE writes it to FILE.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to print.")] = 40,
    ws_path: WorkspaceOpt = DEFAULT_WS,
    engine: EngineOpt = DEFAULT_ENGINE,
) -> None:
    """Match exposed edge services against CISA KEV and the actor's CVEs, prioritized by what the hunt saw."""
    from ..enrich.orgs import read_orgs
    from ..exposure import (
        assess_exposure,
        load_cve_ranges,
        load_kev,
        load_scans,
        read_actor_cves,
        store_services,
        to_csv,
        unranged_cves,
    )

    try:
        ws = workspace(ws_path)
        ws.ensure()
        cves: list[str] = []
        if actor_cves is not None:
            cves, skipped = read_actor_cves(actor_cves)
            for line, text in skipped:
                console.print(f"[yellow]skipped[/] {escape(str(actor_cves))}:{line}: no CVE id in {escape(text)!r}")
            missing = unranged_cves(cves, load_cve_ranges(ws=ws))
            if missing:
                console.print(
                    f"[yellow]note:[/] no version ranges for {len(missing)} actor CVE(s), not checked: "
                    + escape(", ".join(missing[:10]))
                    + (" ..." if len(missing) > 10 else "")
                )
        if (
            json_out is not None
            and str(json_out) != "-"
            and any(p.exists() and json_out.exists() and p.samefile(json_out) for p in scans)
        ):
            raise SightlineError(
                f"--json {json_out} names one of the scan files",
                hint="put --json last (prints the document) or give --json OUT.json",
            )
        load = load_scans(scans)
        stored = store_services(ws, load.services)
        if load.quarantine.num_rows:
            atomic_write_parquet(ws.root / "exposure" / "quarantine.parquet", load.quarantine)
            for q in load.quarantine.to_pylist()[:10]:
                console.print(
                    f"[yellow]quarantined[/] {escape(q['source_file'])}:{q['position']} "
                    f"({q['position_kind']}): {escape(q['reason'])}"
                )
        c = load.counts
        console.print(
            f"{c['files']} scan file(s), {c['hosts']} host(s), {c['services']} open service(s), "
            f"{c['edge_services']} product(s) recognised, {c['quarantined']} quarantined; "
            f"{stored.num_rows} service(s) stored"
        )
        kev = load_kev(ws)
        orgs = read_orgs(ws) if ws.orgs_path.exists() else None
        entries = assess_exposure(
            stored, kev, activity=_hunt_activity(ws), orgs=orgs, actor_cves=cves, ranges=load_cve_ranges(ws=ws)
        )
        meta = kev.schema.metadata or {}
        doc = {
            "schema": EXPOSURE_SCHEMA_ID,
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "kev_catalog": {
                "version": meta.get(b"catalog_version", b"").decode(),
                "date_released": meta.get(b"date_released", b"").decode(),
            },
            "inputs": {**c, "stored_services": stored.num_rows, "actor_cves": len(cves)},
            "exposure": entries,
        }
        atomic_write_json(ws.root / "exposure" / "exposure.json", doc)
        to_stdout = json_out is not None and str(json_out) == "-"
        if json_out is not None and not to_stdout:
            atomic_write_json(json_out, doc)
        if csv_out is not None:
            n = to_csv(entries, csv_out)
            console.print(f"wrote {n} CSV row(s) to {escape(str(csv_out))}")
        if to_stdout:
            print_json(doc)
        else:
            _print_entries(entries, limit)
    except SightlineError as e:
        fail(e)


@kev_app.command("update")
def kev_update_cmd(
    file: Annotated[
        Path | None, typer.Option("--file", help="A downloaded known_exploited_vulnerabilities.json.")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Download from this URL (default: CISA's feed).")] = None,
    cve_records: Annotated[
        list[Path] | None,
        typer.Option(
            "--cve-records",
            help="CVE JSON 5 records (a cvelistV5 or vulnrichment checkout, or files): build the workspace's version ranges for its KEV catalog. Repeatable.",
        ),
    ] = None,
    nvd: Annotated[
        list[Path] | None,
        typer.Option(
            "--nvd", help="NVD CVE JSON (an nvd-json-data-feeds checkout, 2.0/1.1 feed files or records). Repeatable."
        ),
    ] = None,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Replace the workspace's KEV catalog (validated first, atomic); with --cve-records/--nvd,
    (re)build the CVE version ranges for it from a local mirror of the records."""
    from ..exposure import update_kev

    try:
        ws = workspace(ws_path)
        ws.ensure()
        build_only = (cve_records or nvd) and file is None and url is None
        with ws.lock():
            info = None if build_only else update_kev(ws, file=file, url=url)
            if cve_records or nvd:
                built = _build_ranges(ws, cve_records or [], nvd or [])
    except SightlineError as e:
        fail(e)
    if info is not None:
        prev = info["previous_version"] or "none"
        console.print(
            f"KEV catalog {info['catalog_version']} ({info['count']} CVEs) installed, was {prev}: "
            f"{escape(info['path'])}"
        )
    if cve_records or nvd:
        cov = built["coverage"]
        console.print(
            f"version ranges for {cov['with_ranges']} of {cov['kev_cves']} KEV CVEs "
            f"({cov['by_source']}); without: {cov['without_ranges']}: {escape(built['path'])}"
        )


def _build_ranges(ws: Workspace, cve_records: list[Path], nvd: list[Path]) -> dict[str, Any]:
    """Build ``<ws>/kev/cve_ranges.json`` for the workspace's KEV catalog (bundled overrides applied)."""
    from ..exposure import load_kev
    from ..exposure.assess import workspace_ranges_path
    from ..exposure.records import build_ranges, write_table

    kev = load_kev(ws)
    rows = {
        r["cve"]: {
            "product": r["product"],
            "vulnerabilityName": r["vulnerability_name"],
            "shortDescription": r["short_description"],
        }
        for r in kev.to_pylist()
    }
    build = build_ranges(list(rows), cve_records, nvd, kev_rows=rows)
    meta = kev.schema.metadata or {}
    doc = build.document(
        kev_version=meta.get(b"catalog_version", b"").decode(),
        built_from=[{"cve_records": str(p)} for p in cve_records] + [{"nvd": str(p)} for p in nvd],
    )
    path = workspace_ranges_path(ws)
    write_table(doc, path)
    return {"coverage": build.coverage, "path": str(path)}


@kev_app.command("status")
def kev_status_cmd(ws_path: WorkspaceOpt = DEFAULT_WS, as_json: JsonFlag = False) -> None:
    """Show which KEV catalog the workspace uses."""
    from ..exposure import load_kev

    try:
        kev = load_kev(workspace(ws_path))
    except SightlineError as e:
        fail(e)
    meta = kev.schema.metadata or {}
    if as_json:
        print_json(
            {
                "catalog_version": meta.get(b"catalog_version", b"").decode(),
                "date_released": meta.get(b"date_released", b"").decode(),
                "cves": kev.num_rows,
                "origin": meta.get(b"origin", b"").decode(),
            }
        )
        return
    out.print(
        f"KEV catalog {meta.get(b'catalog_version', b'').decode()} released "
        f"{meta.get(b'date_released', b'').decode()}, {kev.num_rows} CVEs, from "
        f"{escape(meta.get(b'origin', b'').decode())}"
    )


def register(app: typer.Typer) -> None:
    app.command("exposure")(exposure_cmd)
    app.add_typer(kev_app, name="kev")


__all__ = ["register", "kev_app", "exposure_cmd"]
