"""Benign traffic, generated hour by hour in vectorized numpy (no Python loop per flow).

What makes the hunt hard is here: diurnal and weekly rhythm in each organization's local time,
NAT addresses carrying whole offices, CDN and cloud addresses everybody talks to (one of them
also fronts the actor's C2), internet-wide scanners probing every organization's edge, remote
workers holding long VPN sessions to the same appliances the actor exploits, benign outbound
VPN/tunnel protocols (OpenVPN, IPsec, SoftEther's 5555/992), the actor's retired addresses now
serving benign sites, and benign addresses some feed wrongly lists.
"""

from __future__ import annotations

import numpy as np

from . import frames as F
from .geo import NETWORKS, networks_of_kind, random_v4, random_v6
from .world import World

_TZ = {"TW": 8, "HK": 8, "KR": 9, "LA": 7, "DJ": 3, "KE": 3, "RW": 2, "US": -6}

# outbound client traffic: (proto, port, service, weight, long-lived)
_OUT = [
    ("tcp", 443, "ssl", 0.52, False),
    ("tcp", 80, "http", 0.11, False),
    ("udp", 53, "dns", 0.12, False),
    ("udp", 443, "quic", 0.07, False),
    ("udp", 123, "ntp", 0.02, False),
    ("tcp", 993, "imap", 0.02, False),
    ("tcp", 22, "ssh", 0.01, True),
    ("tcp", 25, "smtp", 0.01, False),
    ("tcp", 8080, "http", 0.01, False),
    ("tcp", 5222, "", 0.01, True),
    ("udp", 3478, "", 0.01, True),
    ("tcp", 8443, "ssl", 0.01, False),
    ("udp", 1194, "openvpn", 0.006, True),
    ("tcp", 1194, "openvpn", 0.003, True),
    ("udp", 500, "ipsec", 0.004, False),
    ("udp", 4500, "ipsec", 0.006, True),
    ("tcp", 5555, "", 0.002, True),
    ("tcp", 992, "ssl", 0.002, True),
    ("tcp", 10443, "ssl", 0.002, True),
]
_IN = [
    ("tcp", 443, "ssl", 0.5),
    ("tcp", 80, "http", 0.25),
    ("tcp", 25, "smtp", 0.12),
    ("tcp", 22, "ssh", 0.05),
    ("udp", 53, "dns", 0.08),
]
_SCAN_PORTS = np.array(
    [
        22,
        23,
        80,
        443,
        445,
        3389,
        8080,
        8443,
        10443,
        4433,
        7547,
        2323,
        6379,
        9200,
        5900,
        21,
        25,
        1433,
        3306,
        8888,
        500,
        161,
        53,
        123,
        1900,
    ]
)
_SCAN_UDP = np.isin(_SCAN_PORTS, [500, 161, 53, 123, 1900])

KINDS = ("out", "in", "vpn", "scan", "shared", "stale", "wrong")


def _table(rows: list[tuple]) -> tuple[np.ndarray, ...]:
    proto = np.array([F.PROTOS.index(r[0]) for r in rows], np.uint8)
    port = np.array([r[1] for r in rows], np.int32)
    svc = np.array([F.SERVICES.index(r[2]) for r in rows], np.uint8)
    w = np.array([r[3] for r in rows], float)
    longl = np.array([r[4] if len(r) > 4 else False for r in rows], bool)
    return proto, port, svc, w / w.sum(), longl


