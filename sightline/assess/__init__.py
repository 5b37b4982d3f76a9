"""Assess: per-contact behaviours -> evidence rows -> verdict per host and organization.

Public API::

    assess(detection, orgs, host_info=None, shared=None, ...) -> Assessment

Evidence rows are typed (:class:`sightline.findings.model.Evidence`) and verdicts come from
the one verdict rule (:mod:`sightline.core.verdicts`), also used by triage and by every
audience's view.  What this module decides, per row, is which guards apply -- one rule for
every behaviour (:func:`guards_for`):

- an address many unrelated parties use at once (public resolvers for DNS traffic, CDN edges,
  big SaaS, CRL/OCSP: MISP warninglists and the geo tables' AS organization) or a hyperscaler
  cloud address (AWS, Azure, GCP) -- flows to it cannot be told from anybody else's: only a C2
  pattern (a beacon of at least ``crowded_beacon_min`` connections, one long session, a tunnel,
  exfiltration) decides, and only with very sure intel (``very_sure_confidence``); such an address
  connecting in is not an attack;
- a *popular* address (hosts of many organizations talk to it): only a C2 pattern decides, and
  its connecting in (webhooks, monitoring) is not exploitation or reconnaissance either;
- VPS providers and VPN exits change nothing: an actor's rented server is an ordinary indicator;
- probes and requests from known internet-wide research scanners decide nothing unless the
  intel is very sure;
- a crowded indicator that hosts of most of the registry's organizations reach on a schedule
  is a polled service (:func:`_polled_services`).

Organizations: a host belongs to the registry organization whose CIDR holds it (longest
prefix), else to ``[network] internal_ranges`` (org ``internal``), else to its ASN's
organization (``AS<asn>``), else to its /24 (IPv6: /48) -- never to one pooled organization.
An indicator inside a registered organization is that organization's compromised asset (a
relay or C2 host, behaviour ``relay``); the connections it makes do not make anybody a victim.
"""

from __future__ import annotations

import ipaddress
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import DEFAULT_DETECTION, DetectionParams
from ..core.tlp import LEVELS, strictest_label
from ..core.verdicts import (
    BEHAVIOUR_VERDICT,
    STRONG_C2,
    VERDICT_RANK,
    VERDICTS,
    assess_organization,
    noisy_or,
    org_order,
    verdict_of,
)
from ..detect import Detection
from ..detect.behaviours import (
    SCORE_COLUMNS,
    evidence_confidence,
    evidence_confidences,
    popular_threshold,
    scan_scores,
    score_inbound,
    score_outbound,
    table_columns,
)
from ..findings.model import Evidence, Host, Organization, StaleMatch, SuspectedInfrastructure
from ..net import ip_text, ip_texts

__all__ = [
    "Assessment",
    "assess",
    "guards_for",
    "SharedMark",
    "VERDICTS",
    "VERDICT_RANK",
    "iso",
    "tlp_name",
    "MULTI_TENANT",
    "group_of",
    "record_provenance",
]

MULTI_TENANT = frozenset({"resolver", "cdn", "saas", "crl", "dns", "dns_resolver"})
"""Shared-infrastructure categories where one address serves many unrelated parties at once."""
CROWDED_CATEGORIES = frozenset({"cloud"})
"""Hyperscaler cloud ranges (AWS, Azure, GCP, ...): one tenant per address at a time, but their
addresses front a great many ordinary services, and feeds polluted by sandbox runs list them.
They need C2-like regularity or volume, like a popular address.  VPS providers and VPN exits
(``hosting``, ``vpn``) -- where actors rent their servers -- change nothing: an actor's VPS is
an ordinary indicator."""
IGNORED_CATEGORIES = frozenset({"hosting", "vpn", "popular_domain"})
NOT_VICTIM_CATEGORIES = frozenset({"scanner", "cdn", "saas", "crl", "popular_site"})
"""Marks that make an unregistered address nobody's: never a victim (an open resolver may be a
home router, which campaigns do compromise: it stays a possible victim)."""


class SharedMark(Protocol):
    """What the shared-infrastructure classifier says of an address."""

    category: str
    list_name: str
    multi_tenant: bool


@dataclass(frozen=True)
class _Mark:
    category: str
    list_name: str
    multi_tenant: bool
    source: str = ""


def _as_mark(value: Any) -> _Mark | None:
    """Normalize a classifier's answer (a mark object, or the older ``"kind: name"`` text)."""
    if value is None:
        return None
    if isinstance(value, str):
        kind, _, name = value.partition(":")
        kind = kind.strip().lower()
        return _Mark(kind, value.strip(), kind in MULTI_TENANT)
    category = str(getattr(value, "category", "") or "").lower()
    name = str(getattr(value, "list_name", "") or category)
    mt = getattr(value, "multi_tenant", None)
    return _Mark(
        category,
        name,
        bool(mt) if mt is not None else category in MULTI_TENANT,
        str(getattr(value, "source", "") or ""),
    )


@dataclass
class Assessment:
    organizations: list[Organization]
    stale_matches: list[StaleMatch]
    suspected_infrastructure: list[SuspectedInfrastructure] = field(default_factory=list)
    relay_addresses: dict[str, str] = field(default_factory=dict)


