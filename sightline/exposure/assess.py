"""Exposed services x CVE ranges x KEV x the actor's activity -> a prioritized patch list.

For each scanned service whose version falls inside a CVE range (``data/exposure/cve_ranges.json``,
generated from CVE and NVD records by :mod:`.records`), or whose version is unknown for a
product with KEV CVEs ("possibly affected"), an entry says which CVEs apply, what CISA's KEV catalog
says about them (date added, due date, known ransomware use), whether threat intel ties
them to the actor, and whether the hunt saw the actor touch that ``ip:port``.

Priority, strongest first (``priority_rank`` 1..4)::

    compromised               the host is compromised (any port)
    exploited_and_vulnerable  exploitation attempts against this ip:port (or the ip, no port)
    scanned_and_vulnerable    reconnaissance against this ip:port (or the ip, no port)
    vulnerable                vulnerable, no actor activity seen

The joins (services x activity, services x org ranges) run in the hunt's engine (DuckDB when
none is given); the version checks run once per distinct (product, version), not per service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ..core.tlp import DEFAULT_TLP, TLP, marking
from ..errors import InputError
from ..findings.model import Exposure, Findings, Organization
from ..net import parse_ips
from .cpe import is_edge
from .versions import in_range, version_key

if TYPE_CHECKING:
    from ..engines.base import Engine
    from ..store import Workspace

ACTIVITY_SCHEMA = pa.schema(
    [
        pa.field("ip", pa.string()),
        pa.field("port", pa.int32()),
        pa.field("org_id", pa.string()),
        pa.field("activity", pa.string()),  # compromised | exploitation_attempt | reconnaissance
        pa.field("tlp", pa.string()),  # marking of the findings the activity comes from
    ]
)
"""What the hunt saw the actor do to an address (and port, where known)."""

ACTIVITIES = ("compromised", "exploitation_attempt", "reconnaissance")

PRIORITIES: dict[str | None, tuple[str, int]] = {
    "compromised": ("compromised", 1),
    "exploitation_attempt": ("exploited_and_vulnerable", 2),
    "reconnaissance": ("scanned_and_vulnerable", 3),
    None: ("vulnerable", 4),
}

_CVE_RE = re.compile(r"\bCVE-\d{4}-\d{4,19}\b", re.I)

RANGES_FILENAME = "cve_ranges.json"


def workspace_ranges_path(ws: Workspace) -> Path:
    """Where ``sightline kev update --cve-records`` puts a workspace's own range table."""
    return ws.root / "kev" / RANGES_FILENAME


def load_cve_ranges(path: str | Path | None = None, ws: Workspace | None = None) -> list[dict[str, Any]]:
    """The CVE version ranges: ``path``, else the workspace's own table (built by
    ``sightline kev update --cve-records``), else the bundled one.

    Raises
    ------
    InputError
        The file is not JSON or an entry lacks ``cve``/``products``/``source``.
    """
    if path is None and ws is not None and workspace_ranges_path(ws).exists():
        path = workspace_ranges_path(ws)
    origin = str(path) if path else "sightline/data/exposure/cve_ranges.json"
    try:
        raw = (
            Path(path).read_bytes()
            if path
            else resources.files("sightline").joinpath("data", "exposure", "cve_ranges.json").read_bytes()
        )
        doc = json.loads(raw)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read CVE ranges: {e}", path=origin, hint="check the file") from e
    entries = doc.get("cves") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise InputError("CVE ranges file has no 'cves' list", path=origin, hint="see cve_ranges.json")
    for i, e in enumerate(entries):
        if not (
            isinstance(e, dict)
            and _CVE_RE.fullmatch(str(e.get("cve", "")))
            and isinstance(e.get("products"), dict)
            and e.get("source")
        ):
            raise InputError(
                "CVE range entry needs cve, products and source",
                path=origin,
                position=i,
                hint="every range must cite its source",
            )
    return entries


