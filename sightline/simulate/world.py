"""The simulated world: organizations, their hosts and networks, the actor's servers, sensors.

Built once per seed, small (hundreds of organizations, tens of thousands of hosts), and then
used by the flow generators.  Victims follow public reporting on RedJuliett / Flax Typhoon
(Recorded Future, June 2024; Microsoft, August 2023): mostly Taiwanese technology,
academic and government organizations, religious organizations in Taiwan, Hong Kong and
South Korea, a university in Djibouti, and targets in Laos, Kenya, Rwanda and the US.
The actor operated from VPS providers and compromised SOHO routers, exploited internet-facing
firewalls, VPNs and load balancers, and kept access with SoftEther VPN tunnels.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import numpy as np

from ..core.verdicts import VERDICTS
from .geo import NETWORKS, Network, random_v4

# (sector, country, candidate networks) of victims, from public reporting
VICTIM_PROFILES: list[tuple[str, str, tuple[str, ...]]] = [
    ("semiconductor", "TW", ("hinet", "seednet", "tfn")),
    ("semiconductor", "TW", ("hinet", "tfn")),
    ("semiconductor", "TW", ("hinet",)),
    ("aerospace", "TW", ("hinet", "seednet")),
    ("aerospace", "TW", ("hinet",)),
    ("electronics_manufacturing", "TW", ("hinet", "tfn")),
    ("electronics_manufacturing", "TW", ("seednet",)),
    ("electronics_manufacturing", "TW", ("hinet",)),
    ("university", "TW", ("tanet",)),
    ("university", "TW", ("tanet",)),
    ("university", "TW", ("tanet",)),
    ("embedded_systems", "TW", ("hinet",)),
    ("research_institute", "TW", ("twaren",)),
    ("industry_association", "TW", ("hinet", "seednet")),
    ("industry_association", "TW", ("hinet",)),
    ("government", "TW", ("gsn",)),
    ("government", "TW", ("gsn",)),
    ("government", "TW", ("gsn",)),
    ("diplomatic", "TW", ("hinet", "gsn")),
    ("diplomatic", "TW", ("hinet",)),
    ("religious", "TW", ("hinet", "seednet")),
    ("religious", "HK", ("pccw", "hkbn")),
    ("religious", "KR", ("kt", "skb")),
    ("university", "DJ", ("djtel",)),
    ("government", "LA", ("laotel",)),
    ("government", "KE", ("safaricom", "jtl")),
    ("government", "RW", ("ktrw",)),
    ("technology", "US", ("att", "verizon")),
]

# uninvolved organizations: (sector, country, networks, weight)
BYSTANDER_PROFILES: list[tuple[str, str, tuple[str, ...], float]] = [
    ("semiconductor", "TW", ("hinet", "seednet", "tfn"), 4),
    ("electronics_manufacturing", "TW", ("hinet", "tfn", "seednet"), 6),
    ("university", "TW", ("tanet",), 6),
    ("government", "TW", ("gsn",), 5),
    ("finance", "TW", ("hinet", "seednet"), 5),
    ("healthcare", "TW", ("hinet", "tfn"), 4),
    ("retail", "TW", ("hinet", "seednet", "tfn"), 4),
    ("media", "TW", ("hinet",), 2),
    ("telecom", "TW", ("hinet", "fet"), 1),
    ("religious", "TW", ("hinet",), 2),
    ("research_institute", "TW", ("twaren",), 2),
    ("logistics", "TW", ("tfn", "seednet"), 2),
    ("finance", "HK", ("pccw", "hkbn"), 3),
    ("religious", "HK", ("hkbn",), 1),
    ("university", "HK", ("pccw",), 1),
    ("manufacturing", "KR", ("kt", "skb"), 3),
    ("religious", "KR", ("kt",), 1),
    ("university", "KR", ("kt",), 1),
    ("government", "KE", ("safaricom", "jtl"), 1),
    ("university", "KE", ("jtl",), 1),
    ("government", "RW", ("ktrw",), 1),
    ("government", "DJ", ("djtel",), 1),
    ("government", "LA", ("laotel",), 1),
    ("technology", "US", ("att", "verizon"), 3),
    ("university", "US", ("att",), 1),
]

_SECTOR_ABBR = {
    "semiconductor": "semi",
    "aerospace": "aero",
    "electronics_manufacturing": "emfg",
    "university": "univ",
    "embedded_systems": "embd",
    "research_institute": "rnd",
    "industry_association": "assn",
    "government": "gov",
    "diplomatic": "dipl",
    "religious": "relig",
    "technology": "tech",
    "finance": "fin",
    "healthcare": "health",
    "retail": "retail",
    "media": "media",
    "telecom": "tel",
    "logistics": "logi",
    "manufacturing": "mfg",
}

_PLACES = {
    "TW": [
        "Hsinchu",
        "Taipei",
        "Tainan",
        "Taichung",
        "Kaohsiung",
        "Zhubei",
        "Taoyuan",
        "Miaoli",
        "Keelung",
        "Chiayi",
        "Yilan",
        "Hualien",
        "Changhua",
        "Pingtung",
        "Nantou",
        "Banqiao",
    ],
    "HK": ["Kowloon", "Sha Tin", "Tsuen Wan", "Wan Chai", "Tai Po"],
    "KR": ["Seoul", "Busan", "Incheon", "Daejeon", "Suwon"],
    "DJ": ["Djibouti", "Balbala"],
    "LA": ["Vientiane", "Luang Prabang"],
    "KE": ["Nairobi", "Mombasa", "Kisumu"],
    "RW": ["Kigali", "Huye"],
    "US": ["San Jose", "Austin", "Denver", "Raleigh", "Portland"],
}

_NAME_FORMS = {
    "semiconductor": [
        "{p} Wafer Technology",
        "{p} Silicon Devices",
        "{p} Microelectronics Corp.",
        "{p} Semiconductor Co.",
    ],
    "aerospace": ["{p} Aerospace Industries", "{p} Avionics Co.", "{p} Aero Components"],
    "electronics_manufacturing": ["{p} Electronics Manufacturing", "{p} Precision Industry", "{p} PCB Assembly Co."],
    "university": ["National {p} University", "{p} University of Technology", "{p} Institute of Science"],
    "embedded_systems": ["{p} Embedded Systems Inc."],
    "research_institute": ["{p} Industrial Research Institute", "{p} Advanced Technology Center"],
    "industry_association": ["{p} Computer Industry Association", "{p} Electronics Guild"],
    "government": ["{p} City Government", "Ministry Office {p}", "{p} Regional Administration"],
    "diplomatic": ["Representative Office in {p}", "Trade and Cultural Office {p}"],
    "religious": ["{p} Grace Church", "{p} Buddhist Association", "{p} Catholic Diocese"],
    "technology": ["{p} Systems LLC", "{p} Networks Inc."],
    "finance": ["{p} Commercial Bank", "{p} Securities", "{p} Life Insurance"],
    "healthcare": ["{p} General Hospital", "{p} Medical Center"],
    "retail": ["{p} Department Store", "{p} Mart"],
    "media": ["{p} Daily News", "{p} Broadcasting"],
    "telecom": ["{p} Cable TV"],
    "logistics": ["{p} Shipping", "{p} Freight Co."],
    "manufacturing": ["{p} Heavy Industries", "{p} Motors"],
}

# internet-facing appliances the actor exploits: product, exposed TCP ports, exposed UDP ports
EDGE_PRODUCTS: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = [
    ("fortinet-fortigate", (443, 10443), (500, 4500)),
    ("sonicwall-sma", (443, 4433), ()),
    ("cisco-asa", (443,), (500, 4500)),
    ("paloalto-globalprotect", (443,), (4501,)),
    ("ivanti-connect-secure", (443, 8443), ()),
    ("citrix-netscaler", (443, 8443), ()),
    ("f5-bigip", (443, 8443), ()),
]


@dataclass
class Org:
    """One organization with its public address space and the hosts visible from outside."""

    index: int
    org_id: str
    name: str
    sector: str
    country: str
    network: Network
    cidrs: list[str]
    v4_blocks: list[tuple[int, int]]  # inclusive address ranges of the v4 CIDRs
    v6_prefix: int | None  # upper 64 bits of its v6 /48 (or /56), if any
    edges: np.ndarray  # uint64 v4 addresses of internet-facing appliances
    servers: np.ndarray  # uint64 v4 addresses of published servers
    clients: np.ndarray  # uint64 v4 addresses client traffic leaves from (NAT addresses if NAT)
    internal_servers: np.ndarray  # uint64 v4 of internal hosts with own public address (no NAT)
    nat: bool
    edge_product: tuple[str, tuple[int, ...], tuple[int, ...]]
    weight: float
    sensor: int
    scenario: str = "none"  # intended verdict


@dataclass
class ActorIP:
    """One server of the actor's infrastructure."""

    ip: int
    role: str  # scan | exploit | c2 | vpn
    network: Network
    hosting: str  # vps | soho | cdn
    active_from: float  # seconds from window start
    active_until: float
    in_intel: bool = True
    shared: bool = False  # also serves benign users (CDN front)


