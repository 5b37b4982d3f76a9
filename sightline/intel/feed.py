"""MISP feeds: the directory layout MISP publishes (``manifest.json``, ``hashes.csv``, one
``<event uuid>.json`` per event), read from a directory or pulled from a URL.

``manifest.json`` maps each event uuid to its summary (``info``, ``timestamp``, ``Orgc``,
``Tag`` ...); ``hashes.csv`` lists attribute value hashes for correlation and is not needed
to load the feed.  A directory holding such a manifest is a feed: ``intel add DIR`` reads its
event files and leaves the two metadata files out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
HASHES = "hashes.csv"


def looks_like_manifest(data: Any) -> bool:
    """True for a MISP feed manifest: ``{uuid: {"info"|"timestamp"|"Orgc": ...}, ...}``."""
    if not isinstance(data, dict) or not data or "Event" in data:
        return False
    sample = list(data.items())[:20]
    return all(
        isinstance(k, str)
        and len(k) == 36
        and k.count("-") == 4
        and isinstance(v, dict)
        and ("timestamp" in v or "info" in v)
        for k, v in sample
    )


def read_manifest(path: Path) -> dict[str, dict[str, Any]] | None:
    """The manifest of a feed directory, or None when the directory is no MISP feed."""
    p = path / MANIFEST
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_bytes().decode("utf-8-sig", errors="replace"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if looks_like_manifest(data) else None


def feed_metadata_files(directory: Path) -> set[Path]:
    """Files of ``directory`` (and its subdirectories) that are MISP feed metadata, not events."""
    out: set[Path] = set()
    for m in [directory / MANIFEST, *directory.rglob(MANIFEST)]:
        if m.is_file() and read_manifest(m.parent) is not None:
            out.add(m)
            out.add(m.parent / HASHES)
    return out


__all__ = ["looks_like_manifest", "read_manifest", "feed_metadata_files", "MANIFEST", "HASHES"]
