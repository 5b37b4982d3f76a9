"""The actor's activity against its victims, and the ground truth it implies.

Per victim, in order: reconnaissance (horizontal and vertical scans of the edge, mostly S0/REJ,
banner grabs with a few hundred bytes), exploitation of the internet-facing appliance
(completed sessions carrying a request payload to 443/8443/4433/10443 or IKE 500/4500), and
for compromised organizations callbacks from the exploited appliance or an internal host:
jittered beacons, SoftEther-VPN-like tunnels (443/992/1194/5555) and exfiltration bursts.
Actor servers are only used inside their active window, so rotation shows in the data.
Volumes here do not depend on the ``flows`` budget: the campaign is what it is, the
background fills the rest.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np

from . import frames as F
from .world import ActorIP, Org, World

HOUR = 3600.0
DAY = 86400.0
EDGE_SCAN_PORTS = (22, 80, 443, 4433, 8080, 8443, 10443, 4443, 9443)
COMMON_PORTS = np.array(
    [
        21,
        22,
        23,
        25,
        53,
        80,
        110,
        111,
        135,
        139,
        143,
        161,
        389,
        443,
        445,
        465,
        500,
        587,
        993,
        995,
        1080,
        1194,
        1433,
        1723,
        3128,
        3306,
        3389,
        4433,
        4443,
        4500,
        5060,
        5432,
        5555,
        5900,
        6379,
        7547,
        8000,
        8008,
        8080,
        8081,
        8443,
        8888,
        9000,
        9090,
        9200,
        9443,
        10000,
        10443,
    ]
)


@dataclass
class CampaignResult:
    frame: F.Frame
    hosts: dict[str, str]  # visible host IP -> strongest intended verdict


_RANK = {"none": 0, "reconnaissance": 1, "exploitation_attempt": 2, "compromised": 3}


def _mark(hosts: dict[str, str], ip: int, verdict: str) -> None:
    key = str(ipaddress.IPv4Address(int(ip)))
    if _RANK[verdict] > _RANK[hosts.get(key, "none")]:
        hosts[key] = verdict


def _flows(
    rng: np.random.Generator,
    ts: np.ndarray,
    src: np.ndarray | int,
    dst: np.ndarray | int,
    dport: np.ndarray | int,
    proto: np.ndarray | int,
    state: np.ndarray | int,
    bout: np.ndarray | int,
    bin_: np.ndarray | int,
    dur: np.ndarray | float,
    service: np.ndarray | int,
    label: int,
    org: Org,
) -> F.Frame:
    n = len(ts)
    f = F.empty(n)
    f["ts"] = np.asarray(ts * 1e6, dtype=np.int64)

    def b(v: np.ndarray | float | int, dtype: type) -> np.ndarray:
        return np.broadcast_to(np.asarray(v), (n,)).astype(dtype)

    f["s_lo"], f["d_lo"] = b(src, np.uint64), b(dst, np.uint64)
    f["sport"] = rng.integers(32768, 61000, size=n).astype(np.int32)
    f["dport"] = b(dport, np.int32)
    f["proto"], f["state"], f["service"] = b(proto, np.uint8), b(state, np.uint8), b(service, np.uint8)
    f["bout"], f["bin"] = b(bout, np.int64), b(bin_, np.int64)
    f["dur"] = np.round(b(dur, np.float64), 6)
    f["pout"] = F.packets(rng, f["bout"], f["state"], f["proto"], True)
    f["pin"] = F.packets(rng, f["bin"], f["state"], f["proto"], False)
    f["sensor"][:] = org.sensor
    f["label"][:] = label
    f["org"][:] = org.index
    return f


def _active(
    actor: list[ActorIP],
    role: str,
    t: float,
    rng: np.random.Generator,
    *,
    known: bool = True,
    exclude: set[int] | None = None,
) -> ActorIP:
    pool = [
        a
        for a in actor
        if a.role == role
        and a.active_from <= t < a.active_until
        and not a.shared
        and (a.in_intel or not known)
        and a.ip not in (exclude or set())
    ]
    if not pool:
        pool = [a for a in actor if a.role == role and a.active_from <= t < a.active_until and not a.shared]
    if not pool:  # past the window's end: the whole-window server of that role
        pool = [a for a in actor if a.role == role and not a.shared and a.in_intel][:1]
    return pool[int(rng.integers(0, len(pool)))]


_TCP, _UDP = 0, 1
_SF, _S0, _REJ, _RSTO, _S1 = (F.STATES.index(s) for s in ("SF", "S0", "REJ", "RSTO", "S1"))
_SSL, _HTTP, _IPSEC = (F.SERVICES.index(s) for s in ("ssl", "http", "ipsec"))


def _recon(rng: np.random.Generator, world: World, org: Org, t0: float, hosts: dict[str, str]) -> list[F.Frame]:
    scanner = _active(world.actor, "scan", t0, rng)
    open_tcp = set(org.edge_product[1])
    out = []
    # horizontal: a few edge ports over many addresses of one block
    s, e = org.v4_blocks[int(rng.integers(0, len(org.v4_blocks)))]
    n_addr = int(min(e - s - 1, rng.integers(16, 200)))
    targets = np.unique(
        np.concatenate([rng.choice(np.arange(s + 1, e, dtype=np.uint64), size=n_addr, replace=False), org.edges[:1]])
    )
    ports = np.unique(
        np.concatenate([[org.edge_product[1][0]], rng.choice(EDGE_SCAN_PORTS, size=int(rng.integers(1, 4)))])
    )
    tt, pp = np.meshgrid(targets, ports)
    tt, pp = tt.ravel(), pp.ravel()
    n = len(tt)
    ts = t0 + np.sort(rng.uniform(0, rng.uniform(60, 1800), size=n))
    is_open = np.isin(tt, org.edges) & np.isin(pp, list(open_tcp))
    state = np.where(is_open, _SF, np.where(rng.random(n) < 0.7, _S0, _REJ))
    bout = np.where(is_open, rng.integers(0, 300, size=n), 0)
    bin_ = np.where(is_open, rng.integers(0, 400, size=n), 0)
    dur = np.where(is_open, rng.uniform(0.05, 2.0, size=n), np.where(state == _S0, 0.0, rng.uniform(0, 0.3, size=n)))
    out.append(_flows(rng, ts, scanner.ip, tt, pp, _TCP, state, bout, bin_, dur, np.where(is_open, _SSL, 0), 10, org))
    for t in targets:
        _mark(hosts, t, "reconnaissance")
    # vertical: many ports of one edge appliance, plus IKE probes where it speaks IKE
    if rng.random() < 0.6:
        edge = org.edges[int(rng.integers(0, len(org.edges)))]
        k = int(rng.integers(30, 300))
        common = rng.choice(COMMON_PORTS, size=min(k, len(COMMON_PORTS)), replace=False)
        ports = np.unique(np.concatenate([common, rng.integers(1, 65536, size=max(0, k - len(common)))]))
        n = len(ports)
        t1 = t0 + rng.uniform(0, 6 * HOUR)
        ts = t1 + np.sort(rng.uniform(0, rng.uniform(30, 600), size=n))
        is_open = np.isin(ports, list(open_tcp))
        state = np.where(is_open, _SF, np.where(rng.random(n) < 0.5, _S0, _REJ))
        bout = np.where(is_open, rng.integers(0, 200, size=n), 0)
        bin_ = np.where(is_open, rng.integers(0, 400, size=n), 0)
        dur = np.where(is_open, rng.uniform(0.05, 1.0, size=n), 0.0)
        out.append(_flows(rng, ts, scanner.ip, edge, ports, _TCP, state, bout, bin_, dur, 0, 10, org))
        _mark(hosts, edge, "reconnaissance")
        for up in org.edge_product[2]:
            ts = np.array([t1 + rng.uniform(0, 600)])
            out.append(
                _flows(
                    rng,
                    ts,
                    scanner.ip,
                    edge,
                    up,
                    _UDP,
                    _SF,
                    rng.integers(200, 400),
                    rng.integers(0, 400),
                    rng.uniform(0.01, 0.5),
                    _IPSEC,
                    10,
                    org,
                )
            )
    return out


def _exploit(
    rng: np.random.Generator, world: World, org: Org, t1: float, hosts: dict[str, str]
) -> tuple[list[F.Frame], int]:
    ex = _active(world.actor, "exploit", t1, rng)
    edge = org.edges[int(rng.integers(0, len(org.edges)))]
    out = []
    waves = 1 + int(rng.random() < 0.3)
    for w in range(waves):
        tw = t1 + w * rng.uniform(6 * HOUR, 30 * HOUR)
        if tw > world_span(world) - HOUR:
            break
        if w:
            ex = _active(world.actor, "exploit", tw, rng)
        n = int(rng.integers(2, 13))
        ts = tw + np.sort(rng.uniform(0, rng.uniform(60, 1800), size=n))
        udp = bool(org.edge_product[2]) and rng.random() < 0.2
        if udp:
            port = np.array(org.edge_product[2])[rng.integers(0, len(org.edge_product[2]), size=n)]
            proto, svc = _UDP, _IPSEC
            state = np.full(n, _SF)
        else:
            port = np.array(org.edge_product[1])[rng.integers(0, len(org.edge_product[1]), size=n)]
            proto, svc = _TCP, _SSL
            r = rng.random(n)
            state = np.where(r < 0.85, _SF, np.where(r < 0.95, _RSTO, _S1))
        bout = np.clip(rng.lognormal(np.log(6000), 1.2, size=n), 1200, 500_000).astype(np.int64)
        bin_ = np.clip(rng.lognormal(np.log(3000), 1.2, size=n), 200, 200_000).astype(np.int64)
        dur = rng.uniform(0.3, 30, size=n)
        out.append(_flows(rng, ts, ex.ip, edge, port, proto, state, bout, bin_, dur, svc, 11, org))
    _mark(hosts, edge, "exploitation_attempt")
    return out, int(edge)


def world_span(world: World) -> float:
    return max(a.active_until for a in world.actor)


def _beacons(rng: np.random.Generator, start: float, end: float) -> np.ndarray:
    interval = float(rng.choice([60, 120, 300, 600, 900, 1800], p=[0.1, 0.15, 0.35, 0.2, 0.1, 0.1]))
    jitter = rng.uniform(0.05, 0.4)
    n = int((end - start) / interval) + 2
    gaps = interval * (1 + jitter * rng.uniform(-1, 1, size=n))
    ts = start + np.cumsum(gaps)
    return ts[ts < end]


def _compromise(
    rng: np.random.Generator, world: World, org: Org, t2: float, t_end: float, edge: int, hosts: dict[str, str]
) -> list[F.Frame]:
    if rng.random() < 0.7 or (not org.nat and len(org.internal_servers) == 0):
        host = edge  # SoftEther on the appliance itself
    else:
        host = int(org.clients[0]) if org.nat else int(org.internal_servers[0])
    _mark(hosts, host, "compromised")
    out = []
    # beacons to C2, switching server when one rotates out
    cur = t2
    while cur < t_end - 60:
        c2 = _active(world.actor, "c2", cur, rng)
        seg_end = min(c2.active_until, t_end)
        ts = _beacons(rng, cur, seg_end)
        n = len(ts)
        if n:
            port = rng.choice([443, 8443, 80], p=[0.7, 0.1, 0.2])
            r = rng.random(n)
            state = np.where(r < 0.95, _SF, np.where(r < 0.98, _S0, _RSTO))
            ok = state == _SF
            bout = np.where(ok, rng.lognormal(np.log(400), 0.6, size=n), 0).astype(np.int64)
            task = rng.random(n) < 0.05
            bin_ = np.where(
                ok,
                np.where(task, rng.lognormal(np.log(60_000), 1.5, size=n), rng.lognormal(np.log(600), 1.0, size=n)),
                0,
            ).astype(np.int64)
            dur = np.where(ok, rng.lognormal(np.log(0.5), 0.8, size=n), 0.0)
            out.append(
                _flows(rng, ts, host, c2.ip, port, _TCP, state, bout, bin_, dur, _HTTP if port == 80 else _SSL, 12, org)
            )
        cur = max(seg_end, cur + 60)
    # some also beacon, slowly, through the CDN-fronted C2 that benign users share
    shared = [a for a in world.actor if a.shared]
    if shared and rng.random() < 0.3:
        ts = _beacons(rng, t2 + rng.uniform(0, HOUR), t_end)
        n = len(ts)
        out.append(
            _flows(
                rng,
                ts,
                host,
                shared[0].ip,
                443,
                _TCP,
                _SF,
                rng.lognormal(np.log(500), 0.5, size=n).astype(np.int64),
                rng.lognormal(np.log(900), 0.8, size=n).astype(np.int64),
                rng.uniform(0.2, 3, size=n),
                _SSL,
                12,
                org,
            )
        )
    # SoftEther-like VPN tunnels: long sessions, heavy both ways
    n_tun = max(1, int(rng.poisson(1.5 * (t_end - t2) / DAY)))
    ts = np.sort(rng.uniform(t2, t_end, size=n_tun))
    vpn = [_active(world.actor, "vpn", t, rng) for t in ts]
    port = rng.choice([443, 992, 1194, 5555], p=[0.4, 0.2, 0.15, 0.25], size=n_tun)
    dur = np.minimum(rng.uniform(0.5 * HOUR, 10 * HOUR, size=n_tun), np.maximum(t_end - ts, 60))
    bout = rng.lognormal(np.log(20e6), 1.0, size=n_tun).astype(np.int64)
    bin_ = rng.lognormal(np.log(5e6), 1.0, size=n_tun).astype(np.int64)
    svc = np.where(np.isin(port, [443, 992]), _SSL, 0)
    out.append(
        _flows(
            rng,
            ts,
            host,
            np.array([v.ip for v in vpn], dtype=np.uint64),
            port,
            _TCP,
            _SF,
            bout,
            bin_,
            dur,
            svc,
            13,
            org,
        )
    )
    # exfiltration bursts
    for _ in range(int(rng.integers(1, 4))):
        tb = rng.uniform(t2, max(t2 + 60, t_end - HOUR))
        dst = _active(world.actor, rng.choice(["c2", "vpn"]), tb, rng)
        n = int(rng.integers(3, 21))
        ts = tb + np.sort(rng.uniform(0, rng.uniform(600, 3600), size=n))
        bout = rng.lognormal(np.log(50e6), 1.0, size=n).astype(np.int64)
        bin_ = rng.integers(5_000, 50_000, size=n)
        out.append(
            _flows(rng, ts, host, dst.ip, 443, _TCP, _SF, bout, bin_, rng.uniform(20, 900, size=n), _SSL, 14, org)
        )
    return out


def generate_campaign(rng: np.random.Generator, world: World, span: float, epoch_s: float) -> CampaignResult:
    """All actor flows (true time) for the victims of ``world``, with host-level truth."""
    parts: list[F.Frame] = []
    hosts: dict[str, str] = {}
    for org in world.orgs:
        if org.scenario == "none":
            continue
        comp = org.scenario == "compromised"
        expl = org.scenario in ("compromised", "exploitation_attempt")
        latest = 0.45 if comp else 0.85
        t0 = rng.uniform(0.02, latest) * span
        if not expl or rng.random() < 0.85:
            parts += _recon(rng, world, org, t0, hosts)
            if rng.random() < 0.4:  # the actor comes back, often from another server
                parts += _recon(rng, world, org, min(span - HOUR, t0 + rng.uniform(DAY / 2, 3 * DAY)), hosts)
        if expl:
            t1 = min(t0 + rng.uniform(0.5 * HOUR, (12 if comp else 48) * HOUR), 0.93 * span)
            ex, edge = _exploit(rng, world, org, t1, hosts)
            parts += ex
            if comp:
                # callbacks need time to show: keep at least a fifth of the window after them
                t2 = min(t1 + rng.uniform(120, 6 * HOUR), 0.7 * span)
                t_end = span if rng.random() < 0.8 else rng.uniform(min(t2 + DAY, span), span)
                t_end = max(t_end, t2 + 0.2 * span)
                parts += _compromise(rng, world, org, t2, t_end, edge, hosts)
    frame = F.concat(parts)
    frame["ts"] = frame["ts"] + np.int64(epoch_s * 1e6)
    order = np.argsort(frame["ts"], kind="stable")
    return CampaignResult(F.take(frame, order), hosts)


__all__ = ["CampaignResult", "generate_campaign"]
