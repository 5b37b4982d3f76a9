"""``sightline intel add|pull|status`` and ``sightline geo load|update``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..core.settings import settings
from ..errors import IntelError, SightlineError
from .common import DEFAULT_WS, JsonFlag, WorkspaceOpt, console, fail, out, print_json, print_table, workspace

intel_app = typer.Typer(
    name="intel", help="Threat intelligence: add files, pull TAXII, show status.", no_args_is_help=True
)
geo_app = typer.Typer(name="geo", help="IP -> ASN / AS organization / country tables.", no_args_is_help=True)


SKIP_REASONS_SHOWN = 8
"""How many skip reasons (each counted, with one example) the console warning quotes."""


WHERE_SHOWN = 5
"""How many sources (those that skipped most) the warning names."""

TABLE_ROWS = 25
"""Sources the ingest table lists (those that loaded most) before it sums up the rest."""


def _reason_counts(sources: list[dict]) -> list[tuple[str, int, str]]:
    """``(reason class, count, first example)`` across sources, most frequent first.

    A source's kept skips are a sample when it skipped more than it kept; its counts by reason
    (``skip_reasons``, stored by ``intel status``) are used where present.
    """
    counts: dict[str, int] = {}
    example: dict[str, str] = {}
    for s in sources:
        stored = s.get("skip_reasons") or {}
        for k in s.get("skips") or []:
            cls = str(k.get("reason", "")).split(":", 1)[0]
            example.setdefault(cls, f"{s.get('source')} {k.get('position')}: {k.get('reason')}")
            if not stored:
                counts[cls] = counts.get(cls, 0) + 1
        for cls, n in stored.items():
            counts[cls] = counts.get(cls, 0) + int(n)
    return [(c, n, example.get(c, "")) for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def skip_warning(sources: list[dict]) -> list[str]:
    """Console lines saying how many intel rows were skipped (not loaded), counted per reason
    with one example each, and where to see all of them; no lines when nothing was skipped.

    ``sources`` are source reports as dicts (``SourceReport.to_dict()`` or the stored
    ``intel status`` entries): ``source``, ``read``, ``skipped``, ``skips``.
    """
    skipped = sum(int(s.get("skipped") or 0) for s in sources)
    if not skipped:
        return []
    read = sum(int(s.get("read") or 0) for s in sources)
    by = sorted((s for s in sources if s.get("skipped")), key=lambda s: -int(s["skipped"]))
    where = ", ".join(f"{s.get('source')} {s['skipped']}" for s in by[:WHERE_SHOWN])
    if len(by) > WHERE_SHOWN:
        where += f", {len(by) - WHERE_SHOWN} more source(s)"
    lines = [f"warning: {skipped:,} of {read:,} intel row(s) skipped, not loaded ({where})"]
    reasons = _reason_counts(sources)
    for cls, n, ex in reasons[:SKIP_REASONS_SHOWN]:
        lines.append(f"  {n:,} x {cls}, e.g. {ex}")
    if len(reasons) > SKIP_REASONS_SHOWN:
        lines.append(f"  ... and {len(reasons) - SKIP_REASONS_SHOWN} more reason(s)")
    lines.append("  see `sightline intel status --all`")
    return lines


def refusal_lines(refused: list, show_all: bool = False) -> list[str]:  # type: ignore[type-arg]
    """Lines for intel files not loaded at all: each file when few (or ``show_all``), else
    counted per reason with one example."""
    if not refused:
        return []
    lines = [f"skipped {len(refused):,} file(s), nothing loaded from them:"]
    if show_all or len(refused) <= 5:
        for r in refused:
            lines.append(f"  {r.path}: {r.reason}" + (f" ({r.hint})" if r.hint else ""))
        return lines
    by: dict[str, list] = {}  # type: ignore[type-arg]
    for r in refused:
        by.setdefault(r.reason_class, []).append(r)
    for cls, rs in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"  {len(rs):,} x {cls}, e.g. {rs[0].path}: {rs[0].reason}")
    lines.append("  `--all` lists every file")
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


def _print_report(reports, counts: dict[str, int] | None, show_all: bool = False) -> None:  # type: ignore[no-untyped-def]
    t = Table(title="Intel ingest")
    for col in ("source", "format", "read", "loaded", "non-IDS", "updated", "revoked", "skipped"):
        t.add_column(col, justify="left" if col in ("source", "format") else "right")
    shown = list(reports)
    if len(shown) > TABLE_ROWS and not show_all:
        shown = sorted(shown, key=lambda r: (-r.loaded, r.source))[:TABLE_ROWS]
    for r in shown:
        non_ids = str(r.non_ids) if r.include_non_ids else ""
        t.add_row(
            r.source, r.format, str(r.read), str(r.loaded), non_ids, str(r.updated), str(r.revoked), str(r.skipped)
        )
    if len(shown) < len(reports):
        rest = [r for r in reports if r not in shown]
        t.add_row(
            f"... {len(rest)} more (--all)",
            "",
            *(str(sum(getattr(r, k) for r in rest)) for k in ("read", "loaded")),
            "",
            *(str(sum(getattr(r, k) for r in rest)) for k in ("updated", "revoked", "skipped")),
        )
    if len(reports) > 1:
        t.add_row(
            f"total ({len(reports)} sources)",
            "",
            *(str(sum(getattr(r, k) for r in reports)) for k in ("read", "loaded")),
            str(sum(r.non_ids for r in reports)) if any(r.include_non_ids for r in reports) else "",
            *(str(sum(getattr(r, k) for r in reports)) for k in ("updated", "revoked", "skipped")),
        )
    print_table(t)
    for r in reports:
        if show_all:
            for s in r.skips:
                out.print(
                    f"  skipped {r.source} {s.position}: {s.reason}", markup=False, highlight=False, soft_wrap=True
                )
            if r.skipped > len(r.skips):
                out.print(f"  ... {r.skipped - len(r.skips):,} more skips of {r.source} (counted, not kept)")
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


def _print_refused(refused: list, show_all: bool) -> None:  # type: ignore[type-arg]
    for i, line in enumerate(refusal_lines(refused, show_all)):
        console.print(
            ("[bold yellow]skipped[/]" + escape(line[len("skipped") :])) if i == 0 else escape(line),
            highlight=False,
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
        typer.Option(
            "--strict",
            help="Exit 2 after the import when any object or file was skipped (what was good is kept).",
        ),
    ] = False,
    as_json: JsonFlag = False,
    include_non_ids: Annotated[
        bool,
        typer.Option(
            "--include-non-ids",
            help="Load MISP attributes marked to_ids = false too (per source: [intel] include_non_ids).",
        ),
    ] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List every skipped row and file, not counts.")] = False,
) -> None:
    """Add intel files, directories (MISP feeds too) or globs to the workspace (re-adding an
    updated file updates its indicators). A file that cannot be used is skipped with its
    reason and the rest loads; exit 2 when nothing could be loaded (or, with --strict, when
    anything was skipped)."""
    from ..intel import add_to_workspace, load_intel_files
    from ..intel.loader import non_ids_rule
    from ..intel.model import normalize_tlp

    try:
        level = normalize_tlp(tlp) or "amber"
        load = load_intel_files(
            list(paths),
            default_tlp=level,
            default_confidence=confidence,
            default_actor=actor,
            include_non_ids=non_ids_rule(ws_path, include_non_ids),
            skip_bad_files=True,
        )
        if not load.report:
            _print_refused(load.refused, show_all)
            first = load.refused[0] if load.refused else None
            raise IntelError(
                "nothing to load: "
                + (
                    f"{first.path}: {first.reason}"
                    if len(load.refused) == 1 and first
                    else f"none of the {len(load.refused)} file(s) holds a usable indicator"
                ),
                hint=(
                    first.hint
                    if len(load.refused) == 1 and first and first.hint
                    else "pass STIX 2.1 bundles, MISP events or feeds, CSV tables or lists of indicators"
                ),
            )
        counts = add_to_workspace(workspace(ws_path), load)
    except ValueError as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from e
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        print_json(
            {
                "sources": [r.to_dict() for r in load.report],
                "workspace": counts,
                "refused": [{"path": f.path, "reason": f.reason, "hint": f.hint} for f in load.refused],
            }
        )
    else:
        _print_report(load.report, counts, show_all)
        print_skip_warning([r.to_dict() for r in load.report])
        _print_refused(load.refused, show_all)
    skipped = sum(r.skipped for r in load.report)
    if strict and (skipped or load.refused):
        from .core import exit_if_strict

        exit_if_strict(
            True,
            ([f"{skipped:,} object(s) skipped (reasons above; `sightline intel status --all`)"] if skipped else [])
            + ([f"{len(load.refused):,} file(s) skipped (reasons above)"] if load.refused else []),
        )


@intel_app.command("pull")
def pull_cmd(
    taxii: Annotated[str | None, typer.Option("--taxii", help="TAXII 2.1 API root or discovery URL.")] = None,
    collection: Annotated[str | None, typer.Option("--collection", help="Collection id (with --taxii).")] = None,
    misp_feed: Annotated[
        str | None,
        typer.Option("--misp-feed", help="MISP feed: its base URL or directory (the one holding manifest.json)."),
    ] = None,
    ws_path: WorkspaceOpt = DEFAULT_WS,
    user: Annotated[
        str | None,
        typer.Option("--user", envvar="SIGHTLINE_TAXII_USER", help="User name (or env SIGHTLINE_TAXII_USER)."),
    ] = None,
    password_env: Annotated[
        str, typer.Option("--password-env", help="Environment variable holding the password.")
    ] = "SIGHTLINE_TAXII_PASSWORD",
    full: Annotated[bool, typer.Option("--full", help="Ignore what the last pull saw and pull everything.")] = False,
    as_json: JsonFlag = False,
    include_non_ids: Annotated[
        bool,
        typer.Option("--include-non-ids", help="MISP feed: load attributes marked to_ids = false too."),
    ] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List every skipped row and event, not counts.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 2 when an event of the feed could not be read or used.")
    ] = False,
) -> None:
    """Pull a TAXII 2.1 collection (only objects added since the last pull) or a MISP feed
    (only events new or changed since the last pull; events gone from the feed are withdrawn)."""
    if (taxii is None) == (misp_feed is None) or (taxii is not None and not collection):
        fail(
            SightlineError(
                "give either --taxii URL --collection ID or --misp-feed URL",
                hint="e.g. sightline intel pull --misp-feed https://www.circl.lu/doc/misp/feed-osint",
            )
        )
        return
    if misp_feed is not None:
        from ..intel.feed import pull_misp_feed
        from ..intel.loader import non_ids_rule

        try:
            res = pull_misp_feed(
                workspace(ws_path), misp_feed, include_non_ids=non_ids_rule(ws_path, include_non_ids), full=full
            )
        except SightlineError as e:
            fail(e)
            return
        if res.load.report:
            _print_report(res.load.report, res.counts, show_all)
            print_skip_warning([r.to_dict() for r in res.load.report])
        _print_refused(res.failed, show_all)
        out.print(
            f"MISP feed {misp_feed}: {res.listed} event(s) listed, {res.fetched} read (new or changed), "
            f"{res.unchanged} unchanged, {res.removed} withdrawn (gone from the feed), {len(res.failed)} failed",
            markup=False,
            soft_wrap=True,
        )
        if res.failed and (strict or res.fetched == 0):
            console.print(
                f"[bold red]error:[/] {len(res.failed)} event(s) of the feed could not be read or used "
                "(reasons above; they are tried again at the next pull)",
                highlight=False,
            )
            raise typer.Exit(2)
        return
    from ..intel.taxii import pull_collection

    assert taxii is not None and collection is not None
    try:
        res_t = pull_collection(
            workspace(ws_path), taxii, collection, user=user, password=settings().secret(password_env), full=full
        )
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        print_json(
            {
                "sources": [r.to_dict() for r in res_t.load.report],
                "workspace": res_t.counts,
                "objects": res_t.objects,
                "pages": res_t.pages,
                "added_after": res_t.added_after,
            }
        )
        return
    _print_report(res_t.load.report, res_t.counts)
    print_skip_warning([r.to_dict() for r in res_t.load.report])
    out.print(
        f"pulled {res_t.objects} objects in {res_t.pages} page(s); next pull from added_after={res_t.added_after}",
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
    for col in (
        "source",
        "format",
        "imported",
        "read",
        "loaded",
        "non-IDS",
        "updated",
        "revoked",
        "skipped",
        "skip reasons",
    ):
        t.add_column(col)
    for name, s in sorted(st["sources"].items()):
        reasons = ", ".join(f"{k} {v}" for k, v in s.get("skip_reasons", {}).items())
        t.add_row(
            name,
            s["format"],
            str(s.get("imported_at", ""))[:19],
            str(s["read"]),
            str(s["loaded"]),
            (f"{s.get('non_ids', 0)} (to_ids=false loaded)" if s.get("include_non_ids") else ""),
            str(s["updated"]),
            str(s["revoked"]),
            str(s["skipped"]),
            reasons,
        )
    print_table(t)
    for name, s in sorted(st["sources"].items()):
        if s.get("include_non_ids"):
            out.print(
                f"{name}: {s.get('non_ids', 0):,} indicator(s) from to_ids = false attributes "
                "(MISP's 'not for detection'; loaded with --include-non-ids or [intel] include_non_ids)",
                markup=False,
                soft_wrap=True,
            )
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
