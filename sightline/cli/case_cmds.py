"""``sightline case list|show|set|sync`` and ``sightline audit``: the dashboard's cases and
audit log from the command line (same store, same rules, same audit lines)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..errors import SightlineError
from .common import DEFAULT_WS, WorkspaceOpt, console, fail, out, workspace

__all__ = ["register"]

case_app = typer.Typer(help="Cases: one per affected organization, from new to remediated.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TlpOpt = Annotated[
    str, typer.Option("--tlp", help="Show only what a reader cleared for this TLP may see (default: everything).")
]


def _store(ws_path: Any) -> Any:
    from ..cases import CaseStore

    store = CaseStore(workspace(ws_path))
    store.sync_if_stale(who="sightline", where="cli")
    return store


def _clearance(tlp: str) -> Any:
    from ..core.tlp import parse_tlp

    return parse_tlp(tlp, what="TLP level") if tlp else None


def _default_tlp(ws_path: Any) -> Any:
    from ..cases.store import _default_tlp as dflt

    return dflt(workspace(ws_path))


def _visible(store: Any, ws_path: Any, tlp: str) -> list[dict[str, Any]]:
    from ..cases import visible

    return visible(store.all(), _clearance(tlp), _default_tlp(ws_path))


@case_app.command("list")
def case_list(
    state: Annotated[str, typer.Option("--state", help="Only cases in this state.")] = "",
    assignee: Annotated[str, typer.Option("--assignee", help="Only cases assigned to this user.")] = "",
    tlp: TlpOpt = "",
    as_json: JsonOpt = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """List cases (syncing them with the latest findings first), most recently changed first."""
    from ..cases import STATES, counts_by_state

    try:
        if state and state not in STATES:
            raise SightlineError(f"unknown state {state!r}", field="state", hint="use one of " + ", ".join(STATES))
        store = _store(ws_path)
        cases = _visible(store, ws_path, tlp)
    except SightlineError as e:
        fail(e)
        return
    counts = counts_by_state(cases)
    rows = [c for c in cases if (not state or c["state"] == state) and (not assignee or c.get("assignee") == assignee)]
    if as_json:
        keys = (
            "id",
            "org_id",
            "name",
            "state",
            "verdict",
            "confidence",
            "assignee",
            "due",
            "tlp",
            "updated_at",
            "in_latest",
        )
        typer.echo(json.dumps({"counts": counts, "cases": [{k: c.get(k) for k in keys} for c in rows]}, indent=2))
        return
    if not rows:
        console.print(
            "no cases"
            + (f" in state {state}" if state else "")
            + " (cases open when a hunt finds an affected organization)",
            markup=False,
        )
    for c in rows:
        typer.echo(
            f"{c['id']}\t{c['state']}\t{c.get('verdict')}\t{c.get('assignee') or '-'}\tdue {c.get('due') or '-'}\t"
            f"TLP:{str(c.get('tlp')).upper()}\t{c['org_id']}\t{c.get('name') or ''}"
        )
    console.print("  ".join(f"{k}: {v}" for k, v in counts.items()), markup=False)


def _get(store: Any, ws_path: Any, ref: str, tlp: str) -> dict[str, Any]:
    from ..cases import CaseError, visible

    case = store.get(ref)
    if case is None or not visible([case], _clearance(tlp), _default_tlp(ws_path)):
        raise CaseError(
            f"no case {ref!r}", hint="see `sightline case list` (a case id like C-1a2b3c4d5e, or an org id)"
        )
    return dict(case)


def _print_case(c: dict[str, Any]) -> None:
    lines = [
        f"case {c['id']}: {c.get('name') or c['org_id']} ({c['org_id']})",
        f"  state {c['state']}, verdict {c.get('verdict')} (confidence {c.get('confidence')}), TLP:{str(c.get('tlp')).upper()}",
        f"  assignee {c.get('assignee') or '-'}, due {c.get('due') or '-'}"
        + (f" ({c['due_source']})" if c.get("due_source") else ""),
        f"  opened {c.get('created_at')}, updated {c.get('updated_at')}"
        + ("" if c.get("in_latest", True) else ", not in the latest findings"),
        f"  findings held: {len(c.get('findings') or {})}",
    ]
    for f in sorted((c.get("findings") or {}).values(), key=lambda f: (f["host"], f["indicator"]))[:50]:
        lines.append(f"    {f['host']} {f['behaviour']} {f['indicator']} TLP:{str(f.get('tlp')).upper()}")
    for n in c.get("notes") or []:
        lines.append(f"  note {n['id']} by {n['who']} at {n['at']} TLP:{str(n.get('tlp')).upper()}: {n['text']}")
    for n in c.get("notices") or []:
        lines.append(
            f"  notice {n['at']} by {n['who']} to {n['to']} TLP:{str(n.get('tlp')).upper()}: {', '.join(n.get('files') or [])}"
        )
    for ev in c.get("events") or []:
        change = f" {ev.get('old') or '-'} -> {ev.get('new') or '-'}" if "old" in ev or "new" in ev else ""
        lines.append(
            f"  {ev['at']} {ev['who']} ({ev.get('from')}): {ev['what']}{change}"
            + (f" ({ev['reason']})" if ev.get("reason") else "")
        )
    for line in lines:
        out.print(line, highlight=False, markup=False)


@case_app.command("show")
def case_show(
    ref: Annotated[str, typer.Argument(help="Case id (C-...) or organization id.")],
    tlp: TlpOpt = "",
    as_json: JsonOpt = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Show one case: state, assignee, due date, findings held, notes, notices, history."""
    try:
        case = _get(_store(ws_path), ws_path, ref, tlp)
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        typer.echo(json.dumps(case, indent=2))
        return
    _print_case(case)


