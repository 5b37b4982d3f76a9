"""Zeek Intel framework file (``intel.dat``) for the actor's indicators.

Layout (tab-separated, ``-`` = unset, as Zeek's input framework reads it)::

    # TLP:AMBER  sightline intel for RedJuliett, run ...
    #fields	indicator	indicator_type	meta.source	meta.desc	meta.url
    198.51.100.7	Intel::ADDR	sightline	RedJuliett C2 (confidence 80)	-

Lines starting with ``#`` other than ``#fields`` are comments to Zeek, so the TLP marking
travels in the file without disturbing it.  Load it with
``redef Intel::read_files += { "/path/intel.dat" };``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..core.tlp import strictest_label as _strictest
from ..store import atomic_write_text
from .stix import guess_indicator_type

__all__ = ["ZEEK_FIELDS", "ZEEK_TYPES", "write_zeek_intel", "render_zeek_intel", "collect_indicators"]

ZEEK_FIELDS = ("indicator", "indicator_type", "meta.source", "meta.desc", "meta.url")

ZEEK_TYPES = {
    "ipv4": "Intel::ADDR",
    "ipv6": "Intel::ADDR",
    "domain": "Intel::DOMAIN",
    "url": "Intel::URL",
    "x509_sha1": "Intel::CERT_HASH",
    "file_hash": "Intel::FILE_HASH",
}
"""sightline indicator type -> Zeek Intel type (CIDRs become ``Intel::SUBNET``)."""


def collect_indicators(findings: dict[str, Any], indicators: pa.Table | None = None) -> list[dict[str, Any]]:
    """The indicators to deploy: the whole (non-revoked) intel table when given, else the findings'.

    Each item: ``type, value, port, actor, confidence, tlp, description``; sorted by type and
    value, one per (type, value, port).
    """
    out: dict[tuple[str, str, Any], dict[str, Any]] = {}
    if indicators is not None and indicators.num_rows:
        t = indicators
        if "revoked" in t.column_names:
            t = t.filter(pc.invert(pc.fill_null(t.column("revoked"), False)))
        cols = [
            c for c in ("type", "value", "port", "actor", "confidence", "tlp", "description") if c in t.column_names
        ]
        for r in t.select(cols).to_pylist():
            key = (str(r["type"]), str(r["value"]), r.get("port"))
            prev = out.get(key)
            if prev is None or (r.get("confidence") or 0) > (prev.get("confidence") or 0):
                out[key] = r
    else:
        tlps: dict[str, list[Any]] = {}
        actors: dict[str, str | None] = {}
        for o in findings.get("organizations") or []:
            for h in o.get("hosts") or []:
                for ind in h.get("indicators") or []:
                    tlps.setdefault(str(ind), [])
                for e in h.get("evidence") or []:
                    if e.get("indicator") is not None:
                        v = str(e["indicator"])
                        tlps.setdefault(v, []).append(e.get("tlp") or h.get("tlp") or o.get("tlp"))
                        actors.setdefault(v, e.get("actor"))
        for v, tl in tlps.items():
            itype = guess_indicator_type(v)
            if itype is None:
                continue
            out[(itype, v, None)] = {
                "type": itype,
                "value": v,
                "port": None,
                "actor": actors.get(v),
                "confidence": None,
                "tlp": _strictest(tl),
                "description": None,
            }
    return [out[k] for k in sorted(out, key=lambda k: (k[0], k[1], k[2] if k[2] is not None else -1))]


def _field(value: Any) -> str:
    if value is None:
        return "-"
    text = " ".join(str(value).split())  # tabs and newlines would break the layout
    if text == "":
        return "(empty)"
    return "\\x2d" if text == "-" else text


def render_zeek_intel(
    findings: dict[str, Any], *, indicators: pa.Table | None = None, source: str = "sightline"
) -> tuple[str, list[str]]:
    """The intel file's text and the indicators that Zeek cannot match (with the reason)."""
    items = collect_indicators(findings, indicators)
    skipped: list[str] = []
    lines: list[str] = []
    for it in items:
        itype, value = str(it["type"]), str(it["value"])
        ztype = ZEEK_TYPES.get(itype)
        if itype in ("ipv4", "ipv6"):
            try:
                net = ipaddress.ip_network(value, strict=False)
            except ValueError:
                skipped.append(f"{value}: not an address")
                continue
            single = net.num_addresses == 1
            ztype = "Intel::ADDR" if single else "Intel::SUBNET"
            value = str(net.network_address) if single else str(net)
        elif itype == "url":
            value = value.split("://", 1)[-1]  # Zeek's URL intel matches host + path, no scheme
        if ztype is None:
            skipped.append(f"{value}: Zeek Intel has no type for {itype}")
            continue
        desc = ", ".join(
            p
            for p in (
                it.get("actor") and f"{it['actor']} infrastructure",
                it.get("description"),
                it.get("confidence") is not None and f"confidence {it['confidence']}",
                it.get("port") is not None and f"port {it['port']}",
                it.get("tlp") and f"TLP:{str(it['tlp']).upper()}",
            )
            if p
        )
        lines.append("\t".join(_field(x) for x in (value, ztype, source, desc or None, None)))
    tlp = _strictest([findings.get("tlp")] + [it.get("tlp") for it in items])
    actors = ", ".join(findings.get("actors") or []) or "the campaign"
    head = [
        f"# TLP:{tlp.upper()}  sightline intel for {' '.join(actors.split())}, run {findings.get('run_id') or '-'}",
        "#fields\t" + "\t".join(ZEEK_FIELDS),
    ]
    return "\n".join(head + lines) + "\n", skipped


def write_zeek_intel(
    findings: dict[str, Any], path: Path, *, indicators: pa.Table | None = None, source: str = "sightline"
) -> list[str]:
    """Write ``intel.dat`` atomically; returns the indicators left out (with the reason).

    Parameters
    ----------
    findings
        The findings document (its indicators are used when ``indicators`` is None).
    path
        Output file.
    indicators
        The intel table (``INDICATOR_SCHEMA``): all non-revoked indicators are written.
    source
        ``meta.source`` value.
    """
    text, skipped = render_zeek_intel(findings, indicators=indicators, source=source)
    atomic_write_text(Path(path), text)
    return skipped
