"""MISP feeds: the directory layout MISP publishes (``manifest.json``, ``hashes.csv``, one
``<event uuid>.json`` per event), read from a directory or pulled from a URL.

``manifest.json`` maps each event uuid to its summary (``info``, ``timestamp``, ``Orgc``,
``Tag`` ...); ``hashes.csv`` lists attribute value hashes for correlation and is not needed
to load the feed.  A directory holding such a manifest is a feed: ``intel add DIR`` reads its
event files and leaves the two metadata files out.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IntelError
from ..store import Workspace, atomic_write_json
from .loader import _merge_loads, load_documents
from .model import FileRefusal, IntelLoad
from .store import add_to_workspace

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

MANIFEST = "manifest.json"
HASHES = "hashes.csv"


def looks_like_manifest(data: Any) -> bool:
    """True for a MISP feed manifest: ``{uuid: {"info"|"timestamp"|"Orgc": ...}, ...}``."""
    if not isinstance(data, dict) or not data or "Event" in data:
        return False
    sample = list(data.items())[:20]
    events = sum(
        1
        for k, v in sample
        if isinstance(k, str) and _UUID.match(k) and isinstance(v, dict) and ("timestamp" in v or "info" in v)
    )
    return events * 2 > len(sample)  # most entries are events (a stray key is skipped when pulling)


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


# --- pulling a feed (directory or URL), incrementally ------------------------------------

FEED_STATE = "misp_feeds.json"
MAX_FEED_FILE_BYTES = 256 * 1024**2
FETCH_TIMEOUT_S = 60.0


@dataclass
class FeedPullResult:
    """What one ``intel pull --misp-feed`` did."""

    load: IntelLoad
    counts: dict[str, int] | None
    listed: int  # events in the manifest
    fetched: int  # events read this time (new or changed)
    unchanged: int  # events skipped: same timestamp as at the last pull
    removed: int  # events no longer in the manifest: their indicators withdrawn
    failed: list[FileRefusal] = field(default_factory=list)


class _Source:
    """A feed's files, from a directory or over HTTP(S)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.is_url = where.startswith(("http://", "https://"))
        self.base = where.rstrip("/") + "/" if self.is_url else ""
        self.dir = None if self.is_url else Path(where.removeprefix("file://"))
        self._client: Any = None

    def name_of(self, fname: str) -> str:
        return self.base + fname if self.is_url else str(self.dir / fname)  # type: ignore[operator]

    def read(self, fname: str) -> bytes:
        if not self.is_url:
            p = self.dir / fname  # type: ignore[operator]
            try:
                if p.stat().st_size > MAX_FEED_FILE_BYTES:
                    raise IntelError("feed file larger than 256 MiB", path=p, hint="check the feed")
                return p.read_bytes()
            except OSError as e:
                raise IntelError(f"cannot read feed file: {e.strerror or e}", path=p) from e
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=True)
        url = self.base + fname
        try:
            with self._client.stream("GET", url) as r:
                if r.status_code != 200:
                    raise IntelError(f"HTTP {r.status_code}", path=url, hint="check the feed URL")
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > MAX_FEED_FILE_BYTES:
                        raise IntelError("feed file larger than 256 MiB", path=url, hint="check the feed")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as e:
            raise IntelError(f"cannot fetch feed file: {e}", path=url, hint="check the feed URL and the network") from e

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def feed_key(where: str) -> str:
    """The feed's name in the workspace (its URL, or its directory's absolute path)."""
    if where.startswith(("http://", "https://")):
        return where.rstrip("/")
    return str(Path(where.removeprefix("file://")).resolve())


def _load_state(ws: Workspace) -> dict[str, Any]:
    p = ws.intel_dir / FEED_STATE
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"MISP feed state is unreadable: {e}", path=p, hint="delete it; the next pull reads every event again"
        ) from e
    return data if isinstance(data, dict) else {}


