"""``sightline intel add|pull|status`` and ``sightline geo load|update``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..core.settings import settings
from ..errors import SightlineError
from .common import DEFAULT_WS, JsonFlag, WorkspaceOpt, console, fail, out, print_json, print_table, workspace

intel_app = typer.Typer(
    name="intel", help="Threat intelligence: add files, pull TAXII, show status.", no_args_is_help=True
)
geo_app = typer.Typer(name="geo", help="IP -> ASN / AS organization / country tables.", no_args_is_help=True)


SKIP_REASONS_SHOWN = 3
"""How many skip reasons the console warning after ``intel add`` / ``hunt`` quotes."""


def skip_warning(sources: list[dict]) -> list[str]:
    """Console lines saying how many intel rows were skipped (not loaded), the first few
    reasons and where to see all of them; no lines when nothing was skipped.

    ``sources`` are source reports as dicts (``SourceReport.to_dict()`` or the stored
    ``intel status`` entries): ``source``, ``read``, ``skipped``, ``skips``.
    """
    skipped = sum(int(s.get("skipped") or 0) for s in sources)
    if not skipped:
        return []
    read = sum(int(s.get("read") or 0) for s in sources)
    where = ", ".join(f"{s.get('source')} {s['skipped']}" for s in sources if s.get("skipped"))
    lines = [f"warning: {skipped:,} of {read:,} intel row(s) skipped, not loaded ({where})"]
    shown = [(s.get("source"), k) for s in sources for k in (s.get("skips") or [])][:SKIP_REASONS_SHOWN]
    for src, k in shown:
        lines.append(f"  {src} {k.get('position')}: {k.get('reason')}")
    if skipped > len(shown):
        lines.append(f"  ... and {skipped - len(shown):,} more")
    lines.append("  see `sightline intel status --all`")
    return lines


def print_skip_warning(sources: list[dict]) -> None:
    for i, line in enumerate(skip_warning(sources)):
        console.print(
            ("[bold yellow]warning:[/]" + escape(line[len("warning:") :])) if i == 0 else escape(line),
            highlight=False,
            soft_wrap=True,
        )


def hunt_skip_sources(ws_path: Path, intel_paths: list[Path]) -> list[dict]:
    """The stored reports of the intel files a hunt just added (by path), for the warning."""
    from ..ingest import expand_paths
    from ..intel import intel_status

    try:
        given = {str(p) for p in expand_paths(intel_paths)}
        sources = intel_status(workspace(ws_path))["sources"]
    except SightlineError:
        return []
    return [dict(s, source=name) for name, s in sorted(sources.items()) if s.get("path") in given]


def _print_report(reports, counts: dict[str, int] | None) -> None:  # type: ignore[no-untyped-def]
    t = Table(title="Intel ingest")
    for col in ("source", "format", "read", "loaded", "updated", "revoked", "skipped"):
        t.add_column(col, justify="left" if col in ("source", "format") else "right")
    for r in reports:
        t.add_row(r.source, r.format, str(r.read), str(r.loaded), str(r.updated), str(r.revoked), str(r.skipped))
    print_table(t)
    for r in reports:
        for s in r.skips[:20]:
            out.print(f"  skipped {r.source} {s.position}: {s.reason}", markup=False, highlight=False, soft_wrap=True)
        if len(r.skips) > 20 or r.skipped > len(r.skips):
            out.print(
                f"  ... {r.skipped - 20} more skips of {r.source} (see `sightline intel status --all`)",
                markup=False,
                soft_wrap=True,
            )
        for n in r.notes[:10]:
            out.print(f"  note {r.source}: {n}", markup=False, highlight=False, soft_wrap=True)
    if counts is not None:
        out.print(
            f"workspace: {counts['added']} added, {counts['updated']} updated, {counts['replaced']} replaced, "
            f"{counts['revoked']} revoked, {counts.get('withdrawn', 0)} withdrawn (no longer in their feed file); "
            f"{counts['active']} active indicators",
            markup=False,
            soft_wrap=True,
        )


@intel_app.command("add")
def add_cmd(
    paths: Annotated[
        list[Path], typer.Argument(help="Intel files: STIX 2.1 bundles, MISP events/feeds, CSV, plain lists.")
    ],
    ws_path: WorkspaceOpt = DEFAULT_WS,
    tlp: Annotated[str, typer.Option("--tlp", help="TLP for indicators whose source states none.")] = "amber",
    confidence: Annotated[
        int, typer.Option("--confidence", min=0, max=100, help="Confidence for indicators whose source states none.")
    ] = 50,
    actor: Annotated[str | None, typer.Option("--actor", help="Actor for indicators whose source names none.")] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit 2 after the import when any object was skipped (what was good is kept)."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add intel files to the workspace (re-adding an updated file updates its indicators)."""
    from ..intel import add_to_workspace, load_intel_files
    from ..intel.model import normalize_tlp

    try:
        level = normalize_tlp(tlp) or "amber"
        load = load_intel_files(list(paths), default_tlp=level, default_confidence=confidence, default_actor=actor)
        counts = add_to_workspace(workspace(ws_path), load)
    except ValueError as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from e
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        print_json({"sources": [r.to_dict() for r in load.report], "workspace": counts})
    else:
        _print_report(load.report, counts)
        print_skip_warning([r.to_dict() for r in load.report])
    skipped = sum(r.skipped for r in load.report)
    if strict and skipped:
        from .core import exit_if_strict

        exit_if_strict(True, [f"{skipped:,} object(s) skipped (reasons above; `sightline intel status --all`)"])


