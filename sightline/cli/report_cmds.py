"""``sightline notify``: one notice per affected organization from the workspace's last findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError, InputError, SightlineError
from .common import DEFAULT_WS, WorkspaceOpt, console, fail, out, workspace

__all__ = ["register", "load_findings"]


def load_findings(path: Path) -> dict:
    """Read a findings.json; a missing or unreadable file is a typed error saying what to do."""
    if not path.exists():
        raise ConfigError(
            "no findings to notify about",
            path=path,
            hint="run `sightline hunt` or `sightline detect` on this workspace first, or pass --findings FILE",
        )
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"findings file is not readable JSON: {e}", path=path,
                         hint="re-run `sightline hunt` to regenerate it") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("organizations", []), list):
        raise InputError("not a sightline findings document (no organizations list)", path=path,
                         hint="pass the findings.json written by `sightline hunt`")
    return doc


def notify(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the notices (one .md and one .eml per organization).")],
    ws: WorkspaceOpt = DEFAULT_WS,
    tlp: Annotated[str, typer.Option("--tlp", help="TLP of the notices: clear|green|amber|amber+strict|red; "
                                                   "more restrictive content is withheld.")] = "amber",
    findings_file: Annotated[Path | None, typer.Option("--findings", help="Findings file instead of the workspace's latest.")] = None,
    sender: Annotated[str, typer.Option("--from", help="Sender address of the .eml notices.")] = "sightline@localhost",
) -> None:
    """Write one notice per affected organization (Markdown and RFC 5322 e-mail)."""
    from ..report.notify import write_notices

    try:
        path = findings_file or workspace(ws).findings_dir / "latest.json"
        doc = load_findings(path)
        paths, withheld = write_notices(doc, out_dir, tlp=tlp, sender=sender)
    except SightlineError as e:
        fail(e)
        return
    n = len(paths) // 2
    out.print(f"{n} notice{'s' if n != 1 else ''} written to {out_dir}", highlight=False)
    for p in paths:
        out.print(f"  {p}", highlight=False, markup=False)
    if withheld:
        console.print(f"withheld (more restrictive than TLP:{tlp.upper()}); use --tlp to include:", highlight=False)
        for w in withheld:
            console.print(f"  {w}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("notify")(notify)
