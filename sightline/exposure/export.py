"""CSV export of exposure entries for patch tickets.

Cells are neutralized against formula injection: a scanned banner or hostname is attacker
controlled, and a spreadsheet would run ``=HYPERLINK(...)`` / ``+cmd|...`` found in it.  Any
cell starting with ``= + - @``, tab or carriage return gets a leading apostrophe (OWASP
guidance).  One row per service x CVE, so a ticket system can import it directly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..store import atomic_write_text

CSV_COLUMNS = (
    "priority_rank",
    "priority",
    "org_id",
    "ip",
    "port",
    "proto",
    "hostname",
    "vendor",
    "product",
    "version",
    "cpe",
    "cve",
    "actor_linked",
    "in_kev",
    "kev_vendor_project",
    "kev_product",
    "kev_date_added",
    "kev_due_date",
    "known_ransomware",
    "activity",
)

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """Text for one CSV cell, with spreadsheet formulas neutralized."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if text.startswith(_DANGEROUS):
        text = "'" + text
    # to_csv writes "\n" line ends, so csv leaves a bare CR unquoted; spreadsheets break the
    # row there and the rest (e.g. "=cmd...") would become a new, live cell
    return text.replace("\r\n", "\n").replace("\r", "\n")


def csv_rows(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Flatten exposure entries to one row per service x CVE (cells neutralized)."""
    rows = []
    for e in entries:
        for c in e.get("cves") or [{"cve": None, "kev": None, "actor_linked": False}]:
            kev = c.get("kev") or {}
            raw = {
                "priority_rank": e.get("priority_rank"),
                "priority": e.get("priority"),
                "org_id": e.get("org_id"),
                "ip": e.get("ip"),
                "port": e.get("port"),
                "proto": e.get("proto"),
                "hostname": e.get("hostname"),
                "vendor": e.get("vendor"),
                "product": e.get("product"),
                "version": e.get("version"),
                "cpe": e.get("cpe"),
                "cve": c.get("cve"),
                "actor_linked": bool(c.get("actor_linked")),
                "in_kev": bool(c.get("kev")),
                "kev_vendor_project": kev.get("vendor_project"),
                "kev_product": kev.get("product"),
                "kev_date_added": kev.get("date_added"),
                "kev_due_date": kev.get("due_date"),
                "known_ransomware": kev.get("known_ransomware") if kev else None,
                "activity": e.get("activity"),
            }
            rows.append({k: safe_cell(raw[k]) for k in CSV_COLUMNS})
    return rows


def to_csv(entries: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Write exposure entries as CSV (atomically); returns the number of data rows."""
    rows = csv_rows(entries)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(Path(path), buf.getvalue())
    return len(rows)


__all__ = ["CSV_COLUMNS", "safe_cell", "csv_rows", "to_csv"]
