"""The FastAPI application: dashboard pages, JSON API and exports over one workspace.

Every request that shows data goes through :meth:`_App.view`, which filters the findings by
the user's TLP clearance once, before anything is rendered, counted, charted or exported.
"""

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import threading
import time
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
from ..cases import CaseStore, audit
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
from .investigate import decisive_rows, host_groups, reason_sentence
from .query import ORG_SORT_KEYS, Filters, evidence_rows, filter_orgs, page, parse_time, sort_orgs
from .security import (
    SECURITY_HEADERS,
    ApiRateLimiter,
    Busy,
    HashGate,
    LoginRateLimiter,
    Network,
    Signer,
    client_address,
    load_secret,
)
from .sessions import SessionStore
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
    429: {"model": Problem, "description": "Too many requests: wait the seconds in Retry-After"},
}
_TOKEN_ID = re.compile(r"^sl_([A-Za-z0-9]{8})_")
EXPORT_COST = 10.0
"""API rate-limit tokens an export costs (a STIX export of a large hunt takes seconds of CPU)."""


@dataclass(frozen=True)
class View:
    """Everything one user may see, filtered once per request."""

    user: User
    findings: dict[str, Any]
    indicators: list[dict[str, Any]]
    snapshot: Snapshot
    memo: dict[str, Any]  # derived values (charts) shared by requests seeing the same data
    default_tlp: TLP = DEFAULT_TLP

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
        return self.cached(
            ("orgs", f, sort, desc), lambda: sort_orgs(filter_orgs(self.findings["organizations"], f), sort, desc)
        )

    def evidence(self, f: Filters, behaviour: str | None) -> list[dict[str, Any]]:
        """Flat evidence rows matching ``f`` (memoized)."""
        return self.cached(
            ("evidence", f, behaviour), lambda: evidence_rows(self.findings["organizations"], f, behaviour)
        )