def cves_from_intel(doc: Any) -> list[str]:
    """CVE ids a STIX 2.1 bundle or MISP event ties to the actor.

    STIX: ``vulnerability`` objects that are the target of an ``exploits`` or ``targets``
    relationship (malware / intrusion-set / threat-actor / campaign -> vulnerability).
    MISP: attributes of type ``vulnerability`` (in the event or its objects).
    """
    found: list[str] = []
    if isinstance(doc, dict) and doc.get("type") == "bundle":
        objs = [o for o in doc.get("objects") or [] if isinstance(o, dict)]
        vulns = {o.get("id"): str(o.get("name", "")) for o in objs if o.get("type") == "vulnerability"}
        for o in objs:
            if o.get("type") == "relationship" and o.get("relationship_type") in ("exploits", "targets"):
                name = vulns.get(o.get("target_ref"))
                if name:
                    found.extend(_CVE_RE.findall(name))
    elif isinstance(doc, dict):
        event = doc.get("Event", doc)
        attrs = list(event.get("Attribute") or [])
        for obj in event.get("Object") or []:
            attrs.extend(obj.get("Attribute") or [])
        for a in attrs:
            if isinstance(a, dict) and a.get("type") == "vulnerability":
                found.extend(_CVE_RE.findall(str(a.get("value", ""))))
    return list(dict.fromkeys(c.upper() for c in found))


def read_actor_cves(path: str | Path) -> tuple[list[str], list[tuple[int, str]]]:
    """Read actor-linked CVE ids: a plain list (one per line, ``#`` comments), a STIX 2.1
    bundle or a MISP event (see :func:`cves_from_intel`).

    Returns
    -------
    (cves, skipped)
        Upper-cased unique CVE ids in file order, and ``(line, text)`` of list lines holding
        no CVE id (reported to the user, never fatal).
    """
    try:
        text = Path(path).read_text("utf-8", errors="replace")
    except OSError as e:
        raise InputError(
            f"cannot read actor CVE list: {e.strerror or e}", path=path, hint="one CVE id per line, e.g. CVE-2023-46805"
        ) from e
    if text.lstrip().startswith("{"):
        try:
            return cves_from_intel(json.loads(text)), []
        except ValueError:
            pass  # not JSON after all: read it as a list
    cves: list[str] = []
    skipped: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        found = _CVE_RE.findall(body)
        if not found:
            skipped.append((n, line[:200]))
        cves.extend(c.upper() for c in found)
    return list(dict.fromkeys(cves)), skipped


def activity_from_findings(findings: Findings | Sequence[Organization] | Mapping[str, Any]) -> pa.Table:
    """Turn findings into the activity table :func:`assess_exposure` takes.

    A compromised host gives one row without port (a compromised device is compromised
    whatever port was probed); each inbound evidence row gives the port the actor touched.
    Each row carries the marking of the host it comes from.
    """
    if isinstance(findings, Mapping):
        from ..findings.model import from_dict

        findings = from_dict(dict(findings))
    orgs = findings.organizations if isinstance(findings, Findings) else findings
    rows: list[dict[str, Any]] = []
    for org in orgs:
        for host in org.hosts:
            ip, verdict = host.ip, host.verdict
            if not ip or verdict not in ACTIVITIES:
                continue
            tlp = host.tlp or org.tlp
            if verdict == "compromised":
                rows.append({"ip": ip, "port": None, "org_id": org.org_id, "activity": "compromised", "tlp": tlp})
            inbound = [e for e in host.evidence if e.direction == "inbound"]
            for e in inbound:
                beh = e.behaviour.lower()
                probing = "scan" in beh or "probe" in beh or verdict == "reconnaissance"
                rows.append(
                    {
                        "ip": ip,
                        "port": e.dst_port,
                        "org_id": org.org_id,
                        "activity": "reconnaissance" if probing else "exploitation_attempt",
                        "tlp": tlp,
                    }
                )
            if not inbound and verdict != "compromised":
                rows.append({"ip": ip, "port": None, "org_id": org.org_id, "activity": verdict, "tlp": tlp})
    return pa.Table.from_pylist(rows, schema=ACTIVITY_SCHEMA)


def _kev_index(kev: pa.Table, cves: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(cves))
    if not wanted or kev.num_rows == 0:
        return {}
    sub = kev.filter(pc.is_in(kev["cve"], pa.array(wanted)))
    out: dict[str, dict[str, Any]] = {}
    for r in sub.to_pylist():
        out[r["cve"]] = {
            "vendor_project": r.get("vendor_project"),
            "product": r.get("product"),
            "name": r.get("vulnerability_name"),
            "date_added": r["date_added"].isoformat() if r.get("date_added") else None,
            "due_date": r["due_date"].isoformat() if r.get("due_date") else None,
            "known_ransomware": bool(r.get("known_ransomware")),
        }
    return out


MATCH_KINDS = ("exact_cpe", "product_name", "possibly_affected")
"""How sure a finding is: the scanner's CPE named the product and its version is inside the
range; a product-name rule named it and the version is inside; or the version is unknown
(or the record bounds no version) -- *possibly* affected."""


