"""Analyst workflow commands: ``config show``, ``suppress``, ``export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import SightlineError
from .common import DEFAULT_ENGINE, DEFAULT_WS, EngineOpt, WorkspaceOpt, console, fail, out, print_table, workspace

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="sightline.toml to use (else $SIGHTLINE_CONFIG, <workspace>/sightline.toml, ./sightline.toml).",
    ),
]

config_app = typer.Typer(help="Configuration (sightline.toml).", no_args_is_help=True)


@config_app.command("show")
def config_show(
    config_path: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON {key: {value, source}}.")] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Print the effective configuration and where each value came from."""
    from ..config import load_config, network_warnings

    try:
        cfg = load_config(config_path, workspace=ws_path)
    except SightlineError as e:
        fail(e)
        return
    rows = cfg.rows()
    if as_json:
        out.print_json(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}))
        return
    t = Table(title=f"Effective configuration ({cfg.path or 'no file: defaults'})")
    for col in ("key", "value", "source"):
        t.add_column(col)
    for k, v, s in rows:
        t.add_row(k, json.dumps(v), s)
    print_table(t)
    registry = 0
    try:
        from ..enrich.orgs import read_orgs

        registry = len(set(read_orgs(workspace(ws_path)).column("org_id").to_pylist()))
    except (SightlineError, OSError):
        pass
    for w in network_warnings(cfg, registry):
        console.print(f"[bold yellow]warning:[/] {w}", highlight=False)


def suppress_cmd(
    finding: Annotated[
        str | None,
        typer.Argument(help="org:<org_id> | host:<ip> | indicator:<value> | <org_id>/<host>/<indicator> (* = any)."),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (stored with who and when).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the workspace's suppressions.")] = False,
    remove: Annotated[str | None, typer.Option("--remove", help="Remove a suppression by id or FINDING text.")] = None,
    who: Annotated[str | None, typer.Option("--by", help="Analyst name (default: login name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --list: print JSON.")] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Suppress a finding (kept visible as 'suppressed by <rule>'), list or remove suppressions.

    Takes effect on the next detect / report / export, without re-ingesting.
    """
    from ..suppress import add_suppression, list_suppressions, remove_suppression

    ws = workspace(ws_path)
    try:
        if list_:
            items = list_suppressions(ws)
            if as_json:
                out.print_json(json.dumps(items))
                return
            t = Table(title=f"Suppressions ({len(items)})")
            for col in ("id", "finding", "reason", "who", "when"):
                t.add_column(col)
            for s in items:
                t.add_row(s["id"], s["finding"], s["reason"], s["who"], s["when"])
            print_table(t)
            return
        if remove:
            item = remove_suppression(ws, remove)
            console.print(f"removed {item['id']} ({item['finding']})", highlight=False)
            return
        if not finding:
            fail(SightlineError("nothing to suppress", hint="give FINDING --reason TEXT, or --list / --remove ID"))
            return
        item = add_suppression(ws, finding, reason or "", who=who)
    except SightlineError as e:
        fail(e)
        return
    console.print(f"suppressed {item['finding']} as {item['id']} by {item['who']}: {item['reason']}", highlight=False)
    out.print(item["id"], highlight=False)


def export_cmd(
    fmt: Annotated[str, typer.Option("--format", "-f", help="ndjson | csv | parquet")] = "ndjson",
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file (default: stdout; parquet needs a file).")
    ] = None,
    what: Annotated[str, typer.Option("--what", help="findings | evidence | stale")] = "evidence",
    tlp: Annotated[
        str | None, typer.Option("--tlp", help="Drop everything more restrictive: clear|green|amber|amber+strict|red.")
    ] = None,
    anonymize: Annotated[
        bool, typer.Option("--anonymize-victims", help="Pseudonymize victim names and addresses.")
    ] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
    engine: EngineOpt = DEFAULT_ENGINE,
) -> None:
    """Export findings, evidence rows (active and suppressed) or stale matches; schema in docs/export.md."""
    from ..export import FORMATS, export_table, write_export
    from ..pipeline import latest_findings

    ws = workspace(ws_path)
    try:
        if fmt not in FORMATS:
            raise SightlineError(f"unknown export format {fmt!r}", hint=f"use --format {' | '.join(FORMATS)}")
        if fmt == "parquet" and out_path is None:
            raise SightlineError("parquet needs a file", hint="add --out FILE.parquet")
        table = export_table({}, what)  # validates --what before any detection work
        from ..pipeline import read_indicators
        from ..report import prepare

        shared, _ = prepare(
            latest_findings(ws, engine_name=engine), tlp=tlp, anonymize=anonymize, ws=ws, indicators=read_indicators(ws)
        )
        table = export_table(shared.to_dict(), what)
        if out_path is not None and out_path.is_dir():
            out_path = out_path / f"{what}.{fmt}"
        written = write_export(table, fmt, out_path)
    except SightlineError as e:
        fail(e)
        return
    if written is not None:
        console.print(f"{table.num_rows:,} {what} row(s) -> {written}", highlight=False)
        out.print(str(written), highlight=False)


_STAGE_GROUPS = {"registry": ("orgs",), "detect": ("load", "detect", "enrich", "assess")}


def previous_stage_seconds(ws_path: Path, command: str = "hunt") -> dict[str, float]:
    """Seconds each progress stage took in the workspace's last run of ``command`` (for an ETA).

    Cheap: reads one small run record; returns {} when there is none or it is unreadable.
    """
    runs = workspace(ws_path).root / "runs"
    try:
        last = max((p for p in runs.glob("*.json")), key=lambda p: p.name, default=None)
        rec = json.loads(last.read_text("utf-8")) if last else {}
    except (OSError, ValueError):
        return {}
    if rec.get("command") != command:
        return {}
    secs = {s["stage"]: float(s["seconds"]) for s in rec.get("stages", []) if "." not in s["stage"]}
    out_: dict[str, float] = {}
    for name in ("registry", "geo", "intel", "ingest", "detect", "report"):
        parts = _STAGE_GROUPS.get(name, (name,))
        if any(p in secs for p in parts):
            out_[name] = sum(secs.get(p, 0.0) for p in parts)
    return out_


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.command("suppress")(suppress_cmd)
    app.command("export")(export_cmd)
