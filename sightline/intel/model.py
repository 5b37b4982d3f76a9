"""Indicator rows, value normalization and the per-source ingest report.

Every intel reader turns its input into calls to :meth:`RowBuilder.add`; the builder
normalizes the value, checks the fields and either keeps one row of
:data:`sightline.schema.INDICATOR_SCHEMA` or records a :class:`Skip` with the reason.
Nothing is dropped silently.

Defaults (one place): confidence 50 when the source gives none (:data:`DEFAULT_CONFIDENCE`),
TLP ``amber`` when the source gives none (:data:`DEFAULT_TLP`; the conservative choice: an
unmarked indicator is not re-shared wider than its owner might allow).
"""

from __future__ import annotations

import decimal
import hashlib
import numbers
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import pyarrow as pa

from ..core.tlp import TLPError, most_restrictive, parse_tlp
from ..net import parse_network
from ..schema import INDICATOR_SCHEMA, TLP_LEVELS

DEFAULT_CONFIDENCE = 50
"""Confidence given to an indicator whose source states none."""

DEFAULT_TLP = "amber"
"""TLP given to an indicator whose source states none."""

MAX_SKIPS_KEPT = 10_000
"""Per source, at most this many skips are kept with details; all are counted."""


@dataclass
class Skip:
    """One object or line that was not loaded, and why."""

    position: str  # "line 12", "object indicator--…", "attribute <uuid>"
    reason: str
    value: str | None = None


