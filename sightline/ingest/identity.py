"""Identity of an input is its content, not the bytes on disk (:func:`content_identity`).

A file is "already ingested" and skipped when its raw sha256 or the sha256 of its decompressed
content is in the workspace manifest, so ingesting twice adds nothing, and neither does a
``.gz``/``.zst`` copy, a renamed copy, or a logrotate that renames ``eve.json.1`` to
``eve.json.2.gz``.  Each manifest entry stays keyed by the raw hash and records
``content_sha256``, ``content_size`` and ``content_head_sha256`` (its first 64 KiB) beside
it; older entries, without them, still match the same file on disk (a plain file's raw hash
is its content hash).  A plain file is hashed in one pass, as before.  A compressed file
costs a second, decompressing pass only when an ingested file shares its first 64 KiB (or
an entry predates content hashes); otherwise it cannot be a copy or a continuation, and its
content is hashed while it is read (:class:`_CheckedReader`, which also tells a file that
changed while it was read).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError
from .inputs import is_compressed, open_input

HEAD_ID_BYTES = 65536
"""The start of the content whose hash (``content_head_sha256``) tells a compressed file that
cannot be a copy or a continuation of an ingested one (no more than :data:`sightline.ingest.inputs.SNIFF_BYTES`;
changing it makes older entries ask for the hashing pass)."""


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
            marks[todo[k]] = _Mark(h.copy(), block[j - 1 : j], last_nl + 1, newlines)
            done = j
            k += 1
        h.update(view[done:])
        if k < len(todo):  # line positions only matter while an offset is still ahead
            newlines += block.count(b"\n", done)
            nl = block.rfind(b"\n", done)
            last_nl = pos + nl if nl >= 0 else last_nl
        pos = end
    return h.hexdigest(), pos, marks


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
        if (
            e.get("content_sha256")
            and isinstance(size, int)
            and size > 0
            and (e.get("rows") or e.get("name_rows") or e.get("quarantined"))
        ):
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


def _ingested_prefix(
    files: dict[str, dict], ident: ContentIdentity, candidates: dict[int, list[str]]
) -> tuple[str, int] | None:
    """(key, length) of the longest ingested content this file's content starts with."""
    for size in sorted(ident.marks, reverse=True):
        if size >= ident.content_size:
            continue
        sha = ident.marks[size].sha256
        for key in candidates.get(size, []):
            if files[key].get("content_sha256") == sha:
                return key, size
    return None


class _CheckedReader(io.RawIOBase):
    """``prefix`` (header lines, not hashed), then at most ``limit`` bytes of ``inner``, each
    hashed into ``hasher`` after the first ``skip``.  :meth:`intact` reads what the reader
    left and says whether the bytes were the ones hashed before (``expected``); without
    ``expected`` the hash is taken here, and :attr:`content` gives it once the stream was
    read to its end."""

    def __init__(
        self,
        inner: BinaryIO,
        limit: int | None,
        hasher: hashlib._Hash,
        expected: str | None,
        *,
        prefix: bytes = b"",
        skip: int = 0,
    ) -> None:
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


__all__ = ["ContentIdentity", "HASH_BLOCK", "HEAD_ID_BYTES", "content_identity", "file_sha256"]
