"""The sharing policy: what one audience may see of the findings.  Written once.

Every output goes through :func:`share`: each report format, ``notify``, ``export``, the
dashboard and the API.  An audience is a TLP clearance (``report --tlp L``, a dashboard user
or API token, an alert sink, a notice) and whether victims are pseudonymized.

1. Every item gets the most restrictive TLP of what it was derived from.  An evidence row
   carries its intel's marking, raised to what the indicator table says today (intel
   re-marked after detection); unmarked content counts as the workspace's default TLP (AMBER
   unless configured): fail closed.
2. Base items above the clearance are withheld: evidence rows, stale matches, suspected
   infrastructure, exposure rows, suppressed rows.
3. Everything derived is computed again from what is left, never copied: host and
   organization verdicts and confidences (the one verdict rule), their TLP, indicators and
   first/last seen; the actor infrastructure profile, clusters, hand-offs and timeline; the
   actor names; the summary counts; input counts that could undo the withholding are
   dropped.  Keys the model does not know are not passed on.
4. The document is headed with the level it was filtered to.
5. With ``anonymize``, every victim-identifying value -- organization id and name, host
   address, victim-owned indicator, hand-off host, ASN of a victim -- is replaced, in every
   field and free text, by a pseudonym keyed by the workspace's secret (HMAC-SHA256), so it
   cannot be recovered by hashing guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..core.settings import settings
from ..core.tlp import DEFAULT_TLP, TLP, marking, most_restrictive
from ..core.verdicts import assess_organization, noisy_or, org_order
from .model import (
    Evidence,
    Findings,
    Host,
    Organization,
    StaleMatch,
    Suppressed,
    SuspectedInfrastructure,
    actors_of,
    summarize,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from ..store import Workspace

__all__ = [
    "Audience",
    "Shared",
    "share",
    "share_indicators",
    "audience_for",
    "pseudonym_secret",
    "content_level",
    "SECRET_ENV",
    "SECRET_FILE",
]

SECRET_ENV = "SIGHTLINE_PSEUDONYM_SECRET"
SECRET_FILE = ".pseudonym_secret"

# inputs counts a restricted reader may see: not derived from intel
_PUBLIC_INPUTS = ("flows", "quarantined", "files", "registry_organizations")


@dataclass(frozen=True)
class Audience:
    """Who receives the findings.

    ``clearance`` None is the workspace's own unfiltered view (still normalized: every item
    marked, derived items recomputed).  ``secret`` keys the pseudonyms (required with
    ``anonymize``).
    """

    clearance: TLP | None = None
    anonymize: bool = False
    secret: bytes = b""
    default_tlp: TLP = DEFAULT_TLP

    def __post_init__(self) -> None:
        if self.anonymize and len(self.secret) < 16:
            raise ValueError("anonymizing needs the workspace's pseudonym secret (16+ bytes)")


@dataclass
class Shared:
    """What :func:`share` hands to a renderer.

    ``withheld`` names the items taken out (restricted themselves: shown to the operator, never
    written into the shared document); ``withheld_by_org`` counts them per organization id as
    the audience sees it (notices say that more is held at a stricter level).
    """

    findings: Findings
    level: TLP
    withheld: list[str] = field(default_factory=list)
    withheld_by_org: dict[str, int] = field(default_factory=dict)
    victim_values: frozenset[str] = frozenset()
    victim_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    pseudonym: Callable[[str], str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.findings.to_dict()


def pseudonym_secret(ws: Workspace) -> bytes:
    """The workspace's pseudonym key: ``$SIGHTLINE_PSEUDONYM_SECRET``, else a random one stored
    in the workspace (mode 0600) on first use.  The same victim gets the same pseudonym in
    every report of the workspace, and nobody without the key can link a pseudonym to a
    guessed name or address."""
    env = settings().secret(SECRET_ENV) or ""
    if env:
        return hashlib.sha256(env.encode()).digest()
    from ..store import atomic_write_bytes

    path = Path(ws.root) / SECRET_FILE
    try:
        text = path.read_text("ascii").strip()
        if len(text) == 64:
            return bytes.fromhex(text)
    except (FileNotFoundError, UnicodeDecodeError, ValueError):
        pass
    ws.ensure()
    value = secrets.token_hex(32)
    atomic_write_bytes(path, (value + "\n").encode())
    os.chmod(path, 0o600)
    return bytes.fromhex(value)


def audience_for(
    ws: Workspace, clearance: TLP | str | None = None, *, anonymize: bool = False, default_tlp: TLP | None = None
) -> Audience:
    """The audience of a reader of ``ws`` cleared for ``clearance`` (None: everything)."""
    from ..core.tlp import parse_tlp

    level = None if clearance is None else parse_tlp(clearance, what="TLP level")
    if default_tlp is None:
        from ..config import load_config

        default_tlp = load_config(workspace=ws.root).sharing.default_tlp
    return Audience(level, anonymize, pseudonym_secret(ws) if anonymize else b"", default_tlp)


def _indicator_marks(indicators: pa.Table | None, default: TLP) -> dict[str, TLP]:
    """Today's marking of each indicator value (the most restrictive row naming it)."""
    if indicators is None or indicators.num_rows == 0 or "tlp" not in indicators.column_names:
        return {}
    out: dict[str, TLP] = {}
    for value, tlp in zip(indicators.column("value").to_pylist(), indicators.column("tlp").to_pylist()):
        m = marking(tlp, default)
        if value is not None and m > out.get(value, TLP.CLEAR):
            out[value] = m
        else:
            out.setdefault(value, m)
    return out


