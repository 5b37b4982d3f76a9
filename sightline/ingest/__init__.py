"""Ingest: telemetry files -> flow store.

Public API::

    ingest_paths(ws, paths, sensor=None, progress=None) -> IngestSummary

Formats are detected by content (see :mod:`sightline.ingest.base`); ``.gz``/``.zst``
compression by magic bytes.  An empty file (0 bytes, only whitespace, or a compressed file
that decompresses to nothing: a rotated log of a quiet interval) is skipped and counted as
empty, not treated as an unknown format; it is not an error, not even under ``--strict``,
just as a Zeek log with only its header is not.

Identity is the content, not the bytes on disk (:func:`content_identity`).  A file is
"already ingested" and skipped when its raw sha256 or the sha256 of its decompressed
content is in the workspace manifest, so ingesting twice adds nothing, and neither does a
``.gz``/``.zst`` copy, a renamed copy, or a logrotate that renames ``eve.json.1`` to
``eve.json.2.gz``.  Each manifest entry stays keyed by the raw hash and records
``content_sha256``, ``content_size`` and ``content_head_sha256`` (its first 64 KiB) beside
it; older entries, without them, still match the same file on disk (a plain file's raw hash
is its content hash).  A plain file is hashed in one pass, as before.  A compressed file
costs a second, decompressing pass only when an ingested file shares its first 64 KiB (or
an entry predates content hashes); otherwise it cannot be a copy or a continuation, and its
content is hashed while it is read.

A reader that cannot read a file at all (no header to go by, ``nfdump`` missing) stores
nothing, so the file is not "already ingested" once it can be read; it counts as not read.

A file whose content *starts with* exactly the content of an ingested file (a live
``eve.json`` or Zeek ``conn.log`` that grew since, or the rotated file it became, even
compressed) is what a log shipper would tail: only what was appended is read, from the
first line the earlier ingest did not store (:func:`_resume_point`).  That needs a
line-oriented format; a Zeek TSV tail is read under the ``#`` header lines from the top of
the file.  A binary format (pcap, nfcapd) that grew cannot be read from the middle: it is
refused with the reason, and nothing is stored.  The file is read only up to the length that
was hashed, and the bytes read are hashed again: a file rewritten while it is read (a
``copytruncate`` rotation) stores nothing and says so.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import logging
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from ..compression import GZIP_MAGIC, MAX_DECOMPRESSED_RATIO, ZSTD_MAGIC, decompressed_limit
from ..errors import InputError
from ..store import FlowWriter, Workspace
from . import zeek  # noqa: F401  (registers formats)
from . import netflow  # noqa: F401  (registers formats)
from . import pcap  # noqa: F401  (registers formats)
from . import nfdump  # (registers formats)
from . import suricata  # noqa: F401  (registers formats)
from . import names, suricata_names  # noqa: F401  (Zeek dns/ssl/x509, eve dns/tls: names dataset)
from .base import Format, ReaderContext, formats, get_format, register_format, sniff_format

log = logging.getLogger("sightline.ingest")

EMPTY_FILE = "empty file, nothing to ingest"
"""The reason given for a file that holds no data at all (see the module docstring)."""

SNIFF_BYTES = 65536
"""How much of a file's decompressed start format detection looks at."""

HEAD_ID_BYTES = 65536
"""The start of the content whose hash (``content_head_sha256``) tells a compressed file that
cannot be a copy or a continuation of an ingested one (no more than :data:`SNIFF_BYTES`;
changing it makes older entries ask for the hashing pass)."""


@dataclass
class FileResult:
    path: str
    format: str | None
    rows: int = 0
    quarantined: int = 0
    skipped: bool = False  # not read, and that is no problem (already ingested, empty)
    reason: str = ""
    seconds: float = 0.0
    names: int = 0  # DNS answers, TLS names and certificates (the names dataset)
    empty: bool = False  # nothing but whitespace once decompressed (also ``skipped``)
    note: str = ""  # read, but not all of it: only what was appended since an earlier ingest


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    @property
    def errors(self) -> list[FileResult]:
        return [f for f in self.files if f.reason and not f.skipped]

    @property
    def empty(self) -> list[FileResult]:
        """Files skipped because they hold nothing (not errors)."""
        return [f for f in self.files if f.empty]


