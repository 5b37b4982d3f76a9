"""Layered allowlists, per-finding suppressions, detector control and de-duplication.

Applied to the findings document after detection (never to the flow store), so a change
takes effect on the next ``detect``/``report``/``export`` without re-ingesting.  Nothing is
deleted: every evidence row taken out of ``organizations`` is listed in a top-level
``suppressed`` list with the rule that took it out and why.

Layers, first match wins:

1. per-finding suppressions (``sightline suppress FINDING --reason``), stored in
   ``<workspace>/suppressions.json`` with who / when / why;
2. detector control from ``sightline.toml`` (``[detectors.<name>] enabled / min_*``);
3. allowlists: the bundled known-good set (``sightline/data/allowlist/*.csv``; a file with the
   same name in ``<workspace>/allowlist/`` replaces it) and the organization's own files
   (``[allowlist] files``).  Matched on the actor IP (address / CIDR) and, for name indicators,
   the DNS name (suffix match).  An allowlist entry never hides ``exfiltration``: a shared
   service (cloud storage, CDN) is exactly where large uploads go.

Then evidence rows of the same host pair and behaviour within ``[dedup] window_s`` are merged,
and host / organization verdicts are re-derived from what is left by the one verdict rule
(:mod:`sightline.core.verdicts`, the rule assessment uses), and the summary recounted.

Public API::

    apply_suppressions(doc, ws, config=None) -> doc
    refresh_findings(ws, doc, config=None) -> doc | None
    add_suppression(ws, finding, reason, who=None) -> dict
    list_suppressions(ws) -> list[dict]
    remove_suppression(ws, ident) -> dict
    parse_finding(text) -> dict
    load_allowlist(config, ws) -> Allowlist
"""

from __future__ import annotations

import csv
import functools
import getpass
import hashlib
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from .config import Config, load_config, network_warnings
from .core.tlp import DEFAULT_TLP, marking, most_restrictive
from .core.verdicts import assess_organization, noisy_or, org_order
from .errors import ConfigError
from .findings import save
from .findings.model import (
    Evidence,
    Findings,
    Host,
    Organization,
    Suppressed,
    SuppressionInfo,
    from_dict,
    from_json,
    summarize,
    to_json,
)
from .net import parse_network
from .store import Workspace, atomic_write_bytes, atomic_write_json

log = logging.getLogger("sightline.suppress")

SUPPRESSIONS_FILE = "suppressions.json"
UNSUPPRESSED_FILE = "unsuppressed.json"
KEEP_DESPITE_ALLOWLIST = ("exfiltration",)

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


# ---- allowlists ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowEntry:
    """One known-good address range or DNS name and where it was declared."""

    value: str
    category: str
    provider: str
    source: str  # "bundled:cdn.csv:4", "/path/ours.csv:7"

    @property
    def rule(self) -> str:
        return f"allowlist:{self.source}"


@dataclass
class Allowlist:
    """All allowlist layers, with the rows that could not be used."""

    nets: list[tuple[IPNet, AllowEntry]] = field(default_factory=list)
    names: dict[str, AllowEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _ip_cache: dict[str, AllowEntry | None] = field(default_factory=dict, repr=False)
    _match_cache: dict[tuple[str | None, ...], AllowEntry | None] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.nets) + len(self.names)

    def match_ip(self, ip: str | None) -> AllowEntry | None:
        if not ip:
            return None
        # findings repeat the same few actor IPs many times: remember each answer
        if ip in self._ip_cache:
            return self._ip_cache[ip]
        hit = self._match_ip(ip)
        self._ip_cache[ip] = hit
        return hit

    def _match_ip(self, ip: str) -> AllowEntry | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, entry in self.nets:
            if addr.version == net.version and addr in net:
                return entry
        return None

    def match_name(self, name: str | None) -> AllowEntry | None:
        if not name:
            return None
        labels = name.strip().rstrip(".").lower().split(".")
        for i in range(len(labels) - 1):  # the name itself, then each parent domain
            hit = self.names.get(".".join(labels[i:]))
            if hit:
                return hit
        return None

    def match(self, *values: str | None) -> AllowEntry | None:
        key = values
        if key in self._match_cache:  # evidence rows repeat the same few actor addresses
            return self._match_cache[key]
        hit = None
        if self.nets or self.names:
            for v in values:
                hit = self.match_ip(v) or (self.match_name(v) if v and not _looks_ip(v) else None)
                if hit:
                    break
        self._match_cache[key] = hit
        return hit