def _copy(findings: Findings) -> Findings:
    return msgspec.convert(msgspec.to_builtins(findings), Findings)


def share(
    findings: Findings, audience: Audience, *, indicators: pa.Table | None = None, victim_networks: Iterable[str] = ()
) -> Shared:
    """What ``audience`` may see of ``findings`` (not modified).

    Parameters
    ----------
    findings
        The workspace's findings.
    audience
        Clearance, pseudonymization and the workspace's default TLP.
    indicators
        Today's indicator table (INDICATOR_SCHEMA), to apply markings changed since detection
        and to count the indicators the audience may know of.
    victim_networks
        CIDRs of registered organizations: indicators inside them are victim-owned (pseudonymized).
    """
    limit = audience.clearance
    dflt = audience.default_tlp
    current = _indicator_marks(indicators, dflt)
    if (
        not audience.anonymize
        and (limit is None or limit == TLP.RED)
        and not _remarked(findings, current, dflt)
        and all(ev.decisive is not None for _, _, ev in findings.iter_evidence())
    ):
        # nothing to withhold, nothing re-marked, no pseudonyms, and every row judged by the rule:
        # the findings as stored, whose derived parts the same rules computed (the rule is
        # idempotent), headed with their level
        level = limit if limit is not None else content_level(findings, dflt)
        actors = actors_of(ev for _, _, ev in findings.iter_evidence())
        return Shared(
            msgspec.structs.replace(
                findings,
                tlp=level.label,
                summary=summarize(findings.organizations),
                actors=actors,
                tlp_withheld=0 if limit is not None else None,
            ),
            level,
        )
    doc = _copy(findings)
    withheld: list[str] = []
    per_org: dict[str, int] = {}

    def visible(level: TLP) -> bool:
        return limit is None or level <= limit

    def ev_mark(ev: Evidence) -> TLP:
        m = marking(ev.tlp, dflt)
        return max(m, current.get(ev.indicator, m))

    # --- organizations, hosts, evidence: filter the rows, re-derive the rest ----------------
    orgs: list[Organization] = []
    for org in doc.organizations:
        hosts: list[Host] = []
        dropped = 0
        for host in org.hosts:
            kept: list[Evidence] = []
            for ev in host.evidence:
                m = ev_mark(ev)
                if visible(m):
                    ev.tlp = m.label
                    kept.append(ev)
                else:
                    dropped += 1
                    withheld.append(f"evidence {ev.behaviour} {host.ip}<->{ev.indicator} of {org.org_id} ({m.title})")
            if kept:
                host.evidence = kept
                hosts.append(host)
        kept_hosts = assess_organization(hosts)
        if len(kept_hosts) < len(hosts):
            lost = {h.ip for h in hosts} - {h.ip for h in kept_hosts}
            if dropped:
                withheld += [f"host {ip} of {org.org_id} (verdict rests on withheld evidence)" for ip in sorted(lost)]
        if dropped:
            per_org[org.org_id] = dropped
        if not kept_hosts:
            if dropped:
                withheld.append(f"organization {org.org_id} (no verdict on what may be shared)")
            continue
        for h in kept_hosts:
            _derive_host(h, dflt)
        org.hosts = kept_hosts
        org.verdict = kept_hosts[0].verdict
        org.confidence = noisy_or(h.confidence for h in kept_hosts if h.verdict == org.verdict)
        org.first_seen = min(h.first_seen or "" for h in kept_hosts)
        org.last_seen = max(h.last_seen or "" for h in kept_hosts)
        org.tlp = most_restrictive((marking(h.tlp, dflt) for h in kept_hosts), default=dflt).label
        orgs.append(org)
    orgs.sort(key=lambda o: org_order(o.verdict, o.confidence, o.org_id))
    doc.organizations = orgs
    visible_orgs = {o.org_id for o in orgs}
    compromised_hosts = {h.ip for o in orgs for h in o.hosts if h.verdict == "compromised"}

    # --- base lists --------------------------------------------------------------------------
    stale: list[StaleMatch] = []
    for s in doc.stale_matches:
        m = max(marking(s.tlp, dflt), current.get(s.indicator, TLP.CLEAR))
        if visible(m):
            s.tlp = m.label
            stale.append(s)
        else:
            withheld.append(f"stale match {s.host}<->{s.indicator} ({m.title})")
    doc.stale_matches = stale

    suspected: list[SuspectedInfrastructure] = []
    for si in doc.suspected_infrastructure:
        m = marking(si.tlp, dflt)
        # derived from compromised hosts: shown only with every host it rests on
        if visible(m) and si.host_ips and set(si.host_ips) <= compromised_hosts:
            si.tlp = m.label
            si.organizations = [o for o in si.organizations if o in visible_orgs]
            suspected.append(si)
        else:
            withheld.append(f"suspected infrastructure {si.ip} ({m.title})")
    doc.suspected_infrastructure = suspected

    if doc.exposure is not None:
        exposure = []
        for x in doc.exposure:
            m = marking(x.tlp, dflt)
            if visible(m):
                x.tlp = m.label
                exposure.append(x)
            else:
                withheld.append(f"exposure {x.ip}:{x.port} ({m.title})")
        doc.exposure = exposure

    if doc.suppressed is not None:
        sup: list[Suppressed] = []
        for item in doc.suppressed:
            m = max(ev_mark(item.evidence), marking(item.tlp, dflt))
            if visible(m):
                item.tlp = item.evidence.tlp = m.label
                sup.append(item)
            else:
                withheld.append(f"suppressed evidence {item.host}<->{item.indicator} ({m.title})")
        doc.suppressed = sup
    if doc.suppression is not None:
        sup_items = doc.suppressed or []
        doc.suppression.suppressed_rows = len(sup_items)
        doc.suppression.suppressed_organizations = sorted(
            {s.org_id for s in sup_items if s.org_id is not None} - visible_orgs
        )

    # --- derived: actor infrastructure, actors, summary, inputs -----------------------------
    from ..assess.infrastructure import actor_profile, geo_of, windows_of

    stored = doc.actor_infrastructure
    if stored or doc.actor_infrastructure_summary is not None or orgs:
        servers, summary = actor_profile(
            orgs, suspected=suspected, intel_windows=windows_of(stored), geo=geo_of(stored), default_tlp=dflt
        )
        doc.actor_infrastructure = servers
        doc.actor_infrastructure_summary = summary if (servers or doc.actor_infrastructure_summary) else None
    doc.actors = actors_of(ev for _, _, ev in doc.iter_evidence())
    doc.summary = summarize(orgs)
    if limit is not None and limit < TLP.RED:
        inputs = {k: v for k, v in doc.inputs.items() if k in _PUBLIC_INPUTS}
        if indicators is not None:
            inputs["indicators"] = sum(1 for m in current.values() if m <= limit)
        else:
            inputs["indicators"] = len({ev.indicator for _, _, ev in doc.iter_evidence()})
        doc.inputs = inputs

    level = limit if limit is not None else content_level(doc, dflt)
    doc.tlp = level.label
    doc.tlp_withheld = len(withheld) if limit is not None else None

    shared = Shared(doc, level, withheld, per_org)
    if audience.anonymize:
        _anonymize(shared, audience.secret, victim_networks)
    return shared