class CompressedInputError(InputError):
    """A compressed stream that is corrupt or expands past the bound (what was read before
    it broke is kept, and where it broke is quarantined)."""


class _BoundedReader(io.RawIOBase):
    """Wrap a decompressing stream and stop it past a size bound."""

    def __init__(self, inner: BinaryIO, limit: int, path: Path) -> None:
        self.inner = inner
        self.limit = limit
        self.read_so_far = 0
        self.path = path

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        try:
            data = self.inner.read(len(b))
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:
            # zlib.error and ZstdError are not OSError: a corrupt archive must become a
            # typed input error (quarantined by ingest_file), not a crash
            raise CompressedInputError(f"corrupt compressed input: {e}", path=self.path,
                                       hint="check the file or re-export it") from e
        n = len(data)
        self.read_so_far += n
        if self.read_so_far > self.limit:
            raise CompressedInputError(
                f"decompressed size exceeds {self.limit} bytes (ratio bound {MAX_DECOMPRESSED_RATIO}x)",
                path=self.path,
                hint="decompress it yourself if the file is genuine",
            )
        b[:n] = data
        return n


def open_input(path: Path) -> BinaryIO:
    """Open a file, transparently decompressing gzip or zstd (by magic bytes)."""
    raw = open(path, "rb")
    magic = raw.read(4)
    raw.seek(0)
    size = max(path.stat().st_size, 1)
    if magic.startswith(GZIP_MAGIC):
        inner: BinaryIO = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    elif magic == ZSTD_MAGIC:
        import zstandard

        inner = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[assignment]
    else:
        return raw
    return io.BufferedReader(_BoundedReader(inner, decompressed_limit(size), path), 1 << 20)  # type: ignore[return-value]


def file_sha256(path: Path) -> str:
    """The sha256 of the bytes on disk (not decompressed)."""
    with open(path, "rb") as fh:
        return _scan(fh, ())[0]


HASH_BLOCK = 1 << 22
"""Block size of the hashing passes: memory stays bounded whatever the file's size."""


@dataclass
class _Mark:
    """What the hashing pass saw at one offset of the content (an ingested file's length)."""

    state: hashlib._Hash  # sha256 of content[:offset], still open
    last_byte: bytes  # content[offset - 1]
    line_start: int  # just after the last newline in content[:offset] (0 if none)
    lines: int  # newlines in content[:offset]

    @property
    def sha256(self) -> str:
        return self.state.hexdigest()


@dataclass
class ContentIdentity:
    """The identity of one input: its raw hash and that of its decompressed content."""

    raw_sha256: str
    content_sha256: str | None  # None: the compressed stream could not be read to its end
    content_size: int  # decompressed bytes hashed (what ingest then reads, no more)
    compressed: bool
    marks: dict[int, _Mark] = field(default_factory=dict)
    deferred: bool = False  # not hashed yet: ingest hashes the content while it reads it


def _scan(stream: BinaryIO, offsets: Iterable[int]) -> tuple[str, int, dict[int, _Mark]]:
    """sha256 and length of a stream, read in bounded blocks, with a :class:`_Mark` at each
    of ``offsets`` (the hash so far, kept open so that a later read can continue it).

    Newlines are counted piece by piece between offsets, so many offsets cost no more than one.
    """
    h = hashlib.sha256()
    todo = sorted({int(o) for o in offsets if int(o) > 0})
    marks: dict[int, _Mark] = {}
    pos = k = newlines = 0
    last_nl = -1
    while True:
        block = stream.read(HASH_BLOCK)
        if not block:
            break
        view = memoryview(block)
        end = pos + len(block)
        done = 0
        while k < len(todo) and todo[k] <= end:
            j = todo[k] - pos  # >= 1: an offset at a block's start was marked at the previous one's end
            h.update(view[done:j])
            newlines += block.count(b"\n", done, j)
            nl = block.rfind(b"\n", done, j)
            last_nl = pos + nl if nl >= 0 else last_nl
            marks[todo[k]] = _Mark(h.copy(), block[j - 1:j], last_nl + 1, newlines)
            done = j
            k += 1
        h.update(view[done:])
        if k < len(todo):  # line positions only matter while an offset is still ahead
            newlines += block.count(b"\n", done)
            nl = block.rfind(b"\n", done)
            last_nl = pos + nl if nl >= 0 else last_nl
        pos = end
    return h.hexdigest(), pos, marks


