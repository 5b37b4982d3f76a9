"""Exports of the (TLP-filtered) findings: CSV here; STIX and MISP from :mod:`sightline.report`."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
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


def _visible_table(table: Any, clearance: str) -> Any:
    """Rows of the indicator table at or below ``clearance`` (None stays None)."""
    if table is None or "tlp" not in table.column_names:
        return None
    import pyarrow as pa

    from .access import tlp_rank

    limit = tlp_rank(clearance, "clear")
    keep = [tlp_rank(t) <= limit for t in table.column("tlp").to_pylist()]
    return table.filter(pa.array(keep, type=pa.bool_()))


def stix_export(findings: dict[str, Any], indicators: Any = None, *, clearance: str = "clear") -> dict[str, Any] | None:
    """A STIX 2.1 bundle of ``findings`` via the report area, or None if it is not installed.

    ``indicators`` (INDICATOR_SCHEMA table) enriches the bundle; rows above ``clearance``
    are removed first so hidden intel cannot leak through the export.
    """
    try:
        from ..report.stix import to_stix_bundle
    except ImportError:
        return None
    return dict(to_stix_bundle(findings, indicators=_visible_table(indicators, clearance)))


def misp_export(findings: dict[str, Any], indicators: Any = None, *, clearance: str = "clear") -> dict[str, Any] | None:
    """A MISP event of ``findings`` via the report area, or None if it is not installed."""
    try:
        from ..report import FORMATS, render
    except ImportError:
        return None
    if "misp" not in FORMATS:
        return None
    with tempfile.TemporaryDirectory(prefix="sightline-misp-") as tmp:
        try:
            paths = render(findings, "misp", Path(tmp) / "event.json", indicators=_visible_table(indicators, clearance))
        except ImportError:  # report.misp not written yet
            return None
        return dict(json.loads(Path(paths[0]).read_text("utf-8")))
