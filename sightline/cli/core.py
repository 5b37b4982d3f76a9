"""Core commands: hunt, ingest, orgs load, detect, report, demo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import SightlineError
from .common import (
    DEFAULT_ENGINE,
    DEFAULT_WS,
    EngineOpt,
    WorkspaceOpt,
    console,
    fail,
    out,
    print_json,
    print_table,
    setup_logging,
    workspace,
)


def _verdict_line(doc: dict, seconds: float) -> str:
    bv = doc["summary"]["by_verdict"]
    return (
        f"{doc['inputs']['flows']:,} flows, {doc['inputs']['indicators']:,} indicators, "
        f"{doc['inputs'].get('quarantined', 0):,} quarantined -> "
        f"{bv.get('compromised', 0)} compromised, {bv.get('exploitation_attempt', 0)} exploitation attempts, "
        f"{bv.get('reconnaissance', 0)} reconnaissance ({seconds:.1f}s)"
    )


def _file_line(res) -> str:  # type: ignore[no-untyped-def]
    """One line per input file: what was read, or why it was not."""
    if res.skipped:
        return f"  skipped {res.path}: {res.reason}"
    if res.reason and not res.rows and not res.names:
        return f"  could not read {res.path}: {res.reason}"
    note = "".join(f" ({t})" for t in (res.reason, getattr(res, "note", "")) if t)
    names = f", {res.names:,} name records" if res.names else ""
    return (
        f"  ingested {res.path} [{res.format}]: {res.rows:,} flows{names}, {res.quarantined:,} quarantined"
        f" in {res.seconds:.2f}s{note}"
    )


def _unreadable_only(summary) -> bool:  # type: ignore[no-untyped-def]
    """Telemetry was given and none of it could be read (not even as a duplicate)."""
    return bool(summary and summary.files) and all(
        f.reason and not f.rows and not f.names and not f.skipped for f in summary.files
    )


STRICT_HELP = (
    "Exit 2 after the run when any record was quarantined, any file could not be read or (hunt) any intel "
    "row was skipped; what was good is kept. Empty files (rotated logs of a quiet interval) are skipped and "
    "counted, not errors."
)


def strict_problems(summary) -> list[str]:  # type: ignore[no-untyped-def]
    """What ``--strict`` objects to in an ingest: quarantined records, unreadable files."""
    if not summary:
        return []
    bad = [f for f in summary.files if f.quarantined]
    unread = [f for f in summary.files if f.reason and not f.skipped]
    out = []
    if bad:
        out.append(f"{sum(f.quarantined for f in bad):,} record(s) quarantined in {len(bad)} file(s)")
    if unread:
        out.append(f"{len(unread)} file(s) not read")
    return out


def exit_if_strict(strict: bool, problems: list[str]) -> None:
    if strict and problems:
        console.print(
            "[bold red]strict:[/] "
            + escape("; ".join(problems))
            + " -- the run completed and kept what was good; exit status 2",
            highlight=False,
        )
        raise typer.Exit(2)


def _print_orgs(doc: dict, limit: int = 30, caveats: list[str] | None = None) -> None:
    orgs = doc["organizations"]
    if not orgs:
        if caveats:  # no false assurance: say why nothing could be found
            console.print(
                "[bold yellow]no finding, and none could be made:[/] " + escape("; ".join(caveats)), highlight=False
            )
        else:
            console.print("no organization shows activity of the actor's infrastructure")
        return
    t = Table(title="Organizations", show_lines=False)
    for col in ("verdict", "conf", "org", "sector", "country", "hosts", "first seen", "last seen"):
        t.add_column(col)
    style = {"compromised": "bold red", "exploitation_attempt": "yellow", "reconnaissance": "cyan"}
    for o in orgs[:limit]:
        t.add_row(
            f"[{style.get(o['verdict'], '')}]{o['verdict']}[/]",
            str(o["confidence"]),
            f"{o['name']} ({o['org_id']})",
            o.get("sector") or "",
            o.get("country") or "",
            str(len(o["hosts"])),
            o["first_seen"],
            o["last_seen"],
        )
    if len(orgs) > limit:
        t.caption = f"... and {len(orgs) - limit} more (see findings.json)"
    print_table(t, console)


def intel_coverage_notes(notes: list[str]) -> list[str]:
    """The notes that say a hunt could not have found anything (no usable or no current intel)."""
    return [n for n in notes if n.startswith(("no usable indicators", "every indicator is revoked", "none of the "))]


def run_summary(doc: dict, run, outputs: list[Path] | None = None, ingest=None) -> dict:  # type: ignore[no-untyped-def]
    """What ``hunt --json`` / ``detect --json`` print: the summary tables as one JSON document."""
    res: dict = {
        "inputs": doc["inputs"],
        "summary": doc["summary"],
        "organizations": [
            {
                "org_id": o["org_id"],
                "name": o["name"],
                "verdict": o["verdict"],
                "confidence": o["confidence"],
                "sector": o.get("sector"),
                "country": o.get("country"),
                "hosts": len(o["hosts"]),
                "first_seen": o["first_seen"],
                "last_seen": o["last_seen"],
                "tlp": o.get("tlp"),
            }
            for o in doc["organizations"]
        ],
        "stages": [
            {"stage": s.stage, "rows": s.rows, "seconds": round(s.seconds, 3), "peak_mb": round(s.peak_rss_mb, 1)}
            for s in run.stages
        ],
        "notes": list(dict.fromkeys(run.notes + doc.get("notes", []))),
        "outputs": [str(p) for p in outputs or []],
    }
    if ingest is not None:
        res["files"] = [
            {
                "path": str(f.path),
                "format": f.format,
                "flows": f.rows,
                "quarantined": f.quarantined,
                "skipped": bool(f.skipped),
                "reason": f.reason or None,
            }
            for f in ingest.files
        ]
    return res


def _stage_table(run) -> Table:  # type: ignore[no-untyped-def]
    t = Table(title="Stages", show_lines=False)
    for col in ("stage", "rows", "seconds", "peak MB"):
        t.add_column(col, justify="right" if col != "stage" else "left")
    for s in run.stages:
        t.add_row(s.stage, "" if s.rows is None else f"{s.rows:,}", f"{s.seconds:.2f}", f"{s.peak_rss_mb:.0f}")
    return t


JobsOpt = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=0,
        help="Telemetry files read at once, each by its own process (0: one per two cores when there is "
        "enough to read). The store ends the same whatever the number.",
    ),
]


def hunt_cmd(
    telemetry: Annotated[
        list[Path] | None,
        typer.Option(
            "--telemetry",
            "-t",
            help="Telemetry files, directories or globs (Zeek conn.log TSV/JSON, ...; .gz/.zst ok).",
        ),
    ] = None,
    intel: Annotated[
        list[Path] | None,
        typer.Option(
            "--intel", "-i", help="Intel files, directories or globs: CSV, lists, STIX 2.1, MISP events and feeds."
        ),
    ] = None,
    orgs: Annotated[
        Path | None, typer.Option("--orgs", help="Organization registry CSV: org_id,name,sector,country,cidr.")
    ] = None,
    geo: Annotated[list[Path] | None, typer.Option("--geo", help="IP->ASN/country tables (MMDB or range CSV).")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write findings.json and report.html here.")
    ] = None,
    fail_on: Annotated[
        str | None, typer.Option("--fail-on", help="Exit 1 when an organization has this verdict (compromised).")
    ] = None,
    sensor: Annotated[str | None, typer.Option("--sensor", help="Sensor name recorded on ingested flows.")] = None,
    ws_path: WorkspaceOpt = DEFAULT_WS,
    engine: EngineOpt = DEFAULT_ENGINE,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    strict: Annotated[bool, typer.Option("--strict", help=STRICT_HELP)] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's summary (organizations, stages, notes, outputs) as JSON.")
    ] = False,
    include_non_ids: Annotated[
        bool,
        typer.Option("--include-non-ids", help="Load MISP attributes of --intel marked to_ids = false too."),
    ] = False,
    jobs: JobsOpt = 0,
) -> None:
    """Main job: ingest, enrich, detect, assess and report in one command.

    Adds what it is given to the workspace, then hunts everything the workspace holds
    (without --telemetry it re-hunts the stored flows, e.g. with new intel).
    """
    from ..pipeline import hunt

    setup_logging(verbose)
    if fail_on and fail_on not in ("compromised", "exploitation_attempt", "reconnaissance"):
        fail(SightlineError(f"--fail-on takes a verdict, not {fail_on!r}", hint="use --fail-on compromised"))
    ws = workspace(ws_path)
    t0 = time.perf_counter()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)

        from .workflow import previous_stage_seconds

        before = previous_stage_seconds(ws_path)

        def on_stage(name: str) -> None:
            # ETA from the last run's record: cheap, and honest about where it comes from
            eta = f" (last run: {before[name]:.0f}s)" if before.get(name, 0.0) >= 2.0 else ""
            progress.update(task, description=f"[bold]{name}[/]{eta}")

        def on_file(res) -> None:  # type: ignore[no-untyped-def]
            if not as_json:
                console.print(_file_line(res), highlight=False, markup=False)

        try:
            result = hunt(
                ws,
                telemetry=telemetry or [],
                intel=intel or [],
                orgs_csv=orgs,
                geo=geo or [],
                out=out_dir,
                engine_name=engine,
                sensor=sensor,
                on_file=on_file,
                on_stage=on_stage,
                include_non_ids=include_non_ids,
                jobs=jobs,
            )
        except SightlineError as e:
            progress.stop()
            fail(e)
            return
    doc = result.findings.to_dict()
    coverage = intel_coverage_notes(result.run.notes)
    from .intel_cmds import hunt_skip_sources, print_skip_warning

    intel_sources = hunt_skip_sources(ws_path, intel) if intel else []
    if as_json:
        summary = run_summary(doc, result.run, result.outputs, result.ingest)
        summary["intel_skipped"] = sum(int(s.get("skipped") or 0) for s in intel_sources)
        print_json(summary)
    else:
        _print_orgs(doc, caveats=coverage)
        print_table(_stage_table(result.run), console)
        for note in dict.fromkeys(result.run.notes + doc.get("notes", [])):
            console.print("[yellow]note:[/] " + escape(str(note)), highlight=False)
        print_skip_warning(intel_sources)
        console.print(_verdict_line(doc, time.perf_counter() - t0), highlight=False)
        for p in result.outputs:
            out.print(str(p), highlight=False)
    if _unreadable_only(result.ingest):
        console.print(
            "[bold red]error:[/] none of the telemetry given could be read "
            "(see the lines above; `sightline ingest --format NAME` forces a format)",
            highlight=False,
        )
        raise typer.Exit(2)
    skipped_intel = sum(int(s.get("skipped") or 0) for s in intel_sources)
    exit_if_strict(
        strict,
        strict_problems(result.ingest)
        + ([f"{skipped_intel:,} intel row(s) skipped"] if skipped_intel else [])
        + coverage,
    )
    if fail_on and doc["summary"]["by_verdict"].get(fail_on, 0) > 0:
        raise typer.Exit(1)


def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Telemetry files, directories or globs.")],
    fmt: Annotated[str | None, typer.Option("--format", help="Skip auto-detection and read as this format.")] = None,
    sensor: Annotated[str | None, typer.Option("--sensor")] = None,
    ws_path: WorkspaceOpt = DEFAULT_WS,
    engine: EngineOpt = DEFAULT_ENGINE,
    strict: Annotated[bool, typer.Option("--strict", help=STRICT_HELP)] = False,
    jobs: JobsOpt = 0,
) -> None:
    """Add telemetry to the workspace's flow store (a file ingested twice adds nothing)."""
    from ..ingest import ingest_paths

    setup_logging()
    ws = workspace(ws_path)
    t0 = time.perf_counter()
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task("ingesting", total=None)

            def on_file(res) -> None:  # type: ignore[no-untyped-def]
                progress.update(task, description=f"ingested {res.path}")
                console.print(_file_line(res), highlight=False, markup=False)

            summary = ingest_paths(ws, paths, fmt_name=fmt, sensor=sensor, progress=on_file, jobs=jobs)
    except SightlineError as e:
        fail(e)
        return
    empty = f", {len(summary.empty)} empty (skipped)" if summary.empty else ""
    console.print(
        f"{len(summary.files)} file(s): {summary.rows:,} flows, {summary.quarantined:,} quarantined{empty} "
        f"({time.perf_counter() - t0:.1f}s)",
        highlight=False,
    )
    if _unreadable_only(summary):
        raise typer.Exit(2)
    exit_if_strict(strict, strict_problems(summary))


