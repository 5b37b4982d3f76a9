"""The verdict rule: evidence rows -> host verdicts -> organization verdict.  Written once.

Assessment (:mod:`sightline.assess`), triage (suppressions, allowlists, detector switches:
:mod:`sightline.suppress`) and every audience's view of the findings
(:mod:`sightline.findings.share`, which re-derives verdicts from the rows a reader may see)
all call :func:`assess_organization`.  A row decides by explicit fields only, never by its
text:

- its behaviour implies a verdict (:data:`BEHAVIOUR_VERDICT`);
- no guard ruled it out (``guards`` empty: shared or popular infrastructure, too few
  connections on a crowded address, research scanner, polled service, single probe ...);
- the intel is trusted enough: at least ``low_confidence``, and ``medium_confidence``
  for weak signs (repeated contact, refused callbacks, an address named by the intel inside a
  victim) and for anything on a crowded (popular or shared) indicator.

Strongest verdict wins; its confidence is the noisy-or of the deciding rows.  A host that was
exploited may be called compromised on C2 patterns from intel of low-medium confidence, and
exploitation of an organization followed by callbacks from it makes the calling hosts
compromised.  Reconnaissance needs probes of at least ``min_targets`` services of the
organization.  The thresholds are :class:`sightline.config.DetectionParams` (``params``; default
:data:`sightline.config.DEFAULT_DETECTION`).

The rule is idempotent: applying it again to the same rows gives the same result, and
applying it to a subset gives what that subset supports (derived flags are recomputed).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..config import DEFAULT_DETECTION, DetectionParams

if TYPE_CHECKING:
    from ..findings.model import Evidence, Host

__all__ = [
    "VERDICTS",
    "VERDICT_RANK",
    "BEHAVIOUR_VERDICT",
    "COMPROMISE_BEHAVIOURS",
    "STRONG_C2",
    "GUARD_TEXT",
    "DERIVED_GUARDS",
    "verdict_of",
    "confidence_floor",
    "is_eligible",
    "host_verdict",
    "assess_organization",
    "noisy_or",
    "guard_reasons",
    "org_order",
]

VERDICTS = ("compromised", "exploitation_attempt", "reconnaissance")
VERDICT_RANK = {"none": 0, "reconnaissance": 1, "exploitation_attempt": 2, "compromised": 3}


def org_order(verdict: str, confidence: int, org_id: str) -> tuple[int, int, str]:
    """Sort key of organizations in the findings and every report: the most serious verdict
    first, then the most confident, then by id (an unknown verdict sorts with ``none``)."""
    return (-VERDICT_RANK.get(verdict, 0), -confidence, org_id)


COMPROMISE_BEHAVIOURS = (
    "beacon",
    "long_connection",
    "vpn_tunnel",
    "exfiltration",
    "callback",
    "failed_callback",
    "relay",
)
STRONG_C2 = ("beacon", "long_connection", "vpn_tunnel", "exfiltration")
"""C2 patterns that can decide even on a crowded indicator (with medium confidence)."""
WEAK_COMPROMISE = ("callback", "failed_callback", "relay")
"""Compromise signs that need medium-confidence intel: repeated contact, callbacks the C2 did
not answer, an address of the organization named by the intel."""

BEHAVIOUR_VERDICT = {
    **{b: "compromised" for b in COMPROMISE_BEHAVIOURS},
    "exploitation": "exploitation_attempt",
    "scan": "reconnaissance",
}

GUARD_TEXT = {
    "shared_infrastructure": "shared infrastructure ({shared}): many unrelated parties use this address",
    "popular": "many organizations talk to this indicator",
    "too_few_connections": "too few connections to tell a schedule from chance on a crowded address",
    "weak_on_crowded": "mere contact with a crowded (popular or shared) address",
    "research_scanner": "known internet-wide research scanner ({shared})",
    "polled_service": "hosts of most organizations reach this address on a schedule (a service everybody polls)",
    "single_target": "probes of a single service of a single host of the organization",
    "not_a_tunnel": "one-way bulk transfer, not a tunnel",
}
"""Human text of each guard code (``{shared}`` is the evidence's shared-infrastructure mark)."""

DERIVED_GUARDS = frozenset({"single_target"})
"""Guards the rule itself sets from the rows it is given (recomputed on every application)."""


def verdict_of(behaviour: str) -> str:
    """The verdict a behaviour supports (``none`` for contact-only rows)."""
    return BEHAVIOUR_VERDICT.get(behaviour, "none")


def confidence_floor(ev: Evidence, params: DetectionParams = DEFAULT_DETECTION) -> int:
    """The indicator confidence this row needs to decide."""
    if ev.behaviour in WEAK_COMPROMISE or ev.crowded:
        return params.medium_confidence
    return params.low_confidence


def is_eligible(ev: Evidence, params: DetectionParams = DEFAULT_DETECTION) -> bool:
    """True when the row may decide a verdict (a verdict-bearing behaviour, no guard, trusted intel)."""
    return (
        not ev.guards and verdict_of(ev.behaviour) != "none" and ev.indicator_confidence >= confidence_floor(ev, params)
    )


def guard_reasons(ev: Evidence, params: DetectionParams = DEFAULT_DETECTION) -> list[str]:
    """Why a row does not decide, in words (empty when it may)."""
    out = [GUARD_TEXT.get(g, g).format(shared=ev.shared_infrastructure or "listed") for g in ev.guards or ()]
    floor = confidence_floor(ev, params)
    if verdict_of(ev.behaviour) != "none" and ev.indicator_confidence < floor:
        out.append(f"indicator confidence {ev.indicator_confidence} is below the {floor} this sign needs")
    return out


def noisy_or(confs: Iterable[int]) -> int:
    """Combined confidence of independent signs, 0-99."""
    p = 1.0
    for c in confs:
        p *= 1.0 - max(0, min(99, c)) / 100.0
    return int(min(99, round(100 * (1.0 - p))))


@functools.lru_cache(maxsize=65536)
def _t(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def host_verdict(rows: Sequence[Evidence], params: DetectionParams = DEFAULT_DETECTION) -> tuple[str, int]:
    """The verdict and confidence one host's rows support; marks the deciding rows."""
    eligible = [r for r in rows if is_eligible(r, params)]
    # a lower-confidence C2 pattern counts when the same host was also exploited
    exploited = any(r.behaviour == "exploitation" and is_eligible(r, params) for r in rows)
    if exploited:
        chosen = {id(r) for r in eligible}
        eligible += [
            r
            for r in rows
            if r.behaviour in COMPROMISE_BEHAVIOURS
            and id(r) not in chosen
            and not r.guards
            and r.indicator_confidence >= params.low_confidence
        ]
    for r in rows:
        r.decisive = False
    if not eligible:
        return "none", 0
    verdict = max((verdict_of(r.behaviour) for r in eligible), key=VERDICT_RANK.__getitem__)
    deciding = [r for r in eligible if verdict_of(r.behaviour) == verdict]
    for r in deciding:
        r.decisive = True
    return verdict, noisy_or(r.confidence for r in deciding)


def _reset(rows: Iterable[Evidence]) -> None:
    for r in rows:
        g = r.guards
        if g is None:
            r.guards = []
        elif g and not DERIVED_GUARDS.isdisjoint(g):  # a list is replaced, never edited: rows may share one
            r.guards = [x for x in g if x not in DERIVED_GUARDS]
        r.follows_exploitation = False
        r.decisive = False
        r.eligible = not r.guards


def assess_organization(hosts: Sequence[Host], params: DetectionParams = DEFAULT_DETECTION) -> list[Host]:
    """Apply the rule to an organization's hosts in place; returns the hosts with a verdict,
    strongest first (each host's ``verdict``, ``confidence``, its rows' ``decisive``,
    ``eligible``, ``follows_exploitation`` and derived ``guards`` are set)."""
    rows = [r for h in hosts for r in h.evidence]
    _reset(rows)
    # a lone probe (backscatter, a mistyped address, one packet of an internet-wide sweep), or
    # one service probed again and again (a census ping, a monitor), is not reconnaissance of
    # the organization: that needs several of its services (design: "many ports or hosts")
    scans = [(h.ip, r) for h in hosts for r in h.evidence if r.behaviour == "scan" and is_eligible(r, params)]
    targets = {(ip, r.dst_port) for ip, r in scans}
    multi_port = any(r.dst_port is None for _, r in scans)  # a row over several ports of a host
    if scans and len(targets) < params.min_targets and not multi_port:
        for _, r in scans:
            r.guards = [*(r.guards or ()), "single_target"]
            r.eligible = False
    for h in hosts:
        h.verdict, h.confidence = host_verdict(h.evidence, params)
    _post_exploitation(hosts, params)
    kept = [h for h in hosts if h.verdict != "none"]
    kept.sort(key=lambda h: (-VERDICT_RANK[h.verdict], -h.confidence, h.ip))
    return kept


def _post_exploitation(hosts: Sequence[Host], params: DetectionParams) -> None:
    """Exploitation of the organization followed by two-way callbacks from it -> compromised."""
    exploits = [r for h in hosts for r in h.evidence if r.behaviour == "exploitation" and is_eligible(r, params)]
    if not exploits:
        return
    t0 = min(_t(r.first_seen) for r in exploits)
    best_exploit = max(r.confidence for r in exploits)
    for h in hosts:
        if h.verdict == "compromised":
            continue
        # a callback to shared or popular infrastructure (someone browsing a CDN address the
        # actor also used) does not turn an exploitation attempt into a compromise
        calls = [
            r
            for r in h.evidence
            if r.direction == "outbound"
            and r.behaviour not in ("outbound_attempt", "failed_callback")
            and not r.guards
            and not r.crowded
            and _t(r.last_seen) >= t0 - params.clock_skew_s
            and r.indicator_confidence >= params.low_confidence
        ]
        if calls:
            for r in calls:
                r.follows_exploitation = True
                r.decisive = True
            h.verdict = "compromised"
            h.confidence = noisy_or([*(r.confidence for r in calls), best_exploit])