def _looks_ip(v: str) -> bool:
    try:
        ipaddress.ip_network(v, strict=False)
        return True
    except ValueError:
        return False


def _read_allow_csv(text: str, label: str, into: Allowlist) -> None:
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return
    header = [h.strip().lower() for h in next(csv.reader([lines[0][1]]))]
    has_header = "value" in header
    cols = header if has_header else ["value", "category", "provider", "note"]
    for lineno, ln in lines[1:] if has_header else lines:
        row = dict(zip(cols, (c.strip() for c in next(csv.reader([ln])))))
        value = (row.get("value") or "").strip()
        entry = AllowEntry(value, row.get("category") or "allowlisted", row.get("provider") or "", f"{label}:{lineno}")
        if not value:
            into.problems.append(f"{label}:{lineno}: empty value, row skipped")
            continue
        try:
            into.nets.append((ipaddress.ip_network(value, strict=False), entry))
            continue
        except ValueError:
            pass
        name = value.lower().removeprefix("*.").rstrip(".")
        if "." not in name or any(not lab or len(lab) > 63 for lab in name.split(".")) or " " in name:
            into.problems.append(f"{label}:{lineno}: {value!r} is neither an IP, a CIDR nor a DNS name, row skipped")
            continue
        into.names.setdefault(name, entry)


def load_allowlist(config: Config, ws: Workspace | None = None) -> Allowlist:
    """Read the bundled set (unless switched off), the workspace's overrides and the org's files.

    Raises
    ------
    ConfigError
        A file named in the configuration does not exist or cannot be read.
    """
    al = Allowlist()
    override = {p.name: p for p in sorted((ws.root / "allowlist").glob("*.csv"))} if ws is not None else {}
    if config.allowlist.bundled:
        bundled = resources.files("sightline.data").joinpath("allowlist")
        for item in sorted(bundled.iterdir(), key=lambda p: p.name):
            if not item.name.endswith(".csv"):
                continue
            if item.name in override:
                p = override.pop(item.name)
                _read_allow_csv(p.read_text("utf-8", errors="replace"), str(p), al)
            else:
                _read_allow_csv(item.read_text("utf-8"), f"bundled:{item.name}", al)
    for p in override.values():
        _read_allow_csv(p.read_text("utf-8", errors="replace"), str(p), al)
    for f in config.allowlist.files:
        p = Path(f)
        try:
            text = p.read_text("utf-8", errors="replace")
        except OSError as e:
            src = config.sources.get("allowlist.files", "allowlist.files")
            raise ConfigError(
                f"allowlist file cannot be read: {e.strerror or e}", path=p, hint=f"fix the path given in {src}"
            ) from e
        _read_allow_csv(text, str(p), al)
    return al


# ---- per-finding suppressions ------------------------------------------------------------------


