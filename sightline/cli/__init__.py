"""The ``sightline`` command line.

Each area registers its commands from its own module (``register(app)``), so the modules
stay small and owned by their stage.  Command names are a contract (design.md).
"""

from __future__ import annotations

import sys

import typer
import typer.main

from .. import __version__
from ..errors import SightlineError

app = typer.Typer(
    name="sightline",
    help="Find the victims of a threat actor's campaign in network telemetry.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sightline {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """sightline: hunt, assess and report a campaign's victims from flows and intel."""


def _register_all() -> None:
    from . import core

    core.register(app)
    # further areas register here, one import each
    for name in (
        "simulate",
        "exposure",
        "intel_cmds",
        "telemetry",
        "report_cmds",
        "serve_cmds",
        "workflow",
        "allowlist_cmds",
        "watch_cmds",
    ):
        try:
            mod = __import__(f"{__name__}.{name}", fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue
            raise
        mod.register(app)


_register_all()


def _scriptable(t: typer.Typer) -> None:
    """Every command parses as :class:`ScriptableCommand` (several values after one flag)."""
    from typer.core import TyperCommand

    from .common import ScriptableCommand

    for c in t.registered_commands:
        if c.cls in (None, TyperCommand):
            c.cls = ScriptableCommand
    for g in t.registered_groups:
        if g.typer_instance is not None:
            _scriptable(g.typer_instance)


_scriptable(app)


_COMMON = (
    ("--engine", "SIGHTLINE_ENGINE"),
    ("--workspace", "SIGHTLINE_WORKSPACE"),
    ("--config", "SIGHTLINE_CONFIG"),
    ("--spark-master", "SIGHTLINE_SPARK_MASTER"),
)


def _common_options(argv: list[str]) -> list[str]:
    """Every command takes --workspace and --engine (design contract), --config (the
    sightline.toml to use) and --spark-master (the master ``--engine spark`` connects to, e.g.
    ``spark://head:7077``, ``yarn``, ``k8s://https://api:6443``).  Commands that have no
    option of that name still accept it: it is moved to the environment, where shared options
    (and any code that needs a default) read it."""
    import os

    import click

    cmd: click.Command = typer.main.get_command(app)
    for tok in argv:
        if isinstance(cmd, click.Group) and tok in cmd.commands:
            cmd = cmd.commands[tok]
        elif not tok.startswith("-"):
            break
    have = {o for p in cmd.params for o in getattr(p, "opts", [])}
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        flag, _, val = tok.partition("=")
        env = dict(_COMMON).get(flag)
        if env and flag not in have:
            if not val and i + 1 < len(argv):
                val = argv[i + 1]
                i += 1
            os.environ[env] = val
        else:
            out.append(tok)
        i += 1
    return out


def main() -> None:
    try:
        app(args=_common_options(sys.argv[1:]), prog_name="sightline")
    except SightlineError as e:
        from .common import fail

        try:
            fail(e)
        except typer.Exit as ex:
            sys.exit(ex.exit_code)


__all__ = ["app", "main"]
