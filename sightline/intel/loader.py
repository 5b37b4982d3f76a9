"""Load intel files of any supported format into one indicator table.

Formats are detected from the content (not the file name): a JSON document with an
``objects`` list or STIX ``type`` is STIX; one with ``Event`` / ``response`` / a MISP
attribute list is MISP; text with a delimited header or several columns is a CSV/TSV table;
anything else is a plain list.  ``.gz`` and ``.zst`` files are decompressed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..compression import DecompressionError, decompress_bounded, decompressed_limit
from ..errors import IntelError
from ..schema import INDICATOR_SCHEMA
from . import misp, stix, tabular
from .model import DEFAULT_CONFIDENCE, DEFAULT_TLP, IntelLoad, RowBuilder, SourceReport

MAX_INTEL_BYTES = 2 * 1024**3


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IntelError(
            f"cannot read intel file: {e.strerror or e}", path=path, hint="check the path and permissions"
        ) from e
    # decompression-bomb bound: the same ratio as telemetry, read in a stream so a bomb
    # stops at the bound instead of being expanded in memory first
    limit = min(decompressed_limit(len(raw)), MAX_INTEL_BYTES)
    try:
        return decompress_bounded(raw, limit)
    except DecompressionError as e:
        hint = "decompress it yourself if the file is genuine" if "exceeds" in str(e) else "re-download the file"
        raise IntelError(f"{e} (intel file)", path=path, hint=hint) from e


def detect_format(text: str) -> str:
    """``stix``, ``misp``, ``table`` or ``list`` for a decoded intel document."""
    head = text.lstrip()[:1]
    if head in ("{", "["):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return "json-invalid"
        if misp.looks_like_misp(data):
            return "misp"
        return "stix"
    return "table" if tabular.sniff_table(text) else "list"


def load_documents(
    docs: Iterable[tuple[str, str | None, Any]],
    *,
    imported_at: datetime | None = None,
    default_tlp: str = DEFAULT_TLP,
    default_confidence: int = DEFAULT_CONFIDENCE,
    default_actor: str | None = None,
) -> IntelLoad:
    """Load already-read documents: ``(source name, path or None, text or parsed JSON)``.

    Used by :func:`load_intel_files` and by TAXII pulls (which receive parsed objects).
    """
    imported_at = imported_at or datetime.now(UTC)
    tables: list[pa.Table] = []
    reports: list[SourceReport] = []
    cves: set[str] = set()
    actors: set[str] = set()
    revoked: set[str] = set()
    replaced: set[str] = set()
    snapshots: set[str] = set()
    for source, path, doc in docs:
        data: Any = doc
        fmt = "stix" if not isinstance(doc, str) else detect_format(doc)
        if isinstance(doc, str) and fmt in ("stix", "misp"):
            data = json.loads(doc)
        if not isinstance(doc, str) and misp.looks_like_misp(doc):
            fmt = "misp"
        rep = SourceReport(source=source, format=fmt, path=path)
        b = RowBuilder(
            rep,
            imported_at=imported_at,
            default_tlp=default_tlp,
            default_confidence=default_confidence,
            default_actor=default_actor,
        )
        if fmt == "json-invalid":
            try:
                json.loads(str(doc))
            except (ValueError, RecursionError) as e:
                raise IntelError(
                    f"not valid JSON: {e}", path=path or source, hint="fix the file or export it again from its source"
                ) from e
        elif fmt == "table":
            tabular.read_table(str(doc), b)
            snapshots.add(source)
        elif fmt == "list":
            tabular.read_list(str(doc), b)
            snapshots.add(source)
        elif fmt == "misp":
            r = misp.read_misp(data, b)
            actors.update(r.actors)
            revoked.update(r.revoked_ids)
            replaced.update(r.replaced_ids)
        else:
            try:
                objs, version = stix.objects_from_json(data)
            except ValueError as e:
                raise IntelError(
                    str(e), path=path or source, hint="pass a STIX 2.1 bundle, a MISP event or a CSV/plain list"
                ) from e
            r = stix.read_stix_objects(objs, b, version)
            cves.update(r.actor_cves)
            actors.update(r.actors)
            revoked.update(r.revoked_ids)
            replaced.update(r.replaced_ids)
        tables.append(b.table())
        reports.append(rep)
    table = pa.concat_tables(tables) if tables else INDICATOR_SCHEMA.empty_table()
    if table.num_rows:
        # the same file given twice (or two documents of one source) must not duplicate ids
        table = _dedupe(table)
    return IntelLoad(
        table=table,
        report=reports,
        actor_cves=sorted(cves),
        actors=sorted(actors),
        revoked_ids=revoked,
        replaced_ids=replaced,
        snapshot_sources=snapshots,
    )


def _dedupe(t: pa.Table) -> pa.Table:
    ids = t.column("indicator_id").to_pylist()
    last: dict[str, int] = {}
    for i, x in enumerate(ids):
        last[x] = i
    if len(last) == len(ids):
        return t
    return t.take(pa.array(sorted(last.values()), pa.int64()))


def load_intel_files(
    paths: list[Path],
    *,
    default_tlp: str = DEFAULT_TLP,
    default_confidence: int = DEFAULT_CONFIDENCE,
    default_actor: str | None = None,
) -> IntelLoad:
    """Load intel files (STIX, MISP, CSV/TSV, plain lists; gz/zst ok) into one table.

    Parameters
    ----------
    paths
        Files to read.  The source name of each is its file name, which is part of the
        stable ``indicator_id``: re-importing an updated file of the same name updates rows.
    default_tlp, default_confidence, default_actor
        Used where a source states no TLP, confidence or actor.

    Returns
    -------
    IntelLoad
        ``.table`` in :data:`~sightline.schema.INDICATOR_SCHEMA`, ``.report`` one
        :class:`SourceReport` per file.

    Raises
    ------
    IntelError
        When a file cannot be read at all (missing, not JSON where JSON is expected).
        Bad objects inside a readable file are skipped and reported instead.
    """

    def docs() -> Iterable[tuple[str, str | None, Any]]:
        for p in paths:
            p = Path(p)
            if p.is_dir():
                raise IntelError("intel path is a directory", path=p, hint="pass the files in it")
            raw = _read_bytes(p)
            if len(raw) > MAX_INTEL_BYTES:
                raise IntelError("intel file larger than 2 GiB", path=p, hint="split it")
            text = raw.decode("utf-8-sig", errors="replace")
            name = p.name
            for suffix in (".gz", ".zst"):
                name = name.removesuffix(suffix)
            yield name, str(p), text

    return load_documents(
        docs(), default_tlp=default_tlp, default_confidence=default_confidence, default_actor=default_actor
    )


__all__ = ["load_intel_files", "load_documents", "detect_format"]
