"""JSON API, login, sessions and security of ``sightline serve`` through FastAPI's test client."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from sightline.serve import LoginRateLimiter, UserStore, create_app
from sightline.store import Workspace

from .serve_support import PASSWORDS, RED_TRACES, TestClient, make_workspace

SECRET = b"k" * 32


@pytest.fixture(scope="module")
def template_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Hashing passwords with argon2 is deliberately slow: build the users once per module.
    return make_workspace(tmp_path_factory.mktemp("serve") / "ws").root


@pytest.fixture
def ws(template_ws: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(template_ws, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


@pytest.fixture
def client(ws: Workspace) -> TestClient:
    return TestClient(create_app(ws, secret=SECRET))


@pytest.fixture
def tokens(ws: Workspace) -> dict[str, str]:
    store = UserStore(ws)
    return {name: store.new_token(name, "test") for name in PASSWORDS}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, user: str, password: str | None = None, next_url: str = "/"):
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login",
        data={"username": user, "password": password or PASSWORDS[user], "csrf": csrf, "next": next_url},
        follow_redirects=False,
    )


# --- API authentication --------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer sl_AAAAAAAA_" + "x" * 43}],
    ids=["none", "garbage", "well-formed-unknown"],
)
def test_api_requires_a_valid_token(client: TestClient, headers: dict[str, str]) -> None:
    r = client.get("/api/v1/orgs", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_me_and_revoked_token(client: TestClient, ws: Workspace, tokens: dict[str, str]) -> None:
    assert client.get("/api/v1/me", headers=bearer(tokens["ana"])).json() == {
        "name": "ana",
        "role": "analyst",
        "clearance": "amber",
    }
    store = UserStore(ws)
    tid = store.get("ana").tokens[0]["id"]
    store.revoke_token("ana", tid)
    assert client.get("/api/v1/me", headers=bearer(tokens["ana"])).status_code == 401


def test_users_file_is_private_and_holds_no_secrets(ws: Workspace, tokens: dict[str, str]) -> None:
    path = ws.root / "users.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    for name, pw in PASSWORDS.items():
        assert pw not in text and tokens[name] not in text
    assert text.count("$argon2id$") == 3


def test_generated_session_secret_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGHTLINE_SECRET", raising=False)
    ws = make_workspace(tmp_path / "w2", with_users=False)
    create_app(ws)
    secret = ws.root / ".serve_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    first = secret.read_text()
    create_app(ws)  # reused, so sessions survive a restart
    assert secret.read_text() == first


# --- TLP clearance in the API ----------------------------------------------------------
API_PATHS = [
    "/api/v1/findings",
    "/api/v1/summary",
    "/api/v1/orgs",
    "/api/v1/evidence",
    "/api/v1/indicators",
    "/api/v1/exposure",
    "/api/v1/suspected-infrastructure",
    "/api/v1/orgs/tw-gov-03",
]


@pytest.mark.parametrize("user", ["vic", "ana"])
def test_no_red_trace_in_api_without_clearance(client: TestClient, tokens: dict[str, str], user: str) -> None:
    for path in API_PATHS:
        r = client.get(path, headers=bearer(tokens[user]))
        assert r.status_code == 200, path
        for trace in RED_TRACES:
            assert trace not in r.text, (path, trace)
    assert client.get("/api/v1/orgs/AS4780", headers=bearer(tokens[user])).status_code == 404


def test_red_clearance_sees_red(client: TestClient, tokens: dict[str, str]) -> None:
    r = client.get("/api/v1/orgs", headers=bearer(tokens["admin"])).json()
    assert {o["org_id"] for o in r["items"]} == {"tw-semi-01", "AS4780", "tw-gov-03"}
    ind = client.get("/api/v1/indicators", headers=bearer(tokens["admin"])).json()
    assert ind["total"] == 4
    s = client.get("/api/v1/summary", headers=bearer(tokens["admin"])).json()
    assert s["summary"]["by_verdict"]["reconnaissance"] == 1 and s["inputs"]["indicators"] == 42


def test_counts_follow_clearance(client: TestClient, tokens: dict[str, str]) -> None:
    s = client.get("/api/v1/summary", headers=bearer(tokens["vic"])).json()
    assert s["summary"]["by_verdict"] == {"compromised": 1, "exploitation_attempt": 1, "reconnaissance": 0}
    assert s["inputs"]["indicators"] == 2  # the amber and green indicators
    assert s["tlp"] == "amber"


# --- filters and pagination --------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["tw-semi-01", "tw-gov-03", "AS4780"]),
        ("verdict=compromised", ["tw-gov-03", "tw-semi-01"]),
        ("sector=Telecom", ["AS4780"]),
        ("country=tw&verdict=reconnaissance", ["AS4780"]),
        ("since=2024-03-07T00:00:00Z", ["tw-semi-01"]),
        ("until=2024-03-02T00:00:00", []),
        ("since=2024-03-03&until=2024-03-03T23:00:00Z", ["AS4780", "tw-semi-01"]),
        ("q=203.0.113.40", ["tw-gov-03"]),
        ("sort=name", ["AS4780", "tw-semi-01", "tw-gov-03"]),
    ],
    ids=["all", "verdict", "sector-case", "country+verdict", "since", "until-naive", "window", "host-search", "sort"],
)
def test_org_filters(client: TestClient, tokens: dict[str, str], query: str, expected: list[str]) -> None:
    r = client.get(f"/api/v1/orgs?{query}", headers=bearer(tokens["admin"]))
    assert r.status_code == 200
    ids = [o["org_id"] for o in r.json()["items"]]
    assert (ids if "sort" in query or not query else sorted(ids)) == (
        expected if "sort" in query or not query else sorted(expected)
    )


def test_pagination(client: TestClient, tokens: dict[str, str]) -> None:
    h = bearer(tokens["admin"])
    pages = [client.get(f"/api/v1/evidence?limit=2&offset={o}", headers=h).json() for o in (0, 2, 4)]
    assert [p["total"] for p in pages] == [5, 5, 5]
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    whole = client.get("/api/v1/evidence?limit=1000", headers=h).json()["items"]
    assert pages[0]["items"] + pages[1]["items"] + pages[2]["items"] == whole
    assert client.get("/api/v1/evidence?offset=5", headers=h).json()["items"] == []
    assert client.get("/api/v1/evidence?behaviour=scan", headers=h).json()["items"][0]["host"] == "2001:db8:1::10"


@pytest.mark.parametrize("query", ["verdict=pwned", "limit=0", "limit=5000", "offset=-1", "since=yesterday"])
def test_bad_parameters_are_rejected(client: TestClient, tokens: dict[str, str], query: str) -> None:
    r = client.get(f"/api/v1/orgs?{query}", headers=bearer(tokens["admin"]))
    assert r.status_code == 422


# --- exports ---------------------------------------------------------------------------
def test_exports_need_analyst_role(client: TestClient, tokens: dict[str, str]) -> None:
    for fmt in ("csv", "stix", "misp"):
        assert client.get(f"/api/v1/export/{fmt}", headers=bearer(tokens["vic"])).status_code == 403


def test_csv_export_is_injection_safe_and_filtered(client: TestClient, tokens: dict[str, str]) -> None:
    r = client.get("/api/v1/export/csv", headers=bearer(tokens["ana"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0].startswith("org_id,org_name,sector")
    assert len(lines) == 1 + 3  # two amber rows of tw-semi-01, one of tw-gov-03
    assert "'=HYPERLINK" in r.text and ',"=HYPERLINK' not in r.text and ",=HYPERLINK" not in r.text
    for trace in RED_TRACES:
        assert trace not in r.text
    only = client.get("/api/v1/export/csv?verdict=exploitation_attempt", headers=bearer(tokens["ana"]))
    assert len(only.text.splitlines()) == 2


def test_stix_export_respects_clearance(client: TestClient, tokens: dict[str, str]) -> None:
    amber = client.get("/api/v1/export/stix", headers=bearer(tokens["ana"]))
    full = client.get("/api/v1/export/stix", headers=bearer(tokens["admin"]))
    assert amber.status_code == full.status_code == 200
    assert amber.json()["type"] == "bundle"
    for trace in ("192.0.2.66", "198.51.100.250", "Digital United"):
        assert trace not in amber.text
        assert trace in full.text


def test_misp_export_respects_clearance(client: TestClient, tokens: dict[str, str]) -> None:
    try:
        import sightline.report.misp  # noqa: F401
    except ImportError:
        assert client.get("/api/v1/export/misp", headers=bearer(tokens["ana"])).status_code == 404
        return
    amber = client.get("/api/v1/export/misp", headers=bearer(tokens["ana"]))
    assert amber.status_code == 200
    assert "198.51.100.7" in amber.text
    for trace in ("192.0.2.66", "198.51.100.250", "Digital United"):
        assert trace not in amber.text


# --- login, sessions, CSRF, rate limiting ------------------------------------------------
def test_pages_redirect_to_login(client: TestClient) -> None:
    r = client.get("/orgs?verdict=compromised", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Forgs%3Fverdict%3Dcompromised"


def test_login_sets_strict_httponly_cookie_and_redirects(client: TestClient) -> None:
    r = login(client, "vic", next_url="/orgs")
    assert r.status_code == 303 and r.headers["location"] == "/orgs"
    cookie = [c for c in r.headers.get_list("set-cookie") if c.startswith("sl_session=")][0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    page = client.get("/orgs")
    assert page.status_code == 200 and "Hsinchu Wafer Technology" in page.text


def test_secure_cookies_option(ws: Workspace) -> None:
    c = TestClient(create_app(ws, secret=SECRET, secure_cookies=True), base_url="https://testserver")
    r = login(c, "vic")
    cookie = [x for x in r.headers.get_list("set-cookie") if x.startswith("sl_session=")][0].lower()
    assert "; secure" in cookie
    assert "max-age" in r.headers["strict-transport-security"]


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_site(client: TestClient, target: str) -> None:
    assert login(client, "vic", next_url=target).headers["location"] == "/"


def test_login_form_needs_its_csrf_token(client: TestClient) -> None:
    client.get("/login")
    r = client.post(
        "/login", data={"username": "vic", "password": PASSWORDS["vic"], "csrf": "forged"}, follow_redirects=False
    )
    assert r.status_code == 403 and "sl_session" not in r.headers.get("set-cookie", "")


def test_wrong_password(client: TestClient) -> None:
    r = login(client, "vic", "wrong-password")
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_is_rate_limited(ws: Workspace) -> None:
    now = [1000.0]
    app = create_app(ws, secret=SECRET, rate_limiter=LoginRateLimiter(3, 60.0, clock=lambda: now[0]))
    c = TestClient(app)
    assert [login(c, "vic", "bad-password").status_code for _ in range(3)] == [401, 401, 401]
    blocked = login(c, "vic")  # even the right password is refused while blocked
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert login(c, "ana").status_code == 429  # same client address
    now[0] += 61
    assert login(c, "vic").status_code == 303


def test_logout_needs_csrf_and_ends_session(client: TestClient) -> None:
    login(client, "vic")
    page = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/logout", data={"csrf": "nope"}, follow_redirects=False).status_code == 403
    r = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_removed_user_loses_session(client: TestClient, ws: Workspace) -> None:
    login(client, "vic")
    assert client.get("/", follow_redirects=False).status_code == 200
    UserStore(ws).remove("vic")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_tampered_session_is_refused(client: TestClient) -> None:
    login(client, "vic")
    value = client.cookies.get("sl_session")
    body, mac = value.split(".")
    import base64

    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["u"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode() + "." + mac
    client.cookies.set("sl_session", forged)
    assert client.get("/", follow_redirects=False).status_code == 303


# --- pages -------------------------------------------------------------------------------
PAGES = ["/", "/orgs", "/orgs/tw-semi-01", "/orgs/tw-gov-03", "/indicators", "/infrastructure", "/exposure", "/runs"]


def test_security_headers(client: TestClient, tokens: dict[str, str]) -> None:
    login(client, "ana")
    for path in ["/", "/login", "/api/v1/orgs", "/static/style.css"]:
        r = client.get(path, headers=bearer(tokens["ana"]) if path.startswith("/api") else {})
        csp = r.headers["content-security-policy"]
        script_src = re.search(r"script-src ([^;]+)", csp).group(1)
        assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("user", ["vic", "ana"])
def test_pages_show_no_red_trace(client: TestClient, user: str) -> None:
    login(client, user)
    for path in PAGES:
        r = client.get(path)
        assert r.status_code in (200, 403), path
        for trace in RED_TRACES:
            assert trace not in r.text, (path, trace)
    assert client.get("/orgs/AS4780").status_code == 404


def test_admin_pages_show_everything(client: TestClient) -> None:
    login(client, "admin")
    assert "Digital United Inc." in client.get("/orgs").text
    org = client.get("/orgs/AS4780").text
    assert "2001:db8:1::10" in org and "120 failed connections" in org
    assert "organizations_affected: 3" in client.get("/runs").text


def test_pages_are_escaped_and_self_contained(client: TestClient) -> None:
    login(client, "admin")
    for path in PAGES:
        html = client.get(path).text
        assert "<script>alert(1)" not in html, path
        assert not re.search(r'(src|href|action)="(https?:)?//', html), path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path  # no inline scripts
        assert " style=" not in html, path
    assert "Ministry of &lt;script&gt;alert(1)&lt;/script&gt; Affairs" in client.get("/orgs").text


def test_overview_counts_and_charts(client: TestClient) -> None:
    login(client, "vic")
    html = client.get("/").text
    assert re.search(r'id="count-compromised">1<', html) and re.search(r'id="count-exploitation_attempt">1<', html)
    assert re.search(r'id="count-reconnaissance">0<', html)
    assert html.count("<svg") == 3 and "government: 1 exploitation_attempt" in html


def test_org_page_shows_hosts_evidence_indicators_exposure(client: TestClient) -> None:
    login(client, "ana")
    html = client.get("/orgs/tw-semi-01").text
    for text in ("203.0.113.5", "interval 300s", "198.51.100.7", "test-feed", "FortiOS", "CVE-2022-42475"):
        assert text in html


def test_runs_page_by_role(client: TestClient) -> None:
    login(client, "vic")
    assert client.get("/runs").status_code == 403
    login(client, "ana")
    html = client.get("/runs").text
    assert "20240308T000000Z-aaaaaa" in html and "ingest 200000 rows 1.5 s" in html and "conn.log" in html
    assert "organizations_affected" not in html  # a finding count, above amber clearance


def test_org_table_sorting_and_filters(client: TestClient) -> None:
    login(client, "admin")
    html = client.get("/orgs?sort=confidence&desc=1").text
    order = [m for m in re.findall(r'href="/orgs/([^"]+)"', html)]
    assert order == ["tw-semi-01", "tw-gov-03", "AS4780"]
    html = client.get("/orgs?verdict=reconnaissance&since=garbage").text
    assert re.findall(r'href="/orgs/([^"]+)"', html) == ["AS4780"]
    assert "is not an ISO-8601 time; ignored" in html


def test_broken_findings_file_is_reported_not_fatal(client: TestClient, ws: Workspace) -> None:
    (ws.findings_dir / "latest.json").write_text("{not json")
    login(client, "admin")
    r = client.get("/")
    assert r.status_code == 200 and "unreadable findings" in r.text
    assert client.get("/api/v1/orgs").json()["items"] == []  # the session cookie also authenticates


def test_empty_workspace(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "empty").ensure()
    UserStore(ws).add("a", "wide-margin-walrus-7", role="admin", clearance="red")
    c = TestClient(create_app(ws, secret=SECRET))
    login(c, "a", "wide-margin-walrus-7")
    for path in PAGES:
        assert c.get(path).status_code in (200, 404), path
    assert "no findings yet" in c.get("/").text


def test_org_list_counts_and_optional_hosts(client: TestClient, tokens: dict[str, str]) -> None:
    h = bearer(tokens["vic"])
    rows = {o["org_id"]: o for o in client.get("/api/v1/orgs", headers=h).json()["items"]}
    assert "hosts" not in rows["tw-gov-03"]
    assert (rows["tw-gov-03"]["host_count"], rows["tw-gov-03"]["evidence_count"]) == (1, 1)  # red beacon hidden
    full = {o["org_id"]: o for o in client.get("/api/v1/orgs?hosts=true", headers=h).json()["items"]}
    assert [e["behaviour"] for e in full["tw-gov-03"]["hosts"][0]["evidence"]] == ["exploitation"]


def test_org_table_pages(tmp_path: Path) -> None:
    from sightline.serve import app as app_module
    from sightline.store import atomic_write_json

    ws = Workspace(tmp_path / "many").ensure()
    ev = {
        "behaviour": "scan",
        "indicator": "192.0.2.1",
        "direction": "inbound",
        "dst_port": None,
        "flows": 5,
        "bytes_out": 0,
        "bytes_in": 0,
        "first_seen": "2024-03-01T00:00:00Z",
        "last_seen": "2024-03-01T00:05:00Z",
        "score": 0.6,
        "detail": "5 probes to 3 ports",
        "indicator_confidence": 80,
        "confidence": 55,
        "tlp": "green",
    }
    orgs = [
        {
            "org_id": f"o{i:04d}",
            "name": f"Org {i:04d}",
            "sector": "unknown",
            "country": None,
            "asns": [],
            "verdict": "reconnaissance",
            "confidence": 55,
            "tlp": "green",
            "first_seen": ev["first_seen"],
            "last_seen": ev["last_seen"],
            "hosts": [
                {
                    "ip": f"10.0.{i // 250}.{i % 250}",
                    "verdict": "reconnaissance",
                    "confidence": 55,
                    "indicators": ["192.0.2.1"],
                    "evidence": [ev],
                }
            ],
        }
        for i in range(app_module._ORGS_PER_PAGE + 5)
    ]
    atomic_write_json(ws.findings_dir / "latest.json", {"organizations": orgs, "tlp": "green"})
    UserStore(ws).add("g", "wide-margin-walrus-7", clearance="green")
    c = TestClient(create_app(ws, secret=SECRET))
    login(c, "g", "wide-margin-walrus-7")
    first = c.get("/orgs?sort=name").text
    assert len(re.findall(r'href="/orgs/o\d+"', first)) == app_module._ORGS_PER_PAGE
    nxt = re.search(r'href="(/orgs\?[^"]*offset=\d+)">Next', first).group(1).replace("&amp;", "&")
    second = c.get(nxt).text
    assert re.findall(r'href="/orgs/(o\d+)"', second) == [
        f"o{i:04d}" for i in range(app_module._ORGS_PER_PAGE, app_module._ORGS_PER_PAGE + 5)
    ]
    assert ">Previous<" in second and ">Next<" not in second
