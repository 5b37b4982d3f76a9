"""Alerts on changes: what one sink has not been told yet.

An alert is a change in what a sink may see of the findings, never a repeat of them:

- ``new_victim``: an organization with a verdict the sink has not been told of;
- ``verdict_escalation``: its verdict rose (reconnaissance -> exploitation_attempt ->
  compromised); a verdict that falls or stays is no alert;
- ``new_host``: a host of an organization already reported compromised that the sink has
  not been told of;
- ``suspected_infrastructure``: an address listed as suspected infrastructure for the
  first time.

What a sink sees is the findings shared at its clearance by the one sharing policy
(:func:`sightline.report.prepare`): an organization whose only evidence is AMBER does not
exist for a GREEN sink, and its verdict there is re-derived from what the sink may see.
Each alert carries the TLP of the item it reports.  Alerts are keyed by what they say
(``kind``, organization, verdict, host, address), so a key once sent is never sent again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..core.verdicts import VERDICT_RANK

__all__ = ["Alert", "SeenState", "changes", "alert_id"]

KINDS = ("new_victim", "verdict_escalation", "new_host", "suspected_infrastructure")


def alert_id(key: str) -> str:
    """Stable id of what an alert says (the same change has the same id in every sink and run)."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass
class Alert:
    """One change, as a sink may see it."""

    kind: str
    key: str
    tlp: str
    summary: str
    data: dict[str, Any]
    order: tuple[str, str] = ("", "")

    @property
    def id(self) -> str:
        return alert_id(self.key)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "tlp": self.tlp, "summary": self.summary, **self.data}


@dataclass
class SeenState:
    """What a sink has been told: verdict per organization, hosts of compromised ones,
    suspected addresses, and every alert key sent (the de-duplication set)."""

    orgs: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, list[str]] = field(default_factory=dict)
    suspected: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SeenState:
        d = d or {}
        return cls(
            orgs=dict(d.get("orgs") or {}),
            hosts={k: list(v) for k, v in (d.get("hosts") or {}).items()},
            suspected=list(d.get("suspected") or []),
            keys=list(d.get("keys") or []),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"orgs": self.orgs, "hosts": self.hosts, "suspected": self.suspected, "keys": self.keys}


def _org_data(org: dict[str, Any], link: str) -> dict[str, Any]:
    return {
        "org_id": org["org_id"],
        "name": org.get("name"),
        "sector": org.get("sector"),
        "country": org.get("country"),
        "asns": org.get("asns") or [],
        "verdict": org["verdict"],
        "confidence": org.get("confidence"),
        "first_seen": org.get("first_seen"),
        "last_seen": org.get("last_seen"),
        "hosts": [h["ip"] for h in org.get("hosts", [])],
        "indicators": sorted({i for h in org.get("hosts", []) for i in h.get("indicators", [])}),
        "link": link,
    }


def changes(
    doc: dict[str, Any], seen: SeenState, *, link: Any = None, default_tlp: str = "amber"
) -> tuple[list[Alert], SeenState]:
    """The alerts ``doc`` (findings as one sink may see them) holds against ``seen``, oldest
    activity first, and the state after them.  ``link(kind, id)`` makes each alert's link to
    its finding."""
    mk = link or (lambda kind, ident: "")
    sent = set(seen.keys)
    new = SeenState(dict(seen.orgs), {k: list(v) for k, v in seen.hosts.items()}, list(seen.suspected), list(seen.keys))
    out: list[Alert] = []

    def add(alert: Alert) -> None:
        if alert.key in sent:
            return
        sent.add(alert.key)
        new.keys.append(alert.key)
        out.append(alert)

    for org in doc.get("organizations", []):
        oid, verdict = org["org_id"], org["verdict"]
        if VERDICT_RANK.get(verdict, 0) <= 0:
            continue
        tlp = org.get("tlp") or default_tlp
        before = seen.orgs.get(oid)
        data = _org_data(org, mk("org", oid))
        when = (org.get("first_seen") or "", oid)
        label = f"{org.get('name') or oid} ({oid})"
        if before is None:
            add(Alert("new_victim", f"new_victim|{oid}", tlp, f"new victim {label}: {verdict}", data, when))
        elif VERDICT_RANK.get(verdict, 0) > VERDICT_RANK.get(before, 0):
            data["previous_verdict"] = before
            add(
                Alert(
                    "verdict_escalation",
                    f"verdict_escalation|{oid}|{verdict}",
                    tlp,
                    f"{label}: {before} -> {verdict}",
                    data,
                    (org.get("last_seen") or "", oid),
                )
            )
        if before is not None and VERDICT_RANK.get(before, 0) < VERDICT_RANK.get(verdict, 0):
            new.orgs[oid] = verdict
        elif before is None:
            new.orgs[oid] = verdict
        if verdict == "compromised":
            known = set(seen.hosts.get(oid, []))
            hosts = [h for h in org.get("hosts", []) if h.get("verdict") == "compromised"]
            if before == "compromised":  # already reported compromised: each further host is news
                for h in sorted(hosts, key=lambda h: (h.get("first_seen") or "", h["ip"])):
                    if h["ip"] in known:
                        continue
                    hd = dict(data, host=h["ip"], host_indicators=h.get("indicators", []))
                    add(
                        Alert(
                            "new_host",
                            f"new_host|{oid}|{h['ip']}",
                            h.get("tlp") or tlp,
                            f"new compromised host {h['ip']} in {label}",
                            hd,
                            (h.get("first_seen") or "", oid + h["ip"]),
                        )
                    )
            new.hosts[oid] = sorted(known | {h["ip"] for h in hosts})
    known_s = set(seen.suspected)
    for s in doc.get("suspected_infrastructure", []) or []:
        ip = s["ip"]
        if ip in known_s:
            continue
        data = {
            "ip": ip,
            "score": s.get("score"),
            "ports": s.get("ports") or ([s["port"]] if s.get("port") else []),
            "hosts": s.get("hosts"),
            "organizations": s.get("organizations") or [],
            "first_seen": s.get("first_seen"),
            "last_seen": s.get("last_seen"),
            "reason": s.get("reason"),
            "link": mk("suspected", ip),
        }
        add(
            Alert(
                "suspected_infrastructure",
                f"suspected_infrastructure|{ip}",
                s.get("tlp") or default_tlp,
                f"suspected actor infrastructure {ip}",
                data,
                (s.get("first_seen") or "", ip),
            )
        )
        new.suspected.append(ip)
    # news first, then what changed about what the sink knows; each by the time of the activity
    out.sort(key=lambda a: (KINDS.index(a.kind), a.order))
    return out, new