class RangeIndex:
    """CVE ranges by product id, so a (product, version) is checked against its own CVEs only."""

    def __init__(self, ranges: Sequence[Mapping[str, Any]]) -> None:
        self.bounded: dict[str, list[tuple[str, list[Any], str]]] = {}
        self.unbounded: dict[str, list[tuple[str, str]]] = {}
        for e in ranges:
            cve = str(e["cve"]).upper()
            src = e.get("range_source") or {}
            for pid, rngs in e["products"].items():
                self.bounded.setdefault(pid, []).append((cve, list(rngs), str(src.get(pid) or _source_kind(e))))
            for pid in e.get("all_versions") or ():
                self.unbounded.setdefault(pid, []).append((cve, str(src.get(pid) or _source_kind(e))))
            # (range_source also names the all_versions products; only ``products`` are bounded)

    def match(self, product_id: str, version: str | None) -> list[tuple[str, str, bool]]:
        """``(cve, range_source, confirmed)`` for one product/version; ``confirmed`` False =
        possibly affected (version unknown, or the record gives no version bounds)."""
        out: dict[str, tuple[str, str, bool]] = {}
        known = version is not None and version_key(version) is not None
        for cve, rngs, src in self.bounded.get(product_id, ()):
            if not known:
                out[cve] = (cve, src, False)
            elif any(in_range(version, r) for r in rngs):
                out[cve] = (cve, src, True)
        for cve, src in self.unbounded.get(product_id, ()):
            out.setdefault(cve, (cve, src, False))
        return sorted(out.values(), key=lambda t: (not t[2], t[0]))


def _source_kind(entry: Mapping[str, Any]) -> str:
    text = str(entry.get("source", ""))
    if text.startswith("CVE record"):
        return "cve_record"
    return "nvd_configuration" if text.startswith("NVD") else "override"


def match_cves(product_id: str, version: str | None, ranges: Sequence[Mapping[str, Any]]) -> list[str]:
    """CVE ids whose ranges for ``product_id`` contain ``version`` (confirmed matches only)."""
    return [c for c, _s, ok in RangeIndex(ranges).match(product_id, version) if ok]