orgs_app = typer.Typer(help="Organization registry.", no_args_is_help=True)


@orgs_app.command("load")
def orgs_load(
    csv_path: Annotated[Path, typer.Argument(help="CSV org_id,name,sector,country,cidr (one row per CIDR).")],
    merge: Annotated[bool, typer.Option("--merge", help="Merge into the registry instead of replacing it.")] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
    engine: EngineOpt = DEFAULT_ENGINE,
) -> None:
    """Load the organization registry into the workspace."""
    from ..enrich.orgs import load_orgs_csv, store_orgs

    ws = workspace(ws_path)
    try:
        load = load_orgs_csv(csv_path)
        with ws.lock():
            n = store_orgs(ws, load, replace=not merge)
    except SightlineError as e:
        fail(e)
        return
    for line, reason, _raw in load.bad[:20]:
        console.print(f"[yellow]skipped[/] {csv_path}:{line}: {reason}", highlight=False)
    orgs_n = len(set(load.table.column("org_id").to_pylist()))
    console.print(
        f"{orgs_n} organization(s), {load.table.num_rows} range(s) loaded; {len(load.bad)} bad row(s) skipped;"
        f" registry now has {n} range(s)",
        highlight=False,
    )


def detect_cmd(
    ws_path: WorkspaceOpt = DEFAULT_WS,
    engine: EngineOpt = DEFAULT_ENGINE,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's summary (organizations, stages, notes) as JSON.")
    ] = False,
) -> None:
    """Hunt everything the workspace holds and store the findings."""
    from ..pipeline import detect_workspace, new_run, write_run

    setup_logging(verbose)
    ws = workspace(ws_path)
    t0 = time.perf_counter()
    run = new_run("detect")
    try:
        with console.status("detecting"):
            findings = detect_workspace(ws, engine_name=engine, run=run)
    except SightlineError as e:
        fail(e)
        return
    write_run(ws, run)
    doc = findings.to_dict()
    if as_json:
        print_json(run_summary(doc, run, [ws.findings_dir / "latest.json"]))
        return
    _print_orgs(doc, caveats=intel_coverage_notes(run.notes))
    print_table(_stage_table(run), console)
    for note in dict.fromkeys(run.notes + doc.get("notes", [])):
        console.print("[yellow]note:[/] " + escape(str(note)), highlight=False)
    console.print(_verdict_line(doc, time.perf_counter() - t0), highlight=False)
    out.print(str(ws.findings_dir / "latest.json"), highlight=False)