@dataclass
class SourceReport:
    """What happened to one intel source (a file, a TAXII collection, a MISP feed)."""

    source: str
    format: str
    path: str | None = None
    read: int = 0  # objects / lines / attributes looked at
    loaded: int = 0  # indicator rows produced
    updated: int = 0  # of ``loaded``: rows that replaced a stored row (set by add_to_workspace)
    revoked: int = 0  # objects marked revoked by the source
    withdrawn: int = 0  # stored rows the source no longer lists (snapshot sources; set by add_to_workspace)
    skipped: int = 0
    skips: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    non_ids: int = 0  # of ``loaded``: rows from MISP attributes marked to_ids = false
    include_non_ids: bool = False  # whether to_ids = false attributes were loaded

    def skip(self, position: str, reason: str, value: str | None = None) -> None:
        self.skipped += 1
        if len(self.skips) < MAX_SKIPS_KEPT:
            self.skips.append(Skip(position, reason, None if value is None else str(value)[:200]))

    def skip_reasons(self) -> dict[str, int]:
        """Skip counts by reason class (text before the first ':')."""
        out: dict[str, int] = {}
        for s in self.skips:
            key = s.reason.split(":", 1)[0]
            out[key] = out.get(key, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IntelLoad:
    """Result of loading intel: the indicator table plus what happened per source.

    ``revoked_ids`` are source object ids (STIX ids, MISP uuids) the sources revoked;
    ``replaced_ids`` are object ids whose newest version is in this load, so stored rows
    from older versions of these objects are replaced.  ``snapshot_sources`` are sources read
    whole here (CSV/TSV tables, plain lists: a feed file is its full current list), so stored
    rows of theirs that the new file no longer names are withdrawn (marked revoked).
    """

    table: pa.Table
    report: list[SourceReport]
    actor_cves: list[str] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    revoked_ids: set[str] = field(default_factory=set)
    replaced_ids: set[str] = field(default_factory=set)
    snapshot_sources: set[str] = field(default_factory=set)
    refused: list[FileRefusal] = field(default_factory=list)
    """Files not loaded at all (unreadable, not intel, no indicator), each with its reason."""
    withdrawn_sources: set[str] = field(default_factory=set)
    """Sources withdrawn whole (a MISP feed event no longer in its manifest): their stored
    indicators are marked revoked."""


@dataclass
class FileRefusal:
    """One intel file that was not loaded, why, and what to do about it."""

    path: str
    reason: str
    hint: str | None = None

    @property
    def reason_class(self) -> str:
        return self.reason.split(":", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- value normalization ------------------------------------------------------------------

_TYPE_ALIASES: dict[str, str] = {
    "ip": "ip",
    "ipv4": "ip",
    "ipv6": "ip",
    "ip4": "ip",
    "ip6": "ip",
    "ipv4-addr": "ip",
    "ipv6-addr": "ip",
    "ip-src": "ip",
    "ip-dst": "ip",
    "ip_address": "ip",
    "ipaddress": "ip",
    "address": "ip",
    "cidr": "ip",
    "net": "ip",
    "network": "ip",
    "subnet": "ip",
    "prefix": "ip",
    "ip-range": "ip",
    "iprange": "ip",
    "ip|port": "ip_port",
    "ip-port": "ip_port",
    "ip:port": "ip_port",
    "ip-dst|port": "ip_port",
    "ip-src|port": "ip_port",
    "ipport": "ip_port",
    "socket": "ip_port",
    "domain": "domain",
    "domain-name": "domain",
    "domainname": "domain",
    "hostname": "domain",
    "host": "domain",
    "fqdn": "domain",
    "dns": "domain",
    "tls cert domain": "domain",
    "tls-cert-domain": "domain",
    "sni": "domain",
    "url": "url",
    "uri": "url",
    "link": "url",
    "x509-fingerprint-sha1": "x509_sha1",
    "x509_sha1": "x509_sha1",
    "x509-sha1": "x509_sha1",
    "cert-sha1": "x509_sha1",
    "x509-fingerprint-sha256": "x509_sha256",
    "x509_sha256": "x509_sha256",
    "x509-sha256": "x509_sha256",
    "cert-sha256": "x509_sha256",
    "tls fingerprint": "x509_sha256",
    "tls-fingerprint": "x509_sha256",
    "x509-fingerprint-md5": "x509_md5",
    "x509_md5": "x509_md5",
    "x509-md5": "x509_md5",
    "x509_serial": "x509_serial",
    "x509-serial": "x509_serial",
    "serial": "x509_serial",
    "serial_number": "x509_serial",
    "ja3": "ja3",
    "ja3-fingerprint-md5": "ja3",
    "ja3_hash": "ja3",
    "md5": "file_hash",
    "sha1": "file_hash",
    "sha256": "file_hash",
    "hash": "file_hash",
    "file_hash": "file_hash",
    "filehash": "file_hash",
    "file-hash": "file_hash",
}

_HEX = re.compile(r"^[0-9a-f]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")
_HASH_LEN = {"x509_sha1": 40, "x509_sha256": 64, "x509_md5": 32, "ja3": 32}


def refang(text: str) -> str:
    """Undo the usual defanging (``1.2.3[.]4``, ``hxxp://``, ``example(.)com``)."""
    t = text.strip().strip('"').strip("'").strip()
    for a, b in (
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("(dot)", "."),
        ("[:]", ":"),
        ("[://]", "://"),
    ):
        t = t.replace(a, b)
    return re.sub(r"^hxxp", "http", t, flags=re.IGNORECASE)


def canonical_type(hint: str | None) -> str | None:
    """Map a liberal type name (``IP``, ``ip-dst``, ``TLS Cert Domain`` ...) to a kind, or None."""
    if hint is None:
        return None
    h = hint.strip().lower()
    if not h:
        return None
    return _TYPE_ALIASES.get(h) or _TYPE_ALIASES.get(h.replace("_", "-")) or _TYPE_ALIASES.get(h.replace("-", "_"))


def guess_kind(value: str) -> str | None:
    """Guess the kind of a bare value (plain lists, CSV rows without a type)."""
    v = refang(value)
    if re.match(r"^[a-z][a-z0-9+.-]*://\S+$", v, flags=re.IGNORECASE):
        return "url"
    try:
        parse_network(v)
        return "ip"
    except ValueError:
        pass
    if re.match(r"^\[?[0-9a-fA-F:.]+\]?[:|]\d{1,5}$", v) and ("." in v or v.startswith("[")):
        return "ip_port"
    lv = v.lower().rstrip(".")
    if _HEX.match(lv) and len(lv) in (32, 40, 64):
        return "file_hash"
    if _DOMAIN.match(_idna(lv)):
        return "domain"
    return None


def _idna(v: str) -> str:
    if v.isascii():
        return v
    try:
        return v.encode("idna").decode("ascii")
    except UnicodeError:
        return v


def _split_ip_port(v: str) -> tuple[str, int]:
    if "|" in v:
        host, _, port = v.rpartition("|")
    elif v.startswith("["):
        host, _, port = v[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = v.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad value: port {port!r} in {v!r}")
    return host, int(port)


@dataclass(frozen=True)
class Normalized:
    type: str
    value: str
    start4: int | None = None
    end4: int | None = None
    start6: bytes | None = None
    end6: bytes | None = None
    port: int | None = None


def normalize(kind: str, value: str, port: int | None = None) -> Normalized:
    """Normalize one indicator value of a kind (see :func:`canonical_type`).

    Raises ``ValueError`` whose message starts with ``bad value:``.
    """
    v = refang(str(value))
    if not v:
        raise ValueError("bad value: empty")
    if kind == "ip_port":
        v, port = _split_ip_port(v)
        kind = "ip"
    if kind == "ip":
        try:
            r = parse_network(v)
        except ValueError as e:
            raise ValueError(f"bad value: not an IP address or CIDR: {v!r}") from e
        if port is not None and not 0 <= int(port) <= 65535:
            raise ValueError(f"bad value: port {port}")
        if r.version == 4:
            return Normalized("ipv4", r.text, r.start4, r.end4, port=port)
        return Normalized("ipv6", r.text, start6=r.start6, end6=r.end6, port=port)
    if kind == "domain":
        d = _idna(v.lower().rstrip("."))
        if d.startswith("*."):
            d = d[2:]  # wildcard certificates name the domain and its subdomains
        if not _DOMAIN.match(d):
            raise ValueError(f"bad value: not a domain name: {v!r}")
        return Normalized("domain", d)
    if kind == "url":
        if not re.match(r"^[a-z][a-z0-9+.-]*://\S+$", v, flags=re.IGNORECASE):
            raise ValueError(f"bad value: not a URL: {v!r}")
        scheme, rest = v.split("://", 1)
        host, sep, path = rest.partition("/")
        return Normalized("url", f"{scheme.lower()}://{host.lower()}{sep}{path}")
    if kind in ("x509_sha1", "x509_sha256", "x509_md5", "ja3", "file_hash"):
        h = v.lower().replace(":", "").replace(" ", "")
        want = _HASH_LEN.get(kind)
        if not _HEX.match(h) or (want and len(h) != want) or (kind == "file_hash" and len(h) not in (32, 40, 64, 128)):
            raise ValueError(f"bad value: not a {kind} hash: {v!r}")
        return Normalized(kind, h)
    if kind == "x509_serial":
        s = v.lower().replace(":", "").replace(" ", "")
        if s.startswith("0x"):
            s = s[2:]
        if not _HEX.match(s):
            raise ValueError(f"bad value: not a hex serial number: {v!r}")
        return Normalized("x509_serial", s)
    raise ValueError(f"unsupported type: {kind!r}")


# --- field normalization ------------------------------------------------------------------


def normalize_tlp(text: str | None) -> str | None:
    """A feed's marking (``TLP:WHITE`` / ``tlp:amber+strict`` / ``Green``) -> its TLP 2.0 name,
    read by the one TLP parser (None if empty).

    Raises ``ValueError`` for an unknown level (the indicator is skipped with that reason).
    """
    if text is None or not str(text).strip():
        return None
    try:
        return parse_tlp(text).label
    except TLPError as e:
        raise ValueError(f"bad value: unknown TLP {text!r}") from e


def most_restrictive_tlp(levels: list[str]) -> str | None:
    known = [lv for lv in levels if lv in TLP_LEVELS]
    return most_restrictive(parse_tlp(lv) for lv in known).label if known else None


_CONF_WORDS = {"high": 85, "medium": 50, "med": 50, "moderate": 50, "low": 15, "none": 0}


def normalize_confidence(value: Any) -> int | None:
    """0-100 integer; accepts ``85``, ``"0.85"`` (a fraction), ``"high"``. None if empty."""
    if value is None:
        return None
    if isinstance(value, str):
        t = value.strip().lower().rstrip("%")
        if not t:
            return None
        if t in _CONF_WORDS:
            return _CONF_WORDS[t]
        try:
            value = float(t)
        except ValueError as e:
            raise ValueError(f"bad value: confidence {value!r}") from e
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, decimal.Decimal)):
        # JSON feeds can put anything there (a list, an object, true): not a confidence
        raise ValueError(f"bad value: confidence {value!r}")
    f = float(value)
    if 0 < f < 1 and not float(f).is_integer():
        f *= 100
    if not 0 <= f <= 100:
        raise ValueError(f"bad value: confidence {value!r} outside 0-100")
    return int(round(f))


_DATE_TIME = re.compile(
    r"^(?P<y>\d{4})(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})"
    r"(?:(?:[Tt]|\s+)(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"\s*(?P<z>[Zz]|UTC|utc|GMT|gmt|[+-]\d{2}(?::?\d{2})?)?$"
)
"""Year-first dates, optionally with a time and a zone: ``2024-01-15``, ``2024/01/15``,
``2024-01-15 10:00``, ``2024-01-15T10:00:00.123456Z``, ``2024-01-15 10:00:00 +02:00``."""

_DAY_FIRST_OR_MONTH_FIRST = re.compile(r"^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b")
_TIME_FORMS = "use YYYY-MM-DD, YYYY-MM-DD HH:MM:SS with Z or ±HH:MM, or epoch seconds"


def _zone(z: str | None) -> timezone:
    if not z or z.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if z[0] == "-" else 1
    digits = z[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {z}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_time(value: Any, *, end_of_day: bool = False) -> datetime | None:
    """A time as intel feeds write it -> aware UTC datetime (None if empty).

    Accepted: ISO 8601 and the usual spellings of it (``2024-01-15``, ``2024/01/15``,
    ``2024-01-15 10:00[:00[.123456]]``, ``T`` or a space, ``Z``/``UTC`` or ``±HH[:MM]``;
    no zone means UTC), and epoch seconds (9-11 digits, fraction allowed) or milliseconds
    (12-13 digits).  A bare date as the end of a window means the whole day
    (``end_of_day``): a ``last_seen`` of 2024-09-04 still covers flows on that day.

    Raises ``ValueError`` (``bad value: ...``) for anything else, and for day-first or
    month-first dates such as ``01/02/2024``: feeds write both orders, so the row is
    refused rather than read a month off.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    t = str(value).strip()
    if not t or t == "-":
        return None
    try:
        if re.match(r"^\d{9,11}(\.\d+)?$", t):
            return datetime.fromtimestamp(float(t), UTC)
        if re.match(r"^\d{12,13}$", t):
            return datetime.fromtimestamp(int(t) / 1000, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise ValueError(f"bad value: time {value!r} ({_TIME_FORMS})") from e
    if _DAY_FIRST_OR_MONTH_FIRST.match(t):
        raise ValueError(f"bad value: ambiguous date {value!r}: day and month order unknown (write it as YYYY-MM-DD)")
    m = _DATE_TIME.match(t)
    try:
        if m:
            y, mo, d = int(m["y"]), int(m["m"]), int(m["d"])
            if m["H"] is None:
                day = datetime(y, mo, d, tzinfo=_zone(m["z"]))
                if end_of_day:
                    day = datetime.combine(day.date(), time.max, day.tzinfo)
                return day.astimezone(UTC)
            micro = int((m["f"] or "0")[:6].ljust(6, "0"))
            return datetime(
                y, mo, d, int(m["H"]), int(m["M"]), int(m["S"] or 0), micro, tzinfo=_zone(m["z"])
            ).astimezone(UTC)
        # other ISO 8601 spellings Python reads (basic format 20240115T100000, ...)
        d = datetime.fromisoformat(t)  # 3.11+ reads a trailing Z
    except ValueError as e:
        raise ValueError(f"bad value: time {value!r} ({_TIME_FORMS})") from e
    return d.astimezone(UTC) if d.tzinfo else d.replace(tzinfo=UTC)


def indicator_id(source: str, type_: str, value: str, port: int | None) -> str:
    """Stable id: the same source, type, value and port always give the same id."""
    key = "\x1f".join((source, type_, value, "" if port is None else str(int(port))))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


# --- row builder --------------------------------------------------------------------------


class RowBuilder:
    """Collects indicator rows for one source and records skips in its report.

    Duplicate indicators of one source (same id) are merged: the validity window becomes
    the union (earliest start, latest end, open if either is open), confidence the highest,
    TLP the most restrictive.
    """

    def __init__(
        self,
        report: SourceReport,
        *,
        imported_at: datetime | None = None,
        default_tlp: str = DEFAULT_TLP,
        default_confidence: int = DEFAULT_CONFIDENCE,
        default_actor: str | None = None,
    ) -> None:
        self.report = report
        self.imported_at = imported_at or datetime.now(UTC)
        self.default_tlp = default_tlp
        self.default_confidence = default_confidence
        self.default_actor = default_actor
        self.rows: dict[str, dict[str, Any]] = {}

    def add(
        self,
        kind: str | None,
        value: Any,
        *,
        position: str,
        port: int | None = None,
        actor: str | None = None,
        valid_from: Any = None,
        valid_until: Any = None,
        confidence: Any = None,
        tlp: Any = None,
        source_id: str | None = None,
        description: str | None = None,
    ) -> bool:
        """Normalize and keep one indicator; on a bad field record a skip and return False."""
        text = "" if value is None else str(value)
        try:
            k = kind or guess_kind(text)
            if k is None:
                raise ValueError(f"bad value: cannot tell the indicator type of {text!r}")
            n = normalize(k, text, port)
            vf = parse_time(valid_from)
            vu = parse_time(valid_until, end_of_day=True)
            if vf is not None and vu is not None and vu < vf:
                raise ValueError(f"bad value: valid_until {vu.isoformat()} before valid_from {vf.isoformat()}")
            conf = normalize_confidence(confidence)
            level = tlp if tlp in TLP_LEVELS else normalize_tlp(tlp)
        except ValueError as e:
            self.report.skip(position, str(e), text)
            return False
        iid = indicator_id(self.report.source, n.type, n.value, n.port)
        row = {
            "indicator_id": iid,
            "type": n.type,
            "value": n.value,
            "ip_start4": n.start4,
            "ip_end4": n.end4,
            "ip_start6": n.start6,
            "ip_end6": n.end6,
            "port": n.port,
            "actor": actor or self.default_actor,
            "valid_from": vf,
            "valid_until": vu,
            "confidence": self.default_confidence if conf is None else conf,
            "tlp": level or self.default_tlp,
            "source": self.report.source,
            "source_id": source_id or position,
            "description": description,
            "revoked": False,
            "imported_at": self.imported_at,
        }
        old = self.rows.get(iid)
        if old is not None:
            row = _merge(old, row)
        self.rows[iid] = row
        return True

    def table(self) -> pa.Table:
        rows = list(self.rows.values())
        self.report.loaded = len(rows)
        return pa.Table.from_pylist(rows, schema=INDICATOR_SCHEMA)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    out["valid_from"] = (
        None if a["valid_from"] is None or b["valid_from"] is None else min(a["valid_from"], b["valid_from"])
    )
    out["valid_until"] = (
        None if a["valid_until"] is None or b["valid_until"] is None else max(a["valid_until"], b["valid_until"])
    )
    out["confidence"] = max(a["confidence"], b["confidence"])
    out["tlp"] = most_restrictive_tlp([a["tlp"], b["tlp"]])
    out["actor"] = a["actor"] or b["actor"]
    if b["description"] and b["description"] != a["description"]:
        out["description"] = "; ".join(x for x in (a["description"], b["description"]) if x)[:1000]
    return out


def empty_indicators() -> pa.Table:
    return INDICATOR_SCHEMA.empty_table()


__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_TLP",
    "Skip",
    "SourceReport",
    "IntelLoad",
    "RowBuilder",
    "Normalized",
    "normalize",
    "normalize_tlp",
    "normalize_confidence",
    "parse_time",
    "canonical_type",
    "guess_kind",
    "refang",
    "indicator_id",
    "most_restrictive_tlp",
    "empty_indicators",
]
