"""nfdump: CSV export (``nfdump -o csv``) and binary nfcapd files (through the ``nfdump`` tool).

Formats ``nfdump_csv`` and ``nfcapd``.  The CSV header names differ between nfdump releases
(1.6/1.7.1 short names ``ts,te,td,sa,da,...``; later 1.7 releases long names
``firstSeen,lastSeen,duration,srcAddr,...``), so each flow role lists the names it may have
(:data:`NFDUMP_FIELDS`).  The ``Summary`` block nfdump appends is not flow data and is cut off.
``nfdump -q -o csv`` writes no header line (and no summary): such a file is read by the
fixed 48-column layout of nfdump 1.6/1.7.1 (:data:`NFDUMP_CSV_COLUMNS`, checked against
nfdump 1.7.1 output) when its rows have exactly that shape; any other headerless file is
refused as a whole ("no header line"), never stored as one quarantined record.

Times: nfdump prints ``ts``/``te`` as ``YYYY-mm-dd HH:MM:SS`` in the *local time of the
shell that ran it* (``TZ``), with no zone (checked with nfdump 1.7.1: ``TZ=Asia/Taipei``
shifts every time by +8 h, and nothing in the output says so).  sightline reads them as
UTC, so export with ``TZ=UTC nfdump -r FILE -o csv``; a CSV made in another zone is stored
shifted by that zone's offset, and no check can tell reliably.  ``-o csv`` also prints whole
seconds only (nfdump 1.7.1).

NetFlow is unidirectional: ``ibyt``/``ipkt`` are the flow's bytes and packets
(``bytes_out``/``packets_out``); ``obyt``/``opkt`` (set by NSEL/biflow exporters) become
``bytes_in``/``packets_in`` where ``opkt > 0``, else null.  ``conn_state`` comes from the
flag letters (``flg``, e.g. ``...A..S.``) with the unidirectional mapping of
:mod:`sightline.ingest.tcpstate`.

Binary nfcapd files are read with Debian's ``nfdump`` binary, streamed, with ``TZ=UTC`` and
the output format :data:`NFCAPD_FMT` (``-q -N -6 -o fmt:%ts,%te,...``): start and end with
milliseconds (``-o csv`` would drop them), plain numbers (``-N``; without it byte counts
print as ``1.1 M``) and full IPv6 addresses (``-6``).  ``%tsr``/``%ter`` (epoch seconds) are
not used: nfdump 1.7.1 prints ``%ter`` with wrong milliseconds.  sightline does not
re-implement nfdump's compressed block format.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..errors import InputError
from .base import Format, ReaderContext, register_format
from .netflow import PROTO_NAMES
from .normalize import normalize_text_columns
from .tcpstate import ACK, FIN, PSH, RST, SYN, conn_state_uniflow

NFDUMP_FIELDS: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "firstSeen", "first", "tstart"),
    "te": ("te", "lastSeen", "last", "tend"),
    "duration_s": ("td", "duration"),
    "src_ip": ("sa", "srcAddr", "srcaddr", "src4Addr", "src6Addr"),
    "dst_ip": ("da", "dstAddr", "dstaddr", "dst4Addr", "dst6Addr"),
    "src_port": ("sp", "srcPort", "srcport"),
    "dst_port": ("dp", "dstPort", "dstport"),
    "proto": ("pr", "proto", "protocol"),
    "flags": ("flg", "flags", "tcpFlags"),
    "packets_out": ("ipkt", "packets", "inPackets", "in_packets"),
    "bytes_out": ("ibyt", "bytes", "inBytes", "in_bytes"),
    "packets_in": ("opkt", "outPackets", "out_packets"),
    "bytes_in": ("obyt", "outBytes", "out_bytes"),
}
"""Flow role -> nfdump CSV column names (any release)."""

NFDUMP_CSV_COLUMNS: tuple[str, ...] = (
    "ts",
    "te",
    "td",
    "sa",
    "da",
    "sp",
    "dp",
    "pr",
    "flg",
    "fwd",
    "stos",
    "ipkt",
    "ibyt",
    "opkt",
    "obyt",
    "in",
    "out",
    "sas",
    "das",
    "smk",
    "dmk",
    "dtos",
    "dir",
    "nh",
    "nhb",
    "svln",
    "dvln",
    "ismc",
    "odmc",
    "idmc",
    "osmc",
    *(f"mpls{i}" for i in range(1, 11)),
    "cl",
    "sl",
    "al",
    "ra",
    "eng",
    "exid",
    "tr",
)
"""The columns of ``nfdump -o csv`` in nfdump 1.6 and 1.7.1 (the header ``-q`` leaves out)."""

_TIME = rb"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
_HEADERLESS_ROW = re.compile(
    rb"^" + _TIME + rb"," + _TIME + rb",[0-9]+(\.[0-9]+)?,[0-9a-fA-F:.]+,[0-9a-fA-F:.]+,"
    rb"[0-9]+(\.[0-9]+)?,[0-9]+(\.[0-9]+)?,[A-Za-z0-9]+,"
)
NO_HEADER_HINT = "export with `nfdump -o csv` without -q (its first line names the columns)"

NFCAPD_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "%ts"),
    ("te", "%te"),
    ("td", "%td"),
    ("sa", "%sa"),
    ("da", "%da"),
    ("sp", "%sp"),
    ("dp", "%dp"),
    ("pr", "%pr"),
    ("flg", "%flg"),
    ("ipkt", "%ipkt"),
    ("ibyt", "%ibyt"),
    ("opkt", "%opkt"),
    ("obyt", "%obyt"),
)
"""nfdump output tag of each column sightline asks ``nfdump`` for when it reads an nfcapd file."""
NFCAPD_FMT = "fmt:" + ",".join(tag for _, tag in NFCAPD_FIELDS)
NFCAPD_ARGS = ("-q", "-N", "-6", "-o", NFCAPD_FMT)

NFCAPD_MAGIC = b"\x0c\xa5"
CHUNK = 16 << 20
_FLAG_BITS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK}


def _header_map(names: list[str]) -> dict[str, str] | None:
    out = {}
    for role, cands in NFDUMP_FIELDS.items():
        for c in cands:
            if c in names:
                out[role] = c
                break
    if not {"ts", "src_ip", "dst_ip"} <= set(out):
        return None
    return out


def is_headerless_row(line: bytes) -> bool:
    """Whether ``line`` is a data row of nfdump 1.6/1.7.1 ``-o csv`` (48 columns, times first)."""
    line = line.strip()
    return line.count(b",") == len(NFDUMP_CSV_COLUMNS) - 1 and _HEADERLESS_ROW.match(line) is not None


def _parse_ts(col: pa.Array) -> pa.Array:
    """nfdump times: ``YYYY-mm-dd HH:MM:SS[.fff]`` (local time of the nfdump run; we run it in
    UTC) or epoch numbers (seconds or milliseconds).  Returns epoch seconds as float64."""
    text = pc.utf8_trim_whitespace(col)
    is_num = pc.fill_null(pc.match_substring_regex(text, r"^[0-9]+(\.[0-9]+)?$"), False)
    base = pc.utf8_slice_codeunits(text, 0, 19)
    parsed = pc.strptime(
        pc.if_else(is_num, pa.scalar(None, pa.string()), base), format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True
    )
    secs = pc.cast(pc.cast(parsed, pa.int64()), pa.float64())
    frac_txt = pc.utf8_slice_codeunits(text, 19, 32)
    frac = pc.cast(
        pc.if_else(
            pc.fill_null(pc.match_substring_regex(frac_txt, r"^\.[0-9]+$"), False),
            pc.binary_join_element_wise("0", frac_txt, ""),
            "0",
        ),
        pa.float64(),
    )
    secs = pc.add(secs, frac)
    num = pc.cast(pc.if_else(is_num, text, pa.scalar(None, pa.string())), pa.float64())
    num = pc.if_else(pc.greater(num, 1e11), pc.divide(num, 1000.0), num)  # epoch milliseconds
    out = pc.if_else(is_num, num, secs)
    # unparseable text stays text so that normalize quarantines it with the reason
    return pc.if_else(pc.is_null(out), col, pc.cast(out, pa.string()))


def _flags(col: pa.Array | None, n: int) -> np.ndarray:
    if col is None:
        return np.zeros(n, dtype=np.int64)
    text = pc.fill_null(pc.cast(col, pa.string()), "")
    out = np.zeros(n, dtype=np.int64)
    hexmask = np.asarray(pc.match_substring_regex(text, r"^0x[0-9a-fA-F]+$").to_numpy(zero_copy_only=False), dtype=bool)
    for letter, bit in _FLAG_BITS.items():
        has = np.asarray(pc.match_substring(text, letter).to_numpy(zero_copy_only=False), dtype=bool)
        out |= np.where(has & ~hexmask, bit, 0)
    if hexmask.any():
        for i in np.nonzero(hexmask)[0].tolist():
            out[i] = int(text[i].as_py(), 16) & 0xFF
    return out


def _read_csv_text(
    ctx: ReaderContext, stream: io.RawIOBase | io.BufferedIOBase, fmt: str, columns: tuple[str, ...] | None = None
) -> Iterator[pa.RecordBatch]:
    """Rows of nfdump CSV text; the first line names the columns unless ``columns`` does.

    A file without a header line is read by :data:`NFDUMP_CSV_COLUMNS` when its first row
    has that shape; otherwise it raises :class:`InputError` before anything is read (the file
    is not read at all, rather than stored as one quarantined record)."""
    header_line = b""
    line_no = 1
    rest = b""
    names: list[str] | None = list(columns) if columns else None
    mapping: dict[str, str] | None = _header_map(names) if names else None
    done = False
    while not done:
        block = stream.read(CHUNK)
        if not block:
            done = True
            data = rest
        else:
            data = rest + block
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                if len(rest) > 4 * CHUNK:
                    ctx.quarantine(line_no, "line longer than 64 MiB", rest[:512])
                    return
                continue
            data, rest = data[: cut + 1], data[cut + 1 :]
        if names is None:
            nl = data.find(b"\n")
            header_line = data[: nl if nl >= 0 else len(data)].strip()
            names = [h.strip() for h in header_line.decode("utf-8", "replace").split(",")]
            mapping = _header_map(names)
            if mapping is not None:
                data = data[nl + 1 :] if nl >= 0 else b""
                line_no = 2
            elif is_headerless_row(header_line):  # nfdump -q -o csv: the 1.6/1.7.1 columns, no header
                names = list(NFDUMP_CSV_COLUMNS)
                mapping = _header_map(names)
            else:
                raise InputError(
                    "not an nfdump CSV export: no header line naming the columns, and the rows are not "
                    "nfdump 1.6/1.7.1 `-o csv` rows",
                    path=ctx.path,
                    hint=NO_HEADER_HINT,
                )
        stop = data.find(b"Summary")
        if stop >= 0 and (stop == 0 or data[stop - 1 : stop] == b"\n"):
            data, done = data[:stop], True
        if data.strip():
            assert mapping is not None
            yield from _parse(ctx, data, names, mapping, line_no, fmt)
            line_no += data.count(b"\n")


def _parse(
    ctx: ReaderContext, data: bytes, names: list[str], mapping: dict[str, str], first_line: int, fmt: str
) -> Iterator[pa.RecordBatch]:
    skipped: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        num = row.number if row.number is not None else 0
        skipped.append(num)
        ctx.quarantine(first_line + num - 1, f"expected {len(names)} fields, got {row.actual_columns}", row.text)
        return "skip"

    wanted = sorted(set(mapping.values()))
    try:
        t = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 26),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted, column_types={c: pa.string() for c in wanted}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        ctx.quarantine(first_line, f"unparseable CSV block: {e}", data[:512])
        return
    n = t.num_rows
    if n == 0:
        return
    c = {role: t.column(name).combine_chunks() for role, name in mapping.items()}
    cols: dict[str, pa.Array] = {"ts": _parse_ts(c["ts"])}
    for role in ("src_ip", "dst_ip", "src_port", "dst_port", "bytes_out", "packets_out", "duration_s"):
        if role in c:
            cols[role] = pc.utf8_trim_whitespace(c[role])  # nfdump's fmt output pads its columns
    proto = pc.utf8_lower(pc.utf8_trim_whitespace(c["proto"])) if "proto" in c else None
    if proto is not None:
        proto = pc.if_else(pc.equal(proto, "icmp6"), "icmp", proto)
        number = pc.fill_null(pc.match_substring_regex(proto, r"^[0-9]{1,3}$"), False)
        if pc.any(number).as_py():  # `nfdump -N` prints protocol numbers
            num = pc.if_else(number, proto, pa.scalar("0"))
            named = PROTO_NAMES.take(pc.bit_wise_and(pc.cast(num, pa.int64()), pa.scalar(0xFF, pa.int64())))
            proto = pc.if_else(number, named, proto)
        cols["proto"] = proto
    if "src_port" in cols:  # nfdump writes ICMP type.code as "8.0" in dp for some releases
        for role in ("src_port", "dst_port"):
            if role not in cols:  # a header may name one port column and not the other
                continue
            cols[role] = pc.replace_substring_regex(cols[role], r"^([0-9]+)\.[0-9]+$", r"\1")
    if "packets_in" in c:
        opkt = pc.utf8_trim_whitespace(c["packets_in"])
        has_rev = pc.fill_null(pc.and_(pc.match_substring_regex(opkt, r"^[0-9]+$"), pc.not_equal(opkt, "0")), False)
        cols["packets_in"] = pc.if_else(has_rev, opkt, pa.scalar(None, pa.string()))
        if "bytes_in" in c:
            cols["bytes_in"] = pc.if_else(has_rev, pc.utf8_trim_whitespace(c["bytes_in"]), pa.scalar(None, pa.string()))
    is_tcp = (
        np.asarray(pc.fill_null(pc.equal(proto, "tcp"), False).to_numpy(zero_copy_only=False), dtype=bool)
        if proto is not None
        else np.zeros(n, dtype=bool)
    )
    cols["conn_state"] = conn_state_uniflow(is_tcp, _flags(c.get("flags"), n))
    norm = normalize_text_columns(cols, n, source_format=fmt, source_file=str(ctx.path), sensor=ctx.sensor)
    if len(norm.bad_index):
        lines = first_line + np.arange(n)  # skipped rows are rare; positions are approximate then
        for i, reason in zip(norm.bad_index.tolist(), norm.bad_reason):
            raw = ",".join(str(t.column(k)[i].as_py()) for k in wanted)
            ctx.quarantine(int(lines[i]), reason, raw)
    yield from norm.table.to_batches()


def read_nfdump_csv(ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
    """Flows from ``nfdump -o csv`` output (with its header line, or ``-q`` without)."""
    yield from _read_csv_text(ctx, ctx.stream, "nfdump_csv")  # type: ignore[arg-type]


def has_csv_header(head: bytes) -> bool:
    """Whether ``head`` starts with an nfdump CSV header line."""
    first = head.split(b"\n", 1)[0].strip().decode("utf-8", "replace")
    names = [x.strip() for x in first.split(",")]
    return (
        len(names) >= 8
        and _header_map(names) is not None
        and ("ibyt" in names or "firstSeen" in names or "te" in names)
    )


def sniff_nfdump_csv(head: bytes) -> bool:
    return has_csv_header(head) or is_headerless_row(head.split(b"\n", 1)[0])


def nfdump_binary() -> str | None:
    return shutil.which("nfdump")


def read_nfcapd(ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
    """Flows from a binary nfcapd file, decoded by the ``nfdump`` tool."""
    exe = nfdump_binary()
    if exe is None:
        raise InputError(
            "reading nfcapd files needs the nfdump tool, which is not installed",
            path=ctx.path,
            hint="apt-get install nfdump, or export with 'nfdump -r FILE -o csv' elsewhere",
        )
    tmp = None
    path = str(ctx.path)
    with open(ctx.path, "rb") as fh:
        raw_is_nfcapd = fh.read(2) == NFCAPD_MAGIC
    if not raw_is_nfcapd:  # compressed on disk: nfdump needs a seekable plain file
        fd, tmp = tempfile.mkstemp(suffix=".nfcapd")
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(ctx.stream, out, 1 << 20)
        path = tmp
    env = dict(os.environ, TZ="UTC")  # nfdump prints local time with no zone: make it UTC
    try:
        proc = subprocess.Popen(
            [exe, "-r", path, *NFCAPD_ARGS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None
        try:
            yield from _read_csv_text(ctx, proc.stdout, "nfcapd", tuple(name for name, _ in NFCAPD_FIELDS))
        finally:
            proc.stdout.close()
            err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
            rc = proc.wait()
            if proc.stderr:
                proc.stderr.close()
        if rc != 0:
            ctx.quarantine(0, f"nfdump exited with {rc}: {err.strip()[:300]}", "", kind="file")
    finally:
        if tmp:
            os.unlink(tmp)


def sniff_nfcapd(head: bytes) -> bool:
    return head[:2] == NFCAPD_MAGIC and head[2:4] in (b"\x01\x00", b"\x02\x00")


register_format(Format("nfcapd", sniff_nfcapd, read_nfcapd, "nfcapd binary file (read through nfdump)"))
register_format(
    Format("nfdump_csv", sniff_nfdump_csv, read_nfdump_csv, "nfdump CSV export (nfdump -o csv, with or without -q)")
)

__all__ = [
    "NFDUMP_FIELDS",
    "NFDUMP_CSV_COLUMNS",
    "NFCAPD_FMT",
    "NFCAPD_ARGS",
    "read_nfdump_csv",
    "read_nfcapd",
    "nfdump_binary",
    "has_csv_header",
    "is_headerless_row",
]
