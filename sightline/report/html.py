"""Self-contained HTML report of a findings document.

The page makes no external request: CSS is inline and the charts are SVG generated here
(printable, no JavaScript).  Rendering goes through Jinja2 with autoescape on, so names and
details from telemetry or intel can never inject markup.  :func:`build_view` turns findings
into the plain data both the HTML and the Markdown report show, so the two stay in step.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..core.tlp import marking
from ..core.verdicts import VERDICTS, org_order
from ..store import atomic_write_text
from .digest import DEFAULT_BUDGET, MORE_HINT

__all__ = ["write_html", "render_html", "build_view", "VERDICTS", "VERDICT_LABELS"]

VERDICT_LABELS = {
    "compromised": "compromised",
    "exploitation_attempt": "exploitation attempt",
    "reconnaissance": "reconnaissance",
    "none": "none",
}
_COLORS = {
    "compromised": "#b2182b",
    "exploitation_attempt": "#ef8a62",
    "reconnaissance": "#4393c3",
    "none": "#999999",
}
# TLP 2.0 colours (FIRST's specification: text on black background).
_TLP_COLORS = {
    "clear": "#ffffff",
    "green": "#33ff00",
    "amber": "#ffc000",
    "amber+strict": "#ffc000",
    "red": "#ff2b2b",
}


# --- small helpers ---------------------------------------------------------------------------


def _parse_ts(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _day(value: Any) -> str:
    ts = _parse_ts(value)
    return ts.strftime("%Y-%m-%d") if ts else "?"


def _when(value: Any) -> str:
    ts = _parse_ts(value)
    return ts.strftime("%Y-%m-%d %H:%M UTC") if ts else ("" if value is None else str(value))


def _human_bytes(n: Any) -> str:
    if n is None:
        return ""
    try:
        v = float(n)
    except (TypeError, ValueError):
        return str(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(v) < 1000 or unit == "TB":
            return f"{int(v)} B" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1000
    return str(n)  # pragma: no cover - loop always returns


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _crosstab(orgs: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows ``{name, counts: {verdict: n}, total}`` sorted by compromised, then total."""
    table: dict[str, dict[str, int]] = {}
    for org in orgs:
        name = str(org.get(key) or "unknown")
        v = str(org.get("verdict") or "none")
        table.setdefault(name, {}).setdefault(v, 0)
        table[name][v] += 1
    rows: list[dict[str, Any]] = [
        {"name": name, "counts": {v: counts.get(v, 0) for v in VERDICTS}, "total": sum(counts.values())}
        for name, counts in table.items()
    ]
    rows.sort(key=lambda r: (-r["counts"]["compromised"], -r["total"], r["name"]))
    return rows


def _breakdown_sentence(rows: list[dict[str, Any]], verdict: str, noun: str) -> str:
    parts = [f"{r['counts'][verdict]} {r['name']}" for r in rows if r["counts"][verdict]]
    if not parts:
        return ""
    return f"{VERDICT_LABELS[verdict].capitalize()} {noun}: " + ", ".join(parts) + "."


def summary_sentence(orgs: list[dict[str, Any]]) -> str:
    """The seed report's headline: who was compromised when, and how many more were targeted."""
    comp = [o for o in orgs if o.get("verdict") == "compromised"]
    other = [o for o in orgs if o.get("verdict") in ("exploitation_attempt", "reconnaissance")]
    if comp:
        starts = [t for t in (_parse_ts(o.get("first_seen")) for o in comp) if t]
        ends = [t for t in (_parse_ts(o.get("last_seen")) for o in comp) if t]
        span = ""
        if starts and ends:
            span = f" between {min(starts):%Y-%m-%d} and {max(ends):%Y-%m-%d}"
        text = f"{_plural(len(comp), 'organization')} compromised{span}"
    else:
        text = "No organization found compromised"
    if other:
        text += f"; {len(other)} more saw reconnaissance or exploitation attempts"
    return text + "."


