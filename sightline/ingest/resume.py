"""Grown files: reading only what was appended to a file ingested before.

A file whose content *starts with* exactly the content of an ingested file (a live
``eve.json`` or Zeek ``conn.log`` that grew since, or the rotated file it became, even
compressed) is what a log shipper would tail: only what was appended is read, from the
first line the earlier ingest did not store (:func:`_resume_point`).  That needs a
line-oriented format (:data:`RESUME_HEADERS`); a Zeek TSV tail is read under the ``#`` header
lines from the top of the file.  A binary format (pcap, nfcapd) that grew cannot be read from
the middle: it is refused with the reason, and nothing is stored.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError
from . import nfdump
from .base import Format, ReaderContext
from .identity import HASH_BLOCK, _Mark
from .inputs import is_compressed, open_input


def _hash_header(head: bytes) -> bytes | None:
    """The ``#`` lines a Zeek TSV log starts with (``#separator`` .. ``#types``), which a tail
    needs in front; ``b""`` for JSON lines; None when they run past the head."""
    pos = 0
    while head.startswith(b"#", pos):
        nl = head.find(b"\n", pos)
        if nl < 0:
            return None
        pos = nl + 1
    return head[:pos]


def _nfdump_header(head: bytes) -> bytes | None:
    """The CSV header line, when the file has one (``nfdump -q`` output has none)."""
    first = head.split(b"\n", 1)[0]
    return first + b"\n" if nfdump.has_csv_header(head) else b""


RESUME_HEADERS: dict[str, Callable[[bytes], bytes | None]] = {
    "zeek_tsv": _hash_header,
    "zeek_dns": _hash_header,
    "zeek_ssl": _hash_header,
    "zeek_x509": _hash_header,
    "zeek_json": lambda head: b"",
    "suricata_eve": lambda head: b"",
    "nfdump_csv": _nfdump_header,
}
"""Formats that can be read from a line boundary in the middle of a file -> the bytes that
must come first (from the file's head).  Binary formats (pcap, NetFlow pcap, nfcapd) are
absent: a file of theirs that grew is refused."""


MAX_LINE = 64 << 20


def _open_at(path: Path, offset: int) -> BinaryIO:
    """The decompressed content of ``path`` from ``offset`` on (a seek, or a bounded skip)."""
    fh = open_input(path)
    if offset and not is_compressed(path):
        fh.seek(offset)
        return fh
    left = offset
    while left > 0:
        block = fh.read(min(HASH_BLOCK, left))
        if not block:
            break
        left -= len(block)
    return fh


def _read_line(fh: BinaryIO, limit: int) -> bytes:
    """The bytes up to and including the next newline (or ``limit`` bytes, or EOF)."""
    out = b""
    while len(out) < min(limit, MAX_LINE):
        block = fh.read(min(1 << 16, limit - len(out)))
        if not block:
            break
        nl = block.find(b"\n")
        if nl >= 0:
            return out + block[: nl + 1]
        out += block
    return out


def _yields_records(fmt: Format, path: Path, data: bytes) -> bool:
    """Whether ``fmt`` reads a record (flow or name) from ``data`` alone."""
    ctx = ReaderContext(path=path, stream=io.BytesIO(data))
    try:
        return any(b.num_rows for b in fmt.read(ctx))
    except (OSError, EOFError, InputError, ValueError):
        return False


@dataclass
class _Resume:
    offset: int  # where the tail is read from
    lines: int  # newlines before it (for quarantine positions)
    between: bytes  # content from the ingested length to ``offset`` (hashed, not read)
    note: str


def _resume_point(path: Path, fmt: Format, header: bytes, mark: _Mark, length: int, size: int) -> _Resume:
    """Where to read a grown file that starts with ``length`` bytes ingested before.

    A live log is often read while its writer is in the middle of a line (Zeek and Suricata
    write in buffered blocks).  If the earlier ingest ended at a line boundary, the tail
    starts right there.  If only the line's newline was missing, the record was complete
    then: the tail starts after it.  If the line really was cut, the earlier ingest either
    quarantined it (every JSON line format, and CSV/TSV cut before the last field): it is
    read again whole; or stored it (a TSV/CSV line cut inside its last field, one sightline
    does not use): it is not stored twice.  Reading that one cut line again decides which.
    """
    if mark.last_byte == b"\n":
        return _Resume(length, mark.lines, b"", "")
    start = mark.line_start
    with _open_at(path, start) as fh:
        line = _read_line(fh, size - start)
    rest = line[length - start :]
    after = start + len(line)
    ended = 1 if line.endswith(b"\n") else 0
    if not ended and after < size:  # longer than MAX_LINE: the reader quarantines it, whole
        return _Resume(start, mark.lines, b"", "")
    if not rest.strip():
        return _Resume(after, mark.lines + ended, rest, "")
    line_no = mark.lines + 1
    if _yields_records(fmt, path, header + line[: length - start]):
        return _Resume(
            after,
            mark.lines + ended,
            rest,
            f"line {line_no:,} was being written at the earlier ingest and was stored as it was then",
        )
    return _Resume(
        start,
        mark.lines,
        b"",
        f"line {line_no:,} was cut off at the earlier ingest (quarantined then) and is read whole now",
    )


@dataclass
class _TailContext(ReaderContext):
    """A reader's context for a tail read under copied header lines: line positions of
    quarantined records are moved to the lines of the whole file."""

    line_shift: int = 0

    def quarantine(self, position: int, reason: str, raw: str | bytes = "", kind: str = "line") -> None:
        if kind == "line" and position > 0:
            position += self.line_shift
        super().quarantine(position, reason, raw, kind)


__all__ = ["MAX_LINE", "RESUME_HEADERS"]