def _derive_host(h: Host, dflt: TLP) -> None:
    rows = h.evidence
    h.tlp = most_restrictive((marking(r.tlp, dflt) for r in rows), default=dflt).label
    h.indicators = sorted({r.indicator for r in rows})
    h.first_seen = min(r.first_seen for r in rows)
    h.last_seen = max(r.last_seen for r in rows)
    h.roles = sorted({"relay/C2 host named by intel"} if any(r.behaviour == "relay" for r in rows) else set())


def _remarked(doc: Findings, current: dict[str, TLP], dflt: TLP) -> bool:
    """Whether today's indicator table marks anything in ``doc`` more restrictively than it is."""
    if not current:
        return False
    items: set[tuple[str | None, str]] = {(ev.tlp, ev.indicator) for _, _, ev in doc.iter_evidence()}
    items.update((s.tlp, s.indicator) for s in doc.stale_matches)
    items.update((s.evidence.tlp, s.evidence.indicator) for s in doc.suppressed or [])
    return any(current.get(ind, TLP.CLEAR) > marking(t, dflt) for t, ind in items)


def content_level(doc: Findings, default_tlp: TLP = DEFAULT_TLP) -> TLP:
    """The most restrictive marking of what ``doc`` holds (``default_tlp`` when it holds nothing)."""
    marks = _all_marks(doc, default_tlp)
    return most_restrictive(marks) if marks else default_tlp