def pull_misp_feed(
    ws: Workspace,
    where: str,
    *,
    include_non_ids: bool | Callable[[str], bool] = False,
    full: bool = False,
) -> FeedPullResult:
    """Pull a MISP feed (URL or directory) into the workspace, incrementally.

    The manifest says each event's ``timestamp``; an event whose uuid and timestamp equal the
    last pull's is not fetched again, a new or changed one is (a changed event replaces its
    older version's indicators), and an event the manifest no longer lists is withdrawn (its
    indicators marked revoked).  One event file that cannot be read or used is skipped with
    its reason (in ``failed``) and fetched again next time; the others load.  The event's
    source name is ``<uuid>.json``, as when the feed directory is given to ``intel add``.
    ``include_non_ids`` applies to every event of the feed (and is kept with the feed's state:
    changing it re-reads every event).
    """
    ws.ensure()
    ws.intel_dir.mkdir(parents=True, exist_ok=True)
    # one pull of feeds at a time: the state read here is written back at the end
    with open(ws.intel_dir / ".misp_feeds.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            return _pull(ws, where, include_non_ids, full)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _pull(ws: Workspace, where: str, include_non_ids: bool | Callable[[str], bool], full: bool) -> FeedPullResult:
    src = _Source(where)
    key = feed_key(where)
    state_all = _load_state(ws)
    state = {} if full else dict(state_all.get(key) or {})
    rule = include_non_ids
    whole_feed = bool(rule(key)) if callable(rule) else bool(rule)
    if state.get("include_non_ids", False) != whole_feed:
        state = {}  # the setting changed: events skipped before may load now (or the reverse)
    seen: dict[str, str] = dict(state.get("events") or {})
    try:
        raw = src.read(MANIFEST)
        try:
            manifest = json.loads(raw.decode("utf-8-sig", errors="replace"))
        except (ValueError, RecursionError) as e:
            raise IntelError(f"manifest.json is not valid JSON: {e}", path=src.name_of(MANIFEST)) from e
        if not looks_like_manifest(manifest) and manifest != {}:
            raise IntelError(
                "not a MISP feed manifest (expected {event uuid: {info, timestamp, ...}})",
                path=src.name_of(MANIFEST),
                hint="give the feed's base URL or directory, the one holding manifest.json",
            )
        # only uuids name files: a key such as "../x" must not reach outside the feed
        wanted = {
            u: str(m.get("timestamp", "")) if isinstance(m, dict) else ""
            for u, m in manifest.items()
            if isinstance(u, str) and _UUID.match(u)
        }
        bad_keys = [u for u in manifest if not (isinstance(u, str) and _UUID.match(u))]
        todo = [u for u, ts in sorted(wanted.items()) if seen.get(u) != ts or not ts]
        gone = sorted(set(seen) - set(wanted))
        if not wanted and seen:
            # an empty manifest is more likely a broken publication than a feed emptied at once
            raise IntelError(
                f"the feed's manifest lists no event (the last pull saw {len(seen)}): nothing withdrawn",
                path=src.name_of(MANIFEST),
                hint="check the feed; its stored indicators are kept",
            )
        loads: list[IntelLoad] = []
        failed: list[FileRefusal] = [
            FileRefusal(src.name_of(MANIFEST), f"not an event uuid: {str(u)[:80]!r}") for u in bad_keys[:100]
        ]
        done: dict[str, str] = {}
        for u in todo:
            fname = f"{u}.json"
            try:
                text = src.read(fname).decode("utf-8-sig", errors="replace")
                one = load_documents([(fname, src.name_of(fname), text)], include_non_ids=whole_feed or rule)
            except IntelError as e:
                failed.append(FileRefusal(src.name_of(fname), e.message, e.hint))
                continue
            if one.report and one.report[0].format != "misp":
                failed.append(FileRefusal(src.name_of(fname), f"not a MISP event (read as {one.report[0].format})"))
                continue
            loads.append(one)
            done[u] = wanted[u]
    finally:
        src.close()
    load = _merge_loads(loads, failed)
    load.withdrawn_sources = {f"{u}.json" for u in gone}
    counts = add_to_workspace(ws, load) if (load.report or load.withdrawn_sources) else None
    seen.update(done)
    for u in gone:
        seen.pop(u, None)
    state_all[key] = {
        "events": seen,
        "include_non_ids": whole_feed,
        "last_pull": datetime.now(UTC).isoformat(),
    }
    atomic_write_json(ws.intel_dir / FEED_STATE, state_all)
    return FeedPullResult(load, counts, len(wanted), len(done), len(wanted) - len(todo), len(gone), failed)


__all__ = [
    "looks_like_manifest",
    "read_manifest",
    "feed_metadata_files",
    "pull_misp_feed",
    "feed_key",
    "FeedPullResult",
    "MANIFEST",
    "HASHES",
]
