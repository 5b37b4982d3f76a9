"""TLP clearance: what one dashboard user or API token may see.

The dashboard shares the findings with each user through the one sharing policy
(:func:`sightline.findings.share`) once per request, before anything is rendered, counted,
charted or exported; nothing here decides what a clearance allows.  This module only turns a
user into an :class:`~sightline.findings.Audience` and filters the indicator list by the same
markings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core.tlp import DEFAULT_TLP, LEVELS, TLP, TLPError, marking, parse_tlp
from ..core.verdicts import VERDICT_RANK
from ..findings import Audience, Findings, from_dict, share

__all__ = [
    "TLP_LEVELS",
    "clearance_of",
    "filter_for_clearance",
    "visible_indicators",
    "verdict_rank",
]

TLP_LEVELS = LEVELS


def clearance_of(value: object) -> TLP:
    """A stored clearance; one that cannot be read grants the least (CLEAR): fail closed."""
    try:
        return parse_tlp(value, what="clearance")
    except TLPError:
        return TLP.CLEAR


def verdict_rank(value: object) -> int:
    """Strength of a verdict (unknown = 0)."""
    return VERDICT_RANK.get(str(value), 0)


def visible_indicators(
    rows: Iterable[dict[str, Any]], clearance: TLP, default_tlp: TLP = DEFAULT_TLP
) -> list[dict[str, Any]]:
    """Indicator rows a user cleared for ``clearance`` may see."""
    return [r for r in rows if marking(r.get("tlp"), default_tlp) <= clearance]


def filter_for_clearance(
    findings: Findings | dict[str, Any], clearance: str | TLP, *, indicators: Any = None, default_tlp: TLP = DEFAULT_TLP
) -> dict[str, Any]:
    """The findings as a reader cleared for ``clearance`` may see them (JSON-ready dict).

    ``indicators`` is today's indicator table (INDICATOR_SCHEMA), whose markings apply to the
    evidence naming them and whose visible rows are what ``inputs.indicators`` counts.
    """
    typed = findings if isinstance(findings, Findings) else from_dict(findings)
    audience = Audience(clearance if isinstance(clearance, TLP) else clearance_of(clearance), default_tlp=default_tlp)
    return share(typed, audience, indicators=indicators).to_dict()