def iso(ts: Any) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return str(ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return str(ts)


def tlp_name(rank: int | None) -> str:
    return LEVELS[max(0, min(4, int(rank or 0)))]


def group_of(host: str) -> str:
    """The address group standing for an unattributed host: its /24 (IPv6: /48)."""
    try:
        a = ipaddress.ip_address(host)
    except ValueError:
        return f"net:{host}"
    net = ipaddress.ip_network(f"{a}/{24 if a.version == 4 else 48}", strict=False)
    return f"net:{net}"


def assess(
    det: Detection,
    orgs: pa.Table,
    *,
    host_info: dict[str, dict[str, Any]] | None = None,
    shared: Callable[[str], Any] | None = None,
    sector_of: Callable[[str], str] | None = None,
    internal_ranges: Sequence[str] = (),
    as_org_mark: Callable[[str], Any] | None = None,
    params: DetectionParams = DEFAULT_DETECTION,
) -> Assessment:
    """Turn per-contact aggregates into evidence rows and verdicts.

    ``host_info`` maps an IP (text) to ``{"asn", "as_org", "country"}`` from the geo tables
    (victim hosts and actor addresses); ``shared(ip)`` gives the shared-infrastructure mark of
    an actor address (an object with ``category``, ``list_name``, ``multi_tenant``) or None;
    ``as_org_mark(name)`` the same for an AS organization's name (an address the lists miss
    but the geo tables place at Akamai or Microsoft); ``sector_of(name)`` classifies ASN
    organizations; ``internal_ranges`` are the CIDRs of ``[network] internal_ranges``;
    ``params`` the thresholds (:class:`sightline.config.DetectionParams`).
    """
    host_info = host_info or {}
    registry: dict[str, dict[str, Any]] = {}
    for r in orgs.select(["org_id", "name", "sector", "country"]).to_pylist():
        registry.setdefault(r["org_id"], r)
    host_org: dict[str, str | None] = _by_address(det.host_org, "host", "org_id")
    relay_org: dict[str, str] = _by_address(det.actor_org, "actor", "org_id") if det.actor_org is not None else {}
    internal = [ipaddress.ip_network(c, strict=False) for c in internal_ranges]

    def org_of(host: str) -> str:
        oid = host_org.get(host)
        if oid:
            return oid
        if internal:
            try:
                a = ipaddress.ip_address(host)
                if any(a.version == n.version and a in n for n in internal):
                    return INTERNAL_ORG
            except ValueError:
                pass
        info = host_info.get(host) or {}
        if info.get("asn"):
            return f"AS{int(info['asn'])}"
        return group_of(host)

    mark_cache: dict[str, _Mark | None] = {}

    def mark_of(ip: str) -> _Mark | None:
        if ip not in mark_cache:
            m = _as_mark(shared(ip)) if shared else None
            if m is None and as_org_mark is not None:
                as_org = (host_info.get(ip) or {}).get("as_org")
                m = _as_mark(as_org_mark(as_org)) if as_org else None
            mark_cache[ip] = m
        return mark_cache[ip]

    baseline: dict[str, float] = _by_address(det.baseline, "host", "daily_median") if det.baseline is not None else {}

    # popularity of each indicator among organizations talking to it two-way (from the engine)
    thr = popular_threshold(len(registry), params)
    talker_orgs: dict[str, int] = {}
    if det.contacts.num_rows and "talker_orgs" in det.contacts.column_names:
        per_ind = det.contacts.group_by("indicator").aggregate([("talker_orgs", "max")])
        talker_orgs = {
            k: int(v or 0)
            for k, v in zip(per_ind.column("indicator").to_pylist(), per_ind.column("talker_orgs_max").to_pylist())
        }
    popular = {ind for ind, n in talker_orgs.items() if n >= thr}

    ctx = _Context(baseline=baseline, mark_of=mark_of, popular=popular, relay_org=relay_org, params=params)
    assessed: dict[str, list[Host]] = {}
    beaconing: dict[str, set[str]] = defaultdict(set)  # crowded indicator -> orgs whose hosts beacon to it

    def nobody(host: str) -> bool:
        # an unregistered address the lists say is a research scanner or a shared front end (CDN,
        # SaaS) is nobody a campaign compromises: Censys calling a listed relay is Censys crawling
        if host_org.get(host) or shared is None:
            return False
        m = _as_mark(shared(host))
        return m is not None and m.category in NOT_VICTIM_CATEGORIES

    # every contact of the hunt at once, column-wise (behaviours, marks, guards, scans,
    # confidences); only evidence rows become Python objects
    prepared = _prepare_contacts(det, org_of, nobody, ctx)
    if prepared is not None:
        for oid, hosts in _evidence_hosts(prepared, ctx):
            for h in hosts:
                for r in h.evidence:
                    if r.behaviour == "beacon" and r.crowded and not r.guards:
                        beaconing[r.indicator].add(oid)
            assessed.setdefault(oid, []).extend(hosts)
    # addresses the intel names inside registered organizations: their compromised assets
    for oid, host in _relay_hosts(ctx):
        existing = next((h for h in assessed.get(oid, []) if h.ip == host.ip), None)
        if existing is not None:
            existing.evidence.extend(host.evidence)
        else:
            assessed.setdefault(oid, []).append(host)
    _polled_services(assessed, beaconing, len(registry), params)
    organizations = []
    for oid in sorted(assessed):
        kept = assess_organization(assessed.pop(oid), params)
        if kept:
            organizations.append(_organization(oid, kept, registry=registry, host_info=host_info, sector_of=sector_of))
    organizations.sort(key=lambda o: org_order(o.verdict, o.confidence, o.org_id))

    stale = []
    for s in det.stale.to_pylist():
        host_ip = ip_text(s["host_ip4"], s["host_ip6"]) or ""
        actor_ip = ip_text(s["actor_ip4"], s["actor_ip6"]) or ""
        oid = relay_org.get(actor_ip) or org_of(host_ip)
        stale.append(
            StaleMatch(
                org_id=oid,
                host=actor_ip if actor_ip in relay_org else host_ip,
                indicator=s["indicator"],
                actor_ip=actor_ip,
                flows=int(s["flows"]),
                first_seen=iso(s["first_seen"]),
                last_seen=iso(s["last_seen"]),
                valid_from=iso(s["valid_from"]),
                valid_until=iso(s["valid_until"]),
                tlp=tlp_name(s["tlp_rank"]),
            )
        )
    stale.sort(key=lambda s: (s.org_id or "", s.host, s.indicator))
    return Assessment(organizations, stale, relay_addresses=dict(relay_org))


def _by_address(t: pa.Table, side: str, column: str) -> dict[str, Any]:
    """``column`` of each row of ``t`` keyed by the row's ``<side>_ip4``/``<side>_ip6`` address
    as text (the last row of an address wins)."""
    if t.num_rows == 0:
        return {}
    keys = pc.fill_null(ip_texts(t.column(side + "_ip4"), t.column(side + "_ip6")), "").to_pylist()
    return dict(zip(keys, t.column(column).to_pylist()))


INTERNAL_ORG = "internal"


@dataclass
class _Context:
    baseline: dict[str, float]
    mark_of: Callable[[str], _Mark | None]
    popular: set[str]
    relay_org: dict[str, str]
    params: DetectionParams = DEFAULT_DETECTION
    relays: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Contacts:
    """Every contact of a hunt, sorted by organization and host, with its behaviour rows.

    ``table`` holds the contact columns plus ``host``, ``org_id``, ``actor_ip`` (text) and ISO
    ``first_seen_iso``/``last_seen_iso``; per contact, ``outbound`` (the host initiated),
    ``host_ord`` and ``org_ord`` (one number per host and per organization, ascending in table
    order); ``beh_*`` are the behaviour rows: ``beh_row`` indexes the table (a contact's rows
    together, in the order they were listed), ``beh_name``/``beh_score``/``beh_detail`` what was scored."""

    table: pa.Table
    outbound: np.ndarray
    host_ord: np.ndarray
    org_ord: np.ndarray
    beh_row: np.ndarray
    beh_name: pa.Array
    beh_score: np.ndarray
    beh_detail: pa.Array


def _prepare_contacts(
    det: Detection,
    org_of: Callable[[str], str],
    nobody: Callable[[str], bool] | None = None,
    ctx: _Context | None = None,
) -> _Contacts | None:
    """The hunt's contacts sorted by organization and host (hosts together), each attributed
    to its organization, behaviours scored column-wise over all contacts at once (None: no
    contact with a host that can be a victim)."""
    params = ctx.params if ctx is not None else DEFAULT_DETECTION
    baseline = ctx.baseline if ctx is not None else {}
    ct = det.contacts
    if ct.num_rows == 0:
        return None
    host_id, six_values = _address_ids(ct.column("host_ip4"), ct.column("host_ip6"))
    six = six_values.to_pylist()
    ids, inverse = np.unique(host_id, return_inverse=True)

    v6_type = ct.schema.field("host_ip6").type

    def names_of(ids: np.ndarray) -> list[str]:
        v4 = pa.array(np.where(ids >= 0, ids, 0).astype(np.uint32), mask=ids < 0)
        v6 = pa.array([six[-1 - i] if i < 0 else None for i in ids.tolist()], v6_type)
        return [t or "unknown" for t in ip_texts(v4, v6).to_pylist()]

    names = names_of(ids)
    # multicast, broadcast, unspecified and loopback destinations are nobody: never victims
    v4_ok = ~(((ids >> 28) == 14) | (ids == 0) | ((ids >> 24) == 127) | (ids == 0xFFFFFFFF))
    host_ok = np.where(ids >= 0, v4_ok, True)
    for i in np.flatnonzero(ids < 0).tolist():
        host_ok[i] = _is_host(names[i])
    if nobody is not None:
        for i in np.flatnonzero(host_ok).tolist():
            host_ok[i] = not nobody(names[i])
    if not host_ok.all():
        keep_rows = host_ok[inverse]
        if not keep_rows.any():
            return None
        ct = ct.filter(pa.array(keep_rows))
        ids, inverse = np.unique(host_id[keep_rows], return_inverse=True)
        names = names_of(ids)
    # organizations numbered in their sorted order (hashed, then only the distinct ids sorted)
    org_enc = pa.array([org_of(h) for h in names], pa.string()).dictionary_encode()
    by_name = pc.sort_indices(org_enc.dictionary).to_numpy()
    rank = np.empty(len(by_name), dtype=np.int64)
    rank[by_name] = np.arange(len(by_name))
    org_keys = np.array(org_enc.dictionary.take(pa.array(by_name)).to_pylist(), dtype=object)
    org_idx_of_host = rank[org_enc.indices.to_numpy()]
    org_idx = org_idx_of_host[inverse]
    order = np.lexsort((inverse, org_idx))
    ct = ct.take(pa.array(order))
    sorted_org = org_idx[order]
    host_idx = inverse[order]
    ct = ct.append_column("host", pa.array(names, pa.string()).take(pa.array(host_idx)))
    ct = ct.append_column("org_id", pa.array([str(k) for k in org_keys], pa.string()).take(pa.array(sorted_org)))
    ct = ct.append_column("actor_ip", ip_texts(ct.column("actor_ip4"), ct.column("actor_ip6")))
    # first/last seen as the findings write them, for every contact at once
    for col in ("first_seen", "last_seen"):
        if col in ct.column_names:
            ct = ct.append_column(col + "_iso", _iso_column(ct.column(col)))
    cols = table_columns(ct)
    median = np.array([baseline.get(h, np.nan) for h in names], dtype=np.float64)
    cols["daily_median"] = median[host_idx]
    outbound = (
        _np(ct.column("outbound"), False).astype(bool) if "outbound" in ct.column_names else np.zeros(len(order), bool)
    )
    focused = _focused(ct, sorted_org, host_idx, ~outbound, params)
    rows: list[np.ndarray] = []
    beh_names: list[pa.Array] = []
    scores: list[np.ndarray] = []
    details: list[pa.Array] = []
    for mask, inbound in ((outbound, False), (~outbound, True)):
        idx = np.flatnonzero(mask)
        if len(idx):
            sub = {k: v[idx] for k, v in cols.items()}
            s = score_inbound(sub, focused[idx], params) if inbound else score_outbound(sub, params)
            rows.append(idx[s.row])
            beh_names.append(_array(s.name).cast(pa.string()))
            scores.append(np.asarray(s.score, dtype=np.float64))
            details.append(_array(s.detail).cast(pa.string()))
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    at = np.argsort(row, kind="stable")  # a contact's rows together, in the order they were listed
    take = pa.array(at)
    # what the evidence rows are made of (the scores are done)
    scoring_only = {*SCORE_COLUMNS, "host_ip4", "host_ip6", "actor_ip4", "actor_ip6"}
    ct = ct.select([k for k in ct.column_names if k in _ROW_COLUMNS or k not in scoring_only])
    return _Contacts(
        table=ct,
        outbound=outbound,
        host_ord=host_idx.astype(np.int64),
        org_ord=sorted_org.astype(np.int64),
        beh_row=row[at],
        beh_name=pa.concat_arrays(beh_names).take(take) if beh_names else pa.array([], pa.string()),
        beh_score=np.concatenate(scores)[at] if scores else np.zeros(0),
        beh_detail=pa.concat_arrays(details).take(take) if details else pa.array([], pa.string()),
    )


def _address_ids(v4: pa.ChunkedArray, v6: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """One integer per address of the store's two-column form: the IPv4 value, or -1 - (index
    of the IPv6 value among the distinct ones); and those distinct IPv6 values."""
    is4 = _np(pc.is_valid(v4), False).astype(bool)
    enc = _array(pc.if_else(pa.array(is4), pa.scalar(None, v6.type), v6)).dictionary_encode(null_encoding="encode")
    ids = np.where(is4, _np(v4, 0).astype(np.int64), -1 - _np(enc.indices, 0).astype(np.int64))
    return ids, enc.dictionary


def _array(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _iso_column(ts: pa.ChunkedArray) -> pa.Array:
    """Times as the findings write them (ISO 8601, seconds, UTC), column-wise."""
    if pa.types.is_timestamp(ts.type):
        # numpy's formatter (C) rather than strftime per value; whole seconds, as iso() writes them
        secs = _array(ts).cast(pa.timestamp("s", tz=ts.type.tz), safe=False).cast(pa.int64())
        valid = _np(pc.is_valid(secs), False).astype(bool)
        text = np.datetime_as_string(_np(secs, 0).astype("datetime64[s]"), unit="s")
        out = pc.binary_join_element_wise(pa.array(text, pa.string()), "Z", "")
        return out if valid.all() else pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))
    return pa.array([iso(v) for v in ts.to_pylist()], pa.string())


def _focused(
    ct: pa.Table, org: np.ndarray, host: np.ndarray, inbound: np.ndarray, params: DetectionParams
) -> np.ndarray:
    """Inbound contacts whose actor address touched few hosts and ports of the organization
    (``focused_max_hosts``/``focused_max_ports``): medium-sized requests count as exploitation."""
    focused = np.zeros(len(org), dtype=bool)
    idx = np.flatnonzero(inbound)
    if not len(idx):
        return focused
    actor = _address_ids(ct.column("actor_ip4"), ct.column("actor_ip6"))[0][idx]
    port = _np(ct.column("service_port"), -1).astype(np.int64)[idx]
    # one number per (organization, actor address): IPv4 values and IPv6 ordinals fit 34 bits
    _, pair = np.unique(org[idx].astype(np.int64) * (1 << 34) + (actor + (1 << 33)), return_inverse=True)
    pair = pair.reshape(-1)
    n_pairs = int(pair.max()) + 1
    hosts = np.bincount(np.unique(pair * (int(host.max()) + 1) + host[idx]) // (int(host.max()) + 1), minlength=n_pairs)
    ports = np.bincount(np.unique(pair * 65537 + (port + 1)) // 65537, minlength=n_pairs)
    focused[idx] = (hosts[pair] <= params.focused_max_hosts) & (ports[pair] <= params.focused_max_ports)
    return focused


_ROW_COLUMNS = (
    "host",
    "org_id",
    "actor_ip",
    "actor",
    "indicator",
    "indicator_confidence",
    "tlp_rank",
    "valid_from",
    "first_seen",
    "last_seen",
    "first_seen_iso",
    "last_seen_iso",
    "outbound",
    "service_port",
    "flows",
    "failed",
    "req_bytes",
    "resp_bytes",
    "max_duration",
    "s_n",
)
"""Contact columns the evidence rows, scans and relays are built from."""


def _is_host(ip: str) -> bool:
    """A unicast address a host can have (not multicast, broadcast, unspecified or loopback)."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not (a.is_multicast or a.is_unspecified or a.is_loopback or (a.version == 4 and str(a) == "255.255.255.255"))


DNS_PORTS = (53, 853)
"""Ports on which an open resolver's mark says the contact is name resolution."""


def _effective(mark: _Mark | None, port: int | None, ip: str | None = None) -> _Mark | None:
    """The mark as it applies to a contact on ``port`` (None: it changes nothing).

    VPS and VPN ranges change nothing (:data:`IGNORED_CATEGORIES`).  Lists of public resolvers
    name tens of thousands of open resolvers -- home and office routers among them, the devices
    actors take over as relays: a resolver mark speaks for DNS traffic (53, 853) only, or for
    any port of the well-known anycast resolver operators sightline lists itself (DNS over
    HTTPS)."""
    if mark is None or mark.category in IGNORED_CATEGORIES:
        return None
    if mark.category not in ("resolver", "dns", "dns_resolver"):
        return mark
    if port in DNS_PORTS or str(getattr(mark, "source", "")).startswith("sightline:"):
        return mark
    if ip is not None:
        from ..enrich.shared_infra import is_well_known_resolver

        if is_well_known_resolver(ip):
            return mark
    return None


def guards_for(
    behaviour: str,
    direction: str,
    mark: _Mark | None,
    *,
    popular: bool,
    indicator_confidence: int,
    series_n: int = 0,
    max_duration: float = 0.0,
    params: DetectionParams = DEFAULT_DETECTION,
) -> list[str]:
    """The guards that keep one evidence row from deciding.  One rule for every behaviour.

    - research scanner: nothing decides, unless the intel is very sure (``very_sure_confidence``);
    - shared (multi-tenant: CDN edge, resolver, SaaS, CRL) or hyperscaler cloud: flows to the
      address cannot be told from anybody else's.  Only a C2 pattern (a beacon of at least
      ``crowded_beacon_min`` connections, one long session, a tunnel, exfiltration) decides, and only
      when the intel is very sure; a multi-tenant address connecting in (a CDN's origin pull, a
      SaaS webhook) is not an attack;
    - popular (hosts of many organizations talk to it): only a C2 pattern decides; connecting in
      is a service's traffic, not an attack;
    - otherwise no guard (confidence floors are the verdict rule's: :mod:`sightline.core.verdicts`).

    Parameters
    ----------
    behaviour, direction
        The row's behaviour and direction (``outbound``: the victim host initiated).
    mark
        Shared-infrastructure mark of the actor address as it applies to the contact (None: none).
    popular
        Hosts of many organizations talk to the indicator.
    indicator_confidence
        The intel's confidence.
    series_n, max_duration
        Connections in a beacon's series; the longest single session of the contact.
    params
        The thresholds (:class:`sightline.config.DetectionParams`).
    """
    very_sure = indicator_confidence >= params.very_sure_confidence
    if mark is not None and mark.category == "scanner":
        return [] if very_sure else ["research_scanner"]
    shared = mark is not None and (mark.multi_tenant or mark.category in CROWDED_CATEGORIES)
    if not (shared or popular or mark is not None):
        return []
    out: list[str] = []
    if direction == "inbound":
        if mark is not None and mark.multi_tenant:
            out.append("shared_infrastructure")
        elif popular:
            out.append("popular")
        return out
    if behaviour not in STRONG_C2:
        return ["weak_on_crowded"]
    if behaviour == "beacon" and series_n < params.crowded_beacon_min:
        return ["too_few_connections"]
    if behaviour == "long_connection" and max_duration < params.long_session_s:
        return ["weak_on_crowded"]  # short sessions adding up: how a busy service looks
    if shared and not very_sure:
        return ["shared_infrastructure"]
    return out


def _evidence_hosts(cs: _Contacts, ctx: _Context) -> Iterator[tuple[str, list[Host]]]:
    """Evidence rows of every contact, grouped by host (no verdicts yet), per organization.

    Column-wise over all contacts: relay filtering, shared-infrastructure marks (once per
    distinct address and port), guards (once per distinct combination of what they depend on),
    scan aggregation per (host, prober, indicator), confidences, and the rows' order; only the
    evidence rows themselves become Python objects."""
    params = ctx.params
    ct = cs.table
    n = ct.num_rows
    actor_ip = _array(ct.column("actor_ip"))
    outbound = cs.outbound
    keep = np.ones(n, dtype=bool)
    if ctx.relay_org:
        # addresses the intel names inside registered organizations: their activity is the
        # organization's compromised asset; the relay's own connections, and its organization's
        # traffic with it, make nobody a victim (another organization calling it may be)
        idx = np.flatnonzero(_np(pc.is_in(actor_ip, value_set=pa.array(sorted(ctx.relay_org), pa.string())), False))
        cols = [k for k in _ROW_COLUMNS if k in ct.column_names]
        for i, c in zip(idx.tolist(), ct.take(pa.array(idx)).select(cols).to_pylist()):
            relay = ctx.relay_org[c["actor_ip"]]
            _relay_activity(ctx, relay, c)
            if not c["outbound"] or c["org_id"] == relay:
                keep[i] = False

    # shared-infrastructure marks as they apply to each contact: once per (address, port)
    actor_enc = actor_ip.dictionary_encode()
    actor_code = _np(actor_enc.indices, -1).astype(np.int64)
    actors = actor_enc.dictionary.to_pylist()
    port = _np(ct.column("service_port"), -1).astype(np.int64)
    pairs, pair_of = np.unique(actor_code * 65538 + (port + 1), return_inverse=True)
    pair_of = pair_of.reshape(-1)
    classes: dict[tuple[str, bool], int] = {}
    class_mark: list[_Mark] = []
    pair_class = np.full(len(pairs), -1, dtype=np.int64)
    pair_text: list[str | None] = [None] * len(pairs)
    for j, key in enumerate(pairs.tolist()):
        a, p = divmod(key, 65538)
        ip = actors[a] if a >= 0 else None
        mark = _effective(ctx.mark_of(ip), p - 1 if p > 0 else None, ip) if ip is not None else None
        if mark is not None:
            k = (mark.category, mark.multi_tenant)
            if k not in classes:
                classes[k] = len(class_mark)
                class_mark.append(mark)
            pair_class[j] = classes[k]
            pair_text[j] = f"{mark.category}: {mark.list_name}"
    mark_class = pair_class[pair_of]
    has_mark = mark_class >= 0
    indicator = _array(ct.column("indicator"))
    popular = _np(pc.is_in(indicator, value_set=pa.array(sorted(ctx.popular), pa.string())), False).astype(bool)
    ic = _np(ct.column("indicator_confidence"), 50).astype(np.int64)
    tlp = pa.array(LEVELS).take(pa.array(np.clip(_np(ct.column("tlp_rank"), 0).astype(np.int64), 0, 4)))
    age = _age_days_column(ct)

    # behaviour rows of the kept contacts: outbound every behaviour, inbound the contact's one
    row, name = cs.beh_row, cs.beh_name
    first = np.ones(len(row), dtype=bool)
    first[1:] = row[1:] != row[:-1]
    is_scan = _np(pc.equal(name, "scan"), False).astype(bool)
    kept, out_b = keep[row], outbound[row]
    direct = np.flatnonzero(kept & (out_b | (first & ~is_scan)))
    scan = np.flatnonzero(kept & ~out_b & first & is_scan)
    d_name = name.take(pa.array(direct))
    may = _may_decide(cs, row[direct], d_name, row[scan], ctx)
    direct, d_name = direct[may], d_name.filter(pa.array(may))

    # direct rows: one per behaviour row
    d_row = row[direct]
    d_out = outbound[d_row]
    d_score = cs.beh_score[direct]
    sn = np.trunc(_np(ct.column("s_n"), 0)) if "s_n" in ct.column_names else np.zeros(n)
    max_d = _np(ct.column("max_duration"), 0) if "max_duration" in ct.column_names else np.zeros(n)
    d_guards = _guards_column(
        d_name,
        d_out,
        mark_class[d_row],
        popular[d_row],
        ic[d_row],
        np.where(d_out, sn[d_row], 0),
        np.where(d_out, max_d[d_row], 0.0),
        class_mark,
        params,
    )
    d = {
        "behaviour": d_name.to_pylist(),
        "direction": np.where(d_out, "outbound", "inbound").tolist(),
        "dst_port": ct.column("service_port").take(pa.array(d_row)).to_pylist(),
        "flows": _ints(ct, "flows", d_row),
        "bytes_out": _ints(ct, "req_bytes", d_row),
        "bytes_in": _ints(ct, "resp_bytes", d_row),
        "score": [round(x, 4) for x in d_score.tolist()],
        "detail": cs.beh_detail.take(pa.array(direct)).to_pylist(),
        "first_seen": ct.column("first_seen_iso").take(pa.array(d_row)).to_pylist(),
        "last_seen": ct.column("last_seen_iso").take(pa.array(d_row)).to_pylist(),
        "guards": d_guards,
    }
    parts = [(d_row, d, d_score)]

    # probes: one row per (host, prober, indicator) with the organization's breadth
    if len(scan):
        s_src, s_rows, s_score = _scan_rows(ct, row[scan])
        none = np.zeros(len(s_src))
        s_rows["guards"] = _guards_column(
            pa.array(["scan"] * len(s_src), pa.string()),
            none.astype(bool),
            mark_class[s_src],
            popular[s_src],
            ic[s_src],
            none,
            none,
            class_mark,
            params,
        )
        parts.append((s_src, s_rows, s_score))

    # one table of rows: the contact each row takes its intel columns from, and its own columns
    src = np.concatenate([p[0] for p in parts])
    raw = np.concatenate([p[2] for p in parts])
    rows: dict[str, list[Any]] = {k: sum((p[1][k] for p in parts), []) for k in parts[0][1]}
    if not len(src):
        return
    host_ord = cs.host_ord[src]
    confidence = evidence_confidences(raw, ic[src], has_mark[src], age[src], params).tolist()
    src_a = pa.array(src)
    host = ct.column("host").take(src_a).to_pylist()
    org = ct.column("org_id").take(src_a).to_pylist()
    ind = indicator.take(src_a).to_pylist()
    actor_txt = actor_ip.take(src_a).to_pylist()
    actor = ct.column("actor").take(src_a).to_pylist() if "actor" in ct.column_names else [None] * len(src)
    ic_l = ic[src].tolist()
    tlp_l = tlp.take(src_a).to_pylist()
    crowded = (popular | has_mark)[src].tolist()
    shared = [pair_text[j] for j in pair_of[src].tolist()]

    # fully ordered within a host (the engine returns contacts in no particular order, findings
    # must not vary): strongest verdict, score, behaviour, indicator, direction, port, first seen, actor
    rank = {b: VERDICT_RANK[verdict_of(b)] for b in set(rows["behaviour"])}
    keys = pa.table(
        {
            "host": pa.array(host_ord),
            "rank": pa.array([-rank[b] for b in rows["behaviour"]], pa.int64()),
            "score": pa.array([-x for x in rows["score"]], pa.float64()),
            "behaviour": pa.array(rows["behaviour"], pa.string()),
            "indicator": pa.array(ind, pa.string()),
            "direction": pa.array(rows["direction"], pa.string()),
            "port": pa.array([-1 if p is None else p for p in rows["dst_port"]], pa.int64()),
            "first_seen": pa.array(rows["first_seen"], pa.string()),
            "actor": pc.fill_null(pa.array(actor_txt, pa.string()), ""),
        }
    )
    order = pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in keys.column_names]).to_pylist()

    def ordered(values: Sequence[Any]) -> list[Any]:
        return [values[i] for i in order]

    guards = ordered(rows["guards"])
    n_rows = len(order)
    columns = {
        "behaviour": ordered(rows["behaviour"]),
        "indicator": ordered(ind),
        "direction": ordered(rows["direction"]),
        "dst_port": ordered(rows["dst_port"]),
        "flows": ordered(rows["flows"]),
        "bytes_out": ordered(rows["bytes_out"]),
        "bytes_in": ordered(rows["bytes_in"]),
        "first_seen": ordered(rows["first_seen"]),
        "last_seen": ordered(rows["last_seen"]),
        "score": ordered(rows["score"]),
        "detail": ordered(rows["detail"]),
        "actor_ip": ordered(actor_txt),
        "actor": ordered(actor),
        "indicator_confidence": ordered(ic_l),
        "tlp": ordered(tlp_l),
        "confidence": ordered(confidence),
        "decisive": [None] * n_rows,
        "eligible": [not g for g in guards],
        "guards": guards,
        "crowded": ordered(crowded),
        "follows_exploitation": [False] * n_rows,
        "shared_infrastructure": ordered(shared),
    }
    # made positionally (one C call per row): the columns above are the model's leading fields
    leading = Evidence.__struct_fields__[: len(columns)]
    if set(leading) != set(columns):  # pragma: no cover - the model's field order changed
        raise RuntimeError(f"Evidence fields {leading} are not the columns assessment makes")
    evidence = list(map(Evidence, *(columns[f] for f in leading)))
    # hosts are runs of rows, organizations runs of hosts
    by_host = host_ord[np.asarray(order, dtype=np.int64)]
    starts = np.flatnonzero(np.r_[True, by_host[1:] != by_host[:-1]]).tolist()
    ends = [*starts[1:], n_rows]
    host_of = ordered(host)
    org_of = ordered(org)
    current_org = org_of[0]
    hosts: list[Host] = []
    for a, b in zip(starts, ends):
        if org_of[a] != current_org:
            yield current_org, hosts
            hosts, current_org = [], org_of[a]
        rows_of_host = evidence[a:b]
        hosts.append(
            Host(
                ip=host_of[a],
                verdict="none",
                confidence=0,
                indicators=sorted({r.indicator for r in rows_of_host}),
                evidence=rows_of_host,
            )
        )
    yield current_org, hosts


def _may_decide(cs: _Contacts, rows: np.ndarray, names: pa.Array, probed: np.ndarray, ctx: _Context) -> np.ndarray:
    """Which of the (non-probe) behaviour rows ``rows``/``names`` belong to a host the verdict
    rule can give a verdict: a host with a row of a behaviour that supports one (probes
    ``probed`` included), or with an outbound row in an organization that saw exploitation (a
    callback after exploitation), or an address the intel names (its relay rows join it).  The
    rule gives every other host ``none``, so its rows are never made."""
    host, org, outbound = cs.host_ord, cs.org_ord, cs.outbound
    n_hosts = int(host.max()) + 1 if len(host) else 0
    deciding = pa.array(sorted(b for b, v in BEHAVIOUR_VERDICT.items() if v != "none"), pa.string())
    supports = _np(pc.is_in(names, value_set=deciding), False).astype(bool)
    keep = np.zeros(n_hosts, dtype=bool)
    keep[host[rows[supports]]] = True
    keep[host[probed]] = True
    exploited = np.zeros(int(org.max()) + 1 if len(org) else 0, dtype=bool)
    exploited[org[rows[_np(pc.equal(names, "exploitation"), False).astype(bool)]]] = True
    out_rows = rows[outbound[rows]]
    keep[host[out_rows[exploited[org[out_rows]]]]] = True
    if ctx.relay_org:
        named = _np(pc.is_in(cs.table.column("host"), value_set=pa.array(sorted(ctx.relay_org), pa.string())), False)
        keep[host[named.astype(bool)]] = True
    return np.asarray(keep[host[rows]], dtype=bool)


def _np(a: pa.Array | pa.ChunkedArray, fill: Any) -> np.ndarray:
    """A column as a numpy array, nulls as ``fill``."""
    return np.asarray(_array(pc.fill_null(a, fill)).to_numpy(zero_copy_only=False))


def _ints(ct: pa.Table, column: str, rows: np.ndarray) -> list[int]:
    return list(pc.cast(ct.column(column).take(pa.array(rows)), pa.int64(), safe=False).to_pylist())


def _age_days_column(ct: pa.Table) -> np.ndarray:
    """Days between each contact's indicator publication (valid_from) and its first contact
    (NaN: unknown)."""
    n = ct.num_rows
    if "valid_from" not in ct.column_names or not all(
        pa.types.is_timestamp(ct.schema.field(c).type) for c in ("valid_from", "first_seen")
    ):
        return np.full(n, np.nan)

    def micros(col: str) -> tuple[np.ndarray, np.ndarray]:
        c = ct.column(col)
        t = c.cast(pa.timestamp("us", tz=c.type.tz), safe=False).cast(pa.int64())
        return _np(t, 0).astype(np.int64), _np(pc.is_valid(c), False).astype(bool)

    vf, vf_ok = micros("valid_from")
    fs, fs_ok = micros("first_seen")
    return np.where(vf_ok & fs_ok, (fs - vf) / 1e6 / 86400.0, np.nan)


def _guards_column(
    behaviour: pa.Array,
    outbound: np.ndarray,
    mark_class: np.ndarray,
    popular: np.ndarray,
    indicator_confidence: np.ndarray,
    series_n: np.ndarray,
    max_duration: np.ndarray,
    class_mark: list[_Mark],
    params: DetectionParams,
) -> list[list[str]]:
    """:func:`guards_for` of each row, computed once per distinct combination of what it reads."""
    if not len(outbound):
        return []
    enc = behaviour.dictionary_encode()
    names = enc.dictionary.to_pylist()
    # one number per combination: behaviour, mark class (+1) and five yes/no facts
    key = (_np(enc.indices, 0).astype(np.int64) * (len(class_mark) + 1) + (mark_class + 1)) * 32 + (
        outbound.astype(np.int64) * 16
        + popular.astype(np.int64) * 8
        + (indicator_confidence >= params.very_sure_confidence).astype(np.int64) * 4
        + (series_n >= params.crowded_beacon_min).astype(np.int64) * 2
        + (max_duration >= params.long_session_s).astype(np.int64)
    )
    combos, which = np.unique(key, return_inverse=True)
    rules = []
    for k in combos.tolist():
        head, facts = divmod(k, 32)
        b, m = divmod(head, len(class_mark) + 1)
        rules.append(
            guards_for(
                names[b],
                "outbound" if facts & 16 else "inbound",
                class_mark[m - 1] if m > 0 else None,
                popular=bool(facts & 8),
                indicator_confidence=params.very_sure_confidence if facts & 4 else 0,
                series_n=params.crowded_beacon_min if facts & 2 else 0,
                max_duration=params.long_session_s if facts & 1 else 0.0,
                params=params,
            )
        )
    # rows share their combination's list: the rule replaces a row's guards, it never edits them
    return [rules[w] for w in which.reshape(-1).tolist()]


def _scan_rows(ct: pa.Table, contacts: np.ndarray) -> tuple[np.ndarray, dict[str, list[Any]], np.ndarray]:
    """Probes aggregated per (host, prober, indicator): flows, ports, failed, bytes, first and
    last seen, and how many hosts of the organization the prober probed.  Each row takes its
    intel columns (mark, confidence, TLP) from its first contact; returns (that contact, the
    rows' own columns, their scores)."""
    t = ct.take(pa.array(contacts)).select(
        ["host", "org_id", "actor_ip", "indicator", "flows", "failed", "req_bytes", "resp_bytes"]
        + ["first_seen", "last_seen", "service_port"]
    )
    t = t.append_column("pos", pa.array(contacts.astype(np.int64)))
    g = t.group_by(["host", "actor_ip", "indicator"], use_threads=False).aggregate(
        [
            ("pos", "min"),
            ("org_id", "min"),
            ("flows", "sum"),
            ("failed", "sum"),
            ("req_bytes", "sum"),
            ("resp_bytes", "sum"),
            ("first_seen", "min"),
            ("last_seen", "max"),
            ("service_port", "distinct", pc.CountOptions(mode="only_valid")),
        ]
    )
    breadth = t.group_by(["org_id", "actor_ip"], use_threads=False).aggregate([("host", "count_distinct")])
    hosts_of = {
        (o, a): int(c)
        for o, a, c in zip(
            breadth.column("org_id").to_pylist(),
            breadth.column("actor_ip").to_pylist(),
            breadth.column("host_count_distinct").to_pylist(),
        )
    }
    flows = [int(v) for v in g.column("flows_sum").to_pylist()]
    failed = [int(v) for v in g.column("failed_sum").to_pylist()]
    port_lists = [sorted(p) for p in g.column("service_port_distinct").to_pylist()]
    actor = g.column("actor_ip").to_pylist()
    org = g.column("org_id_min").to_pylist()
    breadths = [hosts_of[(o, a)] for o, a in zip(org, actor)]
    strength = scan_scores(
        np.array(flows, dtype=np.float64),
        np.array([len(p) for p in port_lists], dtype=np.float64),
        np.array(breadths, dtype=np.float64),
    )
    details = []
    for f, ports, fl, h, a in zip(flows, port_lists, failed, breadths, actor):
        shown = ", ".join(map(str, ports[:8])) + (", ..." if len(ports) > 8 else "")
        details.append(
            f"{f} probe(s) to {len(ports)} port(s)"
            f"{' (' + shown + ')' if ports else ''}"
            f", {fl} failed or empty; {h} host(s) of the organization probed by {a}"
        )
    first = _np(g.column("pos_min"), 0).astype(np.int64)
    rows: dict[str, list[Any]] = {
        "behaviour": ["scan"] * g.num_rows,
        "direction": ["inbound"] * g.num_rows,
        "dst_port": [p[0] if len(p) == 1 else None for p in port_lists],
        "flows": flows,
        "bytes_out": [int(v) for v in g.column("req_bytes_sum").to_pylist()],
        "bytes_in": [int(v) for v in g.column("resp_bytes_sum").to_pylist()],
        "score": strength.tolist(),
        "detail": details,
        "first_seen": _iso_column(g.column("first_seen_min")).to_pylist(),
        "last_seen": _iso_column(g.column("last_seen_max")).to_pylist(),
    }
    return first, rows, strength


def _base(c: dict[str, Any], mark: _Mark | None, *, crowded: bool) -> dict[str, Any]:
    return {
        "indicator": c["indicator"],
        "actor_ip": c["actor_ip"],
        "actor": c["actor"],
        "indicator_confidence": int(c["indicator_confidence"]) if c["indicator_confidence"] is not None else 50,
        "tlp": tlp_name(c["tlp_rank"]),
        "first_seen": c["first_seen_iso"] if "first_seen_iso" in c else iso(c["first_seen"]),
        "last_seen": c["last_seen_iso"] if "last_seen_iso" in c else iso(c["last_seen"]),
        "crowded": crowded,
        "shared_infrastructure": f"{mark.category}: {mark.list_name}" if mark is not None else None,
        "_age_days": _age_days(c.get("valid_from"), c["first_seen"]),
    }


def _public(base: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in base.items() if not k.startswith("_")}


def _relay_activity(ctx: _Context, org_id: str, c: dict[str, Any]) -> None:
    key = (c["actor_ip"], c["indicator"])
    acc = ctx.relays.get(key)
    if acc is None:
        acc = ctx.relays[key] = {
            "org_id": org_id,
            "c": c,
            "flows": 0,
            "out": 0,
            "in": 0,
            "peers": set(),
            "peers_in": set(),
            "req": 0,
            "resp": 0,
            "first": c["first_seen"],
            "last": c["last_seen"],
            "tlp": c["tlp_rank"],
            "ports": set(),
        }
    acc["flows"] += int(c["flows"])
    if c["outbound"]:  # a party initiated contact with the listed address
        acc["in"] += int(c["flows"])
        acc["peers_in"].add(c["host"])
        acc["ports"].add(c["service_port"])
    else:  # the listed address initiated
        acc["out"] += int(c["flows"])
    acc["peers"].add(c["host"])
    acc["req"] += int(c["req_bytes"])
    acc["resp"] += int(c["resp_bytes"])
    acc["first"] = min(acc["first"], c["first_seen"])
    acc["last"] = max(acc["last"], c["last_seen"])
    acc["tlp"] = max(acc["tlp"] or 0, c["tlp_rank"] or 0)


def _relay_hosts(ctx: _Context) -> Iterator[tuple[str, Host]]:
    by_ip: dict[str, list[tuple[str, Evidence]]] = defaultdict(list)
    for (ip, _indicator), acc in sorted(ctx.relays.items()):
        c = acc["c"]
        seen = {"first_seen": acc["first"], "last_seen": acc["last"]}
        seen.update({k + "_iso": iso(v) for k, v in seen.items()})
        base = _base(dict(c, **seen, tlp_rank=acc["tlp"]), None, crowded=False)
        ports = sorted(p for p in acc["ports"] if p is not None)
        detail = (
            f"the intel names this address of the organization as actor infrastructure (relay/C2 host); "
            f"active in the telemetry: {acc['flows']} connection(s) with {len(acc['peers'])} address(es), "
            f"{acc['out']} made by it, {acc['in']} to it"
            + (f" (ports {', '.join(map(str, ports[:8]))})" if ports else "")
        )
        row = Evidence(
            behaviour="relay",
            direction="outbound",
            dst_port=None,
            flows=acc["flows"],
            bytes_out=acc["req"],
            bytes_in=acc["resp"],
            score=ctx.params.relay_score,
            detail=detail,
            confidence=evidence_confidence(
                ctx.params.relay_score, base["indicator_confidence"], False, base["_age_days"], ctx.params
            ),
            **_public(dict(base, actor_ip=ip)),
        )
        by_ip[ip].append((acc["org_id"], row))
    for ip, items in sorted(by_ip.items()):
        rows = [r for _, r in items]
        yield (
            items[0][0],
            Host(
                ip=ip,
                verdict="none",
                confidence=0,
                indicators=sorted({r.indicator for r in rows}),
                evidence=rows,
                roles=["relay/C2 host named by intel"],
            ),
        )


def _polled_services(
    assessed: dict[str, list[Host]], beaconing: dict[str, set[str]], registry_orgs: int, params: DetectionParams
) -> None:
    """A crowded indicator (popular or shared) that hosts of most of the registry's organizations
    reach on a schedule is a service everybody polls (updates, telemetry, time), not a campaign's
    C2: no campaign compromises most of a constituency through one address.  Unless the intel is
    very sure of it, those beacons decide nothing."""
    if registry_orgs < params.service_min_orgs:
        return  # without a registry there is no constituency to have a majority of
    need = max(params.service_min_orgs, math.ceil(params.service_share * registry_orgs))
    services = {ind for ind, o in beaconing.items() if len(o) >= need}
    if not services:
        return
    for hosts in assessed.values():
        for h in hosts:
            for r in h.evidence:
                if (
                    r.indicator in services
                    and r.behaviour == "beacon"
                    and r.crowded
                    and not r.guards
                    and r.indicator_confidence < params.very_sure_confidence
                ):
                    r.guards = ["polled_service"]
                    r.eligible = False


def _organization(
    oid: str,
    hosts: list[Host],
    *,
    registry: dict[str, dict[str, Any]],
    host_info: dict[str, dict[str, Any]],
    sector_of: Callable[[str], str] | None,
) -> Organization:
    verdict = hosts[0].verdict
    conf = noisy_or(h.confidence for h in hosts if h.verdict == verdict)
    meta = registry.get(oid)
    infos = [host_info.get(h.ip) or {} for h in hosts]
    asns = sorted({int(i["asn"]) for i in infos if i.get("asn")})
    if meta:
        name, sector, country, source = meta["name"], meta["sector"], meta["country"], "registry"
    elif oid == INTERNAL_ORG:
        name, sector, country, source = (
            "Internal network (sightline.toml network.internal_ranges)",
            "unknown",
            None,
            "config",
        )
    elif oid.startswith("net:"):
        name, sector, country, source = f"unregistered addresses {oid[4:]}", "unknown", None, "network"
    else:
        as_org = next((i.get("as_org") for i in infos if i.get("as_org")), None)
        name = as_org or oid
        sector = sector_of(name) if (sector_of and as_org) else "unknown"
        country = None
        source = "asn"
    if not country:
        country = next((i.get("country") for i in infos if i.get("country")), None)
    firsts, lasts = [], []
    for h in hosts:
        rows = h.evidence
        h.tlp = strictest_label({r.tlp for r in rows})
        h.first_seen = first = min([r.first_seen for r in rows])
        h.last_seen = last = max([r.last_seen for r in rows])
        h.indicators = sorted({r.indicator for r in rows})
        firsts.append(first)
        lasts.append(last)
    return Organization(
        org_id=oid,
        name=name,
        sector=sector or "unknown",
        country=country,
        asns=asns,
        source=source,
        verdict=verdict,
        confidence=conf,
        tlp=strictest_label({h.tlp for h in hosts}),
        first_seen=min(firsts),
        last_seen=max(lasts),
        hosts=hosts,
    )


def _age_days(valid_from: Any, first_seen: Any) -> float | None:
    """Days between the indicator's publication (valid_from) and the first contact."""
    if not isinstance(valid_from, datetime) or not isinstance(first_seen, datetime):
        return None
    return (first_seen - valid_from).total_seconds() / 86400.0


def record_provenance(organizations: Sequence[Organization], indicators: pa.Table) -> None:
    """Record on each evidence row which intel produced it: sources, when they were imported,
    and when the intel first named the indicator (as against first seen in traffic)."""
    if not organizations or indicators.num_rows == 0:
        return
    prov: dict[str, dict[str, Any]] = {}
    for r in indicators.select(["value", "source", "imported_at", "valid_from"]).to_pylist():
        p = prov.setdefault(r["value"], {"sources": set(), "imported_at": None, "first_seen": None})
        if r["source"]:
            p["sources"].add(r["source"])
        if r["imported_at"] is not None and (p["imported_at"] is None or r["imported_at"] > p["imported_at"]):
            p["imported_at"] = r["imported_at"]
        if r["valid_from"] is not None and (p["first_seen"] is None or r["valid_from"] < p["first_seen"]):
            p["first_seen"] = r["valid_from"]
    # what each indicator's rows get, worked out once per indicator
    got = {value: (sorted(p["sources"]), iso(p["imported_at"]), iso(p["first_seen"])) for value, p in prov.items()}
    for o in organizations:
        for h in o.hosts:
            for e in h.evidence:
                hit = got.get(e.indicator)
                if hit is not None:
                    e.intel_sources = list(hit[0])
                    e.intel_imported_at, e.intel_first_seen = hit[1], hit[2]
