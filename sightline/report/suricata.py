"""Suricata rules for the actor's indicators (``sightline report --format suricata``).

- Addresses and CIDRs go into IP-list rules, one pair per (actor, TLP) group and up to
  :data:`IPS_PER_RULE` addresses: traffic from ``$HOME_NET`` to the list (callbacks) and from
  the list to ``$HOME_NET`` (scans, exploitation).
- Domains become a DNS query rule and a TLS SNI rule each (the name and its subdomains).
- X.509 SHA-1 fingerprints become ``tls.cert_fingerprint`` rules, JA3 hashes ``ja3.hash``.
- Other types (URLs, file hashes, x509 serials ...) are left out and reported.

sids are unique and stable for the same indicator set (assigned in sorted order from
``sid_base``); the first line carries the TLP marking of the file as a comment.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..core.tlp import marking_label as _mark
from ..core.tlp import strictest_label as _strictest
from ..store import atomic_write_text
from .zeek_intel import collect_indicators

__all__ = ["write_rules", "render_rules", "IPS_PER_RULE", "DEFAULT_SID_BASE"]

IPS_PER_RULE = 100
DEFAULT_SID_BASE = 9_710_000  # inside the 9,000,000+ range Emerging Threats leaves for local rules
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_HEX = re.compile(r"^[0-9a-f]+$")


def _esc(text: str) -> str:
    """Escape a value for a quoted rule option (msg, content)."""
    text = " ".join(str(text).split())
    return text.replace("\\", "\\\\").replace('"', '\\"').replace(";", "\\;")


def _meta_word(text: str) -> str:
    # metadata values are bare words: keep letters, digits and a few separators
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(text)) or "unknown"


def render_rules(
    findings: dict[str, Any], *, indicators: pa.Table | None = None, sid_base: int = DEFAULT_SID_BASE
) -> tuple[str, list[str]]:
    """The rules file's text and the indicators left out (with the reason)."""
    items = collect_indicators(findings, indicators)
    skipped: list[str] = []
    ip_groups: dict[tuple[str, str], list[str]] = {}
    other: list[tuple[str, str, str, str]] = []  # (kind, value, actor, tlp)
    base_tlp = _mark(findings.get("tlp"))  # the level the findings were shared at
    for it in items:
        itype, value = str(it["type"]), str(it["value"]).strip()
        actor = str(it.get("actor") or "campaign")
        tlp = _mark(it.get("tlp"), base_tlp)
        if itype in ("ipv4", "ipv6"):
            try:
                net = ipaddress.ip_network(value, strict=False)
            except ValueError:
                skipped.append(f"{value}: not an address")
                continue
            ip_groups.setdefault((actor, tlp), []).append(
                str(net.network_address) if net.num_addresses == 1 else str(net)
            )
        elif itype == "domain":
            d = value.lower().rstrip(".")
            if not _DOMAIN.match(d):
                skipped.append(f"{value}: not a domain name")
                continue
            other.append(("domain", d, actor, tlp))
        elif itype == "x509_sha1":
            h = value.lower().replace(":", "")
            if len(h) != 40 or not _HEX.match(h):
                skipped.append(f"{value}: not a SHA-1 fingerprint")
                continue
            other.append(("cert", ":".join(h[i : i + 2] for i in range(0, 40, 2)), actor, tlp))
        elif itype == "ja3":
            h = value.lower()
            if len(h) != 32 or not _HEX.match(h):
                skipped.append(f"{value}: not a JA3 hash")
                continue
            other.append(("ja3", h, actor, tlp))
        else:
            skipped.append(f"{value}: no Suricata rule for {itype} indicators")

    rules: list[str] = []
    sid = sid_base

    def emit(header: str, msg: str, body: str, tlp: str, actor: str, classtype: str) -> None:
        nonlocal sid
        rules.append(
            f'{header} (msg:"{_esc(msg)}"; {body}classtype:{classtype}; sid:{sid}; rev:1; '
            f"metadata:tlp {_meta_word(tlp)}, actor {_meta_word(actor)}, created_by sightline;)"
        )
        sid += 1

    for (actor, tlp), ips in sorted(ip_groups.items()):
        ips = sorted(set(ips), key=lambda s: (":" in s, s))
        for i in range(0, len(ips), IPS_PER_RULE):
            chunk = ips[i : i + IPS_PER_RULE]
            lst = "[" + ",".join(chunk) + "]"
            part = f" part {i // IPS_PER_RULE + 1}" if len(ips) > IPS_PER_RULE else ""
            emit(
                f"alert ip $HOME_NET any -> {lst} any",
                f"SIGHTLINE {actor} infrastructure contacted from home net{part}",
                "",
                tlp,
                actor,
                "trojan-activity",
            )
            emit(
                f"alert ip {lst} any -> $HOME_NET any",
                f"SIGHTLINE {actor} infrastructure connecting to home net{part}",
                "",
                tlp,
                actor,
                "attempted-recon",
            )
    for kind, value, actor, tlp in sorted(other):
        if kind == "domain":
            c = _esc("." + value)
            emit(
                "alert dns $HOME_NET any -> any any",
                f"SIGHTLINE {actor} domain lookup {value}",
                f'dns.query; dotprefix; content:"{c}"; nocase; endswith; ',
                tlp,
                actor,
                "trojan-activity",
            )
            emit(
                "alert tls $HOME_NET any -> any any",
                f"SIGHTLINE {actor} TLS SNI {value}",
                f'tls.sni; dotprefix; content:"{c}"; nocase; endswith; ',
                tlp,
                actor,
                "trojan-activity",
            )
        elif kind == "cert":
            emit(
                "alert tls any any -> any any",
                f"SIGHTLINE {actor} certificate {value}",
                f'tls.cert_fingerprint; content:"{value}"; ',
                tlp,
                actor,
                "trojan-activity",
            )
        else:
            emit(
                "alert tls $HOME_NET any -> any any",
                f"SIGHTLINE {actor} JA3 {value}",
                f'ja3.hash; content:"{value}"; ',
                tlp,
                actor,
                "trojan-activity",
            )

    tlp_all = _strictest([base_tlp] + [t for _, t in ip_groups] + [o[3] for o in other])
    head = [
        f"# TLP:{tlp_all.upper()}",
        f"# sightline rules for {', '.join(findings.get('actors') or []) or 'the campaign'}, "
        f"run {findings.get('run_id') or '-'}; sids {sid_base}-{max(sid - 1, sid_base)}",
    ]
    return "\n".join(head + rules) + "\n", skipped


def write_rules(
    findings: dict[str, Any], path: Path, *, indicators: pa.Table | None = None, sid_base: int = DEFAULT_SID_BASE
) -> list[str]:
    """Write the rules file atomically; returns the indicators left out (with the reason).

    Parameters
    ----------
    findings
        The findings document (its indicators are used when ``indicators`` is None).
    path
        Output file (e.g. ``sightline.rules``).
    indicators
        The intel table (``INDICATOR_SCHEMA``): all non-revoked indicators get rules.
    sid_base
        First sid; sids are consecutive from there.
    """
    text, skipped = render_rules(findings, indicators=indicators, sid_base=sid_base)
    atomic_write_text(Path(path), text)
    return skipped
