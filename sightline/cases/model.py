"""Cases: one per affected organization, from "found" to "remediated".

A case is a plain JSON object (the store keeps them in ``<workspace>/cases/cases.json``)::

    {"id": "C-3f2a9c01d4", "org_id": "tw-semi-01", "name": "...", "sector": "...", "country": "TW",
     "state": "triaged", "verdict": "compromised", "confidence": 90, "assignee": "ana",
     "due": "2024-04-01", "due_source": "KEV due date of CVE-2022-42475 on 203.0.113.5:443",
     "tlp": "amber",
     "findings": {"203.0.113.5|198.51.100.7|beacon": {"host": ..., "indicator": ..., "behaviour": ...,
                  "tlp": "amber", "attached_at": "...", "run_id": "...", "last_run_id": "..."}},
     "exposure": {"203.0.113.5:443": {"tlp": "amber", "kev_due": "2024-04-01", "cves": [...]}},
     "verdicts": [{"run_id": ..., "at": ..., "verdict": ..., "confidence": ...}],
     "notes": [{"id": "n1", "at": ..., "who": ..., "text": ..., "tlp": "amber"}],
     "notices": [{"at": ..., "who": ..., "to": ..., "tlp": ..., "files": [...], "message_id": ..., "subject": ...}],
     "events": [{"at": ..., "who": ..., "from": ..., "what": "state", "old": "new", "new": "triaged"}],
     "suppressions": ["s-1a2b3c4d"], "closed_verdict": null, "created_at": ..., "updated_at": ...}

A case carries the TLP of its content: the most restrictive marking of the findings it holds
(evidence rows, hence hosts and the organization), of the exposure rows behind its due date,
and of its notes.  A reader sees a case -- and counts it -- only when that TLP is at or below
the reader's clearance (:func:`visible`); what it shows of the findings inside comes from the
reader's view of the findings, made by the one sharing policy.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..core.tlp import TLP, marking, most_restrictive

__all__ = [
    "STATES",
    "OPEN_STATES",
    "CLOSED_STATES",
    "TRANSITIONS",
    "case_id",
    "case_tlp",
    "visible",
    "counts_by_state",
    "can_move",
]

STATES = ("new", "triaged", "notified", "acknowledged", "remediated", "false_positive")
CLOSED_STATES = ("remediated", "false_positive")
OPEN_STATES = tuple(s for s in STATES if s not in CLOSED_STATES)

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("triaged", "notified", "false_positive"),
    "triaged": ("new", "notified", "false_positive"),
    "notified": ("triaged", "acknowledged", "remediated", "false_positive"),
    "acknowledged": ("notified", "remediated", "false_positive"),
    "remediated": ("triaged",),
    "false_positive": ("triaged",),
}
"""Moves an analyst may make.  Closed cases are reopened to ``triaged`` (by hand) or to
``new`` (when a later hunt escalates the verdict)."""


def case_id(org_id: str) -> str:
    """The case id of an organization (stable; says nothing about how many cases exist)."""
    return "C-" + hashlib.sha256(org_id.encode("utf-8")).hexdigest()[:10]


def can_move(old: str, new: str) -> bool:
    """True when an analyst may move a case from ``old`` to ``new``."""
    return new in TRANSITIONS.get(old, ())


def case_tlp(case: dict[str, Any], default_tlp: TLP) -> TLP:
    """The most restrictive marking of what ``case`` holds (findings, exposure rows, notes);
    unmarked content counts as ``default_tlp``."""
    marks = [marking(f.get("tlp"), default_tlp) for f in (case.get("findings") or {}).values()]
    marks += [marking(x.get("tlp"), default_tlp) for x in (case.get("exposure") or {}).values()]
    marks += [marking(n.get("tlp"), default_tlp) for n in case.get("notes") or []]
    return most_restrictive(marks, default=default_tlp)


def visible(cases: Iterable[dict[str, Any]], clearance: TLP | None, default_tlp: TLP) -> list[dict[str, Any]]:
    """The cases a reader cleared for ``clearance`` may see (None: the operator, everything)."""
    if clearance is None:
        return list(cases)
    return [c for c in cases if clearance.allows(marking(c.get("tlp"), default_tlp))]


def counts_by_state(cases: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Cases per state (every state present, zeros included), of the cases given."""
    n = Counter(str(c.get("state")) for c in cases)
    return {s: n.get(s, 0) for s in STATES}
