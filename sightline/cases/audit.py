"""The audit log: who did what, when, from where -- append-only, in the workspace.

``<workspace>/audit.log`` holds one JSON object per line::

    {"time": "2026-01-05T10:12:03.120Z", "who": "ana", "what": "case.state", "from": "192.0.2.7",
     "case": "C-3f2a9c01d4", "org_id": "tw-semi-01", "old": "new", "new": "triaged"}

Written are logins and failed logins, API token use (once per token and address per
:data:`TOKEN_USE_EVERY_S`), session revocations, every case change, every export and notice,
and each TLP:RED item a user was shown.  Lines are only ever appended (``O_APPEND`` under an
exclusive lock, so lines of concurrent writers never interleave); nothing in sightline
rewrites or truncates the file.  ``sightline audit`` reads it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..store import Workspace

__all__ = ["AUDIT_FILE", "TOKEN_USE_EVERY_S", "record", "read", "parse_since", "cli_user"]

AUDIT_FILE = "audit.log"
TOKEN_USE_EVERY_S = 900.0
_MAX_FIELD = 2000


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def cli_user() -> str:
    """Who runs the CLI (the operating-system user)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _clip(v: Any) -> Any:
    if isinstance(v, str) and len(v) > _MAX_FIELD:
        return v[:_MAX_FIELD] + "..."
    if isinstance(v, list) and len(v) > 200:
        return [*v[:200], f"... {len(v) - 200} more"]
    return v


def record(ws: Workspace, what: str, *, who: str, where: str, **details: Any) -> None:
    """Append one line: ``what`` was done by ``who`` from ``where`` (an address, or ``cli``)."""
    line: dict[str, Any] = {"time": _now(), "who": who, "what": what, "from": where}
    for k, v in details.items():
        if v is not None:
            line[k] = _clip(v)
    data = (json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":")) + "\n").encode("utf-8")
    path = Path(ws.root) / AUDIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_REL = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str | None, *, now: dt.datetime | None = None) -> dt.datetime | None:
    """``--since``: an ISO-8601 time (naive = UTC) or an age such as ``30m``, ``24h``, ``7d``."""
    if value is None or not str(value).strip():
        return None
    m = _REL.match(str(value))
    if m:
        return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        t = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(
            f"cannot read time {value!r}",
            field="since",
            hint="use an ISO-8601 time (2026-01-05T10:00:00Z) or an age such as 30m, 24h, 7d",
        ) from e
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _time(line: dict[str, Any]) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(line.get("time", "")).replace("Z", "+00:00"))
    except ValueError:
        return None


def read(
    ws: Workspace, *, since: dt.datetime | None = None, who: str | None = None, what: str | None = None
) -> Iterator[dict[str, Any]]:
    """The log's lines, oldest first (``what`` matches a prefix: ``case`` gives every case change).

    A damaged line (a disk that filled up mid-write) is reported as ``{"what": "unreadable"}``
    with its line number, not skipped silently.
    """
    path = Path(ws.root) / AUDIT_FILE
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                line = json.loads(raw)
                if not isinstance(line, dict):
                    raise ValueError("not an object")
            except ValueError:
                line = {"time": "", "who": "", "what": "unreadable", "from": "", "line": n}
            if since is not None:
                t = _time(line)
                if t is None or t < since:
                    continue
            if who is not None and line.get("who") != who:
                continue
            if what is not None and not str(line.get("what", "")).startswith(what):
                continue
            yield line
