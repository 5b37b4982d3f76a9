"""Assess: per-contact behaviours -> evidence rows -> verdict per host and organization.

Public API::

    assess(detection, orgs, host_info=None, shared=None) -> Assessment

Rules (design.md "Verdicts"), strongest verdict wins:

- ``compromised``: the host initiates two-way sessions with actor infrastructure that
  look like C2 (beacon, long or cumulative sessions, VPN tunnel, exfiltration) from an
  indicator that is not low-confidence (>= 30), or repeated callbacks, or any C2 pattern
  towards shared or popular infrastructure, from one of at least medium confidence
  (>= 50); or exploitation of the organization is followed by two-way
  callbacks from it.
- ``exploitation_attempt``: actor infrastructure completes sessions with request payload
  to the organization's services, without callbacks.
- ``reconnaissance``: actor infrastructure only probes (failed or empty sessions).

Evidence from low-confidence indicators (< 30) never decides a verdict on its own.
Popular destinations (an indicator that many organizations talk to, e.g. a CDN address
the actor also used) and known shared infrastructure need C2-like regularity or volume,
not mere contact, to make a host compromised; a beacon to them needs CROWDED_BEACON_MIN
connections, and one that hosts of most of the registry's organizations show is a polled
service (:func:`_polled_services`).  A lone probe of an organization is not reconnaissance
(MIN_PROBES).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..detect import Detection
from ..detect.behaviours import (
    FOCUSED_MAX_HOSTS,
    FOCUSED_MAX_PORTS,
    Behaviour,
    evidence_confidence,
    inbound_behaviours,
    outbound_behaviours,
    popular_threshold,
    scan_score,
)
from ..net import ip_text

VERDICTS = ("compromised", "exploitation_attempt", "reconnaissance")
VERDICT_RANK = {"none": 0, "reconnaissance": 1, "exploitation_attempt": 2, "compromised": 3}
TLP_NAMES = ("clear", "green", "amber", "amber+strict", "red")

COMPROMISE_BEHAVIOURS = ("beacon", "long_connection", "vpn_tunnel", "exfiltration", "callback")
STRONG_C2 = ("beacon", "long_connection", "vpn_tunnel", "exfiltration")
MEDIUM_CONFIDENCE = 50
LOW_CONFIDENCE = 30
"""STIX 2.1's None/Low/Med/High scale puts Low at 1-29: below LOW_CONFIDENCE an indicator
decides nothing on its own."""
KNOWN_SCANNER_MIN_CONFIDENCE = 80
"""Probes from a known research scanner's range decide a verdict only with intel this sure."""
CLOCK_SKEW_S = 3600.0
"""Tolerance when ordering exploitation before callbacks seen by different sensors."""
CROWDED_BEACON_MIN = 20
"""On a crowded indicator (popular or shared) a beacon decides only with at least this many
connections in its series: among many hosts using an address, some visit it at regular-looking
times by chance (6 random visits over 3 days scored 0.61 in a test)."""
SERVICE_SHARE = 0.5
SERVICE_MIN_ORGS = 10
"""A crowded indicator that hosts of at least SERVICE_SHARE of the registry's organizations (and
SERVICE_MIN_ORGS) beacon to is a polled service; see :func:`_polled_services`."""
MIN_PROBES = 2
"""Reconnaissance needs at least this many probes of the organization (design: "many ports or
hosts"); a lone failed connection from actor infrastructure is listed, not a verdict."""


@dataclass
class Assessment:
    organizations: list[dict[str, Any]]
    stale_matches: list[dict[str, Any]]
    suspected_infrastructure: list[dict[str, Any]] = field(default_factory=list)


def iso(ts: Any) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(ts)


def tlp_name(rank: int | None) -> str:
    return TLP_NAMES[max(0, min(4, int(rank or 0)))]


def _verdict_of(behaviour: str) -> str:
    if behaviour in COMPROMISE_BEHAVIOURS:
        return "compromised"
    if behaviour == "exploitation":
        return "exploitation_attempt"
    if behaviour == "scan":
        return "reconnaissance"
    return "none"


