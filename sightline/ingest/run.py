"""One ingest run: files -> the flow store, under the workspace's writer lock.

Each file is read once into a :class:`sightline.store.FlowWriter` and committed whole, or
not at all.  Before reading, its identity (:mod:`.identity`) decides whether it was ingested
before (skipped), or starts with a file ingested before (only the tail is read: :mod:`.resume`).
The file is read only up to the length that was hashed, and the bytes read are hashed again: a
file rewritten while it is read (a ``copytruncate`` rotation) stores nothing and says so.

A reader that cannot read a file at all (no header to go by, ``nfdump`` missing) stores
nothing, so the file is not "already ingested" once it can be read; it counts as not read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import multiprocessing
import multiprocessing.context
import os
import resource
import select
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ..errors import InputError, SightlineError
from ..store import FlowWriter, Workspace
from ..store.writer import StagedCommit, discard_staged, finish_commit
from .base import ReaderContext, get_format, sniff_format
from .identity import (
    HEAD_ID_BYTES,
    ContentIdentity,
    _CheckedReader,
    _ingested_prefix,
    _may_share_content,
    _prefix_candidates,
    _same_content,
    content_identity,
    file_sha256,
)
from .inputs import (
    EMPTY_FILE,
    CompressedInputError,
    _read_head,
    _why_unknown,
    expand_paths,
    is_compressed,
    is_empty_input,
    open_input,
)
from .resume import RESUME_HEADERS, _open_at, _Resume, _resume_point, _TailContext

log = logging.getLogger("sightline.ingest")


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
    cpu_seconds: float = 0.0  # CPU time of the process that read it (all its threads), while it did
    peak_rss_mb: float = 0.0  # peak memory of that process so far (a worker's, in a parallel ingest)


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


CHANGED_WHILE_READ = (
    "changed while it was read (rewritten or truncated: a log rotated with copytruncate?): "
    "nothing stored; ingest it again, and ingest rotated files rather than the live log"
)


def sensor_time_offsets(ws: Workspace) -> dict[str, float]:
    """Per-sensor clock corrections from the configuration (``[network] time_offsets``)."""
    from ..config import load_config

    return dict(load_config(workspace=ws.root).network.time_offsets)


def ingest_file(
    ws: Workspace,
    path: Path,
    *,
    fmt_name: str | None = None,
    sensor: str | None = None,
    time_offsets: dict[str, float] | None = None,
) -> FileResult:
    """Ingest one file under the workspace lock.  Never raises for bad records.

    Skips it when its content was ingested before, and reads only what was appended when it
    starts with a file ingested before (see the module docstring).  ``time_offsets``
    (sensor -> seconds, default: the configuration's) are added to the timestamps of that
    sensor's records as they are stored."""
    return _ingest_file(ws, path, fmt_name=fmt_name, sensor=sensor, time_offsets=time_offsets)[0]


def _ingest_file(
    ws: Workspace,
    path: Path,
    *,
    fmt_name: str | None = None,
    sensor: str | None = None,
    time_offsets: dict[str, float] | None = None,
    defer: bool = False,
    stage_tag: str = "",
) -> tuple[FileResult, StagedCommit | None]:
    """:func:`ingest_file`; with ``defer`` the file's output is left staged (not committed)
    and returned beside the result, for :func:`finish_commit` by the process holding the lock."""
    c0 = time.process_time()
    res, staged = _read_file(ws, path, fmt_name, sensor, time_offsets, defer, stage_tag)
    res.cpu_seconds = time.process_time() - c0
    res.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if res.note and not defer:
        log.warning("%s: %s", path, res.note)
    return res, staged


def _read_file(
    ws: Workspace,
    path: Path,
    fmt_name: str | None,
    sensor: str | None,
    time_offsets: dict[str, float] | None,
    defer: bool,
    stage_tag: str,
) -> tuple[FileResult, StagedCommit | None]:
    t0 = time.perf_counter()
    none: StagedCommit | None = None
    try:
        head = _read_head(path)
        # before the manifest: every empty file has the same hash, and none is "already ingested"
        if is_empty_input(path, head):
            return FileResult(
                str(path), fmt_name, skipped=True, empty=True, reason=EMPTY_FILE, seconds=time.perf_counter() - t0
            ), none
    except (OSError, EOFError, InputError) as e:
        return FileResult(str(path), None, reason=f"unreadable: {e}"), none
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
        return FileResult(
            str(path),
            prev.get("format"),
            skipped=True,
            seconds=time.perf_counter() - t0,
            reason=f"already ingested (same content as {prev.get('source_file')})",
        ), none
    fmt = get_format(fmt_name) if fmt_name else sniff_format(head)
    if fmt is None:
        return FileResult(str(path), None, reason=_why_unknown(path)), none
    extra: dict = {
        "content_sha256": ident.content_sha256,
        "content_size": ident.content_size if ident.content_sha256 else None,
        "content_head_sha256": hashlib.sha256(head[:HEAD_ID_BYTES]).hexdigest(),
        "source_path": str(Path(path).resolve()),
    }
    resume: _Resume | None = None
    header = b""
    length = 0
    note = ""
    prefix = _ingested_prefix(files, ident, candidates)
    if prefix is not None:
        prev_key, length = prefix
        prev = files[prev_key]
        what = (
            f"its first {length:,} bytes{' once decompressed' if ident.compressed else ''} are "
            f"{prev.get('source_file')}, ingested before"
        )
        make_header = RESUME_HEADERS.get(fmt.name)
        got = make_header(head) if make_header else None
        if got is None:
            return FileResult(
                str(path),
                fmt.name,
                seconds=time.perf_counter() - t0,
                reason=(
                    f"{what}; a {fmt.name} file cannot be read from the middle, so nothing was stored: "
                    "ingest files once they are complete (rotated), not while they are written"
                ),
            ), none
        header = got
        resume = _resume_point(path, fmt, header, ident.marks[length], length, ident.content_size)
        extra.update({"appended_to": prev_key, "read_from": resume.offset})
        note = f"{what}; read only what was appended since, from byte {resume.offset:,} (line {resume.lines + 1:,})"
        if resume.note:
            note += f"; {resume.note}"
    offsets = sensor_time_offsets(ws) if time_offsets is None else time_offsets
    writer = FlowWriter(ws, ident.raw_sha256, str(path), fmt.name, time_offsets=offsets, stage_tag=stage_tag)
    try:
        with _open_at(path, resume.offset) if resume else open_input(path) as inner:
            if resume is None:
                # read no more than was hashed (a live log grows meanwhile), and check it is the same
                checked = _CheckedReader(
                    inner, ident.content_size if ident.content_sha256 else None, hashlib.sha256(), ident.content_sha256
                )
            else:
                hasher = ident.marks[length].state.copy()  # continues the hash of the ingested part
                hasher.update(resume.between)
                checked = _CheckedReader(
                    inner,
                    ident.content_size - resume.offset,
                    hasher,
                    ident.content_sha256,
                    prefix=header,
                    skip=max(length - resume.offset, 0),
                )
            stream = io.BufferedReader(checked, 1 << 20)
            if resume is None:
                ctx = ReaderContext(path=path, stream=stream, sensor=sensor)
            else:
                ctx = _TailContext(
                    path=path, stream=stream, sensor=sensor, line_shift=resume.lines - header.count(b"\n")
                )
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
                    return FileResult(
                        str(path),
                        fmt.name,
                        seconds=time.perf_counter() - t0,
                        reason=e.message + (f" ({e.hint})" if e.hint else ""),
                    ), none
                ctx.quarantine(-1, f"input ends abnormally: {e}", "", kind="file")
            except (OSError, EOFError, ValueError) as e:
                # truncated / corrupt compressed stream: keep what was read, record where it broke
                ctx.quarantine(-1, f"input ends abnormally: {e}", "", kind="file")
            if not checked.intact():
                writer.abort()
                return FileResult(
                    str(path), fmt.name, seconds=time.perf_counter() - t0, reason=CHANGED_WHILE_READ
                ), none
            if ident.deferred and checked.content is not None:
                extra.update({"content_sha256": checked.content, "content_size": checked.size})
        staged = writer.prepare(ctx.quarantine_table(), {"quarantined_total": ctx.bad_count, **extra})
    except BaseException:
        writer.abort()
        raise
    entry = staged.entry if defer else finish_commit(ws, staged)
    res = FileResult(
        str(path),
        fmt.name,
        rows=entry["rows"],
        quarantined=ctx.bad_count,
        seconds=time.perf_counter() - t0,
        names=int(entry.get("name_rows") or 0),
    )
    if note:
        res.note = note
    return res, (staged if defer else None)


PARALLEL_MIN_BYTES = 64 << 20
"""Below this much input in all, ``jobs=0`` (auto) reads the files in this process: starting
worker processes costs more than it saves."""
JOB_MEMORY_BYTES = 3 << 30
"""Memory one ingest job may take at its peak (a 10M-row Zeek log takes ~2.7 GiB): ``jobs=0``
starts no more jobs than the available memory holds."""
MAX_AUTO_JOBS = 8


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def auto_jobs(files: list[Path]) -> int:
    """How many files to read at once when the user did not say: one per two cores (an
    ingest process keeps two cores busy while it parses; at most :data:`MAX_AUTO_JOBS`, and
    no more than the available memory holds at :data:`JOB_MEMORY_BYTES` each), one when there
    is little to read.  On two cores that is one: measured there, two jobs were slower."""
    if len(files) < 2:
        return 1
    total = 0
    for f in files:
        with contextlib.suppress(OSError):
            total += f.stat().st_size
    if total < PARALLEL_MIN_BYTES:
        return 1
    jobs = min(len(files), _cores() // 2, MAX_AUTO_JOBS)
    mem = _available_memory()
    if mem is not None:
        jobs = min(jobs, max(1, mem // JOB_MEMORY_BYTES))
    return max(1, jobs)


def ingest_paths(
    ws: Workspace,
    paths: Iterable[str | Path],
    *,
    fmt_name: str | None = None,
    sensor: str | None = None,
    progress: Callable[[FileResult], None] | None = None,
    jobs: int = 1,
) -> IngestSummary:
    """Ingest files, directories and globs.  ``jobs`` files are read at once by worker
    processes (0: :func:`auto_jobs`); whatever ``jobs`` is, the store ends the same: files are
    committed one at a time, in the order given, by this process under the workspace lock."""
    files = expand_paths(paths)
    summary = IngestSummary()
    offsets = sensor_time_offsets(ws)
    n_jobs = auto_jobs(files) if jobs <= 0 else min(jobs, max(len(files), 1))

    def done(res: FileResult) -> None:
        log.info(
            "ingest %s: format=%s rows=%d quarantined=%d %.2fs%s",
            res.path,
            res.format,
            res.rows,
            res.quarantined,
            res.seconds,
            f" ({res.reason})" if res.reason else "",
        )
        summary.files.append(res)
        if progress:
            progress(res)

    with ws.lock():
        ws.cleanup_orphans()
        if n_jobs <= 1:
            for path in files:
                done(ingest_file(ws, path, fmt_name=fmt_name, sensor=sensor, time_offsets=offsets))
        else:
            _ingest_parallel(ws, files, n_jobs, fmt_name, sensor, offsets, done)
    return summary


# ------------------------------------------------------------------ parallel ingest
#
# Worker processes read, normalize, sort, write and index whole files into staging
# (FlowWriter.prepare); this process, which holds the workspace lock, commits them one by one
# in input order (finish_commit: moves and the manifest).  A worker decides "already
# ingested" and "appended to an ingested file" from the manifest it read; a file committed
# here after that may be the same content or the start of it, so when an entry committed
# since the file was handed out may share its content (the cheap test of identity:
# the hash of its first 64 KiB), the staged output is dropped and the file is read again
# here, against the manifest as it is now.  So the store is the one a single process makes.
# A worker watches this process and exits with it (a pidfd): a killed ingest leaves only
# staging, which the next writer removes.  Workers start from a fresh interpreter (a fork
# server): a script calling ingest_paths(jobs=N) needs the usual ``if __name__ == "__main__":``.


def _worker_init(parent: int, threads: int) -> None:
    """Die with the ingest that started this worker: a killed ingest must not leave workers
    staging into the workspace (their staging is removed by the next writer).  ``threads``:
    this worker's share of the cores (the jobs share them)."""
    threading.Thread(target=_exit_with, args=(parent,), name="sightline-parent-watch", daemon=True).start()
    logging.getLogger("sightline").setLevel(logging.WARNING)
    from . import zeek

    zeek.PARSE_THREADS = threads
    pa.set_cpu_count(threads)


def _exit_with(parent: int) -> None:
    try:
        fd = os.pidfd_open(parent)  # Linux: readable once the process has exited, whatever its pid becomes
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass
            time.sleep(0.5)
    os._exit(1)


def _stage_one(
    root: str, path: str, fmt_name: str | None, sensor: str | None, offsets: dict[str, float], tag: str
) -> tuple[FileResult, StagedCommit | None]:
    """Read one file into staging in a worker process."""
    return _ingest_file(
        Workspace(root), Path(path), fmt_name=fmt_name, sensor=sensor, time_offsets=offsets, defer=True, stage_tag=tag
    )


def _mp_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a server process that imported the readers once (no fork of a
    process running Arrow's threads, no interpreter start per worker)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sightline.ingest"])
        return ctx
    return multiprocessing.get_context("spawn")


def _may_share_any(entries: dict[str, dict], path: Path) -> bool:
    """Whether ``path`` may have the content of one of ``entries``, or start with it (yes when
    its head cannot be read: the file is then read again in this process, which says why)."""
    try:
        return _may_share_content(entries, _read_head(path))
    except (OSError, EOFError, InputError):
        return True


def _ingest_parallel(
    ws: Workspace,
    files: list[Path],
    jobs: int,
    fmt_name: str | None,
    sensor: str | None,
    offsets: dict[str, float],
    done: Callable[[FileResult], None],
) -> None:
    committed: list[str] = []  # manifest keys this run committed, in order
    ahead = 2 * jobs  # files handed out beyond the one committed next
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=_mp_context(),
        initializer=_worker_init,
        initargs=(os.getpid(), max(1, _cores() // jobs)),
    )
    pending: list[tuple[Path, int, Future]] = []
    try:
        it = iter(enumerate(files))

        def hand_out() -> None:
            while len(pending) < ahead:
                nxt = next(it, None)
                if nxt is None:
                    return
                i, path = nxt
                fut = pool.submit(_stage_one, str(ws.root), str(path), fmt_name, sensor, offsets, f"j{i}")
                pending.append((path, len(committed), fut))

        hand_out()
        while pending:
            path, seen, fut = pending.pop(0)
            try:
                res, staged = fut.result()
            except BrokenProcessPool as e:
                raise SightlineError(
                    "the process reading this file died (out of memory, or killed); the files before it "
                    "are stored, nothing of it or after it is",
                    path=path,
                    hint="ingest again, with fewer --jobs if memory is short",
                ) from e
            if staged is not None:
                files_now = ws.manifest().get("files", {})
                since = {k: files_now[k] for k in committed[seen:] if k in files_now}
                if since and _may_share_any(since, path):
                    discard_staged(staged)
                    before = set(files_now)
                    res = ingest_file(ws, path, fmt_name=fmt_name, sensor=sensor, time_offsets=offsets)
                    committed.extend(k for k in ws.manifest().get("files", {}) if k not in before)
                else:
                    finish_commit(ws, staged)
                    committed.append(staged.sha)
                    if res.note:
                        log.warning("%s: %s", path, res.note)
            done(res)
            hand_out()
    except BaseException:
        for _path, _seen, fut in pending:
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = [
    "CHANGED_WHILE_READ",
    "FileResult",
    "IngestSummary",
    "auto_jobs",
    "ingest_file",
    "ingest_paths",
    "sensor_time_offsets",
]
