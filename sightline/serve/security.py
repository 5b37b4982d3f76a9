"""Signed cookies, CSRF tokens, rate limits, client addresses and security headers.

Session cookies are signed (HMAC-SHA256 over a small JSON payload) and carry the id of a
server-side session (:mod:`.sessions`), the user name and record ``uid``, the user's
``session_epoch`` (a new password ends them), a CSRF token and an expiry.  Before login,
forms carry a CSRF token bound to a separate signed pre-session cookie (double submit), so a
cross-site page cannot post a login either.  Limits: failed logins (:class:`LoginRateLimiter`,
checked and reserved atomically), password hashes at once (:class:`HashGate`), API requests
per caller (:class:`ApiRateLimiter`); :func:`client_address` trusts ``X-Forwarded-For`` only
from configured proxies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..core.settings import settings
from ..errors import ConfigError
from ..store import Workspace, atomic_write_bytes

__all__ = [
    "SECRET_ENV",
    "CSP",
    "SECURITY_HEADERS",
    "load_secret",
    "Signer",
    "LoginRateLimiter",
    "HashGate",
    "Busy",
    "ApiRateLimiter",
    "parse_proxies",
    "client_address",
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

    An attempt is checked and reserved in one step (:meth:`begin`): the failures already
    recorded plus the attempts still being verified may not exceed ``max_failures``, so N
    concurrent wrong passwords verify at most ``max_failures`` of them.  The others are
    refused at once ("try again in 1 s"; or wait up to ``max_wait`` seconds for a slot), so a
    flood of logins from one address ties up at most ``max_failures`` request threads.

    Parameters
    ----------
    max_failures
        Failures allowed within ``window`` seconds before further attempts are refused.
    window
        Length of the window in seconds.
    clock
        Monotonic time source (injectable so tests need not wait).
    max_wait
        Seconds an attempt waits for a slot before it is refused (default: none).
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_wait: float = 0.0,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_wait = max_wait
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}
        self._inflight: dict[str, int] = {}
        self._cond = threading.Condition()

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def _wait_locked(self, keys: tuple[str, ...], now: float) -> float:
        wait = 0.0
        for k in keys:
            q = self._prune(k, now)
            if len(q) >= self.max_failures:
                wait = max(wait, q[0] + self.window - now)
        # Keep the table bounded: drop keys whose windows are empty.
        if len(self._fails) > 10_000:
            for k in [k for k, q in self._fails.items() if not q and not self._inflight.get(k)]:
                del self._fails[k]
        return wait

    def retry_after(self, *keys: str) -> int:
        """Seconds until an attempt under ``keys`` is allowed again (0 = allowed now)."""
        with self._cond:
            wait = self._wait_locked(keys, self._clock())
        return int(wait) + (1 if wait > 0 else 0)

    def begin(self, *keys: str) -> int:
        """Reserve one attempt under ``keys``: 0 when reserved (then call :meth:`failed` or
        :meth:`succeeded` exactly once), else the seconds to wait before trying again."""
        deadline = time.monotonic() + self.max_wait
        with self._cond:
            while True:
                wait = self._wait_locked(keys, self._clock())
                if wait > 0:
                    return int(wait) + 1
                if all(len(self._fails.get(k, ())) + self._inflight.get(k, 0) < self.max_failures for k in keys):
                    for k in keys:
                        self._inflight[k] = self._inflight.get(k, 0) + 1
                    return 0
                left = deadline - time.monotonic()
                if left <= 0:
                    return 1
                self._cond.wait(left)

    def _release(self, keys: tuple[str, ...]) -> None:
        for k in keys:
            n = self._inflight.get(k, 0) - 1
            if n > 0:
                self._inflight[k] = n
            else:
                self._inflight.pop(k, None)

    def failed(self, *keys: str, reserved: bool = True) -> None:
        """Record one failed attempt under each of ``keys`` (ending its reservation)."""
        now = self._clock()
        with self._cond:
            if reserved:
                self._release(keys)
            for k in keys:
                q = self._prune(k, now)
                q.append(now)
                while len(q) > self.max_failures:
                    q.popleft()
            self._cond.notify_all()

    def succeeded(self, *keys: str, reset: tuple[str, ...] = (), reserved: bool = True) -> None:
        """End a reservation that did not fail; forget the failures under ``reset`` (a right
        password resets its user's count)."""
        with self._cond:
            if reserved:
                self._release(keys)
            for k in reset:
                self._fails.pop(k, None)
            self._cond.notify_all()


class HashGate:
    """Bounds how many password hashes (argon2, 64 MiB each) are computed at once.

    A burst of logins queues here instead of allocating 64 MiB per request thread.
    """

    def __init__(self, concurrency: int = 2, max_wait: float = 30.0) -> None:
        self.concurrency = max(1, concurrency)
        self.max_wait = max_wait
        self._sem = threading.BoundedSemaphore(self.concurrency)

    def __enter__(self) -> HashGate:
        if not self._sem.acquire(timeout=self.max_wait):
            raise Busy("too many logins at once; try again in a few seconds")
        return self

    def __exit__(self, *exc: object) -> None:
        self._sem.release()


class Busy(Exception):
    """The server is busy with work it bounds (password hashing)."""


class ApiRateLimiter:
    """Token bucket per caller (API token or user): ``rate`` requests per second on average,
    bursts of ``burst``; expensive requests cost more than one.

    Parameters
    ----------
    rate
        Tokens added per second (0 or less: no limit).
    burst
        Bucket size.
    clock
        Monotonic time source.
    """

    def __init__(self, rate: float = 20.0, burst: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> int:
        """Spend ``cost`` tokens of ``key``: 0 if allowed, else seconds until it would be."""
        if self.rate <= 0:
            return 0
        cost = min(cost, self.burst)
        now = self._clock()
        with self._lock:
            level, at = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - at) * self.rate)
            if level >= cost:
                self._buckets[key] = (level - cost, now)
                return 0
            self._buckets[key] = (level, now)
            if len(self._buckets) > 10_000:  # bounded: drop full buckets
                for k in [k for k, (lv, t) in self._buckets.items() if lv + (now - t) * self.rate >= self.burst]:
                    del self._buckets[k]
            return max(1, math.ceil((cost - level) / self.rate))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    """Trusted proxy addresses or networks (``127.0.0.1``, ``10.0.0.0/8``)."""
    out: list[Network] = []
    for v in values:
        for part in str(v).replace(",", " ").split():
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError as e:
                raise ConfigError(
                    f"not an address or network: {part!r}",
                    field="trusted_proxy",
                    hint="give addresses or CIDRs, e.g. --trusted-proxy 127.0.0.1 --trusted-proxy 10.0.0.0/8",
                ) from e
    return tuple(out)


def _trusted(addr: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip())
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in proxies)


def client_address(peer: str | None, forwarded_for: list[str], proxies: tuple[Network, ...]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then the right-most
    address of ``X-Forwarded-For`` that is not itself a trusted proxy (addresses further left
    were written by the client and prove nothing)."""
    addr = peer or "?"
    if not proxies or not _trusted(addr, proxies):
        return addr
    hops = [h.strip() for line in forwarded_for for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return addr  # a malformed list: keep the proxy's own address
        if not _trusted(hop, proxies):
            return hop
        addr = hop
    return addr
