"""Four shapes of real traffic a hunt meets in the field (issue #21), with the truth an analyst writes.

1. **Popular services a feed names** (sandbox runs, feeds that list whatever a sample touched),
   at medium confidence: a public resolver (1.1.1.1, 8.8.8.8, 9.9.9.9, ...) that hosts of many
   organizations use for DNS (53/udp) and DNS over TLS (853/tcp: sessions held open for minutes
   to hours, day after day); a CDN edge (Cloudflare, Fastly, Akamai) that hosts download large
   files from and a device polls every few minutes; a hyperscaler address (AWS, Azure) a few
   hosts visit over HTTPS.  Truth: nothing, for anybody.
2. **Refused callbacks**: a host of a registered organization runs a RAT whose C2 (listed) is
   down: it retries every 1-3 s in bursts, or every few minutes for days, hundreds of attempts,
   all refused (REJ) or unanswered (S0).  Truth: its organization compromised.  One or two such
   attempts from a host of another organization (a user who opened the same lure, a link
   preview) are a listed contact, not a verdict.
3. **An indicator inside a registered organization**: a server or secondary router of a
   registered organization, taken over and used by the actor as a relay, is listed as C2.  It
   makes its own outbound connections (web traffic to CDN, cloud and other internet hosts, some
   to hosts of other registered organizations) and receives a few connections from the
   actor's upstream addresses.  Truth: its organization compromised; the parties it talks to
   get no verdict from that.
4. **Research scanners a feed lists** at medium confidence (Censys, Driftnet, Shodan: their
   published ranges), probing many organizations' addresses on many ports.  Truth: nothing.

Everything here draws from its own random stream: the campaign and the background of a seed
stay what they were.  Volumes, intervals, jitter, sizes and times are drawn per seed.  Flows
carry labels 6-9 and 15-18 (:data:`sightline.simulate.frames.LABELS`); the truth follows from
the labels of the flows that reach the output (:func:`sightline.simulate.observed_truth`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import frames as F
from .background import _TZ, Background
from .geo import NETWORKS, Network, random_v4
from .intel import ACTOR
from .world import Org, World

HOUR = 3600.0
DAY = 86400.0

RESOLVERS: tuple[tuple[str, str], ...] = (
    ("1.1.1.1", "Cloudflare"),
    ("1.0.0.1", "Cloudflare"),
    ("8.8.8.8", "Google Public DNS"),
    ("8.8.4.4", "Google Public DNS"),
    ("9.9.9.9", "Quad9"),
    ("149.112.112.112", "Quad9"),
)
"""Anycast public resolvers (in the MISP list of public DNS resolvers)."""
CDN_NETWORKS = ("cloudflare", "fastly", "akamai")
CLOUD_RANGES: dict[str, tuple[str, ...]] = {
    # parts of the geo networks' ranges that the providers publish as in use (AWS ip-ranges.json,
    # Azure service tags, as the MISP amazon-aws / microsoft-azure warninglists of 2024-25 hold
    # them): hosts visit servers there, not the provider's unused space
    "amazon": ("3.128.0.0/12", "3.144.0.0/13"),
    "microsoft": ("20.192.0.0/15", "20.196.0.0/14", "20.204.0.0/14", "20.208.0.0/13"),
}
VPS_NETWORKS = ("vultr", "digitalocean", "linode", "ovh", "contabo", "alibaba")
UPSTREAM_NETWORKS = ("vnpt", "chinanet", "comcast", "vultr", "ovh", "contabo")
"""Where the actor's upstream hops to a relay sit (no registered organization lives there)."""

SCANNER_RANGES: dict[str, tuple[str, ...]] = {
    # published scanning ranges (Censys's support article, Driftnet's AS211298 prefixes)
    "Censys": (
        "162.142.125.0/24",
        "167.94.138.0/24",
        "167.94.145.0/24",
        "167.94.146.0/24",
        "199.45.154.0/24",
        "199.45.155.0/24",
        "66.132.159.0/24",
    ),
    "Driftnet": ("193.163.125.0/24", "87.236.176.0/24", "185.247.137.0/24"),
}
SHODAN_CRAWLERS = (
    "71.6.135.131",
    "71.6.146.185",
    "71.6.146.186",
    "71.6.158.166",
    "71.6.165.200",
    "71.6.167.142",
    "71.6.199.23",
    "66.240.205.34",
    "66.240.192.138",
    "66.240.219.146",
    "66.240.236.119",
    "198.20.69.74",
    "82.221.105.6",
)
"""Shodan crawlers (census*.shodan.io) as the MISP Shodan lists and sightline's scanners.csv hold them."""
SCANNER_PORTS = np.array(
    [
        21,
        22,
        23,
        25,
        53,
        80,
        81,
        110,
        111,
        123,
        135,
        139,
        143,
        161,
        443,
        445,
        465,
        500,
        587,
        993,
        995,
        1433,
        1521,
        1723,
        1883,
        1900,
        2000,
        2082,
        2083,
        2222,
        2323,
        3000,
        3128,
        3306,
        3389,
        4433,
        4443,
        4500,
        5000,
        5060,
        5432,
        5555,
        5900,
        5985,
        6379,
        7547,
        8000,
        8008,
        8080,
        8081,
        8088,
        8443,
        8888,
        9000,
        9090,
        9200,
        9443,
        10000,
        10443,
        11211,
        27017,
    ]
)
SCANNER_UDP = np.isin(SCANNER_PORTS, [53, 123, 161, 500, 1900, 4500, 5060, 11211])
RAT_PORTS = np.array([443, 8443, 8080, 4444, 1177, 5552, 7777, 9001])
"""Ports RATs call home on (njRAT 1177/5552, generic 4444, ...)."""