def _all_marks(doc: Findings, dflt: TLP) -> list[TLP]:
    labels: set[str | None] = {ev.tlp for _, _, ev in doc.iter_evidence()}
    for items in (
        doc.stale_matches,
        doc.suspected_infrastructure,
        doc.actor_infrastructure,
        doc.exposure or [],
        doc.suppressed or [],
    ):
        labels.update(getattr(i, "tlp", None) for i in items)
    return [marking(t, dflt) for t in labels]


# --- pseudonyms --------------------------------------------------------------------------------


class _Pseudonyms:
    """Keyed, stable pseudonyms: HMAC-SHA256(workspace secret, kind + value)."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.map: dict[str, str] = {}
        self._compiled: tuple[int, re.Pattern[str]] | None = None

    def _tag(self, kind: str, value: str, n: int = 10) -> str:
        return hmac.new(self.secret, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()[:n]

    def org(self, org_id: str, sector: str | None, country: str | None) -> str:
        if org_id not in self.map:
            prefix = re.sub(r"[^a-z0-9]+", "_", f"{sector or 'org'}").strip("_") or "org"
            self.map[org_id] = f"{prefix}-{(country or 'xx').lower()}-{self._tag('org', org_id)}"
        return self.map[org_id]

    def ip(self, ip: str) -> str:
        if ip not in self.map:
            try:
                v6 = ipaddress.ip_address(ip).version == 6
            except ValueError:
                v6 = False
            self.map[ip] = f"{'host6' if v6 else 'host'}-{self._tag('host', ip)}"
        return self.map[ip]

    def name(self, name: str, alias: str) -> None:
        if name and name not in self.map:
            self.map[name] = alias

    def text(self, value: str | None) -> str | None:
        """Free text with every known victim value replaced."""
        if not value or not self.map:
            return value
        return self._pattern().sub(lambda m: self.map[m.group(0)], value)

    def _pattern(self) -> re.Pattern[str]:
        if self._compiled is None or self._compiled[0] != len(self.map):
            keys = sorted(self.map, key=len, reverse=True)
            body = "|".join(re.escape(k) for k in keys if k)
            self._compiled = (len(self.map), re.compile(rf"(?<![\w.:])(?:{body})(?![\w:]|\.\d)"))
        return self._compiled[1]


def _in_networks(networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network], value: str) -> bool:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return any(net.version == n.version and net.subnet_of(n) for n in networks)  # type: ignore[arg-type]


def _anonymize(shared: Shared, secret: bytes, victim_networks: Iterable[str]) -> None:
    doc = shared.findings
    ps = _Pseudonyms(secret)
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for cidr in victim_networks:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    meta = {o.org_id: (o.sector, o.country) for o in doc.organizations}
    # everything that identifies a victim, first collected ...
    for o in doc.organizations:
        alias = ps.org(o.org_id, o.sector, o.country)
        ps.name(o.name, f"{o.sector or 'unknown'} organization {alias.rsplit('-', 1)[-1]} ({o.country or '??'})")
        for h in o.hosts:
            ps.ip(h.ip)
    victim_hosts = {h.ip for o in doc.organizations for h in o.hosts}

    def owned(value: str | None) -> bool:
        return bool(value) and (value in victim_hosts or (bool(nets) and _in_networks(nets, str(value))))

    for _, _, ev in doc.iter_evidence():
        for v in (ev.indicator, ev.actor_ip):
            if v and owned(v):
                ps.ip(v)
    for s in doc.stale_matches:
        ps.ip(s.host)
        if s.org_id is not None:
            ps.org(s.org_id, *meta.get(s.org_id, (None, None)))
        for v in (s.indicator, s.actor_ip):
            if v and owned(v):
                ps.ip(v)
    for si in doc.suspected_infrastructure:
        for ip in si.host_ips:
            ps.ip(ip)
    for x in doc.exposure or []:
        ps.ip(x.ip)
        if x.org_id:
            ps.org(x.org_id, *meta.get(x.org_id, (None, None)))
    for item in doc.suppressed or []:
        ps.ip(item.host)
        if item.org_id:
            ps.org(item.org_id, *meta.get(item.org_id, (None, None)))
        if item.name and item.org_id:
            ps.name(item.name, f"organization {ps.map[item.org_id].rsplit('-', 1)[-1]}")
        for v in (item.indicator, item.evidence.indicator, item.evidence.actor_ip):
            if v and owned(v):
                ps.ip(v)
    victim_values = frozenset(ps.map)

    def sub(v: str | None) -> str | None:
        return ps.map.get(v, v) if v is not None else None

    # ... then replaced everywhere
    for o in doc.organizations:
        alias = ps.map[o.org_id]
        o.name = ps.map.get(o.name, alias)
        o.org_id = alias
        o.asns = []
        for h in o.hosts:
            h.ip = ps.map[h.ip]
            h.shared_address = ps.text(h.shared_address)
            h.indicators = sorted(ps.map.get(i, i) for i in h.indicators)
            for ev in h.evidence:
                _anon_evidence(ev, ps)
    for s in doc.stale_matches:
        s.host = ps.map[s.host]
        s.org_id = sub(s.org_id)
        s.indicator = ps.map.get(s.indicator, s.indicator)
        s.actor_ip = sub(s.actor_ip)
    for si in doc.suspected_infrastructure:
        si.host_ips = [ps.map[ip] for ip in si.host_ips]
        si.organizations = [ps.map.get(o, o) for o in si.organizations]
        si.reason = ps.text(si.reason) or ""
    for a in doc.actor_infrastructure:
        if a.victim_owned or a.ip in victim_values:
            a.ip = ps.map.get(a.ip, a.ip)
            a.asn = a.as_org = a.country = a.city = None
        a.indicators = [ps.map.get(i, i) for i in a.indicators]
        a.organizations = [ps.map.get(o, o) for o in a.organizations]
    summary = doc.actor_infrastructure_summary
    if summary is not None:
        for c in summary.clusters:
            c.members = [ps.map.get(m, m) for m in c.members]
            c.organizations = [ps.map.get(o, o) for o in c.organizations]
        for hd in summary.handoffs:
            hd.host = ps.map.get(hd.host, hd.host)
            hd.from_ = ps.map.get(hd.from_, hd.from_)
            hd.to = ps.map.get(hd.to, hd.to)
        for t in summary.timeline:
            t.ip = ps.map.get(t.ip, t.ip)
        # by_asn of victim-owned servers is already gone (their geo is dropped)
    for x in doc.exposure or []:
        x.ip = ps.map[x.ip]
        x.org_id = sub(x.org_id)
        x.hostname = None
    for item in doc.suppressed or []:
        item.host = ps.map[item.host]
        item.org_id = sub(item.org_id)
        item.name = ps.map.get(item.name or "", None) if item.name else None
        item.indicator = sub(item.indicator)
        item.reason = ps.text(item.reason) or ""
        _anon_evidence(item.evidence, ps)
    if doc.suppression is not None:
        doc.suppression.suppressed_organizations = [ps.map.get(o, o) for o in doc.suppression.suppressed_organizations]
        doc.suppression.config = None
    doc.notes = [ps.text(n) or "" for n in doc.notes] if doc.notes else doc.notes
    doc.anonymized = True
    shared.withheld_by_org = {ps.map.get(k, k): v for k, v in shared.withheld_by_org.items()}
    shared.victim_values = victim_values
    shared.victim_networks = tuple(nets)
    shared.pseudonym = lambda v: ps.map.get(v, v)


def _anon_evidence(ev: Evidence, ps: _Pseudonyms) -> None:
    ev.indicator = ps.map.get(ev.indicator, ev.indicator)
    if ev.actor_ip is not None:
        ev.actor_ip = ps.map.get(ev.actor_ip, ev.actor_ip)
    ev.detail = ps.text(ev.detail) or ""


def share_indicators(table: pa.Table | None, audience: Audience, shared: Shared) -> pa.Table | None:
    """The indicator table as ``audience`` may receive it alongside ``shared``: rows above the
    clearance removed, and with pseudonymized victims, rows naming a victim-owned value removed
    (detection content for a pseudonym is useless, and the real value would identify the victim)."""
    if table is None:
        return None
    import pyarrow as pa

    dflt = audience.default_tlp
    keep = []
    tlps = table.column("tlp").to_pylist() if "tlp" in table.column_names else [None] * table.num_rows
    values = table.column("value").to_pylist()
    for v, t in zip(values, tlps):
        ok = audience.clearance is None or marking(t, dflt) <= audience.clearance
        if (
            ok
            and audience.anonymize
            and (
                v in shared.victim_values or (shared.victim_networks and _in_networks(list(shared.victim_networks), v))
            )
        ):
            ok = False
        keep.append(ok)
    return table.filter(pa.array(keep, type=pa.bool_()))
