"""Inline SVG charts (no scripts, no external assets; colours come from the stylesheet)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from markupsafe import Markup, escape

from .query import parse_time

__all__ = ["stacked_bars", "activity_timeline", "evidence_gantt", "VERDICT_ORDER"]

VERDICT_ORDER = ("compromised", "exploitation_attempt", "reconnaissance")
_MAX_DAYS = 120


def _cls(verdict: str) -> str:
    return "v-" + (verdict if verdict in VERDICT_ORDER else "other")


def stacked_bars(rows: dict[str, dict[str, int]], *, title: str, top: int = 12) -> Markup:
    """Horizontal stacked bars: one per key of ``rows`` (e.g. sector), split by verdict."""
    items = sorted(rows.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:top]
    if not items:
        return Markup('<p class="muted">No data.</p>')
    biggest = max(sum(v.values()) for _, v in items) or 1
    bar_h, gap, label_w, width = 18, 6, 140, 460
    height = len(items) * (bar_h + gap) + gap
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, counts) in enumerate(items):
        y = gap + i * (bar_h + gap)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" class="lbl">{escape(str(label)[:22])}</text>'
        )
        x = float(label_w)
        for verdict in (*VERDICT_ORDER, *sorted(set(counts) - set(VERDICT_ORDER))):
            n = int(counts.get(verdict, 0))
            if n <= 0:
                continue
            w = (width - label_w - 40) * n / biggest
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" class="{_cls(verdict)}">'
                f"<title>{escape(str(label))}: {n} {escape(verdict)}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 13}" class="num">{sum(counts.values())}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def activity_timeline(orgs: Iterable[dict[str, Any]], *, title: str = "Organizations active per day") -> Markup:
    """Per-day stacked columns: how many organizations of each verdict were active that day."""
    spans = []
    for o in orgs:
        a, b = parse_time(o.get("first_seen")), parse_time(o.get("last_seen"))
        if a is None and b is None:
            continue
        a, b = a or b, b or a
        assert a is not None and b is not None
        spans.append((a.date(), max(a, b).date(), str(o.get("verdict"))))
    if not spans:
        return Markup('<p class="muted">No dated activity.</p>')
    start = min(s[0] for s in spans)
    end = min(max(s[1] for s in spans), start + dt.timedelta(days=_MAX_DAYS - 1))
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    counts = [{v: 0 for v in VERDICT_ORDER} for _ in days]
    for a, b, v in spans:
        for i, d in enumerate(days):
            if a <= d <= b:
                counts[i][v] = counts[i].get(v, 0) + 1
    biggest = max(sum(c.values()) for c in counts) or 1
    width, height, pad = 640, 160, 24
    col_w = (width - 2 * pad) / len(days)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height + 20}" width="{width}" height="{height + 20}" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (d, c) in enumerate(zip(days, counts, strict=True)):
        x = pad + i * col_w
        y = float(height)
        for v in VERDICT_ORDER:
            n = c.get(v, 0)
            if not n:
                continue
            h = (height - pad) * n / biggest
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(col_w - 1, 1):.1f}" height="{h:.1f}" class="{_cls(v)}">'
                f"<title>{d.isoformat()}: {n} {v}</title></rect>"
            )
    parts.append(f'<text x="{pad}" y="{height + 14}" class="lbl">{start.isoformat()}</text>')
    parts.append(f'<text x="{width - pad}" y="{height + 14}" text-anchor="end" class="lbl">{end.isoformat()}</text>')
    parts.append(f'<text x="{pad}" y="14" class="lbl">max {biggest}</text></svg>')
    return Markup("".join(parts))


def evidence_gantt(org: dict[str, Any], *, title: str = "Evidence timeline") -> Markup:
    """One bar per evidence row of an organization, from first to last seen."""
    rows = []
    for h in org.get("hosts") or []:
        for e in h.get("evidence") or []:
            a, b = parse_time(e.get("first_seen")), parse_time(e.get("last_seen"))
            if a is None and b is None:
                continue
            a, b = a or b, b or a
            assert a is not None and b is not None
            rows.append((a, max(a, b), f"{h.get('ip')} {e.get('behaviour', '')}", str(h.get("verdict"))))
    if not rows:
        return Markup('<p class="muted">No dated evidence.</p>')
    rows.sort(key=lambda r: r[0])
    rows = rows[:60]
    t0, t1 = min(r[0] for r in rows), max(r[1] for r in rows)
    span = max((t1 - t0).total_seconds(), 1.0)
    bar_h, gap, label_w, width = 14, 4, 220, 680
    height = len(rows) * (bar_h + gap) + 24
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (a, b, label, verdict) in enumerate(rows):
        y = 4 + i * (bar_h + gap)
        x = label_w + (width - label_w - 10) * (a - t0).total_seconds() / span
        w = max((width - label_w - 10) * (b - a).total_seconds() / span, 2.0)
        parts.append(f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end" class="lbl">{escape(label[:34])}</text>')
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" class="{_cls(verdict)}">'
            f"<title>{escape(label)}: {a.isoformat()} to {b.isoformat()}</title></rect>"
        )
    parts.append(f'<text x="{label_w}" y="{height - 6}" class="lbl">{t0.isoformat()}</text>')
    parts.append(f'<text x="{width - 10}" y="{height - 6}" text-anchor="end" class="lbl">{t1.isoformat()}</text></svg>')
    return Markup("".join(parts))
