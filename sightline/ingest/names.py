"""Name and certificate telemetry: Zeek ``dns.log`` / ``ssl.log`` / ``x509.log`` -> names dataset.

These logs are not flows: they say which address a name resolved to, which name a TLS client
asked for (SNI) and which certificate a server presented.  They go to their own workspace
dataset, ``<ws>/names/day=YYYY-MM-DD/*.parquet`` (:data:`NAMES_SCHEMA`), which
:mod:`sightline.detect.derive` joins with domain and certificate indicators.

Rows (``kind``):

``dns_answer``  one per A/AAAA answer: client in ``src_ip``, the *answer* address in
                ``dst_ip``/``dst_ip6``, ``name`` the query, ``ttl_s`` the answer's TTL.
``tls_sni``     one per TLS session with an SNI: client, server, ``dst_port``, ``name``.
``tls_cert``    one per certificate of the server's chain (``cert_index`` 0 = leaf):
                client, server, ``dst_port``, fingerprint and/or Zeek file id ``cert_id``.
``x509``        one per certificate Zeek logged in x509.log (no addresses): fingerprint,
                serial and ``cert_id``, so ssl.log rows can be completed by a join.
``http_host``   one per HTTP request with a ``Host`` name (pcap input): client, server,
                ``dst_port``, ``name`` the host without its port.
``http_url``    the same request's URL in ``name`` (``http://host[:port]/path?query``).

Besides these Zeek logs, Suricata eve ``dns``/``tls`` events
(:mod:`sightline.ingest.suricata_names`) and pcap files (:mod:`sightline.ingest.pcap`: DNS
answers, TLS ClientHello SNI, HTTP ``Host``) fill the same dataset.

Zeek field -> names column mapping, declared once in :data:`ZEEK_NAME_FIELDS`.  Names are
lower-case without a trailing dot; fingerprints and serials lower-case hex without colons,
serials without leading zeros (so ``00:AB`` and ``ab`` compare equal).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from ..net import IPV6_TYPE, parse_ips
from ..schema import TS
from .base import Format, ReaderContext, register_format
from .zeek import _csv_table, _lines_chunks, _physical_lines, _segments

NAMES_SCHEMA = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("src_ip", pa.uint32()),  # client (null for x509 rows)
        pa.field("src_ip6", IPV6_TYPE),
        pa.field("dst_ip", pa.uint32()),  # server, or the answer address for dns_answer
        pa.field("dst_ip6", IPV6_TYPE),
        pa.field("dst_port", pa.int32()),
        pa.field("kind", pa.string(), nullable=False),  # dns_answer | tls_sni | tls_cert | x509 | http_host | http_url
        pa.field("name", pa.string()),  # DNS query or TLS SNI, lower-case, no trailing dot
        pa.field("cert_sha1", pa.string()),
        pa.field("cert_sha256", pa.string()),
        pa.field("cert_md5", pa.string()),
        pa.field("cert_serial", pa.string()),
        pa.field("cert_id", pa.string()),  # Zeek file id (fuid) joining ssl.log and x509.log
        pa.field("cert_index", pa.int32()),  # position in the server's chain, 0 = leaf
        pa.field("ttl_s", pa.float64()),
        pa.field("sensor", pa.string()),
        pa.field("source_format", pa.string()),
        pa.field("source_file", pa.string()),
    ]
)
"""One row per DNS answer, TLS SNI, presented certificate or logged certificate."""

NAME_KINDS = ("dns_answer", "tls_sni", "tls_cert", "x509", "http_host", "http_url")

ZEEK_NAME_FIELDS: dict[str, dict[str, str]] = {
    "dns": {
        "ts": "ts",
        "id.orig_h": "src",
        "id.resp_h": "resolver",
        "query": "name",
        "answers": "answers",
        "TTLs": "ttls",
    },
    "ssl": {
        "ts": "ts",
        "id.orig_h": "src",
        "id.resp_h": "dst",
        "id.resp_p": "dst_port",
        "server_name": "name",
        "cert_chain_fps": "chain_fps",
        "cert_chain_fuids": "chain_fuids",
    },
    "x509": {"ts": "ts", "id": "cert_id", "fingerprint": "fingerprint", "certificate.serial": "serial"},
}
"""Per Zeek log: field -> internal role (roles become NAMES_SCHEMA columns below)."""

_LIST_ROLES = ("answers", "ttls", "chain_fps", "chain_fuids")
_JSON_CHUNK = 8 << 20


# ------------------------------------------------------------------------- helpers


def _s(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    return arr


def _ts_seconds(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Epoch seconds (number), epoch text or ISO 8601 text -> float64 seconds, ok mask."""
    from .suricata import _iso_to_epoch  # ISO 8601 with offsets, vectorized

    if pa.types.is_timestamp(arr.type):
        out = pc.divide(pc.cast(pc.cast(arr, pa.timestamp("us")), pa.int64()).cast(pa.float64()), 1e6)
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        out = pc.cast(arr, pa.float64())
    else:
        text = _iso_to_epoch(pc.cast(arr, pa.string()))
        num = pc.fill_null(pc.match_substring_regex(text, r"^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$"), False)
        out = pc.cast(pc.if_else(num, text, pa.scalar(None, pa.string())), pa.float64())
    okv = pc.and_(pc.greater_equal(out, 0.0), pc.less(out, 253402300799.0))
    ok = np.asarray(pc.fill_null(okv, False).to_numpy(zero_copy_only=False), dtype=bool)
    return out, ok


