"""Zeek ``conn.log`` readers: TSV (``#fields`` header) and JSON lines.

JSON ``ts`` may be epoch seconds (Zeek's default) or ISO 8601 text
(``LogAscii::json_timestamps=JSON::TS_ISO8601``); both are read a block at a time.

Zeek field -> flow schema mapping, declared once:
"""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from .base import Format, ReaderContext, register_format
from .normalize import normalize_text_columns

ZEEK_CONN_FIELDS: dict[str, str] = {
    "ts": "ts",
    "id.orig_h": "src_ip",
    "id.orig_p": "src_port",
    "id.resp_h": "dst_ip",
    "id.resp_p": "dst_port",
    "proto": "proto",
    "service": "service",
    "duration": "duration_s",
    "orig_bytes": "bytes_out",
    "resp_bytes": "bytes_in",
    "conn_state": "conn_state",
    "orig_pkts": "packets_out",
    "resp_pkts": "packets_in",
    "history": "history",
}
"""Zeek conn.log field -> flow schema column."""

CHUNK_BYTES = 32 << 20
JSON_CHUNK_BYTES = 8 << 20
SLOW_LINES_WARN = 1000
"""Warn when more JSON lines than this (and over 1% of a file) needed the one-record fallback."""

log = logging.getLogger("sightline.ingest")


