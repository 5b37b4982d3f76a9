"""Verdicts that hold on the shapes real traffic has (issue #21), through `sightline hunt`.

Each test is a class of traffic seen on public labelled captures (bench/real holds the real
ones): a C2 that refuses its infected host, an indicator inside a victim's own network, popular
services a feed names, research scanners, a monitor polling a service, hunts that cannot say
anything.  The shapes are written with tests/zeekgen.py; the verdicts are what an analyst would
write, and they are asserted through the findings.json contract.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from sightline.assess import _Mark, guards_for
from sightline.cli import app
from sightline.core.verdicts import STRONG_C2

from .zeekgen import conn, write_tsv

DAY = 1709251200.0  # 2024-03-01T00:00:00Z
ORGS = (
    "org_id,name,sector,country,cidr\n"
    "tw-semi-01,Hsinchu Wafer Works,semiconductor,TW,203.0.113.0/26\n"
    "tw-univ-02,National Tainan University,university,TW,203.0.113.64/26\n"
    "tw-gov-03,Ministry of Digital Things,government,TW,198.18.0.0/24\n"
)
HEADER = "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"


def hunt(
    tmp: Path, rows: list[dict[str, Any]], intel: str, *extra: str, orgs: str | None = ORGS, code: int = 0
) -> tuple[dict[str, Any], str]:
    log = write_tsv(tmp / "conn.log", sorted(rows, key=lambda r: r["ts"]))
    (tmp / "intel.csv").write_text(HEADER + intel)
    args = ["hunt", "-t", str(log), "-i", str(tmp / "intel.csv"), "-w", str(tmp / "ws"), "--out", str(tmp / "out")]
    if orgs is not None:
        (tmp / "orgs.csv").write_text(orgs)
        args += ["--orgs", str(tmp / "orgs.csv")]
    res = CliRunner().invoke(app, args + list(extra), catch_exceptions=False)
    assert res.exit_code == code, res.output
    return json.loads((tmp / "out" / "findings.json").read_text()), res.output


def verdicts(doc: dict[str, Any]) -> dict[str, str]:
    return {o["org_id"]: o["verdict"] for o in doc["organizations"]}


def rows_of(doc: dict[str, Any], org: str) -> list[dict[str, Any]]:
    o = next(o for o in doc["organizations"] if o["org_id"] == org)
    return [e for h in o["hosts"] for e in h["evidence"]]


def background(rnd: random.Random, n: int = 300) -> list[dict[str, Any]]:
    return [
        conn(
            DAY + rnd.uniform(0, 2 * 86400),
            f"203.0.113.{rnd.randint(1, 120)}",
            rnd.randint(1024, 65535),
            f"93.184.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
            443,
            ob=rnd.randint(100, 5000),
            rb=rnd.randint(100, 90000),
        )
        for _ in range(n)
    ]


def test_refused_callbacks_are_an_infection(tmp_path: Path) -> None:
    """A RAT retrying its C2 every 1-3 s for 20 minutes, every attempt refused: compromised, with
    evidence saying the C2 did not answer and less confidence than an answered beacon; one
    refused attempt from another host stays a contact."""
    rnd = random.Random(5)
    c2 = "45.77.3.3"
    rows = background(rnd)
    t = DAY + 3600
    while t < DAY + 3600 + 1200:
        rows.append(
            conn(
                t,
                "203.0.113.9",
                rnd.randint(30000, 60000),
                c2,
                1177,
                duration=None,
                ob=0,
                rb=0,
                state=rnd.choice(["REJ", "REJ", "S0"]),
                op=1,
                rp=1,
            )
        )
        t += rnd.uniform(1.0, 3.0)
    rows.append(conn(DAY + 5000, "203.0.113.70", 41000, c2, 1177, duration=None, ob=0, rb=0, state="REJ", op=1, rp=1))
    doc, _ = hunt(tmp_path, rows, f"{c2},ipv4,RedJuliett,,,75,amber\n")
    assert verdicts(doc) == {"tw-semi-01": "compromised"}
    ev = rows_of(doc, "tw-semi-01")
    failed = next(e for e in ev if e["behaviour"] == "failed_callback")
    assert failed["decisive"] and "none answered" in failed["detail"] and failed["flows"] > 300
    assert failed["score"] < 0.75 and failed["confidence"] < 75


def test_an_indicator_inside_a_registered_organization_is_its_compromised_asset(tmp_path: Path) -> None:
    """Old intel names a university server as C2.  Its own web traffic to 200 internet hosts and to a
    host of another registered organization makes none of them a victim; the university is."""
    rnd = random.Random(6)
    relay = "203.0.113.90"
    rows = background(rnd)
    for _ in range(200):
        rows.append(
            conn(
                DAY + rnd.uniform(0, 86400),
                relay,
                rnd.randint(30000, 60000),
                f"100.{rnd.randint(64, 127)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
                rnd.choice([80, 443, 8443]),
                ob=rnd.randint(1200, 9000),
                rb=rnd.randint(500, 40000),
            )
        )
    for k in range(3):
        rows.append(conn(DAY + 9000 + k, relay, 50000 + k, "198.18.0.7", 443, ob=3000, rb=8000))
    # a research scanner (Censys) crawling the listed address is not a victim calling its C2
    for k in range(6):
        rows.append(conn(DAY + 20000 + k * 40000, "167.94.138.40", 41000 + k, relay, 80, ob=200, rb=1500))
        rows.append(
            conn(
                DAY + 20010 + k * 40000,
                "167.94.138.40",
                42000 + k,
                relay,
                3306,
                duration=None,
                ob=0,
                rb=0,
                state="S0",
                op=1,
                rp=0,
            )
        )
    # the relay's own traffic to multicast and broadcast addresses is nobody's either
    rows += [conn(DAY + 100 + k, relay, 5353, "224.0.0.251", 5353, proto="udp", ob=60, rb=0) for k in range(5)]
    doc, out = hunt(tmp_path, rows, f"{relay},ipv4,RedJuliett,2024-01-01,,70,amber\n")
    assert verdicts(doc) == {"tw-univ-02": "compromised"}, out
    univ = next(o for o in doc["organizations"] if o["org_id"] == "tw-univ-02")
    assert [h["ip"] for h in univ["hosts"]] == [relay] and univ["hosts"][0]["roles"] == ["relay/C2 host named by intel"]
    relay_ev = [e for e in rows_of(doc, "tw-univ-02") if e["behaviour"] == "relay"]
    assert relay_ev and relay_ev[0]["decisive"] and relay_ev[0]["intel_sources"] == ["intel.csv"]
    server = next(a for a in doc["actor_infrastructure"] if a["ip"] == relay)
    assert server["victim_owned"] and server["hosting"] == "victim network"
    # notify writes one notice, to the victim; none to an address group
    notices = tmp_path / "n"
    CliRunner().invoke(app, ["notify", "--out", str(notices), "-w", str(tmp_path / "ws")], catch_exceptions=False)
    assert sorted(p.name for p in notices.iterdir()) == ["notice-tw-univ-02.eml", "notice-tw-univ-02.md"]


def test_unregistered_addresses_are_grouped_by_network_never_pooled(tmp_path: Path) -> None:
    """Without a registry, a lone probe of each of 30 unrelated /24s is 30 lone probes, not one
    organization probed 30 times; a network probed on several services is reconnaissance."""
    scanner = "45.77.4.4"
    rows = [
        conn(
            DAY + k * 7,
            scanner,
            40000 + k,
            f"100.{64 + k}.{k}.10",
            443,
            duration=None,
            ob=0,
            rb=0,
            state="S0",
            op=1,
            rp=0,
        )
        for k in range(30)
    ]
    rows += [
        conn(DAY + 500 + p, scanner, 41000 + p, "100.120.5.20", p, duration=None, ob=0, rb=0, state="REJ", op=1, rp=1)
        for p in (22, 443, 8443, 10443)
    ]
    doc, _ = hunt(tmp_path, rows, f"{scanner},ipv4,RedJuliett,,,80,amber\n", orgs=None)
    assert verdicts(doc) == {"net:100.120.5.0/24": "reconnaissance"}
    org = doc["organizations"][0]
    assert org["source"] == "network" and "unregistered" in org["name"]
    notices = tmp_path / "n"
    CliRunner().invoke(app, ["notify", "--out", str(notices), "-w", str(tmp_path / "ws")], catch_exceptions=False)
    assert not notices.exists() or not list(notices.iterdir())  # nobody receives mail for an address group


def test_popular_services_a_feed_names_make_nobody_compromised(tmp_path: Path) -> None:
    """DNS-over-TLS to a public resolver for days, a 60 MB download and a device polling a CDN edge
    every 5 minutes, three HTTPS visits to an AWS address: none is C2."""
    rnd = random.Random(8)
    resolver, cdn, aws = "1.1.1.1", "104.16.5.5", "3.85.12.34"
    rows = background(rnd)
    t = DAY
    while t < DAY + 3 * 86400:  # long DoT sessions, cumulative far beyond four hours
        rows.append(
            conn(
                t,
                "203.0.113.5",
                rnd.randint(30000, 60000),
                resolver,
                853,
                duration=rnd.uniform(300, 900),
                ob=rnd.randint(2000, 9000),
                rb=rnd.randint(4000, 20000),
            )
        )
        t += rnd.uniform(600, 1200)
    rows.append(conn(DAY + 40000, "203.0.113.6", 51515, cdn, 443, duration=1500.0, ob=4000, rb=60_000_000))
    t = DAY + 100
    while t < DAY + 86400:
        rows.append(conn(t, "203.0.113.7", rnd.randint(30000, 60000), cdn, 443, ob=380, rb=1500 + rnd.randint(0, 40)))
        t += 300 + rnd.uniform(-2, 2)
    for k in range(3):
        rows.append(conn(DAY + 7000 + k * 3000, "203.0.113.70", 52000 + k, aws, 443, ob=900, rb=30000))
    intel = "".join(f"{ip},ipv4,RedJuliett,,,70,amber\n" for ip in (resolver, cdn, aws))
    doc, _ = hunt(tmp_path, rows, intel)
    assert verdicts(doc) == {}
    assert not any(e.get("behaviour") == "vpn_tunnel" for s in doc.get("suppressed") or [] for e in [s["evidence"]])


def test_a_monitor_and_a_census_ping_are_not_reconnaissance(tmp_path: Path) -> None:
    rnd = random.Random(9)
    monitor, census = "45.77.5.5", "45.77.5.6"
    rows = background(rnd)
    t = DAY
    while t < DAY + 86400:  # an uptime monitor: a small HTTP request every 5 minutes, answered
        rows.append(conn(t, monitor, rnd.randint(30000, 60000), "203.0.113.20", 80, ob=180, rb=5200))
        t += 300
    for k in range(17):  # a census pinging one host every 90 minutes
        rows.append(
            conn(
                DAY + k * 5400,
                census,
                8,
                "203.0.113.21",
                0,
                proto="icmp",
                duration=0.01,
                ob=56,
                rb=56,
                state="OTH",
                op=1,
                rp=1,
            )
        )
    intel = f"{monitor},ipv4,RedJuliett,,,70,amber\n{census},ipv4,RedJuliett,,,70,amber\n"
    doc, _ = hunt(tmp_path, rows, intel)
    assert verdicts(doc) == {}


def test_a_hunt_that_cannot_find_anything_says_so(tmp_path: Path) -> None:
    """All the intel expired before the telemetry began: no false 'nothing found'; --strict exits 2."""
    rnd = random.Random(10)
    rows = background(rnd, 50)
    intel = "45.77.6.6,ipv4,RedJuliett,2020-01-01,2020-06-30,90,amber\n"
    doc, out = hunt(tmp_path, rows, intel)
    assert "none of the 1 indicators was valid" in " ".join(out.split())
    assert "no organization shows activity" not in out
    assert any("none of the 1 indicators" in n for n in doc.get("notes") or [])
    (tmp_path / "out").rename(tmp_path / "out1")
    _, out = hunt(tmp_path, rows, intel, "--strict", code=2)
    assert "strict:" in out


# --- one guard rule: whatever makes an address shared applies the same way to every behaviour -------

MARKS = [
    None,
    _Mark("cdn", "CDN", True),
    _Mark("resolver", "resolver", True, "sightline:x"),
    _Mark("saas", "SaaS", True),
    _Mark("cloud", "AWS", False),
    _Mark("scanner", "Censys", False),
]
BEHAVIOURS = [
    "beacon",
    "long_connection",
    "vpn_tunnel",
    "exfiltration",
    "callback",
    "failed_callback",
    "contact",
    "outbound_attempt",
    "exploitation",
    "scan",
]


@given(
    behaviour=st.sampled_from(BEHAVIOURS),
    mark=st.sampled_from(MARKS),
    popular=st.booleans(),
    confidence=st.integers(0, 100),
    n=st.integers(0, 60),
    longest=st.floats(0, 20000),
)
def test_one_guard_rule_for_every_behaviour(
    behaviour: str, mark: _Mark | None, popular: bool, confidence: int, n: int, longest: float
) -> None:
    direction = "inbound" if behaviour in ("exploitation", "scan") else "outbound"
    g = guards_for(
        behaviour, direction, mark, popular=popular, indicator_confidence=confidence, series_n=n, max_duration=longest
    )
    if mark is None and not popular:
        assert g == []
        return
    very_sure = confidence >= 80
    if mark is not None and mark.category == "scanner":
        assert (g == []) == very_sure
        return
    if direction == "inbound":
        # a multi-tenant address or a popular one connecting in is no attack, however sure the intel
        assert (g == []) == (not (mark is not None and mark.multi_tenant) and not popular)
        return
    decides = (
        behaviour in STRONG_C2
        and not (behaviour == "beacon" and n < 20)
        and not (behaviour == "long_connection" and longest < 3600)
    )
    if mark is not None and (mark.multi_tenant or mark.category == "cloud"):
        decides = decides and very_sure
    assert (g == []) == decides, g


def test_an_address_serving_a_popular_site_is_shared(tmp_path: Path) -> None:
    """A feed names an address; the TLS sessions to it ask for www.microsoft.com (on the popular
    domain lists): it fronts a popular site, so a workstation's regular polls decide nothing.
    The same polls to an address whose sessions name nothing popular are a beacon."""
    from . import namesgen as ng

    rnd = random.Random(11)
    popular_ip, c2 = "45.77.7.7", "45.77.8.8"
    rows = background(rnd)
    ssl = []
    for host, dst in (("203.0.113.5", popular_ip), ("203.0.113.70", c2)):
        t = DAY + 3600
        while t < DAY + 3600 + 86400:
            rows.append(
                conn(
                    t,
                    host,
                    rnd.randint(30000, 60000),
                    dst,
                    443,
                    service="ssl",
                    duration=2.0,
                    ob=480 + rnd.randint(-20, 20),
                    rb=1800 + rnd.randint(-50, 50),
                )
            )
            t += 300 + rnd.uniform(-10, 10)
        ssl.append(
            ng.ssl(DAY + 3600, host, dst, 443, "www.microsoft.com" if dst == popular_ip else "upd.example-c2.net", [])
        )
    names = ng.write_json(tmp_path / "ssl.log", ssl)
    intel = f"{popular_ip},ipv4,RedJuliett,,,70,amber\n{c2},ipv4,RedJuliett,,,70,amber\n"
    doc, _ = hunt(tmp_path, rows, intel, "-t", str(names))
    assert verdicts(doc) == {"tw-univ-02": "compromised"}
