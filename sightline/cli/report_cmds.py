"""``sightline notify``: one notice per affected organization from the workspace's last findings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigError, SightlineError
from ..findings import Findings
from .common import DEFAULT_WS, WorkspaceOpt, console, fail, out, workspace

__all__ = ["register", "load_findings"]


def load_findings(path: Path) -> Findings:
    """Read a findings.json; a missing or unreadable file is a typed error saying what to do."""
    from ..findings import load

    if not path.exists():
        raise ConfigError(
            "no findings to notify about",
            path=path,
            hint="run `sightline hunt` or `sightline detect` on this workspace first, or pass --findings FILE",
        )
    return load(path)


def notify(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for the notices (one .md and one .eml per organization).")
    ],
    ws: WorkspaceOpt = DEFAULT_WS,
    tlp: Annotated[
        str,
        typer.Option(
            "--tlp",
            help="TLP of the notices: clear|green|amber|amber+strict|red; more restrictive content is withheld.",
        ),
    ] = "amber",
    findings_file: Annotated[
        Path | None, typer.Option("--findings", help="Findings file instead of the workspace's latest.")
    ] = None,
    sender: Annotated[str, typer.Option("--from", help="Sender address of the .eml notices.")] = "sightline@localhost",
) -> None:
    """Write one notice per affected organization (Markdown and RFC 5322 e-mail)."""
    from ..report.notify import write_notices

    try:
        wsp = workspace(ws)
        path = findings_file or wsp.findings_dir / "latest.json"
        doc = load_findings(path)
        from ..pipeline import read_indicators

        cases = _case_recorder(wsp, tlp)
        paths, withheld = write_notices(
            doc, out_dir, tlp=tlp, sender=sender, ws=wsp, indicators=read_indicators(wsp), on_written=cases
        )
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


def _case_recorder(ws: Any, tlp: str) -> Any:
    """Records each notice on its organization's case and in the audit log (sightline.cases)."""
    from ..cases import CaseStore, audit

    store = CaseStore(ws)
    store.sync_if_stale(who="sightline", where="notify")
    who = audit.cli_user()

    def record(notice: Any, files: list[Path]) -> None:
        msg = notice.message
        names = [str(f) for f in files]
        audit.record(
            ws,
            "notice",
            who=who,
            where="cli",
            org_id=notice.org_id,
            to=str(msg["To"]),
            tlp=notice.tlp,
            files=names,
            message_id=str(msg["Message-ID"]),
        )
        store.record_notice(
            notice.org_id,
            who=who,
            where="cli",
            to=f"{notice.org_id} <{msg['To']}>",
            tlp=notice.tlp,
            files=names,
            message_id=str(msg["Message-ID"]),
            subject=str(msg["Subject"]),
        )

    return record


def register(app: typer.Typer) -> None:
    app.command("notify")(notify)
