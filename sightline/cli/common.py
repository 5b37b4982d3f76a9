"""Options and helpers shared by all CLI commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
]