def _lines_chunks(stream: io.BufferedIOBase | io.RawIOBase, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield chunks of whole lines (the last one may lack a newline)."""
    rest = b""
    while True:
        block = stream.read(size)
        if not block:
            if rest:
                yield rest
            return
        block = rest + block
        cut = block.rfind(b"\n")
        if cut < 0:
            if len(block) > 4 * size:
                # a single huge line: hand it over as it is, the parser quarantines it
                yield block
                rest = b""
            else:
                rest = block
            continue
        yield block[: cut + 1]
        rest = block[cut + 1 :]


def _unescape_sep(value: str) -> str:
    if value.startswith("\\x") and len(value) == 4:
        try:
            return chr(int(value[2:], 16))
        except ValueError:  # "\\x/9": not hex; the caller keeps the previous separator
            return value
    return value


def _physical_lines(valid_idx: np.ndarray, skipped: list[int]) -> np.ndarray:
    """Map indices of parsed (valid) rows to 1-based physical lines, given skipped lines."""
    if not skipped:
        return valid_idx + 1
    s = np.asarray(sorted(skipped), dtype=np.int64)
    adj = s - np.arange(1, len(s) + 1)
    return valid_idx + 1 + np.searchsorted(adj, valid_idx, side="right")


class _Segment:
    __slots__ = ("data", "first_line", "fields", "sep")

    def __init__(self, data: bytes | memoryview, first_line: int, fields: list[str], sep: str) -> None:
        self.data = data  # a view into the chunk read (no copy)
        self.first_line = first_line  # physical line number of data's first line
        self.fields = fields
        self.sep = sep

    def reader(self) -> pa.BufferReader:
        """The lines as an Arrow input stream, without copying them."""
        return pa.BufferReader(pa.py_buffer(self.data))

    def head(self, n: int = 512) -> bytes:
        return bytes(self.data[:n])


TSV_NUMBER_TYPES: dict[str, pa.DataType] = {
    "ts": pa.float64(),
    "duration": pa.float64(),
    "id.orig_p": pa.uint64(),
    "id.resp_p": pa.uint64(),
    "orig_bytes": pa.uint64(),
    "resp_bytes": pa.uint64(),
    "orig_pkts": pa.uint64(),
    "resp_pkts": pa.uint64(),
}
"""Zeek fields the TSV parser converts to numbers itself (the fast path); a block with a value
that does not convert is read again as text and checked value by value (the slow path)."""

MAX_COUNT = 999_999_999_999_999_999
"""The largest count or port the text path accepts (18 digits); above it the block is read as text."""


def _csv_table(
    seg: _Segment, wanted: list[str], types: dict[str, pa.DataType], on_invalid: Callable[[pacsv.InvalidRow], str]
) -> pa.Table:
    """The ``wanted`` columns of one segment of a Zeek TSV log (``types``: columns parsed as
    numbers or times; the rest text; ``-``/``(empty)`` as null), bad rows to ``on_invalid``."""
    return pacsv.read_csv(
        seg.reader(),
        read_options=pacsv.ReadOptions(column_names=seg.fields, use_threads=False, block_size=1 << 26),
        parse_options=pacsv.ParseOptions(
            delimiter=seg.sep,
            quote_char=False,
            escape_char=False,
            double_quote=False,
            newlines_in_values=False,
            invalid_row_handler=on_invalid,
            ignore_empty_lines=True,
        ),
        convert_options=pacsv.ConvertOptions(
            include_columns=wanted,
            column_types={f: types.get(f, pa.string()) for f in wanted},
            null_values=["-", "(empty)", ""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def _typed_ok(table: pa.Table) -> pa.Table | None:
    """The counts and ports of a typed parse as int64, or None when one is beyond :data:`MAX_COUNT`."""
    for j, f in enumerate(table.schema):
        if pa.types.is_unsigned_integer(f.type):
            col = table.column(j)
            hi = pc.max(col).as_py()
            if hi is not None and hi > MAX_COUNT:
                return None
            table = table.set_column(j, f.name, col.cast(pa.int64()))
    return table


def _parse_segment(seg: _Segment) -> tuple[pa.Table | None, list[tuple[int, str, bytes]]]:
    """Parse one run of data lines ("-", "(empty)" and "" become null).

    Numbers are converted by the parser (:data:`TSV_NUMBER_TYPES`) when every value of the
    block converts; otherwise the block is read again as text, and
    :func:`normalize_text_columns` converts it column by column (a cast when the column is
    clean, a per-value check only when it is not), so one bad value costs only its row.
    """
    ncols = len(seg.fields)
    wanted = [f for f in seg.fields if f in ZEEK_CONN_FIELDS]
    bad: list[tuple[int, str, bytes]] = []
    skipped: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        num = row.number if row.number is not None else 0
        skipped.append(num)
        if not row.text.startswith("#"):
            bad.append(
                (seg.first_line + num - 1, f"expected {ncols} fields, got {row.actual_columns}", row.text.encode())
            )
        return "skip"

    table = None
    if len(set(wanted)) == len(wanted):  # a forged header repeating a field: text only
        try:
            table = _typed_ok(_csv_table(seg, wanted, TSV_NUMBER_TYPES, on_invalid))
        except (pa.ArrowInvalid, UnicodeDecodeError):
            table = None
        if table is None:
            bad.clear()
            skipped.clear()
    if table is None:
        try:
            table = _csv_table(seg, wanted, {}, on_invalid)
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            bad.append((seg.first_line, f"unparseable block: {e}", seg.head()))
            return None, bad
    table = table.append_column(
        "__line", pa.array(seg.first_line - 1 + _physical_lines(np.arange(table.num_rows), skipped))
    )
    return table, bad


def _line_blocks(stream: io.BufferedIOBase | io.RawIOBase, size: int = CHUNK_BYTES) -> Iterator[tuple[bytes, int, int]]:
    """Like :func:`_lines_chunks`, without copying the blocks read: ``(block, start, stop)``
    where ``block[start:stop]`` is whole lines (the last piece may lack a newline).  A line cut
    by a block boundary comes as a piece of its own (the only bytes copied)."""
    rest = b""
    while True:
        block = stream.read(size)
        if not block:
            if rest:
                yield rest, 0, len(rest)
            return
        nl = block.find(b"\n")
        if nl < 0:
            rest += block
            if len(rest) > 4 * size:
                # a single huge line: hand it over as it is, the parser quarantines it
                yield rest, 0, len(rest)
                rest = b""
            continue
        start = 0
        if rest:
            yield rest + block[: nl + 1], 0, len(rest) + nl + 1
            start = nl + 1
        cut = block.rfind(b"\n")
        if cut + 1 > start:
            yield block, start, cut + 1
        rest = block[cut + 1 :]


def _header_lines(chunk: bytes, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, int]]:
    """(start, end) of each line starting with ``#`` in ``chunk[start:stop]`` (memchr-speed
    search for ``#``, which data lines of a conn.log rarely hold, no regex)."""
    stop = len(chunk) if stop is None else stop
    pos = chunk.find(b"#", start, stop)
    while pos >= 0:
        if pos == start or chunk[pos - 1] == 10:  # at a line's start
            end = chunk.find(b"\n", pos, stop)
            if end < 0:
                end = stop
            yield pos, end
            pos = end
        pos = chunk.find(b"#", pos + 1, stop)


def _segments(ctx: ReaderContext) -> Iterator[_Segment]:
    """Split the stream into runs of data lines sharing one ``#fields`` header (views into
    the blocks read, not copies)."""
    fields: list[str] = []
    sep = "\t"
    line_no = 1

    def emit(chunk: bytes, a: int, b: int, first: int) -> Iterator[_Segment]:
        if b <= a or (b - a < 4096 and not chunk[a:b].strip()):
            return
        if fields:
            yield _Segment(memoryview(chunk)[a:b], first, fields, sep)
        else:
            ctx.quarantine(first, "data before any #fields header", chunk[a : min(b, a + 512)])

    for chunk, pos, stop in _line_blocks(ctx.stream, CHUNK_BYTES):
        for start, end in _header_lines(chunk, pos, stop):
            if start > pos:
                yield from emit(chunk, pos, start, line_no)
                line_no += chunk.count(b"\n", pos, start)
            header = chunk[start:end].decode("utf-8", "replace").rstrip("\r")
            if header.startswith("#separator"):
                parts = header.split(" ", 1)
                if len(parts) == 2:
                    sp = _unescape_sep(parts[1].strip())
                    if len(sp) == 1:
                        sep = sp
            elif header.startswith("#fields"):
                fields = header.split(sep)[1:]
            line_no += 1
            pos = end + 1
        if pos < stop:
            yield from emit(chunk, pos, stop, line_no)
            line_no += chunk.count(b"\n", pos, stop)


PARSE_THREADS = 2
"""Threads parsing one TSV log (one per core of a small machine; a parallel ingest, whose
processes share the cores, sets fewer per process)."""


def read_zeek_tsv(ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
    """Parse and normalize runs of lines in :data:`PARSE_THREADS` threads (Arrow releases the
    GIL); results are taken in file order, so output never depends on timing."""
    src = str(ctx.path)
    pool = ThreadPoolExecutor(max_workers=PARSE_THREADS)
    try:
        pending = []
        for seg in _segments(ctx):
            pending.append(pool.submit(_parse_and_normalize, seg, src, ctx.sensor))
            while len(pending) >= 3:
                yield from _finish(pending.pop(0).result(), ctx)
        for fut in pending:
            yield from _finish(fut.result(), ctx)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_Bad = list[tuple[int, str, "bytes | str"]]


def _parse_and_normalize(seg: _Segment, src: str, sensor: str | None) -> tuple[pa.Table | None, _Bad]:
    table, bad = _parse_segment(seg)
    if table is None or table.num_rows == 0:
        return None, bad
    flows, more = _normalize(table, src, "zeek_tsv", sensor)
    return flows, bad + more


def _finish(res: tuple[pa.Table | None, _Bad], ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
    table, bad = res
    for line, reason, raw in sorted(bad, key=lambda b: b[0]):
        ctx.quarantine(line, reason, raw)
    if table is not None and table.num_rows:
        yield from table.to_batches()


def _normalize(table: pa.Table, src: str, fmt: str, sensor: str | None) -> tuple[pa.Table, _Bad]:
    """Text columns -> flow schema; value-level problems come back as (line, reason, raw)."""
    # by position: a forged #fields header may repeat a name, and table.column(name) then raises
    names = table.column_names
    cols = {ZEEK_CONN_FIELDS[c]: table.column(j).combine_chunks() for j, c in enumerate(names) if c in ZEEK_CONN_FIELDS}
    norm = normalize_text_columns(cols, table.num_rows, source_format=fmt, source_file=src, sensor=sensor)
    bad: _Bad = []
    if len(norm.bad_index):
        lines = table.column("__line").to_numpy()
        for i, reason in zip(norm.bad_index.tolist(), norm.bad_reason):
            raw = {k: table.column(j)[i].as_py() for j, k in enumerate(names) if k != "__line"}
            bad.append((int(lines[i]), reason, json.dumps(raw, default=str)))
    return norm.table, bad


# ---------------------------------------------------------------------------- JSON lines

_JSON_FIELDS = list(ZEEK_CONN_FIELDS)
_JSON_TEXT_FIELDS = ("id.orig_h", "id.resp_h", "proto", "service", "conn_state", "history")
_JSON_NUMBER_FIELDS = tuple(f for f in _JSON_FIELDS if f not in _JSON_TEXT_FIELDS)


@functools.lru_cache(maxsize=64)
def _json_schema(as_text: frozenset[str] = frozenset()) -> pa.Schema:
    """The fields read from a flat record: numbers as float64, except those of ``as_text``,
    read as text and converted by normalize (``ts`` by :func:`_ts_seconds`)."""
    return pa.schema(
        [(f, pa.string() if f in _JSON_TEXT_FIELDS or f in as_text else pa.float64()) for f in _JSON_FIELDS]
    )


_EPOCH_SCHEMA = _json_schema()


def _block_schema(lines: list[bytes]) -> pa.Schema:
    """The schema of a block, from the types of its first record's values.

    One look per block: a log writes every record the same way (``ts`` as epoch seconds
    by default, as ISO 8601 text with ``LogAscii::json_timestamps=JSON::TS_ISO8601``;
    some shippers quote numbers), so the block parser reads the whole block in one go.  A
    block that mixes both fails and is split by :func:`_json_parse_lines`, whose halves
    look again.
    """
    for line in lines[:8]:
        if not line.strip() or len(line) > 1 << 16:  # a flow record is a few hundred bytes
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict):
            return _json_schema(frozenset(f for f in _JSON_NUMBER_FIELDS if isinstance(rec.get(f), str)))
    return _EPOCH_SCHEMA


def _json_table_flat(data: bytes, schema: pa.Schema) -> pa.Table:
    return pajson.read_json(
        io.BytesIO(data),
        read_options=pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20)),
        parse_options=pajson.ParseOptions(
            newlines_in_values=False, unexpected_field_behavior="ignore", explicit_schema=schema
        ),
    )


