"""Filtering, sorting and paging of (already TLP-filtered) findings for pages and the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .access import verdict_rank

__all__ = ["Filters", "parse_time", "filter_orgs", "sort_orgs", "evidence_rows", "page", "ORG_SORT_KEYS"]

ORG_SORT_KEYS = ("name", "org_id", "sector", "country", "verdict", "confidence", "hosts", "first_seen", "last_seen")


def parse_time(value: Any) -> dt.datetime | None:
    """Parse an ISO-8601 time (``Z`` or offset; naive means UTC); None if unparseable."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        t = value
    else:
        try:
            t = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Filters:
    """Filters shared by pages and API (all optional; empty matches everything)."""

    verdict: str | None = None
    sector: str | None = None
    country: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    q: str | None = None

    def overlaps(self, item: dict[str, Any]) -> bool:
        """True if ``item``'s [first_seen, last_seen] meets the time window."""
        if self.since is not None:
            last = parse_time(item.get("last_seen")) or parse_time(item.get("first_seen"))
            if last is None or last < self.since:
                return False
        if self.until is not None:
            first = parse_time(item.get("first_seen")) or parse_time(item.get("last_seen"))
            if first is None or first > self.until:
                return False
        return True


def _eq(a: Any, b: str | None) -> bool:
    return b is None or b == "" or str(a or "").lower() == b.lower()


def filter_orgs(orgs: Iterable[dict[str, Any]], f: Filters) -> list[dict[str, Any]]:
    """Organizations matching every filter in ``f``."""
    q = (f.q or "").strip().lower()
    out = []
    for o in orgs:
        if not (
            _eq(o.get("verdict"), f.verdict) and _eq(o.get("sector"), f.sector) and _eq(o.get("country"), f.country)
        ):
            continue
        if not f.overlaps(o):
            continue
        if (
            q
            and q
            not in f"{o.get('name', '')} {o.get('org_id', '')} {' '.join(str(h.get('ip')) for h in o.get('hosts') or [])}".lower()
        ):
            continue
        out.append(o)
    return out


def sort_orgs(orgs: list[dict[str, Any]], key: str | None, desc: bool) -> list[dict[str, Any]]:
    """Sort organizations by a column of the organizations table (default: strongest first)."""
    if key not in ORG_SORT_KEYS:
        return sorted(
            orgs, key=lambda o: (-verdict_rank(o.get("verdict")), -(o.get("confidence") or 0), str(o.get("name") or ""))
        )

    def k(o: dict[str, Any]) -> Any:
        if key == "verdict":
            return (verdict_rank(o.get("verdict")), o.get("confidence") or 0)
        if key == "confidence":
            return o.get("confidence") or 0
        if key == "hosts":
            return len(o.get("hosts") or [])
        return str(o.get(key) or "").lower()

    return sorted(orgs, key=k, reverse=desc)


def evidence_rows(orgs: Iterable[dict[str, Any]], f: Filters, behaviour: str | None = None) -> list[dict[str, Any]]:
    """One flat row per evidence item (with its organization and host), filtered."""
    rows = []
    for o in filter_orgs(orgs, Filters(verdict=f.verdict, sector=f.sector, country=f.country, q=f.q)):
        for h in o.get("hosts") or []:
            for e in h.get("evidence") or []:
                if not _eq(e.get("behaviour"), behaviour) or not f.overlaps(e):
                    continue
                row = {
                    "org_id": o.get("org_id"),
                    "org_name": o.get("name"),
                    "sector": o.get("sector"),
                    "country": o.get("country"),
                    "org_verdict": o.get("verdict"),
                    "host": h.get("ip"),
                    "host_verdict": h.get("verdict"),
                }
                row.update(e)
                rows.append(row)
    rows.sort(key=lambda r: (str(r.get("first_seen") or ""), str(r.get("org_id") or ""), str(r.get("host") or "")))
    return rows


def page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    """A page of ``items``: ``{"total", "limit", "offset", "items"}``."""
    return {"total": len(items), "limit": limit, "offset": offset, "items": items[offset : offset + limit]}