_TCP, _UDP = 0, 1
_SF, _S0, _REJ, _RSTO, _RSTR = (F.STATES.index(s) for s in ("SF", "S0", "REJ", "RSTO", "RSTR"))
_SSL, _HTTP, _DNS, _SSH = (F.SERVICES.index(s) for s in ("ssl", "http", "dns", "ssh"))


@dataclass
class RealTraffic:
    """Flows (true time, seconds since the epoch in ``ts`` microseconds), the indicators the
    feeds publish for them, and a description of the shapes for ``truth.json``."""

    frame: F.Frame
    indicators: list[dict] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)
    intended: dict[str, str] = field(default_factory=dict)  # org_id -> intended verdict (shape orgs)


def _ip(v: int) -> str:
    return str(ipaddress.IPv4Address(int(v)))


class _Gen:
    """Shared state while drawing the shapes of one scenario."""

    def __init__(self, rng: np.random.Generator, world: World, bg: Background, span: float, start: dt.datetime) -> None:
        self.rng, self.world, self.bg, self.span, self.start = rng, world, bg, span, start
        self.tz = np.array([_TZ.get(o.country, 0) for o in world.orgs], np.float64)
        self.sensor = np.array([o.sensor for o in world.orgs], np.int16)
        self.avoid: set[int] = {a.ip for a in world.actor}
        for arr in (bg.popular, bg.tail, world.scanner_ips, world.stale_ips, world.wrong_ips):
            self.avoid.update(int(x) for x in np.asarray(arr).tolist())
        self.parts: list[F.Frame] = []
        self.indicators: list[dict] = []

    # ---- helpers ------------------------------------------------------------------------
    def fresh(self, nets: list[Network]) -> int:
        """An address in ``nets`` nobody else in the world uses."""
        while True:
            v = int(random_v4(self.rng, nets, 1)[0])
            if v not in self.avoid and not self._in_org(v):
                self.avoid.add(v)
                return v

    def _in_org(self, v: int) -> bool:
        return any(s <= v <= e for o in self.world.orgs for s, e in o.v4_blocks)

    def office_times(self, n: int, org: np.ndarray, office: np.ndarray | None = None) -> np.ndarray:
        """``n`` start times (seconds from the window start): busy around the organization's
        local early afternoon where ``office`` (default all), any time of day elsewhere."""
        rng = self.rng
        days = max(1, int(np.ceil(self.span / DAY)))
        day = rng.integers(0, days, size=n)
        local = np.where(rng.random(n) < 0.85, rng.normal(13.5, 2.8, size=n), rng.uniform(0, 24, size=n)) % 24
        if office is not None:
            local = np.where(office, local, rng.uniform(0, 24, size=n))
        t = day * DAY + (local - self.tz[org]) * HOUR + rng.uniform(0, 60, size=n)
        return np.mod(t, self.span)

    def flows(
        self,
        ts: np.ndarray,
        src: Any,
        dst: Any,
        dport: Any,
        proto: Any,
        state: Any,
        bout: Any,
        bin_: Any,
        dur: Any,
        service: Any,
        label: int,
        org: Any,
    ) -> None:
        """Append flows (scalars broadcast); failed states carry no payload and last as long as
        a refused round trip or an unanswered SYN's retries."""
        n = len(ts)
        if n == 0:
            return
        rng = self.rng
        f = F.empty(n)

        def b(v: Any, dtype: type) -> np.ndarray:
            return np.broadcast_to(np.asarray(v), (n,)).astype(dtype)

        f["ts"] = np.round(np.asarray(ts, np.float64) * 1e6).astype(np.int64)
        f["s_lo"], f["d_lo"] = b(src, np.uint64), b(dst, np.uint64)
        # Linux or Windows ephemeral ports
        f["sport"] = np.where(
            rng.random(n) < 0.5, rng.integers(32768, 61000, size=n), rng.integers(49152, 65536, size=n)
        ).astype(np.int32)
        f["dport"] = b(dport, np.int32)
        f["proto"], f["state"], f["service"] = b(proto, np.uint8), b(state, np.uint8), b(service, np.uint8)
        failed = F.FAILED[f["state"]]
        f["bout"] = np.where(failed, 0, b(bout, np.int64))
        f["bin"] = np.where(failed, 0, b(bin_, np.int64))
        f["pout"] = F.packets(rng, f["bout"], f["state"], f["proto"], True)
        f["pin"] = F.packets(rng, f["bin"], f["state"], f["proto"], False)
        dur = b(dur, np.float64).copy()
        # a refused connection lasts one round trip; an unanswered one as long as its SYN retries
        # (Linux resends after 1 s and 3 s, Windows after 3 s and 9 s)
        rtt = rng.lognormal(np.log(0.08), 0.6, size=n)
        k = np.clip(f["pout"] - 1, 0, 2)
        retry = np.where(rng.random(n) < 0.5, np.array([0.0, 1.0, 3.0])[k], np.array([0.0, 3.0, 9.0])[k])
        retry = retry + np.where(retry > 0, rng.uniform(0, 0.01, size=n), 0.0)
        dur = np.where(f["state"] == _REJ, rtt, dur)
        dur = np.where((f["state"] == _S0) & (f["proto"] == _TCP), retry, dur)
        dur = np.where((f["state"] == _S0) & (f["proto"] == _UDP), 0.0, dur)
        f["dur"] = np.round(np.clip(dur, 0, None), 6)
        o = b(org, np.int32)
        f["org"] = o
        f["sensor"] = self.sensor[o]
        f["label"][:] = label
        self.parts.append(f)

    def indicator(
        self, ip: int, role: str, confidence: int, description: str, *, tlp: str, feeds: list[str], kind: str
    ) -> dict:
        """A published indicator whose validity window covers the whole observation window."""
        rng = self.rng
        first = self.start - dt.timedelta(days=float(rng.uniform(2, 60)))
        last = (
            None
            if rng.random() < 0.5
            else (self.start + dt.timedelta(seconds=self.span) + dt.timedelta(days=float(rng.uniform(1, 30))))
        )
        rec = {
            "value": _ip(ip),
            "first_seen": first,
            "last_seen": last,
            "confidence": int(confidence),
            "tlp": tlp,
            "feeds": feeds,
            "kind": kind,
            "description": description,
            "role": role,
        }
        self.indicators.append(rec)
        return rec

    def feeds(self, p_stix: float) -> list[str]:
        f = ["stix"] if self.rng.random() < p_stix else ["csv"]
        return ["stix", "csv"] if self.rng.random() < 0.2 else f

    def pick_orgs(self, share: float, minimum: int) -> np.ndarray:
        n = len(self.world.orgs)
        k = int(min(n, max(minimum, round(share * n))))
        return np.sort(self.rng.choice(n, size=k, replace=False))

    def pick_clients(self, orgs: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """Some client addresses (NAT addresses where the organization uses NAT) per organization."""
        hosts, owner = [], []
        for oi in orgs.tolist():
            cl = self.world.orgs[oi].clients
            k = int(min(len(cl), 1 + self.rng.poisson(lam)))
            hosts.append(self.rng.choice(cl, size=k, replace=False))
            owner.append(np.full(k, oi, np.int32))
        return np.concatenate(hosts).astype(np.uint64), np.concatenate(owner)

    def choice(self, p: dict[Any, float], size: int) -> np.ndarray:
        keys = list(p)
        w = np.array([p[k] for k in keys], float)
        return np.array(keys)[self.rng.choice(len(keys), size=size, p=w / w.sum())]


# ---- 1. popular services a feed names -------------------------------------------------------


def _resolver(g: _Gen, flows_budget: int) -> dict[str, Any]:
    rng = g.rng
    text, operator = RESOLVERS[int(rng.integers(0, len(RESOLVERS)))]
    ip = int(ipaddress.IPv4Address(text))
    g.avoid.add(ip)
    conf = int(rng.integers(50, 76))
    orgs = g.pick_orgs(rng.uniform(0.35, 0.7), 8)
    hosts, owner = g.pick_clients(orgs, 1.0)
    h = len(hosts)
    # DNS over UDP: a few per mille of all flows, shared unevenly among the hosts
    n = int(np.clip(flows_budget * rng.uniform(0.003, 0.008), 400, 100_000))
    w = rng.lognormal(0, 1.0, size=h)
    per = rng.multinomial(n, w / w.sum())
    idx = np.repeat(np.arange(h), per)
    always_on = rng.random(h) < 0.3  # servers and appliances resolve around the clock
    ts = g.office_times(n, owner[idx], ~always_on[idx])
    state = np.where(rng.random(n) < rng.uniform(0.95, 0.995), _SF, _S0)
    g.flows(
        ts,
        hosts[idx],
        ip,
        53,
        _UDP,
        state,
        rng.integers(28, 95, size=n),
        rng.integers(44, 520, size=n),
        rng.lognormal(np.log(0.02), 0.9, size=n).clip(0.0005, 2.0),
        _DNS,
        6,
        owner[idx],
    )
    # DNS over TLS: stub resolvers keep a session open for minutes to hours, many a day
    m = int(min(h, max(2, round(h * rng.uniform(0.1, 0.3)))))
    dot = rng.choice(h, size=m, replace=False)
    days = max(1, int(np.ceil(g.span / DAY)))
    sess_host, sess_day = [], []
    for j in dot.tolist():
        active = rng.choice(days, size=int(rng.integers(1, days + 1)), replace=False)
        k = rng.integers(1, 7, size=len(active))
        sess_host.append(np.full(int(k.sum()), j))
        sess_day.append(np.repeat(active, k))
    sh, sd = np.concatenate(sess_host), np.concatenate(sess_day)
    ns = len(sh)
    dur = np.clip(rng.lognormal(np.log(rng.uniform(900, 2400)), 1.0, size=ns), 30, 5 * HOUR)
    local = rng.normal(13.0, 3.0, size=ns) % 24
    ts = np.mod(sd * DAY + (local - g.tz[owner[sh]]) * HOUR, g.span)
    ts = np.minimum(ts, np.maximum(g.span - dur - 1, 0))
    bout = (dur * rng.uniform(8, 90, size=ns) + rng.integers(600, 2500, size=ns)).astype(np.int64)
    bin_ = (bout * rng.uniform(1.3, 4.0, size=ns)).astype(np.int64)
    state = g.choice({_SF: 0.9, _RSTO: 0.05, _RSTR: 0.05}, ns)
    g.flows(ts, hosts[sh], ip, 853, _TCP, state, bout, bin_, dur, _SSL, 6, owner[sh])
    g.indicator(
        ip,
        "resolver",
        conf,
        f"{ACTOR} sample contacted {text} (sandbox detonation)",
        tlp="green",
        feeds=g.feeds(0.3),
        kind="listed:resolver",
    )
    return {
        "ip": text,
        "operator": operator,
        "confidence": conf,
        "dns_flows": n,
        "dot_sessions": ns,
        "hosts": h,
        "dot_hosts": m,
        "orgs": sorted(g.world.orgs[i].org_id for i in set(owner.tolist())),
    }


def _cdn(g: _Gen) -> dict[str, Any]:
    rng = g.rng
    key = CDN_NETWORKS[int(rng.integers(0, len(CDN_NETWORKS)))]
    ip = g.fresh([NETWORKS[key]])
    orgs = g.pick_orgs(rng.uniform(0.08, 0.25), 3)
    hosts, owner = g.pick_clients(orgs, 0.8)
    per = 1 + rng.poisson(rng.uniform(1.0, 3.0), size=len(hosts))
    idx = np.repeat(np.arange(len(hosts)), per)
    n = len(idx)
    ts = g.office_times(n, owner[idx])
    resp = np.clip(rng.lognormal(np.log(25e6), 1.5, size=n), 3e5, 4e9)
    rate = np.clip(rng.lognormal(np.log(3e6), 1.0, size=n), 1.5e5, 1.2e8)
    dur = np.clip(resp / rate, 0.3, 4 * HOUR)
    ts = np.minimum(ts, np.maximum(g.span - dur - 1, 0))
    state = g.choice({_SF: 0.94, _RSTO: 0.04, _RSTR: 0.02}, n)
    g.flows(
        ts,
        hosts[idx],
        ip,
        443,
        _TCP,
        state,
        np.clip(rng.lognormal(np.log(900), 0.5, size=n), 250, 5000),
        resp,
        dur,
        _SSL,
        7,
        owner[idx],
    )
    # devices polling the edge (an update agent, a sign-in widget) every few minutes for days
    pollers = []
    for oi in rng.choice(len(g.world.orgs), size=int(rng.integers(1, 4)), replace=False).tolist():
        host = int(rng.choice(g.world.orgs[oi].clients))
        interval = float(rng.uniform(120, 600))
        jitter = float(rng.uniform(0.01, 0.12))
        t0 = float(rng.uniform(0, 0.3)) * g.span
        t1 = g.span - float(rng.uniform(0, 0.1)) * g.span
        k = int((t1 - t0) / interval) + 2
        ts = t0 + np.cumsum(interval * (1 + jitter * rng.uniform(-1, 1, size=k)))
        ts = ts[ts < t1]
        k = len(ts)
        state = np.where(rng.random(k) < 0.985, _SF, _S0)
        g.flows(
            ts,
            host,
            ip,
            443,
            _TCP,
            state,
            np.clip(rng.lognormal(np.log(520), 0.15, size=k), 200, 3000),
            np.clip(rng.lognormal(np.log(2600), 0.6, size=k), 300, 200_000),
            rng.lognormal(np.log(0.25), 0.5, size=k),
            _SSL,
            7,
            oi,
        )
        pollers.append(
            {
                "host": _ip(host),
                "org_id": g.world.orgs[oi].org_id,
                "interval_s": round(interval, 1),
                "jitter": round(jitter, 3),
                "polls": k,
            }
        )
    conf = int(rng.integers(50, 76))
    g.indicator(ip, "cdn", conf, f"{ACTOR} payload download server", tlp="green", feeds=g.feeds(0.4), kind="listed:cdn")
    return {
        "ip": _ip(ip),
        "network": key,
        "confidence": conf,
        "downloads": n,
        "hosts": len(hosts),
        "pollers": pollers,
        "orgs": sorted({g.world.orgs[i].org_id for i in owner.tolist()} | {p["org_id"] for p in pollers}),
    }


def _cloud(g: _Gen) -> dict[str, Any]:
    rng = g.rng
    key = list(CLOUD_RANGES)[int(rng.integers(0, len(CLOUD_RANGES)))]
    cidrs = [ipaddress.IPv4Network(c) for c in CLOUD_RANGES[key]]
    part = NETWORKS[key]
    part = Network(
        part.key,
        part.asn,
        part.as_name,
        part.country,
        part.kind,
        tuple((str(c.network_address), str(c.broadcast_address)) for c in cidrs),
        background=False,
    )
    ip = g.fresh([part])
    orgs = np.sort(rng.choice(len(g.world.orgs), size=int(rng.integers(2, 7)), replace=False))
    hosts, owner = g.pick_clients(orgs, 0.5)
    keep = int(rng.integers(2, 9))
    hosts, owner = hosts[:keep], owner[:keep]
    days = max(1, int(np.ceil(g.span / DAY)))
    ts_all, idx_all = [], []
    for j in range(len(hosts)):
        k = int(rng.integers(2, 8))
        on = rng.choice(days, size=int(min(days, rng.integers(1, 4))), replace=False)
        d = on[rng.integers(0, len(on), size=k)]
        local = rng.normal(13.5, 2.5, size=k) % 24
        ts_all.append(np.mod(d * DAY + (local - g.tz[owner[j]]) * HOUR, g.span))
        idx_all.append(np.full(k, j))
    ts, idx = np.concatenate(ts_all), np.concatenate(idx_all)
    n = len(ts)
    state = np.where(rng.random(n) < 0.95, _SF, _RSTR)
    g.flows(
        ts,
        hosts[idx],
        ip,
        443,
        _TCP,
        state,
        np.clip(rng.lognormal(np.log(1200), 0.6, size=n), 200, 20_000),
        np.clip(rng.lognormal(np.log(15_000), 1.2, size=n), 500, 5e6),
        np.clip(rng.lognormal(np.log(0.8), 1.0, size=n), 0.05, 120),
        _SSL,
        8,
        owner[idx],
    )
    conf = int(rng.integers(50, 76))
    g.indicator(
        ip, "cloud", conf, f"{ACTOR} staging server (cloud)", tlp="green", feeds=g.feeds(0.5), kind="listed:cloud"
    )
    return {
        "ip": _ip(ip),
        "network": key,
        "confidence": conf,
        "sessions": n,
        "hosts": len(hosts),
        "orgs": sorted({g.world.orgs[i].org_id for i in owner.tolist()}),
    }


# ---- 2. refused callbacks -------------------------------------------------------------------


def _refused(g: _Gen, infected: Org, stray: Org | None) -> dict[str, Any]:
    rng = g.rng
    net = NETWORKS[VPS_NETWORKS[int(rng.integers(0, len(VPS_NETWORKS)))]]
    c2 = g.fresh([net])
    port = int(rng.choice(RAT_PORTS))
    host = int(rng.choice(infected.clients))
    refused = bool(rng.random() < 0.5)  # the port is closed (RST) or the address drops (no reply)
    main, other = (_REJ, _S0) if refused else (_S0, _REJ)
    other_share = float(rng.choice([0.0, rng.uniform(0.0, 0.08)]))
    days = g.span / DAY
    fast = days < 2 or rng.random() < 0.5
    if fast:
        # a RAT with a short reconnect sleep: bursts of attempts every 1-3 s while the host is on
        total = int(rng.integers(200, 900))
        bursts = int(rng.integers(1, 5))
        sizes = rng.multinomial(total - 20 * bursts, np.ones(bursts) / bursts) + 20
        base = float(rng.uniform(1.0, 3.0))
        jitter = float(rng.uniform(0.05, 0.35))
        parts = []
        for k in sizes.tolist():
            t0 = float(rng.uniform(0, max(1.0, g.span - k * base * 1.5 - 60)))
            parts.append(t0 + np.cumsum(base * (1 + jitter * rng.uniform(-1, 1, size=k))))
        ts = np.sort(np.concatenate(parts))
        pattern = {
            "pattern": "fast retries",
            "interval_s": round(base, 2),
            "jitter": round(jitter, 3),
            "bursts": bursts,
        }
    else:
        # a beacon whose C2 is gone: every few minutes, for days (hundreds of attempts, also
        # when the host is a laptop that is only on during working hours)
        jitter = float(rng.uniform(0.02, 0.3))
        span_d = float(rng.uniform(2.0, min(days, 5.0)))
        base = float(rng.uniform(120, max(150.0, min(900.0, span_d * DAY * 0.4 / 250))))
        t0 = float(rng.uniform(0, g.span - span_d * DAY)) if g.span > span_d * DAY else 0.0
        k = int(span_d * DAY / base) + 2
        ts = t0 + np.cumsum(base * (1 + jitter * rng.uniform(-1, 1, size=k)))
        ts = ts[ts < min(g.span, t0 + span_d * DAY)]
        if rng.random() < 0.5:  # a laptop: only while it is on, on working days' hours
            local = ((ts / HOUR) + g.tz[infected.index]) % 24
            ts = ts[(local >= 7.5) & (local <= 19.5)]
        pattern = {
            "pattern": "slow retries",
            "interval_s": round(base, 1),
            "jitter": round(jitter, 3),
            "days": round(span_d, 2),
        }
    n = len(ts)
    state = np.where(rng.random(n) < other_share, other, main)
    g.flows(ts, host, c2, port, _TCP, state, 0, 0, 0.0, 0, 15, infected.index)
    out: dict[str, Any] = {
        "org_id": infected.org_id,
        "host": _ip(host),
        "c2": _ip(c2),
        "port": port,
        "attempts": n,
        "state": F.STATES[main],
        **pattern,
    }
    if stray is not None:
        k = int(rng.integers(1, 3))
        h2 = int(rng.choice(stray.clients))
        t = float(rng.uniform(0, g.span - 120)) + np.array([0.0, float(rng.uniform(1, 40))])[:k]
        g.flows(t, h2, c2, port, _TCP, main, 0, 0, 0.0, 0, 16, stray.index)
        out["stray"] = {"org_id": stray.org_id, "host": _ip(h2), "attempts": k}
    conf = int(rng.integers(60, 91))
    g.indicator(
        c2,
        "c2",
        conf,
        f"{ACTOR} RAT C2 server ({net.as_name}, AS{net.asn})",
        tlp="amber",
        feeds=g.feeds(0.7),
        kind="actor:c2:vps",
    )
    out["confidence"] = conf
    return out


# ---- 3. an indicator inside a registered organization -----------------------------------------


def _relay_candidates(o: Org) -> np.ndarray:
    """Addresses of ``o`` that can serve as a relay: published servers and secondary routers that
    carry nobody else's traffic (not NAT addresses, not the VPN appliance remote workers use)."""
    cand = np.concatenate([o.servers, o.edges[1:]]).astype(np.uint64)
    return np.setdiff1d(cand, np.asarray(o.clients, np.uint64))


def _relay(g: _Gen, org: Org) -> dict[str, Any]:
    rng = g.rng
    cand = _relay_candidates(org)
    relay = int(rng.choice(cand))
    kind = "router" if relay in set(org.edges.tolist()) else "server"
    days = g.span / DAY
    # its own outbound connections: web traffic to CDNs, clouds and the rest of the internet,
    # some to hosts of other registered organizations
    n = int(rng.integers(30, 200) * max(days, 1.0))
    where = g.choice({"popular": 0.55, "tail": 0.35, "org": 0.10}, n)
    dst = np.empty(n, np.uint64)
    owner = np.full(n, org.index, np.int32)
    pop = where == "popular"
    dst[pop] = g.bg.popular[rng.choice(len(g.bg.popular), size=int(pop.sum()), p=g.bg.popular_p)]
    tail = where == "tail"
    dst[tail] = g.bg.tail[rng.integers(0, len(g.bg.tail), size=int(tail.sum()))]
    others = [o for o in g.world.orgs if o.index != org.index]
    peer_orgs = [
        others[i] for i in rng.choice(len(others), size=min(len(others), int(rng.integers(3, 13))), replace=False)
    ]
    peer_hosts = np.concatenate([np.concatenate([o.servers, o.edges]) for o in peer_orgs]).astype(np.uint64)
    po = where == "org"
    dst[po] = peer_hosts[rng.integers(0, len(peer_hosts), size=int(po.sum()))]
    ts = np.sort(rng.uniform(0, g.span, size=n))
    port = g.choice({443: 0.72, 80: 0.2, 8443: 0.03, 8080: 0.02, 22: 0.03}, n).astype(np.int32)
    svc = np.select([np.isin(port, [443, 8443]), np.isin(port, [80, 8080]), port == 22], [_SSL, _HTTP, _SSH], 0)
    state = g.choice({_SF: 0.88, _S0: 0.05, _REJ: 0.03, _RSTO: 0.04}, n)
    g.flows(
        ts,
        relay,
        dst,
        port,
        _TCP,
        state,
        np.clip(rng.lognormal(np.log(700), 1.2, size=n), 40, 5e6),
        np.clip(rng.lognormal(np.log(8000), 1.8, size=n), 40, 5e8),
        np.clip(rng.lognormal(np.log(1.5), 1.4, size=n), 0.01, 3 * HOUR),
        svc,
        17,
        owner,
    )
    # a few connections in, from the actor's upstream hops: one or two each, within an hour
    k = int(rng.integers(2, 7))
    ups = [g.fresh([NETWORKS[UPSTREAM_NETWORKS[int(rng.integers(0, len(UPSTREAM_NETWORKS)))]]]) for _ in range(k)]
    lport = int(rng.choice([443, 8443, 1080, 8888, 22]))
    n_in = 0
    for u in ups:
        c = int(rng.integers(1, 3))
        day = float(rng.integers(0, max(1, int(days))))
        t = day * DAY + rng.uniform(1 * HOUR, 22 * HOUR) + np.sort(rng.uniform(0, 1800, size=c))
        t = np.minimum(t, g.span - 600)
        g.flows(
            t,
            u,
            relay,
            lport,
            _TCP,
            _SF,
            np.clip(rng.lognormal(np.log(3000), 1.0, size=c), 300, 1e6),
            np.clip(rng.lognormal(np.log(20_000), 1.5, size=c), 300, 5e7),
            np.clip(rng.lognormal(np.log(30), 1.2, size=c), 1, 1800),
            _SSL if lport in (443, 8443) else 0,
            18,
            org.index,
        )
        n_in += c
    conf = int(rng.integers(55, 81))
    g.indicator(
        relay,
        "relay",
        conf,
        f"{ACTOR} C2 relay (compromised {kind}, AS{org.network.asn})",
        tlp="amber",
        feeds=g.feeds(0.7),
        kind=f"actor:c2:{kind}",
    )
    return {
        "org_id": org.org_id,
        "ip": _ip(relay),
        "device": kind,
        "confidence": conf,
        "outbound": n,
        "inbound": n_in,
        "upstream": [_ip(u) for u in ups],
        "listen_port": lport,
        "peer_orgs": sorted(o.org_id for o in peer_orgs),
        "peer_orgs_contacted": sorted(
            {o.org_id for o in peer_orgs if np.isin(dst[po], np.concatenate([o.servers, o.edges])).any()}
        ),
    }


# ---- 4. research scanners a feed lists --------------------------------------------------------


def _scanner_addresses(g: _Gen) -> list[tuple[int, str]]:
    rng = g.rng
    out: list[tuple[int, str]] = []
    n_censys, n_drift, n_shodan = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 3))
    for operator, count in (("Censys", n_censys), ("Driftnet", n_drift)):
        for _ in range(count):
            net = ipaddress.IPv4Network(SCANNER_RANGES[operator][int(rng.integers(0, len(SCANNER_RANGES[operator])))])
            while True:
                v = int(net.network_address) + int(rng.integers(1, 255))
                if v not in g.avoid:
                    g.avoid.add(v)
                    out.append((v, operator))
                    break
    free = [int(ipaddress.IPv4Address(a)) for a in SHODAN_CRAWLERS if int(ipaddress.IPv4Address(a)) not in g.avoid]
    for v in rng.choice(free, size=min(n_shodan, len(free)), replace=False).tolist():
        g.avoid.add(int(v))
        out.append((int(v), "Shodan"))
    return out


