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


def stix_export(findings: dict[str, Any], indicators: Any = None) -> dict[str, Any]:
    """A STIX 2.1 bundle of a user's view (``findings`` and ``indicators`` as the sharing policy
    gave them to that user: nothing is filtered here)."""
    from ..report.stix import to_stix_bundle

    return dict(to_stix_bundle(findings, indicators=indicators))


def misp_export(findings: dict[str, Any], indicators: Any = None) -> dict[str, Any]:
    """A MISP event of a user's view (already shared, as for :func:`stix_export`)."""
    from ..report.misp import to_misp_event

    return dict(json.loads(to_misp_event(findings, indicators=indicators).to_json()))
