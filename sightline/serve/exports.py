"""Exports of the (TLP-filtered) findings: CSV here; STIX and MISP from :mod:`sightline.report`."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

__all__ = ["CSV_COLUMNS", "safe_cell", "evidence_csv", "stix_export", "misp_export"]

CSV_COLUMNS = (
    "org_id",
    "org_name",
    "sector",
    "country",
    "org_verdict",
    "host",
    "host_verdict",
    "behaviour",
    "indicator",
    "actor",
    "direction",
    "dst_port",
    "flows",
    "bytes_out",
    "bytes_in",
    "first_seen",
    "last_seen",
    "score",
    "tlp",
    "detail",
)


def safe_cell(value: Any) -> str:
    """Text of ``value`` that a spreadsheet will not run as a formula.

    Cells starting with ``= + - @`` (or tab / carriage return, which some spreadsheets strip
    before looking) get a leading apostrophe.  Plain negative numbers stay numbers.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | dict):
        value = json.dumps(value, separators=(",", ":"))
    s = str(value)
    if s and s[0] in "=+-@\t\r":
        return "'" + s
    return s


def evidence_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text (header + one line per evidence row) with injection-safe cells."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([safe_cell(r.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def stix_export(findings: dict[str, Any]) -> dict[str, Any] | None:
    """A STIX 2.1 bundle of ``findings`` via the report area, or None if it is not installed."""
    try:
        from ..report.stix import to_stix_bundle
    except ImportError:
        return None
    bundle = to_stix_bundle(findings)
    if hasattr(bundle, "serialize"):
        return json.loads(bundle.serialize())
    if isinstance(bundle, str | bytes):
        return json.loads(bundle)
    return dict(bundle)


def misp_export(findings: dict[str, Any]) -> dict[str, Any] | None:
    """A MISP event of ``findings`` via the report area, or None if it is not installed."""
    try:
        from ..report import render
    except ImportError:
        return None
    out = render(findings, "misp")
    if isinstance(out, str | bytes):
        return json.loads(out)
    if hasattr(out, "to_json"):
        return json.loads(out.to_json())
    return dict(out)