def parse_finding(text: str) -> dict[str, str]:
    """``org:<id>``, ``host:<ip>``, ``indicator:<value>`` or ``<org_id>/<host>/<indicator>`` -> match keys.

    In the three-part form ``*`` (or an empty part) matches anything.
    """
    t = text.strip()
    for prefix, key in (("org:", "org_id"), ("host:", "host"), ("indicator:", "indicator")):
        if t.startswith(prefix) and t[len(prefix) :].strip():
            v = t[len(prefix) :].strip()
            return {key: _norm_ip(v) if key == "host" else _norm_indicator(v) if key == "indicator" else v}
    parts = t.split("/", 2)
    if len(parts) == 3 and any(p.strip() not in ("", "*") for p in parts):
        out = {k: p.strip() for k, p in zip(("org_id", "host", "indicator"), parts) if p.strip() not in ("", "*")}
        if "host" in out:
            out["host"] = _norm_ip(out["host"])
        if "indicator" in out:
            out["indicator"] = _norm_indicator(out["indicator"])
        return out
    raise ConfigError(
        f"cannot read finding {text!r}",
        hint="use org:<org_id>, host:<ip>, indicator:<value> or <org_id>/<host>/<indicator>",
    )


def _norm_ip(v: str) -> str:
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        return v


def _norm_indicator(v: str) -> str:
    """Indicators as intel stores them: ``198.51.100.7/32`` is ``198.51.100.7``; names lower case."""
    try:
        return parse_network(v).text
    except ValueError:
        return v.strip().lower().rstrip(".")


def _store(ws: Workspace) -> Path:
    return ws.root / SUPPRESSIONS_FILE


def list_suppressions(ws: Workspace) -> list[dict[str, Any]]:
    """The workspace's suppressions (id, finding, match, reason, who, when)."""
    p = _store(ws)
    if not p.exists():
        return []
    try:
        data = json.loads(p.read_text("utf-8"))
        items = data["suppressions"]
        assert isinstance(items, list)
        return items
    except (ValueError, KeyError, AssertionError) as e:
        raise ConfigError(
            "suppressions file is damaged", path=p, hint='fix or remove it; it is plain JSON {"suppressions": [...]}'
        ) from e


def add_suppression(ws: Workspace, finding: str, reason: str, who: str | None = None) -> dict[str, Any]:
    """Store a suppression; returns it (with its id)."""
    if not reason or not reason.strip():
        raise ConfigError("a suppression needs a reason", hint="add --reason TEXT")
    match = parse_finding(finding)
    try:
        who = who or getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    items = list_suppressions(ws)
    ident = "s-" + hashlib.sha256(f"{finding}|{when}|{len(items)}".encode()).hexdigest()[:8]
    item = {"id": ident, "finding": finding.strip(), "match": match, "reason": reason.strip(), "who": who, "when": when}
    ws.ensure()
    with ws.lock():
        items = list_suppressions(ws) + [item]
        atomic_write_json(_store(ws), {"suppressions": items})
    return item


def remove_suppression(ws: Workspace, ident: str) -> dict[str, Any]:
    """Remove a suppression by id (or by its exact FINDING text); returns the removed item."""
    with ws.lock():
        items = list_suppressions(ws)
        hit = next((s for s in items if s["id"] == ident), None) or next(
            (s for s in items if s["finding"] == ident.strip()), None
        )
        if hit is None:
            raise ConfigError(f"no suppression {ident!r}", hint="see `sightline suppress --list`")
        atomic_write_json(_store(ws), {"suppressions": [s for s in items if s is not hit]})
    return hit


def _suppression_for(items: list[dict], org_id: str, host: str, indicator: str, actor_ip: str | None) -> dict | None:
    for s in items:
        m = s["match"]
        if "org_id" in m and m["org_id"] != org_id:
            continue
        if "host" in m and m["host"] != host:
            continue
        if "indicator" in m and m["indicator"] not in (_norm_indicator(indicator or ""), actor_ip):
            continue
        return s
    return None


# ---- applying --------------------------------------------------------------------------------


def _any_detector_rule(config: Config) -> bool:
    """Whether ``[detectors.*]`` sets anything (detectors only configured can take rows out)."""
    return bool(config.detectors)


_Limits = dict[str, tuple[bool, dict[str, float]]]
"""Per configured detector: whether it is on, and the effective value of each threshold."""


def _detector_limits(config: Config) -> _Limits:
    """The ``[detectors.*]`` settings, resolved once per application (not once per row)."""
    return {name: (config.detector(name).enabled, config.detector(name).limits()) for name in config.detectors}


