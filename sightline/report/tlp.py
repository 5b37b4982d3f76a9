"""Traffic Light Protocol (TLP 2.0) handling for everything sightline shares.

Each organization, host, evidence row and list entry in a findings document may carry a
``tlp`` key: the most restrictive TLP of the intel behind it.  Before a report leaves the
building, :func:`filter_findings` drops everything more restrictive than the audience may
see and names what it dropped; :func:`document_tlp` gives the marking an output must carry
(the most restrictive TLP left in it); :func:`anonymize_victims` replaces victim names, ids
and addresses with stable pseudonyms for public reports, keeping sector and country.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError
from ..schema import TLP_LEVELS

__all__ = [
    "TLP_LEVELS",
    "normalize_tlp",
    "tlp_rank",
    "most_restrictive",
    "document_tlp",
    "filter_findings",
    "anonymize_victims",
]

_ALIASES = {"white": "clear", "amber-strict": "amber+strict", "amber_strict": "amber+strict"}

# Lists of a findings document whose entries carry their own ``tlp`` and are filtered as a whole.
_TOP_LISTS = ("stale_matches", "suspected_infrastructure", "actor_infrastructure", "exposure")


def normalize_tlp(value: str | None, *, default: str = "clear") -> str:
    """Return the TLP 2.0 name for ``value`` (``TLP:AMBER``, ``white``, ``amber`` ...).

    Raises
    ------
    ConfigError
        If ``value`` is not a TLP level.
    """
    if value is None or str(value).strip() == "":
        return default
    v = str(value).strip().lower()
    if v.startswith("tlp:"):
        v = v[4:]
    v = _ALIASES.get(v, v)
    if v not in TLP_LEVELS:
        raise ConfigError(
            f"unknown TLP level {value!r}",
            field="tlp",
            hint="use one of " + ", ".join(TLP_LEVELS),
        )
    return v


def tlp_rank(value: str | None) -> int:
    """Position of ``value`` in :data:`TLP_LEVELS` (0 = clear).  Unmarked counts as clear."""
    return TLP_LEVELS.index(normalize_tlp(value))


def most_restrictive(values: Iterable[str | None]) -> str:
    """The most restrictive TLP among ``values`` (``clear`` when empty)."""
    best = 0
    for v in values:
        best = max(best, tlp_rank(v))
    return TLP_LEVELS[best]


def _walk_tlps(findings: dict[str, Any]) -> Iterable[str | None]:
    for org in findings.get("organizations") or []:
        yield org.get("tlp")
        for host in org.get("hosts") or []:
            yield host.get("tlp")
            for ev in host.get("evidence") or []:
                yield ev.get("tlp")
    for key in _TOP_LISTS:
        for item in findings.get(key) or []:
            if isinstance(item, dict):
                yield item.get("tlp")


def document_tlp(findings: dict[str, Any]) -> str:
    """The TLP an output of ``findings`` must carry: the most restrictive TLP it contains.

    A document-level ``tlp`` key counts only when the document has no marked content at all
    (an empty report of a restricted hunt is still as restricted as its inputs said).
    """
    inner = list(_walk_tlps(findings))
    if any(v is not None for v in inner):
        return most_restrictive(inner)
    return normalize_tlp(findings.get("tlp"))


def _recount(findings: dict[str, Any]) -> None:
    """Recompute ``summary`` from the organizations that are left."""
    from .findings import summarize

    summary = dict(findings.get("summary") or {})
    summary.update(summarize([o for o in findings.get("organizations") or [] if isinstance(o, dict)]))
    findings["summary"] = summary


def filter_findings(findings: dict[str, Any], max_tlp: str) -> tuple[dict[str, Any], list[str]]:
    """Drop everything more restrictive than ``max_tlp``.

    Parameters
    ----------
    findings
        A findings document (not modified).
    max_tlp
        The most restrictive TLP the audience may receive (``clear`` ... ``red``).

    Returns
    -------
    (filtered, dropped)
        A filtered deep copy, with ``summary`` recomputed and ``tlp`` set to the marking of
        what is left, and a human-readable name for each dropped item, e.g.
        ``"organization AS4780 (TLP:RED)"``.  Hosts whose evidence was all dropped are
        dropped too, and organizations left without hosts.
    """
    limit = tlp_rank(max_tlp)
    out = copy.deepcopy(findings)
    dropped: list[str] = []

    def too_secret(item: dict[str, Any]) -> bool:
        return tlp_rank(item.get("tlp")) > limit

    def label(item: dict[str, Any]) -> str:
        return f"TLP:{normalize_tlp(item.get('tlp')).upper()}"

    orgs_kept = []
    for org in out.get("organizations") or []:
        oid = org.get("org_id", "?")
        if too_secret(org):
            dropped.append(f"organization {oid} ({label(org)})")
            continue
        hosts_kept = []
        for host in org.get("hosts") or []:
            hip = host.get("ip", "?")
            if too_secret(host):
                dropped.append(f"host {hip} of {oid} ({label(host)})")
                continue
            evidence = host.get("evidence") or []
            ev_kept = []
            for ev in evidence:
                if too_secret(ev):
                    dropped.append(
                        f"evidence {ev.get('behaviour', '?')} {hip}<->{ev.get('indicator', '?')} of {oid} ({label(ev)})"
                    )
                else:
                    ev_kept.append(ev)
            if evidence and not ev_kept:
                dropped.append(f"host {hip} of {oid} (all evidence dropped)")
                continue
            host["evidence"] = ev_kept
            # Indicators named only by dropped evidence must not leak through the host's list.
            if evidence and len(ev_kept) < len(evidence):
                still = {e.get("indicator") for e in ev_kept}
                host["indicators"] = [i for i in host.get("indicators") or [] if i in still]
            hosts_kept.append(host)
        if (org.get("hosts") or []) and not hosts_kept:
            dropped.append(f"organization {oid} (all hosts dropped)")
            continue
        org["hosts"] = hosts_kept
        orgs_kept.append(org)
    out["organizations"] = orgs_kept

    for key in _TOP_LISTS:
        items = out.get(key)
        if not items:
            continue
        kept = []
        for item in items:
            if isinstance(item, dict) and too_secret(item):
                what = item.get("indicator") or item.get("ip") or item.get("host") or item.get("org_id") or "?"
                dropped.append(f"{key} {what} ({label(item)})")
            else:
                kept.append(item)
        out[key] = kept

    _recount(out)
    out["tlp"] = document_tlp(out)
    return out, dropped


def _pseudonym(kind: str, value: str, n: int = 8) -> str:
    # Stable across runs (same victim -> same pseudonym) but not reversible by guessing
    # short names; the prefix tells the reader what kind of thing it was.
    return f"{kind}-" + hashlib.sha256(f"sightline:{kind}:{value}".encode()).hexdigest()[:n]


def _pseudo_ip(ip: str) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return _pseudonym("host", ip)
    return _pseudonym("host6" if addr.version == 6 else "host", ip)


def anonymize_victims(findings: dict[str, Any]) -> dict[str, Any]:
    """Replace victim names, ids and host addresses by stable pseudonyms.

    Sector and country are kept (the breakdown a public report gives), and so are the actor's
    indicators.  The same victim always gets the same pseudonym, so two anonymized reports
    can be compared.  ASNs are dropped: they identify the victim.  The input is not modified.
    """
    out = copy.deepcopy(findings)
    id_map: dict[str, str] = {}
    ip_map: dict[str, str] = {}

    def org_alias(org_id: str, sector: str | None, country: str | None) -> str:
        if org_id not in id_map:
            id_map[org_id] = _pseudonym(f"{(sector or 'org').replace(' ', '_')}-{country or 'xx'}".lower(), org_id, 6)
        return id_map[org_id]

    def ip_alias(ip: str) -> str:
        if ip not in ip_map:
            ip_map[ip] = _pseudo_ip(ip)
        return ip_map[ip]

    for org in out.get("organizations") or []:
        alias = org_alias(str(org.get("org_id")), org.get("sector"), org.get("country"))
        sector = org.get("sector") or "organization"
        org["org_id"] = alias
        org["name"] = f"{sector} organization {alias.rsplit('-', 1)[-1]} ({org.get('country') or '??'})"
        org["asns"] = []
        org.pop("domains", None)
        for host in org.get("hosts") or []:
            host["ip"] = ip_alias(str(host.get("ip")))
            host.pop("hostname", None)
    for item in out.get("stale_matches") or []:
        if item.get("org_id") is not None:
            item["org_id"] = id_map.get(item["org_id"]) or org_alias(str(item["org_id"]), None, None)
        if item.get("host"):
            item["host"] = ip_alias(str(item["host"]))
    for item in out.get("suspected_infrastructure") or []:
        if item.get("organizations"):
            item["organizations"] = [id_map.get(o) or org_alias(str(o), None, None) for o in item["organizations"]]
    for item in out.get("exposure") or []:
        # Exposure rows describe the victims' own devices: their addresses identify them.
        for k in ("ip", "host", "address"):
            if item.get(k):
                item[k] = ip_alias(str(item[k]))
        if item.get("org_id"):
            item["org_id"] = id_map.get(item["org_id"]) or org_alias(str(item["org_id"]), None, None)
        for k in ("hostname", "name", "org_name"):
            item.pop(k, None)
    out["anonymized"] = True
    return out
