"""Suricata ``eve.json`` (format ``suricata_eve``): ``flow`` and ``netflow`` events.

Mapping, declared once in :data:`SURICATA_FIELDS`.  ``flow`` events are bidirectional
(``*_toserver`` -> ``*_out``, ``*_toclient`` -> ``*_in``); ``netflow`` events are one
direction each (``bytes_in``/``packets_in`` null).  Byte counts are Suricata's (IP level).
``conn_state`` comes from ``tcp.tcp_flags_ts`` / ``tcp.tcp_flags_tc`` (hex) through
:func:`sightline.ingest.tcpstate.conn_state_biflow`; for ``netflow`` events from
``tcp.tcp_flags`` (unidirectional mapping).  ``flow`` events also give ``history``: Zeek's
letters for the flags each direction sent (:func:`sightline.ingest.tcpstate.history_biflow`;
no ``S`` = the originator's SYN was not seen); ``netflow`` events leave it null.  ``app_proto`` becomes ``service`` (except
``failed``); the eve ``host`` field (sensor name) becomes ``sensor``.

Other event types (``alert``, ``dns``, ``http``, ...) are not flows and are skipped; the
number of ``alert`` events is counted in :data:`LAST_STATS` (not stored in the flow table,
whose schema has no place for it).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from .base import Format, ReaderContext, register_format
from .normalize import normalize_text_columns
from .tcpstate import conn_state_biflow, conn_state_uniflow, history_biflow
from .zeek import _lines_chunks, blank_to_null

SURICATA_FIELDS: dict[str, str] = {
    "src_ip": "src_ip",
    "dest_ip": "dst_ip",
    "src_port": "src_port",
    "dest_port": "dst_port",
    "proto": "proto",
    "app_proto": "service",
    "host": "sensor",
    "flow.start": "ts",
    "flow.bytes_toserver": "bytes_out",
    "flow.bytes_toclient": "bytes_in",
    "flow.pkts_toserver": "packets_out",
    "flow.pkts_toclient": "packets_in",
    "netflow.start": "ts",
    "netflow.bytes": "bytes_out",
    "netflow.pkts": "packets_out",
}
"""eve field (dotted path) -> flow schema column."""

_S = pa.string()
_I = pa.int64()
EVE_SCHEMA = pa.schema(
    [
        ("event_type", _S),
        ("src_ip", _S),
        ("dest_ip", _S),
        ("src_port", _I),
        ("dest_port", _I),
        ("proto", _S),
        ("app_proto", _S),
        ("host", _S),
        ("timestamp", _S),
        (
            "flow",
            pa.struct(
                [
                    ("pkts_toserver", _I),
                    ("pkts_toclient", _I),
                    ("bytes_toserver", _I),
                    ("bytes_toclient", _I),
                    ("start", _S),
                    ("end", _S),
                ]
            ),
        ),
        ("netflow", pa.struct([("pkts", _I), ("bytes", _I), ("start", _S), ("end", _S)])),
        ("tcp", pa.struct([("tcp_flags", _S), ("tcp_flags_ts", _S), ("tcp_flags_tc", _S)])),
    ]
)
"""The part of an eve record we read; everything else is ignored by the parser."""

LAST_STATS: dict[str, int] = {}


def _iso_to_epoch(col: pa.Array) -> pa.Array:
    """ISO 8601 with offset (``2021-06-06T17:34:31.140759+0200``) -> epoch seconds (float)."""
    b = pc.replace_substring_regex(col, r"\.[0-9]+", "")
    b = pc.replace_substring_regex(b, r"Z$", "+0000")
    b = pc.replace_substring_regex(b, r"([+-][0-9][0-9]):([0-9][0-9])$", r"\1\2")
    whole = pc.strptime(b, format="%Y-%m-%dT%H:%M:%S%z", unit="s", error_is_null=True)
    secs = pc.cast(pc.cast(whole, pa.int64()), pa.float64())
    frac = pc.struct_field(pc.extract_regex(col, r"(?P<f>\.[0-9]+)"), [0])
    frac = pc.cast(pc.binary_join_element_wise("0", frac, ""), pa.float64())
    out = pc.add(secs, pc.fill_null(frac, 0.0))
    # unparseable text stays as it is so that normalize quarantines it with its reason
    # (blank text as null: "missing ts", instead of failing normalize's cast)
    return blank_to_null(pc.if_else(pc.is_null(out), col, pc.cast(out, pa.string())))


def _hex_flags(col: pa.Array) -> np.ndarray:
    text = pc.fill_null(col, "0")
    ok = pc.match_substring_regex(text, r"^[0-9a-fA-F]{1,2}$")
    text = pc.if_else(ok, text, "0")
    # two hex digits -> int without a Python loop: value of each digit via a lookup table
    padded = pc.utf8_lpad(pc.utf8_lower(text), 2, "0")
    if len(padded) == 0:
        return np.zeros(0, dtype=np.int64)
    padded = pa.concat_arrays([padded])  # fresh buffers: every value is exactly 2 bytes, back to back
    raw = np.frombuffer(padded.buffers()[2], dtype=np.uint8)
    lut = np.zeros(256, dtype=np.int64)
    lut[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
    lut[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
    pairs = lut[raw[: 2 * len(text)]].reshape(-1, 2)
    return pairs[:, 0] * 16 + pairs[:, 1]


def _table(data: bytes) -> pa.Table:
    t = _read(data)
    t.validate(full=True)  # invalid UTF-8 in strings -> ArrowInvalid -> the line is quarantined
    return t


def _read(data: bytes) -> pa.Table:
    return pajson.read_json(
        io.BytesIO(data),
        read_options=pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20)),
        parse_options=pajson.ParseOptions(
            explicit_schema=EVE_SCHEMA, unexpected_field_behavior="ignore", newlines_in_values=False
        ),
    )


def _one(line: bytes) -> pa.Table | None:
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(rec, dict):
        return None

    def pick(obj: Any, schema: pa.StructType | pa.Schema) -> dict[str, Any]:
        out = {}
        for f in schema:
            v = obj.get(f.name) if isinstance(obj, dict) else None
            if pa.types.is_struct(f.type):
                v = pick(v, f.type) if isinstance(v, dict) else None
            elif v is not None and pa.types.is_integer(f.type):
                v = v if isinstance(v, int) and not isinstance(v, bool) else None
            elif v is not None:
                v = str(v)
            out[f.name] = v
        return out

    try:
        return pa.Table.from_pylist([pick(rec, EVE_SCHEMA)], schema=EVE_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None


def _parse_lines(lines: list[bytes], first: int, ctx: ReaderContext) -> list[tuple[pa.Table, int]]:
    try:
        return [(_table(b"\n".join(lines) + b"\n"), first)]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as e:
        if len(lines) == 1:
            if lines[0].strip():
                one = _one(lines[0])
                if one is not None:
                    return [(one, first)]
                ctx.quarantine(first, f"bad JSON record: {str(e).splitlines()[0][:200]}", lines[0])
            return []
        mid = len(lines) // 2
        return _parse_lines(lines[:mid], first, ctx) + _parse_lines(lines[mid:], first + mid, ctx)


def read_suricata_eve(
    ctx: ReaderContext,
    extra: Callable[[list[bytes], int], Iterator[pa.RecordBatch]] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Flows from Suricata eve.json ``flow`` / ``netflow`` events.

    ``extra(lines, first_line)`` is called on each block of lines after its flows, so
    another reader (dns/tls names) can take its events from the same single pass.
    """
    line_no = 1
    alerts = 0
    for chunk in _lines_chunks(ctx.stream, 8 << 20):
        lines = chunk.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for table, first in _parse_lines(lines, line_no, ctx):
            # line numbers are exact unless the block had blank lines (the parser skips them)
            table = table.append_column("__line", pa.array(np.arange(first, first + table.num_rows), pa.int64()))
            et = table.column("event_type")
            alerts += pc.sum(pc.cast(pc.equal(et, "alert"), pa.int64())).as_py() or 0
            for kind in ("flow", "netflow"):
                sub = table.filter(pc.fill_null(pc.equal(et, kind), False))
                if sub.num_rows:
                    yield from _flows(sub, kind, ctx)
        if extra is not None:
            yield from extra(lines, line_no)
        line_no += len(lines)
    LAST_STATS.clear()
    LAST_STATS.update({"alert_events": alerts})


