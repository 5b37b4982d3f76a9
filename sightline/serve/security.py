"""Sessions, CSRF tokens, login rate limiting and security headers for the dashboard.

Sessions are stateless signed cookies (HMAC-SHA256 over a small JSON payload) carrying the
user name, the user's ``session_epoch`` (so removal or a new password ends them), a CSRF
token and an expiry.  Before login, forms carry a CSRF token bound to a separate signed
pre-session cookie (double submit), so a cross-site page cannot post a login either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.settings import settings
from ..store import Workspace, atomic_write_bytes

__all__ = [
    "SECRET_ENV",
    "CSP",
    "SECURITY_HEADERS",
    "load_secret",
    "Signer",
    "LoginRateLimiter",
]

SECRET_ENV = "SIGHTLINE_SECRET"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def load_secret(ws: Workspace) -> bytes:
    """The session-signing secret: ``$SIGHTLINE_SECRET``, else one stored in the workspace.

    The stored secret (``<workspace>/.serve_secret``, mode 0600) is generated on first use,
    so sessions survive restarts without anyone choosing a weak secret by hand.
    """
    env = settings().secret(SECRET_ENV) or ""
    if env:
        return hashlib.sha256(env.encode()).digest()
    path = Path(ws.root) / ".serve_secret"
    try:
        text = path.read_text("ascii").strip()
        if len(text) >= 32:
            return bytes.fromhex(text) if all(c in "0123456789abcdef" for c in text) else text.encode()
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    value = secrets.token_hex(32)
    atomic_write_bytes(path, (value + "\n").encode())
    os.chmod(path, 0o600)
    return bytes.fromhex(value)


def _b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Signer:
    """Signs and checks small JSON payloads with an expiry (for cookies)."""

    def __init__(self, secret: bytes, *, clock: Callable[[], float] = time.time) -> None:
        self._key = secret
        self._clock = clock

    def sign(self, payload: dict[str, Any], *, purpose: str, max_age: int) -> str:
        """Serialize ``payload`` with an expiry ``max_age`` seconds ahead, and sign it."""
        body = dict(payload, _exp=int(self._clock()) + max_age, _p=purpose)
        raw = _b64e(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        mac = hmac.new(self._key, raw.encode(), hashlib.sha256).digest()
        return f"{raw}.{_b64e(mac)}"

    def load(self, value: str | None, *, purpose: str) -> dict[str, Any] | None:
        """The payload if ``value`` is intact, unexpired and made for ``purpose``; else None."""
        if not value or value.count(".") != 1 or len(value) > 4096:
            return None
        raw, mac = value.split(".")
        try:
            good = hmac.compare_digest(_b64d(mac), hmac.new(self._key, raw.encode(), hashlib.sha256).digest())
            if not good:
                return None
            body = json.loads(_b64d(raw))
        except (ValueError, TypeError):
            return None
        if not isinstance(body, dict) or body.get("_p") != purpose or int(body.get("_exp", 0)) < self._clock():
            return None
        return body


class LoginRateLimiter:
    """Sliding-window limit on failed logins, per client address and per user name.

    Parameters
    ----------
    max_failures
        Failures allowed within ``window`` seconds before further attempts are refused.
    window
        Length of the window in seconds.
    clock
        Monotonic time source (injectable so tests need not wait).
    """

    def __init__(self, max_failures: int = 5, window: float = 300.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, *keys: str) -> int:
        """Seconds until an attempt under ``keys`` is allowed again (0 = allowed now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for k in keys:
                q = self._prune(k, now)
                if len(q) >= self.max_failures:
                    wait = max(wait, q[0] + self.window - now)
            # Keep the table bounded: drop keys whose windows are empty.
            if len(self._fails) > 10_000:
                for k in [k for k, q in self._fails.items() if not q]:
                    del self._fails[k]
        return int(wait) + (1 if wait > 0 else 0)

    def failed(self, *keys: str) -> None:
        """Record one failed attempt under each of ``keys``."""
        now = self._clock()
        with self._lock:
            for k in keys:
                q = self._prune(k, now)
                q.append(now)
                while len(q) > self.max_failures:
                    q.popleft()

    def succeeded(self, *keys: str) -> None:
        """Forget the failures under ``keys`` (a right password resets its user's count)."""
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)
