"""TLP clearance: what one user may see of a findings document.

The dashboard filters the findings dict **once per request**, before anything renders,
counts or exports, so no page, chart, count or export can leak what the user is not cleared
for.  The filter is fail-closed:

- an item's TLP is its own ``tlp``; unmarked evidence inherits its host's, the host its
  organization's, the organization the document's, and an unmarked document counts as
  ``amber`` ("treat unmarked as AMBER until known");
- evidence above the clearance is dropped, and so is evidence naming an indicator that the
  indicator table marks above the clearance;
- hosts left without evidence are dropped, then organizations left without hosts;
- what remains is re-derived from the visible evidence only (indicators, first/last seen,
  verdict and confidence when evidence was removed, TLP), and ``summary`` is recomputed;
- top-level lists (``stale_matches``, ``suspected_infrastructure``, ``actor_infrastructure``,
  ``exposure``) are filtered item by item, and organization ids that were hidden are removed
  from the items that remain.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from ..schema import TLP_LEVELS

__all__ = [
    "TLP_LEVELS",
    "VERDICTS",
    "DEFAULT_TLP",
    "normalize_tlp",
    "tlp_rank",
    "verdict_rank",
    "filter_for_clearance",
    "recount_summary",
]

VERDICTS = ("none", "reconnaissance", "exploitation_attempt", "compromised")
"""Verdicts from weakest to strongest (design.md)."""

DEFAULT_TLP = "amber"
"""TLP assumed for content nobody marked (fail closed)."""

_ALIASES = {"white": "clear", "amber-strict": "amber+strict", "amber_strict": "amber+strict", "amberstrict": "amber+strict"}

# Behaviours whose evidence supports each verdict; used only to *downgrade* a host whose
# supporting evidence was hidden.  Unknown behaviours keep the original verdict.
_BEHAVIOUR_VERDICT = {
    "scan": "reconnaissance",
    "probe": "reconnaissance",
    "recon": "reconnaissance",
    "reconnaissance": "reconnaissance",
    "exploitation": "exploitation_attempt",
    "exploit": "exploitation_attempt",
    "exploitation_attempt": "exploitation_attempt",
}

_TOP_LISTS = ("stale_matches", "suspected_infrastructure", "actor_infrastructure", "exposure")


def normalize_tlp(value: object, default: str = DEFAULT_TLP) -> str:
    """TLP 2.0 name for ``value`` (``TLP:RED``, ``white``, ``amber+strict`` ...).

    Unknown or empty values give ``default``; an unknown *marking* is treated as the most
    restrictive level, so a typo in a feed never widens access.
    """
    if value is None:
        return default
    v = str(value).strip().lower()
    if not v:
        return default
    if v.startswith("tlp:"):
        v = v[4:]
    v = _ALIASES.get(v, v)
    return v if v in TLP_LEVELS else "red"


def tlp_rank(value: object, default: str = DEFAULT_TLP) -> int:
    """Position of ``value`` in :data:`TLP_LEVELS` (0 = clear, 4 = red)."""
    return TLP_LEVELS.index(normalize_tlp(value, default))


def verdict_rank(value: object) -> int:
    """Position of a verdict in :data:`VERDICTS` (unknown = 0)."""
    try:
        return VERDICTS.index(str(value))
    except ValueError:
        return 0


def _min_max_time(items: Iterable[dict[str, Any]]) -> tuple[str | None, str | None]:
    # ISO-8601 UTC strings of the same shape sort chronologically.
    firsts = [str(i["first_seen"]) for i in items if i.get("first_seen")]
    lasts = [str(i["last_seen"]) for i in items if i.get("last_seen")]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def _downgraded_host_verdict(original: str, evidence: list[dict[str, Any]]) -> str:
    implied = 0
    for ev in evidence:
        v = _BEHAVIOUR_VERDICT.get(str(ev.get("behaviour", "")).lower(), original)
        implied = max(implied, verdict_rank(v))
    return VERDICTS[min(implied, verdict_rank(original))]


def recount_summary(doc: dict[str, Any]) -> None:
    """Recompute ``doc["summary"]`` (by verdict, sector, country) from its organizations."""
    from ..report.findings import summarize

    summary = dict(doc.get("summary") or {})
    summary.update(summarize([o for o in doc.get("organizations") or [] if isinstance(o, dict)]))
    doc["summary"] = summary


def filter_for_clearance(
    findings: dict[str, Any],
    clearance: str,
    *,
    hidden_indicators: Iterable[str] = (),
    visible_indicator_count: int | None = None,
) -> dict[str, Any]:
    """Return a copy of ``findings`` with everything above ``clearance`` removed.

    Parameters
    ----------
    findings
        A findings document (design.md contract); not modified.
    clearance
        The most restrictive TLP the user may see (``clear`` ... ``red``).
    hidden_indicators
        Indicator values the indicator table marks above the clearance; evidence naming
        them is dropped whatever its own marking says.
    visible_indicator_count
        Replaces ``inputs.indicators`` for users not cleared for everything (the total
        would reveal how many indicators are hidden); when ``None`` the key is removed.

    Returns
    -------
    dict
        The filtered document, with ``summary`` recomputed and ``tlp`` set to the most
        restrictive marking left in it.
    """
    limit = tlp_rank(clearance, "clear")
    hidden = {str(i) for i in hidden_indicators}
    doc_tlp = normalize_tlp(findings.get("tlp"))
    seen_tlps: list[int] = []
    out: dict[str, Any] = {k: v for k, v in findings.items() if k not in ("organizations", *_TOP_LISTS)}
    original_ids = {str(o.get("org_id")) for o in findings.get("organizations") or []}

    orgs_out: list[dict[str, Any]] = []
    for org in findings.get("organizations") or []:
        org_tlp = normalize_tlp(org.get("tlp"), doc_tlp)
        hosts_out: list[dict[str, Any]] = []
        org_changed = False
        for host in org.get("hosts") or []:
            host_tlp = normalize_tlp(host.get("tlp"), org_tlp)
            evidence = host.get("evidence") or []
            kept = [
                copy.deepcopy(ev)
                for ev in evidence
                if tlp_rank(ev.get("tlp"), host_tlp) <= limit and str(ev.get("indicator")) not in hidden
            ]
            if not evidence and tlp_rank(host_tlp) <= limit:
                # A host without evidence rows is shown on its own marking.
                hosts_out.append(copy.deepcopy(host))
                seen_tlps.append(tlp_rank(host_tlp))
                continue
            if not kept:
                org_changed = True
                continue
            h = copy.deepcopy({k: v for k, v in host.items() if k != "evidence"})
            h["evidence"] = kept
            ranks = [tlp_rank(e.get("tlp"), host_tlp) for e in kept]
            seen_tlps.extend(ranks)
            if len(kept) < len(evidence):
                org_changed = True
                visible = {str(e.get("indicator")) for e in kept}
                h["indicators"] = [i for i in host.get("indicators") or [] if str(i) in visible]
                h["first_seen"], h["last_seen"] = _min_max_time(kept)
                h["verdict"] = _downgraded_host_verdict(str(host.get("verdict", "none")), kept)
                scores = [float(e["score"]) for e in kept if isinstance(e.get("score"), int | float)]
                if scores and h.get("confidence") is not None:
                    h["confidence"] = min(int(h["confidence"]), round(100 * max(scores)))
                h["tlp"] = TLP_LEVELS[max(ranks)]
            hosts_out.append(h)
        if not hosts_out:
            continue
        o = copy.deepcopy({k: v for k, v in org.items() if k != "hosts"})
        o["hosts"] = hosts_out
        if org_changed:
            best = max(hosts_out, key=lambda x: (verdict_rank(x.get("verdict")), x.get("confidence") or 0))
            o["verdict"] = best.get("verdict")
            if o.get("confidence") is not None and best.get("confidence") is not None:
                o["confidence"] = min(int(o["confidence"]), int(best["confidence"]))
            o["first_seen"], o["last_seen"] = _min_max_time(hosts_out)
            o["tlp"] = TLP_LEVELS[max(tlp_rank(x.get("tlp"), org_tlp) for x in hosts_out)]
        orgs_out.append(o)
    out["organizations"] = orgs_out

    visible_ids = {str(o.get("org_id")) for o in orgs_out}
    hidden_ids = original_ids - visible_ids
    for key in _TOP_LISTS:
        items = findings.get(key)
        if items is None:
            continue
        kept_items = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            rank = tlp_rank(item.get("tlp"), doc_tlp)
            if rank > limit or str(item.get("indicator", "")) in hidden:
                continue
            if str(item.get("org_id")) in hidden_ids:
                continue
            it = copy.deepcopy(item)
            if isinstance(it.get("organizations"), list):
                it["organizations"] = [x for x in it["organizations"] if str(x) not in hidden_ids]
            kept_items.append(it)
            seen_tlps.append(rank)
        out[key] = kept_items

    inputs = dict(findings.get("inputs") or {})
    if limit < len(TLP_LEVELS) - 1:
        if visible_indicator_count is not None:
            inputs["indicators"] = int(visible_indicator_count)
        else:
            inputs.pop("indicators", None)
    out["inputs"] = inputs
    recount_summary(out)
    out["tlp"] = TLP_LEVELS[max(seen_tlps)] if seen_tlps else TLP_LEVELS[min(tlp_rank(doc_tlp), limit)]
    return out