def assess(
    det: Detection,
    orgs: pa.Table,
    *,
    host_info: dict[str, dict[str, Any]] | None = None,
    shared: Callable[[str], str | None] | None = None,
    sector_of: Callable[[str], str] | None = None,
) -> Assessment:
    """Turn per-contact aggregates into evidence rows and verdicts.

    ``host_info`` maps a host IP (text) to ``{"asn", "as_org", "country"}`` from the geo
    tables; ``shared(ip)`` names the shared-infrastructure kind of an actor IP (CDN, cloud,
    scanner) or returns None; ``sector_of(name)`` classifies ASN organizations.
    """
    host_info = host_info or {}
    registry = {}
    for r in orgs.select(["org_id", "name", "sector", "country"]).to_pylist():
        registry.setdefault(r["org_id"], r)
    host_org: dict[str, str | None] = {}
    for r in det.host_org.to_pylist():
        host_org[ip_text(r["host_ip4"], r["host_ip6"])] = r["org_id"]

    def org_of(host: str) -> str:
        oid = host_org.get(host)
        if oid:
            return oid
        info = host_info.get(host) or {}
        if info.get("asn"):
            return f"AS{int(info['asn'])}"
        return "unattributed"

    baseline: dict[str, float] = {}
    if det.baseline is not None:
        for b in det.baseline.to_pylist():
            baseline[ip_text(b["host_ip4"], b["host_ip6"])] = b["daily_median"]

    # popularity of each indicator among organizations talking to it two-way (from the engine)
    thr = popular_threshold(len(registry))
    talker_orgs: dict[str, int] = {}
    if det.contacts.num_rows and "talker_orgs" in det.contacts.column_names:
        per_ind = det.contacts.group_by("indicator").aggregate([("talker_orgs", "max")])
        talker_orgs = {k: int(v or 0) for k, v in zip(per_ind.column("indicator").to_pylist(),
                                                       per_ind.column("talker_orgs_max").to_pylist())}
    popular = {ind for ind, n in talker_orgs.items() if n >= thr}

    assessed: list[tuple[str, list[dict]]] = []
    beaconing: dict[str, set[str]] = defaultdict(set)  # crowded indicator -> orgs whose hosts beacon to it
    # one organization at a time: everything below (sweep reach, scan aggregation, host and
    # organization verdicts) is local to an organization, so only one organization's contacts
    # are Python objects at once and memory follows the largest organization, not the hunt
    for oid, contacts in _contacts_by_org(det, org_of):
        hosts = _assess_org(contacts, det_baseline=baseline, shared=shared, popular=popular,
                            talker_orgs=talker_orgs)
        if not hosts:
            continue
        for h in hosts:
            for r in h["rows"]:
                if r["behaviour"] == "beacon" and r.get("_crowded") and r.get("verdict_eligible", True):
                    beaconing[r["indicator"]].add(oid)
        assessed.append((oid, hosts))
    _polled_services(assessed, beaconing, len(registry))
    organizations = []
    assessed.reverse()
    while assessed:  # each organization's working rows are freed as its findings are built
        oid, hosts = assessed.pop()
        if hosts:
            organizations.append(_organization(oid, hosts, registry=registry, host_info=host_info,
                                               sector_of=sector_of))
        del hosts
    organizations.sort(key=lambda o: (-VERDICT_RANK[o["verdict"]], -o["confidence"], o["org_id"]))

    stale = []
    for s in det.stale.to_pylist():
        host = ip_text(s["host_ip4"], s["host_ip6"])
        stale.append({
            "org_id": org_of(host), "host": host, "indicator": s["indicator"],
            "actor_ip": ip_text(s["actor_ip4"], s["actor_ip6"]), "flows": int(s["flows"]),
            "first_seen": iso(s["first_seen"]), "last_seen": iso(s["last_seen"]),
            "valid_from": iso(s["valid_from"]), "valid_until": iso(s["valid_until"]),
            "tlp": tlp_name(s["tlp_rank"]),
        })
    stale.sort(key=lambda s: (s["org_id"], s["host"], s["indicator"]))
    return Assessment(organizations, stale)


_SERIES_STATS = ("n", "q1", "q2", "q3", "dt_mad", "size_median", "size_mad")