def _norm_name(arr: pa.Array) -> pa.Array:
    a = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(arr, pa.string())))
    a = pc.replace_substring_regex(a, r"\.+$", "")
    return pc.if_else(pc.fill_null(pc.equal(a, ""), True), pa.scalar(None, pa.string()), a)


def _norm_hex(arr: pa.Array, *, serial: bool = False) -> pa.Array:
    a = pc.utf8_lower(pc.replace_substring_regex(pc.cast(arr, pa.string()), r"[:\s]", ""))
    if serial:
        a = pc.replace_substring_regex(a, r"^0+(.)", r"\1")
    ok = pc.fill_null(pc.match_substring_regex(a, r"^[0-9a-f]+$"), False)
    return pc.if_else(ok, a, pa.scalar(None, pa.string()))


def _fp_by_length(fp: pa.Array) -> dict[str, pa.Array]:
    """A Zeek fingerprint is SHA-256 by default, SHA-1 or MD5 when so configured: tell by length."""
    h = _norm_hex(fp)
    n = pc.utf8_length(h)
    null = pa.scalar(None, pa.string())
    return {
        "cert_sha256": pc.if_else(pc.fill_null(pc.equal(n, 64), False), h, null),
        "cert_sha1": pc.if_else(pc.fill_null(pc.equal(n, 40), False), h, null),
        "cert_md5": pc.if_else(pc.fill_null(pc.equal(n, 32), False), h, null),
    }


def _explode(lists: pa.Array) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """Flatten a list column: (parent row index, values, position in the list)."""
    lists = _s(lists)
    parents = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), dtype=np.int64)
    values = pc.list_flatten(lists)
    if len(parents) == 0:
        return parents, values, parents
    # parents are non-decreasing: an element's position is its distance to its row's first
    first_of_row = np.r_[0, np.nonzero(np.diff(parents))[0] + 1]
    pos = np.arange(len(parents), dtype=np.int64)
    pos -= np.repeat(first_of_row, np.diff(np.r_[first_of_row, len(parents)]))
    return parents, values, pos


def _split_vector(arr: pa.Array) -> pa.Array:
    """Zeek TSV vector text (``a,b``) -> list<string>; already a list in JSON."""
    arr = _s(arr)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return pc.cast(arr, pa.list_(pa.string()))
    return pc.split_pattern(pc.cast(arr, pa.string()), ",")


