"""Dashboard users: roles, TLP clearance, argon2 password hashes and hashed API tokens.

Users live in ``<workspace>/users.json`` (mode 0600, written atomically under a lock)::

    {"version": 1, "users": {"alice": {"uid": "q3...", "role": "analyst", "clearance": "amber",
        "password_hash": "$argon2id$...", "session_epoch": 3, "created_at": "...",
        "totp": {"secret": "BASE32...", "last_step": 5702391},
        "tokens": [{"id": "k3Jd9aQx", "sha256": "...", "label": "ci", "created_at": "..."}]}}}

``uid`` is random per user record: a user removed and added again under the same name is a
new record, and sessions of the old one stay dead.  ``totp`` is the optional second factor
(RFC 6238, 6 digits, 30 s; a code is accepted once).

API tokens look like ``sl_<id>_<secret>``; only the SHA-256 of the whole token is stored.
A token carries 256 random bits, so a fast hash is as safe as a slow one and keeps each API
request cheap (argon2 would cost ~50 ms per request).  ``session_epoch`` is signed into
login sessions; bumping it (password change, removal) invalidates them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..core.tlp import TLPError, parse_tlp
from ..errors import AuthError, ConfigError
from ..store import Workspace, atomic_write_bytes
from .access import clearance_of
from .passwords import check_password

__all__ = ["ROLES", "User", "UserStore"]

ROLES = ("viewer", "analyst", "admin")
"""Roles from least to most privileged: viewer reads, analyst also exports and sees runs,
admin also manages users."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOKEN_RE = re.compile(r"^sl_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{20,})$")
_HASHER = PasswordHasher()


# Verified against when the user does not exist, so a wrong name costs as long as a wrong
# password and login timing does not reveal which names exist.
@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash("sightline-no-such-user")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class User:
    """A dashboard user as the app sees it (no secrets)."""

    name: str
    role: str
    clearance: str
    session_epoch: int = 0
    tokens: tuple[dict[str, str], ...] = field(default=())
    uid: str = ""
    totp: bool = False

    def has_role(self, role: str) -> bool:
        """True if this user's role is ``role`` or more privileged."""
        return ROLES.index(self.role) >= ROLES.index(role)