def _contacts_by_org(det: Detection, org_of: Callable[[str], str]):
    """Yield ``(org_id, contacts as dicts)`` one organization at a time, hosts together."""
    ct = det.contacts
    if ct.num_rows == 0:
        return
    h4 = ct.column("host_ip4")
    is4 = pc.is_valid(h4).to_numpy(zero_copy_only=False)
    # one id per distinct host: the IPv4 value, or -1 - (index of the IPv6 value among the distinct ones)
    v6 = pc.if_else(pc.is_valid(h4), pa.scalar(None, ct.schema.field("host_ip6").type),
                    ct.column("host_ip6")).combine_chunks().dictionary_encode(null_encoding="encode")
    six = v6.dictionary.to_pylist()
    host_id = np.where(is4, pc.fill_null(h4, 0).to_numpy().astype(np.int64), -1 - v6.indices.to_numpy())
    ids, inverse = np.unique(host_id, return_inverse=True)
    names = [ip_text(int(i), None) if i >= 0 else (ip_text(None, six[-1 - int(i)]) or "unknown") for i in ids]
    org_names = [org_of(h) for h in names]
    org_keys, org_idx_of_host = np.unique(np.array(org_names, dtype=object), return_inverse=True)
    org_idx = org_idx_of_host[inverse]
    order = np.lexsort((inverse, org_idx))
    ct = ct.take(pa.array(order))
    sorted_org = org_idx[order]
    host_of_row = np.asarray(names, dtype=object)[inverse[order]]
    bounds = np.flatnonzero(np.diff(sorted_org)) + 1
    starts = np.concatenate([[0], bounds]).tolist()
    ends = np.concatenate([bounds, [len(order)]]).tolist()
    for a, b in zip(starts, ends):
        rows = ct.slice(a, b - a).to_pylist()
        oid = str(org_keys[sorted_org[a]])
        for c, host in zip(rows, host_of_row[a:b].tolist()):
            c["host"] = host
            c["org_id"] = oid
            c["actor_ip"] = ip_text(c["actor_ip4"], c["actor_ip6"])
        yield oid, rows


def _series_of(c: dict) -> dict | None:
    if c.get("s_n") is None:
        return None
    return {k: c.get("s_" + k) for k in _SERIES_STATS}


