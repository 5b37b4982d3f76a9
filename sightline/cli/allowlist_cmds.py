"""``sightline allowlist update|status``: the MISP warninglists that mark shared infrastructure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InputError, SightlineError
from .common import DEFAULT_WS, WorkspaceOpt, console, fail, out, print_table, workspace

allowlist_app = typer.Typer(
    name="allowlist",
    help="Shared-infrastructure lists (MISP warninglists): update the workspace copy, show what is in effect.",
    no_args_is_help=True,
)


def _categories(values: list[str]) -> dict[str, str]:
    cats = {}
    for v in values:
        lid, sep, cat = v.partition("=")
        if not sep or not lid.strip() or not cat.strip():
            raise InputError(f"--category {v!r} is not ID=CATEGORY", hint="e.g. --category tranco=popular_domain")
        cats[lid.strip()] = cat.strip()
    return cats


def _age(days: Any) -> str:
    return "-" if days is None else f"{days}d"


def _print_status(st: dict[str, Any], *, show_lists: bool) -> None:
    tot = st["totals"]
    b = st["bundled"]
    bsrc = b.get("source") or {}
    out.print(
        f"{tot['lists']} lists in effect (+{tot['boundary_lists']} suffix-boundary lists): "
        f"{tot['ranges']:,} address ranges, {tot['names']:,} names; list versions "
        f"{_age(tot['newest_list_days'])} to {_age(tot['oldest_list_days'])} old",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    out.print(
        f"bundled snapshot: {bsrc.get('kind', '?')} {bsrc.get('version', '')} built {b.get('built_at')} "
        f"({_age(b.get('age_days'))} ago)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    w = st.get("workspace")
    if w:
        src = w.get("source") or {}
        origin = src.get("path") or f"{src.get('kind', '?')} {src.get('version', '')}".strip()
        n = sum(1 for x in st["lists"] if x["origin"] == "workspace")
        out.print(
            f"workspace snapshot: {n} list(s) from {origin} built {w.get('built_at')} ({_age(w.get('age_days'))} ago), "
            "in place of the bundled lists of the same id",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print("workspace snapshot: none (`sightline allowlist update` makes one)", markup=False, soft_wrap=True)
    if show_lists:
        t = Table(title="Warninglists in effect")
        for col in ("list", "category", "version", "age", "entries", "from"):
            t.add_column(col, justify="right" if col in ("entries", "age") else "left")
        for x in st["lists"]:
            t.add_row(
                escape(x["id"]),
                x["category"],
                escape(str(x["version"])),
                _age(x["age_days"]),
                f"{x['entries']:,}",
                x["origin"],
            )
        print_table(t)
    for p in st["problems"]:
        console.print(f"[yellow]warning:[/] {escape(p)}", highlight=False, soft_wrap=True)


@allowlist_app.command("update")
def update_cmd(
    ws_path: WorkspaceOpt = DEFAULT_WS,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A checkout of MISP/misp-warninglists, or a directory of <id>/list.json "
            "(default: the installed pymispwarninglists package).",
        ),
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option(
            "--category",
            help="ID=CATEGORY: also compile list ID (or re-categorize it); repeatable. Categories: "
            "resolver, cdn, cloud, saas, crl, vpn, scanner, popular_domain, boundary.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Compile the warninglists into <workspace>/warninglists/; its lists replace the bundled ones of the same id."""
    from ..enrich.warninglists import status, update_workspace

    ws = workspace(ws_path)
    try:
        snap = update_workspace(ws, directory, categories=_categories(category or []))
        st = status(ws)
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "updated": [m["id"] for m in snap.manifest["lists"]],
                    "skipped_lists": snap.manifest["skipped_lists"],
                    "problems": snap.problems,
                    "status": st,
                },
                default=str,
            )
        )
        return
    m = snap.manifest
    n_bound = sum(1 for x in m["lists"] if x["category"] == "boundary")
    out.print(
        f"updated {ws.root / 'warninglists'}: {len(m['lists']) - n_bound} list(s) (+{n_bound} suffix-boundary), "
        f"{snap.ranges.num_rows:,} ranges, "
        f"{snap.names.num_rows:,} names; {len(m['left_out'])} list(s) not about shared infrastructure left out",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for s in m["skipped_lists"]:
        console.print(
            f"[yellow]warning:[/] list {escape(s['id'])} skipped: {escape(s['reason'])}",
            highlight=False,
            soft_wrap=True,
        )
    for p in snap.problems:
        if not p.startswith("list ") or " skipped: " not in p:
            console.print(f"[yellow]note:[/] {escape(p)}", highlight=False, soft_wrap=True)
    _print_status({**st, "problems": []}, show_lists=False)


@allowlist_app.command("status")
def status_cmd(
    ws_path: WorkspaceOpt = DEFAULT_WS,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show the warninglists in effect: lists, entries, versions and ages."""
    from ..enrich.warninglists import status

    try:
        st = status(workspace(ws_path))
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        out.print_json(json.dumps(st, default=str))
        return
    _print_status(st, show_lists=True)


def register(app: typer.Typer) -> None:
    app.add_typer(allowlist_app, name="allowlist")


__all__ = ["register", "allowlist_app"]