def is_compressed(path: Path) -> bool:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return magic.startswith(GZIP_MAGIC) or magic == ZSTD_MAGIC


def content_identity(path: Path, offsets: Iterable[int] = (), *, raw_sha256: str | None = None) -> ContentIdentity:
    """Hash ``path`` and, when it is compressed, its decompressed content too (a second
    streaming pass); ``offsets`` are content lengths of ingested files to mark on the way.

    A plain file is read once: its raw hash is its content hash.
    """
    if not is_compressed(path):
        with open(path, "rb") as fh:
            sha, size, marks = _scan(fh, offsets)
        return ContentIdentity(sha, sha, size, False, marks)
    raw = raw_sha256 or file_sha256(path)
    try:
        with open_input(path) as fh:
            content, size, marks = _scan(fh, offsets)
    except (OSError, EOFError, InputError):  # corrupt or a bomb: the reader will say where it breaks
        return ContentIdentity(raw, None, 0, True)
    return ContentIdentity(raw, content, size, True, marks)


def _prefix_candidates(files: dict[str, dict]) -> dict[int, list[str]]:
    """content_size -> keys of the manifest entries a grown file may start with.

    Only entries that stored or quarantined something: skipping a prefix that held no record
    changes nothing, and a header-only Zeek log would otherwise claim every log of that day."""
    out: dict[int, list[str]] = {}
    for key, e in files.items():
        size = e.get("content_size")
        if e.get("content_sha256") and isinstance(size, int) and size > 0 and (
                e.get("rows") or e.get("name_rows") or e.get("quarantined")):
            out.setdefault(size, []).append(key)
    return out


def _may_share_content(files: dict[str, dict], head: bytes) -> bool:
    """Whether an ingested file may have the content that starts with ``head`` (at least
    :data:`HEAD_ID_BYTES` of it, or all), or be its start: if not, a compressed file needs no
    hashing pass.

    Equal content, or content starting with an ingested file's, shares that file's first
    64 KiB (``content_head_sha256``), or all of it when it is shorter.  Entries written before
    content hashes existed cannot tell, so they always ask for the pass."""
    head = head[:HEAD_ID_BYTES]
    head_sha = hashlib.sha256(head).hexdigest()
    short: dict[int, str] = {}
    for e in files.values():
        if e.get("format") == "netflow_collector":
            continue
        if "content_sha256" not in e or e.get("content_head_sha256") == head_sha:
            return True
        size = e.get("content_size")
        if isinstance(size, int) and 0 < size < len(head) and e.get("content_sha256"):
            if size not in short:
                short[size] = hashlib.sha256(head[:size]).hexdigest()
            if short[size] == e["content_sha256"]:
                return True
    return False


def _same_content(files: dict[str, dict], ident: ContentIdentity) -> str | None:
    """The manifest key of an ingested file with the same raw bytes or the same content."""
    if ident.raw_sha256 in files:
        return ident.raw_sha256
    if ident.content_sha256 is None:
        return None
    if ident.content_sha256 in files:  # a plain file's key is its content hash (also in old manifests)
        return ident.content_sha256
    for key, e in files.items():
        if e.get("content_sha256") == ident.content_sha256:
            return key
    return None


