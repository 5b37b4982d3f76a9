"""The case store: ``<workspace>/cases/cases.json``, one case per affected organization.

Writes take ``<workspace>/cases/.lock`` (an exclusive ``flock``, so the dashboard's request
threads, other server processes, ``sightline case ...``, ``notify`` and ``hunt`` never
interleave), re-read the file under the lock, and replace it atomically (temp file + fsync +
rename): a process killed at any point leaves the previous or the next store, never half of
one.  The cases lock is not the workspace lock: an ingest holds that for minutes, and a case
change must not wait for it.

:meth:`CaseStore.sync` attaches the workspace's findings to their cases.  It is keyed by
organization id and records which files it last read, so running it again (or in several
processes at once) creates no second case and attaches nothing twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..core.tlp import DEFAULT_TLP, TLP, TLPError, parse_tlp
from ..core.verdicts import VERDICT_RANK
from ..errors import ConfigError, SightlineError
from ..store import Workspace, atomic_write_bytes
from . import audit
from .model import CLOSED_STATES, STATES, TRANSITIONS, can_move, case_id, case_tlp

__all__ = ["CaseStore", "SyncResult", "CaseError"]

log = logging.getLogger("sightline.cases")

_MAX_NOTE = 20_000
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_ENC = msgspec.json.Encoder()


class CaseError(ConfigError):
    """A case change that cannot be made (unknown case, move not allowed, bad value)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "-"
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def _default_tlp(ws: Workspace) -> TLP:
    try:
        from ..config import load_config

        return load_config(workspace=ws.root).sharing.default_tlp
    except SightlineError:
        return DEFAULT_TLP


@dataclass
class SyncResult:
    """What a sync did."""

    created: list[str] = field(default_factory=list)
    attached: dict[str, int] = field(default_factory=dict)
    reopened: list[str] = field(default_factory=list)
    skipped: bool = False


