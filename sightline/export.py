"""Machine-readable exports of a findings document: NDJSON, CSV, Parquet.

Public API::

    export_table(doc, what) -> pyarrow.Table      # what: findings | evidence | stale
    write_export(table, fmt, out) -> Path | None   # fmt: ndjson | csv | parquet; out None = stdout
    EXPORT_SCHEMAS                                  # the stable column lists (docs/export.md)

The column lists are a contract (docs/export.md): columns are only ever appended.  Times are
UTC; Parquet stores them as ``timestamp[us, UTC]``, NDJSON and CSV as ``YYYY-MM-DDTHH:MM:SSZ``.
CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR)
are prefixed with a single quote.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .errors import SightlineError
from .store import atomic_write_bytes, atomic_write_parquet

TS = pa.timestamp("us", tz="UTC")
FORMATS = ("ndjson", "csv", "parquet")
WHATS = ("findings", "evidence", "stale")

_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()

EXPORT_SCHEMAS: dict[str, pa.Schema] = {
    "findings": pa.schema(
        [
            ("org_id", _S),
            ("name", _S),
            ("sector", _S),
            ("country", _S),
            ("source", _S),
            ("verdict", _S),
            ("confidence", _I),
            ("tlp", _S),
            ("first_seen", TS),
            ("last_seen", TS),
            ("hosts", _I),
            ("compromised_hosts", _I),
            ("indicators", _S),
            ("asns", _S),
            ("run_id", _S),
        ]
    ),
    "evidence": pa.schema(
        [
            ("status", _S),
            ("rule", _S),
            ("reason", _S),
            ("org_id", _S),
            ("org_name", _S),
            ("sector", _S),
            ("country", _S),
            ("org_verdict", _S),
            ("org_confidence", _I),
            ("host", _S),
            ("host_verdict", _S),
            ("host_confidence", _I),
            ("behaviour", _S),
            ("direction", _S),
            ("indicator", _S),
            ("actor_ip", _S),
            ("actor", _S),
            ("indicator_confidence", _I),
            ("tlp", _S),
            ("dst_port", _I),
            ("flows", _I),
            ("bytes_out", _I),
            ("bytes_in", _I),
            ("first_seen", TS),
            ("last_seen", TS),
            ("score", _F),
            ("confidence", _I),
            ("decisive", _B),
            ("shared_infrastructure", _S),
            ("allowlisted", _S),
            ("duplicates", _I),
            ("detail", _S),
            ("run_id", _S),
            ("guards", _S),
        ]
    ),
    "stale": pa.schema(
        [
            ("org_id", _S),
            ("host", _S),
            ("indicator", _S),
            ("actor_ip", _S),
            ("flows", _I),
            ("first_seen", TS),
            ("last_seen", TS),
            ("valid_from", TS),
            ("valid_until", TS),
            ("tlp", _S),
            ("suppressed_by", _S),
            ("run_id", _S),
        ]
    ),
}

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def _ts(v: Any) -> datetime | None:
    if v in (None, ""):
        return None
    if isinstance(v, datetime):
        return v
    try:
        return datetime.fromisoformat(str(v).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None  # a malformed time is exported as empty rather than sinking the export


def _evidence_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for o in doc.get("organizations", []):
        for h in o.get("hosts", []):
            for e in h.get("evidence", []):
                rows.append(
                    dict(
                        e,
                        guards=";".join(e.get("guards") or []) or None,
                        status="active",
                        rule=None,
                        reason=None,
                        org_id=o["org_id"],
                        org_name=o.get("name"),
                        sector=o.get("sector"),
                        country=o.get("country"),
                        org_verdict=o.get("verdict"),
                        org_confidence=o.get("confidence"),
                        host=h["ip"],
                        host_verdict=h.get("verdict"),
                        host_confidence=h.get("confidence"),
                    )
                )
    for s in doc.get("suppressed", []):
        e = s.get("evidence") or {}
        rows.append(
            dict(
                e,
                guards=";".join(e.get("guards") or []) or None,
                status="suppressed",
                rule=s.get("rule"),
                reason=s.get("reason"),
                org_id=s.get("org_id"),
                org_name=s.get("name"),
                host=s.get("host"),
            )
        )
    return rows


def _finding_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for o in doc.get("organizations", []):
        hosts = o.get("hosts", [])
        rows.append(
            dict(
                o,
                hosts=len(hosts),
                compromised_hosts=sum(1 for h in hosts if h.get("verdict") == "compromised"),
                indicators=";".join(sorted({i for h in hosts for i in h.get("indicators", [])})) or None,
                asns=";".join(str(a) for a in o.get("asns", [])) or None,
            )
        )
    return rows


def export_table(doc: dict[str, Any], what: str = "evidence") -> pa.Table:
    """One table per export kind, with the stable schema of :data:`EXPORT_SCHEMAS`."""
    if what not in WHATS:
        raise SightlineError(f"unknown export {what!r}", hint=f"use --what {' | '.join(WHATS)}")
    schema = EXPORT_SCHEMAS[what]
    src = {"findings": _finding_rows, "evidence": _evidence_rows, "stale": lambda d: list(d.get("stale_matches", []))}[
        what
    ](doc)
    run_id = doc.get("run_id")
    for r in src:
        r.setdefault("run_id", run_id)
    arrays = []
    for f in schema:
        vals = [r.get(f.name) for r in src]
        try:  # columnar conversion; per-cell coercion only when a value has an unexpected type
            arr = _ts_array(vals) if f.type == TS else pa.array(vals, f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            arr = pa.array([_coerce(v, f.type) for v in vals], f.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


def _ts_array(vals: list[Any]) -> pa.Array:
    text = pa.array(vals, pa.string())
    parsed = pc.strptime(text, format="%Y-%m-%dT%H:%M:%SZ", unit="us", error_is_null=True)
    if parsed.null_count != text.null_count:
        raise ValueError("times not in YYYY-MM-DDTHH:MM:SSZ form")
    return parsed.cast(TS)


def _coerce(v: Any, t: pa.DataType) -> Any:
    if v is None:
        return None
    if t == TS:
        return _ts(v)
    try:
        if pa.types.is_integer(t):
            return int(v)
        if pa.types.is_floating(t):
            return float(v)
        if pa.types.is_boolean(t):
            return bool(v)
    except (TypeError, ValueError):
        return None  # a value of the wrong kind is exported as missing rather than sinking the export
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def neutralize(cell: str) -> str:
    """Make a CSV cell inert in spreadsheets (formula injection)."""
    return "'" + cell if cell.startswith(_DANGEROUS) else cell


def _text(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return v


def write_export(table: pa.Table, fmt: str, out: Path | None) -> Path | None:
    """Write ``table`` as NDJSON, CSV (header row, injection-safe) or Parquet.

    ``out`` None writes NDJSON/CSV to standard output.  Files are written atomically.
    """
    if fmt not in FORMATS:
        raise SightlineError(f"unknown export format {fmt!r}", hint=f"use --format {' | '.join(FORMATS)}")
    if fmt == "parquet":
        if out is None:
            raise SightlineError("parquet needs a file", hint="add --out FILE.parquet")
        atomic_write_parquet(out, table)
        return out
    # times as text once, columnar, instead of per cell
    for i, f in enumerate(table.schema):
        if f.type == TS:
            secs = table.column(i).cast(pa.timestamp("s", tz="UTC"), safe=False)  # findings times are whole seconds
            table = table.set_column(i, f.name, pc.strftime(secs, format="%Y-%m-%dT%H:%M:%SZ"))
    rows = table.to_pylist()
    buf = io.StringIO()
    if fmt == "ndjson":
        for r in rows:
            buf.write(json.dumps({k: _text(v) for k, v in r.items()}, ensure_ascii=False) + "\n")
    else:
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(table.column_names)
        for r in rows:
            # a bare CR is left unquoted by csv.writer(lineterminator="\n"), yet spreadsheets break
            # the row there: the text after it would be a new, live cell; store it as LF (quoted)
            w.writerow(
                [
                    ""
                    if v is None
                    else neutralize(v).replace("\r", "\n")
                    if isinstance(v, str)
                    else ("true" if v else "false")
                    if isinstance(v, bool)
                    else _text(v)
                    for v in r.values()
                ]
            )
    if out is None:
        sys.stdout.write(buf.getvalue())
        return None
    atomic_write_bytes(out, buf.getvalue().encode("utf-8"))
    return out


__all__ = ["EXPORT_SCHEMAS", "FORMATS", "WHATS", "export_table", "write_export", "neutralize"]
