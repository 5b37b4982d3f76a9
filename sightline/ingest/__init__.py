"""Ingest: telemetry files -> flow store.

Public API::

    ingest_paths(ws, paths, sensor=None, progress=None) -> IngestSummary

Formats are detected by content (see :mod:`sightline.ingest.base`); ``.gz``/``.zst``
compression by magic bytes.  A file whose content hash is already in the workspace
manifest is skipped, so ingesting twice adds nothing.  An empty file (0 bytes, only
whitespace, or a compressed file that decompresses to nothing: a rotated log of a quiet
interval) is skipped and counted as empty, not treated as an unknown format; it is not an
error, not even under ``--strict``, just as a Zeek log with only its header is not.
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
from ..workspace import Workspace
from . import zeek  # noqa: F401  (registers formats)
from . import netflow  # noqa: F401  (registers formats)
from . import pcap  # noqa: F401  (registers formats)
from . import nfdump  # noqa: F401  (registers formats)
from . import suricata  # noqa: F401  (registers formats)
from . import names, suricata_names  # noqa: F401  (Zeek dns/ssl/x509, eve dns/tls: names dataset)
from .base import Format, ReaderContext, formats, get_format, register_format, sniff_format
from .store import FlowWriter

log = logging.getLogger("sightline.ingest")

EMPTY_FILE = "empty file, nothing to ingest"
"""The reason given for a file that holds no data at all (see the module docstring)."""

SNIFF_BYTES = 65536
"""How much of a file's decompressed start format detection looks at."""


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
            raise InputError(f"corrupt compressed input: {e}", path=self.path,
                             hint="check the file or re-export it") from e
        n = len(data)
        self.read_so_far += n
        if self.read_so_far > self.limit:
            raise InputError(
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
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 22)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


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


def ingest_file(
    ws: Workspace, path: Path, *, fmt_name: str | None = None, sensor: str | None = None,
    time_offsets: dict[str, float] | None = None,
) -> FileResult:
    """Ingest one file under the workspace lock.  Never raises for bad records.

    ``time_offsets`` (sensor -> seconds, default: the configuration's) are added to the
    timestamps of that sensor's records as they are stored."""
    t0 = time.perf_counter()
    try:
        head = _read_head(path)
        # before the manifest: every empty file has the same hash, and none is "already ingested"
        if is_empty_input(path, head):
            return FileResult(str(path), fmt_name, skipped=True, empty=True, reason=EMPTY_FILE,
                              seconds=time.perf_counter() - t0)
    except (OSError, EOFError, InputError) as e:
        return FileResult(str(path), None, reason=f"unreadable: {e}")
    sha = file_sha256(path)
    manifest = ws.manifest()
    if sha in manifest.get("files", {}):
        prev = manifest["files"][sha]
        return FileResult(str(path), prev.get("format"), skipped=True,
                          reason=f"already ingested (same content as {prev.get('source_file')})")
    fmt = get_format(fmt_name) if fmt_name else sniff_format(head)
    if fmt is None:
        return FileResult(str(path), None, reason=_why_unknown(path))
    offsets = sensor_time_offsets(ws) if time_offsets is None else time_offsets
    writer = FlowWriter(ws, sha, str(path), fmt.name, time_offsets=offsets)
    try:
        with open_input(path) as stream:
            ctx = ReaderContext(path=path, stream=stream, sensor=sensor)
            try:
                for batch in fmt.read(ctx):
                    writer.write(batch)
            except (OSError, EOFError, InputError, ValueError) as e:
                # truncated / corrupt compressed stream: keep what was read, record where it broke
                ctx.quarantine(-1, f"input ends abnormally: {e}", "", kind="file")
            entry = writer.commit(ctx.quarantine_table(), {"quarantined_total": ctx.bad_count})
    except BaseException:
        writer.abort()
        raise
    return FileResult(str(path), fmt.name, rows=entry["rows"], quarantined=ctx.bad_count,
                      seconds=time.perf_counter() - t0, names=int(entry.get("name_rows") or 0))


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
    "detect_file_format",
    "is_empty_input",
    "EMPTY_FILE",
    "Format",
    "ReaderContext",
    "register_format",
    "formats",
]
