"""Load intel files of any supported format into one indicator table.

Formats are detected from the content (not the file name): a JSON document with an
``objects`` list or STIX ``type`` is STIX; one with ``Event`` / ``response`` / a MISP
attribute list is MISP; text with a delimited header or several columns is a CSV/TSV table;
anything else is a plain list.  ``.gz`` and ``.zst`` files are decompressed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..compression import DecompressionError, decompress_bounded, decompressed_limit
from ..errors import IntelError
from ..schema import INDICATOR_SCHEMA
from . import misp, stix, tabular
from .model import DEFAULT_CONFIDENCE, DEFAULT_TLP, FileRefusal, IntelLoad, RowBuilder, SourceReport

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
    include_non_ids: bool | Callable[[str], bool] = False,
) -> IntelLoad:
    """Load already-read documents: ``(source name, path or None, text or parsed JSON)``.

    Used by :func:`load_intel_files`, MISP feeds and TAXII pulls (which receive parsed
    objects).  ``include_non_ids`` (for every source, or a test of the source name) loads MISP
    ``to_ids = false`` attributes too.
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
                what = describe_content(str(doc))
                lines = what.startswith("this is") and what != "this is not valid JSON"
                raise IntelError(
                    f"not valid JSON: {e}" + (f": {what}" if lines else ""),
                    path=path or source,
                    hint="fix the file or export it again from its source",
                ) from e
        elif fmt == "table":
            tabular.read_table(str(doc), b)
            snapshots.add(source)
        elif fmt == "list":
            tabular.read_list(str(doc), b)
            snapshots.add(source)
        elif fmt == "misp":
            rep.include_non_ids = include_non_ids(source) if callable(include_non_ids) else bool(include_non_ids)
            r = misp.read_misp(data, b, include_non_ids=rep.include_non_ids)
            actors.update(r.actors)
            revoked.update(r.revoked_ids)
            replaced.update(r.replaced_ids)
        else:
            try:
                objs, version = stix.objects_from_json(data)
            except ValueError as e:
                raise IntelError(
                    f"{e}: {describe_content(doc if isinstance(doc, str) else json.dumps(doc)[:100_000])}",
                    path=path or source,
                    hint="pass a STIX 2.1 bundle, a MISP event or feed, or a CSV/plain list",
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


def describe_content(text: str, raw: bytes | None = None) -> str:
    """What a file that holds no indicator looks like, for the message that refuses it
    ("this is a Zeek conn.log", "this is a JSON document with keys ...")."""
    head = text[:8192]
    m = re.search(r"^#path[\t ]+(\S+)", head, re.M)
    if m:
        return f"this is a Zeek {m.group(1)}.log (telemetry: `sightline ingest` reads it)"
    if head.lstrip().startswith("#separator"):
        return "this is a Zeek log (telemetry: `sightline ingest` reads it)"
    if raw is not None and (b"\x00" in raw[:4096]):
        from .. import ingest  # noqa: F401  (registers the telemetry formats)
        from ..ingest.base import sniff_format

        fmt = sniff_format(raw[:65536])
        if fmt is not None:
            return f"this is a {fmt.description} (telemetry: `sightline ingest` reads it)"
        return "this is a binary file, not an intel document"
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
            first = stripped.split("\n", 1)[0]
            try:
                rec = json.loads(first)
            except (ValueError, RecursionError):
                rec = None
            if isinstance(rec, dict):
                if "id.orig_h" in rec:
                    return "this is a Zeek log in JSON lines (telemetry: `sightline ingest` reads it)"
                if "event_type" in rec:
                    return (
                        f"this is Suricata eve.json ({rec.get('event_type')} events; "
                        "telemetry: `sightline ingest` reads it)"
                    )
                return "this is JSON lines with keys " + ", ".join(list(rec)[:6])
            return "this is not valid JSON"
        if isinstance(data, dict):
            from .feed import looks_like_manifest

            if looks_like_manifest(data):
                return (
                    "this is a MISP feed's manifest.json (add the feed's directory, "
                    "or `sightline intel pull --misp-feed URL`)"
                )
            keys = ", ".join(str(k) for k in list(data)[:6])
            return f"this is a JSON document with keys {keys}, neither a STIX bundle nor a MISP event"
        if isinstance(data, list):
            kinds = sorted({type(x).__name__ for x in data[:100]})
            return f"this is a JSON list of {len(data):,} {'/'.join(kinds) or 'empty'} item(s), not STIX objects"
        return "this is a bare JSON value"
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return "the file is empty or only comments"
    first = lines[0]
    delim = "\t" if "\t" in first else "," if "," in first else None
    if delim is not None and len(lines) == 1:
        return f"it holds only a header line ({first[:80]}), no rows"
    if delim is not None and len(lines) > 1:
        cols = [c.strip() for c in first.split(delim)][:8]
        return f"this is a table with columns {', '.join(cols)}: no column holds indicators"
    return f"this is text ({len(lines):,} line(s)), none of them an indicator"


def _expand(paths: Iterable[str | Path]) -> tuple[dict[Path, str], list[FileRefusal]]:
    """Intel files named, under directories named (recursively; hidden files and a MISP feed's
    ``manifest.json``/``hashes.csv`` left out) and matching glob patterns, each with its source
    name; paths that name nothing are refused, not fatal.

    The source name (part of every indicator's stable id) is the file name of a file named
    directly, and the path under the directory (or under a glob's fixed part) of a file found
    there, so two ``README.txt`` of one repository stay two sources."""
    import glob

    from .feed import feed_metadata_files

    files: dict[Path, str] = {}
    refused: list[FileRefusal] = []

    def add(q: Path, base: Path | None) -> None:
        name = q.name if base is None else q.relative_to(base).as_posix()
        for suffix in (".gz", ".zst"):
            name = name.removesuffix(suffix)
        files.setdefault(q, name)

    for p in paths:
        s = str(p)
        if any(ch in s for ch in "*?[") and not Path(s).exists():
            prefix = re.split(r"[*?\[]", s, maxsplit=1)[0]
            base = Path(prefix) if prefix.endswith(("/", "\\")) else Path(prefix).parent
            matches = [Path(m) for m in sorted(glob.glob(s, recursive=True))]
            n = len(files)
            for m in matches:
                if m.is_file():
                    add(m, base)
                elif m.is_dir():
                    for q in _walk(m, feed_metadata_files(m)):
                        add(q, base)
            if len(files) == n:
                refused.append(FileRefusal(s, "no file matches the pattern", "check the pattern (quote it)"))
            continue
        path = Path(s)
        if path.is_dir():
            found = _walk(path, feed_metadata_files(path))
            if not found:
                refused.append(FileRefusal(s, "no file in this directory", None))
            for q in found:
                add(q, path)
        elif path.exists():
            add(path, None)
        else:
            refused.append(FileRefusal(s, "cannot read intel file: no such file or directory", "check the path"))
    return files, refused


def _walk(d: Path, skip: set[Path]) -> list[Path]:
    out = []
    for q in sorted(d.rglob("*")):
        rel = q.relative_to(d).parts
        if q.is_file() and not any(part.startswith(".") for part in rel) and q not in skip:
            out.append(q)
    return out


_YARA = re.compile(r"^\s*(?:(?:private|global)\s+)*rule\s+\w+[^\n]*$", re.M)


def _no_indicator(load: IntelLoad, text: str, raw: bytes) -> str | None:
    """Why a loaded file counts as not intel at all, or None when it is (it gave an indicator,
    an actor, an actor CVE or a revocation: a later version of a file may revoke everything)."""
    if load.table.num_rows or load.actor_cves or load.actors or load.revoked_ids:
        return None
    rep = load.report[0]
    if rep.revoked:
        return None
    reasons = rep.skip_reasons()
    non_ids = reasons.get("not for detection", 0)
    if non_ids:
        return (
            f"only attributes marked to_ids = false: {non_ids:,} of its {rep.read:,} attribute(s) are marked so "
            "(MISP's 'not for detection') and the rest are no indicators; pass --include-non-ids to load them"
        )
    what = describe_content(text, raw)
    if rep.format in ("misp", "stix") and rep.read:
        top = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
        return f"no indicator in this {rep.format.upper()} document: {rep.read:,} object(s) read, none usable ({top})"
    return f"no indicator in this file: {what}"


def _merge_loads(loads: list[IntelLoad], refused: list[FileRefusal]) -> IntelLoad:
    tables = [x.table for x in loads if x.table.num_rows]
    table = pa.concat_tables(tables) if tables else INDICATOR_SCHEMA.empty_table()
    if table.num_rows:
        table = _dedupe(table)
    return IntelLoad(
        table=table,
        report=[r for x in loads for r in x.report],
        actor_cves=sorted({c for x in loads for c in x.actor_cves}),
        actors=sorted({a for x in loads for a in x.actors}),
        revoked_ids={i for x in loads for i in x.revoked_ids},
        replaced_ids={i for x in loads for i in x.replaced_ids},
        snapshot_sources={i for x in loads for i in x.snapshot_sources},
        refused=refused,
    )


def non_ids_rule(workspace_root: str | Path | None, flag: bool) -> bool | Callable[[str], bool]:
    """Which sources load MISP ``to_ids = false`` attributes: every one with ``flag``
    (``--include-non-ids``), else those the ``[intel] include_non_ids`` setting names."""
    if flag:
        return True
    from ..config import load_config
    from ..errors import SightlineError

    try:
        cfg = load_config(workspace=workspace_root)
    except SightlineError:
        return False
    return cfg.intel.non_ids_for if cfg.intel.include_non_ids else False


def load_intel_files(
    paths: Iterable[str | Path],
    *,
    default_tlp: str = DEFAULT_TLP,
    default_confidence: int = DEFAULT_CONFIDENCE,
    default_actor: str | None = None,
    include_non_ids: bool | Callable[[str], bool] = False,
    skip_bad_files: bool = False,
) -> IntelLoad:
    """Load intel files (STIX, MISP events and feed directories, CSV/TSV, plain lists; gz/zst
    ok) into one table.

    Parameters
    ----------
    paths
        Files, directories (read recursively) and glob patterns.  The source name of each
        file is its file name, which is part of the stable ``indicator_id``: re-importing an
        updated file of the same name updates rows.
    default_tlp, default_confidence, default_actor
        Used where a source states no TLP, confidence or actor.
    include_non_ids
        Load MISP ``to_ids = false`` attributes too (every source, or a test of the source name).

    Returns
    -------
    IntelLoad
        ``.table`` in :data:`~sightline.schema.INDICATOR_SCHEMA`, ``.report`` one
        :class:`SourceReport` per loaded file, ``.refused`` the files not loaded at all (cannot
        be read, not valid JSON, not an intel format, no indicator in them), each with its
        reason, when ``skip_bad_files``: one bad file then never stops the others and the
        caller decides whether a refusal is fatal (``intel add`` exits 2 when nothing loaded,
        or under ``--strict``).

    Raises
    ------
    IntelError
        Without ``skip_bad_files``, for the first file that is refused.
    """
    files, refused = _expand(paths)
    loads: list[IntelLoad] = []
    for p, name in files.items():
        try:
            raw = _read_bytes(p)
            if len(raw) > MAX_INTEL_BYTES:
                raise IntelError("intel file larger than 2 GiB", path=p, hint="split it")
            text = raw.decode("utf-8-sig", errors="replace")
            if detect_format(text) == "list" and _YARA.search(text[:200_000]):
                raise IntelError(
                    "no indicator in this file: this is a YARA rule file (sightline matches network indicators)",
                    path=p,
                    hint="pass the report's indicator lists, STIX or MISP files",
                )
            one = load_documents(
                [(name, str(p), text)],
                default_tlp=default_tlp,
                default_confidence=default_confidence,
                default_actor=default_actor,
                include_non_ids=include_non_ids,
            )
        except IntelError as e:
            refused.append(FileRefusal(str(p), e.message, e.hint))
            continue
        why = _no_indicator(one, text, raw)
        if why is not None:
            hint = None if "--include-non-ids" in why else "pass a STIX 2.1 bundle, a MISP event or feed, or a CSV/list"
            refused.append(FileRefusal(str(p), why, hint))
            continue
        loads.append(one)
    if refused and not skip_bad_files:
        r = refused[0]
        raise IntelError(r.reason, path=r.path, hint=r.hint)
    return _merge_loads(loads, refused)


__all__ = ["load_intel_files", "load_documents", "detect_format", "describe_content", "non_ids_rule"]
