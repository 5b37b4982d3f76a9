"""Routes of the analyst workflow: cases, the investigation drill-down and campaign graph,
accounts (sessions) and the audit log -- pages and JSON API.

Every answer that shows findings reads the caller's view (``st.view(user)``: the one sharing
policy, once per data version and clearance); cases are shown, and counted, only when their
TLP is within the caller's clearance (:func:`sightline.cases.visible`).
"""

import secrets
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

import msgspec
from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from ..cases import STATES, TRANSITIONS, CaseError, audit, counts_by_state, visible
from ..core.tlp import LEVELS, TLP
from ..errors import AuthError, SightlineError
from .access import clearance_of
from .flows import FLOW_COLUMNS_SHOWN, host_flows, peer_ranges
from .graph import campaign_graph, graph_svg
from .investigate import decisive_rows, evidence_of, reason_sentence

if TYPE_CHECKING:
    from .app import Deps, View, _App
    from .users import User

__all__ = ["register_cases", "register_investigation", "register_account"]

_ENC = msgspec.json.Encoder()
StateParam = Literal["new", "triaged", "notified", "acknowledged", "remediated", "false_positive"]
_SUMMARY_KEYS = (
    "id",
    "org_id",
    "name",
    "sector",
    "country",
    "state",
    "assignee",
    "due",
    "due_source",
    "tlp",
    "created_at",
    "updated_at",
    "in_latest",
)


# --- API models ----------------------------------------------------------------------------
class CasePage(BaseModel):
    """A page of cases with the count per state of every case the caller may see."""

    total: int
    limit: int
    offset: int
    counts: dict[str, int]
    items: list[dict[str, Any]]


class CaseChange(BaseModel):
    """A change to a case (fields left out stay as they are)."""

    state: StateParam | None = None
    assignee: str | None = Field(None, max_length=64, description="user name; empty clears")
    due: str | None = Field(None, max_length=32, description="YYYY-MM-DD; empty returns to the KEV due date")
    reason: str | None = Field(None, max_length=2000, description="why (needed for false_positive)")
    note: str | None = Field(None, max_length=20000, description="a note to add")
    note_tlp: str | None = Field(None, max_length=20, description="the note's TLP (default: the workspace default)")


class NoteIn(BaseModel):
    """A note on a case."""

    text: str = Field(..., min_length=1, max_length=20000)
    tlp: str | None = Field(None, max_length=20)


class FlowPage(BaseModel):
    """A page of flows between one host and the addresses of one indicator."""

    total: int
    limit: int
    offset: int
    host: str
    indicator: str
    items: list[dict[str, Any]]


class Graph(BaseModel):
    """Actor infrastructure and victim hosts (nodes) and their contacts and hand-offs (edges)."""

    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    clusters: list[dict[str, Any]]
    total_nodes: int


class SessionInfo(BaseModel):
    """A login session (never its secret)."""

    id: str
    user: str
    created_at: str
    last_seen: str
    expires_at: str
    client: str | None = None
    agent: str | None = None


class AuditPage(BaseModel):
    """Audit log lines, newest first."""

    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