def _flows(t: pa.Table, kind: str, ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
    n = t.num_rows
    nested = t.column(kind).combine_chunks()
    tcp = t.column("tcp").combine_chunks()
    cols: dict[str, pa.Array] = {}
    for path, role in SURICATA_FIELDS.items():
        if "." in path:
            top, sub = path.split(".")
            if top != kind:
                continue
            cols[role] = pc.struct_field(nested, [nested.type.get_field_index(sub)])
        else:
            cols[role] = t.column(path).combine_chunks()
    start = cols["ts"]
    ts_fallback = t.column("timestamp").combine_chunks()
    cols["ts"] = _iso_to_epoch(pc.coalesce(start, ts_fallback))
    end = _iso_to_epoch(pc.coalesce(pc.struct_field(nested, [nested.type.get_field_index("end")]), start, ts_fallback))
    # per row: a duration only where both ends are numbers (a bad time on one row must not
    # cost the other rows their durations; the bad row itself is quarantined by its ts)
    num = r"^[0-9]+(\.[0-9]*)?$"
    ok = pc.and_(
        pc.fill_null(pc.match_substring_regex(end, num), False),
        pc.fill_null(pc.match_substring_regex(cols["ts"], num), False),
    )
    safe_end = pc.if_else(ok, end, pa.scalar("0", end.type))
    safe_start = pc.if_else(ok, cols["ts"], pa.scalar("0", cols["ts"].type))
    dur = pc.subtract(pc.cast(safe_end, pa.float64()), pc.cast(safe_start, pa.float64()))
    cols["duration_s"] = pc.if_else(ok, pc.round(pc.max_element_wise(dur, 0.0), 6), pa.scalar(None, pa.float64()))
    cols["service"] = pc.if_else(
        pc.fill_null(pc.equal(cols["service"], "failed"), False), pa.scalar(None, pa.string()), cols["service"]
    )
    is_tcp = np.asarray(
        pc.fill_null(pc.equal(pc.utf8_lower(cols["proto"]), "tcp"), False).to_numpy(zero_copy_only=False), dtype=bool
    )
    if kind == "flow":
        ts_flags = _hex_flags(pc.struct_field(tcp, [1]))
        tc_flags = _hex_flags(pc.struct_field(tcp, [2]))
        pin = np.asarray(pc.fill_null(cols["packets_in"], 0).to_numpy(zero_copy_only=False))
        cols["conn_state"] = conn_state_biflow(is_tcp, ts_flags, tc_flags, pin)
        cols["history"] = history_biflow(is_tcp, ts_flags, tc_flags, (ts_flags | tc_flags) != 0)
    else:
        cols["conn_state"] = conn_state_uniflow(is_tcp, _hex_flags(pc.struct_field(tcp, [0])))
    proto = pc.utf8_lower(cols["proto"])
    cols["proto"] = pc.if_else(pc.fill_null(pc.equal(proto, "ipv6-icmp"), False), "icmp", proto)
    sensor = ctx.sensor
    norm = normalize_text_columns(cols, n, source_format="suricata_eve", source_file=str(ctx.path), sensor=sensor)
    for i, reason in zip(norm.bad_index.tolist(), norm.bad_reason):
        ctx.quarantine(
            t.column("__line")[i].as_py(),
            f"{kind} event: {reason}",
            json.dumps(t.drop(["__line"]).slice(i, 1).to_pylist()[0], default=str),
        )
    yield from norm.table.to_batches()


def sniff_suricata_eve(head: bytes) -> bool:
    first = head.lstrip().split(b"\n", 1)[0]
    return first.startswith(b"{") and b'"event_type"' in first and (b'"dest_ip"' in first or b'"timestamp"' in first)


register_format(
    Format("suricata_eve", sniff_suricata_eve, read_suricata_eve, "Suricata eve.json (flow/netflow events)")
)

__all__ = ["SURICATA_FIELDS", "EVE_SCHEMA", "read_suricata_eve"]