class CaseStore:
    """Cases of one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.dir = Path(ws.root) / "cases"
        self.path = self.dir / "cases.json"
        self._lock_path = self.dir / ".lock"
        self._mem = threading.Lock()
        self._sync_lock = threading.Lock()
        self._key: str | None = None
        self._book: dict[str, Any] = {"version": 1, "synced": None, "cases": {}}

    # --- storage -----------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"version": 1, "synced": None, "cases": {}}
        try:
            book = msgspec.json.decode(raw)
            if not isinstance(book, dict) or not isinstance(book.get("cases"), dict):
                raise ValueError("no 'cases' object")
        except (msgspec.DecodeError, ValueError) as e:
            raise ConfigError(
                f"case store is unreadable: {e}",
                path=self.path,
                hint="restore it from backup; `sightline case sync` rebuilds cases (without their history)",
            ) from e
        return book

    def book(self) -> dict[str, Any]:
        """The whole store (cached until the file changes; treat as read-only)."""
        key = _stamp(self.path)
        with self._mem:
            if key == self._key:
                return self._book
        book = self._read()
        with self._mem:
            self._book, self._key = book, key
        return book

    @contextlib.contextmanager
    def _edit(self) -> Iterator[dict[str, Any]]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                book = self._read()
                yield book
                atomic_write_bytes(self.path, msgspec.json.format(_ENC.encode(book), indent=1) + b"\n")
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --- queries -----------------------------------------------------------------------
    def version(self) -> str:
        """Changes whenever the store does (its file's stamp)."""
        self.book()
        with self._mem:
            return self._key or "-"

    def all(self) -> list[dict[str, Any]]:
        """Every case, newest activity first."""
        cases = list(self.book()["cases"].values())
        cases.sort(key=lambda c: (str(c.get("updated_at") or ""), c["id"]), reverse=True)
        return cases

    def get(self, ref: str) -> dict[str, Any] | None:
        """The case with id ``ref``, or of organization ``ref``."""
        cases = self.book()["cases"]
        if ref in cases:
            return dict(cases[ref])
        for c in cases.values():
            if c.get("id") == ref:
                return dict(c)
        return None

    def _find(self, book: dict[str, Any], ref: str) -> dict[str, Any]:
        cases = book["cases"]
        hit = cases.get(ref) or next((c for c in cases.values() if c.get("id") == ref), None)
        if hit is None:
            raise CaseError(
                f"no case {ref!r}", hint="see `sightline case list` (a case id like C-1a2b3c4d5e, or an org id)"
            )
        return hit

    # --- sync --------------------------------------------------------------------------
    def stamp(self) -> str:
        """Which findings and indicator table the cases reflect, as file stamps."""
        return f"{_stamp(self.ws.findings_dir / 'latest.json')}|{_stamp(self.ws.indicators_path)}"

    def stale(self) -> bool:
        """True when the findings or the indicator table changed since the last sync."""
        return self.book().get("synced") != self.stamp()

    def sync_if_stale(self, **kw: Any) -> SyncResult:
        """:meth:`sync`, unless nothing changed since the last one (cheap: two ``stat`` calls)."""
        if not self.stale():
            return SyncResult(skipped=True)
        with self._sync_lock:  # single flight within a process; the file lock covers the rest
            if not self.stale():
                return SyncResult(skipped=True)
            return self.sync(**kw)

    def sync(
        self, findings: Any = None, indicators: Any = None, *, who: str = "sightline", where: str = "sync"
    ) -> SyncResult:
        """Attach the workspace's current findings to their cases (creating cases on first finding).

        Findings of a later hunt attach to the organization's case; a closed case is reopened
        (to ``new``) when the verdict is stronger than the one it was closed with.  The items'
        markings are those the sharing policy gives the workspace's own (unfiltered) view.
        """
        from ..findings import Audience, load, share

        stamp = self.stamp()
        if findings is None:
            path = self.ws.findings_dir / "latest.json"
            if not path.exists():
                return SyncResult(skipped=True)
            findings = load(path)
        if indicators is None:
            from ..pipeline import read_indicators

            try:
                indicators = read_indicators(self.ws)
            except SightlineError as e:
                log.warning("cases: indicator table unreadable (%s); markings as detected", e)
                indicators = None
        dflt = _default_tlp(self.ws)
        full = share(findings, Audience(None, default_tlp=dflt), indicators=indicators).findings
        run_id = full.run_id or full.generated_at or "-"
        at = _now()
        result = SyncResult()
        exposure = list(full.exposure or [])
        with self._edit() as book:
            cases = book["cases"]
            for org in full.organizations:
                if org.verdict == "none" or not org.hosts:
                    continue
                case = cases.get(org.org_id)
                if case is None:
                    case = cases[org.org_id] = {
                        "id": case_id(org.org_id),
                        "org_id": org.org_id,
                        "state": "new",
                        "assignee": None,
                        "due": None,
                        "due_source": None,
                        "due_manual": False,
                        "findings": {},
                        "exposure": {},
                        "verdicts": [],
                        "notes": [],
                        "notices": [],
                        "events": [],
                        "suppressions": [],
                        "closed_verdict": None,
                        "created_at": at,
                        "updated_at": at,
                        "opened_run": run_id,
                    }
                    case["events"].append(
                        {
                            "at": at,
                            "who": who,
                            "from": where,
                            "what": "created",
                            "verdict": org.verdict,
                            "run_id": run_id,
                        }
                    )
                    result.created.append(case["id"])
                case.update(name=org.name, sector=org.sector, country=org.country, source=org.source, in_latest=True)
                changed = self._attach(case, org, exposure, run_id, at, who, where, result)
                if changed:
                    case["updated_at"] = at
                case["tlp"] = case_tlp(case, dflt).label
            present = {o.org_id for o in full.organizations if o.verdict != "none" and o.hosts}
            for oid, case in cases.items():
                if oid not in present:
                    case["in_latest"] = False
            book["synced"] = stamp
        return result

    @staticmethod
    def _attach(
        case: dict[str, Any],
        org: Any,
        exposure: list[Any],
        run_id: str,
        at: str,
        who: str,
        where: str,
        result: SyncResult,
    ) -> bool:
        changed = False
        new = 0
        held = case["findings"]
        for host in org.hosts:
            for ev in host.evidence:
                key = f"{host.ip}|{ev.indicator}|{ev.behaviour}"
                item = held.get(key)
                if item is None:
                    held[key] = {
                        "host": host.ip,
                        "indicator": ev.indicator,
                        "behaviour": ev.behaviour,
                        "tlp": ev.tlp,
                        "attached_at": at,
                        "run_id": run_id,
                        "last_run_id": run_id,
                    }
                    new += 1
                else:
                    item["last_run_id"] = run_id
                    if item.get("tlp") != ev.tlp:
                        item["tlp"] = ev.tlp  # re-marked since (intel marked more or less restrictively)
        if new:
            result.attached[case["id"]] = new
            if case["verdicts"]:  # the first findings are the case's creation
                case["events"].append(
                    {"at": at, "who": who, "from": where, "what": "attached", "findings": new, "run_id": run_id}
                )
            changed = True
        ips = {h.ip for h in org.hosts}
        for x in exposure:
            if x.org_id != org.org_id and x.ip not in ips:
                continue
            dues = sorted(
                str(c.kev["due_date"]) for c in x.cves if not isinstance(c, str) and c.kev and c.kev.get("due_date")
            )
            kev_cves = sorted(c.cve for c in x.cves if not isinstance(c, str) and c.kev)
            case["exposure"][f"{x.ip}:{x.port}"] = {
                "tlp": x.tlp,
                "kev_due": dues[0] if dues else None,
                "cves": kev_cves,
            }
        if not case.get("due_manual"):
            due = min(
                ((v["kev_due"], k, v["cves"]) for k, v in case["exposure"].items() if v.get("kev_due")), default=None
            )
            if due is not None and case.get("due") != due[0]:
                case["due"] = due[0]
                case["due_source"] = f"KEV due date of {', '.join(due[2][:3])} on {due[1]}"
                changed = True
        last = case["verdicts"][-1] if case["verdicts"] else None
        if last is None or (last.get("verdict"), last.get("confidence")) != (org.verdict, org.confidence):
            case["verdicts"].append({"run_id": run_id, "at": at, "verdict": org.verdict, "confidence": org.confidence})
            changed = True
        old = case.get("verdict")
        case["verdict"], case["confidence"] = org.verdict, org.confidence
        if old is not None and VERDICT_RANK.get(org.verdict, 0) > VERDICT_RANK.get(old, 0):
            case["events"].append(
                {
                    "at": at,
                    "who": who,
                    "from": where,
                    "what": "escalated",
                    "old": old,
                    "new": org.verdict,
                    "run_id": run_id,
                }
            )
            changed = True
        closed_with = case.get("closed_verdict")
        if case["state"] in CLOSED_STATES and VERDICT_RANK.get(org.verdict, 0) > VERDICT_RANK.get(
            closed_with or "none", 0
        ):
            case["events"].append(
                {
                    "at": at,
                    "who": who,
                    "from": where,
                    "what": "reopened",
                    "old": case["state"],
                    "new": "new",
                    "reason": f"verdict escalated from {closed_with or 'none'} to {org.verdict}",
                    "run_id": run_id,
                }
            )
            case["state"] = "new"
            case["closed_verdict"] = None
            result.reopened.append(case["id"])
            changed = True
        return changed

    # --- changes -----------------------------------------------------------------------
    def update(
        self,
        ref: str,
        *,
        who: str,
        where: str,
        state: str | None = None,
        assignee: str | None = None,
        due: str | None = None,
        reason: str | None = None,
        note: str | None = None,
        note_tlp: str | None = None,
        clearance: TLP | None = None,
    ) -> dict[str, Any]:
        """Change a case: state, assignee (``""`` clears), due date (ISO date; ``""`` returns to
        the KEV due date), and/or add a note.  Every change is an event on the case and a line
        in the audit log.

        ``clearance`` is the changing user's (None: the operator): a note may not be marked
        above it, and a case above it cannot be changed (it is not visible to them).
        ``false_positive`` needs a ``reason``; it becomes a suppression of each host x
        indicator the case holds (``sightline suppress``), and reopening the case removes them.

        Raises
        ------
        CaseError
            Unknown case, a move the state machine does not allow, or a bad value.
        """
        dflt = _default_tlp(self.ws)
        current = self.get(ref)
        if current is None:
            raise CaseError(
                f"no case {ref!r}", hint="see `sightline case list` (a case id like C-1a2b3c4d5e, or an org id)"
            )
        if clearance is not None and not clearance.allows(case_tlp(current, dflt)):
            raise CaseError(f"no case {ref!r}", hint="see `sightline case list`")
        if state is not None:
            if state not in STATES:
                raise CaseError(f"unknown state {state!r}", field="state", hint="use one of " + ", ".join(STATES))
            if state != current["state"] and not can_move(current["state"], state):
                raise CaseError(
                    f"a {current['state']} case cannot move to {state}",
                    field="state",
                    hint="allowed: " + (", ".join(TRANSITIONS[current["state"]]) or "nothing"),
                )
            if state == "false_positive" and state != current["state"] and not (reason or "").strip():
                raise CaseError(
                    "a false positive needs a reason",
                    field="reason",
                    hint="say why (it becomes the suppression's reason), e.g. --reason 'our own scanner'",
                )
        if assignee and not _NAME_RE.match(assignee):
            raise CaseError(f"invalid assignee {assignee!r}", field="assignee", hint="a user name, or '' to clear")
        if due:
            try:
                due = dt.date.fromisoformat(due.strip()).isoformat()
            except ValueError as e:
                raise CaseError(
                    f"not a date: {due!r}", field="due", hint="use YYYY-MM-DD, or '' for the KEV due date"
                ) from e
        note_label = None
        if note is not None:
            note = note.strip()
            if not note:
                raise CaseError("empty note", field="note", hint="write something")
            if len(note) > _MAX_NOTE:
                raise CaseError(f"note longer than {_MAX_NOTE} characters", field="note", hint="shorten it")
            try:
                level = parse_tlp(note_tlp, what="note TLP") if note_tlp else dflt
            except TLPError as e:
                raise CaseError(e.message, field="tlp", hint=e.hint) from e
            if clearance is not None and not clearance.allows(level):
                raise CaseError(
                    f"you cannot mark a note {level.title}: your clearance is {clearance.title}",
                    field="tlp",
                    hint="mark it at or below your clearance",
                )
            note_label = level.label

        # suppressions live in their own store, which takes the workspace lock: never inside ours
        sup_ids: list[str] = []
        if state == "false_positive" and current["state"] != "false_positive":
            sup_ids = self._suppress(current, (reason or "").strip(), who)
        elif state is not None and current["state"] == "false_positive" and state != "false_positive":
            self._unsuppress(current)

        at = _now()
        events: list[dict[str, Any]] = []
        with self._edit() as book:
            case = self._find(book, ref)
            if state is not None and state != case["state"]:
                if not can_move(case["state"], state):  # changed meanwhile by someone else
                    raise CaseError(
                        f"a {case['state']} case cannot move to {state}",
                        field="state",
                        hint="allowed: " + (", ".join(TRANSITIONS[case["state"]]) or "nothing"),
                    )
                ev = {"what": "state", "old": case["state"], "new": state}
                if reason:
                    ev["reason"] = reason.strip()
                if state in CLOSED_STATES:
                    case["closed_verdict"] = case.get("verdict")
                else:
                    case["closed_verdict"] = None
                if state == "false_positive":
                    case["suppressions"] = sup_ids
                    ev["suppressions"] = sup_ids
                elif case["state"] == "false_positive":
                    ev["suppressions_removed"] = case.get("suppressions", [])
                    case["suppressions"] = []
                case["state"] = state
                events.append(ev)
            if assignee is not None and (assignee or None) != case.get("assignee"):
                events.append({"what": "assignee", "old": case.get("assignee"), "new": assignee or None})
                case["assignee"] = assignee or None
            if due is not None:
                if due:
                    if due != case.get("due") or not case.get("due_manual"):
                        events.append({"what": "due", "old": case.get("due"), "new": due})
                        case.update(due=due, due_manual=True, due_source=f"set by {who}")
                elif case.get("due_manual"):
                    events.append({"what": "due", "old": case.get("due"), "new": None})
                    case.update(due=None, due_manual=False, due_source=None)
                    self._kev_due(case)
            if note is not None:
                nid = f"n{len(case['notes']) + 1}"
                case["notes"].append({"id": nid, "at": at, "who": who, "text": note, "tlp": note_label})
                events.append({"what": "note", "note": nid, "tlp": note_label})
            for ev in events:
                case["events"].append({"at": at, "who": who, "from": where, **ev})
            if events:
                case["updated_at"] = at
            case["tlp"] = case_tlp(case, dflt).label
            result = dict(case)
        for ev in events:
            audit.record(
                self.ws,
                f"case.{ev['what']}",
                who=who,
                where=where,
                case=result["id"],
                org_id=result["org_id"],
                **{k: v for k, v in ev.items() if k != "what"},
            )
        if state == "false_positive" or (state is not None and current["state"] == "false_positive"):
            self._refresh_findings()
        return result

    @staticmethod
    def _kev_due(case: dict[str, Any]) -> None:
        due = min(
            ((v["kev_due"], k, v["cves"]) for k, v in (case.get("exposure") or {}).items() if v.get("kev_due")),
            default=None,
        )
        if due is not None:
            case["due"] = due[0]
            case["due_source"] = f"KEV due date of {', '.join(due[2][:3])} on {due[1]}"

    def _suppress(self, case: dict[str, Any], reason: str, who: str) -> list[str]:
        from ..suppress import add_suppression, list_suppressions

        existing = {s.get("finding"): s.get("id") for s in list_suppressions(self.ws)}
        ids: list[str] = []
        pairs = sorted({(f["host"], f["indicator"]) for f in case["findings"].values()})
        for host, indicator in pairs:
            finding = f"{case['org_id']}/{host}/{indicator}"
            if finding in existing:
                ids.append(str(existing[finding]))
                continue
            item = add_suppression(self.ws, finding, f"case {case['id']} false positive: {reason}", who=who)
            ids.append(item["id"])
        return ids

    def _unsuppress(self, case: dict[str, Any]) -> None:
        from ..suppress import remove_suppression

        for sid in case.get("suppressions") or []:
            try:
                remove_suppression(self.ws, sid)
            except ConfigError:
                pass  # removed by hand already

    def _refresh_findings(self) -> None:
        """Re-apply suppressions to the stored findings, so every view shows the change now."""
        from ..findings import load
        from ..suppress import refresh_findings

        path = self.ws.findings_dir / "latest.json"
        if not path.exists():
            return
        try:
            refresh_findings(self.ws, load(path))
        except SightlineError as e:
            log.warning("cases: findings not refreshed after a suppression change (%s); the next detect applies it", e)

    def record_notice(
        self,
        org_id: str,
        *,
        who: str,
        where: str,
        to: str,
        tlp: str,
        files: list[str],
        message_id: str | None,
        subject: str | None,
    ) -> dict[str, Any] | None:
        """Note on ``org_id``'s case that a notice was made for it (what, to whom, when), and move
        a new or triaged case to ``notified``.  None when the organization has no case."""
        at = _now()
        with self._edit() as book:
            case = book["cases"].get(org_id)
            if case is None:
                return None
            case["notices"].append(
                {
                    "at": at,
                    "who": who,
                    "to": to,
                    "tlp": tlp,
                    "files": files,
                    "message_id": message_id,
                    "subject": subject,
                }
            )
            case["events"].append(
                {"at": at, "who": who, "from": where, "what": "notice", "to": to, "tlp": tlp, "message_id": message_id}
            )
            moved = None
            if case["state"] in ("new", "triaged"):
                moved = {"what": "state", "old": case["state"], "new": "notified", "reason": "notice written"}
                case["events"].append({"at": at, "who": who, "from": where, **moved})
                case["state"] = "notified"
            case["updated_at"] = at
            result = dict(case)
        audit.record(
            self.ws,
            "case.notice",
            who=who,
            where=where,
            case=result["id"],
            org_id=org_id,
            to=to,
            tlp=tlp,
            files=files,
            message_id=message_id,
        )
        if moved:
            audit.record(
                self.ws,
                "case.state",
                who=who,
                where=where,
                case=result["id"],
                org_id=org_id,
                old=moved["old"],
                new="notified",
                reason=moved["reason"],
            )
        return result