def _json_parse_lines(
    lines: list[bytes], first_line: int, ctx: ReaderContext, nested: bool, slow: list[int]
) -> list[tuple[pa.Table, int, int]]:
    """Parse a run of lines; on failure split it to find the bad lines (errors are rare).

    Returns ``(table, first_line, n_lines)`` parts.  ``slow[0]`` counts the lines that only
    the one-record fallback could read.
    """
    data = b"\n".join(lines) + b"\n"
    try:
        return [(_json_table(data, nested, None if nested else _block_schema(lines)), first_line, len(lines))]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as e:
        if len(lines) == 1:
            line = lines[0]
            if line.strip():
                one = _one_record(line)
                if one is not None:
                    slow[0] += 1
                    return [(one, first_line, 1)]
                ctx.quarantine(first_line, f"bad JSON record: {str(e).splitlines()[0][:200]}", line)
            return []
        mid = len(lines) // 2
        return _json_parse_lines(lines[:mid], first_line, ctx, nested, slow) + _json_parse_lines(
            lines[mid:], first_line + mid, ctx, nested, slow
        )


def _json_table(data: bytes, nested: bool, schema: pa.Schema | None) -> pa.Table:
    if not nested:
        # the JSON reader does not check UTF-8 inside strings; raise here (ArrowInvalid) so
        # the bad line is found and quarantined instead of failing later on decode
        t = _json_table_flat(data, schema or _EPOCH_SCHEMA)
        t.validate(full=True)
        return t
    t = pajson.read_json(
        io.BytesIO(data), read_options=pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20))
    )
    t.validate(full=True)  # invalid UTF-8 in strings -> ArrowInvalid -> quarantined line
    cols = {}
    for name in t.column_names:
        col = t.column(name)
        if name == "id" and pa.types.is_struct(col.type):
            for sub in col.type:
                cols["id." + sub.name] = pa.chunked_array([c.field(sub.name) for c in col.chunks], sub.type)
        elif name in ZEEK_CONN_FIELDS:
            cols[name] = col
    return _coerce_json(cols, t.num_rows)


