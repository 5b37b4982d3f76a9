"""Accounts that hold: the defects an outside test of ``sightline serve`` found, as regression
tests against a real uvicorn on 127.0.0.1 where concurrency or sockets matter."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sightline.cases import audit
from sightline.errors import AuthError
from sightline.serve import UserStore, create_app
from sightline.serve.security import parse_proxies
from sightline.serve.server import server_config
from sightline.store import Workspace

from .serve_support import PASSWORDS, TestClient, make_workspace

SECRET = b"a" * 32


@pytest.fixture(scope="module")
def template_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("accounts") / "ws").root


@pytest.fixture
def ws(template_ws: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(template_ws, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


class Served:
    """A real uvicorn serving ``app`` on 127.0.0.1 in a thread."""

    def __init__(self, app: object, **kw: object) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(server_config(app, port=self.port, lifespan="off", **kw))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[object]:
    started: list[Served] = []

    def start(app: object, **kw: object) -> Served:
        s = Served(app, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def _form(client: httpx.Client, base: str) -> str:
    page = client.get(f"{base}/login")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def _login(
    client: httpx.Client, base: str, user: str, password: str, headers: dict[str, str] | None = None, otp: str = ""
) -> httpx.Response:
    csrf = _form(client, base)
    return client.post(
        f"{base}/login",
        data={"username": user, "password": password, "csrf": csrf, "next": "/", "otp": otp},
        headers=headers or {},
        follow_redirects=False,
    )


# --- the login rate limit is checked and recorded in one step ----------------------------------
def test_concurrent_wrong_passwords_verify_at_most_the_limit(ws: Workspace, serve: object) -> None:
    s = serve(create_app(ws, secret=SECRET))  # default: 5 failures per 5 minutes
    n = 20
    clients = [httpx.Client(timeout=60) for _ in range(n)]
    forms = [_form(c, s.url) for c in clients]
    barrier = threading.Barrier(n)

    def attempt(i: int) -> int:
        barrier.wait()
        r = clients[i].post(
            f"{s.url}/login",
            data={"username": "vic", "password": f"wrong-{i}-password", "csrf": forms[i], "next": "/"},
            follow_redirects=False,
        )
        return r.status_code

    with ThreadPoolExecutor(n) as pool:
        codes = list(pool.map(attempt, range(n)))
    for c in clients:
        c.close()
    verified = [ln for ln in audit.read(ws, what="login.failure")]
    assert codes.count(401) <= 5 and len(verified) <= 5, codes
    assert codes.count(429) == n - codes.count(401)
    assert all(ln["from"] == "127.0.0.1" and ln["name"] == "vic" for ln in verified)


# --- bounded password hashing -----------------------------------------------------------------
def _hwm_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc for the server's peak memory")
def test_a_burst_of_logins_does_not_hash_all_at_once(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", with_users=False)
    store = UserStore(ws)
    users = [f"user{i:02d}" for i in range(30)]
    for u in users:
        store.add(u, f"long-enough-{u}-passphrase", role="viewer", clearance="amber")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    exe = Path(sys.executable).with_name("sightline")
    proc = subprocess.Popen(
        [str(exe), "serve", "-w", str(ws.root), "--port", str(port), "--trusted-proxy", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "SIGHTLINE_SECRET": "s" * 40},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # wait for the server to listen (bounded)
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        with httpx.Client() as c:  # one login first: argon2 and the app are loaded
            assert _login(c, base, users[0], f"long-enough-{users[0]}-passphrase").status_code == 303
        before = _hwm_kib(proc.pid)
        barrier = threading.Barrier(len(users))

        def one(i: int) -> int:
            with httpx.Client(timeout=120) as c:
                csrf = _form(c, base)
                barrier.wait()
                r = c.post(
                    f"{base}/login",
                    data={
                        "username": users[i],
                        "password": f"long-enough-{users[i]}-passphrase",
                        "csrf": csrf,
                        "next": "/",
                    },
                    headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
                    follow_redirects=False,
                )
                return r.status_code

        with ThreadPoolExecutor(len(users)) as pool:
            codes = list(pool.map(one, range(len(users))))
        grown_mib = (_hwm_kib(proc.pid) - before) / 1024
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"\n30 concurrent logins: peak RSS grew {grown_mib:.0f} MiB")
    assert codes == [303] * len(users)
    assert grown_mib < 400  # 30 x 64 MiB of argon2 at once would be ~1.9 GiB


# --- sessions ---------------------------------------------------------------------------------
def _page_login(client: TestClient, user: str, password: str | None = None):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login",
        data={"username": user, "password": password or PASSWORDS[user], "csrf": csrf, "next": "/"},
        follow_redirects=False,
    )


def test_removed_and_re_added_user_does_not_get_old_sessions_back(ws: Workspace) -> None:
    client = TestClient(create_app(ws, secret=SECRET))
    assert _page_login(client, "vic").status_code == 303
    old = client.cookies.get("sl_session")
    store = UserStore(ws)
    store.remove("vic")
    store.add("vic", "a-completely-new-passphrase", role="admin", clearance="red")
    fresh = TestClient(create_app(ws, secret=SECRET))
    fresh.cookies.set("sl_session", old)
    assert fresh.get("/", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_on_the_server(ws: Workspace) -> None:
    client = TestClient(create_app(ws, secret=SECRET))
    _page_login(client, "vic")
    cookie = client.cookies.get("sl_session")
    page = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    replay = TestClient(create_app(ws, secret=SECRET))
    replay.cookies.set("sl_session", cookie)
    assert replay.get("/", follow_redirects=False).status_code == 303  # the replayed cookie is refused
    assert [ln["what"] for ln in audit.read(ws) if ln["who"] == "vic"] == ["login", "logout"]


def test_sessions_are_listed_and_revoked(ws: Workspace) -> None:
    from typer.testing import CliRunner

    from sightline.cli import app

    a, b = TestClient(create_app(ws, secret=SECRET)), TestClient(create_app(ws, secret=SECRET))
    _page_login(a, "ana")
    _page_login(b, "ana")
    token = UserStore(ws).new_token("ana")
    listed = a.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}).json()
    assert len(listed) == 2 and {s["user"] for s in listed} == {"ana"}
    assert "sl_" not in str(listed) and all(len(s["id"]) == 12 for s in listed)
    assert "(this one)" in a.get("/account").text
    r = CliRunner().invoke(app, ["users", "sessions", "ana", "--json", "-w", str(ws.root)])
    assert r.exit_code == 0 and len(__import__("json").loads(r.stdout)) == 2
    # ending one session through the API logs that browser out, not the other
    victim = next(s["id"] for s in listed if s["id"] not in a.get("/account").text.split("(this one)")[0][-40:])
    assert a.delete(f"/api/v1/sessions/{victim}", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    still = [c.get("/", follow_redirects=False).status_code for c in (a, b)]
    assert sorted(still) == [200, 303]
    # a viewer may not end someone else's session; an unknown id is a 404
    vt = UserStore(ws).new_token("vic")
    remaining = listed[0]["id"] if listed[0]["id"] != victim else listed[1]["id"]
    assert a.delete(f"/api/v1/sessions/{remaining}", headers={"Authorization": f"Bearer {vt}"}).status_code == 404
    r = CliRunner().invoke(app, ["users", "sessions", "--revoke", remaining, "-w", str(ws.root)])
    assert r.exit_code == 0
    assert [c.get("/", follow_redirects=False).status_code for c in (a, b)] == [303, 303]


# --- client address behind a reverse proxy -----------------------------------------------------
def test_forwarded_for_counts_only_from_trusted_proxies(ws: Workspace, serve: object) -> None:
    from sightline.serve import LoginRateLimiter

    trusting = serve(
        create_app(
            ws, secret=SECRET, trusted_proxies=parse_proxies(["127.0.0.1"]), rate_limiter=LoginRateLimiter(2, 300.0)
        )
    )
    with httpx.Client() as c:
        for _ in range(2):
            assert (
                _login(
                    c, trusting.url, "vic", "bad-password-xx", {"X-Forwarded-For": "203.0.113.9, 192.0.2.1"}
                ).status_code
                == 401
            )
        assert _login(c, trusting.url, "ana", "bad-password-xx", {"X-Forwarded-For": "192.0.2.1"}).status_code == 429
        # another client behind the same proxy is not blocked by the first one's failures
        assert _login(c, trusting.url, "ana", PASSWORDS["ana"], {"X-Forwarded-For": "192.0.2.2"}).status_code == 303
    froms = [ln["from"] for ln in audit.read(ws) if ln["what"].startswith("login")]
    assert froms == ["192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2"]  # the right-most untrusted hop

    ws2 = Workspace(ws.root)
    direct = serve(create_app(ws2, secret=SECRET, rate_limiter=LoginRateLimiter(2, 300.0)))
    with httpx.Client() as c:  # without a trusted proxy the header is the client's own claim: ignored
        for i in range(2):
            _login(c, direct.url, "admin", "bad-password-xx", {"X-Forwarded-For": f"198.51.100.{i}"})
        assert (
            _login(c, direct.url, "admin", PASSWORDS["admin"], {"X-Forwarded-For": "198.51.100.77"}).status_code == 429
        )


# --- slow clients ------------------------------------------------------------------------------
def test_a_request_sent_a_byte_at_a_time_is_cut_off(ws: Workspace, serve: object) -> None:
    s = serve(create_app(ws, secret=SECRET), header_timeout=1.0)
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for i in range(200):  # a header line every 0.1 s: the attack, up to 20 s
            try:
                sock.sendall(f"X-Slow-{i}: a\r\n".encode())
            except OSError:
                closed = True
                break
            sock.settimeout(0.1)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
    assert closed and i < 100, i  # cut off after about 1 s of trickling, not served
    with httpx.Client() as c:  # whole requests are still answered, also a second one on the same connection
        assert c.get(f"{s.url}/healthz").status_code == 200
        assert c.get(f"{s.url}/healthz").status_code == 200


# --- API rate limit and export cache -----------------------------------------------------------
def test_api_rate_limit_answers_429_with_retry_after(ws: Workspace) -> None:
    client = TestClient(create_app(ws, secret=SECRET, api_rate=0.001, api_burst=3))
    token, other = UserStore(ws).new_token("ana"), UserStore(ws).new_token("vic")
    h = {"Authorization": f"Bearer {token}"}
    assert [client.get("/api/v1/me", headers=h).status_code for _ in range(3)] == [200, 200, 200]
    r = client.get("/api/v1/me", headers=h)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {other}"}).status_code == 200  # per token


def test_stix_export_is_made_once_per_data_version_and_clearance(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sightline.serve.app as app_mod

    calls: list[int] = []
    real = app_mod.stix_export

    def counting(findings, indicators=None):  # type: ignore[no-untyped-def]
        calls.append(len(findings["organizations"]))
        return real(findings, indicators)

    monkeypatch.setattr(app_mod, "stix_export", counting)
    client = TestClient(create_app(ws, secret=SECRET))
    store = UserStore(ws)
    ana, admin = store.new_token("ana"), store.new_token("admin")
    first = client.get("/api/v1/export/stix", headers={"Authorization": f"Bearer {ana}"})
    again = client.get("/api/v1/export/stix", headers={"Authorization": f"Bearer {ana}"})
    assert first.status_code == again.status_code == 200 and first.content == again.content
    assert len(calls) == 1
    client.get("/api/v1/export/stix", headers={"Authorization": f"Bearer {admin}"})
    assert len(calls) == 2  # another clearance, another bundle
    exports = [ln for ln in audit.read(ws, what="export")]
    assert [(ln["who"], ln["format"], ln["tlp"]) for ln in exports] == [("ana", "stix", "amber")] * 2 + [
        ("admin", "stix", "red")
    ]


# --- passwords and the second factor ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-pass", "too short"),
        ("dragon2024!!!!", "too common"),
        ("aaaaaaaaaaaaaaaa", "too common"),
        ("Password123456", "too common"),
        ("trustno1trustno1", "too common"),
        ("carol.example", "the user name"),
    ],
    ids=["short", "common+digits", "repeated", "common-padded", "common-twice", "user-name"],
)
def test_weak_passwords_are_refused(ws: Workspace, password: str, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        UserStore(ws).add("carol.example", password)


def test_totp_second_factor(ws: Workspace) -> None:
    import pyotp

    store = UserStore(ws)
    secret, uri = store.enable_totp("admin")
    assert uri.startswith("otpauth://totp/") and "issuer=sightline" in uri
    client = TestClient(create_app(ws, secret=SECRET))
    assert _page_login(client, "admin").status_code == 401  # the password alone is not enough
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    code = pyotp.TOTP(secret).now()
    r = client.post(
        "/login",
        data={"username": "admin", "password": PASSWORDS["admin"], "otp": code, "csrf": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    again = TestClient(create_app(ws, secret=SECRET))
    page = again.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    replay = again.post(
        "/login",
        data={"username": "admin", "password": PASSWORDS["admin"], "otp": code, "csrf": csrf},
        follow_redirects=False,
    )
    assert replay.status_code == 401  # a code is good once
    reasons = [ln.get("reason") for ln in audit.read(ws, what="login.failure")]
    assert reasons == ["wrong one-time code", "wrong one-time code"]


# --- the audit log ------------------------------------------------------------------------------
def test_audit_log_records_token_use_and_who_saw_red(ws: Workspace) -> None:
    client = TestClient(create_app(ws, secret=SECRET))
    store = UserStore(ws)
    admin, vic = store.new_token("admin"), store.new_token("vic")
    for _ in range(3):
        client.get("/api/v1/orgs/AS4780", headers={"Authorization": f"Bearer {admin}"})
    client.get("/api/v1/orgs/tw-semi-01", headers={"Authorization": f"Bearer {vic}"})
    lines = list(audit.read(ws))
    uses = [ln for ln in lines if ln["what"] == "token.use"]
    assert [(ln["who"], ln["token"]) for ln in uses] == [("admin", admin[3:11]), ("vic", vic[3:11])]  # once per token
    red = [ln for ln in lines if ln["what"] == "view.red"]
    assert len(red) == 1 and red[0]["who"] == "admin" and "org:AS4780" in red[0]["items"]
    assert all(ln["time"].endswith("Z") and ln["from"] for ln in lines)
    assert (ws.root / "audit.log").stat().st_mode & 0o077 == 0
