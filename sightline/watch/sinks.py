"""Where alerts go: webhook, syslog (RFC 5424, optionally CEF), e-mail (SMTP + STARTTLS).

A sink is written as a URL, so one command line holds it; secrets are never in it, only the
name of the environment variable that holds them::

    webhook+https://soc.example/hooks/sightline?tlp=amber&secret_env=HOOK_KEY
    syslog+udp://10.0.0.5:514?tlp=green          syslog+tcp://siem:6514?tlp=amber&cef=1
    smtp://mail.example:587?tlp=amber+strict&from=sightline@cert.example&to=soc@cert.example
         &user=sightline&password_env=SMTP_PASSWORD&cafile=/etc/ssl/mail-ca.pem

Every sink has a TLP clearance (``tlp=``, default ``clear``: a sink is told nothing it was
not cleared for) and may pseudonymize victims (``anonymize=1``); what it receives is decided
by the sharing policy (:mod:`sightline.findings.share`), never here.

- webhook: ``POST`` of the alert as JSON; ``X-Sightline-Signature: sha256=<hex>`` is the
  HMAC-SHA256 of the body with the secret; ``X-Sightline-Alert-Id`` is the alert's id (the
  same change has the same id: a receiver can drop a repeat).  A failed delivery is retried
  with exponential backoff.
- syslog: one RFC 5424 message per alert over UDP, or TCP with octet-counting framing
  (RFC 6587); structured data ``[sightline@32473 ...]`` (the documentation enterprise
  number of RFC 5612); with ``cef=1`` the message is an ArcSight CEF record.
- smtp: one mail per alert, STARTTLS unless ``starttls=0`` (then only to 127.0.0.1/::1),
  the subject headed with the alert's TLP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .. import __version__
from ..core.tlp import TLP, parse_tlp
from ..errors import ConfigError

__all__ = ["Sink", "parse_sink", "SinkError", "SIGNATURE_HEADER", "ALERT_ID_HEADER", "signature"]

SIGNATURE_HEADER = "X-Sightline-Signature"
ALERT_ID_HEADER = "X-Sightline-Alert-Id"
SD_ID = "sightline@32473"
_SEVERITY = {  # syslog severity per alert kind and verdict
    "compromised": 2,
    "exploitation_attempt": 3,
    "reconnaissance": 5,
}
_CEF_SEVERITY = {"compromised": 9, "exploitation_attempt": 7, "reconnaissance": 4}


class SinkError(Exception):
    """A delivery that failed (retried later)."""


def signature(secret: bytes, body: bytes) -> str:
    """The webhook signature header's value: ``sha256=`` + HMAC-SHA256(secret, body) in hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass
class Sink:
    """One alert destination: its kind, address, clearance and options."""

    name: str
    kind: str  # webhook | syslog | smtp
    url: str
    clearance: TLP
    anonymize: bool = False
    options: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0

    def describe(self) -> dict[str, Any]:
        """Safe to log: no secrets (the URL holds only the names of variables holding them)."""
        return {"name": self.name, "kind": self.kind, "tlp": self.clearance.label, "anonymize": self.anonymize}

    # --- delivery ------------------------------------------------------------------------
    def send(self, alert: dict[str, Any]) -> None:
        """Deliver one alert; raises :class:`SinkError` when it did not arrive."""
        try:
            getattr(self, f"_send_{self.kind}")(alert)
        except SinkError:
            raise
        except (OSError, smtplib.SMTPException, ssl.SSLError, ValueError) as e:
            raise SinkError(f"{self.name}: {type(e).__name__}: {e}") from e

    def _send_webhook(self, alert: dict[str, Any]) -> None:
        import httpx

        body = json.dumps(alert, sort_keys=True, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            ALERT_ID_HEADER: str(alert["id"]),
            "User-Agent": f"sightline/{__version__}",
        }
        secret = _env(self.options.get("secret_env"))
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret.encode(), body)
        verify: Any = self.options.get("cafile") or True
        try:
            r = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout, verify=verify)
        except httpx.HTTPError as e:
            raise SinkError(f"{self.name}: {type(e).__name__}: {e}") from e
        if r.status_code >= 300:
            raise SinkError(f"{self.name}: HTTP {r.status_code}")

    def _syslog_message(self, alert: dict[str, Any]) -> bytes:
        facility = int(self.options.get("facility", "16"))  # local0
        sev = _SEVERITY.get(str(alert.get("verdict")), 5) if alert["kind"] != "suspected_infrastructure" else 4
        ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        host = _sd_name(socket.gethostname()) or "-"
        msgid = alert["kind"][:32]
        if self.options.get("cef", "0").lower() in ("1", "true", "yes"):
            return f"<{facility * 8 + sev}>1 {ts} {host} sightline {os.getpid()} {msgid} - {_cef(alert)}".encode()
        params = {
            "id": alert["id"],
            "kind": alert["kind"],
            "tlp": alert["tlp"],
            "org": alert.get("org_id"),
            "verdict": alert.get("verdict"),
            "previous": alert.get("previous_verdict"),
            "host": alert.get("host"),
            "ip": alert.get("ip"),
            "link": alert.get("link"),
        }
        sd = "[" + SD_ID + "".join(f' {k}="{_sd_value(v)}"' for k, v in params.items() if v) + "]"
        text = f"TLP:{str(alert['tlp']).upper()} {alert['summary']}"
        return f"<{facility * 8 + sev}>1 {ts} {host} sightline {os.getpid()} {msgid} {sd} ".encode() + (
            b"\xef\xbb\xbf" + text.encode()
        )

    def _send_syslog(self, alert: dict[str, Any]) -> None:
        u = urlsplit(self.url)
        host, port = u.hostname or "127.0.0.1", u.port or 514
        msg = self._syslog_message(alert)
        if self.options.get("transport") == "tcp":
            with socket.create_connection((host, port), timeout=self.timeout) as s:
                s.sendall(str(len(msg)).encode() + b" " + msg)  # RFC 6587 octet counting
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.sendto(msg, (host, port))

    def _send_smtp(self, alert: dict[str, Any]) -> None:
        u = urlsplit(self.url)
        host, port = u.hostname or "127.0.0.1", u.port or 587
        to = [a for a in self.options.get("to", "").split(",") if a]
        sender = self.options.get("from", "sightline@localhost")
        m = EmailMessage()
        label = str(alert["tlp"]).upper()
        m["Subject"] = f"[TLP:{label}] sightline: {alert['summary']}"
        m["From"] = sender
        m["To"] = ", ".join(to)
        m["X-Sightline-Alert-Id"] = str(alert["id"])
        m.set_content(
            f"TLP:{label}\n\n{alert['summary']}\n\n"
            + (f"Finding: {alert['link']}\n\n" if alert.get("link") else "")
            + json.dumps(alert, indent=2, ensure_ascii=False, sort_keys=True)
            + f"\n\n-- \nsightline {__version__}; shared at TLP:{label}.\n"
        )
        starttls = self.options.get("starttls", "1").lower() not in ("0", "false", "no")
        with smtplib.SMTP(host, port, timeout=self.timeout) as s:
            s.ehlo()
            if starttls:
                ctx = ssl.create_default_context(cafile=self.options.get("cafile") or None)
                s.starttls(context=ctx)
                s.ehlo()
            user = self.options.get("user")
            if user:
                s.login(user, _env(self.options.get("password_env")) or "")
            s.send_message(m, from_addr=sender, to_addrs=to)


