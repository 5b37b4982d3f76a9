"""Markdown report with the same content as the HTML one (built from the same view model).

Values from telemetry or intel are escaped for Markdown tables and inline text (pipes,
backticks, angle brackets, link syntax), so a hostile name cannot break the layout or add
links or raw HTML when the file is rendered.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..store import atomic_write_text
from .html import build_view, join_any

__all__ = ["write_markdown", "render_markdown", "md_escape", "md_code", "md_table"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~])")


def md_escape(value: Any) -> str:
    """Escape a value for inline Markdown (also safe inside a table cell)."""
    if value is None:
        return ""
    text = " ".join(str(value).split())  # newlines would end a table row
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(value: Any) -> str:
    text = " ".join(str(value).split()).replace("`", "'")
    # Table cells end at "|" even inside code spans in GFM.
    return f"`{text}`".replace("|", "\\|") if text else ""


def md_table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    right = right or set()
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _more(n: int, v: dict[str, Any]) -> list[str]:
    """The line saying how many rows of a table the report leaves out, and where they are."""
    return [f"{n} more row(s) not shown: {md_escape(v['more_hint'])}.", ""] if n else []


def render_markdown(findings: dict[str, Any], *, title: str | None = None) -> str:
    """The Markdown report as a string (see :func:`write_markdown`)."""
    v = build_view(findings, title=title)
    L: list[str] = [f"**TLP:{v['tlp_upper']}**", "", f"# {md_escape(v['title'])}", ""]
    meta = []
    if v["window_start"]:
        meta.append(f"Window {v['window_start']} to {v['window_end']}.")
    inp = v["inputs"]
    if "flows" in inp:
        q = f", {inp.get('quarantined')} records quarantined" if inp.get("quarantined") else ""
        meta.append(f"{md_escape(inp.get('flows'))} flows, {md_escape(inp.get('indicators'))} indicators{q}.")
    gen = f"Generated {md_escape(v['generated_at'])}"
    if v["version"]:
        gen += f" by sightline {md_escape(v['version'])}"
    if v["engine"]:
        gen += f" ({md_escape(v['engine'])})"
    if v["run_id"]:
        gen += f", run {md_code(v['run_id'])}"
    meta.append(gen + ".")
    if v["anonymized"]:
        meta.append("Victim names and addresses are pseudonymized.")
    L += [" ".join(meta), "", "## Summary", "", md_escape(v["summary_sentence"]), ""]
    for line in v["breakdown"]:
        L += [md_escape(line), ""]
    if v["actors"]:
        L += [f"Actor{'s' if len(v['actors']) > 1 else ''}: {md_escape(', '.join(v['actors']))}.", ""]
    L += md_table(["verdict", "organizations"], [[c["label"], str(c["n"])] for c in v["counts"]], {1})
    if v["withheld"]:
        n = v["withheld"]
        L += [f"Withheld for this audience (TLP): {n} item{'s' if n != 1 else ''}.", ""]

    if v["orgs"]:
        L += ["## Timeline", ""]
        L += md_table(
            ["organization", "verdict", "first seen", "last seen", "activity"],
            [
                [
                    md_escape(o.get("name") or o.get("org_id")),
                    md_escape(o["verdict_label"]),
                    o["first_seen_h"],
                    o["last_seen_h"],
                    md_escape(
                        "; ".join(
                            f"{h.get('ip')} {e.get('behaviour')} {e['first_seen_h']} to {e['last_seen_h']}"
                            for h in o["hosts"]
                            for e in h["evidence"]
                        )
                    ),
                ]
                for o in v["orgs"]
            ],
        )
        verdict_header = [d["label"] for d in v["verdicts"]]
        for key, title_ in (("sectors", "sector"), ("countries", "country")):
            L += [f"## By {title_}", ""]
            L += md_table(
                [title_] + verdict_header + ["total"],
                [
                    [md_escape(r["name"])] + [str(r["counts"][d["key"]]) for d in v["verdicts"]] + [str(r["total"])]
                    for r in v[key]
                ],
                set(range(1, len(verdict_header) + 2)),
            )
        L += ["## Organizations", ""]
        dg = v["digest"]
        if dg and not dg.get("complete"):
            L += [
                f"Every organization is listed; this report shows {dg['hosts_shown']} of {dg['hosts_total']} hosts "
                f"and {dg['evidence_shown']} of {dg['evidence_total']} evidence rows, the most serious first. "
                f"All of them: {md_escape(v['more_hint'])}.",
                "",
            ]
        L += md_table(
            ["organization", "sector", "country", "verdict", "confidence", "first seen", "last seen", "hosts"],
            [
                [
                    md_escape(o.get("name") or o.get("org_id")),
                    md_escape(o.get("sector")),
                    md_escape(o.get("country")),
                    md_escape(o["verdict_label"]),
                    md_escape(o.get("confidence")),
                    o["first_seen_h"],
                    o["last_seen_h"],
                    str(o["hosts_total"]),
                ]
                for o in v["orgs"]
            ],
            {4, 7},
        )
        for o in v["orgs"]:
            tlp = f" (TLP:{md_escape(str(o.get('tlp')).upper())})" if o.get("tlp") else ""
            L += [f"### {md_escape(o.get('name') or o.get('org_id'))}: {md_escape(o['verdict_label'])}{tlp}", ""]
            asns = (" · " + ", ".join(f"AS{md_escape(a)}" for a in o["asns"])) if o["asns"] else ""
            L += [
                f"{md_code(o.get('org_id'))} · {md_escape(o.get('sector') or 'unknown sector')} · "
                f"{md_escape(o.get('country') or 'unknown country')}{asns} · confidence {md_escape(o.get('confidence'))} · "
                f"{o['first_seen_h']} to {o['last_seen_h']}",
                "",
            ]
            for h in o["hosts"]:
                inds = ", ".join(md_code(i) for i in h["indicators"])
                if h["indicators_more"]:
                    inds += f" and {h['indicators_more']} more"
                span = f", {h['first_seen_h']} to {h['last_seen_h']}" if h["first_seen_h"] else ""
                L += [
                    f"**Host {md_code(h.get('ip'))}** {md_escape(h.get('verdict'))}, confidence {md_escape(h.get('confidence'))}{span}. "
                    f"Indicators: {inds}",
                    "",
                ]
                if h["evidence"]:
                    L += md_table(
                        [
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
                                md_escape(e.get("behaviour")),
                                md_code(e.get("indicator"))
                                + (f" ({md_escape(e.get('actor'))})" if e.get("actor") else ""),
                                md_escape(e.get("direction")),
                                md_escape(e["port_h"]),
                                md_escape(e.get("flows")),
                                md_escape(e["bytes_out_h"]),
                                md_escape(e["bytes_in_h"]),
                                e["first_seen_h"],
                                e["last_seen_h"],
                                md_escape(e.get("score")),
                                md_escape(e.get("detail")),
                            ]
                            for e in h["evidence"]
                        ],
                        {4, 5, 6, 9},
                    )
                if h["evidence_more"]:
                    L += [f"{h['evidence_more']} more evidence row(s) for this host: {md_escape(v['more_hint'])}.", ""]
            if o["hosts_more"]:
                L += [
                    f"{o['hosts_more']} more host(s) of this organization not shown ({o['hosts_total']} in all): "
                    f"{md_escape(v['more_hint'])}.",
                    "",
                ]
    else:
        L += ["No organization had contact with the actor's infrastructure in this window.", ""]

    if v["stale_matches"]:
        L += [
            "## Stale matches",
            "",
            "Contacts with an indicator outside its validity window: listed for review, no verdict.",
            "",
        ]
        L += md_table(
            ["organization", "host", "indicator", "flows", "first seen", "last seen", "indicator valid"],
            [
                [
                    md_escape(s.get("org_id")),
                    md_code(s.get("host")),
                    md_code(s.get("indicator")),
                    md_escape(s.get("flows")),
                    s["first_seen_h"],
                    s["last_seen_h"],
                    f"{s['valid_from_h'] or 'open'} to {s['valid_until_h'] or 'open'}",
                ]
                for s in v["stale_matches"]
            ],
            {3},
        )
        L += _more(v["more"]["stale_matches"], v)
    if v["suspected"]:
        L += [
            "## Suspected infrastructure",
            "",
            "External addresses that behave like the actor's infrastructure but are not in the intel.",
            "",
        ]
        L += md_table(
            ["address", "score", "hosts", "organizations", "ports", "reason"],
            [
                [
                    md_code(s.get("ip")),
                    md_escape(s.get("score")),
                    md_escape(s.get("hosts")),
                    md_escape(join_any(s.get("organizations"))),
                    md_escape(join_any(s.get("ports"))),
                    md_escape(s.get("reason")),
                ]
                for s in v["suspected"]
            ],
            {1, 2},
        )
        L += _more(v["more"]["suspected_infrastructure"], v)
    if v["exposure"]:
        L += [
            "## Exposure",
            "",
            "Internet-facing services running products with known-exploited vulnerabilities (CISA KEV), "
            "in the order to act on them.",
            "",
        ]
        L += md_table(
            ["priority", "organization", "service", "product", "CVEs", "actor activity"],
            [
                [
                    md_escape(e["priority"]),
                    md_escape(e["org_id"]),
                    md_code(e["service"]),
                    md_escape(e["product"]),
                    md_escape(e["cves"]),
                    md_escape(e["activity"]),
                ]
                for e in v["exposure"]
            ],
        )
        L += _more(v["more"]["exposure"], v)
    a = v["actor"]
    if a["rows"]:
        L += ["## Actor infrastructure", ""] + ([md_escape(a["caveat"]), ""] if a["caveat"] else [])
        L += md_table(
            ["address", "roles", "network", "country", "hosting", "ports", "active", "organizations", "cluster"],
            [
                [
                    md_code(r["ip"]),
                    md_escape(r["roles"]),
                    md_escape(r["network"]),
                    md_escape(r["country"]),
                    md_escape(r["hosting"]),
                    md_escape(r["ports"]),
                    md_escape(f"{r['first_seen_h']} to {r['last_seen_h']}"),
                    md_escape(r["orgs"]),
                    md_escape(r["cluster"]),
                ]
                for r in a["rows"]
            ],
            {7},
        )
        L += _more(v["more"]["actor_infrastructure"], v)
        if a["handoffs"]:
            L += ["### Rotation", ""]
            L += md_table(
                ["victim host", "from", "last seen", "to", "first seen"],
                [
                    [
                        md_code(h["host"]),
                        md_code(h["from"]),
                        md_escape(h["from_h"]),
                        md_code(h["to"]),
                        md_escape(h["to_h"]),
                    ]
                    for h in a["handoffs"]
                ],
            )
            L += _more(a["handoffs_more"], v)
    L += [f"**TLP:{v['tlp_upper']}**", ""]
    return "\n".join(L)


def write_markdown(findings: dict[str, Any], path: Path, *, title: str | None = None) -> None:
    """Write the Markdown report (``--format md``) for ``findings`` atomically to ``path``."""
    atomic_write_text(Path(path), render_markdown(findings, title=title))
