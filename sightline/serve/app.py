"""The FastAPI application: dashboard pages, JSON API and exports over one workspace.

Every request that shows data goes through :meth:`_App.view`, which filters the findings by
the user's TLP clearance once, before anything is rendered, counted, charted or exported.
"""

import datetime as dt
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import msgspec
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from .. import __version__
from ..config import load_config
from ..core.tlp import DEFAULT_TLP, TLP, marking
from ..errors import SightlineError
from ..findings import Audience, share, share_indicators, summarize
from ..findings.model import Organization
from ..store import Workspace
from .access import clearance_of, visible_indicators
from .charts import activity_timeline, evidence_gantt, stacked_bars
from .data import Snapshot, WorkspaceView
from .exports import evidence_csv, misp_export, stix_export
from .query import ORG_SORT_KEYS, Filters, evidence_rows, filter_orgs, page, parse_time, sort_orgs
from .security import SECURITY_HEADERS, LoginRateLimiter, Signer, load_secret
from .users import User, UserStore

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
SESSION_COOKIE = "sl_session"
PRE_COOKIE = "sl_pre"
_API = "/api/v1"
_MEMO_LOCK = threading.Lock()
_ORGS_PER_PAGE = 200  # rows of the organizations table per page (keeps pages small)

VerdictParam = Literal["compromised", "exploitation_attempt", "reconnaissance"]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class SecurityHeaders:
    """ASGI middleware adding security headers (and no-store for anything not static)."""

    def __init__(self, app: ASGIApp, secure: bool) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        if secure:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.headers if k not in present]
                if not static and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- API models (for the OpenAPI spec) -------------------------------------------------
class Page(BaseModel):
    """A page of results."""

    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


class Me(BaseModel):
    """The authenticated user."""

    name: str
    role: str
    clearance: str


class Problem(BaseModel):
    """An error: what went wrong."""

    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Not authenticated"},
    403: {"model": Problem, "description": "Role too low"},
}