def _detector_rule(limits: _Limits, ev: Evidence) -> tuple[str, str] | None:
    name = ev.behaviour
    if name not in limits:
        return None
    enabled, threshold = limits[name]
    if not enabled:
        return f"detector:{name}", f"detector {name} is switched off in the configuration"
    checks = [
        ("min_score", float(ev.score or 0)),
        ("min_flows", float(ev.flows or 0)),
        ("min_confidence", float(ev.confidence or 0)),
        ("min_indicator_confidence", float(ev.indicator_confidence or 0)),
    ]
    if name in ("exfiltration", "exploitation"):
        checks.append(("min_bytes", float(ev.bytes_out or 0)))
    elif name == "vpn_tunnel":
        checks.append(("min_bytes", float(ev.bytes_out or 0) + float(ev.bytes_in or 0)))
    for knob, value in checks:
        limit = threshold[knob]
        if value < limit:
            return f"detector:{name}.{knob}", f"{knob.removeprefix('min_')} {value:g} below the configured {limit:g}"
    return None


def suppression_state(ws: Workspace, config: Config) -> str:
    """A stamp that changes whenever the configuration, allowlists or suppressions change."""
    parts = [config.digest()]
    paths = [_store(ws), *sorted((ws.root / "allowlist").glob("*.csv")), *map(Path, config.allowlist.files)]
    for p in paths:
        if p.exists():
            st = p.stat()
            parts.append(f"{p}:{st.st_mtime_ns}:{st.st_size}")
    bundled = resources.files("sightline.data").joinpath("allowlist")
    for item in sorted(bundled.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".csv"):
            parts.append(hashlib.sha256(item.read_bytes()).hexdigest()[:12])
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def apply_suppressions(
    doc: Findings | dict[str, Any], ws: Workspace, config: Config | None = None, *, copy: bool = True
) -> Findings:
    """Take suppressed / allowlisted / switched-off / duplicate evidence out of the verdicts.

    The untouched findings are kept as ``<workspace>/findings/unsuppressed.json`` so that a
    later change of rules can be re-applied without detecting again (:func:`refresh_findings`).
    Returns new findings; ``doc`` is not modified unless ``copy`` is False (the caller hands
    the findings over: no second copy of a large hunt's findings is made).
    """
    config = config or load_config(workspace=ws.root)
    if not isinstance(doc, Findings):
        doc, copy = from_dict(doc), False
    doc.suppressed = None
    doc.suppression = None
    ws.ensure()
    if copy:
        data = to_json(doc)
        atomic_write_bytes(ws.findings_dir / UNSUPPRESSED_FILE, data + b"\n")
        return _apply(from_json(data), ws, config)
    save(doc, ws.findings_dir / UNSUPPRESSED_FILE)
    return _apply(doc, ws, config)


def refresh_findings(ws: Workspace, doc: Findings, config: Config | None = None) -> Findings | None:
    """``doc`` with the current rules applied; None when it needs a fresh detection run."""
    config = config or load_config(workspace=ws.root)
    if doc.suppression is not None and doc.suppression.state == suppression_state(ws, config):
        return doc
    p = ws.findings_dir / UNSUPPRESSED_FILE
    if not p.exists():
        return None
    try:
        raw = from_json(p.read_bytes())
    except (OSError, ValueError):
        return None
    if raw.workspace_state != doc.workspace_state or raw.run_id != doc.run_id:
        return None
    new = _apply(raw, ws, config)
    save(new, ws.findings_dir / "latest.json")
    return new