class _Builder:
    """Collect columns of names rows (already aligned), validate, emit NAMES_SCHEMA tables."""

    def __init__(self, ctx: ReaderContext, fmt: str) -> None:
        self.ctx, self.fmt = ctx, fmt

    def emit(self, cols: dict[str, pa.Array], kind: str, lines: np.ndarray, raw: pa.Table) -> pa.Table | None:
        n = len(lines)
        if n == 0:
            return None
        ts, ok = _ts_seconds(cols["ts"])
        reasons: dict[int, str] = {int(i): "bad or missing ts" for i in np.nonzero(~ok)[0]}
        out: dict[str, pa.Array] = {}
        for side in ("src", "dst"):
            col = cols.get(side)
            if col is None:
                out[f"{side}_ip"], out[f"{side}_ip6"] = pa.nulls(n, pa.uint32()), pa.nulls(n, IPV6_TYPE)
                continue
            p = parse_ips(col)
            bad = ~p.ok
            if side == "src":  # a name row without its client is useless for attribution
                bad |= p.missing
            else:
                bad &= ~p.missing
            for i in np.nonzero(bad)[0]:
                reasons.setdefault(int(i), f"bad {'client' if side == 'src' else 'server'} address")
            out[f"{side}_ip"], out[f"{side}_ip6"] = p.v4, p.v6
        us = pc.cast(pc.round(pc.multiply(ts, 1e6)), pa.int64(), safe=False)
        out["ts"] = pc.cast(pc.if_else(pa.array(ok), us, pa.scalar(0, pa.int64())), TS)
        port = cols.get("dst_port")
        out["dst_port"] = (
            pa.nulls(n, pa.int32())
            if port is None
            else pc.cast(pc.cast(port, pa.float64(), safe=False), pa.int32(), safe=False)
        )
        out["kind"] = pa.array([kind] * n, pa.string()) if n else pa.array([], pa.string())
        for c in ("name", "cert_sha1", "cert_sha256", "cert_md5", "cert_serial", "cert_id", "cert_index", "ttl_s"):
            v = cols.get(c)
            typ = NAMES_SCHEMA.field(c).type
            out[c] = pa.nulls(n, typ) if v is None else pc.cast(v, typ, safe=False)
        out["sensor"] = pa.array([self.ctx.sensor] * n, pa.string())
        out["source_format"] = pa.array([self.fmt] * n, pa.string())
        out["source_file"] = pa.array([str(self.ctx.path)] * n, pa.string())
        table = pa.table({f.name: out[f.name] for f in NAMES_SCHEMA})
        if reasons:
            seen: set[int] = set()
            for i, reason in sorted(reasons.items()):
                line = int(lines[i])
                if line in seen:  # one record exploded into several rows: quarantine it once
                    continue
                seen.add(line)
                self.ctx.quarantine(line, f"{kind}: {reason}", json.dumps(raw.slice(i, 1).to_pylist()[0], default=str))
            keep = np.ones(n, dtype=bool)
            keep[list(reasons)] = False
            table = table.filter(pa.array(keep))
        return table.cast(NAMES_SCHEMA)


# ------------------------------------------------------------------------- per log