# --- shared helpers ------------------------------------------------------------------------
class _CaseList:
    """The cases one reader may see: all of them, per state, and the count per state."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.counts = counts_by_state(rows)
        self.by_state: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            self.by_state.setdefault(str(r["state"]), []).append(r)


_LIST_CACHE: dict[tuple[Any, ...], tuple[Any, _CaseList]] = {}


def _case_list(st: "_App", v: "View") -> _CaseList:
    """The cases ``v``'s reader may see, each with the verdict of the reader's view (made once
    per case-store version, findings version and clearance; treat as read-only)."""
    st.cases.sync_if_stale()
    key = (id(st), st.cases.version(), id(v.findings), v.user.clearance, v.default_tlp)
    hit = _LIST_CACHE.get(key)
    if hit is not None and hit[0] is v.findings:  # the same findings object, not a reused id
        return hit[1]
    made = _CaseList(_build_case_list(st, v))
    if len(_LIST_CACHE) > 64:
        _LIST_CACHE.clear()
    _LIST_CACHE[key] = (v.findings, made)
    return made


def _visible_cases(st: "_App", v: "View") -> list[dict[str, Any]]:
    return _case_list(st, v).rows


def _build_case_list(st: "_App", v: "View") -> list[dict[str, Any]]:
    clearance = clearance_of(v.user.clearance)
    cases = visible(st.cases.all(), clearance, v.default_tlp)
    orgs = v.cached("org_index", lambda: {str(o.get("org_id")): o for o in v.findings["organizations"]})
    out = []
    for c in cases:
        org = orgs.get(str(c.get("org_id")))
        row = {k: c.get(k) for k in _SUMMARY_KEYS}
        row["verdict"] = org.get("verdict") if org else c.get("verdict")
        row["confidence"] = org.get("confidence") if org else c.get("confidence")
        row["findings"] = len(c.get("findings") or {})
        row["notes"] = len(c.get("notes") or [])
        row["notices"] = len(c.get("notices") or [])
        out.append(row)
    return out


def _case_detail(st: "_App", v: "View", ref: str) -> dict[str, Any] | None:
    st.cases.sync_if_stale()
    case = st.cases.get(ref)
    if case is None or not visible([case], clearance_of(v.user.clearance), v.default_tlp):
        return None
    org = next((o for o in v.findings["organizations"] if str(o.get("org_id")) == str(case.get("org_id"))), None)
    out = dict(case)
    out["findings"] = sorted(
        case.get("findings", {}).values(), key=lambda f: (f["host"], f["indicator"], f["behaviour"])
    )
    out["exposure"] = [dict(x, service=k) for k, x in sorted((case.get("exposure") or {}).items())]
    out["events"] = list(reversed(case.get("events") or []))
    out["allowed"] = list(TRANSITIONS.get(str(case.get("state")), ()))
    if org is not None:
        out["verdict"], out["confidence"] = org.get("verdict"), org.get("confidence")
        out["reason"] = reason_sentence(org)
        out["decisive"] = decisive_rows(org)
    else:
        out["reason"] = "Not in the latest findings (last verdict: " + str(case.get("verdict")) + ")."
        out["decisive"] = []
    return out


def _case_error(e: SightlineError) -> HTTPException:
    if isinstance(e, CaseError) and e.message.startswith("no case"):
        return HTTPException(404, "no such case (or not visible with your clearance)")
    if isinstance(e, CaseError) and "cannot move" in e.message:
        return HTTPException(409, str(e))
    return HTTPException(400, str(e))


def _red(st: "_App", request: Request, user: "User", detail: dict[str, Any], default_tlp: TLP) -> None:
    from ..core.tlp import marking

    if clearance_of(user.clearance) < TLP.RED:
        return
    items = []
    if marking(detail.get("tlp"), default_tlp) >= TLP.RED:
        items.append(f"case:{detail.get('id')}")
    items += [
        f"evidence:{detail.get('org_id')}/{f['host']}/{f['indicator']}/{f['behaviour']}"
        for f in detail.get("findings") or []
        if marking(f.get("tlp"), default_tlp) >= TLP.RED
    ]
    items += [
        f"note:{detail.get('id')}/{n['id']}"
        for n in detail.get("notes") or []
        if marking(n.get("tlp"), default_tlp) >= TLP.RED
    ]
    st.audit_red(request, user, items)


def _red_cases(st: "_App", request: Request, user: "User", rows: list[dict[str, Any]]) -> None:
    if clearance_of(user.clearance) >= TLP.RED:
        st.audit_red(request, user, [f"case:{c['id']}" for c in rows if str(c.get("tlp")) == TLP.RED.label])


# --- cases ---------------------------------------------------------------------------------
def register_cases(app: FastAPI, d: "Deps") -> None:
    st = d.st
    ApiUser, Analyst, PageUser, Limit, Offset = d.ApiUser, d.Analyst, d.PageUser, d.Limit, d.Offset
    not_found = {**d.errors, 404: {"model": d.problem, "description": "Unknown or not visible"}}

    @app.get("/api/v1/cases", response_model=CasePage, responses=d.errors, tags=["cases"])
    def api_cases(
        request: Request,
        user: ApiUser,
        state: StateParam | None = None,
        assignee: Annotated[str | None, Query(max_length=64)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Cases the caller may see (their TLP within the caller's clearance), most recently
        changed first; ``counts`` are per state over those cases only."""
        listed = _case_list(st, st.view(user))
        cases = listed.by_state.get(state, []) if state else listed.rows
        if assignee is not None:
            cases = [c for c in cases if (c.get("assignee") or "") == assignee]
        body = {
            "total": len(cases),
            "limit": limit,
            "offset": offset,
            "counts": listed.counts,
            "items": cases[offset : offset + limit],
        }
        _red_cases(st, request, user, body["items"])
        return Response(_ENC.encode(body), media_type="application/json")

    @app.get("/api/v1/cases/{case_id}", response_model=dict[str, Any], responses=not_found, tags=["cases"])
    def api_case(request: Request, case_id: str, user: ApiUser) -> Response:
        """One case: state, assignee, due date, TLP, the findings it holds, notes, notices
        (what was sent to whom, when), its history, and the verdict's reason."""
        v = st.view(user)
        detail = _case_detail(st, v, case_id)
        if detail is None:
            raise HTTPException(404, "no such case (or not visible with your clearance)")
        _red(st, request, user, detail, v.default_tlp)
        return JSONResponse(detail)

    @app.patch(
        "/api/v1/cases/{case_id}",
        response_model=dict[str, Any],
        responses={
            **not_found,
            400: {"model": d.problem, "description": "Bad value"},
            409: {"model": d.problem, "description": "Move not allowed from the case's state"},
        },
        tags=["cases"],
    )
    def api_case_change(request: Request, case_id: str, change: CaseChange, user: Analyst) -> Response:
        """Change a case (analyst or admin): move it through new -> triaged -> notified ->
        acknowledged -> remediated (or false_positive, with a ``reason``: it becomes a
        suppression), assign it, set its due date, add a note."""
        v = st.view(user)
        if _case_detail(st, v, case_id) is None:
            raise HTTPException(404, "no such case (or not visible with your clearance)")
        try:
            st.cases.update(
                case_id,
                who=user.name,
                where=st.client(request),
                clearance=clearance_of(user.clearance),
                **change.model_dump(),
            )
        except SightlineError as e:
            raise _case_error(e) from e
        detail = _case_detail(st, st.view(user), case_id)
        if detail is None:  # e.g. a note marked above... cannot happen: notes are capped at the clearance
            raise HTTPException(404, "no such case (or not visible with your clearance)")
        return JSONResponse(detail)

    @app.post(
        "/api/v1/cases/{case_id}/notes",
        response_model=dict[str, Any],
        responses={**not_found, 400: {"model": d.problem, "description": "Bad value"}},
        tags=["cases"],
    )
    def api_case_note(request: Request, case_id: str, note: NoteIn, user: Analyst) -> Response:
        """Add a note (marked with ``tlp``, at most the caller's clearance; default the workspace's TLP)."""
        v = st.view(user)
        if _case_detail(st, v, case_id) is None:
            raise HTTPException(404, "no such case (or not visible with your clearance)")
        try:
            st.cases.update(
                case_id,
                who=user.name,
                where=st.client(request),
                clearance=clearance_of(user.clearance),
                note=note.text,
                note_tlp=note.tlp,
            )
        except SightlineError as e:
            raise _case_error(e) from e
        return JSONResponse(_case_detail(st, st.view(user), case_id))

    @app.get("/cases", response_class=HTMLResponse, include_in_schema=False)
    def cases_page(request: Request, user: PageUser, state: str = "", assignee: str = "") -> Response:
        v = st.view(user)
        cases = _visible_cases(st, v)
        counts = counts_by_state(cases)
        shown = [
            c
            for c in cases
            if (not state or c["state"] == state) and (not assignee or (c.get("assignee") or "") == assignee)
        ]
        _red_cases(st, request, user, shown)
        return st.render(
            request,
            "cases.html",
            user=user,
            cases=shown,
            counts=counts,
            state=state,
            assignee=assignee,
            total=len(cases),
            states=STATES,
            problems=v.snapshot.problems,
        )

    @app.get("/cases/{case_id}", response_class=HTMLResponse, include_in_schema=False)
    def case_page(request: Request, case_id: str, user: PageUser, error: str = "") -> Response:
        v = st.view(user)
        detail = _case_detail(st, v, case_id)
        if detail is None:
            return st.render(
                request, "error.html", 404, user=user, message="No such case (or not visible with your clearance)."
            )
        _red(st, request, user, detail, v.default_tlp)
        levels = [lv for lv in LEVELS if clearance_of(user.clearance).allows(clearance_of(lv))]
        users = [u.name for u in st.users.list() if u.has_role("analyst")]
        return st.render(
            request,
            "case.html",
            user=user,
            case=detail,
            states=STATES,
            levels=levels,
            users=users,
            default_tlp=v.default_tlp.label,
            error=error,
            problems=v.snapshot.problems,
        )

    @app.post("/cases/{case_id}", include_in_schema=False)
    def case_form(
        request: Request,
        case_id: str,
        user: PageUser,
        csrf: Annotated[str, Form(max_length=200)] = "",
        state: Annotated[str, Form(max_length=40)] = "",
        assignee: Annotated[str | None, Form(max_length=64)] = None,
        due: Annotated[str | None, Form(max_length=32)] = None,
        reason: Annotated[str, Form(max_length=2000)] = "",
        note: Annotated[str, Form(max_length=20000)] = "",
        note_tlp: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        s = st.session(request)
        if s is None or not secrets.compare_digest(str(s.get("c", "")), csrf):
            raise HTTPException(403, "bad or missing CSRF token")
        v = st.view(user)
        detail = _case_detail(st, v, case_id)
        if detail is None:
            return st.render(
                request, "error.html", 404, user=user, message="No such case (or not visible with your clearance)."
            )
        if not user.has_role("analyst"):
            return st.render(
                request, "error.html", 403, user=user, message="Changing a case needs the analyst or admin role."
            )
        # the form sends every field: only what differs from the case is a change
        shown_due = (detail.get("due") or "") if detail.get("due_manual") else ""
        try:
            st.cases.update(
                case_id,
                who=user.name,
                where=st.client(request),
                clearance=clearance_of(user.clearance),
                state=state if state and state != detail["state"] else None,
                assignee=assignee if assignee is not None and assignee != (detail.get("assignee") or "") else None,
                due=due.strip() if due is not None and due.strip() != shown_due else None,
                reason=reason or None,
                note=note or None,
                note_tlp=note_tlp or None,
            )
        except SightlineError as e:
            return RedirectResponse(f"/cases/{detail['id']}?" + urlencode({"error": str(e)}), status_code=303)
        return RedirectResponse(f"/cases/{detail['id']}", status_code=303)


# --- investigation: drill-down and graph ----------------------------------------------------
def register_investigation(app: FastAPI, d: "Deps") -> None:
    st = d.st
    ApiUser, PageUser = d.ApiUser, d.PageUser
    FlowLimit = Annotated[int, Query(ge=1, le=500)]
    Offset = d.Offset

    def flows_for(
        request: Request, user: "User", org_id: str, host: str, indicator: str | None, limit: int, offset: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]] | None:
        v = st.view(user)
        org = next((o for o in v.findings["organizations"] if str(o.get("org_id")) == org_id), None)
        if org is None:
            return None
        rows = evidence_of(org, host, indicator)
        if not rows:
            return None
        st.rate(request, 4)  # a scan of the flow store: costs more than a page
        peers = peer_ranges(sorted({str(r.get("actor_ip") or r.get("indicator")) for r in rows}))
        flows = host_flows(st.ws.flow_files(), host, peers, limit=limit, offset=offset)
        from .app import red_items

        host_rec = next(h for h in org["hosts"] if str(h.get("ip")) == host)
        st.audit_red(
            request,
            user,
            red_items({"organizations": [dict(org, hosts=[dict(host_rec, evidence=rows)])]}, v.default_tlp),
        )
        return org, rows, flows

    @app.get(
        "/api/v1/orgs/{org_id}/flows",
        response_model=FlowPage,
        responses={**d.errors, 404: {"model": d.problem, "description": "Host x indicator not visible"}},
        tags=["findings"],
    )
    def api_flows(
        request: Request,
        org_id: str,
        user: ApiUser,
        host: Annotated[str, Query(max_length=64, description="the victim host")],
        indicator: Annotated[
            str | None, Query(max_length=300, description="one indicator (default: all of the host's)")
        ] = None,
        limit: FlowLimit = 100,
        offset: Offset = 0,
    ) -> Response:
        """The flows in the store between a host of the organization and the addresses of an
        indicator it has evidence with (oldest first, paged): what the evidence rests on."""
        got = flows_for(request, user, org_id, host, indicator, limit, offset)
        if got is None:
            raise HTTPException(404, "no such host x indicator (or not visible with your clearance)")
        return JSONResponse({**got[2], "host": host, "indicator": indicator or "*"})

    @app.get("/orgs/{org_id}/hosts/{host}", response_class=HTMLResponse, include_in_schema=False)
    def host_page(
        request: Request, org_id: str, host: str, user: PageUser, indicator: str = "", offset: int = 0
    ) -> Response:
        offset = max(0, min(offset, 1_000_000_000))
        got = flows_for(request, user, org_id, host, indicator or None, 100, offset)
        if got is None:
            return st.render(
                request, "error.html", 404, user=user, message="No such host (or not visible with your clearance)."
            )
        org, rows, flows = got
        base = {"indicator": indicator} if indicator else {}
        more = {
            "prev": "?" + urlencode({**base, "offset": max(offset - 100, 0)}) if offset > 0 else None,
            "next": "?" + urlencode({**base, "offset": offset + 100}) if offset + 100 < flows["total"] else None,
        }
        indicators = sorted({str(e.get("indicator")) for e in evidence_of(org, host)})
        return st.render(
            request,
            "host.html",
            user=user,
            org=org,
            host=host,
            rows=rows,
            flows=flows,
            more=more,
            indicator=indicator,
            indicators=indicators,
            cols=FLOW_COLUMNS_SHOWN,
        )

    @app.get("/api/v1/graph", response_model=Graph, responses=d.errors, tags=["findings"])
    def api_graph(user: ApiUser, org_id: Annotated[str | None, Query(max_length=200)] = None) -> Response:
        """The campaign as a graph: actor servers and victim hosts, contacts (strongest
        behaviour per host x server) and C2 hand-offs, of what the caller may see."""
        v = st.view(user)
        return JSONResponse(v.cached(("graph", org_id), lambda: campaign_graph(v.findings, org_id=org_id)))

    @app.get("/graph", response_class=HTMLResponse, include_in_schema=False)
    def graph_page(request: Request, user: PageUser, org: str = "") -> Response:
        v = st.view(user)
        g = v.cached(("graph", org or None), lambda: campaign_graph(v.findings, org_id=org or None))
        if clearance_of(user.clearance) >= TLP.RED:
            st.audit_red(request, user, [f"graph:{n['id']}" for n in g["nodes"] if str(n.get("tlp")) == TLP.RED.label])
        svg = v.cached(("graph-svg", org or None), lambda: graph_svg(g))
        return st.render(request, "graph.html", user=user, svg=svg, graph=g, org=org, problems=v.snapshot.problems)


