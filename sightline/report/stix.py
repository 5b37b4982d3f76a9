"""STIX 2.1 bundle of a findings document (``sightline report --format stix``).

What goes in (all ids deterministic, so the same findings give the same bundle):

- the official TLP 2.0 ``marking-definition`` objects that are used, and every object marked
  with the TLP of what it carries;
- an ``identity`` for sightline (``created_by_ref``) and one per victim organization
  (sector mapped to the STIX industry-sector vocabulary, ``located-at`` a country
  ``location``).  Victims whose TLP is CLEAR or GREEN are named by sector and country only:
  such content may travel widely, and a victim's name must not;
- an ``intrusion-set`` per actor, ``targets`` relationships to the victims, and ``indicates``
  relationships from the indicators;
- one ``indicator`` per indicator in the findings (richer when the intel table is given);
- per evidence row: a ``sighting`` of the indicator ``where_sighted_refs`` the victim, the
  ``observed-data`` (network-traffic between host and indicator, number observed = flows),
  and a ``note`` with the behaviour, ports, bytes, times, score and detail;
- suspected infrastructure as ``infrastructure`` objects; a ``report`` tying it together.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import stix2

from ..core.tlp import LEVELS, marking
from ..core.tlp import marking_label as _mark
from ..core.tlp import strictest_label as _strictest

__all__ = [
    "to_stix_bundle",
    "TLP2_MARKING_IDS",
    "TLP2_EXTENSION_ID",
    "tlp_marking",
    "stix_pattern",
    "guess_indicator_type",
    "lookup_indicators",
]

TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_MARKING_IDS = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
"""The OASIS TLP 2.0 marking-definition ids (cti-stix-common-objects)."""

# Namespace for sightline's deterministic SDO ids (uuid5 of type + natural key).
_NS = uuid.UUID("6f1f5b0e-5d2a-4c53-9a43-1c3e0b7d7a21")

# sightline sector names -> STIX 2.1 industry-sector-ov.
_SECTORS = {
    "semiconductor": "technology",
    "electronics": "technology",
    "technology": "technology",
    "it": "technology",
    "manufacturing": "manufacturing",
    "aerospace": "aerospace",
    "defense": "defense",
    "government": "government",
    "government-national": "government-national",
    "government-local": "government-local",
    "university": "education",
    "education": "education",
    "research": "education",
    "telecom": "telecommunications",
    "telecommunications": "telecommunications",
    "religious": "non-profit",
    "religious organization": "non-profit",
    "ngo": "non-profit",
    "non-profit": "non-profit",
    "industry association": "non-profit",
    "association": "non-profit",
    "media": "entertainment",
    "finance": "financial-services",
    "financial": "financial-services",
    "healthcare": "healthcare",
    "energy": "energy",
    "utilities": "utilities",
    "transportation": "transportation",
    "retail": "retail",
}


def tlp_marking(level: str) -> dict[str, Any]:
    """The official TLP 2.0 marking-definition object for ``level``."""
    level = _mark(level)
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP2_MARKING_IDS[level],
        "created": "2022-10-01T00:00:00.000Z",
        "name": f"TLP:{level.upper()}",
        "extensions": {TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level}},
    }


def _sid(kind: str, *key: Any) -> str:
    # STIX asks for UUIDv4 on SDOs/SROs; a v4-shaped UUID taken from a name hash keeps the
    # bundle reproducible (same findings -> same ids, so re-shared objects update in place).
    h = uuid.uuid5(_NS, kind + "|" + "|".join(str(k) for k in key))
    return f"{kind}--{uuid.UUID(bytes=h.bytes, version=4)}"


def _ts(value: Any, fallback: str) -> str:
    """RFC 3339 UTC with milliseconds, as STIX wants; ``fallback`` when missing or bad."""
    if value:
        try:
            t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if t.tzinfo is None:
                t = t.replace(tzinfo=UTC)
            t = t.astimezone(UTC)
            return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
        except ValueError:
            pass
    return fallback


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def guess_indicator_type(value: str) -> str | None:
    try:
        net = ipaddress.ip_network(value, strict=False)
        return "ipv6" if net.version == 6 else "ipv4"
    except ValueError:
        pass
    v = value.strip().lower().rstrip(".")
    if "://" in v:
        return "url"
    labels = v.split(".")
    if len(labels) >= 2 and all(lab and all(c.isalnum() or c == "-" for c in lab) for lab in labels):
        return "domain"
    return None


def stix_pattern(ind_type: str, value: str, port: int | None = None) -> str | None:
    """STIX pattern for an indicator of sightline type ``ind_type``; None when STIX has none (JA3)."""
    q = _quote(value)
    if ind_type in ("ipv4", "ipv6"):
        obj = "ipv4-addr" if ind_type == "ipv4" else "ipv6-addr"
        if port is not None:
            return f"[network-traffic:dst_ref.type = '{obj}' AND network-traffic:dst_ref.value = {q} AND network-traffic:dst_port = {int(port)}]"
        return f"[{obj}:value = {q}]"
    if ind_type == "domain":
        return f"[domain-name:value = {q}]"
    if ind_type == "url":
        return f"[url:value = {q}]"
    hashes = {"x509_sha1": "SHA-1", "x509_sha256": "SHA-256", "x509_md5": "MD5"}
    if ind_type in hashes:
        return f"[x509-certificate:hashes.'{hashes[ind_type]}' = {q}]"
    if ind_type == "x509_serial":
        return f"[x509-certificate:serial_number = {q}]"
    if ind_type == "file_hash":
        algo = {32: "MD5", 40: "SHA-1", 64: "SHA-256", 128: "SHA-512"}.get(len(value))
        return f"[file:hashes.'{algo}' = {q}]" if algo else None
    return None


def _sco_for(value: str) -> stix2.base._STIXBase | None:
    """An SCO (deterministic id) for an address or domain; None for pseudonyms and the rest."""
    t = guess_indicator_type(value)
    if t == "ipv4":
        return stix2.IPv4Address(value=value)
    if t == "ipv6":
        return stix2.IPv6Address(value=value)
    if t == "domain":
        return stix2.DomainName(value=value.rstrip("."))
    return None


def lookup_indicators(indicators: pa.Table | None, values: set[str]) -> dict[str, dict[str, Any]]:
    """Rows of the intel table for the indicator values the findings mention (first row wins)."""
    if indicators is None or not values or indicators.num_rows == 0:
        return {}
    mask = pc.is_in(indicators.column("value"), value_set=pa.array(sorted(values), type=pa.string()))
    rows = indicators.filter(mask).to_pylist()
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: (-(r.get("confidence") or 0), str(r.get("indicator_id")))):
        out.setdefault(r["value"], r)
    return out


def to_stix_bundle(findings: dict[str, Any], *, indicators: pa.Table | None = None) -> dict[str, Any]:
    """Build a STIX 2.1 bundle (a JSON-ready dict) from ``findings``.

    Parameters
    ----------
    findings
        A findings document; share it first with :func:`sightline.findings.share` to
        share with a restricted audience.
    indicators
        Optional indicator table (``INDICATOR_SCHEMA``) for types, validity windows,
        confidence and descriptions; without it, indicators come from the findings' values.

    Returns
    -------
    dict
        ``{"type": "bundle", "id": ..., "objects": [...]}``.
    """
    now = _ts(findings.get("generated_at"), "1970-01-01T00:00:00.000Z")
    window = findings.get("window") or {}
    objects: dict[str, dict[str, Any]] = {}
    used_tlps: set[str] = set()
    base_tlp = _mark(findings.get("tlp"))  # the level the findings were shared at

    def mark(obj: dict[str, Any], tlp: str | None) -> dict[str, Any]:
        level = _mark(tlp, base_tlp)
        used_tlps.add(level)
        obj["object_marking_refs"] = [TLP2_MARKING_IDS[level]]
        return obj

    def add(obj: dict[str, Any]) -> str:
        objects.setdefault(obj["id"], obj)
        return obj["id"]

    def sdo(kind: str, key: tuple[Any, ...], **props: Any) -> dict[str, Any]:
        obj = {"type": kind, "spec_version": "2.1", "id": _sid(kind, *key), "created": now, "modified": now}
        if kind != "marking-definition":
            obj["created_by_ref"] = producer_id
        obj.update({k: v for k, v in props.items() if v is not None and v != [] and v != ""})
        return obj

    producer_id = _sid("identity", "sightline")
    add(
        mark(
            {
                "type": "identity",
                "spec_version": "2.1",
                "id": producer_id,
                "created": now,
                "modified": now,
                "name": "sightline",
                "identity_class": "system",
                "description": "Victim discovery from network telemetry and threat-intel infrastructure.",
            },
            "clear",
        )
    )

    orgs = [o for o in findings.get("organizations") or [] if isinstance(o, dict)]
    # Which TLPs the evidence naming each indicator / actor carries.
    ind_tlps: dict[str, list[str | None]] = {}
    actor_tlps: dict[str, list[str | None]] = {a: [] for a in findings.get("actors") or []}
    for o in orgs:
        for h in o.get("hosts") or []:
            for ind in h.get("indicators") or []:
                ind_tlps.setdefault(str(ind), [])
            for e in h.get("evidence") or []:
                if e.get("indicator") is not None:
                    ind_tlps.setdefault(str(e["indicator"]), []).append(e.get("tlp") or h.get("tlp") or o.get("tlp"))
                if e.get("actor"):
                    actor_tlps.setdefault(str(e["actor"]), []).append(e.get("tlp") or o.get("tlp"))
    intel = lookup_indicators(indicators, set(ind_tlps))

    # --- intrusion sets --------------------------------------------------------------------
    actor_ids: dict[str, str] = {}
    for actor, tl in sorted(actor_tlps.items()):
        seen = [t for t in tl if t is not None]
        # The actor's name is as shareable as the least restrictive evidence naming it.
        level = min(marking(t) for t in seen).label if seen else None
        actor_ids[actor] = add(mark(sdo("intrusion-set", (actor,), name=actor), level))

    # --- indicators --------------------------------------------------------------------------
    ind_ids: dict[str, str] = {}
    for value in sorted(ind_tlps):
        row = intel.get(value) or {}
        itype = row.get("type") or guess_indicator_type(value)
        pattern = stix_pattern(itype, value, row.get("port")) if itype else None
        if pattern is None:
            continue
        level = _strictest([row.get("tlp"), *ind_tlps[value]]) if row.get("tlp") else _strictest(ind_tlps[value])
        valid_from = _ts(row.get("valid_from"), _ts(window.get("start"), now))
        valid_until = _ts(row.get("valid_until"), "") if row.get("valid_until") else None
        if valid_until and valid_until <= valid_from:
            valid_until = None  # STIX requires valid_until > valid_from; keep the indicator usable
        conf = row.get("confidence")
        ind = sdo(
            "indicator",
            (itype, value, row.get("port")),
            name=f"{itype} {value}" + (f" port {row['port']}" if row.get("port") is not None else ""),
            description=row.get("description")
            or f"Actor infrastructure ({row.get('actor') or 'campaign'}) "
            "contacted by the organizations in these findings",
            indicator_types=["malicious-activity"],
            pattern=pattern,
            pattern_type="stix",
            pattern_version="2.1",
            valid_from=valid_from,
            valid_until=valid_until,
            confidence=int(conf) if conf is not None else None,
        )
        ind_ids[value] = add(mark(ind, level))
        row_actor = row.get("actor")
        for a in [row_actor] if row_actor in actor_ids else list(actor_ids):
            add(
                mark(
                    sdo(
                        "relationship",
                        ("indicates", ind["id"], actor_ids[a]),
                        relationship_type="indicates",
                        source_ref=ind["id"],
                        target_ref=actor_ids[a],
                    ),
                    level,
                )
            )

    # --- victims, sightings, evidence ----------------------------------------------------------
    for o in orgs:
        otlp = o.get("tlp")
        public = _mark(otlp, base_tlp) in ("clear", "green")
        sector = str(o.get("sector") or "")
        country = str(o.get("country") or "")
        name = o.get("name") or o.get("org_id")
        if public and not findings.get("anonymized"):
            name = f"{sector or 'unknown-sector'} organization ({country or 'unknown country'}) {_sid('x', o.get('org_id'))[-8:]}"
        desc = [f"sightline verdict: {o.get('verdict')} (confidence {o.get('confidence')})"]
        if sector:
            desc.append(f"sector: {sector}")
        if not public:
            desc.append(f"org_id: {o.get('org_id')}")
            if o.get("asns"):
                desc.append("ASNs: " + ", ".join(f"AS{a}" for a in o["asns"]))
        mapped = _SECTORS.get(sector.lower())
        victim = sdo(
            "identity",
            ("victim", o.get("org_id")),
            name=str(name),
            identity_class="organization",
            sectors=[mapped] if mapped else None,
            description="; ".join(desc),
        )
        victim_id = add(mark(victim, otlp))
        if len(country) == 2 and country.isalpha():
            loc_id = add(mark(sdo("location", ("country", country.upper()), country=country.upper()), "clear"))
            add(
                mark(
                    sdo(
                        "relationship",
                        ("located-at", victim_id, loc_id),
                        relationship_type="located-at",
                        source_ref=victim_id,
                        target_ref=loc_id,
                    ),
                    otlp,
                )
            )
        org_actors = {str(e["actor"]) for h in o.get("hosts") or [] for e in h.get("evidence") or [] if e.get("actor")}
        for a in sorted(org_actors or set(actor_ids)):
            if a in actor_ids:
                add(
                    mark(
                        sdo(
                            "relationship",
                            ("targets", actor_ids[a], victim_id),
                            relationship_type="targets",
                            source_ref=actor_ids[a],
                            target_ref=victim_id,
                            description=f"{o.get('verdict')} (confidence {o.get('confidence')})",
                            start_time=_ts(o.get("first_seen"), "") or None,
                            stop_time=_ts(o.get("last_seen"), "") or None,
                        ),
                        otlp,
                    )
                )
        for h in o.get("hosts") or []:
            hip = str(h.get("ip") or "")
            for e in h.get("evidence") or []:
                ind_value = str(e.get("indicator") or "")
                etlp = e.get("tlp") or h.get("tlp") or otlp
                first = _ts(e.get("first_seen"), _ts(h.get("first_seen"), now))
                last = _ts(e.get("last_seen"), first)
                if last < first:
                    last = first
                flows = max(1, min(int(e.get("flows") or 1), 999_999_999))
                # Observed data: the network traffic between host and indicator.
                host_sco, ind_sco = _sco_for(hip), _sco_for(ind_value)
                refs: list[str] = []
                for sco in (host_sco, ind_sco):
                    if sco is not None:
                        d = json.loads(sco.serialize())
                        refs.append(add(mark(d, etlp)))
                if host_sco is not None or ind_sco is not None:
                    outbound = str(e.get("direction") or "outbound") == "outbound"
                    src, dst = (host_sco, ind_sco) if outbound else (ind_sco, host_sco)
                    proto = str(e.get("proto") or ("tcp" if e.get("dst_port") is not None else "ip"))
                    nt_kwargs: dict[str, Any] = {"protocols": [proto]}
                    if src is not None:
                        nt_kwargs["src_ref"] = src.id
                    if dst is not None:
                        nt_kwargs["dst_ref"] = dst.id
                    if e.get("dst_port") is not None:
                        nt_kwargs["dst_port"] = int(e["dst_port"])
                    # Evidence byte counts follow the flow schema: bytes_out is initiator -> responder.
                    if e.get("bytes_out") is not None:
                        nt_kwargs["src_byte_count"] = int(e["bytes_out"])
                    if e.get("bytes_in") is not None:
                        nt_kwargs["dst_byte_count"] = int(e["bytes_in"])
                    nt = json.loads(stix2.NetworkTraffic(**nt_kwargs).serialize())
                    refs.append(add(mark(nt, etlp)))
                key = (o.get("org_id"), hip, ind_value, e.get("behaviour"), e.get("first_seen"))
                od_id = None
                if refs:
                    od = sdo(
                        "observed-data",
                        key,
                        first_observed=first,
                        last_observed=last,
                        number_observed=flows,
                        object_refs=refs,
                    )
                    od_id = add(mark(od, etlp))
                if ind_value in ind_ids:
                    score = e.get("score")
                    sighting = sdo(
                        "sighting",
                        key,
                        sighting_of_ref=ind_ids[ind_value],
                        where_sighted_refs=[victim_id],
                        observed_data_refs=[od_id] if od_id else None,
                        first_seen=first,
                        last_seen=last,
                        count=flows,
                        description=f"{e.get('behaviour')}: {e.get('detail') or ''}".strip(": "),
                        confidence=int(round(float(score) * 100)) if isinstance(score, (int, float)) else None,
                    )
                    sighting_id: str | None = add(mark(sighting, etlp))
                else:
                    sighting_id = None
                content = "; ".join(
                    f"{k}: {v}"
                    for k, v in (
                        ("behaviour", e.get("behaviour")),
                        ("host", hip),
                        ("indicator", ind_value),
                        ("direction", e.get("direction")),
                        ("dst_port", e.get("dst_port")),
                        ("flows", e.get("flows")),
                        ("bytes_out", e.get("bytes_out")),
                        ("bytes_in", e.get("bytes_in")),
                        ("first_seen", e.get("first_seen")),
                        ("last_seen", e.get("last_seen")),
                        ("score", e.get("score")),
                        ("detail", e.get("detail")),
                    )
                    if v is not None
                )
                note_refs = [r for r in (sighting_id, od_id, victim_id) if r]
                add(
                    mark(
                        sdo(
                            "note",
                            key,
                            abstract=f"{e.get('behaviour')} evidence for {hip}",
                            content=content,
                            object_refs=note_refs,
                        ),
                        etlp,
                    )
                )

    # --- suspected infrastructure ----------------------------------------------------------
    for s in findings.get("suspected_infrastructure") or []:
        if not isinstance(s, dict) or not s.get("ip"):
            continue
        sco = _sco_for(str(s["ip"]))
        stlp = s.get("tlp")
        infra = sdo(
            "infrastructure",
            ("suspected", s["ip"]),
            name=f"suspected actor infrastructure {s['ip']}",
            infrastructure_types=["unknown"],
            description=s.get("reason"),
            confidence=int(round(float(s["score"]) * 100)) if isinstance(s.get("score"), (int, float)) else None,
        )
        infra_id = add(mark(infra, stlp))
        if sco is not None:
            sco_id = add(mark(json.loads(sco.serialize()), stlp))
            add(
                mark(
                    sdo(
                        "relationship",
                        ("consists-of", infra_id, sco_id),
                        relationship_type="consists-of",
                        source_ref=infra_id,
                        target_ref=sco_id,
                    ),
                    stlp,
                )
            )

    # --- actor infrastructure profile: what the actor's servers are and where ------------------
    _INFRA_TYPES = {
        "scanner": "reconnaissance",
        "exploit source": "attack",
        "C2/VPN endpoint": "command-and-control",
        "exfiltration endpoint": "exfiltration",
        "suspected C2": "command-and-control",
    }
    for a in findings.get("actor_infrastructure") or []:
        if not isinstance(a, dict) or not a.get("ip") or a.get("source") == "suspected":
            continue  # suspected addresses were added above
        atlp = a.get("tlp")
        kinds = sorted({_INFRA_TYPES[r] for r in a.get("roles") or [] if r in _INFRA_TYPES}) or ["unknown"]
        located = ", ".join(
            str(x) for x in (a.get("as_org"), f"AS{a['asn']}" if a.get("asn") else None, a.get("country")) if x
        )
        about = (
            f"Roles: {', '.join(a.get('roles') or [])}; ports served: {a.get('served_ports') or []}; "
            f"hosting: {a.get('hosting') or 'unknown'}{'; ' + located if located else ''}; {a.get('cluster') or ''}"
        )
        infra = sdo(
            "infrastructure",
            ("actor", a["ip"]),
            name=f"actor infrastructure {a['ip']}",
            infrastructure_types=kinds,
            description=about,
            first_seen=_ts(a.get("first_seen"), now),
            last_seen=_ts(a.get("last_seen"), now),
        )
        infra_id = add(mark(infra, atlp))
        sco = _sco_for(str(a["ip"]))
        if sco is not None:
            sco_id = add(mark(json.loads(sco.serialize()), atlp))
            add(
                mark(
                    sdo(
                        "relationship",
                        ("consists-of", infra_id, sco_id),
                        relationship_type="consists-of",
                        source_ref=infra_id,
                        target_ref=sco_id,
                    ),
                    atlp,
                )
            )
        if a.get("country"):
            cc = str(a["country"]).upper()
            loc = add(mark(sdo("location", ("country", cc), country=cc), "clear"))
            add(
                mark(
                    sdo(
                        "relationship",
                        ("located-at", infra_id, loc),
                        relationship_type="located-at",
                        source_ref=infra_id,
                        target_ref=loc,
                        description="where the server is hosted, not where its operators are",
                    ),
                    atlp,
                )
            )
        for actor in a.get("actors") or []:
            if actor in actor_ids:
                add(
                    mark(
                        sdo(
                            "relationship",
                            ("uses", actor_ids[actor], infra_id),
                            relationship_type="uses",
                            source_ref=actor_ids[actor],
                            target_ref=infra_id,
                        ),
                        atlp,
                    )
                )

    # --- the report object: what this bundle is, marked with everything it holds ------------
    sdos = [
        i for i, ob in objects.items() if ob["type"] not in ("ipv4-addr", "ipv6-addr", "domain-name", "network-traffic")
    ]
    doc_tlp = _strictest(used_tlps | {base_tlp})
    if sdos:
        actors = ", ".join(sorted(actor_ids)) or "the campaign"
        add(
            mark(
                sdo(
                    "report",
                    ("report", findings.get("run_id") or now),
                    name=f"sightline findings: victims of {actors}",
                    report_types=["threat-report"],
                    published=now,
                    object_refs=sorted(sdos),
                ),
                doc_tlp,
            )
        )
    markings = [tlp_marking(t) for t in LEVELS if t in used_tlps]
    bundle_id = _sid("bundle", findings.get("run_id") or now)
    return {"type": "bundle", "id": bundle_id, "objects": markings + list(objects.values())}