def _assess_org(contacts: list[dict], *, det_baseline: dict[str, float],
                shared: Callable[[str], str | None] | None, popular: set[str],
                talker_orgs: dict[str, int]) -> list[dict]:
    """Evidence rows and host verdicts of one organization's contacts; hosts with a verdict."""
    # how widely each actor address touched the organization (inbound): sweeps vs focus
    reach_hosts: dict[str, set[str]] = defaultdict(set)
    reach_ports: dict[str, set] = defaultdict(set)
    for c in contacts:
        c["daily_median"] = det_baseline.get(c["host"])
        if not c["outbound"]:
            reach_hosts[c["actor_ip"]].add(c["host"])
            reach_ports[c["actor_ip"]].add(c["service_port"])

    evidence: dict[str, list[dict]] = defaultdict(list)  # host -> rows
    scan_acc: dict[tuple, dict] = {}
    scanned_hosts: dict[str, set[str]] = defaultdict(set)  # actor_ip -> hosts
    for c in contacts:
        shared_kind = shared(c["actor_ip"]) if shared else None
        base = {
            "indicator": c["indicator"],
            "actor_ip": c["actor_ip"],
            "actor": c["actor"],
            "indicator_confidence": int(c["indicator_confidence"]) if c["indicator_confidence"] is not None else 50,
            "tlp": tlp_name(c["tlp_rank"]),
            "first_seen": iso(c["first_seen"]),
            "last_seen": iso(c["last_seen"]),
            "_first_t": float(c["first_t"]),
            "_last_t": float(c["last_t"]),
            "_age_days": _age_days(c.get("valid_from"), c["first_seen"]),
        }
        if shared_kind:
            base["shared_infrastructure"] = shared_kind
        if c["outbound"]:
            behs = outbound_behaviours(c, _series_of(c))
            crowded = c["indicator"] in popular or bool(shared_kind)
            n_series = int(c.get("s_n") or 0)
            for b in behs:
                row = _row(base, b, c, "outbound", shared=bool(shared_kind))
                row["_crowded"] = crowded
                if crowded and b.name == "beacon" and n_series < CROWDED_BEACON_MIN:
                    # many hosts use the address: by chance a few of them visit it at
                    # regular-looking times; a handful of intervals cannot tell that from C2
                    row["verdict_eligible"] = False
                    row["detail"] += (f"; not decisive: {n_series} connections are too few to tell a schedule from "
                                      f"chance on an address {talker_orgs.get(c['indicator'], 0)} organizations use"
                                      if c["indicator"] in popular else
                                      f"; not decisive: too few connections for shared infrastructure ({shared_kind})")
                elif crowded and b.name not in STRONG_C2:
                    row["verdict_eligible"] = False
                    row["detail"] += (
                        f"; not decisive: {talker_orgs[c['indicator']]} organizations talk to this indicator"
                        if c["indicator"] in popular else f"; not decisive: shared infrastructure ({shared_kind})"
                    )
                evidence[c["host"]].append(row)
        else:
            actor_ip = c["actor_ip"]
            focused = (len(reach_hosts[actor_ip]) <= FOCUSED_MAX_HOSTS and len(reach_ports[actor_ip]) <= FOCUSED_MAX_PORTS)
            b = inbound_behaviours(c, focused=focused)[0]
            if b.name == "exploitation":
                evidence[c["host"]].append(_row(base, b, c, "inbound", shared=bool(shared_kind)))
            else:
                key = (c["host"], actor_ip, c["indicator"])
                acc = scan_acc.get(key)
                if acc is None:
                    acc = scan_acc[key] = dict(base, flows=0, ports=set(), failed=0, req=0, resp=0)
                acc["flows"] += int(c["flows"])
                acc["failed"] += int(c["failed"])
                acc["ports"].add(c["service_port"])
                acc["req"] += int(c["req_bytes"])
                acc["resp"] += int(c["resp_bytes"])
                acc["first_seen"] = min(acc["first_seen"], base["first_seen"])
                acc["last_seen"] = max(acc["last_seen"], base["last_seen"])
                acc["_first_t"] = min(acc["_first_t"], base["_first_t"])
                acc["_last_t"] = max(acc["_last_t"], base["_last_t"])
                scanned_hosts[actor_ip].add(c["host"])

    for (host, actor_ip, _ind), acc in scan_acc.items():
        ports = sorted(p for p in acc.pop("ports") if p is not None)
        hosts = len(scanned_hosts[actor_ip])
        s = scan_score(acc["flows"], len(ports), hosts)
        detail = (f"{acc['flows']} probe(s) to {len(ports)} port(s)"
                  f"{' (' + ', '.join(map(str, ports[:8])) + (', ...' if len(ports) > 8 else '') + ')' if ports else ''}"
                  f", {acc['failed']} failed or empty; {hosts} host(s) of the organization probed by {actor_ip}")
        row = {k: v for k, v in acc.items() if k not in ("flows", "failed", "req", "resp")}
        row.update({
            "behaviour": "scan", "direction": "inbound", "dst_port": ports[0] if len(ports) == 1 else None,
            "flows": acc["flows"], "bytes_out": acc["req"], "bytes_in": acc["resp"], "score": s, "detail": detail,
            "confidence": evidence_confidence(s, acc["indicator_confidence"], "shared_infrastructure" in acc,
                                              acc["_age_days"]),
        })
        shared_kind = str(acc.get("shared_infrastructure") or "")
        if shared_kind.startswith("scanner") and acc["indicator_confidence"] < KNOWN_SCANNER_MIN_CONFIDENCE:
            # an internet-wide research scanner probes everybody: not the actor's reconnaissance
            row["verdict_eligible"] = False
            row["detail"] += f"; not decisive: known internet-wide scanner ({shared_kind})"
        evidence[host].append(row)

    # a lone probe (one failed or empty connection to one host) is not reconnaissance of the
    # organization: backscatter, a mistyped address, one packet of an internet-wide sweep
    scans = [r for rows in evidence.values() for r in rows if r["behaviour"] == "scan" and _eligible(r)]
    if scans and sum(r["flows"] for r in scans) < MIN_PROBES:
        for r in scans:
            r["verdict_eligible"] = False
            r["detail"] += "; not decisive: a single probe of the organization"

    # host verdicts; hosts without one (evidence too weak to decide) are left out
    out: list[dict] = []
    for host, rows in evidence.items():
        # fully ordered: the engine returns contacts in no particular order, findings must not vary
        rows.sort(key=lambda r: (-VERDICT_RANK[_verdict_of(r["behaviour"])], -r["score"], r["behaviour"],
                                 r["indicator"], r["direction"], -1 if r.get("dst_port") is None else r["dst_port"],
                                 r["first_seen"] or "", r["actor_ip"] or ""))
        verdict, conf = _host_verdict(rows)
        if verdict != "none":
            out.append({"ip": host, "verdict": verdict, "confidence": conf, "rows": rows})
    return out