def _coerce_json(cols: dict, n: int) -> pa.Table:
    out = {}
    for f in _EPOCH_SCHEMA:
        c = cols.get(f.name)
        if c is None:
            out[f.name] = pa.nulls(n, f.type)
        elif pa.types.is_string(c.type) or (f.name == "ts" and pa.types.is_timestamp(c.type)):
            out[f.name] = c  # text is converted with the rest of its block (_ts_seconds, normalize)
        else:
            out[f.name] = c.cast(f.type)
    return pa.table(out)


def _one_record(line: bytes) -> pa.Table | None:
    """Fallback for one record the block parser refused (a value of an unexpected type)."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(rec, dict):
        return None
    if isinstance(rec.get("id"), dict):
        for k, v in rec.pop("id").items():
            rec["id." + k] = v
    try:
        cols = {k: pa.array([rec.get(k)]) for k in _JSON_FIELDS if rec.get(k) is not None}
        return _coerce_json(cols, 1)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):  # ints beyond 64 bits
        return None


_ISO_PARTS = (
    r"^(?P<base>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?P<frac>\.[0-9]+)?"
    r"(?P<zone>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
_EPOCH_TEXT = r"^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$"


def _us_to_seconds(ts: pa.Array) -> pa.Array:
    return pc.divide(pc.cast(pc.cast(ts, pa.int64()), pa.float64()), 1e6)


def _ts_seconds(col: pa.Array) -> pa.Array:
    """``ts`` -> epoch seconds (float64), vectorized.

    Text may be ISO 8601 (``2024-03-01T12:00:00.123456Z``, ``+00:00`` or another offset,
    ``T`` or a space, seconds and fraction optional, no zone = UTC as Zeek writes) or epoch
    seconds.  When a value is neither, the column comes back as text with the converted
    values rewritten as epoch seconds and that value as it was, so that normalize
    quarantines only its row ("bad ts").
    """
    if pa.types.is_timestamp(col.type):
        return _us_to_seconds(pc.cast(col, pa.timestamp("us", tz="UTC")))
    if not pa.types.is_string(col.type):
        return _millis_as_seconds(col)
    try:  # the common case: every value is ISO 8601 with a zone, as Zeek writes it
        return _us_to_seconds(pc.cast(col, pa.timestamp("us", tz="UTC")))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = pc.utf8_trim_whitespace(col)
    text = pc.replace_substring_regex(text, r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[ t]", r"\1T")
    text = pc.replace_substring_regex(text, r"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2})([^:0-9]|$)", r"\1:00\2")
    parts = pc.extract_regex(text, _ISO_PARTS)
    zone = pc.fill_null(pc.struct_field(parts, [2]), "")
    zone = pc.replace_substring_regex(zone, r"^[Zz]?$", "+0000")
    zone = pc.replace_substring(pc.replace_substring_regex(zone, r"^([+-][0-9]{2})$", r"\1:00"), ":", "")
    whole = pc.strptime(
        pc.binary_join_element_wise(pc.struct_field(parts, [0]), zone, ""),
        format="%Y-%m-%dT%H:%M:%S%z",
        unit="s",
        error_is_null=True,
    )
    frac = pc.cast(pc.binary_join_element_wise("0", pc.fill_null(pc.struct_field(parts, [1]), ""), ""), pa.float64())
    iso = pc.add(pc.cast(pc.cast(whole, pa.int64()), pa.float64()), frac)
    epoch = pc.cast(
        pc.if_else(pc.match_substring_regex(text, _EPOCH_TEXT), text, pa.scalar(None, pa.string())), pa.float64()
    )
    secs = pc.coalesce(iso, epoch)
    if secs.null_count == col.null_count:
        return secs
    return pc.if_else(pc.is_null(secs), col, pc.cast(secs, pa.string()))


MILLIS_FLOOR = 1e11
"""Epoch values from here on are milliseconds: as seconds they would be after the year 5000."""


def _millis_as_seconds(col: pa.Array) -> pa.Array:
    """Numeric ``ts`` of a block written with ``JSON::TS_MILLIS`` (integer ms since the epoch)
    -> seconds.  The whole block decides, as Zeek's setting holds for a whole log: every value at
    or past MILLIS_FLOOR.  A lone huge value among seconds stays as it is and is quarantined."""
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)) or len(col) == col.null_count:
        return col
    lo = pc.min(col).as_py()
    if lo is None or lo < MILLIS_FLOOR:
        return col
    return pc.divide(pc.cast(col, pa.float64()), 1000.0)


def blank_to_null(col: pa.Array) -> pa.Array:
    """Whitespace-only text -> null (as the TSV reader reads an empty field); normalize's
    number check would take it for a number and then fail to cast it."""
    if not pa.types.is_string(col.type):
        return col
    blank = pc.match_substring_regex(col, r"^\s*$")
    if not pc.any(blank).as_py():
        return col
    return pc.if_else(blank, pa.scalar(None, col.type), col)


def _with_seconds(table: pa.Table) -> pa.Table:
    """``ts`` as epoch seconds, and no blank text left in the number columns read as text."""
    for name in _JSON_NUMBER_FIELDS:
        i = table.schema.get_field_index(name)
        col = blank_to_null(table.column(i).combine_chunks())
        table = table.set_column(i, name, _ts_seconds(col) if name == "ts" else col)
    return table


def _concat_parts(parts: list[pa.Table]) -> pa.Table:
    """One table per chunk (one normalize, one batch), whatever the bisection split it into;
    a column that is text in one part and numbers in another becomes text (normalize reads both)."""
    names = _JSON_FIELDS + ["__line"]
    parts = [p.select(names) for p in parts]
    if len(parts) == 1:
        return parts[0]
    for i, name in enumerate(names):
        if len({p.schema.field(i).type for p in parts}) > 1:
            parts = [p.set_column(i, name, pc.cast(p.column(i), pa.string())) for p in parts]
    return pa.concat_tables(parts)


def read_zeek_json(ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
    src = str(ctx.path)
    line_no = 1
    nested = None
    slow = [0]
    for chunk in _lines_chunks(ctx.stream, JSON_CHUNK_BYTES):
        if nested is None:
            first = chunk.lstrip().split(b"\n", 1)[0]
            nested = b'"id":{' in first.replace(b" ", b"")
        lines = chunk.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        parts = []
        for table, first_line, nlines in _json_parse_lines(lines, line_no, ctx, nested, slow):
            if table.num_rows == 0:
                continue
            if table.num_rows == nlines:
                line_numbers = np.arange(first_line, first_line + nlines, dtype=np.int64)
            else:  # blank lines were skipped by the parser
                sub = lines[first_line - line_no : first_line - line_no + nlines]
                nonblank = np.fromiter((bool(x.strip()) for x in sub), dtype=bool, count=len(sub))
                line_numbers = first_line + np.nonzero(nonblank)[0][: table.num_rows]
            parts.append(_with_seconds(table).append_column("__line", pa.array(line_numbers, pa.int64())))
        if parts:
            flows, bad = _normalize(_concat_parts(parts), src, "zeek_json", ctx.sensor)
            for line, reason, raw in bad:
                ctx.quarantine(line, reason, raw)
            yield from flows.to_batches()
        line_no += len(lines)
    if slow[0] > SLOW_LINES_WARN and slow[0] * 100 > line_no:
        log.warning(
            "%s: %d of %d lines were read one by one (the block parser refused their field types); "
            "their flows are kept, but such a file ingests slowly",
            ctx.path,
            slow[0],
            line_no - 1,
        )


# --------------------------------------------------------------------------- sniffing

_CONN_ONLY = (b"conn_state", b"orig_bytes", b"history", b"orig_pkts")
"""Fields only a connection log has: other Zeek logs (weird, http, notice, ...) share
id.orig_h but are not flows."""


def _sniff_tsv(head: bytes) -> bool:
    if not (head.startswith(b"#separator") or b"\n#fields\t" in head[:65536] or head.startswith(b"#fields\t")):
        return False
    i = head.find(b"#path\t")
    if i >= 0:
        path = head[i + 6 : head.find(b"\n", i)].strip()
        return path.startswith(b"conn")
    j = head.find(b"#fields\t")
    fields = head[j : head.find(b"\n", j)] if j >= 0 else b""
    return b"id.orig_h" in fields and any(f in fields for f in _CONN_ONLY + (b"proto",))


_OTHER_LOG_KEYS = (
    b'"query"',
    b'"method"',
    b'"uri"',
    b'"cipher"',
    b'"server_name"',
    b'"note"',
    b'"fuid"',
    b'"notice"',
    b'"peer"',
    b'"certificate.',
    b'"event_type"',
)
"""Keys of other Zeek logs (dns, http, ssl, notice, files, weird, x509) and of Suricata eve."""


def _sniff_json(head: bytes) -> bool:
    first = head.lstrip().split(b"\n", 1)[0]
    if not first.startswith(b"{"):
        return False
    if not (b'"id.orig_h"' in first or b'"orig_h"' in first):
        return False
    if any(k in first for k in _OTHER_LOG_KEYS):
        return False
    return b'"proto"' in first or any(b'"' + f + b'"' in first for f in _CONN_ONLY)


register_format(Format("zeek_tsv", _sniff_tsv, read_zeek_tsv, "Zeek conn.log, TSV with #fields header"))
register_format(Format("zeek_json", _sniff_json, read_zeek_json, "Zeek conn.log, JSON lines"))

__all__ = ["ZEEK_CONN_FIELDS", "read_zeek_tsv", "read_zeek_json"]