def report_cmd(
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="html | pdf | md | json | stix | misp | zeek-intel | suricata")
    ] = "html",
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (or directory).")] = None,
    tlp: Annotated[
        str | None, typer.Option("--tlp", help="Drop everything more restrictive: clear|green|amber|amber+strict|red.")
    ] = None,
    anonymize: Annotated[
        bool, typer.Option("--anonymize-victims", help="Pseudonymize victim names and addresses.")
    ] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
    engine: EngineOpt = DEFAULT_ENGINE,
) -> None:
    """Write the workspace's findings in a format (re-detects if the workspace changed)."""
    from .. import report as report_mod
    from ..pipeline import latest_findings, read_indicators

    if fmt not in report_mod.FORMATS:
        fail(SightlineError(f"unknown report format {fmt!r}", hint=f"use one of: {', '.join(report_mod.FORMATS)}"))
    ws = workspace(ws_path)
    target = out_path or Path(report_mod.DEFAULT_NAMES[fmt])
    if target.is_dir():
        target = target / report_mod.DEFAULT_NAMES[fmt]
    try:
        doc = latest_findings(ws, engine_name=engine)
        paths = report_mod.render(doc, fmt, target, indicators=read_indicators(ws), tlp=tlp, anonymize=anonymize, ws=ws)
    except SightlineError as e:
        fail(e)
        return
    for p in paths:
        out.print(str(p), highlight=False)