def _ingested_prefix(files: dict[str, dict], ident: ContentIdentity,
                     candidates: dict[int, list[str]]) -> tuple[str, int] | None:
    """(key, length) of the longest ingested content this file's content starts with."""
    for size in sorted(ident.marks, reverse=True):
        if size >= ident.content_size:
            continue
        sha = ident.marks[size].sha256
        for key in candidates.get(size, []):
            if files[key].get("content_sha256") == sha:
                return key, size
    return None


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, files under directories named (recursively), and glob patterns."""
    out: list[Path] = []
    for p in paths:
        s = str(p)
        if any(ch in s for ch in "*?[") and not Path(s).exists():
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                raise InputError("no file matches the pattern", path=s)
            out.extend(Path(m) for m in matches if Path(m).is_file())
            continue
        path = Path(s)
        if path.is_dir():
            out.extend(sorted(q for q in path.rglob("*") if q.is_file() and not q.name.startswith(".")))
        elif path.is_file():
            out.append(path)
        else:
            raise InputError("no such file or directory", path=s, hint="check the path")
    return out


def _read_head(path: Path) -> bytes:
    with open_input(path) as fh:
        return fh.read(SNIFF_BYTES)


def detect_file_format(path: Path) -> Format | None:
    return sniff_format(_read_head(path))


def is_empty_input(path: Path, head: bytes | None = None) -> bool:
    """True when the decompressed file holds nothing but whitespace.

    ``head`` (the first :data:`SNIFF_BYTES`, when already read) answers for nearly every
    file; only a head of whitespace makes it read on, in bounded blocks, until data or EOF.
    """
    if head is None:
        head = _read_head(path)
    if head.strip():
        return False
    if len(head) < SNIFF_BYTES:
        return True
    with open_input(path) as fh:
        while True:
            block = fh.read(1 << 20)
            if not block:
                return True
            if block.strip():
                return False


def _why_unknown(path: Path) -> str:
    """Say what an unrecognized file looks like, so the user knows whether to expect it."""
    try:
        with open_input(path) as fh:
            head = fh.read(4096)
    except (OSError, EOFError, InputError):
        head = b""
    i = head.find(b"#path\t")
    if i >= 0:
        kind = head[i + 6: head.find(b"\n", i)].strip().decode("utf-8", "replace")[:40]
        return (f"a Zeek {kind} log: not telemetry sightline reads (it reads Zeek conn, dns, ssl and x509 "
                "logs, NetFlow/IPFIX, Suricata eve, pcap and nfdump)")
    return ("unknown format (not a telemetry format sightline reads: Zeek conn/dns/ssl/x509, NetFlow/IPFIX pcap, "
            "Suricata eve, pcap, nfdump CSV/nfcapd)")


def sensor_time_offsets(ws: Workspace) -> dict[str, float]:
    """Per-sensor clock corrections from the configuration (``[network] time_offsets``)."""
    from ..config import load_config

    return dict(load_config(workspace=ws.root).network.time_offsets)


# ------------------------------------------------------------------ grown files (appends)

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
    "zeek_tsv": _hash_header, "zeek_dns": _hash_header, "zeek_ssl": _hash_header, "zeek_x509": _hash_header,
    "zeek_json": lambda head: b"", "suricata_eve": lambda head: b"", "nfdump_csv": _nfdump_header,
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
    rest = line[length - start:]
    after = start + len(line)
    ended = 1 if line.endswith(b"\n") else 0
    if not ended and after < size:  # longer than MAX_LINE: the reader quarantines it, whole
        return _Resume(start, mark.lines, b"", "")
    if not rest.strip():
        return _Resume(after, mark.lines + ended, rest, "")
    line_no = mark.lines + 1
    if _yields_records(fmt, path, header + line[: length - start]):
        return _Resume(after, mark.lines + ended, rest,
                       f"line {line_no:,} was being written at the earlier ingest and was stored as it was then")
    return _Resume(start, mark.lines, b"",
                   f"line {line_no:,} was cut off at the earlier ingest (quarantined then) and is read whole now")


class _CheckedReader(io.RawIOBase):
    """``prefix`` (header lines, not hashed), then at most ``limit`` bytes of ``inner``, each
    hashed into ``hasher`` after the first ``skip``.  :meth:`intact` reads what the reader
    left and says whether the bytes were the ones hashed before (``expected``); without
    ``expected`` the hash is taken here, and :attr:`content` gives it once the stream was
    read to its end."""

    def __init__(self, inner: BinaryIO, limit: int | None, hasher: hashlib._Hash, expected: str | None, *,
                 prefix: bytes = b"", skip: int = 0) -> None:
        self.inner, self.hasher, self.expected = inner, hasher, expected
        self.left = limit if limit is not None else 1 << 62
        self.prefix, self.skip = prefix, skip
        self.size = 0  # bytes of inner read
        self.short = False  # inner ended before ``limit``
        self.broken = False  # inner could not be read to its end

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        if self.prefix:
            n = min(len(b), len(self.prefix))
            b[:n], self.prefix = self.prefix[:n], self.prefix[n:]
            return n
        if self.left <= 0:
            return 0
        view = memoryview(b).cast("B")[: min(len(b), self.left)]
        try:
            n = self.inner.readinto(view)  # straight into the caller's buffer: no copy
        except BaseException:
            self.broken = True
            raise
        if not n:
            self.short, self.left = True, 0
            return 0
        self.left -= n
        self.size += n
        cut = min(self.skip, n)
        self.skip -= cut
        self.hasher.update(view[cut:n])
        return n

    def intact(self) -> bool:
        buf = bytearray(min(HASH_BLOCK, max(self.left, 1)))
        try:
            while self.readinto(buf):
                pass
        except (OSError, EOFError, InputError, ValueError):
            pass  # broken: compared below (it decompressed before, so it changed since)
        if self.expected is None:
            return True
        return not self.broken and not self.short and self.hasher.hexdigest() == self.expected

    @property
    def content(self) -> str | None:
        return None if self.broken else self.hasher.hexdigest()


@dataclass
class _TailContext(ReaderContext):
    """A reader's context for a tail read under copied header lines: line positions of
    quarantined records are moved to the lines of the whole file."""

    line_shift: int = 0

    def quarantine(self, position: int, reason: str, raw: str | bytes = "", kind: str = "line") -> None:
        if kind == "line" and position > 0:
            position += self.line_shift
        super().quarantine(position, reason, raw, kind)


CHANGED_WHILE_READ = ("changed while it was read (rewritten or truncated: a log rotated with copytruncate?): "
                      "nothing stored; ingest it again, and ingest rotated files rather than the live log")


def ingest_file(
    ws: Workspace, path: Path, *, fmt_name: str | None = None, sensor: str | None = None,
    time_offsets: dict[str, float] | None = None,
) -> FileResult:
    """Ingest one file under the workspace lock.  Never raises for bad records.

    Skips it when its content was ingested before, and reads only what was appended when it
    starts with a file ingested before (see the module docstring).  ``time_offsets``
    (sensor -> seconds, default: the configuration's) are added to the timestamps of that
    sensor's records as they are stored."""
    t0 = time.perf_counter()
    try:
        head = _read_head(path)
        # before the manifest: every empty file has the same hash, and none is "already ingested"
        if is_empty_input(path, head):
            return FileResult(str(path), fmt_name, skipped=True, empty=True, reason=EMPTY_FILE,
                              seconds=time.perf_counter() - t0)
    except (OSError, EOFError, InputError) as e:
        return FileResult(str(path), None, reason=f"unreadable: {e}")
    files = ws.manifest().get("files", {})
    candidates = _prefix_candidates(files)
    if not is_compressed(path):
        ident = content_identity(path, candidates)  # one pass: the raw hash is the content hash
    else:
        raw = file_sha256(path)
        if raw in files or not _may_share_content(files, head):
            # the same compressed file again, or content no ingested file can equal or start
            # with: no decompression pass; the content is hashed while it is read
            ident = ContentIdentity(raw, None, 0, True, deferred=True)
        else:
            ident = content_identity(path, candidates, raw_sha256=raw)
    dup = _same_content(files, ident)
    if dup is not None:
        prev = files[dup]
        return FileResult(str(path), prev.get("format"), skipped=True, seconds=time.perf_counter() - t0,
                          reason=f"already ingested (same content as {prev.get('source_file')})")
    fmt = get_format(fmt_name) if fmt_name else sniff_format(head)
    if fmt is None:
        return FileResult(str(path), None, reason=_why_unknown(path))
    extra: dict = {"content_sha256": ident.content_sha256,
                   "content_size": ident.content_size if ident.content_sha256 else None,
                   "content_head_sha256": hashlib.sha256(head[:HEAD_ID_BYTES]).hexdigest(),
                   "source_path": str(Path(path).resolve())}
    resume: _Resume | None = None
    header = b""
    length = 0
    note = ""
    prefix = _ingested_prefix(files, ident, candidates)
    if prefix is not None:
        prev_key, length = prefix
        prev = files[prev_key]
        what = (f"its first {length:,} bytes{' once decompressed' if ident.compressed else ''} are "
                f"{prev.get('source_file')}, ingested before")
        make_header = RESUME_HEADERS.get(fmt.name)
        got = make_header(head) if make_header else None
        if got is None:
            return FileResult(str(path), fmt.name, seconds=time.perf_counter() - t0, reason=(
                f"{what}; a {fmt.name} file cannot be read from the middle, so nothing was stored: "
                "ingest files once they are complete (rotated), not while they are written"))
        header = got
        resume = _resume_point(path, fmt, header, ident.marks[length], length, ident.content_size)
        extra.update({"appended_to": prev_key, "read_from": resume.offset})
        note = f"{what}; read only what was appended since, from byte {resume.offset:,} (line {resume.lines + 1:,})"
        if resume.note:
            note += f"; {resume.note}"
    offsets = sensor_time_offsets(ws) if time_offsets is None else time_offsets
    writer = FlowWriter(ws, ident.raw_sha256, str(path), fmt.name, time_offsets=offsets)
    try:
        with (_open_at(path, resume.offset) if resume else open_input(path)) as inner:
            if resume is None:
                # read no more than was hashed (a live log grows meanwhile), and check it is the same
                checked = _CheckedReader(inner, ident.content_size if ident.content_sha256 else None,
                                         hashlib.sha256(), ident.content_sha256)
            else:
                hasher = ident.marks[length].state.copy()  # continues the hash of the ingested part
                hasher.update(resume.between)
                checked = _CheckedReader(inner, ident.content_size - resume.offset, hasher, ident.content_sha256,
                                         prefix=header, skip=max(length - resume.offset, 0))
            stream = io.BufferedReader(checked, 1 << 20)
            if resume is None:
                ctx = ReaderContext(path=path, stream=stream, sensor=sensor)
            else:
                ctx = _TailContext(path=path, stream=stream, sensor=sensor,
                                   line_shift=resume.lines - header.count(b"\n"))
            read_any = False
            try:
                for batch in fmt.read(ctx):
                    read_any = True
                    writer.write(batch)
            except InputError as e:
                if not isinstance(e, CompressedInputError) and not read_any and not ctx.bad_count:
                    # the reader cannot read this file at all (no header, tool missing): store
                    # nothing, so that it is not "already ingested" once it can be read
                    writer.abort()
                    return FileResult(str(path), fmt.name, seconds=time.perf_counter() - t0,
                                      reason=e.message + (f" ({e.hint})" if e.hint else ""))
                ctx.quarantine(-1, f"input ends abnormally: {e}", "", kind="file")
            except (OSError, EOFError, ValueError) as e:
                # truncated / corrupt compressed stream: keep what was read, record where it broke
                ctx.quarantine(-1, f"input ends abnormally: {e}", "", kind="file")
            if not checked.intact():
                writer.abort()
                return FileResult(str(path), fmt.name, seconds=time.perf_counter() - t0, reason=CHANGED_WHILE_READ)
            if ident.deferred and checked.content is not None:
                extra.update({"content_sha256": checked.content, "content_size": checked.size})
        entry = writer.commit(ctx.quarantine_table(), {"quarantined_total": ctx.bad_count, **extra})
    except BaseException:
        writer.abort()
        raise
    res = FileResult(str(path), fmt.name, rows=entry["rows"], quarantined=ctx.bad_count,
                     seconds=time.perf_counter() - t0, names=int(entry.get("name_rows") or 0))
    if note:
        res.note = note
        log.warning("%s: %s", path, note)
    return res


def ingest_paths(
    ws: Workspace,
    paths: Iterable[str | Path],
    *,
    fmt_name: str | None = None,
    sensor: str | None = None,
    progress: Callable[[FileResult], None] | None = None,
) -> IngestSummary:
    files = expand_paths(paths)
    summary = IngestSummary()
    offsets = sensor_time_offsets(ws)
    with ws.lock():
        ws.cleanup_orphans()
        for path in files:
            res = ingest_file(ws, path, fmt_name=fmt_name, sensor=sensor, time_offsets=offsets)
            log.info("ingest %s: format=%s rows=%d quarantined=%d %.2fs%s", path, res.format, res.rows,
                     res.quarantined, res.seconds, f" ({res.reason})" if res.reason else "")
            summary.files.append(res)
            if progress:
                progress(res)
    return summary


__all__ = [
    "FileResult",
    "IngestSummary",
    "ingest_paths",
    "ingest_file",
    "sensor_time_offsets",
    "expand_paths",
    "open_input",
    "file_sha256",
    "CompressedInputError",
    "content_identity",
    "ContentIdentity",
    "is_compressed",
    "RESUME_HEADERS",
    "CHANGED_WHILE_READ",
    "detect_file_format",
    "is_empty_input",
    "EMPTY_FILE",
    "Format",
    "ReaderContext",
    "register_format",
    "formats",
]