def _polled_services(assessed: list[tuple[str, list[dict]]], beaconing: dict[str, set[str]],
                     registry_orgs: int) -> None:
    """A crowded indicator (popular or shared) that hosts of most of the registry's organizations
    reach on a schedule is a service everybody polls (updates, telemetry, time), not a campaign's
    C2: no campaign compromises most of a constituency through one address.  Unless the intel is
    very sure of it, those beacons decide nothing; host verdicts are re-derived in place."""
    if registry_orgs < SERVICE_MIN_ORGS:
        return  # without a registry there is no constituency to have a majority of
    need = max(SERVICE_MIN_ORGS, math.ceil(SERVICE_SHARE * registry_orgs))
    services = {ind: len(o) for ind, o in beaconing.items() if len(o) >= need}
    if not services:
        return
    for i, (oid, hosts) in enumerate(assessed):
        changed = False
        for h in hosts:
            for r in h["rows"]:
                n = services.get(r["indicator"])
                if (n and r["behaviour"] == "beacon" and r.get("_crowded") and r.get("verdict_eligible", True)
                        and r["indicator_confidence"] < KNOWN_SCANNER_MIN_CONFIDENCE):
                    r["verdict_eligible"] = False
                    r["detail"] += (f"; not decisive: hosts of {n} of the {registry_orgs} organizations reach this "
                                    f"address on a schedule (a service everybody polls)")
                    changed = True
        if changed:
            kept = []
            for h in hosts:
                h["verdict"], h["confidence"] = _host_verdict(h["rows"])
                if h["verdict"] != "none":
                    kept.append(h)
            assessed[i] = (oid, kept)


def _organization(oid: str, hosts: list[dict], *, registry: dict[str, dict], host_info: dict[str, dict[str, Any]],
                  sector_of: Callable[[str], str] | None) -> dict[str, Any]:
    _post_exploitation(hosts)
    best = max(hosts, key=lambda h: (VERDICT_RANK[h["verdict"]], h["confidence"]))
    verdict = best["verdict"]
    conf = _noisy_or([h["confidence"] for h in hosts if h["verdict"] == verdict])
    all_rows = [r for h in hosts for r in h["rows"]]
    meta = registry.get(oid)
    infos = [host_info.get(h["ip"]) or {} for h in hosts]
    asns = sorted({int(i["asn"]) for i in infos if i.get("asn")})
    if meta:
        name, sector, country, source = meta["name"], meta["sector"], meta["country"], "registry"
    else:
        as_org = next((i.get("as_org") for i in infos if i.get("as_org")), None)
        name = as_org or ("Unattributed addresses" if oid == "unattributed" else oid)
        sector = sector_of(name) if (sector_of and as_org) else "unknown"
        country = next((i.get("country") for i in infos if i.get("country")), None)
        source = "asn" if oid.startswith("AS") else "none"
    if not country:
        country = next((i.get("country") for i in infos if i.get("country")), None)
    host_out = []
    for h in sorted(hosts, key=lambda h: (-VERDICT_RANK[h["verdict"]], -h["confidence"], h["ip"])):
        rows = h["rows"]
        host_out.append({
            "ip": h["ip"], "verdict": h["verdict"], "confidence": h["confidence"],
            "tlp": _max_tlp(r["tlp"] for r in rows),
            "first_seen": min(r["first_seen"] for r in rows), "last_seen": max(r["last_seen"] for r in rows),
            "indicators": sorted({r["indicator"] for r in rows}),
            "evidence": [_public(r) for r in rows],
        })
    return {
        "org_id": oid, "name": name, "sector": sector or "unknown", "country": country,
        "asns": asns, "source": source, "verdict": verdict, "confidence": conf,
        "tlp": _max_tlp(r["tlp"] for r in all_rows),
        "first_seen": min(r["first_seen"] for r in all_rows),
        "last_seen": max(r["last_seen"] for r in all_rows),
        "hosts": host_out,
    }


