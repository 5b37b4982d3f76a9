"""``sightline watch`` as operators run it: a real process following a directory a rotating
Zeek writer fills, an intel directory, and alerting a webhook, a syslog collector and an SMTP
server (STARTTLS) on 127.0.0.1, each at its own TLP clearance.  Killed with SIGKILL during an
ingest and during a retro-hunt, restarted: every victim is alerted once, in order, at the right
TLP per sink.  No sleeping for timing: every wait polls a condition with a deadline."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from .zeekgen import FIELDS, TYPES, _cell, conn

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command (test certificate)"),
]
pytest.importorskip("aiosmtpd")

DAY = 1709251200.0  # 2024-03-01T00:00:00Z
SCANNER, EXPLOITER, C2, C2B = "45.77.1.11", "45.77.1.12", "45.77.1.10", "45.77.2.20"
HOOK_KEY = "test-hook-key-0123456789"
ORGS = """org_id,name,sector,country,cidr
tw-gov-01,Ministry of Digital Things,government,TW,198.18.0.0/24
tw-univ-02,National Tainan University,university,TW,203.0.113.64/26
tw-semi-03,Hsinchu Wafer Works,semiconductor,TW,203.0.113.0/26
tw-assn-04,Taipei Trade Association,industry association,TW,198.18.1.0/24
"""
INTEL_1 = (
    "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
    f"{SCANNER},ipv4,RedJuliett,,,80,green\n"
    f"{EXPLOITER},ipv4,RedJuliett,,,85,amber\n"
    f"{C2},ipv4,RedJuliett,,,90,amber\n"
)
INTEL_2 = f"indicator,type,actor,first_seen,last_seen,confidence,tlp\n{C2B},ipv4,RedJuliett,,,90,amber\n"


def deadline_wait(cond: Callable[[], Any], what: str, timeout: float = 120.0, proc: Any = None) -> Any:
    """Poll ``cond`` until it is truthy; fail with ``what`` at the deadline."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"watch exited ({proc.returncode}) while waiting for {what}")
        threading.Event().wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- the telemetry: a Zeek writer that rotates conn.log, compressing most rotated files --------


def recon(t: float) -> list[dict]:
    rnd = random.Random(1)
    return [
        conn(
            t + h * 5 + p / 1000,
            SCANNER,
            40000 + h,
            f"198.18.0.{h}",
            p,
            duration=None,
            state=rnd.choice(["S0", "REJ"]),
            op=1,
            rp=0,
        )
        for h in range(1, 21)
        for p in (443, 8443, 10443, 4433)
    ]


def exploit(t: float, victim: str) -> list[dict]:
    return [conn(t + k * 60, EXPLOITER, 52000 + k, victim, 4433, ob=2600, rb=3100) for k in range(2)]


def beacons(t: float, host: str, c2: str, n: int = 40) -> list[dict]:
    rnd = random.Random(host)
    rows, x = [], t
    for _ in range(n):
        rows.append(conn(x, host, rnd.randint(30000, 60000), c2, 443, service="ssl", duration=2.0, ob=480, rb=1800))
        x += 300 + rnd.uniform(-10, 10)
    return rows