def unranged_cves(cves: Iterable[str], ranges: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
    """Actor-linked CVEs sightline cannot check because no curated range covers them."""
    known = {str(e["cve"]).upper() for e in (ranges if ranges is not None else load_cve_ranges())}
    return sorted({c.upper() for c in cves} - known)


# Strongest activity per service; port null in the activity table = any port.
_ACTIVITY_SQL = """
        SELECT v.row_id,
               max(CASE a.activity WHEN 'compromised' THEN 3 WHEN 'exploitation_attempt' THEN 2
                                   WHEN 'reconnaissance' THEN 1 ELSE 0 END) AS act_rank,
               arg_max(a.org_id, CASE a.activity WHEN 'compromised' THEN 3
                                   WHEN 'exploitation_attempt' THEN 2 ELSE 1 END) AS act_org,
               max(a.tlp_rank) AS act_tlp
        FROM exp_vuln v JOIN exp_act a ON a.ip = v.ip
         AND (a.activity = 'compromised' OR a.port IS NULL OR a.port = v.port)
        GROUP BY v.row_id
"""


_ORG_SQL = """
    SELECT row_id, arg_max(org_id, prefix_len) AS reg_org FROM (
        SELECT v.row_id, o.org_id, o.prefix_len
        FROM exp_vuln v JOIN exp_orgs o ON v.ip4 IS NOT NULL AND v.ip4 BETWEEN o.ip_start4 AND o.ip_end4
        UNION ALL
        SELECT v.row_id, o.org_id, o.prefix_len
        FROM exp_vuln v JOIN exp_orgs o ON v.ip6 IS NOT NULL AND v.ip6 BETWEEN o.ip_start6 AND o.ip_end6
    ) GROUP BY row_id
"""

_RANK_TO_ACTIVITY = {3: "compromised", 2: "exploitation_attempt", 1: "reconnaissance"}


def assess_exposure(
    services: pa.Table,
    kev: pa.Table,
    activity: pa.Table | None = None,
    orgs: pa.Table | None = None,
    actor_cves: Iterable[str] = (),
    ranges: Sequence[Mapping[str, Any]] | None = None,
    default_tlp: TLP = DEFAULT_TLP,
    engine: Engine | None = None,
) -> list[dict[str, Any]]:
    """The findings.json ``exposure`` entries, highest priority first.

    Parameters
    ----------
    services
        Scanned services (:data:`sightline.exposure.scans.SERVICE_SCHEMA`).
    kev
        KEV catalog (:func:`sightline.exposure.kev.load_kev`).
    activity
        What the hunt saw (:data:`ACTIVITY_SCHEMA`: ip, port, org_id, activity), or None.
    orgs
        Organization registry (:data:`sightline.schema.ORG_SCHEMA`) to name the org of
        each service address, or None.
    actor_cves
        CVE ids threat intel ties to the actor (STIX ``exploits``, MISP ``vulnerability``,
        a user list); flagged ``actor_linked``.
    ranges
        CVE range entries (:func:`load_cve_ranges`); the bundled table by default.
    default_tlp
        Marking of the scans themselves (nobody marked them); an entry carries the most
        restrictive of it and of the findings its activity comes from.
    engine
        Where the joins run (the hunt's engine, so ``--engine`` holds for every stage); an
        embedded DuckDB engine, opened and closed here, when None.

    Returns
    -------
    list of dict
        One entry per vulnerable service: ``org_id, ip, port, proto, vendor, product,
        version, cpe, hostname, cves: [{cve, kev: {...} | None, actor_linked, range_source,
        match}], match, range_source, edge_device, actor_linked, activity, priority,
        priority_rank, tlp``.  ``match`` says how sure the row is (:data:`MATCH_KINDS`):
        a service whose version is unknown is *possibly* affected by every KEV CVE of its
        product.  Within one priority, version-confirmed rows come before possible ones and
        edge devices before web servers and applications.
    """
    index = RangeIndex(list(ranges) if ranges is not None else load_cve_ranges())
    actor = {c.upper() for c in actor_cves}
    if services.num_rows == 0:
        return []
    edge = services.filter(pc.is_valid(services["product_id"]))
    if edge.num_rows == 0:
        return []
    # Version checks once per distinct product/version (a scan of 100k services has a few
    # thousand), not per service.
    pairs = edge.select(["product_id", "norm_version"]).group_by(["product_id", "norm_version"]).aggregate([])
    hits: dict[tuple[str, str | None], list[tuple[str, str, bool]]] = {}
    for pid, ver in zip(pairs["product_id"].to_pylist(), pairs["norm_version"].to_pylist()):
        found = index.match(pid, ver)
        if found:
            hits[(pid, ver)] = found
    if not hits:
        return []
    keep = [(p, v) in hits for p, v in zip(edge["product_id"].to_pylist(), edge["norm_version"].to_pylist())]
    vuln = edge.filter(pa.array(keep))
    vuln = vuln.append_column("row_id", pa.array(range(vuln.num_rows), pa.int64()))
    parsed = parse_ips(vuln["ip"])
    vuln = vuln.append_column("ip4", parsed.v4).append_column("ip6", parsed.v6)
    kev_info = _kev_index(kev, {c for cs in hits.values() for c, _s, _ok in cs})

    own = engine is None
    if engine is None:
        from ..engines import get_engine

        engine = get_engine("duckdb")
    try:
        engine.register_table("exp_vuln", vuln.select(["row_id", "ip", "port", "ip4", "ip6"]))
        act_rank: dict[int, tuple[int, str | None, int]] = {}
        if activity is not None and activity.num_rows:
            if "tlp" not in activity.column_names:  # a table built without markings: the default applies
                activity = activity.append_column("tlp", pa.nulls(activity.num_rows, pa.string()))
            act = activity.select(["ip", "port", "org_id", "activity", "tlp"])
            # Normalize address text the same way scans were (e.g. IPv6 compression).
            act = act.append_column(
                "tlp_rank", pa.array([int(marking(t, default_tlp)) for t in act["tlp"].to_pylist()], pa.int32())
            )
            engine.register_table("exp_act", _normalize_activity_ips(act))
            for r in engine.query(_ACTIVITY_SQL).to_pylist():
                if r["act_rank"]:
                    act_rank[int(r["row_id"])] = (int(r["act_rank"]), r["act_org"], int(r["act_tlp"] or 0))
        reg_org: dict[int, str] = {}
        if orgs is not None and orgs.num_rows:
            engine.register_table(
                "exp_orgs", orgs.select(["org_id", "prefix_len", "ip_start4", "ip_end4", "ip_start6", "ip_end6"])
            )
            reg_org = {int(r["row_id"]): r["reg_org"] for r in engine.query(_ORG_SQL).to_pylist()}
    finally:
        if own:
            engine.close()
        else:
            engine.release("exp_vuln", "exp_act", "exp_orgs")

    entries: list[dict[str, Any]] = []
    for r in vuln.select([c for c in vuln.column_names if c not in ("ip4", "ip6")]).to_pylist():
        rid = r["row_id"]
        rank, act_org, act_tlp = act_rank.get(rid, (0, None, 0))
        activity_name = _RANK_TO_ACTIVITY.get(rank)
        priority, prank = PRIORITIES[activity_name]
        by_cpe = (r.get("product_match") or "name") == "cpe"
        sure = "exact_cpe" if by_cpe else "product_name"
        cves = [
            {
                "cve": c,
                "kev": kev_info.get(c),
                "actor_linked": c in actor,
                "range_source": src,
                "match": sure if ok else "possibly_affected",
            }
            for c, src, ok in hits[(r["product_id"], r["norm_version"])]
        ]
        confirmed = any(c["match"] != "possibly_affected" for c in cves)
        entries.append(
            {
                "org_id": reg_org.get(rid) or act_org,
                "ip": r["ip"],
                "port": r["port"],
                "proto": r["proto"],
                "vendor": r["vendor"],
                "product": r["product_name"],
                "version": r["norm_version"],
                "cpe": r["cpe"],
                "hostname": r["hostname"],
                "scanned_at": r["scanned_at"].isoformat().replace("+00:00", "Z") if r["scanned_at"] else None,
                "cves": cves,
                "match": sure if confirmed else "possibly_affected",
                "range_source": sorted(
                    {c["range_source"] for c in cves if c["match"] != "possibly_affected" or not confirmed}
                ),
                "edge_device": is_edge(r["product_id"]),
                "actor_linked": any(c["actor_linked"] for c in cves),
                "in_kev": any(c["kev"] is not None for c in cves),
                "activity": activity_name,
                "priority": priority,
                "priority_rank": prank,
                "tlp": max(default_tlp, TLP(act_tlp)).label,
            }
        )
    entries.sort(
        key=lambda e: (
            e["priority_rank"],
            e["match"] == "possibly_affected",
            not e["edge_device"],
            not e["actor_linked"],
            not e["in_kev"],
            e["org_id"] or "~",
            e["ip"],
            e["port"],
        )
    )
    return entries


def exposure_section(
    ws: Workspace,
    organizations: Sequence[Organization],
    registry: pa.Table | None,
    *,
    default_tlp: TLP = DEFAULT_TLP,
    engine: Engine | None = None,
) -> list[Exposure] | None:
    """The findings' ``exposure`` list for a hunt: the workspace's stored scans ranked with the
    same function as ``sightline exposure`` (:func:`assess_exposure`), with the activity the
    hunt saw, joined in the hunt's ``engine``; None when no scan was stored.  A problem here
    never sinks a hunt: it is logged."""
    import logging

    import msgspec

    from ..errors import SightlineError
    from .kev import load_kev
    from .store import read_services

    log = logging.getLogger("sightline.exposure")
    try:
        services = read_services(ws)
        if services is None or services.num_rows == 0:
            return None
        actor_cves: list[str] = []
        try:
            from ..intel.store import intel_status

            actor_cves = list(intel_status(ws).get("actor_cves", []))
        except (ImportError, OSError, SightlineError) as e:
            log.warning("actor-linked CVEs unavailable: %s", e)
        entries = assess_exposure(
            services,
            load_kev(ws),
            activity=activity_from_findings(organizations),
            orgs=registry,
            actor_cves=actor_cves,
            ranges=load_cve_ranges(ws=ws),
            default_tlp=default_tlp,
            engine=engine,
        )
        return msgspec.convert(entries, list[Exposure])
    except Exception as e:  # exposure enriches a hunt; it must never sink one
        log.warning("exposure section skipped: %s", e)
        return None


def _normalize_activity_ips(act: pa.Table) -> pa.Table:
    from .scans import _ip_text

    ips = act["ip"].to_pylist()
    uniq = {ip: _ip_text(ip) for ip in set(ips) if ip is not None}
    norm = pa.array([uniq.get(ip) if ip is not None else None for ip in ips], pa.string())
    return act.set_column(0, "ip", norm)


__all__ = [
    "ACTIVITY_SCHEMA",
    "ACTIVITIES",
    "PRIORITIES",
    "load_cve_ranges",
    "read_actor_cves",
    "cves_from_intel",
    "activity_from_findings",
    "match_cves",
    "MATCH_KINDS",
    "RangeIndex",
    "workspace_ranges_path",
    "unranged_cves",
    "assess_exposure",
    "exposure_section",
]
