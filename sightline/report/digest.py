"""What a report written for people shows of a big campaign.

``findings.json`` (and ``sightline export``, the dashboard and the API) keep every host and every
evidence row. The HTML, Markdown and PDF reports are read by people: they list every organization,
but per organization only its first hosts (the most serious first, as the findings order them) and
per host its first evidence rows, within a budget for the whole page, and say how many more there
are and where to get them. A 4,000-host campaign then gives a page of a few megabytes that a
browser opens at once, instead of tens of megabytes it barely opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ..core.verdicts import org_order
from ..findings.model import Findings, Host, Organization

__all__ = ["DigestBudget", "DEFAULT_BUDGET", "MORE_HINT", "digest"]

#: Where the rest is, said wherever the report shows less than the findings hold.
MORE_HINT = "sightline export (every evidence row as CSV or Parquet), findings.json or the dashboard"


@dataclass(frozen=True)
class DigestBudget:
    """How much of the findings a report shows.

    ``hosts``: host sections in the whole report; every organization gets at least
    ``min_hosts_per_org`` of its hosts (fewer when there are more organizations than the budget
    allows for), the rest of the budget goes to the most serious organizations first.
    ``evidence_per_host``: evidence rows shown per host. ``rows``: rows of each other table
    (stale matches, suspected infrastructure, actor servers, exposure, hand-offs);
    ``indicators_per_host``: indicators named in a host's line.
    """

    hosts: int = 1000
    min_hosts_per_org: int = 3
    evidence_per_host: int = 5
    indicators_per_host: int = 20
    rows: int = 500


DEFAULT_BUDGET = DigestBudget()


def _host_quota(orgs: list[Organization], budget: DigestBudget) -> list[int]:
    """Hosts shown per organization, in the order given (most serious first)."""
    n = len(orgs)
    if not n:
        return []
    floor = max(1, min(budget.min_hosts_per_org, budget.hosts // n))
    quota = [min(len(o.hosts), floor) for o in orgs]
    left = budget.hosts - sum(quota)
    for i, o in enumerate(orgs):
        if left <= 0:
            break
        extra = min(len(o.hosts) - quota[i], left)
        quota[i] += extra
        left -= extra
    return quota


def digest(doc: Findings, budget: DigestBudget = DEFAULT_BUDGET) -> dict[str, Any]:
    """``doc`` as the findings dict a report renders, with hosts and evidence trimmed to ``budget``.

    Every organization is kept. A trimmed organization carries ``hosts_total`` and a trimmed host
    ``evidence_total`` (how many the findings hold); the document carries ``digest`` with the
    totals, what is shown and :data:`MORE_HINT`. Trimming keeps the findings' own order, so what
    is shown is what decided each verdict first. ``doc`` itself is not changed.
    """
    orgs_in = doc.organizations
    order = sorted(
        range(len(orgs_in)),
        key=lambda i: org_order(orgs_in[i].verdict, orgs_in[i].confidence, orgs_in[i].org_id),
    )
    ranked = [doc.organizations[i] for i in order]
    quota = dict(zip(order, _host_quota(ranked, budget)))
    orgs: list[Organization] = []
    trimmed_orgs: dict[int, int] = {}
    trimmed_hosts: dict[tuple[int, int], int] = {}
    hosts_total = evidence_total = hosts_shown = evidence_shown = 0
    for i, org in enumerate(doc.organizations):
        keep = quota.get(i, 0)
        hosts_total += len(org.hosts)
        hosts: list[Host] = []
        for j, h in enumerate(org.hosts[:keep]):
            evidence_total += len(h.evidence)
            if len(h.evidence) > budget.evidence_per_host:
                trimmed_hosts[(i, j)] = len(h.evidence)
                h = msgspec.structs.replace(h, evidence=h.evidence[: budget.evidence_per_host])
            evidence_shown += len(h.evidence)
            hosts.append(h)
        for h in org.hosts[keep:]:
            evidence_total += len(h.evidence)
        hosts_shown += len(hosts)
        if len(hosts) < len(org.hosts):
            trimmed_orgs[i] = len(org.hosts)
        orgs.append(msgspec.structs.replace(org, hosts=hosts))  # a shallow copy: doc is not changed
    out = msgspec.structs.replace(doc, organizations=orgs).to_dict()
    for i, o in enumerate(out["organizations"]):
        o["hosts_total"] = trimmed_orgs.get(i, len(o["hosts"]))
        for j, h in enumerate(o["hosts"]):
            h["evidence_total"] = trimmed_hosts.get((i, j), len(h["evidence"]))
    out["digest"] = {
        "hosts_total": hosts_total,
        "hosts_shown": hosts_shown,
        "evidence_total": evidence_total,
        "evidence_shown": evidence_shown,
        "rows": budget.rows,
        "complete": hosts_shown == hosts_total and evidence_shown == evidence_total,
        "more": MORE_HINT,
    }
    return out