@case_app.command("set")
def case_set(
    ref: Annotated[str, typer.Argument(help="Case id (C-...) or organization id.")],
    state: Annotated[
        str | None, typer.Option("--state", help="new, triaged, notified, acknowledged, remediated or false_positive.")
    ] = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="User to assign ('' clears).")] = None,
    due: Annotated[
        str | None, typer.Option("--due", help="Due date YYYY-MM-DD ('' returns to the KEV due date).")
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why (needed for false_positive: it becomes the suppression's reason)."),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Add a note.")] = None,
    note_tlp: Annotated[
        str | None, typer.Option("--note-tlp", help="TLP of the note (default: the workspace's default TLP).")
    ] = None,
    as_json: JsonOpt = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Change a case: move its state, assign it, set its due date, add a note."""
    from ..cases import audit

    if all(v is None for v in (state, assignee, due, note)):
        fail(SightlineError("nothing to change", hint="give --state, --assignee, --due or --note"))
        return
    try:
        case = _store(ws_path).update(
            ref,
            who=audit.cli_user(),
            where="cli",
            state=state,
            assignee=assignee,
            due=due,
            reason=reason,
            note=note,
            note_tlp=note_tlp,
        )
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        typer.echo(json.dumps(case, indent=2))
        return
    out.print(
        f"case {case['id']} ({case['org_id']}): {case['state']}, assignee {case.get('assignee') or '-'}, "
        f"due {case.get('due') or '-'}, TLP:{str(case.get('tlp')).upper()}",
        highlight=False,
        markup=False,
    )


@case_app.command("sync")
def case_sync(as_json: JsonOpt = False, ws_path: WorkspaceOpt = DEFAULT_WS) -> None:
    """Attach the latest findings to their cases now (hunt, detect, the dashboard and the other
    case commands do this by themselves)."""
    from ..cases import CaseStore, audit

    try:
        res = CaseStore(workspace(ws_path)).sync(who=audit.cli_user(), where="cli")
    except SightlineError as e:
        fail(e)
        return
    summary = {"created": res.created, "attached": res.attached, "reopened": res.reopened, "skipped": res.skipped}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    out.print(
        f"{len(res.created)} case(s) created, findings attached to {len(res.attached)}, {len(res.reopened)} reopened",
        highlight=False,
        markup=False,
    )


def audit_cmd(
    since: Annotated[str, typer.Option("--since", help="ISO-8601 time or an age: 30m, 24h, 7d.")] = "",
    who: Annotated[str, typer.Option("--who", help="Only lines of this user.")] = "",
    what: Annotated[
        str, typer.Option("--what", help="Only this kind (a prefix: case, login, export, view.red ...).")
    ] = "",
    as_json: JsonOpt = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Read the audit log: logins and failures, token use, case changes, exports and notices,
    who was shown which TLP:RED item (oldest first)."""
    from ..cases import audit

    try:
        lines = audit.read(
            workspace(ws_path), since=audit.parse_since(since or None), who=who or None, what=what or None
        )
        n = 0
        for line in lines:
            n += 1
            if as_json:
                typer.echo(json.dumps(line, ensure_ascii=False))
                continue
            rest = " ".join(
                f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
                for k, v in line.items()
                if k not in ("time", "who", "what", "from")
            )
            typer.echo(f"{line.get('time')}\t{line.get('who')}\t{line.get('from')}\t{line.get('what')}\t{rest}")
    except SightlineError as e:
        fail(e)
        return
    if n == 0 and not as_json:
        console.print("no audit lines" + (" in that range" if since or who or what else " yet"), markup=False)


def register(app: typer.Typer) -> None:
    """Add ``case`` and ``audit`` to the ``sightline`` command."""
    app.add_typer(case_app, name="case")
    app.command("audit")(audit_cmd)