def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where the scenario, workspace and report go.")] = Path(
        "demo-out"
    ),
    seed: Annotated[int, typer.Option("--seed")] = 2024,
    flows: Annotated[int, typer.Option("--flows", help="Background flows to simulate.")] = 200_000,
    engine: EngineOpt = DEFAULT_ENGINE,
) -> None:
    """Simulate a RedJuliett-like campaign, hunt it on the embedded engine and report."""
    import shutil

    from ..pipeline import hunt
    from ..simulate import simulate

    setup_logging()
    scenario = out_dir / "scenario"
    ws_dir = out_dir / "workspace"
    shutil.rmtree(ws_dir, ignore_errors=True)
    t0 = time.perf_counter()
    with console.status(f"simulating {flows:,} flows (seed {seed})"):
        sim = simulate(scenario, seed=seed, flows=flows)
    console.print(f"scenario written to {scenario} ({time.perf_counter() - t0:.1f}s)", highlight=False)
    ws = workspace(ws_dir)
    with console.status("hunting"):
        try:
            result = hunt(
                ws,
                telemetry=sim.telemetry,
                intel=sim.intel,
                orgs_csv=sim.orgs,
                geo=sim.geo,
                out=out_dir,
                engine_name=engine,
            )
        except SightlineError as e:
            fail(e)
            return
    doc = result.findings.to_dict()
    _print_orgs(doc, limit=15)
    console.print(_verdict_line(doc, time.perf_counter() - t0), highlight=False)
    try:
        import json

        from ..evaluate import evaluate, render_table

        truth = json.loads(Path(sim.truth).read_text())
        console.print(render_table(evaluate(truth, doc)))
    except ImportError:
        pass
    console.print(f"findings: {out_dir / 'findings.json'}", highlight=False)
    console.print(f"[bold]report: {(out_dir / 'report.html').resolve()}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("hunt")(hunt_cmd)
    app.command("ingest")(ingest_cmd)
    app.add_typer(orgs_app, name="orgs")
    app.command("detect")(detect_cmd)
    app.command("report")(report_cmd)
    app.command("demo")(demo_cmd)
