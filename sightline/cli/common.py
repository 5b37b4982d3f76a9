"""Options and helpers shared by all CLI commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand

from ..core.settings import settings
from ..errors import SightlineError
from ..store import DEFAULT_WORKSPACE, Workspace

console = Console(stderr=True)
out = Console()

WorkspaceOpt = Annotated[
    Path,
    typer.Option("--workspace", "-w", help="Workspace directory.", envvar="SIGHTLINE_WORKSPACE"),
]
EngineOpt = Annotated[
    str,
    typer.Option("--engine", help="Query engine: duckdb (embedded, default) or spark.", envvar="SIGHTLINE_ENGINE"),
]
DEFAULT_WS = Path(DEFAULT_WORKSPACE)
DEFAULT_ENGINE = "duckdb"


def workspace(path: Path) -> Workspace:
    return Workspace(path)


def fail(err: SightlineError) -> None:
    """Print a sightline error with what to do next, and exit with its code."""
    from rich.markup import escape  # "[field]" in the message must not be read as a style tag

    console.print(f"[bold red]error:[/] {escape(str(err))}", markup=True, highlight=False)
    raise typer.Exit(err.exit_code)


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, settings().log_level, logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


__all__ = [
    "console",
    "out",
    "WorkspaceOpt",
    "EngineOpt",
    "DEFAULT_WS",
    "DEFAULT_ENGINE",
    "workspace",
    "fail",
    "setup_logging",
    "print_table",
    "print_json",
    "JsonFlag",
    "expand_multi_values",
    "ScriptableCommand",
]


# --- scriptable output: tables that never cut words off a terminal, and --json ----------------


def print_table(table: Any, console_: Console | None = None) -> None:
    """Print a rich table.  On a terminal it fits the window; anywhere else (a pipe, a file,
    a CI log) it is printed at its natural width, so no cell is cut ("bundl…")."""
    con = console_ or out
    if con.is_terminal:
        con.print(table)
        return
    from rich.measure import Measurement

    wide = con.options.update(width=1_000_000, max_width=1_000_000)
    width = Measurement.get(con, wide, table).maximum
    saved = con._width  # print(width=) can only narrow: widen the console for this table
    con.width = max(width, 20)
    try:
        con.print(table, crop=False)
    finally:
        con._width = saved


def print_json(doc: Any) -> None:
    """Write ``doc`` to stdout as JSON (no styling, no line wrapping): for scripts and ``jq``."""
    import json

    typer.echo(json.dumps(doc, indent=2, default=str, ensure_ascii=False))


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of the table.")]


# --- several values after one flag --------------------------------------------------------------


def _is_option(p: Any) -> bool:
    return getattr(p, "param_type_name", "") == "option"


def _takes_value(p: Any) -> bool:
    return _is_option(p) and not p.is_flag and not p.count


def expand_multi_values(cmd: Any, args: list[str]) -> list[str]:
    """``--telemetry a.log b.log -i x.csv y.json`` -> ``--telemetry a.log --telemetry b.log -i
    x.csv -i y.json``: a repeatable option takes every value up to the next option, on commands
    without positional arguments (where a bare word can only be such a value).  The repeated
    form passes unchanged.  An option whose value is optional (``exposure --json [FILE]``)
    gets ``-`` (stdout) when no value follows."""
    opts = {o: p for p in cmd.params if _is_option(p) for o in (*p.opts, *p.secondary_opts)}
    greedy_ok = not any(getattr(p, "param_type_name", "") == "argument" for p in cmd.params)
    # ``--json FILE`` (write the document there) predates ``--json`` (print it): both work
    optional_value = {o for o, p in opts.items() if o == "--json" and _takes_value(p)}
    res: list[str] = []
    last_multi: str | None = None
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            res.extend(args[i:])
            break
        if tok.startswith("-") and len(tok) > 1:
            name, eq, _ = tok.partition("=")
            p = opts.get(name)
            res.append(tok)
            last_multi = None
            if p is not None and _takes_value(p) and not eq:
                nxt = args[i + 1] if i + 1 < len(args) else None
                if name in optional_value and (nxt is None or (nxt.startswith("-") and len(nxt) > 1)):
                    res.append("-")
                elif nxt is not None:
                    res.append(nxt)
                    i += 1
            if p is not None and _takes_value(p) and p.multiple and greedy_ok:
                last_multi = name
            i += 1
            continue
        if last_multi is not None:
            res.extend([last_multi, tok])
        else:
            res.append(tok)
        i += 1
    return res


class ScriptableCommand(TyperCommand):
    """Every sightline command: several values after one repeatable flag (see
    :func:`expand_multi_values`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_values(self, list(args)))