def _scanners(g: _Gen) -> dict[str, Any]:
    rng = g.rng
    listed = []
    touched: dict[str, int] = {}
    for ip, operator in _scanner_addresses(g):
        orgs = g.pick_orgs(rng.uniform(0.25, 0.7), 5)
        src_t, port_t, org_t = [], [], []
        for oi in orgs.tolist():
            o = g.world.orgs[oi]
            # any address of the organization's blocks, its published hosts more often
            s, e = o.v4_blocks[int(rng.integers(0, len(o.v4_blocks)))]
            k = 1 + int(rng.poisson(rng.uniform(0.3, 2.5)))
            addr = np.concatenate(
                [
                    rng.integers(s + 1, e, size=k, dtype=np.int64).astype(np.uint64),
                    rng.choice(np.concatenate([o.edges, o.servers]), size=int(rng.integers(0, 3))),
                ]
            )
            for a in np.unique(addr).tolist():
                ports = rng.choice(
                    len(SCANNER_PORTS), size=int(min(len(SCANNER_PORTS), rng.geometric(0.35))), replace=False
                )
                rounds = 1 + int(rng.poisson(0.4))  # the same ports again another day
                pi = np.tile(ports, rounds)
                src_t.append(np.full(len(pi), a, np.uint64))
                port_t.append(pi)
                org_t.append(np.full(len(pi), oi, np.int32))
            touched[o.org_id] = touched.get(o.org_id, 0) + 1
        dst = np.concatenate(src_t)
        pi = np.concatenate(port_t)
        org = np.concatenate(org_t)
        n = len(dst)
        port = SCANNER_PORTS[pi]
        udp = SCANNER_UDP[pi]
        ts = rng.uniform(0, g.span, size=n)
        # open where the organization exposes a service there: the edge's product ports, web/mail/ssh on servers
        edge_open = np.zeros(n, bool)
        srv_open = np.zeros(n, bool)
        for oi in np.unique(org).tolist():
            o = g.world.orgs[oi]
            sel = org == oi
            tcp_p = list(o.edge_product[1]) + [80]
            udp_p = list(o.edge_product[2])
            is_edge = np.isin(dst[sel], o.edges)
            edge_open[sel] = is_edge & (
                (~udp[sel] & np.isin(port[sel], tcp_p)) | (udp[sel] & np.isin(port[sel], udp_p))
            )
            srv_open[sel] = np.isin(dst[sel], o.servers) & ~udp[sel] & np.isin(port[sel], [80, 443, 25, 22])
        open_ = edge_open | srv_open
        closed = np.where(rng.random(n) < rng.uniform(0.4, 0.7), _S0, _REJ)
        state = np.where(open_, _SF, np.where(udp, _S0, closed))
        req = np.where(port == 80, rng.integers(70, 260, size=n), rng.integers(0, 620, size=n))
        resp = rng.integers(0, 4500, size=n)
        svc = np.select(
            [
                open_ & np.isin(port, [443, 4433, 8443, 10443]),
                open_ & (port == 80),
                open_ & (port == 22),
                udp & np.isin(port, [500, 4500]),
            ],
            [_SSL, _HTTP, _SSH, F.SERVICES.index("ipsec")],
            0,
        )
        dur = np.where(open_, rng.uniform(0.05, 2.5, size=n), 0.0)
        g.flows(ts, ip, dst, port, np.where(udp, _UDP, _TCP), state, req, resp, dur, svc, 9, org)
        conf = int(rng.integers(50, 80))
        g.indicator(
            ip,
            "research_scanner",
            conf,
            f"scanning activity attributed to {ACTOR} (honeypot hits)",
            tlp="clear",
            feeds=g.feeds(0.3),
            kind="listed:scanner",
        )
        listed.append({"ip": _ip(ip), "operator": operator, "confidence": conf, "probes": n, "orgs": len(orgs)})
    return {"scanners": listed, "orgs": sorted(touched)}


