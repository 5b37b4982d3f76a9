"""Victim notification: one notice per affected organization (``sightline notify``).

Each notice (Markdown, plus an RFC 5322 ``.eml`` built with the standard ``email`` package)
holds only that organization's hosts, times, indicators and evidence, its exposed devices
with KEV-listed CVEs when the findings carry an ``exposure`` list, and what to do next.  It
is built from a per-organization copy of the findings, never from the whole document, so
another victim's data cannot leak into it.  Notices are TLP:AMBER unless told otherwise;
content more restrictive than the notice's TLP is withheld and named to the caller.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..findings import Findings
from ..store import Workspace, atomic_write_bytes, atomic_write_text
from .html import VERDICT_LABELS
from .markdown import md_code, md_escape, md_table

PSEUDO_SOURCES = ("network", "none")
"""Organization sources that stand for no one who could receive a notice (address groups)."""

__all__ = ["Notice", "build_notices", "write_notices", "DEFAULT_SENDER", "PSEUDO_SOURCES"]

DEFAULT_SENDER = "sightline@localhost"
_NS = uuid.UUID("3b0f7c62-9a54-4d7e-8f0c-6f2d1e9a4c55")

_STEPS = {
    "compromised": [
        "Isolate the hosts listed below from the network (keep them powered on: memory holds evidence), "
        "or at least block their traffic to the listed indicators at the perimeter.",
        "Treat credentials used on or through these hosts as stolen: reset them, starting with VPN, "
        "administrator and service accounts.",
        "Patch or replace the exposed devices listed below; the actor exploits the KEV-listed CVEs.",
        "Hunt: search firewall, proxy, DNS and VPN logs back to at least 30 days before the first contact "
        "for any other host talking to the indicators; look for SoftEther VPN or other tunnels (443, 992, 5555) "
        "and new scheduled tasks, services or web shells on the hosts and edge devices.",
        "Preserve logs and disk images before rebuilding, and tell us what you find.",
    ],
    "exploitation_attempt": [
        "Check the targeted devices for signs of successful exploitation (new accounts, changed configuration, "
        "unknown files or processes, outbound connections to the indicators).",
        "Patch or replace the exposed devices listed below; the actor exploits the KEV-listed CVEs.",
        "Block the listed indicators at the perimeter and alert on any further contact.",
        "Hunt: search logs for outbound connections from any of your hosts to the indicators.",
    ],
    "reconnaissance": [
        "Block the listed indicators at the perimeter and alert on any further contact.",
        "Check that the probed services are patched (especially the KEV-listed CVEs below) and not exposed "
        "more than needed.",
        "Hunt: search logs for successful sessions with, or outbound connections to, the indicators.",
    ],
}


class Notice:
    """One organization's notice: its id, file stem, TLP, Markdown text and e-mail message."""

    def __init__(self, org_id: str, stem: str, tlp: str, markdown: str, message: EmailMessage) -> None:
        self.org_id = org_id
        self.stem = stem
        self.tlp = tlp
        self.markdown = markdown
        self.message = message