class UserStore:
    """Users of one workspace, read fresh whenever ``users.json`` changes on disk."""

    def __init__(self, ws: Workspace, *, gate: contextlib.AbstractContextManager[Any] | None = None) -> None:
        self.ws = ws
        self._gate = gate if gate is not None else contextlib.nullcontext()
        self.path = Path(ws.root) / "users.json"
        self._lock_path = Path(ws.root) / ".users.lock"
        self._cache_key: tuple[int, int] | None = None
        self._cache: dict[str, Any] = {"version": 1, "users": {}}

    # --- storage -----------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {"version": 1, "users": {}}
        key = (st.st_mtime_ns, st.st_size)
        if key != self._cache_key:
            try:
                data = json.loads(self.path.read_text("utf-8"))
                if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
                    raise ValueError("no 'users' object")
            except (OSError, ValueError) as e:
                raise ConfigError(
                    f"users file is unreadable: {e}",
                    path=self.path,
                    hint="restore it from backup, or move it away and re-add users with `sightline users add`",
                ) from e
            self._cache, self._cache_key = data, key
        return self._cache

    @contextlib.contextmanager
    def _edit(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                self._cache_key = None
                data = json.loads(json.dumps(self._load()))
                yield data
                atomic_write_bytes(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
                # mkstemp already creates 0600; chmod again in case umask or an old file differ.
                os.chmod(self.path, 0o600)
                self._cache_key = None
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --- queries -----------------------------------------------------------------------
    def get(self, name: str) -> User | None:
        """The user called ``name``, or None."""
        rec = self._load()["users"].get(name)
        if not isinstance(rec, dict):
            return None
        return User(
            name=name,
            role=rec.get("role") if rec.get("role") in ROLES else "viewer",
            clearance=clearance_of(rec.get("clearance")).label,
            session_epoch=int(rec.get("session_epoch", 0)),
            tokens=tuple(
                {"id": t.get("id", ""), "label": t.get("label", ""), "created_at": t.get("created_at", "")}
                for t in rec.get("tokens", [])
            ),
            uid=str(rec.get("uid") or ""),
            totp=bool((rec.get("totp") or {}).get("secret")),
        )

    def list(self) -> list[User]:
        """All users, sorted by name."""
        return [u for n in sorted(self._load()["users"]) if (u := self.get(n)) is not None]

    def __len__(self) -> int:
        return len(self._load()["users"])

    # --- changes -----------------------------------------------------------------------
    @staticmethod
    def _check(name: str, role: str, clearance: str) -> str:
        if not _NAME_RE.match(name):
            raise AuthError(
                f"invalid user name {name!r}",
                field="name",
                hint="use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
            )
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r}", field="role", hint="use one of " + ", ".join(ROLES))
        try:
            return parse_tlp(clearance, what="TLP clearance").label
        except TLPError as e:
            raise AuthError(e.message, field="clearance", hint=e.hint) from e

    def add(self, name: str, password: str, *, role: str = "viewer", clearance: str = "amber") -> User:
        """Create a user (or replace the password, role and clearance of an existing one)."""
        c = self._check(name, role, clearance)
        check_password(password, name)
        with self._gate:
            pw_hash = _HASHER.hash(password)
        with self._edit() as data:
            old = data["users"].get(name) or {}
            rec = {
                "uid": old.get("uid") or secrets.token_urlsafe(12),
                "role": role,
                "clearance": c,
                "password_hash": pw_hash,
                # A new password or role ends the sessions opened under the old ones.
                "session_epoch": int(old.get("session_epoch", 0)) + 1,
                "created_at": old.get("created_at", _now()),
                "tokens": old.get("tokens", []),
            }
            if old.get("totp"):
                rec["totp"] = old["totp"]
            data["users"][name] = rec
        self._end_sessions(name)
        user = self.get(name)
        assert user is not None
        return user

    def _end_sessions(self, name: str) -> None:
        from .sessions import SessionStore

        SessionStore(self.ws).revoke_user(name)

    def remove(self, name: str) -> None:
        """Delete a user with its tokens; its sessions stop working at once."""
        with self._edit() as data:
            if name not in data["users"]:
                raise AuthError(f"no user {name!r}", field="name", hint="see `sightline users list`")
            del data["users"][name]
        self._end_sessions(name)

    # --- second factor -----------------------------------------------------------------
    def enable_totp(self, name: str) -> tuple[str, str]:
        """Give ``name`` a new TOTP secret; returns (secret, otpauth URI for an authenticator app)."""
        import pyotp

        secret = pyotp.random_base32()
        with self._edit() as data:
            rec = data["users"].get(name)
            if rec is None:
                raise AuthError(f"no user {name!r}", field="name", hint="add it first with `sightline users add`")
            rec["totp"] = {"secret": secret, "last_step": 0}
            rec["session_epoch"] = int(rec.get("session_epoch", 0)) + 1
        self._end_sessions(name)
        return secret, pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="sightline")

    def disable_totp(self, name: str) -> None:
        """Remove ``name``'s second factor."""
        with self._edit() as data:
            rec = data["users"].get(name)
            if rec is None:
                raise AuthError(f"no user {name!r}", field="name", hint="see `sightline users list`")
            rec.pop("totp", None)

    def verify_totp(self, name: str, code: str, *, at: float | None = None) -> bool:
        """True if ``code`` is ``name``'s current one-time code (±1 step), not used before."""
        import time

        import pyotp

        rec = self._load()["users"].get(name)
        secret = ((rec or {}).get("totp") or {}).get("secret") if isinstance(rec, dict) else None
        code = re.sub(r"\s", "", code or "")
        if not secret or not re.fullmatch(r"\d{6}", code):
            return False
        now = time.time() if at is None else at
        totp = pyotp.TOTP(secret)
        step = int(now // totp.interval)
        match = next(
            (s for s in (step, step - 1, step + 1) if hmac.compare_digest(totp.at(s * totp.interval), code)), None
        )
        if match is None:
            return False
        with self._edit() as data:
            t = (data["users"].get(name) or {}).get("totp")
            if not t or int(t.get("last_step", 0)) >= match:
                return False  # replayed (or an older code after a newer one)
            t["last_step"] = match
        return True

    def new_token(self, name: str, label: str = "") -> str:
        """Create an API token for ``name`` and return it (it is not stored in clear)."""
        tid = "".join(secrets.choice("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))
        token = f"sl_{tid}_{secrets.token_urlsafe(32)}"
        with self._edit() as data:
            rec = data["users"].get(name)
            if rec is None:
                raise AuthError(f"no user {name!r}", field="name", hint="add it first with `sightline users add`")
            rec.setdefault("tokens", []).append(
                {"id": tid, "sha256": hashlib.sha256(token.encode()).hexdigest(), "label": label, "created_at": _now()}
            )
        return token

    def revoke_token(self, name: str, token_id: str) -> None:
        """Delete one of ``name``'s API tokens by its id."""
        with self._edit() as data:
            rec = data["users"].get(name)
            toks = (rec or {}).get("tokens", [])
            left = [t for t in toks if t.get("id") != token_id]
            if rec is None or len(left) == len(toks):
                raise AuthError(f"no token {token_id!r} for user {name!r}", hint="see `sightline users list`")
            rec["tokens"] = left

    # --- authentication ----------------------------------------------------------------
    def verify_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is right, else None (same cost either way)."""
        rec = self._load()["users"].get(name)
        stored = rec.get("password_hash") if isinstance(rec, dict) else None
        try:
            with self._gate:
                _HASHER.verify(stored or _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return self.get(name) if stored else None

    def verify_token(self, token: str) -> User | None:
        """The user owning API token ``token``, or None."""
        m = _TOKEN_RE.match(token.strip())
        if not m:
            return None
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        for name, rec in self._load()["users"].items():
            for t in rec.get("tokens", []) if isinstance(rec, dict) else []:
                if t.get("id") == m.group(1) and hmac.compare_digest(str(t.get("sha256", "")), digest):
                    return self.get(name)
        return None