def background(t: float, n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    return [
        conn(
            t + rnd.uniform(0, 3600),
            f"203.0.113.{rnd.randint(1, 120)}",
            rnd.randint(1024, 65535),
            f"93.184.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
            443,
            ob=rnd.randint(100, 5000),
            rb=rnd.randint(100, 90000),
        )
        for _ in range(n)
    ]


class RotatingZeek:
    """Writes conn.log line by line as Zeek does, then rotates it: renamed with its time, and
    (every other file) compressed to .gz by a second step, the way Zeek's archiver does."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.n = 0

    def write(self, rows: list[dict]) -> Path:
        rows = sorted(rows, key=lambda r: r["ts"])
        live = self.d / "conn.log"
        header = [
            "#separator \\x09",
            "#set_separator\t,",
            "#empty_field\t(empty)",
            "#unset_field\t-",
            "#path\tconn",
            "#open\t2024-03-01-00-00-00",
            "#fields\t" + "\t".join(FIELDS),
            "#types\t" + "\t".join(TYPES),
        ]
        with open(live, "w") as fh:
            fh.write("\n".join(header) + "\n")
            for r in rows:
                fh.write("\t".join(_cell(r[f]) for f in FIELDS) + "\n")
            fh.write("#close\t2024-03-09-00-00-00\n")
        self.n += 1
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(DAY + 3600 * self.n))
        rotated = self.d / f"conn.{stamp}.log"
        os.replace(live, rotated)
        if self.n % 2 == 0:
            gz = self.d / f"conn.{stamp}.log.gz"
            tmp = self.d / f".conn.{stamp}.log.gz.tmp"
            tmp.write_bytes(gzip.compress(rotated.read_bytes()))
            os.replace(tmp, gz)
            rotated.unlink()
            return gz
        return rotated


# --- receivers on 127.0.0.1 ---------------------------------------------------------------------


class Webhook:
    def __init__(self) -> None:
        self.alerts: list[dict] = []
        self.bad_signatures = 0
        self.requests = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests += 1
                if outer.requests == 1:  # the first delivery fails: retried with backoff
                    self.send_response(503)
                    self.end_headers()
                    return
                want = "sha256=" + hmac.new(HOOK_KEY.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, self.headers.get("X-Sightline-Signature", "")):
                    outer.bad_signatures += 1
                doc = json.loads(body)
                assert self.headers["X-Sightline-Alert-Id"] == doc["id"]
                outer.alerts.append(doc)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Syslog:
    """RFC 5424 over TCP with octet-counting framing (RFC 6587)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        outer = self

        class H(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    n = b""
                    while (c := self.rfile.read(1)) not in (b" ", b""):
                        n += c
                    if not n:
                        return
                    outer.messages.append(self.rfile.read(int(n)))

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict[str, str]]:
        import re

        out = []
        for m in self.messages:
            assert re.match(rb"^<\d{1,3}>1 \d{4}-\d\d-\d\dT[\d:.]+Z \S+ sightline \d+ \S+ \[sightline@32473 ", m), m
            sd = m[m.index(b"[") + 1 : m.index(b"]")].decode()
            out.append(dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', sd)) | {"msg": m.split(b"] ", 1)[1].decode()})
        return out


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[int, Path, list]]:
    from aiosmtpd.controller import Controller

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    mails: list[tuple[bool, bytes]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            mails.append((session.ssl is not None, envelope.content))
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctrl = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
    ctrl.start()
    try:
        yield port, cert, mails
    finally:
        ctrl.stop()


def test_watch_alerts_each_victim_once_in_order_through_kill_9(tmp_path: Path, smtp: tuple[int, Path, list]) -> None:
    smtp_port, cafile, mails = smtp
    tele, intel, ws = tmp_path / "zeek", tmp_path / "intel", tmp_path / "ws"
    tele.mkdir()
    intel.mkdir()
    (tmp_path / "orgs.csv").write_text(ORGS)
    env = dict(os.environ, HOOK_KEY=HOOK_KEY, SIGHTLINE_LOG="WARNING")
    py = [sys.executable, "-c", "from sightline.cli import main; main()"]
    subprocess.run([*py, "orgs", "load", str(tmp_path / "orgs.csv"), "-w", str(ws)], check=True, env=env)
    (intel / "feed-1.csv").write_text(INTEL_1)
    hook, syslog = Webhook(), Syslog()
    sinks = [
        f"webhook+http://127.0.0.1:{hook.port}/hook?tlp=amber&secret_env=HOOK_KEY&name=hook",
        f"syslog+tcp://127.0.0.1:{syslog.port}?tlp=green&name=siem",
        f"smtp://127.0.0.1:{smtp_port}?tlp=red&to=soc@example.org&from=sightline@example.org&cafile={cafile}&name=mail",
    ]
    args = [*py, "watch", "-t", str(tele), "-i", str(intel), "-w", str(ws), "--poll", "0.2", "--intel-interval", "0.2",
            "--log-json", "--metrics-port", "0"]  # fmt: skip
    for s in sinks:
        args += ["--sink", s]
    logs = tmp_path / "watch.log"
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        (ws / "watch" / "endpoint.json").unlink(missing_ok=True)
        p = subprocess.Popen(args, env=env, stderr=open(logs, "a"), stdout=subprocess.DEVNULL)  # noqa: SIM115
        procs.append(p)
        return p

    def events() -> list[dict]:
        out = []
        for line in logs.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def mail_alerts() -> list[dict]:
        out = []
        for tls, raw in mails:
            assert tls, "mail sent without STARTTLS"
            m = message_from_bytes(raw)
            body = m.get_payload(decode=True).decode()
            doc = json.loads(body[body.index("{") : body.rindex("}") + 1])
            assert m["Subject"].startswith(f"[TLP:{doc['tlp'].upper()}] ") and body.startswith(
                f"TLP:{doc['tlp'].upper()}"
            )
            out.append(doc)
        return out

    def org_keys(alerts: list[dict]) -> list[tuple[str, str, str]]:
        return [(a["kind"], a.get("org_id") or a.get("ip"), a["tlp"]) for a in alerts]

    writer = RotatingZeek(tele)
    try:
        proc = start()
        # phase 1: reconnaissance of tw-gov-01 (GREEN intel), then an exploitation attempt on tw-univ-02 (AMBER)
        writer.write(recon(DAY + 100) + background(DAY, 300, 1))
        writer.write(exploit(DAY + 3700, "203.0.113.70") + background(DAY + 3600, 300, 2))
        deadline_wait(lambda: len(hook.alerts) >= 2 and len(mails) >= 2 and syslog.messages, "first alerts", proc=proc)

        ep = json.loads((ws / "watch" / "endpoint.json").read_text())
        base = f"http://127.0.0.1:{ep['port']}"
        health = httpx.get(base + "/healthz").json()
        assert health["status"] == "ok"
        metrics = httpx.get(base + "/metrics").text
        assert "# TYPE sightline_watch_flows_ingested_total counter" in metrics
        assert 'sightline_watch_alerts_failed_total{sink="hook"} 1' in metrics  # the 503, then retried

        # phase 2: a large file, killed (-9) while it is ingested; meanwhile tw-semi-03 is compromised
        big = writer.write(background(DAY + 7200, 150_000, 3) + beacons(DAY + 7200, "198.18.1.5", C2B))
        stem = big.name.split(".log")[0]
        deadline_wait(
            lambda: any(e.get("event") == "ingest_start" and stem in e.get("path", "") for e in events()),
            "the ingest of the large file",
            proc=proc,
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        n_events = len(events())
        writer.write(exploit(DAY + 11000, "203.0.113.5") + beacons(DAY + 11100, "203.0.113.5", C2))
        proc = start()
        deadline_wait(lambda: any(a.get("org_id") == "tw-semi-03" for a in hook.alerts), "tw-semi-03", proc=proc)
        # the restarted watch took the large file up again (its interrupted ingest had stored nothing)
        deadline_wait(
            lambda: any(e.get("event") == "ingest" and stem in e.get("path", "") for e in events()[n_events:]),
            "the large file after the restart",
            proc=proc,
        )

        # phase 3: new intel names C2B, contacted by tw-assn-04 two files ago: a retro-hunt finds it;
        # killed (-9) during the retro-hunt
        n_retro = sum(1 for e in events() if e.get("event") == "hunt_start" and e.get("retro"))
        tmp = intel / ".feed-2.csv.tmp"
        tmp.write_text(INTEL_2)
        os.replace(tmp, intel / "feed-2.csv")
        deadline_wait(
            lambda: sum(1 for e in events() if e.get("event") == "hunt_start" and e.get("retro")) > n_retro,
            "the retro-hunt",
            proc=proc,
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        n_events = len(events())
        proc = start()
        deadline_wait(lambda: any(a.get("org_id") == "tw-assn-04" for a in hook.alerts), "tw-assn-04", proc=proc)
        if not any(a.get("org_id") == "tw-assn-04" for a in hook.alerts[:-1]):  # not alerted before the kill
            assert any(e.get("event") == "hunt_start" and e.get("retro") for e in events()[n_events:])

        # phase 4: tw-gov-01 is now exploited (escalation) and a second host of tw-semi-03 calls home
        writer.write(exploit(DAY + 20000, "198.18.0.7") + beacons(DAY + 20000, "203.0.113.9", C2))
        deadline_wait(
            lambda: (
                {a["kind"] for a in hook.alerts} >= {"verdict_escalation", "new_host"}
                and {a["kind"] for a in mail_alerts()} >= {"verdict_escalation", "new_host"}
            ),
            "the escalation and the new host",
            proc=proc,
        )
        ep = json.loads((ws / "watch" / "endpoint.json").read_text())
        metrics = httpx.get(f"http://127.0.0.1:{ep['port']}/metrics").text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    expected_amber = [
        ("new_victim", "tw-gov-01", "green"),
        ("new_victim", "tw-univ-02", "amber"),
        ("new_victim", "tw-semi-03", "amber"),
        ("new_victim", "tw-assn-04", "amber"),
        ("verdict_escalation", "tw-gov-01", "amber"),
        ("new_host", "tw-semi-03", "amber"),
    ]
    assert org_keys(hook.alerts) == expected_amber
    assert hook.bad_signatures == 0
    assert org_keys(mail_alerts()) == expected_amber  # RED clearance: all of it, in the same order
    # GREEN clearance: only what the GREEN indicator shows; the AMBER escalation is not its to see
    assert [(a["kind"], a["org"], a["tlp"]) for a in syslog.alerts()] == [("new_victim", "tw-gov-01", "green")]
    assert all(a["msg"].startswith("\ufeffTLP:GREEN ") for a in syslog.alerts())
    ids = [a["id"] for a in hook.alerts]
    assert len(ids) == len(set(ids))
    comp = {a["org_id"]: a["verdict"] for a in hook.alerts if a["kind"] == "new_victim"}
    assert comp == {
        "tw-gov-01": "reconnaissance",
        "tw-univ-02": "exploitation_attempt",
        "tw-semi-03": "compromised",
        "tw-assn-04": "compromised",
    }
    # every rotated file was ingested once: the flows in the store are the flows written
    assert "sightline_watch_retro_hunts_total" in metrics
    from sightline.store import Workspace

    manifest = Workspace(ws).manifest()
    assert sum(int(f.get("rows") or 0) for f in manifest["files"].values()) == (
        80 + 300 + 2 + 300 + 2 + 40 + 150_000 + 40 + 2 + 40
    )