def _apply(doc: Findings, ws: Workspace, config: Config) -> Findings:
    allow = load_allowlist(config, ws)
    rules = list_suppressions(ws)
    suppressed: list[Suppressed] = []
    kept_orgs: list[Organization] = []
    nat = set(config.network.nat_addresses) | set(config.network.sensor_addresses)
    # no suppression, allowlist entry or switched-off detector: only de-duplication can change rows
    layered = bool(rules) or len(allow) > 0 or _any_detector_rule(config)
    limits = _detector_limits(config)
    for org in doc.organizations:
        hosts: list[Host] = []
        removed_in_org: list[tuple[Host, Evidence, str, str]] = []
        changed = False
        for host in org.hosts:
            kept: list[Evidence] = []
            removed: list[tuple[Evidence, str, str]] = []
            for ev in host.evidence:
                hit = _rule(limits, allow, rules, org.org_id, host.ip, ev) if layered else None
                if hit is None:
                    kept.append(ev)
                    continue
                rule, reason, keep = hit
                if keep:
                    ev.allowlisted = f"{rule} ({reason})"
                    kept.append(ev)
                else:
                    removed.append((ev, rule, reason))
            kept, dups = _dedup(kept, config.dedup_window_s)
            removed += dups
            changed = changed or bool(removed)
            removed_in_org += [(host, ev, rule, reason) for ev, rule, reason in removed]
            host.evidence = kept
            if kept:
                hosts.append(host)
        # the one verdict rule, on what is left (the same rule assessment used); with nothing taken
        # out the findings already are its result (the rule is idempotent)
        before = {h.ip: h.verdict for h in hosts}
        with_verdict = assess_organization(hosts, config.detection) if changed else hosts
        still = {id(h) for h in with_verdict}
        lost = [h for h in hosts if id(h) not in still]
        rules_used = sorted({r for _, _, r, _ in removed_in_org}) or ["dedup"]
        for h in lost:
            if changed:
                removed_in_org += [
                    (h, ev, "no-verdict-left", "no decisive evidence left after " + ", ".join(rules_used))
                    for ev in h.evidence
                ]
        for h, ev, rule, reason in removed_in_org:
            suppressed.append(
                Suppressed(
                    org_id=org.org_id,
                    name=org.name,
                    host=h.ip,
                    indicator=ev.indicator,
                    behaviour=ev.behaviour,
                    rule=rule,
                    reason=reason,
                    evidence=ev,
                    tlp=ev.tlp,
                )
            )
        for h in with_verdict:
            if h.ip in nat:
                h.shared_address = "nat or sensor address (sightline.toml): the real host sits behind it"
        if not with_verdict:
            continue
        if changed or any(before.get(h.ip) != h.verdict for h in with_verdict):
            _recompute_org(org, with_verdict)
        else:
            org.hosts = with_verdict
        kept_orgs.append(org)
    kept_orgs.sort(key=lambda o: org_order(o.verdict, o.confidence, o.org_id))
    kept_ids = {o.org_id for o in kept_orgs}
    for s in doc.stale_matches:
        found = _suppression_for(rules, s.org_id or "", s.host, s.indicator, s.actor_ip)
        entry = allow.match(s.actor_ip, s.indicator)
        if found:
            s.suppressed_by = f"suppression:{found['id']}"
        elif entry:
            s.suppressed_by = entry.rule
    doc.organizations = kept_orgs
    doc.summary = summarize(kept_orgs)
    doc.suppressed = suppressed
    notes = list(doc.notes or [])
    notes += network_warnings(config, int(doc.inputs.get("registry_organizations", 0) or 0))
    notes += [f"allowlist: {p}" for p in allow.problems]
    if notes:
        doc.notes = list(dict.fromkeys(notes))
        for n in doc.notes:
            log.warning("%s", n)
    doc.config_hash = config.digest()
    doc.suppression = SuppressionInfo(
        state=suppression_state(ws, config),
        config=str(config.path) if config.path else None,
        allowlist_entries=len(allow),
        suppressions=len(rules),
        suppressed_rows=len(suppressed),
        suppressed_organizations=sorted({s.org_id for s in suppressed if s.org_id} - kept_ids),
    )
    return doc