def _row(base: dict, b: Behaviour, c: dict, direction: str, *, shared: bool) -> dict:
    return dict(
        base,
        behaviour=b.name,
        direction=direction,
        dst_port=c["service_port"],
        flows=int(c["flows"]),
        bytes_out=int(c["req_bytes"]),
        bytes_in=int(c["resp_bytes"]),
        score=round(b.score, 4),
        detail=b.detail,
        confidence=evidence_confidence(b.score, base["indicator_confidence"], shared, base["_age_days"]),
    )


def _age_days(valid_from: Any, first_seen: Any) -> float | None:
    """Days between the indicator's publication (valid_from) and the first contact."""
    if not isinstance(valid_from, datetime) or not isinstance(first_seen, datetime):
        return None
    return (first_seen - valid_from).total_seconds() / 86400.0


def _eligible(r: dict) -> bool:
    if not r.get("verdict_eligible", True):
        return False
    verdict = _verdict_of(r["behaviour"])
    if verdict == "none":
        return False
    # repeated contact alone is the weakest C2 sign (a user of a wrongly listed site makes it
    # too): it needs medium confidence; beacons, tunnels, long sessions and exfiltration
    # need only that the indicator is not low-confidence
    # on shared or popular infrastructure (CDN, cloud storage) even a strong pattern may be
    # someone else's upload or stream: it needs medium confidence as well
    need = MEDIUM_CONFIDENCE if r["behaviour"] == "callback" or r.get("_crowded") else LOW_CONFIDENCE
    return r["indicator_confidence"] >= need


def _host_verdict(rows: list[dict]) -> tuple[str, int]:
    eligible = [r for r in rows if _eligible(r)]
    # a lower-confidence C2 pattern counts when the same host was also exploited
    exploited = any(r["behaviour"] == "exploitation" and r["indicator_confidence"] >= LOW_CONFIDENCE for r in rows)
    if exploited:
        eligible += [r for r in rows if r["behaviour"] in COMPROMISE_BEHAVIOURS and r not in eligible
                     and r["indicator_confidence"] >= LOW_CONFIDENCE and r.get("verdict_eligible", True)]
    if not eligible:
        return "none", 0
    verdict = max((_verdict_of(r["behaviour"]) for r in eligible), key=lambda v: VERDICT_RANK[v])
    confs = [r["confidence"] for r in eligible if _verdict_of(r["behaviour"]) == verdict]
    for r in rows:
        r["decisive"] = r in eligible and _verdict_of(r["behaviour"]) == verdict
    return verdict, _noisy_or(confs)


def _post_exploitation(hosts: list[dict]) -> None:
    """Exploitation followed by two-way callbacks from the organization -> compromised."""
    exploits = [r for h in hosts for r in h["rows"]
                if r["behaviour"] == "exploitation" and r["indicator_confidence"] >= LOW_CONFIDENCE]
    if not exploits:
        return
    t0 = min(r["_first_t"] for r in exploits)
    for h in hosts:
        if h["verdict"] == "compromised":
            continue
        # a callback to shared or popular infrastructure (someone browsing a CDN address the
        # actor also used) does not turn an exploitation attempt into a compromise
        calls = [r for r in h["rows"]
                 if r["direction"] == "outbound" and r["behaviour"] not in ("outbound_attempt",)
                 and r.get("verdict_eligible", True) and not r.get("_crowded")
                 and r["_last_t"] >= t0 - CLOCK_SKEW_S and r["indicator_confidence"] >= LOW_CONFIDENCE]
        if calls:
            for r in calls:
                r["detail"] += "; follows exploitation of the organization"
                r["decisive"] = True
            h["verdict"] = "compromised"
            h["confidence"] = _noisy_or([r["confidence"] for r in calls] + [max(r["confidence"] for r in exploits)])


def _noisy_or(confs: list[int]) -> int:
    p = 1.0
    for c in confs:
        p *= 1.0 - max(0, min(99, c)) / 100.0
    return int(min(99, round(100 * (1.0 - p))))


def _max_tlp(values: Any) -> str:
    ranks = [TLP_NAMES.index(v) for v in values if v in TLP_NAMES]
    return TLP_NAMES[max(ranks)] if ranks else "clear"


def _public(r: dict) -> dict:
    return {k: v for k, v in r.items() if not k.startswith("_") and k != "verdict_eligible"}


__all__ = ["Assessment", "assess", "VERDICTS", "VERDICT_RANK", "TLP_NAMES", "iso", "tlp_name"]