def _env(name: str | None) -> str | None:
    if not name:
        return None
    from ..core.settings import settings

    return settings().secret(name)


def _sd_value(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_name(v: str) -> str:
    return "".join(ch for ch in v if 33 <= ord(ch) <= 126)[:255]


def _cef_h(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _cef_e(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")


def _cef(alert: dict[str, Any]) -> str:
    sev = _CEF_SEVERITY.get(str(alert.get("verdict")), 5)
    ext = {
        "externalId": alert["id"],
        "cat": alert["kind"],
        "msg": f"TLP:{str(alert['tlp']).upper()} {alert['summary']}",
        "cs1Label": "tlp",
        "cs1": alert["tlp"],
        "cs2Label": "org",
        "cs2": alert.get("org_id"),
        "cs3Label": "verdict",
        "cs3": alert.get("verdict"),
        "cs4Label": "link",
        "cs4": alert.get("link"),
        "dst": alert.get("host") or alert.get("ip"),
    }
    head = "|".join(
        _cef_h(x) for x in ("CEF:0", "sightline", "sightline", __version__, alert["kind"], alert["summary"], sev)
    )
    return head + "|" + " ".join(f"{k}={_cef_e(v)}" for k, v in ext.items() if v not in (None, ""))


def parse_sink(text: str, name: str | None = None) -> Sink:
    """A sink from its URL (see the module docstring).

    Raises
    ------
    ConfigError
        The URL names no known sink, or an option is wrong.
    """
    u = urlsplit(text.strip())
    scheme = u.scheme.lower()
    opts = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    try:
        clearance = parse_tlp(opts.pop("tlp", "clear"), what="sink TLP clearance")
    except ConfigError as e:
        raise ConfigError(str(e), hint="a sink's tlp= is clear, green, amber, amber+strict or red") from e
    anonymize = opts.pop("anonymize", "0").lower() in ("1", "true", "yes")
    timeout = float(opts.pop("timeout", "10"))
    if scheme.startswith("webhook+"):
        base = u._replace(scheme=scheme[len("webhook+") :], query="").geturl()
        kind = "webhook"
        target = base
        if u.scheme[len("webhook+") :] not in ("http", "https"):
            raise ConfigError(f"webhook sink {text!r} is neither http nor https")
    elif scheme in ("syslog", "syslog+udp", "syslog+tcp"):
        kind, target = "syslog", u._replace(query="").geturl()
        opts["transport"] = "tcp" if scheme.endswith("+tcp") else "udp"
    elif scheme in ("smtp", "smtp+starttls"):
        kind, target = "smtp", u._replace(query="").geturl()
        if not opts.get("to"):
            raise ConfigError(f"smtp sink {text!r} has no to=", hint="add &to=soc@example.org")
        opts["to"] = unquote(opts["to"])
        if opts.get("starttls", "1").lower() in ("0", "false", "no") and u.hostname not in ("127.0.0.1", "::1"):
            raise ConfigError("smtp without STARTTLS is only for 127.0.0.1", hint="drop starttls=0")
    else:
        raise ConfigError(
            f"unknown alert sink {text!r}",
            hint="use webhook+https://..., syslog+udp://host:514, syslog+tcp://host:6514 or smtp://host:587?to=...",
        )
    if u.password:
        raise ConfigError("a sink URL must not hold a password", hint="use password_env= / secret_env= (a variable)")
    label = opts.pop("name", None) or name or f"{kind}:{u.hostname}:{u.port or ''}"
    return Sink(label, kind, target, clearance, anonymize, opts, timeout)


def backoff(attempts: int, base: float = 2.0, cap: float = 600.0) -> float:
    """Seconds before the next try after ``attempts`` failed ones (exponential, capped)."""
    return float(min(cap, base ** max(attempts, 0)))


def now() -> float:
    return time.time()