# --- SVG charts ------------------------------------------------------------------------------


def _svg_open(width: int, height: int, title: str, caption: str | None = None) -> list[str]:
    """Opening of a chart: the <svg> element with its accessible title, and the visible caption."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="0" y="16" class="ct">{escape(caption if caption is not None else title)}</text>',
    ]


def _svg_stacked_bars(rows: list[dict[str, Any]], title: str) -> Markup:
    """Horizontal stacked bar chart of verdict counts per category."""
    if not rows:
        return Markup("")
    label_w, bar_w, row_h, top = 170, 360, 22, 26
    total_max = max(r["total"] for r in rows) or 1
    height = top + row_h * len(rows) + 30
    width = label_w + bar_w + 60
    out = _svg_open(width, height, title)
    for i, r in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(str(r["name"])[:28])}</text>')
        x = float(label_w)
        for v in VERDICTS:
            n = r["counts"][v]
            if not n:
                continue
            w = bar_w * n / total_max
            out.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{_COLORS[v]}">'
                f"<title>{escape(r['name'])}: {n} {VERDICT_LABELS[v]}</title></rect>"
            )
            x += w
        out.append(f'<text x="{x + 4:.1f}" y="{y + 15}">{r["total"]}</text>')
    ly = top + row_h * len(rows) + 16
    lx = label_w
    for v in VERDICTS:
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{_COLORS[v]}"/>')
        out.append(f'<text x="{lx + 14}" y="{ly}">{VERDICT_LABELS[v]}</text>')
        lx += 14 + 8 * len(VERDICT_LABELS[v]) + 16
    out.append("</svg>")
    return Markup("".join(out))


def _svg_timeline(orgs: list[dict[str, Any]], window: dict[str, Any]) -> Markup:
    """One lane per organization: its activity span, and each host's evidence spans on it."""
    spans = []
    for org in orgs:
        a, b = _parse_ts(org.get("first_seen")), _parse_ts(org.get("last_seen"))
        evs = []
        for host in org.get("hosts") or []:
            for ev in host.get("evidence") or []:
                ea, eb = _parse_ts(ev.get("first_seen")), _parse_ts(ev.get("last_seen"))
                if ea and eb:
                    evs.append((ea, eb, str(ev.get("behaviour") or ""), str(host.get("ip") or "")))
        if a and b:
            spans.append((org, a, b, evs))
    if not spans:
        return Markup("")
    lo = _parse_ts(window.get("start")) or min(s[1] for s in spans)
    hi = _parse_ts(window.get("end")) or max(s[2] for s in spans)
    lo = min([lo] + [s[1] for s in spans])
    hi = max([hi] + [s[2] for s in spans])
    total = (hi - lo).total_seconds() or 1.0
    label_w, plot_w, row_h, top = 200, 480, 22, 26
    width, height = label_w + plot_w + 20, top + row_h * len(spans) + 24

    def x(t: datetime) -> float:
        return label_w + plot_w * (t - lo).total_seconds() / total

    out = [
        *_svg_open(width, height, "Activity per organization", "Activity per organization (UTC)"),
        f'<line x1="{label_w}" y1="{top - 2}" x2="{label_w}" y2="{height - 20}" stroke="#888"/>',
    ]
    for i, (org, a, b, evs) in enumerate(spans):
        y = top + i * row_h
        v = str(org.get("verdict") or "none")
        name = str(org.get("name") or org.get("org_id") or "?")
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(name[:30])}</text>')
        out.append(
            f'<rect x="{x(a):.1f}" y="{y + 8}" width="{max(x(b) - x(a), 2):.1f}" height="6" '
            f'fill="{_COLORS.get(v, "#999")}" opacity="0.35"><title>{escape(name)}: {_when(org.get("first_seen"))}'
            f" to {_when(org.get('last_seen'))}</title></rect>"
        )
        for ea, eb, beh, hip in evs:
            out.append(
                f'<rect x="{x(ea):.1f}" y="{y + 5}" width="{max(x(eb) - x(ea), 2):.1f}" height="12" '
                f'fill="{_COLORS.get(v, "#999")}"><title>{escape(hip)} {escape(beh)}: {ea:%Y-%m-%d %H:%M}'
                f" to {eb:%Y-%m-%d %H:%M}</title></rect>"
            )
    axis_y = height - 6
    out.append(f'<text x="{label_w}" y="{axis_y}">{lo:%Y-%m-%d}</text>')
    out.append(f'<text x="{label_w + plot_w}" y="{axis_y}" text-anchor="end">{hi:%Y-%m-%d}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def generic_table(items: Any) -> dict[str, Any]:
    """``{columns, rows}`` for a list of dicts whose keys we do not know in advance.

    Columns appear in first-seen order; ``tlp`` goes last; lists are joined with commas.
    """
    rows_in = [i for i in items or [] if isinstance(i, dict)]
    cols: list[str] = []
    for item in rows_in:
        for k in item:
            if k not in cols:
                cols.append(k)
    if "tlp" in cols:
        cols.remove("tlp")
        cols.append("tlp")
    rows = [[join_any(item.get(c)) for c in cols] for item in rows_in]
    return {"columns": cols, "rows": rows}


def _svg_counts(counts: list[tuple[str, int]], title: str, color: str = "#5a6b7b") -> Markup:
    """Horizontal bars of plain counts (e.g. actor servers per country)."""
    if not counts:
        return Markup("")
    label_w, bar_w, row_h, top = 230, 300, 20, 26
    top_n = max(n for _, n in counts) or 1
    height = top + row_h * len(counts) + 8
    width = label_w + bar_w + 50
    out = _svg_open(width, height, title)
    for i, (name, n) in enumerate(counts):
        y = top + i * row_h
        w = bar_w * n / top_n
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(str(name)[:36])}</text>')
        out.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{color}">'
            f"<title>{escape(str(name))}: {n}</title></rect>"
        )
        out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14}">{n}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _actor_view(findings: dict[str, Any], limit: int = DEFAULT_BUDGET.rows) -> dict[str, Any]:
    """Actor infrastructure: one row per server, geography charts, clusters, hand-offs."""
    infra = [a for a in findings.get("actor_infrastructure") or [] if isinstance(a, dict)]
    summary = findings.get("actor_infrastructure_summary") or {}
    rows = []
    for a in infra:
        where = " ".join(str(x) for x in (f"AS{a['asn']}" if a.get("asn") else None, a.get("as_org")) if x)
        rows.append(
            {
                "ip": a.get("ip"),
                "source": a.get("source"),
                "roles": join_any(a.get("roles")),
                "network": where,
                "country": a.get("country") or "",
                "hosting": a.get("hosting") or "",
                "ports": join_any(a.get("served_ports")) or join_any(a.get("targeted_ports")),
                "first_seen_h": _when(a.get("first_seen")),
                "last_seen_h": _when(a.get("last_seen")),
                "orgs": len(a.get("organizations") or []),
                "cluster": a.get("cluster") or "",
            }
        )
    by_country: dict[str, int] = {}
    by_asn: dict[str, int] = {}
    for a in infra:
        by_country[a.get("country") or "unknown"] = by_country.get(a.get("country") or "unknown", 0) + 1
        key = f"AS{a['asn']} {a.get('as_org') or ''}".strip() if a.get("asn") else "unknown"
        by_asn[key] = by_asn.get(key, 0) + 1
    top = lambda d: sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:15]  # noqa: E731
    return {
        "rows": rows[:limit],
        "country_chart": _svg_counts(top(by_country), "Actor servers by country (where hosted)"),
        "asn_chart": _svg_counts(top(by_asn), "Actor servers by network (ASN)"),
        "clusters": [
            dict(
                c,
                members_h=join_any(c.get("members")),
                ports_h=join_any(c.get("ports")),
                orgs_n=len(c.get("organizations") or []),
            )
            for c in (summary.get("clusters") or [])[:limit]
        ],
        "handoffs": [
            dict(h, from_h=_when(h.get("from_last_seen")), to_h=_when(h.get("to_first_seen")))
            for h in (summary.get("handoffs") or [])[:limit]
        ],
        "clusters_more": max(0, len(summary.get("clusters") or []) - limit),
        "handoffs_more": max(0, len(summary.get("handoffs") or []) - limit),
        "caveat": summary.get("caveat") or "",
    }