@dataclass(frozen=True)
class View:
    """Everything one user may see, filtered once per request."""

    user: User
    findings: dict[str, Any]
    indicators: list[dict[str, Any]]
    snapshot: Snapshot
    memo: dict[str, Any]  # derived values (charts) shared by requests seeing the same data

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per (data version, clearance); treat the result as read-only."""
        hit = self.memo.get(key)
        if hit is None:
            # Single flight: concurrent first requests wait for one computation instead of
            # all computing the same thing at once under the GIL.
            with _MEMO_LOCK:
                hit = self.memo.get(key)
                if hit is None:
                    if len(self.memo) > 512:  # bounded: filter combinations are user input
                        self.memo.clear()
                    hit = self.memo[key] = make()
        return hit

    def orgs(self, f: Filters, sort: str | None = None, desc: bool = False) -> list[dict[str, Any]]:
        """Organizations matching ``f``, sorted (memoized)."""
        return self.cached(("orgs", f, sort, desc), lambda: sort_orgs(filter_orgs(self.findings["organizations"], f), sort, desc))

    def evidence(self, f: Filters, behaviour: str | None) -> list[dict[str, Any]]:
        """Flat evidence rows matching ``f`` (memoized)."""
        return self.cached(("evidence", f, behaviour), lambda: evidence_rows(self.findings["organizations"], f, behaviour))


class _App:
    def __init__(self, ws: Workspace, secret: bytes, secure_cookies: bool, session_max_age: int, limiter: LoginRateLimiter) -> None:
        self.ws = ws
        self.users = UserStore(ws)
        self.data = WorkspaceView(ws)
        self.signer = Signer(secret)
        self.secure = secure_cookies
        self.max_age = session_max_age
        self.limiter = limiter
        self.env = Environment(
            loader=FileSystemLoader(str(_HERE / "templates")),
            autoescape=select_autoescape(("html", "xml"), default=True),
        )
        self.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
        self.env.globals["version"] = __version__
        self._filtered: dict[tuple[Any, ...], tuple[Any, Any, dict[str, Any], list[dict[str, Any]], dict[str, Any]]] = {}
        self._flock = threading.Lock()
        self._compute_lock = threading.Lock()

    # --- auth --------------------------------------------------------------------------
    def session(self, request: Request) -> dict[str, Any] | None:
        return self.signer.load(request.cookies.get(SESSION_COOKIE), purpose="session")

    def current_user(self, request: Request) -> User | None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return self.users.verify_token(auth[7:])
        s = self.session(request)
        if s is None:
            return None
        user = self.users.get(str(s.get("u", "")))
        if user is None or user.session_epoch != s.get("e"):
            return None
        return user

    # --- data --------------------------------------------------------------------------
    def view(self, user: User) -> View:
        snap = self.data.snapshot()
        key = (id(snap.findings), id(snap.indicators), user.clearance, self.default_tlp())
        with self._flock:
            hit = self._filtered.get(key)
        if hit is not None and hit[0] is snap.findings and hit[1] is snap.indicators:
            return View(user, hit[2], hit[3], snap, hit[4])
        with self._compute_lock:  # single flight (see View.cached)
            with self._flock:
                hit = self._filtered.get(key)
            if hit is not None and hit[0] is snap.findings and hit[1] is snap.indicators:
                return View(user, hit[2], hit[3], snap, hit[4])
            return self._filter(snap, user, key)

    def default_tlp(self) -> TLP:
        """The workspace's TLP for unmarked content (its configuration is read per request:
        a change applies without a restart)."""
        try:
            return load_config(workspace=self.ws.root).sharing.default_tlp
        except SightlineError:
            return DEFAULT_TLP

    def _filter(self, snap: Snapshot, user: User, key: tuple[Any, ...]) -> View:
        clearance = clearance_of(user.clearance)
        dflt = key[-1]
        audience = Audience(clearance, default_tlp=dflt)
        shared = share(snap.findings, audience, indicators=snap.indicator_table)
        findings = shared.to_dict()
        visible_ind = visible_indicators(snap.indicators, clearance, dflt)
        table = share_indicators(snap.indicator_table, audience, shared)
        with self._flock:
            if len(self._filtered) > 32:
                self._filtered.clear()
            # The tuple keeps the source objects alive, so their ids cannot be reused.
            memo: dict[str, Any] = {"indicator_table": table}
            self._filtered[key] = (snap.findings, snap.indicators, findings, visible_ind, memo)
        return View(user, findings, visible_ind, snap, memo)

    # --- pages -------------------------------------------------------------------------
    def render(self, request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        s = self.session(request)
        ctx.setdefault("user", None)
        ctx.setdefault("problems", [])
        ctx["csrf"] = s.get("c") if s else ""
        ctx["path"] = request.url.path
        html = self.env.get_template(name).render(**ctx)
        return HTMLResponse(html, status_code=status)

    def set_session(self, resp: Response, user: User) -> None:
        token = self.signer.sign({"u": user.name, "e": user.session_epoch, "c": secrets.token_urlsafe(24)}, purpose="session", max_age=self.max_age)
        resp.set_cookie(SESSION_COOKIE, token, max_age=self.max_age, httponly=True, samesite="strict", secure=self.secure, path="/")


class _LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def _filters(
    verdict: VerdictParam | None = None,
    sector: Annotated[str | None, Query(max_length=100)] = None,
    country: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[dt.datetime | None, Query(description="ISO-8601 start of the time window")] = None,
    until: Annotated[dt.datetime | None, Query(description="ISO-8601 end of the time window")] = None,
    q: Annotated[str | None, Query(max_length=200, description="text search in name, id, host")] = None,
) -> Filters:
    def utc(t: dt.datetime | None) -> dt.datetime | None:
        return t if t is None or t.tzinfo else t.replace(tzinfo=dt.UTC)

    return Filters(verdict=verdict, sector=sector or None, country=country or None, since=utc(since), until=utc(until), q=q or None)


def _page_filters(request: Request) -> tuple[Filters, list[str]]:
    """Filters from a page's query string; bad values are reported, not fatal."""
    qp = request.query_params
    problems = []
    verdict = qp.get("verdict") or None
    if verdict and verdict not in ("compromised", "exploitation_attempt", "reconnaissance"):
        problems.append(f"unknown verdict {verdict!r} ignored")
        verdict = None
    times = {}
    for k in ("since", "until"):
        v = qp.get(k) or None
        t = parse_time(v)
        if v and t is None:
            problems.append(f"{k}={v!r} is not an ISO-8601 time; ignored")
        times[k] = t
    return Filters(verdict, qp.get("sector") or None, qp.get("country") or None, times["since"], times["until"], qp.get("q") or None), problems


