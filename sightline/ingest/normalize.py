"""Turn text columns (as most log formats carry them) into flow-schema columns, vectorized.

Readers map their own field names to the canonical names below and call
:func:`normalize_text_columns`; rows with an unusable value come back in ``bad`` with the
reason, for quarantine.  Good rows are never dropped because a neighbour is bad.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..net import parse_ips
from ..schema import FLOW_SCHEMA

MAX_TS_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z
MIN_TS_US = 0  # 1970-01-01: flows before the epoch are not real telemetry


@dataclass
class Normalized:
    table: pa.Table  # good rows, FLOW_SCHEMA
    bad_index: np.ndarray  # indices of bad rows in the input
    bad_reason: list[str]


def _nullify_dash(arr: pa.Array) -> pa.Array:
    """Zeek writes ``-`` for unset and ``(empty)`` for empty; both become null."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return arr
    is_unset = pc.is_in(arr, value_set=pa.array(["-", "(empty)", ""], arr.type))
    if not pc.any(is_unset).as_py():
        return arr
    return pc.if_else(is_unset, pa.scalar(None, arr.type), arr)


def _to_number(arr: pa.Array, typ: pa.DataType, name: str, bad: np.ndarray, reasons: dict[int, str]) -> pa.Array:
    """Cast text to a number; values that do not parse mark the row bad."""
    if arr.type == typ:
        return arr
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = _nullify_dash(arr)
        try:  # the common case: every value converts
            return pc.cast(arr, typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        if pa.types.is_integer(typ):
            ok = pc.match_substring_regex(arr, r"^\s*[0-9]{1,18}\s*$")
        else:
            ok = pc.match_substring_regex(arr, r"^\s*-?[0-9]{0,18}(\.[0-9]*)?([eE][-+]?[0-9]+)?\s*$")
        okn = np.asarray(pc.fill_null(ok, True).to_numpy(zero_copy_only=False), dtype=bool)
        badrows = np.nonzero(~okn)[0]
        for i in badrows.tolist():
            reasons.setdefault(i, f"bad {name}")
        bad[badrows] = True
        arr = pc.if_else(pa.array(okn), arr, pa.scalar(None, arr.type))
        return pc.cast(pc.utf8_trim_whitespace(arr), typ)
    if pa.types.is_floating(arr.type) and pa.types.is_integer(typ):
        # JSON numbers arrive as floats: NaN, infinities and values beyond 64 bits cannot be
        # counts or ports; the row is bad (as for text), not the whole block
        ok = pc.and_(pc.is_finite(arr), pc.less(pc.abs(arr), 9.2e18))
        okn = np.asarray(pc.fill_null(ok, True).to_numpy(zero_copy_only=False), dtype=bool)
        badrows = np.nonzero(~okn)[0]
        for i in badrows.tolist():
            reasons.setdefault(i, f"bad {name}")
        bad[badrows] = True
        return pc.cast(pc.if_else(pa.array(okn), arr, pa.scalar(None, arr.type)), typ, safe=False)
    try:
        return pc.cast(arr, typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pc.cast(pc.cast(arr, pa.string()), typ, safe=False)


def normalize_text_columns(
    cols: dict[str, pa.Array],
    n: int,
    *,
    source_format: str,
    source_file: str,
    sensor: str | None = None,
) -> Normalized:
    """Canonical input names: ``ts`` (epoch seconds, text or number, or a timestamp),
    ``duration_s``, ``src_ip``, ``dst_ip`` (text), ``src_port``, ``dst_port``, ``proto``,
    ``bytes_out``, ``bytes_in``, ``packets_out``, ``packets_in``, ``conn_state``,
    ``service``, ``sensor``, ``history`` (Zeek's letters, kept as written).  Absent columns
    become nulls.
    """
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    out: dict[str, pa.Array] = {}

    # timestamps
    ts = cols.get("ts")
    if ts is None:
        bad[:] = True
        for i in range(n):
            reasons[i] = "missing ts"
        ts_us = pa.nulls(n, pa.int64())
    else:
        if pa.types.is_timestamp(ts.type):
            ts_us = pc.cast(pc.cast(ts, pa.timestamp("us", tz="UTC")), pa.int64())
        else:
            secs = _to_number(ts, pa.float64(), "ts", bad, reasons)
            ts_us = pc.cast(pc.round(pc.multiply(secs, 1_000_000.0)), pa.int64(), safe=False)
        tsn = np.asarray(pc.fill_null(ts_us, -1).to_numpy(zero_copy_only=False))
        badts = (tsn < MIN_TS_US) | (tsn > MAX_TS_US)
        for i in np.nonzero(badts & ~bad)[0].tolist():
            reasons[i] = "missing or out-of-range ts"
        bad |= badts
    out["ts"] = ts_us

    for name, _role in (("src_ip", "src"), ("dst_ip", "dst")):
        arr = cols.get(name)
        if arr is None:
            bad[:] = True
            for i in range(n):
                reasons.setdefault(i, f"missing {name}")
            out[name] = pa.nulls(n, pa.uint32())
            out[name + "6"] = pa.nulls(n, pa.binary(16))
            continue
        p = parse_ips(arr)
        notok = ~p.ok
        for i in np.nonzero(notok & ~bad)[0].tolist():
            reasons[i] = f"{'missing' if p.missing[i] else 'bad'} {name}"
        bad |= notok
        out[name] = p.v4
        out[name + "6"] = p.v6

    for name, typ in (
        ("duration_s", pa.float64()),
        ("src_port", pa.int64()),
        ("dst_port", pa.int64()),
        ("bytes_out", pa.int64()),
        ("bytes_in", pa.int64()),
        ("packets_out", pa.int64()),
        ("packets_in", pa.int64()),
    ):
        arr = cols.get(name)
        if arr is None:
            out[name] = pa.nulls(n, typ)
            continue
        out[name] = _to_number(arr, typ, name, bad, reasons)

    for port in ("src_port", "dst_port"):
        pn = np.asarray(pc.fill_null(out[port], 0).to_numpy(zero_copy_only=False))
        badp = (pn < 0) | (pn > 65535)
        for i in np.nonzero(badp & ~bad)[0].tolist():
            reasons[i] = f"{port} out of range"
        bad |= badp
    for cnt in ("bytes_out", "bytes_in", "packets_out", "packets_in", "duration_s"):
        vn = np.asarray(pc.fill_null(out[cnt], 0).to_numpy(zero_copy_only=False))
        badc = vn < 0
        for i in np.nonzero(badc & ~bad)[0].tolist():
            reasons[i] = f"negative {cnt}"
        bad |= badc

    for name in ("proto", "conn_state", "service", "sensor", "history"):
        arr = cols.get(name)
        if arr is None:
            out[name] = pa.nulls(n, pa.string())
        else:
            arr = _nullify_dash(pc.cast(arr, pa.string()))
            if name == "proto":
                arr = pc.utf8_lower(arr)
            out[name] = arr
    if sensor is not None:
        out["sensor"] = pa.repeat(pa.scalar(sensor, pa.string()), n)
    out["source_format"] = pa.repeat(pa.scalar(source_format, pa.string()), n)
    out["source_file"] = pa.repeat(pa.scalar(source_file, pa.string()), n)

    arrays = []
    for f in FLOW_SCHEMA:
        a = out[f.name]
        if f.name == "ts":
            a = pc.cast(a, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        elif a.type != f.type:
            a = pc.cast(a, f.type, safe=False)
        arrays.append(a)
    table = pa.Table.from_arrays(arrays, schema=FLOW_SCHEMA.set(0, FLOW_SCHEMA.field("ts").with_nullable(True)))
    bad_index = np.nonzero(bad)[0]
    if len(bad_index):
        table = table.filter(pa.array(~bad))
    table = table.cast(FLOW_SCHEMA)
    return Normalized(table, bad_index, [reasons.get(int(i), "bad record") for i in bad_index])


__all__ = ["Normalized", "normalize_text_columns", "MAX_TS_US"]