@intel_app.command("pull")
def pull_cmd(
    taxii: Annotated[str, typer.Option("--taxii", help="TAXII 2.1 API root or discovery URL.")],
    collection: Annotated[str, typer.Option("--collection", help="Collection id.")],
    ws_path: WorkspaceOpt = DEFAULT_WS,
    user: Annotated[
        str | None,
        typer.Option("--user", envvar="SIGHTLINE_TAXII_USER", help="User name (or env SIGHTLINE_TAXII_USER)."),
    ] = None,
    password_env: Annotated[
        str, typer.Option("--password-env", help="Environment variable holding the password.")
    ] = "SIGHTLINE_TAXII_PASSWORD",
    full: Annotated[bool, typer.Option("--full", help="Ignore the saved added_after and pull everything.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Pull a TAXII 2.1 collection (incremental: only objects added since the last pull)."""
    from ..intel.taxii import pull_collection

    try:
        res = pull_collection(
            workspace(ws_path), taxii, collection, user=user, password=settings().secret(password_env), full=full
        )
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        print_json(
            {
                "sources": [r.to_dict() for r in res.load.report],
                "workspace": res.counts,
                "objects": res.objects,
                "pages": res.pages,
                "added_after": res.added_after,
            }
        )
        return
    _print_report(res.load.report, res.counts)
    print_skip_warning([r.to_dict() for r in res.load.report])
    out.print(
        f"pulled {res.objects} objects in {res.pages} page(s); next pull from added_after={res.added_after}",
        markup=False,
        soft_wrap=True,
    )


@intel_app.command("status")
def status_cmd(
    ws_path: WorkspaceOpt = DEFAULT_WS,
    show_all: Annotated[bool, typer.Option("--all", help="List every stored skip reason.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show indicators per source and the last ingest report of each source."""
    from ..intel import intel_status

    try:
        st = intel_status(workspace(ws_path))
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        if not show_all:  # the skip lists can be long: --all includes them
            st = dict(st, sources={k: {f: v for f, v in s.items() if f != "skips"} for k, s in st["sources"].items()})
        print_json(st)
        return
    if not st["sources"]:
        out.print("no intel in this workspace; add some with `sightline intel add FILE`", markup=False, soft_wrap=True)
        return
    t = Table(title=f"Intel status ({st['totals']['active']} active of {st['totals']['total']} indicators)")
    for col in ("source", "format", "imported", "read", "loaded", "updated", "revoked", "skipped", "skip reasons"):
        t.add_column(col)
    for name, s in sorted(st["sources"].items()):
        reasons = ", ".join(f"{k} {v}" for k, v in s.get("skip_reasons", {}).items())
        t.add_row(
            name,
            s["format"],
            str(s.get("imported_at", ""))[:19],
            str(s["read"]),
            str(s["loaded"]),
            str(s["updated"]),
            str(s["revoked"]),
            str(s["skipped"]),
            reasons,
        )
    print_table(t)
    if show_all:
        for name, s in sorted(st["sources"].items()):
            for sk in s["skips"]:
                out.print(f"  {name} {sk['position']}: {sk['reason']}", markup=False, highlight=False, soft_wrap=True)
    if st.get("actor_cves"):
        out.print("actor-linked CVEs: " + ", ".join(st["actor_cves"]), markup=False, soft_wrap=True)


@geo_app.command("load")
def geo_load_cmd(
    paths: Annotated[
        list[Path],
        typer.Argument(help="MMDB files (GeoLite2/DB-IP ASN, Country, City) or ip-location-db range CSVs (.gz ok)."),
    ],
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Load IP -> ASN / country tables into the workspace (replaces the same kind of table)."""
    from ..enrich.geo import load_geo

    try:
        for p in paths:
            info = load_geo(workspace(ws_path), p)
            out.print(
                f"{p}: {info['kind']} table, {info['rows']:,} ranges ({info['skipped']} bad rows skipped)",
                markup=False,
                soft_wrap=True,
            )
    except SightlineError as e:
        fail(e)


@geo_app.command("update")
def geo_update_cmd(
    ws_path: WorkspaceOpt = DEFAULT_WS,
    directory: Annotated[Path | None, typer.Option("--from", help="Directory holding downloaded files.")] = None,
) -> None:
    """Re-load the geo tables from the files they were last loaded from (or from --from DIR).

    To refresh the data, download new files first, e.g.
    ``npm pack @ip-location-db/asn`` / ``@ip-location-db/geo-whois-asn-country`` (CSV) or a
    GeoLite2 / DB-IP Lite MMDB, then run ``sightline geo update --from DIR``.
    """
    from ..enrich.geo import update_geo

    try:
        for info in update_geo(workspace(ws_path), directory):
            out.print(f"{info['path']}: {info['kind']} table, {info['rows']:,} ranges", markup=False, soft_wrap=True)
    except SightlineError as e:
        fail(e)


def register(app: typer.Typer) -> None:
    app.add_typer(intel_app, name="intel")
    app.add_typer(geo_app, name="geo")


__all__ = ["register", "intel_app", "geo_app", "skip_warning", "print_skip_warning", "hunt_skip_sources"]