def _exposure_view(findings: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for e in findings.get("exposure") or []:
        if not isinstance(e, dict):
            continue
        cves = []
        listed = e.get("cves") or e.get("cve") or []
        for c in [listed] if isinstance(listed, str) else listed:
            if isinstance(c, dict):
                tag = c.get("cve", "")
                if c.get("kev"):
                    tag += " (KEV" + (", ransomware" if (c.get("kev") or {}).get("known_ransomware") else "") + ")"
                if c.get("actor_linked"):
                    tag += " [actor]"
                cves.append(tag)
            else:
                cves.append(str(c))
        out.append(
            {
                "priority": e.get("priority") or "",
                "org_id": e.get("org_id") or "",
                "service": f"{e.get('ip')}:{e.get('port')}" if e.get("port") is not None else str(e.get("ip")),
                "product": " ".join(str(x) for x in (e.get("product"), e.get("version")) if x),
                "cves": ", ".join(cves),
                "activity": e.get("activity") or "",
            }
        )
    return out


# --- view model ------------------------------------------------------------------------------


def build_view(findings: dict[str, Any], *, title: str | None = None) -> dict[str, Any]:
    """Plain data shown by the HTML and Markdown reports (missing lists become empty).

    Tables beyond the organizations show at most the digest's ``rows`` rows each (see
    :mod:`sightline.report.digest`); ``more`` counts the rest.
    """
    rows = int((findings.get("digest") or {}).get("rows") or DEFAULT_BUDGET.rows)
    orgs = [o for o in findings.get("organizations") or [] if isinstance(o, dict)]
    orgs = sorted(
        orgs,
        key=lambda o: org_order(str(o.get("verdict")), int(o.get("confidence") or 0), str(o.get("org_id"))),
    )
    counts = {v: 0 for v in VERDICTS}
    for o in orgs:
        v = str(o.get("verdict") or "none")
        counts[v] = counts.get(v, 0) + 1
    sectors = _crosstab(orgs, "sector")
    countries = _crosstab(orgs, "country")
    org_views = []
    for o in orgs:
        hosts = []
        for h in o.get("hosts") or []:
            evidence = []
            for e in h.get("evidence") or []:
                evidence.append(
                    {
                        **e,
                        "bytes_out_h": _human_bytes(e.get("bytes_out")),
                        "bytes_in_h": _human_bytes(e.get("bytes_in")),
                        "first_seen_h": _when(e.get("first_seen")),
                        "last_seen_h": _when(e.get("last_seen")),
                        "port_h": "any" if e.get("dst_port") is None else str(e.get("dst_port")),
                        "tlp": e.get("tlp") or "",
                    }
                )
            indicators = list(h.get("indicators") or [])
            hosts.append(
                {
                    **h,
                    "indicators": indicators[: DEFAULT_BUDGET.indicators_per_host],
                    "indicators_more": max(0, len(indicators) - DEFAULT_BUDGET.indicators_per_host),
                    "evidence": evidence,
                    "evidence_more": max(0, int(h.get("evidence_total") or len(evidence)) - len(evidence)),
                    "first_seen_h": _when(h.get("first_seen")),
                    "last_seen_h": _when(h.get("last_seen")),
                }
            )
        org_views.append(
            {
                **o,
                "verdict_label": VERDICT_LABELS.get(str(o.get("verdict")), str(o.get("verdict"))),
                "hosts": hosts,
                "hosts_total": int(o.get("hosts_total") or len(hosts)),
                "hosts_more": max(0, int(o.get("hosts_total") or len(hosts)) - len(hosts)),
                "asns": list(o.get("asns") or []),
                "first_seen_h": _when(o.get("first_seen")),
                "last_seen_h": _when(o.get("last_seen")),
            }
        )
    window = findings.get("window") or {}
    tlp = marking(findings.get("tlp")).label  # the level the document was shared at
    breakdown = [
        s
        for s in (
            _breakdown_sentence(sectors, "compromised", "by sector"),
            _breakdown_sentence(countries, "compromised", "by country"),
        )
        if s
    ]
    return {
        "title": title or "sightline: victims of " + (", ".join(findings.get("actors") or []) or "the campaign"),
        "tlp": tlp,
        "tlp_upper": tlp.upper(),
        "tlp_color": _TLP_COLORS[tlp],
        "generated_at": findings.get("generated_at") or "",
        "run_id": findings.get("run_id") or "",
        "version": findings.get("sightline_version") or "",
        "engine": findings.get("engine") or "",
        "anonymized": bool(findings.get("anonymized")),
        "window_start": _when(window.get("start")),
        "window_end": _when(window.get("end")),
        "inputs": findings.get("inputs") or {},
        "actors": list(findings.get("actors") or []),
        "summary_sentence": summary_sentence(orgs),
        "breakdown": breakdown,
        "counts": [
            {"verdict": v, "label": VERDICT_LABELS.get(v, v), "n": n, "color": _COLORS.get(v, "#999")}
            for v, n in counts.items()
        ],
        "verdicts": [{"key": v, "label": VERDICT_LABELS[v]} for v in VERDICTS],
        "sectors": sectors,
        "countries": countries,
        "orgs": org_views,
        "digest": findings.get("digest") or {},
        "more_hint": MORE_HINT,
        "more": {
            k: max(0, len(findings.get(k) or []) - rows)
            for k in ("stale_matches", "suspected_infrastructure", "actor_infrastructure", "exposure")
        },
        "stale_matches": [
            dict(
                s,
                first_seen_h=_when(s.get("first_seen")),
                last_seen_h=_when(s.get("last_seen")),
                valid_from_h=_when(s.get("valid_from")),
                valid_until_h=_when(s.get("valid_until")),
            )
            for s in (findings.get("stale_matches") or [])[:rows]
            if isinstance(s, dict)
        ],
        "suspected": [s for s in (findings.get("suspected_infrastructure") or [])[:rows] if isinstance(s, dict)],
        "exposure": _exposure_view(findings)[:rows],
        "actor": _actor_view(findings, rows),
        "withheld": int(findings.get("tlp_withheld") or 0),
    }


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sightline.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def join_any(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def render_html(findings: dict[str, Any], *, title: str | None = None) -> str:
    """The report page as a string (see :func:`write_html`)."""
    view = build_view(findings, title=title)
    env = _env()
    env.filters["join_any"] = join_any
    env.filters["when"] = _when
    tpl = env.get_template("report.html.j2")
    return tpl.render(
        v=view,
        sector_chart=_svg_stacked_bars(view["sectors"], "Organizations by sector and verdict"),
        country_chart=_svg_stacked_bars(view["countries"], "Organizations by country and verdict"),
        timeline=_svg_timeline(view["orgs"], findings.get("window") or {}),
    )


def write_html(findings: dict[str, Any], path: Path, *, title: str | None = None) -> None:
    """Write the self-contained ``report.html`` for ``findings`` atomically to ``path``.

    Parameters
    ----------
    findings
        A findings document (design.md "findings.json"); unknown keys are ignored and every
        list may be missing or empty.
    path
        Where to write the page.
    title
        Page title; defaults to one naming the actors.
    """
    atomic_write_text(Path(path), render_html(findings, title=title))