def _flat(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = np.array([len(a) for a in arrays], np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.concatenate(arrays).astype(np.uint64), starts, counts


class Background:
    """Samples benign flows for given hours; everything per-organization is precomputed."""

    def __init__(
        self, world: World, rng: np.random.Generator, *, scanner_share: float, v6_flow_share: float, long_share: float
    ) -> None:
        self.world = world
        orgs = world.orgs
        self.n_orgs = len(orgs)
        self.weight = np.array([o.weight for o in orgs])
        self.tz = np.array([_TZ.get(o.country, 0) for o in orgs])
        self.clients = _flat([o.clients for o in orgs])
        self.servers = _flat([np.concatenate([o.servers, o.edges]) for o in orgs])
        self.edge0 = np.array([o.edges[0] for o in orgs], np.uint64)
        self.employees = _flat(world.employee_ips)
        self.v6_hi = np.array([o.v6_prefix or 0 for o in orgs], np.uint64)
        self.has_v6 = np.array([o.v6_prefix is not None for o in orgs])
        vpn_port, vpn_udp = [], []
        for o in orgs:
            tcp, udp = o.edge_product[1], o.edge_product[2]
            if udp and rng.random() < 0.4:
                vpn_port.append(udp[-1])
                vpn_udp.append(True)
            else:
                vpn_port.append(tcp[-1])
                vpn_udp.append(False)
        self.vpn_port = np.array(vpn_port, np.int32)
        self.vpn_udp = np.array(vpn_udp)
        blocks = [(s, e) for o in orgs for s, e in o.v4_blocks]
        self.block_org = np.array([o.index for o in orgs for _ in o.v4_blocks], np.int32)
        self.block_start = np.array([b[0] for b in blocks], np.uint64)
        self.block_size = np.array([b[1] - b[0] + 1 for b in blocks], np.float64)
        # popular destinations: a Zipf-ranked pool of CDN/cloud addresses, plus a long tail
        self.popular = random_v4(rng, networks_of_kind("cdn", "cloud"), 4000)
        self.popular_p = 1.0 / np.arange(1, len(self.popular) + 1) ** 1.1
        self.popular_p /= self.popular_p.sum()
        tail_nets = networks_of_kind("isp", "vps", "academic", "government", "research", "residential")
        self.tail = random_v4(rng, tail_nets, 20000)
        self.v6_pop = random_v6(rng, [NETWORKS["google"], NETWORKS["amazon"]], 500)
        self.remote_nets = networks_of_kind("isp", "residential")
        self.actor_set = np.array(sorted({a.ip for a in world.actor}), np.uint64)
        shared = [a.ip for a in world.actor if a.shared]
        self.shared_ip = np.uint64(shared[0]) if shared else None
        self.out = _table(_OUT)
        self.inn = _table([(*r, False) for r in _IN])
        w = {
            "out": 0.0,
            "in": 0.14,
            "vpn": 0.035,
            "scan": scanner_share,
            "shared": 0.003,
            "stale": 0.0012,
            "wrong": 0.002,
        }
        w["out"] = max(0.0, 1.0 - sum(w.values()))
        self.kind_p = np.array([w[k] for k in KINDS])
        self.kind_p /= self.kind_p.sum()
        self.v6_flow_share = v6_flow_share
        self.long_share = long_share

    def hourly_weights(self, hours: int, start_weekday: int = 0) -> np.ndarray:
        """Expected share of background flows in each hour of the window."""
        return np.array([(self.weight * self._activity(h, start_weekday)).sum() for h in range(hours)])

    def _activity(self, hour: int, start_weekday: int) -> np.ndarray:
        local = hour + self.tz
        hod = local % 24
        dow = (start_weekday + local // 24) % 7
        weekend = dow >= 5
        bump = np.exp(-(((hod - 14.0) / 4.5) ** 2))
        return 0.15 + np.where(weekend, 0.3, 1.0) * bump

    def hour(self, rng: np.random.Generator, hour: int, n: int, epoch_s: float, start_weekday: int = 0) -> F.Frame:
        """``n`` benign flows starting in ``hour`` (hours since the window start)."""
        f = F.empty(n)
        if n == 0:
            return f
        p = self.weight * self._activity(hour, start_weekday)
        org = rng.choice(self.n_orgs, size=n, p=p / p.sum()).astype(np.int32)
        kind = rng.choice(len(KINDS), size=n, p=self.kind_p)
        f["ts"] = ((epoch_s + hour * 3600.0 + rng.random(n) * 3600.0) * 1e6).astype(np.int64)
        f["org"] = org
        f["sport"] = rng.integers(32768, 61000, size=n).astype(np.int32)

        def pick(flat: tuple[np.ndarray, np.ndarray, np.ndarray], who: np.ndarray) -> np.ndarray:
            vals, starts, counts = flat
            return vals[starts[who] + np.floor(rng.random(len(who)) * counts[who]).astype(np.int64)]

        # outbound from the organization's clients (or its NAT addresses)
        o = np.isin(kind, [0, 4, 5, 6])
        oi = np.nonzero(o)[0]
        f["s_lo"][oi] = pick(self.clients, org[oi])
        ch = rng.choice(len(self.out[0]), size=len(oi), p=self.out[3])
        f["proto"][oi], f["dport"][oi], f["service"][oi] = self.out[0][ch], self.out[1][ch], self.out[2][ch]
        longl = self.out[4][ch] & (rng.random(len(oi)) < 0.5) | (rng.random(len(oi)) < self.long_share)
        pop = rng.random(len(oi)) < 0.85
        dst = np.where(
            pop,
            self.popular[rng.choice(len(self.popular), size=len(oi), p=self.popular_p)],
            self.tail[rng.integers(0, len(self.tail), size=len(oi))],
        )
        f["d_lo"][oi] = dst
        # v6 where the organization has it
        v6 = self.has_v6[org[oi]] & (kind[oi] == 0) & (rng.random(len(oi)) < self.v6_flow_share)
        vi = oi[v6]
        if len(vi):
            f["v6"][vi] = True
            f["s_hi"][vi] = self.v6_hi[org[vi]]
            f["s_lo"][vi] = (f["s_lo"][vi] & np.uint64(0xFFFF)) + np.uint64(0x100)
            k = rng.integers(0, len(self.v6_pop[0]), size=len(vi))
            f["d_hi"][vi], f["d_lo"][vi] = self.v6_pop[0][k], self.v6_pop[1][k]
        # confounders pointing at special addresses
        for kcode, ips in (
            (4, [self.shared_ip] if self.shared_ip is not None else []),
            (5, list(self.world.stale_ips)),
            (6, list(self.world.wrong_ips[1:])),
        ):
            sel = np.nonzero(kind == kcode)[0]
            if len(sel) and len(ips):
                f["d_lo"][sel] = np.array(ips, np.uint64)[rng.integers(0, len(ips), size=len(sel))]
                f["proto"][sel], f["dport"][sel], f["service"][sel] = 0, 443, F.SERVICES.index("ssl")
                f["v6"][sel] = False
                f["s_hi"][sel] = 0
                f["d_hi"][sel] = 0
                f["s_lo"][sel] = pick(self.clients, org[sel])
        # inbound to published servers
        ii = np.nonzero(kind == 1)[0]
        f["s_lo"][ii] = random_v4(rng, self.remote_nets, len(ii))
        f["d_lo"][ii] = pick(self.servers, org[ii])
        ch = rng.choice(len(self.inn[0]), size=len(ii), p=self.inn[3])
        f["proto"][ii], f["dport"][ii], f["service"][ii] = self.inn[0][ch], self.inn[1][ch], self.inn[2][ch]
        # remote workers on the organization's VPN appliance: long, heavy, to the exploited ports
        vi = np.nonzero(kind == 2)[0]
        f["s_lo"][vi] = pick(self.employees, org[vi])
        f["d_lo"][vi] = self.edge0[org[vi]]
        f["dport"][vi] = self.vpn_port[org[vi]]
        f["proto"][vi] = np.where(self.vpn_udp[org[vi]], 1, 0)
        f["service"][vi] = np.where(self.vpn_udp[org[vi]], F.SERVICES.index("ipsec"), F.SERVICES.index("ssl"))
        # internet-wide scanners: any address of any organization, uniformly by address space
        si = np.nonzero(kind == 3)[0]
        blk = rng.choice(len(self.block_start), size=len(si), p=self.block_size / self.block_size.sum())
        f["org"][si] = self.block_org[blk]
        f["d_lo"][si] = self.block_start[blk] + np.floor(rng.random(len(si)) * self.block_size[blk]).astype(np.uint64)
        f["s_lo"][si] = self.world.scanner_ips[rng.integers(0, len(self.world.scanner_ips), size=len(si))]
        sp = rng.integers(0, len(_SCAN_PORTS), size=len(si))
        f["dport"][si] = _SCAN_PORTS[sp]
        f["proto"][si] = np.where(_SCAN_UDP[sp], 1, 0)

        # keep the actor's addresses out of benign traffic (its servers are its own)
        for col in ("s_lo", "d_lo"):
            hit = np.isin(f[col], self.actor_set) & ~f["v6"] & ~np.isin(kind, [4])
            f[col][hit] ^= np.uint64(1)

        self._sizes(rng, f, kind, longl_idx=oi[longl])
        f["label"] = np.select([kind == 3, kind == 2, kind == 4, kind == 5, kind == 6], [1, 2, 3, 4, 5], 0).astype(
            np.uint8
        )
        f["sensor"] = np.array([o.sensor for o in self.world.orgs], np.int16)[f["org"]]
        return f

    def _sizes(self, rng: np.random.Generator, f: F.Frame, kind: np.ndarray, longl_idx: np.ndarray) -> None:
        n = len(kind)
        tcp = f["proto"] == 0
        r = rng.random(n)
        st = np.select([r < 0.86, r < 0.90, r < 0.92, r < 0.95, r < 0.97, r < 0.98, r < 0.99], [0, 1, 2, 3, 4, 5, 6], 7)
        st = np.where(tcp, st, np.where(r < 0.93, 0, 1))  # udp: answered or not
        scan = kind == 3
        sr = rng.random(n)
        st = np.where(scan, np.where(sr < 0.6, 1, np.where((sr < 0.9) & tcp, 2, 0)), st)
        st = np.where(kind == 2, 0, st)  # VPN sessions complete
        f["state"] = st.astype(np.uint8)
        dns = f["service"] == F.SERVICES.index("dns")
        bout = rng.lognormal(np.log(700), 1.4, size=n)
        bin_ = rng.lognormal(np.log(5000), 2.0, size=n)
        bout = np.where(dns, rng.integers(30, 90, size=n), bout)
        bin_ = np.where(dns, rng.integers(60, 500, size=n), bin_)
        dur = rng.lognormal(np.log(1.0), 1.5, size=n)
        dur = np.where(dns, rng.uniform(0.001, 0.2, size=n), dur)
        long_mask = np.zeros(n, bool)
        long_mask[longl_idx] = True
        long_mask |= kind == 2
        nl = int(long_mask.sum())
        dur[long_mask] = rng.uniform(600, 9 * 3600, size=nl)
        bout[long_mask] = rng.lognormal(np.log(2e6), 1.5, size=nl)
        bin_[long_mask] = rng.lognormal(np.log(8e6), 1.5, size=nl)
        tiny = scan & (st == 0)
        bout = np.where(tiny, rng.integers(0, 200, size=n), bout)
        bin_ = np.where(tiny, rng.integers(0, 400, size=n), bin_)
        dur = np.where(tiny, rng.uniform(0.01, 1.0, size=n), dur)
        failed = F.FAILED[st] | (st == 7)
        bout = np.where(failed, 0, bout)
        bin_ = np.where(failed | (st == 5), 0, bin_)
        dur = np.where(failed, np.where(st == 1, 0.0, rng.uniform(0, 0.5, size=n)), dur)
        f["bout"], f["bin"] = bout.astype(np.int64), bin_.astype(np.int64)
        f["dur"] = np.round(dur, 6)
        f["pout"] = F.packets(rng, f["bout"], f["state"], f["proto"], True)
        f["pin"] = F.packets(rng, f["bin"], f["state"], f["proto"], False)


__all__ = ["Background", "KINDS"]