def _dns_rows(t: pa.Table, b: _Builder) -> Iterator[pa.Table]:
    if "answers" not in t.column_names:
        return
    lines = t.column("__line").to_numpy()
    answers = _split_vector(t.column("answers"))
    parents, values, pos = _explode(answers)
    if len(parents) == 0:
        return
    ips = parse_ips(values)
    keep = np.nonzero(ips.ok)[0]  # CNAME/TXT answers are names, not addresses
    if len(keep) == 0:
        return
    parents, pos = parents[keep], pos[keep]
    take = pa.array(parents)
    ttl = None
    if "ttls" in t.column_names:
        ttls = _split_vector(t.column("ttls"))
        lens = np.asarray(pc.fill_null(pc.list_value_length(ttls), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        flat = pc.cast(pc.list_flatten(ttls), pa.float64(), safe=False) if len(ttls) else pa.array([], pa.float64())
        starts = np.r_[0, np.cumsum(lens)[:-1]] if len(lens) else np.zeros(0, np.int64)
        has = pos < lens[parents]
        idx = np.where(has, starts[parents] + pos, 0)
        ttl = pc.if_else(
            pa.array(has),
            flat.take(pa.array(idx)) if len(flat) else pa.nulls(len(idx), pa.float64()),
            pa.scalar(None, pa.float64()),
        )
    cols = {
        "ts": _s(t.column("ts")).take(take),
        "src": _s(t.column("src")).take(take),
        "dst": values.take(pa.array(keep)),
        "name": _norm_name(_s(t.column("name")).take(take)),
        "ttl_s": ttl,
    }
    out = b.emit(cols, "dns_answer", lines[parents], t.drop(["__line"]).take(take))
    if out is not None and out.num_rows:
        yield out


def _ssl_rows(t: pa.Table, b: _Builder) -> Iterator[pa.Table]:
    lines = t.column("__line").to_numpy()
    raw = t.drop(["__line"])
    base = {
        "ts": _s(t.column("ts")),
        "src": _s(t.column("src")),
        "dst": _s(t.column("dst")),
        "dst_port": _s(t.column("dst_port")),
    }
    names = _norm_name(_s(t.column("name")))
    has_sni = np.asarray(pc.is_valid(names).to_numpy(zero_copy_only=False), dtype=bool)
    if has_sni.any():
        sel = pa.array(np.nonzero(has_sni)[0])
        cols = {k: v.take(sel) for k, v in base.items()}
        cols["name"] = names.take(sel)
        out = b.emit(cols, "tls_sni", lines[has_sni], raw.take(sel))
        if out is not None and out.num_rows:
            yield out
    for role in ("chain_fps", "chain_fuids"):
        if role not in t.column_names:
            continue
        parents, values, pos = _explode(_split_vector(t.column(role)))
        if len(parents) == 0:
            continue
        take = pa.array(parents)
        cols = {k: v.take(take) for k, v in base.items()}
        cols["name"] = names.take(take)
        cols["cert_index"] = pa.array(pos, pa.int64())
        if role == "chain_fps":
            cols.update(_fp_by_length(values))
        else:
            cols["cert_id"] = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
        out = b.emit(cols, "tls_cert", lines[parents], raw.take(take))
        if out is not None and out.num_rows:
            yield out


def _x509_rows(t: pa.Table, b: _Builder) -> Iterator[pa.Table]:
    n = t.num_rows
    cols: dict[str, pa.Array] = {"ts": _s(t.column("ts"))}
    if "fingerprint" in t.column_names:
        cols.update(_fp_by_length(_s(t.column("fingerprint"))))
    if "serial" in t.column_names:
        cols["cert_serial"] = _norm_hex(_s(t.column("serial")), serial=True)
    if "cert_id" in t.column_names:
        cols["cert_id"] = pc.cast(_s(t.column("cert_id")), pa.string())
    out = b.emit(cols, "x509", t.column("__line").to_numpy()[:n], t.drop(["__line"]))
    if out is not None and out.num_rows:
        yield out


_ROWS = {"dns": _dns_rows, "ssl": _ssl_rows, "x509": _x509_rows}


def _rename(t: pa.Table, log: str) -> pa.Table:
    """Zeek field names -> roles; absent scalar fields become null columns (a log may omit them)."""
    fields = ZEEK_NAME_FIELDS[log]
    t = t.rename_columns([fields.get(c, c) for c in t.column_names])
    for role in fields.values():
        if role not in t.column_names and role not in _LIST_ROLES:
            t = t.append_column(role, pa.nulls(t.num_rows, pa.string()))
    return t


# ------------------------------------------------------------------------- TSV


def _read_tsv(ctx: ReaderContext, log: str) -> Iterator[pa.RecordBatch]:
    b = _Builder(ctx, f"zeek_{log}")
    wanted_all = ZEEK_NAME_FIELDS[log]
    for seg in _segments(ctx):
        wanted = [f for f in seg.fields if f in wanted_all]
        if "ts" not in wanted:
            ctx.quarantine(seg.first_line, f"#fields header of a {log}.log without ts", "")
            continue
        ncols = len(seg.fields)
        skipped: list[int] = []

        def on_invalid(row: pacsv.InvalidRow, seg=seg, ncols=ncols, skipped=skipped) -> str:
            num = row.number if row.number is not None else 0
            skipped.append(num)
            if not row.text.startswith("#"):
                ctx.quarantine(seg.first_line + num - 1, f"expected {ncols} fields, got {row.actual_columns}", row.text)
            return "skip"

        try:
            t = _csv_table(seg, wanted, {}, on_invalid)  # every column as text
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            ctx.quarantine(seg.first_line, f"unparseable block: {e}", seg.head())
            continue
        if t.num_rows == 0:
            continue
        lines = seg.first_line - 1 + _physical_lines(np.arange(t.num_rows), skipped)
        t = _rename(t, log).append_column("__line", pa.array(lines, pa.int64()))
        for out in _ROWS[log](t, b):
            yield from out.to_batches()


# ------------------------------------------------------------------------- JSON lines


def _json_block(data: bytes) -> pa.Table:
    return pajson.read_json(
        io.BytesIO(data), read_options=pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))
    )


def _flatten_json(t: pa.Table, log: str) -> pa.Table:
    """Nested ``"id": {...}`` / ``"certificate": {...}`` objects -> dotted names; keep wanted fields."""
    wanted = ZEEK_NAME_FIELDS[log]
    cols: dict[str, pa.ChunkedArray] = {}
    for name in t.column_names:
        col = t.column(name)
        if pa.types.is_struct(col.type):
            for i, sub in enumerate(col.type):
                dotted = f"{name}.{sub.name}"
                if dotted in wanted:
                    cols[dotted] = pa.chunked_array([pc.struct_field(c, [i]) for c in col.chunks], sub.type)
        elif name in wanted:
            cols[name] = col
    if "ts" not in cols:
        raise pa.ArrowInvalid("record without ts")
    return _rename(pa.table(cols), log)