def _rule(
    limits: _Limits, allow: Allowlist, rules: list[dict[str, Any]], org_id: str, host: str, ev: Evidence
) -> tuple[str, str, bool] | None:
    """(rule, reason, keep) of the first layer that matches an evidence row."""
    s = _suppression_for(rules, org_id, host, ev.indicator, ev.actor_ip)
    if s:
        return f"suppression:{s['id']}", f"{s['reason']} ({s['who']}, {s['when']})", False
    d = _detector_rule(limits, ev)
    if d:
        return d[0], d[1], False
    entry = allow.match(ev.actor_ip, ev.indicator)
    if entry:
        what = f"{entry.category}{', ' + entry.provider if entry.provider else ''}"
        return entry.rule, what, ev.behaviour in KEEP_DESPITE_ALLOWLIST
    return None


def _dedup(rows: list[Evidence], window_s: float) -> tuple[list[Evidence], list[tuple[Evidence, str, str]]]:
    """Merge rows of one host pair and behaviour whose activity lies within ``window_s``."""
    if window_s <= 0 or len(rows) < 2:
        return rows, []
    groups: dict[tuple[str | None, str, str], list[Evidence]] = {}
    for r in rows:
        groups.setdefault((r.actor_ip, r.behaviour, r.direction), []).append(r)
    if len(groups) == len(rows):
        return rows, []  # no two rows of one host pair and behaviour: nothing to merge
    kept: list[Evidence] = []
    dropped: list[tuple[Evidence, str, str]] = []
    for grp in groups.values():
        if len(grp) < 2:
            kept.append(grp[0])
            continue
        grp.sort(key=lambda r: r.first_seen or "")
        clusters: list[list[Evidence]] = []
        last = 0.0  # latest activity of the current cluster
        for r in grp:
            if clusters and _ts(r.first_seen) - last <= window_s:
                clusters[-1].append(r)
                last = max(last, _ts(r.last_seen))
            else:
                clusters.append([r])
                last = _ts(r.last_seen)
        for c in clusters:
            best = max(c, key=lambda r: (bool(r.decisive), not r.guards, r.score, r.flows))
            kept.append(best)
            others = [r for r in c if r is not best]
            if others:
                best.duplicates = len(others)
                for r in others:
                    dropped.append(
                        (
                            r,
                            f"dedup:{window_s:g}s",
                            f"same host pair and behaviour within {window_s:g}s as the row for "
                            f"{best.indicator} port {best.dst_port}",
                        )
                    )
    if not dropped:
        return rows, []
    order = {id(r): i for i, r in enumerate(rows)}
    kept.sort(key=lambda r: order[id(r)])
    return kept, dropped


@functools.lru_cache(maxsize=65536)
def _ts(text: str | None) -> float:
    if not text:
        return 0.0
    if text.endswith("Z"):  # as the findings write times; fromisoformat reads it in C
        return datetime.fromisoformat(text).timestamp()
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _recompute_org(org: Organization, hosts: list[Host]) -> None:
    for h in hosts:
        rows = h.evidence
        h.indicators = sorted({r.indicator for r in rows})
        h.first_seen = min([r.first_seen for r in rows])
        h.last_seen = max([r.last_seen for r in rows])
        h.tlp = _max_tlp({r.tlp for r in rows})
    org.hosts = hosts
    org.verdict = hosts[0].verdict
    org.confidence = noisy_or(h.confidence for h in hosts if h.verdict == org.verdict)
    org.first_seen = min(h.first_seen or "" for h in hosts)
    org.last_seen = max(h.last_seen or "" for h in hosts)
    org.tlp = _max_tlp(h.tlp for h in hosts)


def _max_tlp(values: Any) -> str:
    marks = [marking(v, DEFAULT_TLP) for v in values if v]
    return most_restrictive(marks).label if marks else "clear"


__all__ = [
    "AllowEntry",
    "Allowlist",
    "load_allowlist",
    "apply_suppressions",
    "refresh_findings",
    "suppression_state",
    "add_suppression",
    "list_suppressions",
    "remove_suppression",
    "parse_finding",
]
