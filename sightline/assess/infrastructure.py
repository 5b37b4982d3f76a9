"""Actor infrastructure profile: where the actor's servers are, what they are, how they rotate.

Built from the evidence rows of the assessment (which actor IP did what to whom, when),
the indicator table (when the intel says the IP was valid) and the geo tables (ASN, AS
organization, country).  Geolocation of VPS and routers says where the *server* is, not
where its operators sit.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.tlp import DEFAULT_TLP, TLP, marking, most_restrictive
from ..findings.model import (
    ActorInfraSummary,
    ActorServer,
    Cluster,
    Handoff,
    Organization,
    SuspectedInfrastructure,
    TimelineEntry,
    actor_names,
)

GEO_CAVEAT = (
    "Geolocation of actor infrastructure says where its servers are (leased VPS, compromised routers), "
    "not where the operators sit; treat country figures as hosting facts, not attribution."
)

_HOSTING = [
    (
        "cloud/VPS hosting",
        r"host|cloud|server|vps|data ?cent|datacamp|vultr|choopa|digitalocean|linode|akamai|ovh|hetzner|"
        r"amazon|aws|google|microsoft|azure|alibaba|aliyun|tencent|oracle|contabo|m247|leaseweb|"
        r"ionos|scaleway|colo|psychz|quadranet|kamatera|hostwinds|buyvm|frantech|it7|bandwagon|"
        r"cdn|cloudflare|fastly|edgecast|upcloud|gcore|zenlayer|ucloud|huawei cloud",
    ),
    ("education", r"universit|college|academ|school|research network|\bedu\b|tanet|cernet"),
    ("government", r"government|ministry|gov\b|federal|municipal"),
    (
        "ISP residential/mobile",
        r"telecom|telekom|broadband|mobile|cable|communications|internet service|isp\b|hinet|"
        r"chunghwa|comcast|charter|verizon|at&t|vodafone|orange|china unicom|china telecom|"
        r"cellular|wireless|dsl|fiber|fibre|net\b|network",
    ),
]

ROLE_OF = {
    "scan": "scanner",
    "exploitation": "exploit source",
    "beacon": "C2/VPN endpoint",
    "callback": "C2/VPN endpoint",
    "long_connection": "C2/VPN endpoint",
    "vpn_tunnel": "C2/VPN endpoint",
    "exfiltration": "exfiltration endpoint",
    "contact": "contacted",
    "outbound_attempt": "contacted",
    "failed_callback": "C2/VPN endpoint",
    "relay": "relay/C2 host in a victim network",
}
C2_ROLES = {"C2/VPN endpoint", "exfiltration endpoint"}


def hosting_type(as_org: str | None) -> str | None:
    if not as_org:
        return None
    low = as_org.lower()
    for kind, pat in _HOSTING:
        if re.search(pat, low):
            return kind
    return "other"


def actor_profile(
    organizations: Sequence[Organization],
    *,
    suspected: Sequence[SuspectedInfrastructure] = (),
    intel_windows: Mapping[str, tuple[str | None, str | None]] | None = None,
    geo: Mapping[str, Mapping[str, Any]] | None = None,
    default_tlp: TLP = DEFAULT_TLP,
) -> tuple[list[ActorServer], ActorInfraSummary]:
    """Actor servers and their summary (clusters, hand-offs, timeline, geography).

    Everything here is derived from the evidence rows and suspected addresses it is given, and
    each item carries the most restrictive TLP of the rows it was derived from: the sharing
    policy calls this again on what a reader may see, so nothing in it can say more than those
    rows.  ``geo`` maps an address to ``asn, as_org, country, city``; ``intel_windows`` an
    indicator value to its validity window.
    """
    geo = geo or {}
    intel_windows = intel_windows or {}
    victim_hosts = {h.ip for o in organizations for h in o.hosts}
    prof: dict[str, dict[str, Any]] = {}
    c2_by_host: dict[str, dict[str, list[Any]]] = defaultdict(dict)  # host -> actor_ip -> [first, last, tlp]

    def new(ip: str, first: str | None, last: str | None, source: str) -> dict[str, Any]:
        return {
            "ip": ip,
            "indicators": set(),
            "actors": set(),
            "roles": set(),
            "served_ports": set(),
            "targeted_ports": set(),
            "organizations": set(),
            "hosts": set(),
            "first_seen": first,
            "last_seen": last,
            "source": source,
            "tlp": set(),
        }

    for o in organizations:
        for h in o.hosts:
            for e in h.evidence:
                ip = e.actor_ip or e.indicator
                mark = marking(e.tlp, default_tlp)
                p = prof.get(ip)
                if p is None:
                    p = prof[ip] = new(ip, e.first_seen, e.last_seen, "intel")
                p["indicators"].add(e.indicator)
                if e.actor:
                    p["actors"].update(actor_names(e.actor))
                role = ROLE_OF.get(e.behaviour, e.behaviour)
                p["roles"].add(role)
                if e.behaviour == "relay":
                    pass  # the address itself belongs to the victim: no port it served or targeted
                elif e.direction == "outbound" and e.dst_port is not None:
                    p["served_ports"].add(int(e.dst_port))
                elif e.dst_port is not None:
                    p["targeted_ports"].add(int(e.dst_port))
                p["organizations"].add(o.org_id)
                if e.behaviour != "relay":
                    p["hosts"].add(h.ip)
                p["first_seen"] = min(p["first_seen"], e.first_seen)
                p["last_seen"] = max(p["last_seen"], e.last_seen)
                p["tlp"].add(mark)
                if role in C2_ROLES:
                    w = c2_by_host[h.ip].setdefault(ip, [e.first_seen, e.last_seen, mark])
                    w[0], w[1], w[2] = min(w[0], e.first_seen), max(w[1], e.last_seen), max(w[2], mark)
    for s in suspected:
        p = prof.get(s.ip)
        if p is None:
            p = prof[s.ip] = new(s.ip, s.first_seen, s.last_seen, "suspected")
        p["roles"].add("suspected C2")
        p["served_ports"].update(s.ports)
        p["organizations"].update(s.organizations)
        p["hosts"].update(s.host_ips)
        p["tlp"].add(marking(s.tlp, default_tlp))

    # clusters: union actor IPs sharing victims within the same role class, or port + ASN
    parent = {ip: ip for ip in prof}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def cls(p: dict[str, Any]) -> str:
        return "C2/VPN" if p["roles"] & (C2_ROLES | {"suspected C2"}) else "scanning/exploitation"

    ips = sorted(prof)
    # same role class and a victim organization in common, or the same ASN and a served port in
    # common: bucket the addresses by those keys and join each bucket (linear, not pairwise)
    buckets: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for ip in ips:
        p, kind = prof[ip], cls(prof[ip])
        for o in p["organizations"]:
            buckets[(kind, "org", o)].append(ip)
        asn = geo.get(ip, {}).get("asn")
        if asn is not None:
            for port in p["served_ports"]:
                buckets[(kind, "asn", asn, port)].append(ip)
    for members in buckets.values():
        root = find(members[0])
        for m in members[1:]:
            r = find(m)
            if r != root:
                parent[r] = root
    groups: dict[str, list[str]] = defaultdict(list)
    for ip in ips:
        groups[find(ip)].append(ip)
    clusters: list[Cluster] = []
    counters: dict[str, int] = defaultdict(int)
    cluster_of: dict[str, str] = {}
    for members in sorted(groups.values(), key=lambda m: (cls(prof[m[0]]), m[0])):
        kind = cls(prof[members[0]])
        counters[kind] += 1
        cid = f"{kind} cluster {counters[kind]}"
        for m in members:
            cluster_of[m] = cid
        ports = sorted({pt for m in members for pt in prof[m]["served_ports"] | prof[m]["targeted_ports"]})
        clusters.append(
            Cluster(
                cluster=cid,
                kind=kind,
                members=members,
                ports=ports,
                organizations=sorted({o for m in members for o in prof[m]["organizations"]}),
                tlp=most_restrictive(t for m in members for t in prof[m]["tlp"]).label,
            )
        )

    # rotation: a victim host moving from one C2 to the next
    handoffs: list[Handoff] = []
    for host, windows in sorted(c2_by_host.items()):
        seq = sorted(windows.items(), key=lambda kv: kv[1][0])
        for (a, wa), (b, wb) in zip(seq, seq[1:]):
            if wb[0] >= wa[0] and wb[1] > wa[1]:
                handoffs.append(
                    Handoff(
                        host=host, from_=a, to=b, from_last_seen=wa[1], to_first_seen=wb[0], tlp=max(wa[2], wb[2]).label
                    )
                )

    out: list[ActorServer] = []
    for ip in ips:
        p = prof[ip]
        owned = ip in victim_hosts
        g = {} if owned else geo.get(ip, {})
        win = intel_windows.get(ip) or next(
            (intel_windows[i] for i in sorted(p["indicators"]) if i in intel_windows), (None, None)
        )
        asn = g.get("asn")
        out.append(
            ActorServer(
                ip=ip,
                source=p["source"],
                indicators=sorted(p["indicators"]),
                actors=sorted(p["actors"]),
                asn=int(asn) if asn is not None else None,
                as_org=g.get("as_org"),
                country=g.get("country"),
                city=g.get("city"),
                hosting=hosting_type(g.get("as_org")) if not owned else "victim network",
                roles=sorted(p["roles"]),
                served_ports=sorted(p["served_ports"]),
                targeted_ports=sorted(p["targeted_ports"]),
                first_seen=p["first_seen"],
                last_seen=p["last_seen"],
                intel_valid_from=win[0],
                intel_valid_until=win[1],
                organizations=sorted(p["organizations"]),
                hosts=len(p["hosts"]),
                cluster=cluster_of[ip],
                victim_owned=owned,
                tlp=most_restrictive(p["tlp"], default=default_tlp).label,
            )
        )
    by_country: dict[str, int] = defaultdict(int)
    by_asn: dict[str, int] = defaultdict(int)
    for server in out:
        by_country[server.country or "unknown"] += 1
        by_asn[f"AS{server.asn} {server.as_org or ''}".strip() if server.asn else "unknown"] += 1
    summary = ActorInfraSummary(
        clusters=clusters,
        handoffs=handoffs,
        timeline=[
            TimelineEntry(ip=r.ip, first_seen=r.first_seen, last_seen=r.last_seen, cluster=r.cluster, tlp=r.tlp)
            for r in sorted(out, key=lambda r: (r.first_seen or "", r.ip))
        ],
        by_country=dict(sorted(by_country.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_asn=dict(sorted(by_asn.items(), key=lambda kv: (-kv[1], kv[0]))),
        caveat=GEO_CAVEAT,
    )
    return out, summary


def profile_actors(
    organizations: Sequence[Organization],
    suspected: Sequence[SuspectedInfrastructure],
    indicators: Any,
    geo_lookup: Callable[[list[str]], Mapping[str, Mapping[str, Any]]] | None = None,
    default_tlp: TLP = DEFAULT_TLP,
) -> tuple[list[ActorServer], ActorInfraSummary]:
    """The hunt's actor profile: every actor address of the evidence and the suspected list,
    with its geo facts (``geo_lookup(addresses)``) and the intel's validity windows
    (``indicators``: INDICATOR_SCHEMA table)."""
    ips = sorted(
        {e.actor_ip or e.indicator for o in organizations for h in o.hosts for e in h.evidence}
        | {s.ip for s in suspected}
    )
    geo = dict(geo_lookup(ips)) if (geo_lookup is not None and ips) else {}
    windows: dict[str, tuple[str | None, str | None]] = {}
    if indicators is not None and indicators.num_rows:
        from . import iso

        for r in indicators.select(["value", "valid_from", "valid_until"]).to_pylist():
            windows[r["value"]] = (iso(r["valid_from"]), iso(r["valid_until"]))
    return actor_profile(organizations, suspected=suspected, intel_windows=windows, geo=geo, default_tlp=default_tlp)


def geo_of(servers: Sequence[ActorServer]) -> dict[str, dict[str, Any]]:
    """The geo facts stored on actor servers, in the shape :func:`actor_profile` takes."""
    return {
        s.ip: {"asn": s.asn, "as_org": s.as_org, "country": s.country, "city": s.city}
        for s in servers
        if not s.victim_owned
    }


def windows_of(servers: Sequence[ActorServer]) -> dict[str, tuple[str | None, str | None]]:
    """The intel validity windows stored on actor servers, keyed by address and indicator."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for s in servers:
        if s.intel_valid_from is not None or s.intel_valid_until is not None:
            for k in (s.ip, *s.indicators):
                out.setdefault(k, (s.intel_valid_from, s.intel_valid_until))
    return out


__all__ = ["actor_profile", "profile_actors", "hosting_type", "geo_of", "windows_of", "GEO_CAVEAT", "ROLE_OF"]
