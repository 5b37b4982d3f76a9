"""The organization page, investigation first: why the verdict, the decisive rows, the rest.

Everything here reads an organization as the reader's view of the findings holds it (made by
the one sharing policy, verdicts by the one verdict rule): nothing is filtered or decided
again.  It only picks what to show first and says it in words.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core.verdicts import VERDICT_RANK, VERDICTS

__all__ = ["BEHAVIOUR_PHRASE", "decisive_rows", "reason_sentence", "host_groups", "evidence_of"]

BEHAVIOUR_PHRASE = {
    "beacon": "beaconed to",
    "long_connection": "held long sessions with",
    "vpn_tunnel": "kept a VPN-like tunnel open to",
    "exfiltration": "sent far more data than its baseline to",
    "callback": "called back repeatedly to",
    "failed_callback": "kept calling back, unanswered, to",
    "relay": "is named by the intel as actor infrastructure",
    "exploitation": "received exploitation traffic with payload from",
    "scan": "was probed by",
}
_VERDICT_WORDS = {
    "compromised": "compromised",
    "exploitation_attempt": "the target of exploitation attempts",
    "reconnaissance": "under reconnaissance",
}
_STRENGTH = {
    b: i
    for i, b in enumerate(
        (
            "beacon",
            "vpn_tunnel",
            "long_connection",
            "exfiltration",
            "callback",
            "exploitation",
            "failed_callback",
            "relay",
            "scan",
        )
    )
}


def _rows(org: dict[str, Any]) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    for h in org.get("hosts") or []:
        for e in h.get("evidence") or []:
            yield h, e


def decisive_rows(org: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows that decided the organization's verdict (hosts of that verdict, rows marked
    ``decisive`` by the verdict rule), strongest sign first; each with its ``host``."""
    verdict = org.get("verdict")
    out = [
        dict(e, host=h.get("ip"), host_verdict=h.get("verdict"))
        for h, e in _rows(org)
        if h.get("verdict") == verdict and e.get("decisive")
    ]
    out.sort(
        key=lambda r: (
            _STRENGTH.get(str(r.get("behaviour")), 99),
            -(r.get("confidence") or 0),
            -(r.get("score") or 0),
            str(r.get("host")),
            str(r.get("indicator")),
        )
    )
    return out


def _day(t: Any) -> str:
    return str(t or "")[:10]


def reason_sentence(org: dict[str, Any]) -> str:
    """Why the organization has its verdict, in one sentence (from its strongest decisive row)."""
    verdict = str(org.get("verdict") or "none")
    name = str(org.get("name") or org.get("org_id") or "This organization")
    rows = decisive_rows(org)
    if verdict not in VERDICTS or not rows:
        return f"{name} has no verdict on what you may see."
    r = rows[0]
    who = f"host {r.get('host')}"
    phrase = BEHAVIOUR_PHRASE.get(str(r.get("behaviour")), f"showed {r.get('behaviour')} with")
    if r.get("behaviour") == "relay":
        what = f"{r.get('indicator')} inside it {phrase}"
    elif r.get("follows_exploitation"):
        what = f"after exploitation of the organization, {who} called back to {r.get('indicator')}"
    else:
        what = f"{who} {phrase} {r.get('indicator')}"
    named = []
    if r.get("actor"):
        named.append(str(r["actor"]))
    if r.get("intel_sources"):
        since = f" since {_day(r.get('intel_first_seen'))}" if r.get("intel_first_seen") else ""
        named.append("named by " + ", ".join(map(str, r["intel_sources"])) + since)
    facts = [str(r["detail"])] if r.get("detail") else []
    facts.append(f"{r.get('flows')} flows")
    span = f"{_day(r.get('first_seen'))} to {_day(r.get('last_seen'))}"
    sentence = (
        f"{name} is {_VERDICT_WORDS[verdict]} (confidence {org.get('confidence')}): {what}"
        f"{' (' + '; '.join(named) + ')' if named else ''}, {span} ({', '.join(facts)})"
    )
    hosts = {x.get("host") for x in rows}
    if len(rows) > 1:
        sentence += f"; {len(rows) - 1} more decisive row{'s' if len(rows) > 2 else ''}"
        if len(hosts) > 1:
            sentence += f" on {len(hosts)} hosts"
    return sentence + "."


def host_groups(org: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Hosts grouped by verdict, strongest first: ``[(verdict, hosts)]``."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for h in org.get("hosts") or []:
        groups.setdefault(str(h.get("verdict") or "none"), []).append(h)
    return sorted(groups.items(), key=lambda kv: -VERDICT_RANK.get(kv[0], 0))


def evidence_of(org: dict[str, Any], host: str, indicator: str | None = None) -> list[dict[str, Any]]:
    """A host's rows in the reader's view (of one indicator, when given)."""
    return [
        e
        for h, e in _rows(org)
        if str(h.get("ip")) == host and (indicator is None or str(e.get("indicator")) == indicator)
    ]