# ---- all of it ------------------------------------------------------------------------------


def generate_real_traffic(
    rng: np.random.Generator,
    world: World,
    bg: Background,
    *,
    span: float,
    epoch_s: float,
    start: dt.datetime,
    flows: int,
) -> RealTraffic:
    """The four shapes for ``world`` (see the module doc), flows in true time."""
    g = _Gen(rng, world, bg, span, start)
    # one stream per shape: the flows budget (which sizes the resolver's DNS) changes no other shape
    streams = iter([np.random.default_rng(s) for s in np.random.SeedSequence(int(rng.integers(0, 2**63))).spawn(6)])

    def on(shape: Any, *args: Any) -> Any:
        g.rng = next(streams)
        return shape(g, *args)

    truth: dict[str, Any] = {}
    intended: dict[str, str] = {}
    truth["listed_services"] = {"resolver": on(_resolver, flows), "cdn": on(_cdn), "cloud": on(_cloud)}
    # organizations for shapes 2 and 3: uninvolved ones, each used once
    spare = [world.orgs[i] for i in rng.permutation(len(world.orgs)).tolist() if world.orgs[i].scenario == "none"]
    infected = spare.pop(0) if spare else None
    relay_org = next((o for o in spare if len(_relay_candidates(o))), None)
    if relay_org is not None:
        spare.remove(relay_org)
    stray = spare.pop(0) if spare else None
    refused = on(_refused, infected, stray) if infected is not None else None
    relay = on(_relay, relay_org) if relay_org is not None else None
    if refused is not None and infected is not None:
        truth["refused_callbacks"] = refused
        intended[infected.org_id] = "compromised"
    if relay is not None and relay_org is not None:
        truth["relay"] = relay
        intended[relay_org.org_id] = "compromised"
    truth["research_scanners"] = on(_scanners)
    frame = F.concat(g.parts)
    frame["ts"] = frame["ts"] + np.int64(round(epoch_s * 1e6))
    frame = F.take(frame, np.argsort(frame["ts"], kind="stable"))
    truth["flows"] = {F.LABELS[int(k)]: int(c) for k, c in zip(*np.unique(frame["label"], return_counts=True))}
    return RealTraffic(frame, g.indicators, truth, intended)


__all__ = ["RealTraffic", "generate_real_traffic", "RESOLVERS", "SCANNER_RANGES", "SHODAN_CRAWLERS"]
