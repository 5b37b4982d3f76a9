"""Ingest: telemetry files -> flow store.

Public API::

    ingest_paths(ws, paths, sensor=None, progress=None) -> IngestSummary
    ingest_file(ws, path, fmt_name=None, sensor=None) -> FileResult

Modules: :mod:`.run` (one ingest run: skip, resume, read, commit), :mod:`.identity` (an input
is its content: raw and decompressed hashes against the manifest), :mod:`.resume` (reading
only what was appended to a grown file), :mod:`.inputs` (decompression, path expansion,
format sniffing, empty files), :mod:`.base` (the format registry), and one module per format
(:mod:`.zeek`, :mod:`.netflow`, :mod:`.pcap`, :mod:`.nfdump`, :mod:`.suricata`, :mod:`.names`,
:mod:`.suricata_names`), each registering itself on import.
"""

from __future__ import annotations

from . import (  # noqa: F401  (Zeek dns/ssl/x509, eve dns/tls: names dataset)
    names,
    netflow,  # noqa: F401  (registers formats)
    nfdump,  # noqa: F401  (registers formats)
    pcap,  # noqa: F401  (registers formats)
    suricata,  # noqa: F401  (registers formats)
    suricata_names,
    zeek,  # noqa: F401  (registers formats)
)
from .base import Format, ReaderContext, formats, register_format
from .identity import ContentIdentity, content_identity, file_sha256
from .inputs import (
    EMPTY_FILE,
    CompressedInputError,
    detect_file_format,
    expand_paths,
    is_compressed,
    is_empty_input,
    open_input,
)
from .resume import RESUME_HEADERS
from .run import (
    CHANGED_WHILE_READ,
    FileResult,
    IngestSummary,
    auto_jobs,
    ingest_file,
    ingest_paths,
    sensor_time_offsets,
)

__all__ = [
    "FileResult",
    "IngestSummary",
    "auto_jobs",
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