def _parse_json(lines: list[bytes], first: int, ctx: ReaderContext, log: str) -> list[tuple[pa.Table, int, int]]:
    """Parse a run of lines; on failure split it to find the bad lines (errors are rare)."""
    try:
        t = _flatten_json(_json_block(b"\n".join(lines) + b"\n"), log)
        return [(t, first, len(lines))]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError) as e:
        if len(lines) == 1:
            if lines[0].strip():
                ctx.quarantine(first, f"bad JSON record: {str(e).splitlines()[0][:200]}", lines[0])
            return []
        mid = len(lines) // 2
        return _parse_json(lines[:mid], first, ctx, log) + _parse_json(lines[mid:], first + mid, ctx, log)


def _read_json(ctx: ReaderContext, log: str) -> Iterator[pa.RecordBatch]:
    b = _Builder(ctx, f"zeek_{log}")
    line_no = 1
    for chunk in _lines_chunks(ctx.stream, _JSON_CHUNK):
        lines = chunk.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for t, first, nlines in _parse_json(lines, line_no, ctx, log):
            if t.num_rows == 0:
                continue
            sub = lines[first - line_no : first - line_no + nlines]
            nonblank = (
                np.fromiter((bool(x.strip()) for x in sub), dtype=bool, count=len(sub))
                if t.num_rows != nlines
                else np.ones(nlines, dtype=bool)
            )
            line_numbers = first + np.nonzero(nonblank)[0][: t.num_rows]
            t = t.append_column("__line", pa.array(line_numbers, pa.int64()))
            for out in _ROWS[log](t, b):
                yield from out.to_batches()
        line_no += len(lines)


# ------------------------------------------------------------------------- formats


def _tsv_path(head: bytes) -> str | None:
    m = re.search(rb"^#path[\t ]+(\S+)\s*$", head[:65536], re.M)
    return m.group(1).decode("ascii", "replace") if m else None


_JSON_KEYS = {
    "dns": (b'"query"', b'"qtype', b'"trans_id"', b'"answers"'),
    "ssl": (b'"server_name"', b'"cert_chain_fps"', b'"cert_chain_fuids"', b'"cipher"'),
    "x509": (b'"certificate.serial"', b'"certificate":{', b'"certificate": {'),
}


def _json_log(head: bytes) -> str | None:
    first = head.lstrip().split(b"\n", 1)[0]
    if not first.startswith(b"{") or b'"event_type"' in first:
        return None
    m = re.search(rb'"_path"\s*:\s*"([a-z0-9_]+)"', first)
    if m:
        return m.group(1).decode()
    has_id = b'"id.orig_h"' in first or b'"orig_h"' in first
    for log, keys in _JSON_KEYS.items():
        if any(k in first for k in keys) and (has_id or log == "x509"):
            return log
    return None


def _make(log: str) -> Format:
    def sniff(head: bytes) -> bool:
        if head.lstrip().startswith(b"{"):
            return _json_log(head) == log
        return _tsv_path(head) == log

    def read(ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
        if not hasattr(ctx.stream, "peek"):
            ctx.stream = io.BufferedReader(ctx.stream)  # type: ignore[arg-type]
        head = ctx.stream.peek(256)[:256]
        if head.lstrip().startswith(b"{"):
            yield from _read_json(ctx, log)
        else:
            yield from _read_tsv(ctx, log)

    return Format(f"zeek_{log}", sniff, read, f"Zeek {log}.log (TSV or JSON lines): names telemetry")


for _log in ("x509", "ssl", "dns"):
    # ahead of the conn.log readers, whose sniffers accept any Zeek log
    register_format(_make(_log), first=True)


def is_names_batch(batch: pa.RecordBatch | pa.Table) -> bool:
    """Whether a reader's batch belongs to the names dataset (not the flow store)."""
    return "kind" in batch.schema.names and "cert_sha256" in batch.schema.names


__all__ = ["NAMES_SCHEMA", "NAME_KINDS", "ZEEK_NAME_FIELDS", "is_names_batch"]