@dataclass
class World:
    orgs: list[Org]
    actor: list[ActorIP]
    sensors: list[str]
    skews_s: np.ndarray
    stale_ips: np.ndarray  # old actor IPs (indicators expired) now used by benign services
    wrong_ips: np.ndarray  # benign IPs wrongly published as indicators
    scanner_ips: np.ndarray  # benign internet-wide scanners
    employee_ips: list[np.ndarray] = field(default_factory=list)  # per org: remote workers' home IPs


def _ip(v: int) -> str:
    return str(ipaddress.IPv4Address(int(v)))


class _Allocator:
    """Hands out non-overlapping, aligned blocks from a network's ranges, deterministically."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: dict[str, list[tuple[int, int]]] = {}

    def block(self, net: Network, prefix: int) -> tuple[int, int, int]:
        size = 1 << (32 - prefix)
        ranges = net.v4_ranges()
        for _ in range(200):
            a, b = ranges[self.rng.integers(0, len(ranges))]
            lo = (int(a) + size - 1) // size
            hi = (int(b) + 1) // size - 1
            if hi < lo:
                continue
            start = int(self.rng.integers(lo, hi + 1)) * size
            end = start + size - 1
            taken = self.used.setdefault(net.key, [])
            if any(not (end < s or start > e) for s, e in taken):
                continue
            taken.append((start, end))
            return start, end, prefix
        if prefix < 29:  # small national networks fill up: settle for a smaller block
            return self.block(net, prefix + 1)
        raise RuntimeError(f"address space of {net.key} exhausted")  # pragma: no cover - tables are large


def _pick_hosts(rng: np.random.Generator, blocks: list[tuple[int, int]], n: int) -> np.ndarray:
    """``n`` distinct usable addresses spread over the blocks."""
    addrs = np.concatenate([np.arange(s + 1, e, dtype=np.uint64) for s, e in blocks])  # skip net/broadcast
    n = min(n, len(addrs))
    return rng.choice(addrs, size=n, replace=False)


def _name(rng: np.random.Generator, sector: str, country: str, used: set[str]) -> str:
    forms = _NAME_FORMS.get(sector, ["{p} Organization"])
    places = _PLACES.get(country, ["Central"])
    for _ in range(50):
        name = forms[rng.integers(0, len(forms))].format(p=places[rng.integers(0, len(places))])
        if name not in used:
            used.add(name)
            return name
    name = f"{name} {len(used)}"
    used.add(name)
    return name


def build_world(
    rng: np.random.Generator,
    *,
    days: int,
    victims: int,
    bystanders: int,
    compromised_share: float,
    nat_share: float,
    v6_share: float,
    sensors: int,
    max_skew_s: float,
    actor_ips: int,
) -> World:
    """Draw organizations, hosts, actor infrastructure and sensors for one scenario."""
    span = days * 86400.0
    alloc = _Allocator(rng)
    used_names: set[str] = set()
    profiles = list(VICTIM_PROFILES)
    order = rng.permutation(len(profiles))
    chosen = [profiles[i] for i in order[: min(victims, len(profiles))]]
    while len(chosen) < victims:  # more victims than profiles: repeat Taiwanese ones
        chosen.append(profiles[int(rng.integers(0, 20))])
    # intended verdicts: ~compromised_share compromised, rest split between the other two
    n_comp = int(round(victims * compromised_share))
    n_expl = (victims - n_comp + 1) // 2
    scen = ["compromised"] * n_comp + ["exploitation_attempt"] * n_expl
    scen += ["reconnaissance"] * (victims - len(scen))
    scen = [scen[i] for i in rng.permutation(victims)]

    bw = np.array([p[3] for p in BYSTANDER_PROFILES], dtype=float)
    by_pick = rng.choice(len(BYSTANDER_PROFILES), size=bystanders, p=bw / bw.sum())
    entries = [(s, c, nets, v) for (s, c, nets), v in zip(chosen, scen)]
    entries += [(*BYSTANDER_PROFILES[i][:3], "none") for i in by_pick]
    entries = [entries[i] for i in rng.permutation(len(entries))]  # ids must not reveal victims

    orgs: list[Org] = []
    counters: dict[str, int] = {}
    v6_next: dict[str, int] = {}
    for idx, (sector, country, nets, verdict) in enumerate(entries):
        net = NETWORKS[nets[int(rng.integers(0, len(nets)))]]
        key = f"{country.lower()}-{_SECTOR_ABBR[sector]}"
        counters[key] = counters.get(key, 0) + 1
        org_id = f"{key}-{counters[key]:02d}"
        big = sector in ("university", "government", "research_institute")
        n_blocks = int(rng.integers(1, 4 if big else 3))
        blocks, cidrs = [], []
        for b in range(n_blocks):
            prefix = int(rng.choice([21, 22, 23]) if big and b == 0 else rng.choice([24, 25, 26, 27, 28]))
            s, e, prefix = alloc.block(net, prefix)
            blocks.append((s, e))
            cidrs.append(f"{_ip(s)}/{prefix}")
        v6_prefix = None
        if net.v6 and rng.random() < v6_share:
            base = ipaddress.IPv6Network(net.v6[0])
            room = 1 << (48 - base.prefixlen)  # /48s that fit in the ISP's prefix
            n = v6_next.get(net.key, int(rng.integers(1, room // 2)))
            v6_next[net.key] = n + int(rng.integers(1, 8))
            n %= room
            # a /48 per organization, numbered inside the ISP's prefix
            hi = (int(base.network_address) >> 64) | (n << 16)
            v6_prefix = hi
            cidrs.append(str(ipaddress.IPv6Network(((hi << 64), 48))))
        size = sum(e - s - 1 for s, e in blocks)
        n_hosts = int(min(size, max(8, rng.lognormal(np.log(60 if big else 25), 0.8))))
        hosts = _pick_hosts(rng, blocks, n_hosts)
        n_edge = 1 + int(rng.random() < 0.35) + int(big and rng.random() < 0.5)
        n_srv = max(1, int(n_hosts * 0.15))
        edges, servers, rest = hosts[:n_edge], hosts[n_edge : n_edge + n_srv], hosts[n_edge + n_srv :]
        if len(rest) == 0:
            rest = servers
        nat = bool(rng.random() < nat_share)
        if nat:
            # clients leave through 1-3 addresses; often the firewall itself does the NAT
            k = int(rng.integers(1, 4))
            clients = np.concatenate([edges[:1], rest[: k - 1]]) if rng.random() < 0.5 else rest[:k]
            internal = np.empty(0, dtype=np.uint64)
        else:
            clients = rest
            internal = rest[: max(1, len(rest) // 10)]
        weight = float(rng.lognormal(np.log(3.0 if big else 1.0), 0.9))
        orgs.append(
            Org(
                idx,
                org_id,
                _name(rng, sector, country, used_names),
                sector,
                country,
                net,
                cidrs,
                blocks,
                v6_prefix,
                edges,
                servers,
                clients,
                internal,
                nat,
                EDGE_PRODUCTS[int(rng.integers(0, len(EDGE_PRODUCTS)))],
                weight,
                int(rng.integers(0, sensors)),
                verdict,
            )
        )

    actor = _actor_infrastructure(rng, actor_ips, span)
    taken = {a.ip for a in actor}
    stale = _fresh(rng, [NETWORKS[k] for k in ("vultr", "digitalocean", "linode", "amazon")], 3, taken)
    wrong = np.concatenate(
        [
            _fresh(rng, [NETWORKS["censys"]], 1, taken),
            _fresh(rng, [NETWORKS["amazon"]], 1, taken),
        ]
    )
    scanners = np.concatenate(
        [
            _fresh(rng, [NETWORKS["censys"]], 24, taken),
            _fresh(rng, [NETWORKS["carinet"]], 12, taken),
            _fresh(rng, [NETWORKS["he"]], 8, taken),
            _fresh(rng, [NETWORKS["chinanet"], NETWORKS["vnpt"], NETWORKS["comcast"]], 24, taken),  # botnets
        ]
    )
    scanners = np.concatenate([scanners, wrong[:1]])  # the wrongly listed Censys host really scans
    names = [f"sensor-{i + 1:02d}" for i in range(sensors)]
    skews = np.round(rng.uniform(-max_skew_s, max_skew_s, size=sensors), 3) if max_skew_s > 0 else np.zeros(sensors)
    residential = {
        "TW": [NETWORKS[k] for k in ("hinet", "fet", "tfn", "seednet")],
        "HK": [NETWORKS["hkbn"], NETWORKS["pccw"]],
        "KR": [NETWORKS["kt"], NETWORKS["skb"]],
        "US": [NETWORKS["comcast"], NETWORKS["verizon"]],
    }
    employee_ips = []
    for o in orgs:
        nets_home = residential.get(o.country, [o.network])
        k = int(max(3, min(80, len(o.clients) * rng.uniform(0.3, 1.0))))
        employee_ips.append(random_v4(rng, nets_home, k))
    return World(orgs, actor, names, skews, stale, wrong, scanners, employee_ips)


def _fresh(rng: np.random.Generator, nets: list[Network], n: int, taken: set[int]) -> np.ndarray:
    out: list[int] = []
    while len(out) < n:
        for v in random_v4(rng, nets, n).tolist():
            if v not in taken and len(out) < n:
                taken.add(v)
                out.append(v)
    return np.array(out, dtype=np.uint64)


def _actor_infrastructure(rng: np.random.Generator, n: int, span: float) -> list[ActorIP]:
    """A few dozen servers: VPS for scanning/exploitation/VPN, VPS and SOHO routers for C2.

    Some are used for the whole window, others rotate in or out part-way.  Two are not in
    any feed (unknown infrastructure) and one C2 sits behind a CDN address that benign users
    share.
    """
    vps = [NETWORKS[k] for k in ("vultr", "digitalocean", "linode", "ovh", "alibaba", "contabo")]
    soho = [NETWORKS[k] for k in ("hinet", "vnpt", "comcast", "kt", "chinanet")]
    n = max(n, 12)
    roles = ["scan"] * max(3, n // 4) + ["exploit"] * max(3, n // 5) + ["vpn"] * max(2, n // 6)
    roles += ["c2"] * (n - len(roles))
    taken: set[int] = set()
    out: list[ActorIP] = []
    for i, role in enumerate(roles):
        if role == "c2" and i % 2 == 1:
            net, hosting = soho[int(rng.integers(0, len(soho)))], "soho"
        else:
            net, hosting = vps[int(rng.integers(0, len(vps)))], "vps"
        ip = int(_fresh(rng, [net], 1, taken)[0])
        r = rng.random()
        if r < 0.5:
            a, b = 0.0, span
        elif r < 0.75:
            a, b = 0.0, span * rng.uniform(0.4, 0.75)
        else:
            a, b = span * rng.uniform(0.25, 0.6), span
        out.append(ActorIP(ip, role, net, hosting, a, b))
    # whole-window servers per role guarantee every phase has somewhere to come from
    for role in ("scan", "exploit", "c2", "vpn"):
        first = next(x for x in out if x.role == role)
        first.active_from, first.active_until = 0.0, span
    unknown = [x for x in out if x.role in ("c2", "scan") and not (x.active_from == 0 and x.active_until == span)]
    for x in unknown[:2]:
        x.in_intel = False
    cdn = NETWORKS["cloudflare"]
    out.append(ActorIP(int(_fresh(rng, [cdn], 1, taken)[0]), "c2", cdn, "cdn", 0.0, span, True, True))
    return out


__all__ = ["VERDICTS", "VICTIM_PROFILES", "EDGE_PRODUCTS", "Org", "ActorIP", "World", "build_world"]
