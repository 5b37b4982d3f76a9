"""MISP event of a findings document (``sightline report --format misp``), built with PyMISP.

- Indicators become IDS attributes (``ip-dst``, ``domain``, ``url``, ``x509-fingerprint-*``,
  ``ja3-fingerprint-md5`` ...), each tagged with its TLP, with one sighting per evidence row
  (the date it was last seen, the flow count in the source text).
- Victims become ``Targeting data`` attributes (``target-org``, ``target-location``,
  ``target-machine``, never IDS), tagged with their TLP; victims whose TLP is CLEAR or GREEN
  are named by sector and country only.
- Evidence rows become ``text`` attributes with behaviour, ports, bytes, times, score, detail.
- The actor is a ``threat-actor`` galaxy cluster, plus the matching ``misp-galaxy`` tag, so a
  MISP server attaches its own cluster on import.
- The event is tagged with the most restrictive TLP it contains; uuids are derived from the
  findings, so re-exporting the same run updates the same event and attributes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..jsonschemas import load as _load_jsonschema

_load_jsonschema()  # before PyMISP: its jsonschema without the slow optional format library
from pymisp import MISPAttribute, MISPEvent, MISPGalaxy  # noqa: E402

from ..core.tlp import marking_label as _mark  # noqa: E402
from ..core.tlp import strictest_label as _strictest  # noqa: E402
from ..store import atomic_write_text  # noqa: E402
from .stix import guess_indicator_type, lookup_indicators  # noqa: E402

__all__ = ["to_misp_event", "write_misp", "misp_tlp_tag", "MISP_TYPES"]

_NS = uuid.UUID("0c1b6a3e-2f2e-4b8e-9d0a-7d6c4f1e2a11")

MISP_TYPES = {
    "ipv4": "ip-dst",
    "ipv6": "ip-dst",
    "domain": "domain",
    "url": "url",
    "x509_sha1": "x509-fingerprint-sha1",
    "x509_sha256": "x509-fingerprint-sha256",
    "x509_md5": "x509-fingerprint-md5",
    "ja3": "ja3-fingerprint-md5",
    "file_hash": "sha256",
}
"""sightline indicator type -> MISP attribute type (x509 serials have no MISP type: text)."""

# MISP's threat-actor galaxy (misp-galaxy, clusters/threat-actor.json).
_THREAT_ACTOR_GALAXY = {
    "name": "Threat Actor",
    "type": "threat-actor",
    "namespace": "misp",
    "description": "Threat actors are characteristics of malicious actors or adversaries.",
    "uuid": "698774c7-8022-42c4-917f-8d6e4f06ada3",
}


def misp_tlp_tag(level: str | None) -> str:
    """MISP taxonomy tag for a TLP level (``tlp:amber+strict`` ...)."""
    return f"tlp:{_mark(level)}"


def _uid(*key: Any) -> str:
    return str(uuid.uuid5(_NS, "|".join(str(k) for k in key)))


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _misp_type(itype: str | None, value: str) -> str:
    if itype == "file_hash":
        return {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}.get(len(value), "text")
    if itype in ("ipv4", "ipv6") and "/" in value:
        return "ip-dst"  # MISP accepts CIDR in ip-dst
    return MISP_TYPES.get(itype or "", "text")


def to_misp_event(findings: dict[str, Any], *, indicators: pa.Table | None = None, distribution: int = 0) -> MISPEvent:
    """Build a :class:`pymisp.MISPEvent` from ``findings``.

    Parameters
    ----------
    findings
        A findings document (filter it by TLP first to share with a restricted audience).
    indicators
        Optional indicator table (``INDICATOR_SCHEMA``) for types, confidence and comments.
    distribution
        MISP distribution of the event (0 = this organization only, the safe default).
    """
    ev = MISPEvent()
    run = findings.get("run_id") or findings.get("generated_at") or "sightline"
    ev.uuid = _uid("event", run)
    actors = list(findings.get("actors") or [])
    orgs = [o for o in findings.get("organizations") or [] if isinstance(o, dict)]
    for o in orgs:
        for h in o.get("hosts") or []:
            for e in h.get("evidence") or []:
                if e.get("actor") and e["actor"] not in actors:
                    actors.append(str(e["actor"]))
    ev.info = f"sightline: victims of {', '.join(actors) or 'the campaign'} ({run})"
    window = findings.get("window") or {}
    start = _dt(window.get("start")) or _dt(findings.get("generated_at"))
    ev.date = (start or datetime(1970, 1, 1, tzinfo=UTC)).date()
    ev.distribution = distribution
    verdicts = {o.get("verdict") for o in orgs}
    ev.threat_level_id = 1 if "compromised" in verdicts else 2 if "exploitation_attempt" in verdicts else 3
    ev.analysis = 2
    ev.published = False
    base_tlp = _mark(findings.get("tlp"))  # the level the findings were shared at
    ev.add_tag(misp_tlp_tag(base_tlp))

    # --- actor galaxy ---------------------------------------------------------------------
    if actors:
        galaxy = MISPGalaxy()
        galaxy.from_dict(**_THREAT_ACTOR_GALAXY)
        for a in actors:
            galaxy.add_galaxy_cluster(
                value=a,
                type="threat-actor",
                uuid=_uid("actor", a),
                tag_name=f'misp-galaxy:threat-actor="{a}"',
                description=f"{a}, as named by the intel behind these findings",
            )
            ev.add_tag(f'misp-galaxy:threat-actor="{a}"')
        ev.add_galaxy(galaxy)

    # --- indicators with sightings ---------------------------------------------------------
    ind_rows: dict[str, list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]] = {}
    for o in orgs:
        for h in o.get("hosts") or []:
            for ind in h.get("indicators") or []:
                ind_rows.setdefault(str(ind), [])
            for e in h.get("evidence") or []:
                if e.get("indicator") is not None:
                    ind_rows.setdefault(str(e["indicator"]), []).append((o, h, e))
    intel = lookup_indicators(indicators, set(ind_rows))
    for value in sorted(ind_rows):
        row = intel.get(value) or {}
        itype = row.get("type") or guess_indicator_type(value)
        rows = ind_rows[value]
        level = row.get("tlp") or _strictest(e.get("tlp") or h.get("tlp") or o.get("tlp") for o, h, e in rows)
        firsts = [t for t in (_dt(e.get("first_seen")) for _, _, e in rows) if t]
        lasts = [t for t in (_dt(e.get("last_seen")) for _, _, e in rows) if t]
        comment = row.get("description") or f"{row.get('actor') or ', '.join(actors) or 'actor'} infrastructure"
        kwargs: dict[str, Any] = {
            "uuid": _uid("attr", value),
            "to_ids": True,
            "comment": comment,
            "category": "Network activity",
        }
        if firsts and lasts:
            kwargs["first_seen"] = min(firsts)
            kwargs["last_seen"] = max(max(lasts), min(firsts))
        mtype = _misp_type(itype, value)
        if mtype == "ip-dst" and rows and all(e.get("direction") == "inbound" for _, _, e in rows):
            mtype = "ip-src"  # it only ever came to the victims (scanner, exploiter): a source address
        attr = ev.add_attribute(mtype, value, **kwargs)
        assert isinstance(attr, MISPAttribute)
        attr.add_tag(misp_tlp_tag(level))
        if row.get("confidence") is not None:
            # MISP's confidence taxonomy has no 0-100 scale; a free tag keeps the number.
            attr.add_tag(f"sightline:indicator-confidence={int(row['confidence'])}")
        for o, h, e in rows:
            when = _dt(e.get("last_seen")) or _dt(e.get("first_seen"))
            sight: dict[str, Any] = {
                "type": "0",
                "uuid": _uid("sighting", o.get("org_id"), h.get("ip"), value, e.get("behaviour"), e.get("first_seen")),
                "source": f"sightline {e.get('behaviour')}, {e.get('flows')} flows",
            }
            if when:
                # MISP's own wire format for sightings is epoch seconds (as text); PyMISP keeps
                # it as is both ways, so the value survives a round trip unchanged.
                sight["date_sighting"] = str(int(when.timestamp()))
            attr.add_sighting(**sight)

    # --- victims and evidence ----------------------------------------------------------------
    for o in orgs:
        otlp = o.get("tlp")
        public = _mark(otlp, base_tlp) in ("clear", "green")
        name = str(o.get("name") or o.get("org_id"))
        if public and not findings.get("anonymized"):
            name = f"{o.get('sector') or 'unknown-sector'} organization ({o.get('country') or '??'}) {_uid('x', o.get('org_id'))[:8]}"
        comment = f"{o.get('verdict')} (confidence {o.get('confidence')}); sector {o.get('sector') or 'unknown'}"
        a = ev.add_attribute(
            "target-org",
            name,
            uuid=_uid("victim", o.get("org_id")),
            category="Targeting data",
            to_ids=False,
            comment=comment,
        )
        assert isinstance(a, MISPAttribute)
        a.add_tag(misp_tlp_tag(otlp))
        if o.get("country"):
            a = ev.add_attribute(
                "target-location",
                str(o["country"]),
                uuid=_uid("loc", o.get("org_id")),
                category="Targeting data",
                to_ids=False,
                comment=name,
            )
            assert isinstance(a, MISPAttribute)
            a.add_tag(misp_tlp_tag(otlp))
        for h in o.get("hosts") or []:
            htlp = h.get("tlp") or otlp
            a = ev.add_attribute(
                "target-machine",
                str(h.get("ip")),
                uuid=_uid("host", o.get("org_id"), h.get("ip")),
                category="Targeting data",
                to_ids=False,
                comment=f"{name}: {h.get('verdict')} (confidence {h.get('confidence')})",
            )
            assert isinstance(a, MISPAttribute)
            a.add_tag(misp_tlp_tag(htlp))
            for e in h.get("evidence") or []:
                text = "; ".join(
                    f"{k}: {v}"
                    for k, v in (
                        ("organization", name),
                        ("host", h.get("ip")),
                        ("behaviour", e.get("behaviour")),
                        ("indicator", e.get("indicator")),
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
                a = ev.add_attribute(
                    "text",
                    text,
                    category="Other",
                    to_ids=False,
                    comment="sightline evidence",
                    uuid=_uid(
                        "evidence",
                        o.get("org_id"),
                        h.get("ip"),
                        e.get("indicator"),
                        e.get("behaviour"),
                        e.get("first_seen"),
                    ),
                )
                assert isinstance(a, MISPAttribute)
                a.add_tag(misp_tlp_tag(e.get("tlp") or htlp))

    # --- suspected infrastructure: not intel, so never IDS ----------------------------------
    for s in findings.get("suspected_infrastructure") or []:
        if isinstance(s, dict) and s.get("ip"):
            a = ev.add_attribute(
                "ip-dst",
                str(s["ip"]),
                uuid=_uid("suspected", s["ip"]),
                to_ids=False,
                category="Network activity",
                comment=f"suspected actor infrastructure (score {s.get('score')}): {s.get('reason') or ''}",
            )
            assert isinstance(a, MISPAttribute)
            a.add_tag(misp_tlp_tag(s.get("tlp")))
    return ev


def write_misp(findings: dict[str, Any], path: Path, *, indicators: pa.Table | None = None) -> None:
    """Write the MISP event as JSON (``{"Event": {...}}``, the MISP export format) atomically."""
    ev = to_misp_event(findings, indicators=indicators)
    text = ev.to_json(indent=2, sort_keys=True)
    atomic_write_text(Path(path), '{"Event": ' + text + "}\n")
