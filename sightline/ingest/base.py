"""Reader registry and the context a format reader gets.

A reader turns one decompressed input stream into Arrow record batches in
:data:`sightline.schema.FLOW_SCHEMA` and reports bad records through
:meth:`ReaderContext.quarantine`; it never raises for a bad record, only for a file it
cannot read at all (:class:`sightline.errors.InputError`).

Register a format with :func:`register_format`; auto-detection asks each format's
``sniff(head)`` in registration order (most specific first) on the first 64 KiB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from ..schema import QUARANTINE_SCHEMA

MAX_QUARANTINE_ROWS = 100_000
"""Per file, at most this many bad records are kept verbatim; all are counted."""


@dataclass
class ReaderContext:
    path: Path
    stream: BinaryIO  # decompressed bytes
    sensor: str | None = None
    bad_count: int = 0
    _bad: list[tuple[int, str, str, str]] = field(default_factory=list)

    def quarantine(self, position: int, reason: str, raw: str | bytes = "", kind: str = "line") -> None:
        self.bad_count += 1
        if len(self._bad) < MAX_QUARANTINE_ROWS:
            if isinstance(raw, bytes):
                raw = raw[:512].decode("utf-8", "replace")
            self._bad.append((int(position), kind, reason, raw[:512]))

    def quarantine_table(self) -> pa.Table:
        src = str(self.path)
        return pa.table(
            {
                "source_file": [src] * len(self._bad),
                "position": [b[0] for b in self._bad],
                "position_kind": [b[1] for b in self._bad],
                "reason": [b[2] for b in self._bad],
                "raw": [b[3] for b in self._bad],
            },
            schema=QUARANTINE_SCHEMA,
        )


Reader = Callable[[ReaderContext], Iterator[pa.RecordBatch]]
Sniffer = Callable[[bytes], bool]


@dataclass(frozen=True)
class Format:
    name: str
    sniff: Sniffer
    read: Reader
    description: str = ""


_FORMATS: list[Format] = []


def register_format(fmt: Format, *, first: bool = False) -> None:
    global _FORMATS
    _FORMATS = [f for f in _FORMATS if f.name != fmt.name]
    if first:
        _FORMATS.insert(0, fmt)
    else:
        _FORMATS.append(fmt)


def formats() -> list[Format]:
    return list(_FORMATS)


def get_format(name: str) -> Format | None:
    for f in _FORMATS:
        if f.name == name:
            return f
    return None


def sniff_format(head: bytes) -> Format | None:
    for f in _FORMATS:
        try:
            if f.sniff(head):
                return f
        except Exception:  # a sniffer must never break detection of the others
            continue
    return None


__all__ = [
    "MAX_QUARANTINE_ROWS",
    "ReaderContext",
    "Reader",
    "Sniffer",
    "Format",
    "register_format",
    "formats",
    "get_format",
    "sniff_format",
]