def _stem(org_id: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", org_id).strip("._") or "org"
    stem = base[:60]
    if stem in taken:  # two ids that sanitize the same way must not overwrite each other
        stem = f"{stem}-{hashlib.sha256(org_id.encode()).hexdigest()[:8]}"
    taken.add(stem)
    return stem


def _org_exposure(findings: dict[str, Any], org: dict[str, Any]) -> list[dict[str, Any]]:
    """Exposure rows that belong to this organization (by org_id or by one of its host addresses)."""
    ips = {str(h.get("ip")) for h in org.get("hosts") or []}
    out = []
    for row in findings.get("exposure") or []:
        if not isinstance(row, dict):
            continue
        if (row.get("org_id") is not None and row.get("org_id") == org.get("org_id")) or str(row.get("ip")) in ips:
            out.append(row)
    return out


def _kev_cves(row: dict[str, Any]) -> list[str]:
    for key in ("kev_cves", "cves", "cve"):
        v = row.get(key)
        if v:
            vals = v if isinstance(v, list) else [v]
            cves = [str(c.get("cve") if isinstance(c, dict) else c) for c in vals]
            if key == "kev_cves" or row.get("kev", True):
                return cves
    return []


def _org_markdown(
    findings: dict[str, Any], org: dict[str, Any], tlp: str, exposure: list[dict[str, Any]], held: int = 0
) -> str:
    name = org.get("name") or org.get("org_id")
    verdict = str(org.get("verdict") or "none")
    actors = sorted(
        {str(e["actor"]) for h in org.get("hosts") or [] for e in h.get("evidence") or [] if e.get("actor")}
    )
    actor_text = ", ".join(actors) or "a state-sponsored actor"
    L = [
        f"**TLP:{tlp.upper()}** (recipients may share this with their own organization and its clients "
        "on a need-to-know basis)"
        if tlp == "amber"
        else f"**TLP:{tlp.upper()}**",
        "",
    ]
    L += [f"# Security notice for {md_escape(name)}", ""]
    what = {
        "compromised": "hosts in your network communicated repeatedly with infrastructure of",
        "exploitation_attempt": "your internet-facing services were targeted with exploitation attempts by",
        "reconnaissance": "your network was probed (scanned) by infrastructure of",
    }.get(verdict, "your network had contact with infrastructure of")
    L += [
        f"Between {md_escape(org.get('first_seen'))} and {md_escape(org.get('last_seen'))}, {what} {md_escape(actor_text)}. "
        f"Our assessment: **{md_escape(VERDICT_LABELS.get(verdict, verdict))}** (confidence {md_escape(org.get('confidence'))}/100).",
        "",
        f"Organization id in our records: {md_code(org.get('org_id'))}"
        + (f"; ASN {', '.join('AS' + md_escape(a) for a in org.get('asns') or [])}" if org.get("asns") else "")
        + ".",
        "",
        "## What to do now",
        "",
    ]
    steps = list(_STEPS.get(verdict, _STEPS["reconnaissance"]))
    if not exposure:
        # Without scan data we cannot name the devices; say what to check instead.
        steps = [
            "Check your internet-facing firewalls, VPN gateways and load balancers against CISA's Known Exploited "
            "Vulnerabilities catalog and apply the vendor patches; this actor exploits such edge devices."
            if "exposed devices listed below" in st
            else st
            for st in steps
        ]
    L += [f"{i}. {step}" for i, step in enumerate(steps, 1)] + [""]
    L += ["## Affected hosts", ""]
    L += md_table(
        ["host", "assessment", "confidence", "first seen", "last seen", "indicators"],
        [
            [
                md_code(h.get("ip")),
                md_escape(h.get("verdict")),
                md_escape(h.get("confidence")),
                md_escape(h.get("first_seen")),
                md_escape(h.get("last_seen")),
                ", ".join(md_code(i) for i in h.get("indicators") or []),
            ]
            for h in org.get("hosts") or []
        ],
    )
    indicators = sorted(
        {str(i) for h in org.get("hosts") or [] for i in h.get("indicators") or []}
        | {
            str(e["indicator"])
            for h in org.get("hosts") or []
            for e in h.get("evidence") or []
            if e.get("indicator") is not None
        }
    )
    L += ["## Indicators to block and hunt for", ""] + [f"- {md_code(i)}" for i in indicators] + [""]
    L += ["## Evidence", ""]
    L += md_table(
        [
            "host",
            "behaviour",
            "indicator",
            "direction",
            "port",
            "flows",
            "bytes out",
            "bytes in",
            "first seen",
            "last seen",
            "score",
            "detail",
        ],
        [
            [
                md_code(h.get("ip")),
                md_escape(e.get("behaviour")),
                md_code(e.get("indicator")),
                md_escape(e.get("direction")),
                md_escape(e.get("dst_port") if e.get("dst_port") is not None else "any"),
                md_escape(e.get("flows")),
                md_escape(e.get("bytes_out")),
                md_escape(e.get("bytes_in")),
                md_escape(e.get("first_seen")),
                md_escape(e.get("last_seen")),
                md_escape(e.get("score")),
                md_escape(e.get("detail")),
            ]
            for h in org.get("hosts") or []
            for e in h.get("evidence") or []
        ],
    )
    if exposure:
        L += ["## Your exposed devices with known-exploited vulnerabilities (CISA KEV)", ""]
        L += md_table(
            ["address", "port", "product", "version", "CVEs to patch"],
            [
                [
                    md_code(r.get("ip") or r.get("host")),
                    md_escape(r.get("port")),
                    md_escape(r.get("product")),
                    md_escape(r.get("version")),
                    md_escape(", ".join(_kev_cves(r))),
                ]
                for r in exposure
            ],
        )
    stale = [
        s for s in findings.get("stale_matches") or [] if isinstance(s, dict) and s.get("org_id") == org.get("org_id")
    ]
    if stale:
        L += [
            "## Older contacts worth checking",
            "",
            "These contacts happened outside the period in which the indicator was known to be malicious:",
            "",
        ]
        L += md_table(
            ["host", "indicator", "flows", "first seen", "last seen"],
            [
                [
                    md_code(s.get("host")),
                    md_code(s.get("indicator")),
                    md_escape(s.get("flows")),
                    md_escape(s.get("first_seen")),
                    md_escape(s.get("last_seen")),
                ]
                for s in stale
            ],
        )
    if held:
        L += [
            f"More evidence about your organization ({held} item{'s' if held != 1 else ''}) is held at a stricter "
            f"TLP level than this notice and is not included; ask us if you need it.",
            "",
        ]
    L += [
        "Times are UTC. Please reply to confirm receipt and tell us whether you need help.",
        "",
        f"**TLP:{tlp.upper()}**",
        "",
    ]
    return "\n".join(L)


def _single_org_doc(findings: dict[str, Any], org: dict[str, Any]) -> dict[str, Any]:
    """A findings document restricted to one organization (the only input a notice sees)."""
    oid = org.get("org_id")
    return {
        "generated_at": findings.get("generated_at"),
        "run_id": findings.get("run_id"),
        "organizations": [org],
        "exposure": _org_exposure(findings, org),
        "stale_matches": [
            s for s in findings.get("stale_matches") or [] if isinstance(s, dict) and s.get("org_id") == oid
        ],
    }


def build_notices(
    findings: Findings | dict[str, Any],
    *,
    tlp: str = "amber",
    sender: str = DEFAULT_SENDER,
    ws: Workspace | None = None,
    indicators: Any = None,
) -> tuple[list[Notice], list[str]]:
    """Build one :class:`Notice` per affected organization.

    The findings are shared at ``tlp`` by the one sharing policy (what a notice may carry is
    what a reader at that level may see); a victim whose evidence is of mixed markings gets a
    notice with what may be shared and a line saying that more is held at a stricter level.
    Address groups (unregistered addresses grouped by /24 or /48) get no notice: nobody
    receives mail for them.

    Returns
    -------
    (notices, withheld)
        The notices, and the names of items withheld because they are more restrictive than
        ``tlp`` (for the operator; restricted themselves).
    """
    from . import prepare

    try:
        from_addr = Address(display_name="sightline notification", addr_spec=sender)
    except (ValueError, IndexError) as e:  # email's parser raises HeaderParseError (a ValueError)
        raise ConfigError(
            f"not an e-mail address: {sender!r}", field="from", hint="pass --from user@example.org"
        ) from e
    shared, _ = prepare(findings, tlp=tlp, ws=ws, indicators=indicators)
    level = shared.level.label
    doc = shared.to_dict()
    notices: list[Notice] = []
    taken: set[str] = set()
    when = doc.get("generated_at")
    try:
        date = datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else datetime.now(UTC)
    except ValueError:
        date = datetime.now(UTC)
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    for org in doc.get("organizations") or []:
        if str(org.get("verdict") or "none") == "none" or org.get("source") in PSEUDO_SOURCES:
            continue
        single = _single_org_doc(doc, org)
        org = single["organizations"][0]
        held = shared.withheld_by_org.get(str(org.get("org_id")), 0)
        text = _org_markdown(single, org, level, single["exposure"], held)
        oid = str(org.get("org_id"))
        stem = _stem(oid, taken)
        msg = EmailMessage(policy=SMTP)
        name = " ".join(str(org.get("name") or oid).split())
        msg["Subject"] = (
            f"[TLP:{level.upper()}] Security notice for {name}: {VERDICT_LABELS.get(str(org.get('verdict')), '')}"
        )
        msg["From"] = from_addr
        msg["To"] = "undisclosed-recipients:;"
        msg["Date"] = format_datetime(date)
        # Deterministic: re-running notify for the same run yields the same message ids.
        mid = uuid.uuid5(_NS, f"{doc.get('run_id') or when}|{oid}")
        msg["Message-ID"] = f"<{mid}@sightline.invalid>"
        msg["X-TLP"] = f"TLP:{level.upper()}"
        msg.set_content(text, subtype="plain", charset="utf-8")
        notices.append(Notice(oid, stem, level, text, msg))
    return notices, shared.withheld


def write_notices(
    findings: Findings | dict[str, Any],
    out_dir: Path,
    *,
    tlp: str = "amber",
    sender: str = DEFAULT_SENDER,
    ws: Workspace | None = None,
    indicators: Any = None,
    on_written: Callable[[Notice, list[Path]], None] | None = None,
) -> tuple[list[Path], list[str]]:
    """Write ``notice-<org>.md`` and ``notice-<org>.eml`` per affected organization into ``out_dir``.

    Returns the files written and the names of withheld items (see :func:`build_notices`);
    ``on_written(notice, files)`` is called after each notice's files are written (``notify``
    records them on the organization's case).
    """
    out_dir = Path(out_dir)
    notices, withheld = build_notices(findings, tlp=tlp, sender=sender, ws=ws, indicators=indicators)
    paths: list[Path] = []
    for n in notices:
        md = out_dir / f"notice-{n.stem}.md"
        eml = out_dir / f"notice-{n.stem}.eml"
        atomic_write_text(md, n.markdown)
        atomic_write_bytes(eml, n.message.as_bytes())
        paths += [md, eml]
        if on_written is not None:
            on_written(n, [md, eml])
    return paths, withheld
