"""Opening telemetry inputs: transparent, bounded decompression, path expansion, sniffing.

Formats are detected by content (see :mod:`sightline.ingest.base`); ``.gz``/``.zst``
compression by magic bytes, and a decompressed stream is bounded (a bomb stops with
:class:`CompressedInputError`).  An empty file (0 bytes, only whitespace, or a compressed file
that decompresses to nothing: a rotated log of a quiet interval) is skipped and counted as
empty, not treated as an unknown format; it is not an error, not even under ``--strict``,
just as a Zeek log with only its header is not.
"""

from __future__ import annotations

import glob
import gzip
import io
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import zstandard

from ..compression import GZIP_MAGIC, MAX_DECOMPRESSED_RATIO, ZSTD_MAGIC, decompressed_limit
from ..errors import InputError
from .base import Format, sniff_format

EMPTY_FILE = "empty file, nothing to ingest"
"""The reason given for a file that holds no data at all (see the module docstring)."""


SNIFF_BYTES = 65536
"""How much of a file's decompressed start format detection looks at."""


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
            raise CompressedInputError(
                f"corrupt compressed input: {e}", path=self.path, hint="check the file or re-export it"
            ) from e
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


def is_compressed(path: Path) -> bool:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return magic.startswith(GZIP_MAGIC) or magic == ZSTD_MAGIC


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
        kind = head[i + 6 : head.find(b"\n", i)].strip().decode("utf-8", "replace")[:40]
        return (
            f"a Zeek {kind} log: not telemetry sightline reads (it reads Zeek conn, dns, ssl and x509 "
            "logs, NetFlow/IPFIX, Suricata eve, pcap and nfdump)"
        )
    return (
        "unknown format (not a telemetry format sightline reads: Zeek conn/dns/ssl/x509, NetFlow/IPFIX pcap, "
        "Suricata eve, pcap, nfdump CSV/nfcapd)"
    )


__all__ = [
    "CompressedInputError",
    "EMPTY_FILE",
    "SNIFF_BYTES",
    "detect_file_format",
    "expand_paths",
    "is_compressed",
    "is_empty_input",
    "open_input",
]