def create_app(
    ws: Workspace | str | Path,
    *,
    secret: bytes | None = None,
    secure_cookies: bool = False,
    session_max_age: int = 8 * 3600,
    rate_limiter: LoginRateLimiter | None = None,
) -> FastAPI:
    """Build the dashboard + API application for workspace ``ws``.

    Parameters
    ----------
    ws
        The workspace to show (read-only, except ``users.json`` and the session secret).
    secret
        Session-signing key; default ``$SIGHTLINE_SECRET`` or one stored in the workspace.
    secure_cookies
        Mark cookies ``Secure`` and send HSTS (set when served behind HTTPS).
    session_max_age
        Seconds a login lasts.
    rate_limiter
        Login limiter (default: 5 failures per 5 minutes per address and per user name).
    """
    ws = ws if isinstance(ws, Workspace) else Workspace(ws)
    st = _App(ws, secret or load_secret(ws), secure_cookies, session_max_age, rate_limiter or LoginRateLimiter())
    app = FastAPI(
        title="sightline",
        version=__version__,
        description="Findings of a sightline workspace, filtered by the caller's TLP clearance. "
        "Authenticate with `Authorization: Bearer <token>` (see `sightline users token`).",
        docs_url=None,  # the stock docs pages load scripts from a CDN
        redoc_url=None,
        openapi_url=f"{_API}/openapi.json",
    )
    app.state.sightline = st
    app.add_middleware(SecurityHeaders, secure=secure_cookies)  # type: ignore[arg-type]
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    # --- dependencies ------------------------------------------------------------------
    def api_user(request: Request) -> User:
        user = st.current_user(request)
        if user is None:
            raise HTTPException(401, "authentication required: send 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
        return user

    def api_analyst(user: Annotated[User, Depends(api_user)]) -> User:
        if not user.has_role("analyst"):
            raise HTTPException(403, "this needs the analyst or admin role")
        return user

    def page_user(request: Request) -> User:
        user = st.current_user(request)
        if user is None:
            raise _LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return user

    @app.exception_handler(_LoginRequired)
    async def _to_login(request: Request, exc: _LoginRequired) -> Response:
        return RedirectResponse("/login?next=" + quote(exc.next_url, safe=""), status_code=303)

    @app.exception_handler(SightlineError)
    async def _sightline_error(request: Request, exc: SightlineError) -> Response:
        log.error("serve: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)

    ApiUser = Annotated[User, Depends(api_user)]
    Analyst = Annotated[User, Depends(api_analyst)]
    PageUser = Annotated[User, Depends(page_user)]
    F = Annotated[Filters, Depends(_filters)]
    Limit = Annotated[int, Query(ge=1, le=1000)]
    Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]

    # --- login / logout ----------------------------------------------------------------
    def _login_page(request: Request, error: str = "", status: int = 200, next_url: str = "/") -> HTMLResponse:
        pre = st.signer.load(request.cookies.get(PRE_COOKIE), purpose="pre")
        csrf = pre["c"] if pre else secrets.token_urlsafe(24)
        resp = st.render(request, "login.html", status, error=error, login_csrf=csrf, next_url=next_url)
        if not pre:
            resp.set_cookie(PRE_COOKIE, st.signer.sign({"c": csrf}, purpose="pre", max_age=3600), max_age=3600,
                            httponly=True, samesite="strict", secure=st.secure, path="/")
        return resp

    def _safe_next(value: str | None) -> str:
        v = value or "/"
        return v if v.startswith("/") and not v.startswith("//") and "\\" not in v else "/"

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        return _login_page(request, next_url=_safe_next(next))

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=200)] = "",
        password: Annotated[str, Form(max_length=1000)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        pre = st.signer.load(request.cookies.get(PRE_COOKIE), purpose="pre")
        if pre is None or not secrets.compare_digest(str(pre.get("c", "")), csrf):
            return _login_page(request, "The form expired; please try again.", 403, _safe_next(next))
        client = request.client.host if request.client else "?"
        keys = (f"ip:{client}", f"user:{username.lower()}")
        wait = st.limiter.retry_after(*keys)
        if wait:
            resp = _login_page(request, f"Too many failed logins; try again in {wait} s.", 429, _safe_next(next))
            resp.headers["Retry-After"] = str(wait)
            return resp
        user = st.users.verify_password(username, password)
        if user is None:
            st.limiter.failed(*keys)
            return _login_page(request, "Wrong user name or password.", 401, _safe_next(next))
        st.limiter.succeeded(f"user:{username.lower()}")
        resp = RedirectResponse(_safe_next(next), status_code=303)
        st.set_session(resp, user)
        resp.delete_cookie(PRE_COOKIE, path="/")
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
        s = st.session(request)
        if s is None or not secrets.compare_digest(str(s.get("c", "")), csrf):
            raise HTTPException(403, "bad or missing CSRF token")
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # --- pages -------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request, user: PageUser) -> Response:
        v = st.view(user)
        s = v.findings.get("summary", {})
        return st.render(
            request, "overview.html", user=user, f=v.findings, problems=v.snapshot.problems,
            by_verdict=s.get("by_verdict", {}),
            timeline=v.cached("timeline", lambda: activity_timeline(v.findings["organizations"])),
            sector_chart=v.cached("sectors", lambda: stacked_bars(s.get("by_sector", {}), title="Organizations by sector")),
            country_chart=v.cached("countries", lambda: stacked_bars(s.get("by_country", {}), title="Organizations by country")),
            top=v.cached("top", lambda: sort_orgs(v.findings["organizations"], None, False)[:10]),
        )

    @app.get("/orgs", response_class=HTMLResponse, include_in_schema=False)
    def orgs_page(request: Request, user: PageUser, sort: str = "", desc: int = 0, offset: int = 0) -> Response:
        v = st.view(user)
        f, problems = _page_filters(request)
        all_orgs = v.findings["organizations"]
        matched = v.orgs(f, sort or None, bool(desc))
        offset = min(max(offset, 0), max(len(matched) - 1, 0))
        rows = matched[offset : offset + _ORGS_PER_PAGE]
        base = {k: val for k, val in request.query_params.items() if k not in ("sort", "desc", "offset") and val}
        sort_links = {k: "/orgs?" + urlencode({**base, "sort": k, "desc": int(sort == k and not desc)}) for k in ORG_SORT_KEYS}
        keep = {**base, **({"sort": sort, "desc": int(desc)} if sort else {})}
        more = {
            "prev": "/orgs?" + urlencode({**keep, "offset": max(offset - _ORGS_PER_PAGE, 0)}) if offset > 0 else None,
            "next": "/orgs?" + urlencode({**keep, "offset": offset + _ORGS_PER_PAGE}) if offset + _ORGS_PER_PAGE < len(matched) else None,
        }
        return st.render(
            request, "orgs.html", user=user, orgs=rows, matched=len(matched), offset=offset, more=more,
            total=len(all_orgs), f=f, sort=sort, desc=bool(desc),
            sort_links=sort_links, problems=[*v.snapshot.problems, *problems],
            sectors=sorted({str(o.get("sector") or "") for o in all_orgs} - {""}),
            countries=sorted({str(o.get("country") or "") for o in all_orgs} - {""}),
        )

    @app.get("/orgs/{org_id}", response_class=HTMLResponse, include_in_schema=False)
    def org_page(request: Request, org_id: str, user: PageUser) -> Response:
        v = st.view(user)
        org = next((o for o in v.findings["organizations"] if str(o.get("org_id")) == org_id), None)
        if org is None:
            return st.render(request, "error.html", 404, user=user, message="No such organization (or not visible with your clearance).")
        values = {str(i) for h in org["hosts"] for i in h.get("indicators") or []} | {str(e.get("indicator")) for h in org["hosts"] for e in h["evidence"]}
        inds = {str(i.get("value")): i for i in v.indicators if str(i.get("value")) in values}
        host_ips = {str(h.get("ip")) for h in org["hosts"]}
        exposure = [x for x in v.findings.get("exposure") or [] if str(x.get("org_id")) == org_id or str(x.get("ip")) in host_ips]
        return st.render(
            request, "org.html", user=user, org=org, indicator_values=sorted(values - {"None"}), indicators=inds,
            exposure=exposure, exposure_cols=_columns(exposure), gantt=evidence_gantt(org), problems=v.snapshot.problems,
        )

    @app.get("/indicators", response_class=HTMLResponse, include_in_schema=False)
    def indicators_page(request: Request, user: PageUser, q: str = "", offset: int = 0) -> Response:
        v = st.view(user)
        rows = _match_indicators(v.indicators, q=q)
        offset = max(offset, 0)
        return st.render(request, "indicators.html", user=user, rows=rows[offset : offset + 500], total=len(rows), q=q,
                         offset=offset, problems=v.snapshot.problems)

    @app.get("/infrastructure", response_class=HTMLResponse, include_in_schema=False)
    def infra_page(request: Request, user: PageUser) -> Response:
        v = st.view(user)
        items = sorted(v.findings.get("suspected_infrastructure") or [], key=lambda x: -(x.get("score") or 0))
        actor = v.findings.get("actor_infrastructure") or []
        stale = v.findings.get("stale_matches") or []
        return st.render(request, "infrastructure.html", user=user, items=items, actor=actor, actor_cols=_columns(actor),
                         stale=stale, problems=v.snapshot.problems)

    @app.get("/exposure", response_class=HTMLResponse, include_in_schema=False)
    def exposure_page(request: Request, user: PageUser) -> Response:
        v = st.view(user)
        items = v.findings.get("exposure") or []
        return st.render(request, "exposure.html", user=user, items=items, cols=_columns(items), problems=v.snapshot.problems)

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    def runs_page(request: Request, user: PageUser) -> Response:
        if not user.has_role("analyst"):
            return st.render(request, "error.html", 403, user=user, message="The runs page needs the analyst or admin role.")
        snap = st.data.snapshot()
        files = sorted(snap.manifest.get("files", {}).values(), key=lambda e: str(e.get("ingested_at", "")), reverse=True)
        return st.render(request, "runs.html", user=user, runs=[_run_for(r, user) for r in snap.runs], files=files,
                         problems=snap.problems)

    # --- API ---------------------------------------------------------------------------
    @app.get(f"{_API}/me", response_model=Me, responses=_ERRORS, tags=["meta"])
    def api_me(user: ApiUser) -> Me:
        """The authenticated user, role and TLP clearance."""
        return Me(name=user.name, role=user.role, clearance=user.clearance)

    @app.get(f"{_API}/findings", response_model=dict[str, Any], responses=_ERRORS, tags=["findings"])
    def api_findings(user: ApiUser, f: F) -> Response:
        """The findings document (design.md), filtered by clearance and the given filters."""
        return _json(_subset(st.view(user).findings, f))

    @app.get(f"{_API}/summary", response_model=dict[str, Any], responses=_ERRORS, tags=["findings"])
    def api_summary(user: ApiUser) -> Response:
        """Counts by verdict, sector and country of what the caller may see."""
        v = st.view(user)
        return _json({"summary": v.findings.get("summary", {}), "inputs": v.findings.get("inputs", {}), "tlp": v.findings.get("tlp"),
                      "generated_at": v.findings.get("generated_at"), "window": v.findings.get("window")})

    @app.get(f"{_API}/orgs", response_model=Page, responses=_ERRORS, tags=["findings"])
    def api_orgs(user: ApiUser, f: F, sort: Literal[ORG_SORT_KEYS] | None = None, desc: bool = False,  # type: ignore[valid-type]
                 limit: Limit = 100, offset: Offset = 0,
                 hosts: Annotated[bool, Query(description="include hosts and evidence (else counts only)")] = False) -> Response:
        """Affected organizations (paged), strongest verdict first unless ``sort`` is given.

        Items carry ``host_count`` and ``evidence_count``; pass ``hosts=true`` for the hosts
        with their evidence, or use ``/orgs/{org_id}``.
        """
        p = page(st.view(user).orgs(f, sort, desc), limit, offset)
        p["items"] = [_org_row(o, hosts) for o in p["items"]]
        return _json(p)

    @app.get(f"{_API}/orgs/{{org_id}}", response_model=dict[str, Any], responses={**_ERRORS, 404: {"model": Problem, "description": "Unknown or not visible"}}, tags=["findings"])
    def api_org(org_id: str, user: ApiUser) -> Response:
        """One organization with hosts and evidence."""
        for o in st.view(user).findings["organizations"]:
            if str(o.get("org_id")) == org_id:
                return _json(o)
        raise HTTPException(404, "no such organization (or not visible with your clearance)")

    @app.get(f"{_API}/evidence", response_model=Page, responses=_ERRORS, tags=["findings"])
    def api_evidence(user: ApiUser, f: F, behaviour: Annotated[str | None, Query(max_length=100)] = None,
                     limit: Limit = 100, offset: Offset = 0) -> Response:
        """Evidence rows, one per host x indicator x behaviour, with their organization."""
        return _json(page(st.view(user).evidence(f, behaviour), limit, offset))

    @app.get(f"{_API}/indicators", response_model=Page, responses=_ERRORS, tags=["intel"])
    def api_indicators(user: ApiUser, type: Annotated[str | None, Query(max_length=50)] = None,
                       actor: Annotated[str | None, Query(max_length=200)] = None,
                       q: Annotated[str | None, Query(max_length=200)] = None,
                       limit: Limit = 100, offset: Offset = 0) -> Response:
        """Indicators the caller is cleared for."""
        return _json(page(_match_indicators(st.view(user).indicators, q=q or "", type=type, actor=actor), limit, offset))

    @app.get(f"{_API}/exposure", response_model=Page, responses=_ERRORS, tags=["exposure"])
    def api_exposure(user: ApiUser, org_id: Annotated[str | None, Query(max_length=200)] = None,
                     limit: Limit = 100, offset: Offset = 0) -> Response:
        """Exposed edge services x known-exploited vulnerabilities."""
        items = st.view(user).findings.get("exposure") or []
        if org_id:
            items = [x for x in items if str(x.get("org_id")) == org_id]
        return _json(page(items, limit, offset))

    @app.get(f"{_API}/suspected-infrastructure", response_model=Page, responses=_ERRORS, tags=["findings"])
    def api_suspected(user: ApiUser, limit: Limit = 100, offset: Offset = 0) -> Response:
        """External addresses that behave like actor infrastructure but are not in the intel."""
        return _json(page(st.view(user).findings.get("suspected_infrastructure") or [], limit, offset))

    @app.get(f"{_API}/runs", response_model=Page, responses=_ERRORS, tags=["meta"])
    def api_runs(user: Analyst, limit: Limit = 100, offset: Offset = 0) -> Response:
        """Run records, newest first (analyst or admin)."""
        return _json(page([_run_for(r, user) for r in st.data.snapshot().runs], limit, offset))

    @app.get(f"{_API}/export/csv", response_class=Response, responses={**_ERRORS, 200: {"content": {"text/csv": {}}}}, tags=["export"])
    def export_csv(user: Analyst, f: F, behaviour: Annotated[str | None, Query(max_length=100)] = None) -> Response:
        """Evidence rows as CSV (cells that a spreadsheet would run as formulas are neutralized)."""
        text = evidence_csv(st.view(user).evidence(f, behaviour))
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="sightline-evidence.csv"'})

    @app.get(f"{_API}/export/stix", responses={**_ERRORS, 404: {"model": Problem, "description": "STIX export not installed"}}, tags=["export"])
    def export_stix(user: Analyst, f: F) -> Response:
        """A STIX 2.1 bundle of the visible findings, marked with their TLP."""
        v = st.view(user)
        bundle = stix_export(_subset(v.findings, f), v.memo.get("indicator_table"))
        return JSONResponse(bundle, headers={"Content-Disposition": 'attachment; filename="sightline-stix.json"'})

    @app.get(f"{_API}/export/misp", responses={**_ERRORS, 404: {"model": Problem, "description": "MISP export not installed"}}, tags=["export"])
    def export_misp(user: Analyst, f: F) -> Response:
        """A MISP event of the visible findings, tagged with their TLP."""
        v = st.view(user)
        event = misp_export(_subset(v.findings, f), v.memo.get("indicator_table"))
        return JSONResponse(event, headers={"Content-Disposition": 'attachment; filename="sightline-misp.json"'})

    return app


# --- helpers ---------------------------------------------------------------------------
def _json(obj: Any) -> JSONResponse:
    # Returning the response directly skips FastAPI's re-validation and jsonable_encoder
    # pass over large nested findings (3-4x faster); the documented models stay in the spec.
    return JSONResponse(obj)


def _org_row(org: dict[str, Any], with_hosts: bool) -> dict[str, Any]:
    row = {k: v for k, v in org.items() if with_hosts or k != "hosts"}
    row["host_count"] = len(org.get("hosts") or [])
    row["evidence_count"] = sum(len(h.get("evidence") or []) for h in org.get("hosts") or [])
    return row


def _subset(findings: dict[str, Any], f: Filters) -> dict[str, Any]:
    if f == Filters():
        return findings
    out = dict(findings)
    out["organizations"] = filter_orgs(findings["organizations"], f)
    out["summary"] = summarize(msgspec.convert(out["organizations"], list[Organization]))
    return out


def _match_indicators(rows: list[dict[str, Any]], *, q: str = "", type: str | None = None, actor: str | None = None) -> list[dict[str, Any]]:
    ql = q.strip().lower()
    out = [
        r for r in rows
        if (not type or str(r.get("type")) == type)
        and (not actor or str(r.get("actor") or "").lower() == actor.lower())
        and (not ql or ql in f"{r.get('value', '')} {r.get('actor', '')} {r.get('source', '')} {r.get('description', '')}".lower())
    ]
    return sorted(out, key=lambda r: (-marking(r.get("tlp")), str(r.get("type")), str(r.get("value"))))


def _columns(items: list[dict[str, Any]]) -> list[str]:
    """Union of keys over ``items``, in first-seen order (for tables of open-ended records)."""
    cols: dict[str, None] = {}
    for it in items[:200]:
        for k in it:
            cols.setdefault(str(k), None)
    return list(cols)


_SAFE_RUN_COUNTS = ("files", "flows", "rows", "quarantined", "bytes")
_SAFE_RUN_STAGES = ("orgs", "geo", "ingest")
"""Stages whose row counts say nothing about the intel or the findings."""


def _run_for(run: dict[str, Any], user: User) -> dict[str, Any]:
    """A run record as ``user`` may see it: below full (red) clearance, only what does not come
    from intel or findings (counts of flows and files, stage times; no stage row counts of
    detection, no notes), so no statistic undoes what the sharing policy withheld."""
    r = dict(run)
    if clearance_of(user.clearance) < TLP.RED:
        if isinstance(r.get("counts"), dict):
            r["counts"] = {k: v for k, v in r["counts"].items() if k in _SAFE_RUN_COUNTS}
        if isinstance(r.get("stages"), list):
            r["stages"] = [dict(s, rows=s.get("rows") if str(s.get("stage")) in _SAFE_RUN_STAGES else None)
                           for s in r["stages"] if isinstance(s, dict)]
        r.pop("notes", None)
    return r

