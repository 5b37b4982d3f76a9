"""Actor infrastructure profile: where the actor's servers are, what they are, how they rotate.

Built from the evidence rows of the assessment (which actor IP did what to whom, when),
the indicator table (when the intel says the IP was valid) and the geo tables (ASN, AS
organization, country).  Geolocation of VPS and routers says where the *server* is, not
where its operators sit.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

GEO_CAVEAT = (
    "Geolocation of actor infrastructure says where its servers are (leased VPS, compromised routers), "
    "not where the operators sit; treat country figures as hosting facts, not attribution."
)

_HOSTING = [
    ("cloud/VPS hosting", r"host|cloud|server|vps|data ?cent|datacamp|vultr|choopa|digitalocean|linode|akamai|ovh|hetzner|"
                          r"amazon|aws|google|microsoft|azure|alibaba|aliyun|tencent|oracle|contabo|m247|leaseweb|"
                          r"ionos|scaleway|colo|psychz|quadranet|kamatera|hostwinds|buyvm|frantech|it7|bandwagon|"
                          r"cdn|cloudflare|fastly|edgecast|upcloud|gcore|zenlayer|ucloud|huawei cloud"),
    ("education", r"universit|college|academ|school|research network|\bedu\b|tanet|cernet"),
    ("government", r"government|ministry|gov\b|federal|municipal"),
    ("ISP residential/mobile", r"telecom|telekom|broadband|mobile|cable|communications|internet service|isp\b|hinet|"
                               r"chunghwa|comcast|charter|verizon|at&t|vodafone|orange|china unicom|china telecom|"
                               r"cellular|wireless|dsl|fiber|fibre|net\b|network"),
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
    organizations: list[dict[str, Any]],
    *,
    suspected: list[dict[str, Any]] | None = None,
    intel_windows: dict[str, tuple[str | None, str | None]] | None = None,
    geo: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return (``actor_infrastructure`` list, summary with clusters, hand-offs, geo)."""
    geo = geo or {}
    intel_windows = intel_windows or {}
    prof: dict[str, dict[str, Any]] = {}
    c2_by_host: dict[str, dict[str, list[str]]] = defaultdict(dict)  # host -> actor_ip -> [first, last]
    for o in organizations:
        for h in o["hosts"]:
            for e in h["evidence"]:
                ip = e.get("actor_ip") or e["indicator"]
                p = prof.setdefault(ip, {
                    "ip": ip, "indicators": set(), "actors": set(), "roles": set(), "served_ports": set(),
                    "targeted_ports": set(), "organizations": set(), "hosts": set(), "first_seen": e["first_seen"],
                    "last_seen": e["last_seen"], "source": "intel", "tlp": set(),
                })
                p["indicators"].add(e["indicator"])
                for a in (e.get("actor") or "").split(";"):
                    if a.strip():
                        p["actors"].add(a.strip())
                role = ROLE_OF.get(e["behaviour"], e["behaviour"])
                p["roles"].add(role)
                if e["direction"] == "outbound" and e.get("dst_port") is not None:
                    p["served_ports"].add(int(e["dst_port"]))
                elif e.get("dst_port") is not None:
                    p["targeted_ports"].add(int(e["dst_port"]))
                p["organizations"].add(o["org_id"])
                p["hosts"].add(h["ip"])
                p["first_seen"] = min(p["first_seen"], e["first_seen"])
                p["last_seen"] = max(p["last_seen"], e["last_seen"])
                p["tlp"].add(e.get("tlp", "clear"))
                if role in C2_ROLES:
                    w = c2_by_host[h["ip"]].setdefault(ip, [e["first_seen"], e["last_seen"]])
                    w[0], w[1] = min(w[0], e["first_seen"]), max(w[1], e["last_seen"])
    for s in suspected or []:
        p = prof.setdefault(s["ip"], {
            "ip": s["ip"], "indicators": set(), "actors": set(), "roles": set(), "served_ports": set(),
            "targeted_ports": set(), "organizations": set(), "hosts": set(), "first_seen": s["first_seen"],
            "last_seen": s["last_seen"], "source": "suspected", "tlp": set(),
        })
        p["roles"].add("suspected C2")
        p["served_ports"].update(s.get("ports", []))
        p["organizations"].update(s.get("organizations", []))
        p["hosts"].update(s.get("host_ips", []))
        p["tlp"].add(s.get("tlp", "clear"))

    # clusters: union actor IPs sharing victims within the same role class, or port + ASN
    parent = {ip: ip for ip in prof}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def cls(p: dict) -> str:
        return "C2/VPN" if p["roles"] & (C2_ROLES | {"suspected C2"}) else "scanning/exploitation"

    ips = sorted(prof)
    for i, a in enumerate(ips):
        for b in ips[i + 1:]:
            pa_, pb = prof[a], prof[b]
            if cls(pa_) != cls(pb):
                continue
            ga, gb = geo.get(a, {}), geo.get(b, {})
            same_asn = ga.get("asn") is not None and ga.get("asn") == gb.get("asn")
            if pa_["organizations"] & pb["organizations"] or (same_asn and pa_["served_ports"] & pb["served_ports"]):
                parent[find(a)] = find(b)
    groups: dict[str, list[str]] = defaultdict(list)
    for ip in ips:
        groups[find(ip)].append(ip)
    clusters = []
    counters: dict[str, int] = defaultdict(int)
    cluster_of: dict[str, str] = {}
    for members in sorted(groups.values(), key=lambda m: (cls(prof[m[0]]), m[0])):
        kind = cls(prof[members[0]])
        counters[kind] += 1
        cid = f"{kind} cluster {counters[kind]}"
        for m in members:
            cluster_of[m] = cid
        ports = sorted({pt for m in members for pt in prof[m]["served_ports"] | prof[m]["targeted_ports"]})
        clusters.append({"cluster": cid, "kind": kind, "members": members, "ports": ports,
                         "organizations": sorted({o for m in members for o in prof[m]["organizations"]})})

    # rotation: a victim host moving from one C2 to the next
    handoffs = []
    for host, windows in sorted(c2_by_host.items()):
        seq = sorted(windows.items(), key=lambda kv: kv[1][0])
        for (a, wa), (b, wb) in zip(seq, seq[1:]):
            if wb[0] >= wa[0] and wb[1] > wa[1]:
                handoffs.append({"host": host, "from": a, "to": b, "from_last_seen": wa[1], "to_first_seen": wb[0]})

    out = []
    for ip in ips:
        p = prof[ip]
        g = geo.get(ip, {})
        win = intel_windows.get(ip) or next((intel_windows[i] for i in p["indicators"] if i in intel_windows), (None, None))
        out.append({
            "ip": ip, "source": p["source"], "indicators": sorted(p["indicators"]), "actors": sorted(p["actors"]),
            "asn": g.get("asn"), "as_org": g.get("as_org"), "country": g.get("country"), "city": g.get("city"),
            "hosting": hosting_type(g.get("as_org")), "roles": sorted(p["roles"]),
            "served_ports": sorted(p["served_ports"]), "targeted_ports": sorted(p["targeted_ports"]),
            "first_seen": p["first_seen"], "last_seen": p["last_seen"],
            "intel_valid_from": win[0], "intel_valid_until": win[1],
            "organizations": sorted(p["organizations"]), "hosts": len(p["hosts"]),
            "cluster": cluster_of[ip],
            "tlp": max(p["tlp"] or {"clear"}, key=["clear", "green", "amber", "amber+strict", "red"].index),
        })
    by_country: dict[str, int] = defaultdict(int)
    by_asn: dict[str, int] = defaultdict(int)
    for r in out:
        by_country[r["country"] or "unknown"] += 1
        by_asn[f"AS{r['asn']} {r['as_org'] or ''}".strip() if r["asn"] else "unknown"] += 1
    summary = {
        "clusters": clusters,
        "handoffs": handoffs,
        "timeline": [{"ip": r["ip"], "first_seen": r["first_seen"], "last_seen": r["last_seen"], "cluster": r["cluster"]}
                     for r in sorted(out, key=lambda r: r["first_seen"])],
        "by_country": dict(sorted(by_country.items(), key=lambda kv: -kv[1])),
        "by_asn": dict(sorted(by_asn.items(), key=lambda kv: -kv[1])),
        "caveat": GEO_CAVEAT,
    }
    return out, summary


__all__ = ["actor_profile", "hosting_type", "GEO_CAVEAT"]