# --- accounts and audit ---------------------------------------------------------------------
def register_account(app: FastAPI, d: "Deps") -> None:
    st = d.st
    ApiUser, Admin, PageUser, Limit, Offset = d.ApiUser, d.Admin, d.PageUser, d.Limit, d.Offset

    def current_sid(request: Request) -> str:
        s = st.session(request)
        from .sessions import _digest

        return _digest(str(s.get("s", "")))[:12] if s else ""

    @app.get("/api/v1/sessions", response_model=list[SessionInfo], responses=d.errors, tags=["meta"])
    def api_sessions(
        user: ApiUser, all: Annotated[bool, Query(description="every user's (admin)")] = False
    ) -> Response:
        """Login sessions: the caller's own, or everybody's for an admin with ``all=true``."""
        if all and not user.has_role("admin"):
            raise HTTPException(403, "listing every user's sessions needs the admin role")
        return JSONResponse(st.sessions.list(None if all else user.name))

    @app.delete(
        "/api/v1/sessions/{session_id}",
        response_model=SessionInfo,
        responses={**d.errors, 404: {"model": d.problem, "description": "No such session"}},
        tags=["meta"],
    )
    def api_revoke(request: Request, session_id: str, user: ApiUser) -> Response:
        """End a session now (one's own; an admin may end anybody's)."""
        try:
            gone = st.sessions.revoke(session_id, user=None if user.has_role("admin") else user.name)
        except AuthError as e:
            raise HTTPException(404, "no such session") from e
        st.audit(request, user, "session.revoke", session=session_id, of=gone.get("user"))
        return JSONResponse(gone)

    @app.get(
        "/api/v1/audit",
        response_model=AuditPage,
        responses={**d.errors, 400: {"model": d.problem, "description": "Bad time"}},
        tags=["meta"],
    )
    def api_audit(
        user: Admin,
        since: Annotated[str | None, Query(max_length=40, description="ISO time or age (24h, 7d)")] = None,
        who: Annotated[str | None, Query(max_length=64)] = None,
        what: Annotated[str | None, Query(max_length=64, description="prefix: case, login, export ...")] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """The audit log (admin), newest first."""
        try:
            t = audit.parse_since(since)
        except SightlineError as e:
            raise HTTPException(400, str(e)) from e
        lines = list(audit.read(st.ws, since=t, who=who, what=what))
        lines.reverse()
        return JSONResponse(
            {"total": len(lines), "limit": limit, "offset": offset, "items": lines[offset : offset + limit]}
        )

    @app.get("/account", response_class=HTMLResponse, include_in_schema=False)
    def account_page(request: Request, user: PageUser) -> Response:
        return st.render(
            request, "account.html", user=user, sessions=st.sessions.list(user.name), current=current_sid(request)
        )

    @app.post("/account/sessions/{session_id}/revoke", include_in_schema=False)
    def account_revoke(
        request: Request, session_id: str, user: PageUser, csrf: Annotated[str, Form(max_length=200)] = ""
    ) -> Response:
        s = st.session(request)
        if s is None or not secrets.compare_digest(str(s.get("c", "")), csrf):
            raise HTTPException(403, "bad or missing CSRF token")
        try:
            st.sessions.revoke(session_id, user=user.name)
        except AuthError:
            return st.render(request, "error.html", 404, user=user, message="No such session.")
        st.audit(request, user, "session.revoke", session=session_id, of=user.name)
        return RedirectResponse("/account" if session_id != current_sid(request) else "/login", status_code=303)
