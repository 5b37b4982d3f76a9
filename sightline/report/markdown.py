"""Markdown report with the same content as the HTML one (built from the same view model).

Values from telemetry or intel are escaped for Markdown tables and inline text (pipes,
backticks, angle brackets, link syntax), so a hostile name cannot break the layout or add
links or raw HTML when the file is rendered.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..workspace import atomic_write_text
from .html import build_view, join_any

__all__ = ["write_markdown", "render_markdown"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~])")


def _md(value: Any) -> str:
    """Escape a value for inline Markdown (also safe inside a table cell)."""
    if value is None:
        return ""
    text = " ".join(str(value).split())  # newlines would end a table row
    return _MD_SPECIAL.sub(r"\\\1", text)


def _code(value: Any) -> str:
    text = " ".join(str(value).split()).replace("`", "'")
    # Table cells end at "|" even inside code spans in GFM.
    return f"`{text}`".replace("|", "\\|") if text else ""


def _table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    right = right or set()
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def render_markdown(findings: dict[str, Any], *, title: str | None = None) -> str:
    """The Markdown report as a string (see :func:`write_markdown`)."""
    v = build_view(findings, title=title)
    L: list[str] = [f"**TLP:{v['tlp_upper']}**", "", f"# {_md(v['title'])}", ""]
    meta = []
    if v["window_start"]:
        meta.append(f"Window {v['window_start']} to {v['window_end']}.")
    inp = v["inputs"]
    if "flows" in inp:
        q = f", {inp.get('quarantined')} records quarantined" if inp.get("quarantined") else ""
        meta.append(f"{_md(inp.get('flows'))} flows, {_md(inp.get('indicators'))} indicators{q}.")
    gen = f"Generated {_md(v['generated_at'])}"
    if v["version"]:
        gen += f" by sightline {_md(v['version'])}"
    if v["engine"]:
        gen += f" ({_md(v['engine'])})"
    if v["run_id"]:
        gen += f", run {_code(v['run_id'])}"
    meta.append(gen + ".")
    if v["anonymized"]:
        meta.append("Victim names and addresses are pseudonymized.")
    L += [" ".join(meta), "", "## Summary", "", _md(v["summary_sentence"]), ""]
    for line in v["breakdown"]:
        L += [_md(line), ""]
    if v["actors"]:
        L += [f"Actor{'s' if len(v['actors']) > 1 else ''}: {_md(', '.join(v['actors']))}.", ""]
    L += _table(["verdict", "organizations"], [[c["label"], str(c["n"])] for c in v["counts"]], {1})
    if v["dropped"]:
        n = len(v["dropped"])
        L += [f"Withheld for this audience (TLP): {n} item{'s' if n != 1 else ''}.", ""]

    if v["orgs"]:
        L += ["## Timeline", ""]
        L += _table(
            ["organization", "verdict", "first seen", "last seen", "activity"],
            [
                [
                    _md(o.get("name") or o.get("org_id")),
                    _md(o["verdict_label"]),
                    o["first_seen_h"],
                    o["last_seen_h"],
                    _md("; ".join(
                        f"{h.get('ip')} {e.get('behaviour')} {e['first_seen_h']} to {e['last_seen_h']}"
                        for h in o["hosts"] for e in h["evidence"]
                    )),
                ]
                for o in v["orgs"]
            ],
        )
        verdict_header = [d["label"] for d in v["verdicts"]]
        for key, title_ in (("sectors", "sector"), ("countries", "country")):
            L += [f"## By {title_}", ""]
            L += _table(
                [title_] + verdict_header + ["total"],
                [[_md(r["name"])] + [str(r["counts"][d["key"]]) for d in v["verdicts"]] + [str(r["total"])] for r in v[key]],
                set(range(1, len(verdict_header) + 2)),
            )
        L += ["## Organizations", ""]
        L += _table(
            ["organization", "sector", "country", "verdict", "confidence", "first seen", "last seen", "hosts"],
            [
                [_md(o.get("name") or o.get("org_id")), _md(o.get("sector")), _md(o.get("country")), _md(o["verdict_label"]),
                 _md(o.get("confidence")), o["first_seen_h"], o["last_seen_h"], str(len(o["hosts"]))]
                for o in v["orgs"]
            ],
            {4, 7},
        )
        for o in v["orgs"]:
            tlp = f" (TLP:{_md(str(o.get('tlp')).upper())})" if o.get("tlp") else ""
            L += [f"### {_md(o.get('name') or o.get('org_id'))}: {_md(o['verdict_label'])}{tlp}", ""]
            asns = (" · " + ", ".join(f"AS{_md(a)}" for a in o["asns"])) if o["asns"] else ""
            L += [
                f"{_code(o.get('org_id'))} · {_md(o.get('sector') or 'unknown sector')} · "
                f"{_md(o.get('country') or 'unknown country')}{asns} · confidence {_md(o.get('confidence'))} · "
                f"{o['first_seen_h']} to {o['last_seen_h']}",
                "",
            ]
            for h in o["hosts"]:
                inds = ", ".join(_code(i) for i in h["indicators"])
                span = f", {h['first_seen_h']} to {h['last_seen_h']}" if h["first_seen_h"] else ""
                L += [f"**Host {_code(h.get('ip'))}** {_md(h.get('verdict'))}, confidence {_md(h.get('confidence'))}{span}. "
                      f"Indicators: {inds}", ""]
                if h["evidence"]:
                    L += _table(
                        ["behaviour", "indicator", "direction", "port", "flows", "bytes out", "bytes in", "first seen",
                         "last seen", "score", "detail"],
                        [
                            [_md(e.get("behaviour")), _code(e.get("indicator")) + (f" ({_md(e.get('actor'))})" if e.get("actor") else ""),
                             _md(e.get("direction")), _md(e["port_h"]), _md(e.get("flows")), _md(e["bytes_out_h"]),
                             _md(e["bytes_in_h"]), e["first_seen_h"], e["last_seen_h"], _md(e.get("score")), _md(e.get("detail"))]
                            for e in h["evidence"]
                        ],
                        {4, 5, 6, 9},
                    )
    else:
        L += ["No organization had contact with the actor's infrastructure in this window.", ""]

    if v["stale_matches"]:
        L += ["## Stale matches", "", "Contacts with an indicator outside its validity window: listed for review, no verdict.", ""]
        L += _table(
            ["organization", "host", "indicator", "flows", "first seen", "last seen", "indicator valid"],
            [[_md(s.get("org_id")), _code(s.get("host")), _code(s.get("indicator")), _md(s.get("flows")),
              s["first_seen_h"], s["last_seen_h"], f"{s['valid_from_h'] or 'open'} to {s['valid_until_h'] or 'open'}"]
             for s in v["stale_matches"]],
            {3},
        )
    if v["suspected"]:
        L += ["## Suspected infrastructure", "",
              "External addresses that behave like the actor's infrastructure but are not in the intel.", ""]
        L += _table(
            ["address", "score", "hosts", "organizations", "ports", "reason"],
            [[_code(s.get("ip")), _md(s.get("score")), _md(s.get("hosts")), _md(join_any(s.get("organizations"))),
              _md(join_any(s.get("ports"))), _md(s.get("reason"))] for s in v["suspected"]],
            {1, 2},
        )
    for key, heading, intro in (
        ("exposure", "Exposure", "Internet-facing services running products with known-exploited vulnerabilities (CISA KEV)."),
        ("actor_infra", "Actor infrastructure", ""),
    ):
        t = v[key]
        if t["rows"]:
            L += [f"## {heading}", ""] + ([intro, ""] if intro else [])
            L += _table([_md(c) for c in t["columns"]], [[_md(c) for c in r] for r in t["rows"]])
    L += [f"**TLP:{v['tlp_upper']}**", ""]
    return "\n".join(L)


def write_markdown(findings: dict[str, Any], path: Path, *, title: str | None = None) -> None:
    """Write the Markdown report (``--format md``) for ``findings`` atomically to ``path``."""
    atomic_write_text(Path(path), render_markdown(findings, title=title))
