"""``sightline watch`` parts: intel sources (TAXII via medallion, a MISP feed directory), the
names of live logs, the alert diff, and the sinks' wire formats."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.errors import ConfigError
from sightline.watch import SeenState, changes, is_live_name, parse_sink
from sightline.watch.sinks import _cef

from .datafiles import INTEL
from .test_taxii_pull import COLLECTION, PASSWORD, USER, Taxii, taxii  # noqa: F401 - the fixture
from .zeekgen import conn, write_tsv

DAY = 1709251200.0


@pytest.mark.parametrize(
    ("name", "live"),
    [
        ("conn.log", True),
        ("dns.log", True),
        ("conn.2024-03-01-10-00-00.log", False),
        ("conn.10:00:00-11:00:00.log.gz", False),
        ("eve.json", True),
        ("eve.json.1", False),
        ("eve.json.2.gz", False),
        ("nfcapd.current", True),
        ("nfcapd.current.4142", True),
        ("nfcapd.202403011005", False),
    ],
)
def test_live_log_names(name: str, live: bool) -> None:
    assert is_live_name(name) is live


def org(oid: str, verdict: str, hosts: list[tuple[str, str]], tlp: str = "amber") -> dict:
    return {
        "org_id": oid,
        "name": oid.upper(),
        "verdict": verdict,
        "confidence": 80,
        "first_seen": "2024-03-01T00:00:00Z",
        "last_seen": "2024-03-02T00:00:00Z",
        "tlp": tlp,
        "hosts": [{"ip": ip, "verdict": v, "indicators": ["45.77.1.10"], "tlp": tlp} for ip, v in hosts],
    }


def test_alerts_only_on_changes() -> None:
    doc = {"organizations": [org("a", "reconnaissance", [("10.0.0.1", "reconnaissance")])]}
    alerts, seen = changes(doc, SeenState())
    assert [(a.kind, a.data["org_id"]) for a in alerts] == [("new_victim", "a")]
    assert changes(doc, seen)[0] == []  # the same findings again: nothing
    up = {"organizations": [org("a", "compromised", [("10.0.0.1", "compromised")])]}
    alerts, seen = changes(up, seen)
    assert [(a.kind, a.data["previous_verdict"], a.data["verdict"]) for a in alerts] == [
        ("verdict_escalation", "reconnaissance", "compromised")
    ]
    # falling back is no news, and climbing again to a verdict already reported is not either
    down = {"organizations": [org("a", "exploitation_attempt", [("10.0.0.1", "exploitation_attempt")])]}
    alerts, seen = changes(down, seen)
    assert alerts == []
    more = {"organizations": [org("a", "compromised", [("10.0.0.1", "compromised"), ("10.0.0.2", "compromised")])]}
    alerts, seen = changes(more, seen)
    assert [(a.kind, a.data["host"]) for a in alerts] == [("new_host", "10.0.0.2")]
    assert changes(more, seen)[0] == []
    sus = {"organizations": more["organizations"], "suspected_infrastructure": [{"ip": "45.77.9.9", "score": 0.8}]}
    alerts, seen = changes(sus, seen, default_tlp="amber")
    assert [(a.kind, a.tlp) for a in alerts] == [("suspected_infrastructure", "amber")]


def test_sink_urls() -> None:
    s = parse_sink("webhook+https://soc.example/h?tlp=amber%2Bstrict&secret_env=K")
    assert (s.kind, s.url, s.clearance.label, s.options["secret_env"]) == (
        "webhook",
        "https://soc.example/h",
        "amber+strict",
        "K",
    )
    assert parse_sink("syslog+tcp://10.0.0.5:6514?tlp=green&cef=1").options["transport"] == "tcp"
    assert parse_sink("smtp://mail:587?to=a@b").clearance.label == "clear"  # no tlp= : told only TLP:CLEAR
    for bad in (
        "ftp://x",
        "smtp://mail:587",  # no recipient
        "smtp://mail.example:25?to=a@b&starttls=0",  # plain SMTP off this host
        "webhook+https://u:pw@x/h",  # a secret in the URL
        "syslog+udp://x:514?tlp=orange",
    ):
        with pytest.raises(ConfigError):
            parse_sink(bad)


def test_cef_and_syslog_escaping() -> None:
    alert = {
        "id": "x1",
        "kind": "new_victim",
        "tlp": "green",
        "summary": "new victim A|B (a=b)",
        "org_id": "a=b",
        "verdict": "compromised",
        "link": "https://d/orgs/a",
    }
    cef = _cef(alert)
    assert cef.startswith("CEF:0|sightline|sightline|")
    assert "|new victim A\\|B (a=b)|9|" in cef and "cs2=a\\=b" in cef
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        port = rx.getsockname()[1]
        parse_sink(f"syslog+udp://127.0.0.1:{port}?tlp=green").send(dict(alert, summary='quote " and ]'))
        msg = rx.recv(65535)
    assert msg.startswith(b"<130>1 ")  # local0, critical
    assert b'org="a=b"' in msg and b'tlp="green"' in msg
    assert msg.endswith('\ufeffTLP:GREEN quote " and ]'.encode())


def test_watch_once_pulls_taxii_and_a_misp_feed_directory(tmp_path: Path, taxii: Taxii) -> None:  # noqa: F811
    tele, feed, ws = tmp_path / "zeek", tmp_path / "misp-feed", tmp_path / "ws"
    tele.mkdir()
    feed.mkdir()
    # a MISP feed: manifest.json, hashes.csv and one event per file
    shutil.copy(INTEL / "misp_event.json", feed / "5f6b2c1e-0000-4000-8000-00000000e001.json")
    (feed / "manifest.json").write_text(json.dumps({"5f6b2c1e-0000-4000-8000-00000000e001": {"info": "x"}}))
    (feed / "hashes.csv").write_text("")
    (tmp_path / "orgs.csv").write_text(
        "org_id,name,sector,country,cidr\ntw-semi-01,Hsinchu Wafer Works,semiconductor,TW,203.0.113.0/26\n"
        "tw-univ-02,National Tainan University,university,TW,203.0.113.64/26\n"
    )
    # one host beacons to the TAXII collection's C2, another to the MISP event's SoftEther server
    rows = [
        conn(DAY + 300 * k, "203.0.113.5", 40000 + k, "45.77.1.10", 443, service="ssl", duration=2.0, ob=480, rb=1800)
        for k in range(40)
    ] + [
        conn(DAY + 300 * k + 7, "203.0.113.70", 41000 + k, "198.51.100.7", 5555, duration=2.0, ob=480, rb=1800)
        for k in range(40)
    ]
    write_tsv(tele / "conn.2024-03-01-00-00-00.log", sorted(rows, key=lambda r: r["ts"]))
    r = CliRunner().invoke(app, ["orgs", "load", str(tmp_path / "orgs.csv"), "-w", str(ws)])
    assert r.exit_code == 0, r.output
    got: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            return

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    hook = f"webhook+http://127.0.0.1:{srv.server_address[1]}/?tlp=amber&anonymize=1"
    args = ["watch", "-t", str(tele), "-i", str(feed), "--taxii", taxii.root, "--collection", COLLECTION]
    args += ["--user", USER, "--once", "--settle", "0", "-w", str(ws), "--sink", hook]
    r = CliRunner().invoke(app, args, env={"SIGHTLINE_TAXII_PASSWORD": PASSWORD}, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    latest = json.loads((ws / "findings" / "latest.json").read_text())
    verdicts = {o["org_id"]: o["verdict"] for o in latest["organizations"]}
    assert verdicts == {"tw-semi-01": "compromised", "tw-univ-02": "compromised"}
    st = json.loads(CliRunner().invoke(app, ["intel", "status", "--json", "-w", str(ws)]).stdout)
    assert "manifest.json" not in st["sources"] and "hashes.csv" not in st["sources"]
    state = json.loads((ws / "watch" / "state.json").read_text())
    assert state["counters"]["hunts"] == 1 and state["counters"]["flows_ingested"] == 80
    # the sink asked for pseudonyms: two victims, neither named
    assert sorted(a["verdict"] for a in got) == ["compromised", "compromised"]
    text = json.dumps(got)
    assert all(x not in text for x in ("tw-semi-01", "tw-univ-02", "Hsinchu", "203.0.113.5", "203.0.113.70"))
    srv.shutdown()
    # a second run finds nothing new: no ingest, no hunt
    r = CliRunner().invoke(app, args, env={"SIGHTLINE_TAXII_PASSWORD": PASSWORD}, catch_exceptions=False)
    assert json.loads((ws / "watch" / "state.json").read_text())["counters"]["hunts"] == 1


@pytest.mark.skipif(shutil.which("nfdump") is None, reason="nfdump binary not installed (apt-get install nfdump)")
def test_watch_reads_rotated_nfcapd_files_not_the_current_one(tmp_path: Path) -> None:
    from .datafiles import SLIPS

    nfcapd = SLIPS / "test1-malicious.nfdump"
    day = tmp_path / "nfcapd" / "2024" / "03" / "01"
    day.mkdir(parents=True)
    shutil.copy(nfcapd, day / "nfcapd.202403011000")  # rotated by nfcapd
    shutil.copy(nfcapd, day / "nfcapd.current.4142")  # still being written
    ws = tmp_path / "ws"
    args = ["watch", "-t", str(tmp_path / "nfcapd"), "--once", "--settle", "0", "-w", str(ws)]
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    state = json.loads((ws / "watch" / "state.json").read_text())
    assert [Path(p).name for p in state["files"]] == ["nfcapd.202403011000"]
    assert state["counters"]["flows_ingested"] == 4593
    # nfcapd rotates: the file it was writing gets its time-stamped name; same content, nothing added
    (day / "nfcapd.current.4142").rename(day / "nfcapd.202403011005")
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    state = json.loads((ws / "watch" / "state.json").read_text())
    assert state["counters"]["flows_ingested"] == 4593 and len(state["files"]) == 2