class _App:
    def __init__(
        self,
        ws: Workspace,
        secret: bytes,
        secure_cookies: bool,
        session_max_age: int,
        limiter: LoginRateLimiter,
        *,
        gate: HashGate,
        api_limiter: ApiRateLimiter,
        proxies: tuple[Network, ...],
    ) -> None:
        self.ws = ws
        self.users = UserStore(ws, gate=gate)
        self.sessions = SessionStore(ws)
        self.cases = CaseStore(ws)
        self.data = WorkspaceView(ws)
        self.signer = Signer(secret)
        self.secure = secure_cookies
        self.max_age = session_max_age
        self.limiter = limiter
        self.api_limiter = api_limiter
        self.proxies = proxies
        self._audit_seen: dict[tuple[str, ...], float] = {}
        self._audit_lock = threading.Lock()
        self.env = Environment(
            loader=FileSystemLoader(str(_HERE / "templates")),
            autoescape=select_autoescape(("html", "xml"), default=True),
        )
        self.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
        self.env.globals["version"] = __version__
        self._filtered: dict[
            tuple[Any, ...], tuple[Any, Any, dict[str, Any], list[dict[str, Any]], dict[str, Any]]
        ] = {}
        self._flock = threading.Lock()
        self._compute_lock = threading.Lock()

    # --- auth --------------------------------------------------------------------------
    def client(self, request: Request) -> str:
        """The client's address (behind a trusted proxy: from X-Forwarded-For)."""
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.getlist("x-forwarded-for"), self.proxies)

    def session(self, request: Request) -> dict[str, Any] | None:
        return self.signer.load(request.cookies.get(SESSION_COOKIE), purpose="session")

    def current_user(self, request: Request) -> User | None:
        """The caller: by API token, else by a live server-side session (its cookie alone is
        not enough: logout and revocation delete the session)."""
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            user = self.users.verify_token(auth[7:])
            if user is not None:
                m = _TOKEN_ID.match(auth[7:].strip())
                tid = m.group(1) if m else "?"
                request.state.rate_key = f"token:{tid}"
                self._token_used(tid, user, self.client(request))
            return user
        s = self.session(request)
        if s is None:
            return None
        user = self.users.get(str(s.get("u", "")))
        if user is None or user.session_epoch != s.get("e") or user.uid != s.get("i"):
            return None
        sid = str(s.get("s", ""))
        if self.sessions.check(sid, user.name, user.uid) is None:
            return None
        self.sessions.touch(sid, self.client(request))
        request.state.rate_key = f"user:{user.name}"
        return user

    def _once(self, key: tuple[str, ...], every: float) -> bool:
        """True at most once per ``every`` seconds for ``key`` (keeps repeated audit lines out)."""
        now = time.monotonic()
        with self._audit_lock:
            last = self._audit_seen.get(key)
            if last is not None and now - last < every:
                return False
            if len(self._audit_seen) > 20_000:
                self._audit_seen.clear()
            self._audit_seen[key] = now
            return True

    def _token_used(self, tid: str, user: User, client: str) -> None:
        if self._once(("token", tid, client), audit.TOKEN_USE_EVERY_S):
            audit.record(self.ws, "token.use", who=user.name, where=client, token=tid)

    def audit(self, request: Request, user: User | None, what: str, **details: Any) -> None:
        """One audit line for ``what`` done by ``user`` from the request's client."""
        audit.record(self.ws, what, who=user.name if user else "-", where=self.client(request), **details)

    def audit_red(self, request: Request, user: User, items: list[str]) -> None:
        """Record which TLP:RED items ``user`` was shown (the same view again within a minute
        is not written twice)."""
        if not items:
            return
        digest = hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()[:16]
        if self._once(("red", user.name, request.url.path, digest), 60.0):
            self.audit(request, user, "view.red", path=request.url.path, items=sorted(items)[:200], count=len(items))

    # --- data --------------------------------------------------------------------------
    def view(self, user: User) -> View:
        snap = self.data.snapshot()
        key = (id(snap.findings), id(snap.indicators), user.clearance, self.default_tlp())
        with self._flock:
            hit = self._filtered.get(key)
        if hit is not None and hit[0] is snap.findings and hit[1] is snap.indicators:
            return View(user, hit[2], hit[3], snap, hit[4], key[-1])
        with self._compute_lock:  # single flight (see View.cached)
            with self._flock:
                hit = self._filtered.get(key)
            if hit is not None and hit[0] is snap.findings and hit[1] is snap.indicators:
                return View(user, hit[2], hit[3], snap, hit[4], key[-1])
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
        return View(user, findings, visible_ind, snap, memo, dflt)

    # --- pages -------------------------------------------------------------------------
    def render(self, request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        s = self.session(request)
        ctx.setdefault("user", None)
        ctx.setdefault("problems", [])
        ctx["csrf"] = s.get("c") if s else ""
        ctx["path"] = request.url.path
        html = self.env.get_template(name).render(**ctx)
        return HTMLResponse(html, status_code=status)

    def set_session(self, request: Request, resp: Response, user: User) -> None:
        sid = self.sessions.create(
            user.name,
            user.uid,
            client=self.client(request),
            agent=request.headers.get("user-agent", ""),
            max_age=self.max_age,
        )
        token = self.signer.sign(
            {"s": sid, "u": user.name, "i": user.uid, "e": user.session_epoch, "c": secrets.token_urlsafe(24)},
            purpose="session",
            max_age=self.max_age,
        )
        resp.set_cookie(
            SESSION_COOKIE, token, max_age=self.max_age, httponly=True, samesite="strict", secure=self.secure, path="/"
        )

    def rate(self, request: Request, cost: float = 1.0) -> None:
        """Spend the caller's API budget; 429 with Retry-After when it is used up."""
        key = getattr(request.state, "rate_key", None) or f"ip:{self.client(request)}"
        wait = self.api_limiter.take(key, cost)
        if wait:
            raise HTTPException(429, f"rate limit: try again in {wait} s", headers={"Retry-After": str(wait)})


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

    return Filters(
        verdict=verdict, sector=sector or None, country=country or None, since=utc(since), until=utc(until), q=q or None
    )


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
    return Filters(
        verdict,
        qp.get("sector") or None,
        qp.get("country") or None,
        times["since"],
        times["until"],
        qp.get("q") or None,
    ), problems


def create_app(
    ws: Workspace | str | Path,
    *,
    secret: bytes | None = None,
    secure_cookies: bool = False,
    session_max_age: int = 8 * 3600,
    rate_limiter: LoginRateLimiter | None = None,
    trusted_proxies: tuple[Network, ...] = (),
    api_rate: float = 20.0,
    api_burst: float = 60.0,
    hash_concurrency: int = 2,
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
    trusted_proxies
        Reverse proxies whose ``X-Forwarded-For`` names the client (see :func:`~.security.parse_proxies`).
    api_rate, api_burst
        Requests per second, and burst, each API token or user may make (0: unlimited).
    hash_concurrency
        Password hashes computed at once (argon2 takes 64 MiB each).
    """
    ws = ws if isinstance(ws, Workspace) else Workspace(ws)
    st = _App(
        ws,
        secret or load_secret(ws),
        secure_cookies,
        session_max_age,
        rate_limiter or LoginRateLimiter(),
        gate=HashGate(hash_concurrency),
        api_limiter=ApiRateLimiter(api_rate, api_burst),
        proxies=tuple(trusted_proxies),
    )
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
            raise HTTPException(
                401,
                "authentication required: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        st.rate(request)
        return user

    def api_analyst(user: Annotated[User, Depends(api_user)]) -> User:
        if not user.has_role("analyst"):
            raise HTTPException(403, "this needs the analyst or admin role")
        return user

    def api_exporter(request: Request, user: Annotated[User, Depends(api_analyst)]) -> User:
        st.rate(request, EXPORT_COST - 1)  # one was spent by api_user
        return user

    def api_admin(user: Annotated[User, Depends(api_user)]) -> User:
        if not user.has_role("admin"):
            raise HTTPException(403, "this needs the admin role")
        return user

    def page_user(request: Request) -> User:
        user = st.current_user(request)
        if user is None:
            raise _LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        st.rate(request)
        return user

    @app.exception_handler(_LoginRequired)
    async def _to_login(request: Request, exc: _LoginRequired) -> Response:
        return RedirectResponse("/login?next=" + quote(exc.next_url, safe=""), status_code=303)

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(SightlineError)
    async def _sightline_error(request: Request, exc: SightlineError) -> Response:
        log.error("serve: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)

    ApiUser = Annotated[User, Depends(api_user)]
    Analyst = Annotated[User, Depends(api_analyst)]
    Exporter = Annotated[User, Depends(api_exporter)]
    Admin = Annotated[User, Depends(api_admin)]
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
            resp.set_cookie(
                PRE_COOKIE,
                st.signer.sign({"c": csrf}, purpose="pre", max_age=3600),
                max_age=3600,
                httponly=True,
                samesite="strict",
                secure=st.secure,
                path="/",
            )
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
        otp: Annotated[str, Form(max_length=20)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        pre = st.signer.load(request.cookies.get(PRE_COOKIE), purpose="pre")
        if pre is None or not secrets.compare_digest(str(pre.get("c", "")), csrf):
            return _login_page(request, "The form expired; please try again.", 403, _safe_next(next))
        client = st.client(request)
        keys = (f"ip:{client}", f"user:{username.lower()}")
        # checked and reserved in one step: concurrent attempts cannot all pass the check
        wait = st.limiter.begin(*keys)
        if wait:
            st.audit(request, None, "login.refused", name=username[:64], reason="rate limit")
            resp = _login_page(request, f"Too many failed logins; try again in {wait} s.", 429, _safe_next(next))
            resp.headers["Retry-After"] = str(wait)
            return resp
        try:
            user = st.users.verify_password(username, password)
            why = "password"
            if user is not None and user.totp and not st.users.verify_totp(user.name, otp):
                user, why = None, "one-time code"
        except BaseException:
            st.limiter.succeeded(*keys)  # not a failure of the password: free the slot
            raise
        if user is None:
            st.limiter.failed(*keys)
            st.audit(request, None, "login.failure", name=username[:64], reason=f"wrong {why}")
            return _login_page(
                request,
                "Wrong user name, password or one-time code." if why != "password" else "Wrong user name or password.",
                401,
                _safe_next(next),
            )
        st.limiter.succeeded(*keys, reset=(f"user:{username.lower()}",))
        resp = RedirectResponse(_safe_next(next), status_code=303)
        st.set_session(request, resp, user)
        resp.delete_cookie(PRE_COOKIE, path="/")
        st.audit(request, user, "login", second_factor=user.totp)
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
        s = st.session(request)
        if s is None or not secrets.compare_digest(str(s.get("c", "")), csrf):
            raise HTTPException(403, "bad or missing CSRF token")
        st.sessions.end(str(s.get("s", "")))  # server-side: the cookie replayed later is refused
        audit.record(st.ws, "logout", who=str(s.get("u", "-")), where=st.client(request))
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
        top = v.cached("top", lambda: sort_orgs(v.findings["organizations"], None, False)[:10])
        st.audit_red(request, user, red_items({"organizations": [dict(o, hosts=[]) for o in top]}, v.default_tlp))
        return st.render(
            request,
            "overview.html",
            user=user,
            f=v.findings,
            problems=v.snapshot.problems,
            by_verdict=s.get("by_verdict", {}),
            timeline=v.cached("timeline", lambda: activity_timeline(v.findings["organizations"])),
            sector_chart=v.cached(
                "sectors", lambda: stacked_bars(s.get("by_sector", {}), title="Organizations by sector")
            ),
            country_chart=v.cached(
                "countries", lambda: stacked_bars(s.get("by_country", {}), title="Organizations by country")
            ),
            top=top,
        )

    @app.get("/orgs", response_class=HTMLResponse, include_in_schema=False)
    def orgs_page(request: Request, user: PageUser, sort: str = "", desc: int = 0, offset: int = 0) -> Response:
        v = st.view(user)
        f, problems = _page_filters(request)
        all_orgs = v.findings["organizations"]
        matched = v.orgs(f, sort or None, bool(desc))
        offset = min(max(offset, 0), max(len(matched) - 1, 0))
        rows = matched[offset : offset + _ORGS_PER_PAGE]
        st.audit_red(request, user, red_items({"organizations": [dict(o, hosts=[]) for o in rows]}, v.default_tlp))
        base = {k: val for k, val in request.query_params.items() if k not in ("sort", "desc", "offset") and val}
        sort_links = {
            k: "/orgs?" + urlencode({**base, "sort": k, "desc": int(sort == k and not desc)}) for k in ORG_SORT_KEYS
        }
        keep = {**base, **({"sort": sort, "desc": int(desc)} if sort else {})}
        more = {
            "prev": "/orgs?" + urlencode({**keep, "offset": max(offset - _ORGS_PER_PAGE, 0)}) if offset > 0 else None,
            "next": "/orgs?" + urlencode({**keep, "offset": offset + _ORGS_PER_PAGE})
            if offset + _ORGS_PER_PAGE < len(matched)
            else None,
        }
        return st.render(
            request,
            "orgs.html",
            user=user,
            orgs=rows,
            matched=len(matched),
            offset=offset,
            more=more,
            total=len(all_orgs),
            f=f,
            sort=sort,
            desc=bool(desc),
            sort_links=sort_links,
            problems=[*v.snapshot.problems, *problems],
            sectors=sorted({str(o.get("sector") or "") for o in all_orgs} - {""}),
            countries=sorted({str(o.get("country") or "") for o in all_orgs} - {""}),
        )

    @app.get("/orgs/{org_id}", response_class=HTMLResponse, include_in_schema=False)
    def org_page(request: Request, org_id: str, user: PageUser) -> Response:
        v = st.view(user)
        org = next((o for o in v.findings["organizations"] if str(o.get("org_id")) == org_id), None)
        if org is None:
            return st.render(
                request,
                "error.html",
                404,
                user=user,
                message="No such organization (or not visible with your clearance).",
            )
        values = {str(i) for h in org["hosts"] for i in h.get("indicators") or []} | {
            str(e.get("indicator")) for h in org["hosts"] for e in h["evidence"]
        }
        inds = {str(i.get("value")): i for i in v.indicators if str(i.get("value")) in values}
        host_ips = {str(h.get("ip")) for h in org["hosts"]}
        exposure = [
            x
            for x in v.findings.get("exposure") or []
            if str(x.get("org_id")) == org_id or str(x.get("ip")) in host_ips
        ]
        decisive = decisive_rows(org)
        shown = {str(r.get("host")) for r in decisive}
        groups = [
            (verdict, [h for h in hosts if str(h.get("ip")) not in shown], len(hosts))
            for verdict, hosts in host_groups(org)
        ]
        case = _case_for(st, v, org_id)
        st.audit_red(request, user, red_items({"organizations": [org], "exposure": exposure}, v.default_tlp))
        return st.render(
            request,
            "org.html",
            user=user,
            org=org,
            indicator_values=sorted(values - {"None"}),
            indicators=inds,
            exposure=exposure,
            exposure_cols=_columns(exposure),
            gantt=evidence_gantt(org),
            problems=v.snapshot.problems,
            reason=reason_sentence(org),
            decisive=decisive,
            groups=groups,
            case=case,
        )

    @app.get("/indicators", response_class=HTMLResponse, include_in_schema=False)
    def indicators_page(request: Request, user: PageUser, q: str = "", offset: int = 0) -> Response:
        v = st.view(user)
        rows = _match_indicators(v.indicators, q=q)
        offset = max(offset, 0)
        st.audit_red(request, user, _red_indicators(rows[offset : offset + 500], v.default_tlp))
        return st.render(
            request,
            "indicators.html",
            user=user,
            rows=rows[offset : offset + 500],
            total=len(rows),
            q=q,
            offset=offset,
            problems=v.snapshot.problems,
        )

    @app.get("/infrastructure", response_class=HTMLResponse, include_in_schema=False)
    def infra_page(request: Request, user: PageUser) -> Response:
        v = st.view(user)
        items = sorted(v.findings.get("suspected_infrastructure") or [], key=lambda x: -(x.get("score") or 0))
        actor = v.findings.get("actor_infrastructure") or []
        stale = v.findings.get("stale_matches") or []
        return st.render(
            request,
            "infrastructure.html",
            user=user,
            items=items,
            actor=actor,
            actor_cols=_columns(actor),
            stale=stale,
            problems=v.snapshot.problems,
        )

    @app.get("/exposure", response_class=HTMLResponse, include_in_schema=False)
    def exposure_page(request: Request, user: PageUser) -> Response:
        v = st.view(user)
        items = v.findings.get("exposure") or []
        return st.render(
            request, "exposure.html", user=user, items=items, cols=_columns(items), problems=v.snapshot.problems
        )

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    def runs_page(request: Request, user: PageUser) -> Response:
        if not user.has_role("analyst"):
            return st.render(
                request, "error.html", 403, user=user, message="The runs page needs the analyst or admin role."
            )
        snap = st.data.snapshot()
        files = sorted(
            snap.manifest.get("files", {}).values(), key=lambda e: str(e.get("ingested_at", "")), reverse=True
        )
        return st.render(
            request,
            "runs.html",
            user=user,
            runs=[_run_for(r, user) for r in snap.runs],
            files=files,
            problems=snap.problems,
        )

    # --- API ---------------------------------------------------------------------------
    @app.get(f"{_API}/me", response_model=Me, responses=_ERRORS, tags=["meta"])
    def api_me(user: ApiUser) -> Me:
        """The authenticated user, role and TLP clearance."""
        return Me(name=user.name, role=user.role, clearance=user.clearance)

    @app.get(f"{_API}/findings", response_model=dict[str, Any], responses=_ERRORS, tags=["findings"])
    def api_findings(request: Request, user: ApiUser, f: F) -> Response:
        """The findings document (design.md), filtered by clearance and the given filters."""
        v = st.view(user)
        sub = _subset(v.findings, f)
        st.audit_red(request, user, red_items(sub, v.default_tlp))
        return _json(sub)

    @app.get(f"{_API}/summary", response_model=dict[str, Any], responses=_ERRORS, tags=["findings"])
    def api_summary(user: ApiUser) -> Response:
        """Counts by verdict, sector and country of what the caller may see."""
        v = st.view(user)
        return _json(
            {
                "summary": v.findings.get("summary", {}),
                "inputs": v.findings.get("inputs", {}),
                "tlp": v.findings.get("tlp"),
                "generated_at": v.findings.get("generated_at"),
                "window": v.findings.get("window"),
            }
        )

    @app.get(f"{_API}/orgs", response_model=Page, responses=_ERRORS, tags=["findings"])
    def api_orgs(
        request: Request,
        user: ApiUser,
        f: F,
        sort: Literal[ORG_SORT_KEYS] | None = None,
        desc: bool = False,  # type: ignore[valid-type]
        limit: Limit = 100,
        offset: Offset = 0,
        hosts: Annotated[bool, Query(description="include hosts and evidence (else counts only)")] = False,
    ) -> Response:
        """Affected organizations (paged), strongest verdict first unless ``sort`` is given.

        Items carry ``host_count`` and ``evidence_count``; pass ``hosts=true`` for the hosts
        with their evidence, or use ``/orgs/{org_id}``.
        """
        v = st.view(user)
        p = page(v.orgs(f, sort, desc), limit, offset)
        st.audit_red(
            request,
            user,
            red_items(
                {"organizations": p["items"] if hosts else [dict(o, hosts=[]) for o in p["items"]]}, v.default_tlp
            ),
        )
        p["items"] = [_org_row(o, hosts) for o in p["items"]]
        return _json(p)

    @app.get(
        f"{_API}/orgs/{{org_id}}",
        response_model=dict[str, Any],
        responses={**_ERRORS, 404: {"model": Problem, "description": "Unknown or not visible"}},
        tags=["findings"],
    )
    def api_org(request: Request, org_id: str, user: ApiUser) -> Response:
        """One organization with hosts and evidence, the verdict's reason in one sentence
        (``reason``) and its decisive evidence rows first (``decisive``)."""
        v = st.view(user)
        for o in v.findings["organizations"]:
            if str(o.get("org_id")) == org_id:
                st.audit_red(request, user, red_items({"organizations": [o]}, v.default_tlp))
                return _json({**o, "reason": reason_sentence(o), "decisive": decisive_rows(o)})
        raise HTTPException(404, "no such organization (or not visible with your clearance)")

    @app.get(f"{_API}/evidence", response_model=Page, responses=_ERRORS, tags=["findings"])
    def api_evidence(
        request: Request,
        user: ApiUser,
        f: F,
        behaviour: Annotated[str | None, Query(max_length=100)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Evidence rows, one per host x indicator x behaviour, with their organization."""
        v = st.view(user)
        p = page(v.evidence(f, behaviour), limit, offset)
        st.audit_red(request, user, _red_rows(p["items"], v.default_tlp))
        return _json(p)

    @app.get(f"{_API}/indicators", response_model=Page, responses=_ERRORS, tags=["intel"])
    def api_indicators(
        request: Request,
        user: ApiUser,
        type: Annotated[str | None, Query(max_length=50)] = None,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Indicators the caller is cleared for."""
        v = st.view(user)
        p = page(_match_indicators(v.indicators, q=q or "", type=type, actor=actor), limit, offset)
        st.audit_red(request, user, _red_indicators(p["items"], v.default_tlp))
        return _json(p)

    @app.get(f"{_API}/exposure", response_model=Page, responses=_ERRORS, tags=["exposure"])
    def api_exposure(
        user: ApiUser,
        org_id: Annotated[str | None, Query(max_length=200)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
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

    @app.get(
        f"{_API}/export/csv",
        response_class=Response,
        responses={**_ERRORS, 200: {"content": {"text/csv": {}}}},
        tags=["export"],
    )
    def export_csv(
        request: Request, user: Exporter, f: F, behaviour: Annotated[str | None, Query(max_length=100)] = None
    ) -> Response:
        """Evidence rows as CSV (cells that a spreadsheet would run as formulas are neutralized)."""
        v = st.view(user)
        rows = v.evidence(f, behaviour)
        text = v.cached(("csv", f, behaviour), lambda: evidence_csv(rows))
        st.audit(request, user, "export", format="csv", tlp=user.clearance, rows=len(rows), filters=_filter_text(f))
        st.audit_red(request, user, _red_rows(rows, v.default_tlp))
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="sightline-evidence.csv"'},
        )

    def _json_export(
        request: Request, user: Any, f: Any, fmt: str, make: Callable[[dict[str, Any], Any], Any]
    ) -> Response:
        """The visible findings in a JSON export format (made once per data version, clearance
        and filters), audited with what was exported."""
        v = st.view(user)
        sub = _subset(v.findings, f)
        body = v.cached((fmt, f), lambda: json.dumps(make(sub, v.memo.get("indicator_table"))).encode())
        st.audit(
            request,
            user,
            "export",
            format=fmt,
            tlp=user.clearance,
            organizations=len(sub["organizations"]),
            filters=_filter_text(f),
        )
        st.audit_red(request, user, _red_items(sub, v.default_tlp))
        return Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="sightline-{fmt}.json"'},
        )

    @app.get(
        f"{_API}/export/stix",
        responses={**_ERRORS, 404: {"model": Problem, "description": "STIX export not installed"}},
        tags=["export"],
    )
    def export_stix(request: Request, user: Exporter, f: F) -> Response:
        """A STIX 2.1 bundle of the visible findings, marked with their TLP (made once per data
        version, clearance and filters)."""
        return _json_export(request, user, f, "stix", stix_export)

    @app.get(
        f"{_API}/export/misp",
        responses={**_ERRORS, 404: {"model": Problem, "description": "MISP export not installed"}},
        tags=["export"],
    )
    def export_misp(request: Request, user: Exporter, f: F) -> Response:
        """A MISP event of the visible findings, tagged with their TLP."""
        return _json_export(request, user, f, "misp", misp_export)

    from .routes import register_account, register_cases, register_investigation

    deps = Deps(
        st=st,
        ApiUser=ApiUser,
        Analyst=Analyst,
        Admin=Admin,
        PageUser=PageUser,
        Limit=Limit,
        Offset=Offset,
        errors=_ERRORS,
        problem=Problem,
        page_model=Page,
    )
    register_cases(app, deps)
    register_investigation(app, deps)
    register_account(app, deps)
    return app


@dataclass(frozen=True)
class Deps:
    """What the route modules (:mod:`.routes`) share with the application."""

    st: _App
    ApiUser: Any
    Analyst: Any
    Admin: Any
    PageUser: Any
    Limit: Any
    Offset: Any
    errors: dict[int | str, dict[str, Any]]
    problem: Any
    page_model: Any


# --- helpers ---------------------------------------------------------------------------
def _filter_text(f: Filters) -> str | None:
    parts = [f"{k}={v}" for k, v in vars(f).items() if v is not None]
    return "&".join(parts) or None


def red_items(findings: dict[str, Any], default_tlp: TLP) -> list[str]:
    """Names of the TLP:RED items in (a reader's view of) the findings."""
    out = []
    for o in findings.get("organizations") or []:
        if marking(o.get("tlp"), default_tlp) >= TLP.RED:
            out.append(f"org:{o.get('org_id')}")
        for h in o.get("hosts") or []:
            for e in h.get("evidence") or []:
                if marking(e.get("tlp"), default_tlp) >= TLP.RED:
                    out.append(f"evidence:{o.get('org_id')}/{h.get('ip')}/{e.get('indicator')}/{e.get('behaviour')}")
    for key in ("suspected_infrastructure", "actor_infrastructure", "exposure"):
        for x in findings.get(key) or []:
            if marking(x.get("tlp"), default_tlp) >= TLP.RED:
                out.append(f"{key}:{x.get('ip')}")
    return out


_red_items = red_items


def _red_indicators(rows: list[dict[str, Any]], default_tlp: TLP) -> list[str]:
    return [f"indicator:{r.get('value')}" for r in rows if marking(r.get("tlp"), default_tlp) >= TLP.RED]


def _red_rows(rows: list[dict[str, Any]], default_tlp: TLP) -> list[str]:
    return [
        f"evidence:{r.get('org_id')}/{r.get('host')}/{r.get('indicator')}/{r.get('behaviour')}"
        for r in rows
        if marking(r.get("tlp"), default_tlp) >= TLP.RED
    ]


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


def _match_indicators(
    rows: list[dict[str, Any]], *, q: str = "", type: str | None = None, actor: str | None = None
) -> list[dict[str, Any]]:
    ql = q.strip().lower()
    out = [
        r
        for r in rows
        if (not type or str(r.get("type")) == type)
        and (not actor or str(r.get("actor") or "").lower() == actor.lower())
        and (
            not ql
            or ql
            in f"{r.get('value', '')} {r.get('actor', '')} {r.get('source', '')} {r.get('description', '')}".lower()
        )
    ]
    return sorted(out, key=lambda r: (-marking(r.get("tlp")), str(r.get("type")), str(r.get("value"))))


def _case_for(st: _App, v: View, org_id: str) -> dict[str, Any] | None:
    """The organization's case, if the reader may see it."""
    from ..cases import visible

    try:  # no sync here: the hunt opened the case; a page of findings must not wait for one
        case = st.cases.get(org_id)
    except SightlineError as e:
        log.warning("cases unavailable: %s", e)
        return None
    if case is None:
        return None
    return case if visible([case], clearance_of(v.user.clearance), v.default_tlp) else None


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
            r["stages"] = [
                dict(s, rows=s.get("rows") if str(s.get("stage")) in _SAFE_RUN_STAGES else None)
                for s in r["stages"]
                if isinstance(s, dict)
            ]
        r.pop("notes", None)
    return r
