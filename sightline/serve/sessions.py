"""Server-side login sessions: revocable, listed, bound to one user record.

A session cookie is signed (see :class:`~sightline.serve.security.Signer`) and names a
session id; the session itself lives in ``<workspace>/sessions.json`` (mode 0600, written
atomically under a lock; only the SHA-256 of each id is stored).  A request is logged in only
while its session is in the store, unexpired, and belongs to the same user record (user
name *and* the record's random ``uid``: removing a user and adding one with the same name
does not revive the old sessions).  Logout and ``sightline users sessions --revoke`` delete
the session, so a replayed cookie stops working at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import AuthError, ConfigError
from ..store import Workspace, atomic_write_bytes

__all__ = ["SessionStore", "TOUCH_EVERY_S"]

TOUCH_EVERY_S = 60.0
"""How often a session's ``last_seen`` is written (not on every request)."""


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    """The sessions of one workspace (shared by every server process and the CLI)."""

    def __init__(self, ws: Workspace) -> None:
        self.path = Path(ws.root) / "sessions.json"
        self._lock_path = Path(ws.root) / ".sessions.lock"
        self._key: tuple[int, int, int] | None = None
        self._data: dict[str, Any] = {"version": 1, "sessions": {}}
        self._mem = threading.Lock()

    # --- storage -----------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {"version": 1, "sessions": {}}
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._mem:
            if key == self._key:
                return self._data
        try:
            data = json.loads(self.path.read_text("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("sessions"), dict):
                raise ValueError("no 'sessions' object")
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"sessions file is unreadable: {e}",
                path=self.path,
                hint="remove it: everybody will have to log in again",
            ) from e
        with self._mem:
            self._data, self._key = data, key
        return data

    @contextlib.contextmanager
    def _edit(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    data = json.loads(self.path.read_text("utf-8"))
                    if not isinstance(data, dict) or not isinstance(data.get("sessions"), dict):
                        data = {"version": 1, "sessions": {}}
                except (FileNotFoundError, ValueError):
                    data = {"version": 1, "sessions": {}}
                now = time.time()
                data["sessions"] = {
                    k: v
                    for k, v in data["sessions"].items()
                    if isinstance(v, dict) and float(v.get("expires", 0)) > now
                }
                yield data
                atomic_write_bytes(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
                os.chmod(self.path, 0o600)
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --- sessions ----------------------------------------------------------------------
    def create(self, user: str, uid: str, *, client: str, agent: str, max_age: int) -> str:
        """A new session for ``user`` (record ``uid``); returns its secret id (for the cookie)."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        digest = _digest(sid)
        with self._edit() as data:
            data["sessions"][digest] = {
                "id": digest[:12],
                "user": user,
                "uid": uid,
                "created": now,
                "expires": now + max_age,
                "last_seen": now,
                "client": client[:64],
                "agent": agent[:160],
            }
        return sid

    def check(self, sid: str, user: str, uid: str) -> dict[str, Any] | None:
        """The session record if ``sid`` is a live session of that user record, else None."""
        if not sid:
            return None
        rec = self._load()["sessions"].get(_digest(sid))
        if not isinstance(rec, dict) or rec.get("user") != user or rec.get("uid") != uid:
            return None
        if float(rec.get("expires", 0)) <= time.time():
            return None
        return rec

    def touch(self, sid: str, client: str) -> None:
        """Note that the session was used now (written at most every :data:`TOUCH_EVERY_S`)."""
        digest = _digest(sid)
        rec = self._load()["sessions"].get(digest)
        now = time.time()
        if not isinstance(rec, dict) or now - float(rec.get("last_seen", 0)) < TOUCH_EVERY_S:
            return
        with self._edit() as data:
            live = data["sessions"].get(digest)
            if live is not None:
                live["last_seen"] = now
                live["client"] = client[:64]

    def end(self, sid: str) -> None:
        """Delete the session ``sid`` (logout)."""
        digest = _digest(sid)
        with self._edit() as data:
            data["sessions"].pop(digest, None)

    def revoke(self, session_id: str, *, user: str | None = None) -> dict[str, Any]:
        """Delete a session by its public id (of ``user`` only, when given); returns it."""
        with self._edit() as data:
            for k, v in list(data["sessions"].items()):
                if v.get("id") == session_id and (user is None or v.get("user") == user):
                    del data["sessions"][k]
                    return self._public(v)
        raise AuthError(
            f"no session {session_id!r}" + (f" of user {user!r}" if user else ""), hint="see `sightline users sessions`"
        )

    def revoke_user(self, user: str) -> int:
        """Delete every session of ``user``; returns how many."""
        if not self.path.exists():
            return 0
        with self._edit() as data:
            gone = [k for k, v in data["sessions"].items() if v.get("user") == user]
            for k in gone:
                del data["sessions"][k]
        return len(gone)

    def list(self, user: str | None = None) -> list[dict[str, Any]]:
        """Live sessions (of ``user``, when given), newest first, without secrets."""
        now = time.time()
        rows = [
            self._public(v)
            for v in self._load()["sessions"].values()
            if isinstance(v, dict) and float(v.get("expires", 0)) > now and (user is None or v.get("user") == user)
        ]
        return sorted(rows, key=lambda r: r["created_at"], reverse=True)

    @staticmethod
    def _public(v: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": v.get("id"),
            "user": v.get("user"),
            "created_at": _iso(float(v.get("created", 0))),
            "last_seen": _iso(float(v.get("last_seen", 0))),
            "expires_at": _iso(float(v.get("expires", 0))),
            "client": v.get("client"),
            "agent": v.get("agent"),
        }
