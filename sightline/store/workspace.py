"""The workspace: a directory holding the flow store, intel, registry and run records.

Layout (all writes atomic: temp file + ``os.replace``)::

    <root>/manifest.json                 committed telemetry files (sha256 -> parts, counts)
    <root>/flows/day=YYYY-MM-DD/*.parquet flow store, partitioned by day (FLOW_SCHEMA)
    <root>/names/day=YYYY-MM-DD/*.parquet DNS answers, TLS SNI and certificates (NAMES_SCHEMA)
    <root>/quarantine/<sha>.parquet      bad records (QUARANTINE_SCHEMA)
    <root>/intel/indicators.parquet      indicator table (INDICATOR_SCHEMA)
    <root>/orgs.parquet                  organization registry (ORG_SCHEMA)
    <root>/geo/                          ASN / country range tables
    <root>/runs/<run_id>.json            what each run did (counts, seconds)
    <root>/findings/latest.json          findings of the last detect/hunt run

Readers only ever see parquet files listed in the manifest, so a run killed mid-ingest
leaves the store readable: staged or moved-but-uncommitted files are invisible and are
removed the next time a writer opens the workspace.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from ..core.settings import settings
from ..errors import ConfigError

DEFAULT_WORKSPACE = "sightline-data"


def _atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Run ``write`` on a temp file in ``path``'s directory, fsync it, rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + rename)."""
    _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` one after another to ``path`` atomically (never all in memory at once)."""
    _atomic_write(path, lambda fh: fh.writelines(chunks))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON atomically, streamed: a findings document of hundreds of
    megabytes is written one list item at a time, never held as one string."""

    def write(fh: BinaryIO) -> None:
        for chunk in _json_chunks(obj, indent, 0):
            fh.write(chunk.encode("utf-8"))
        fh.write(b"\n")

    _atomic_write(path, write)


def _json_chunks(obj: Any, indent: int | None, level: int) -> Iterator[str]:
    """JSON text of ``obj`` in pieces: containers down to the items of lists are walked here,
    each list item is encoded whole (the C encoder when compact).  Same text as
    ``json.dumps(obj, indent=indent, default=str)``."""

    def enc(v: Any, lvl: int) -> str:
        text = json.dumps(v, indent=indent, default=str)
        return text.replace("\n", "\n" + " " * (indent * lvl)) if indent and lvl else text

    sep, colon = ("," if indent else ", "), ": "
    pad = (lambda lvl: "\n" + " " * (indent * lvl)) if indent else (lambda lvl: "")
    if level < 2 and isinstance(obj, dict) and obj:
        yield "{"
        for i, (k, v) in enumerate(obj.items()):
            yield (sep if i else "") + pad(level + 1) + json.dumps(str(k)) + colon
            yield from _json_chunks(v, indent, level + 1)
        yield pad(level) + "}"
    elif level < 2 and isinstance(obj, list) and obj:
        yield "["
        for i, v in enumerate(obj):
            yield (sep if i else "") + pad(level + 1) + enc(v, level + 1)
        yield pad(level) + "]"
    else:
        yield enc(obj, level)


def atomic_write_parquet(path: Path, table: pa.Table, **kwargs: Any) -> None:
    kwargs.setdefault("compression", "zstd")
    _atomic_write(path, lambda fh: pq.write_table(table, fh, **kwargs))


class Workspace:
    """A sightline workspace directory."""

    def __init__(self, root: str | Path = DEFAULT_WORKSPACE) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                "workspace path exists and is not a directory",
                path=self.root,
                hint="pass --workspace DIR with a directory",
            )

    # --- paths -------------------------------------------------------------------------
    @property
    def flows_dir(self) -> Path:
        return self.root / "flows"

    @property
    def names_dir(self) -> Path:
        return self.root / "names"

    @property
    def staging_dir(self) -> Path:
        return self.root / ".staging"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def intel_dir(self) -> Path:
        return self.root / "intel"

    @property
    def indicators_path(self) -> Path:
        return self.intel_dir / "indicators.parquet"

    @property
    def orgs_path(self) -> Path:
        return self.root / "orgs.parquet"

    @property
    def geo_dir(self) -> Path:
        return self.root / "geo"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def findings_dir(self) -> Path:
        return self.root / "findings"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def ensure(self) -> Workspace:
        for d in (self.root, self.flows_dir, self.intel_dir, self.quarantine_dir, self.runs_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    # --- locking -----------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive writer lock on the workspace (one writer at a time)."""
        self.ensure()
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --- manifest ----------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"version": 1, "files": {}}
        try:
            return json.loads(self.manifest_path.read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"workspace manifest is unreadable: {e}",
                path=self.manifest_path,
                hint="restore it from backup or re-ingest into a new workspace",
            ) from e

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_json(self.manifest_path, manifest)

    def _committed(self, key: str) -> list[str]:
        """Files listed under ``key`` in the manifest's entries (absolute paths), sorted, each
        once (after compaction the input files of a day share one part)."""
        return sorted(
            {
                str((self.root / rel).resolve())
                for entry in self.manifest().get("files", {}).values()
                for rel in entry.get(key, [])
            }
        )

    def retired_files(self, grace_s: float | None = None) -> list[str]:
        """Parts replaced by compaction less than ``grace_s`` ago (default
        ``SIGHTLINE_RETIRE_GRACE_S``, 3600): kept on disk for hunts that listed them before."""
        grace = settings().retire_grace_s if grace_s is None else grace_s
        now = time.time()
        return sorted(
            str((self.root / rel).resolve())
            for rel, at in self.manifest().get("retired", {}).items()
            if now - float(at) < grace
        )

    def flow_files(self) -> list[str]:
        """Committed flow parquet files (absolute paths), sorted."""
        return self._committed("parts")

    def name_files(self) -> list[str]:
        """Committed names parquet files (DNS answers, TLS SNI, certificates; absolute paths), sorted."""
        return self._committed("name_parts")

    def quarantine_files(self) -> list[str]:
        out = []
        for entry in self.manifest().get("files", {}).values():
            q = entry.get("quarantine_file")
            if q:
                out.append(str((self.root / q).resolve()))
        return sorted(out)

    def counts(self) -> dict[str, int]:
        files = self.manifest().get("files", {}).values()
        return {
            "files": len(files),
            "flows": sum(int(e.get("rows", 0)) for e in files),
            "quarantined": sum(int(e.get("quarantined", 0)) for e in files),
        }

    def cleanup_orphans(self) -> int:
        """Remove staged and uncommitted flow files left by a killed run.  Call under lock."""
        removed = 0
        if self.staging_dir.exists():
            shutil.rmtree(self.staging_dir, ignore_errors=True)
        committed = set(self.flow_files()) | set(self.name_files()) | set(self.retired_files())
        for d in (self.flows_dir, self.names_dir):
            if not d.exists():
                continue
            for p in d.rglob("*"):
                if p.is_file() and str(p.resolve()) not in committed:
                    p.unlink()
                    removed += 1
        return removed


__all__ = [
    "DEFAULT_WORKSPACE",
    "Workspace",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_parquet",
]
