"""Exposure scan readers: nmap XML, masscan JSON / list, Shodan- and Censys-style host JSON.

Every reader turns one file into service rows (:data:`SERVICE_SCHEMA`: one row per open
``ip:port/proto``) and reports what it could not use to a quarantine collector with file,
position and reason.  A reader never raises for bad content: a truncated nmap run keeps the
hosts before the cut and quarantines the rest; a masscan line that is not JSON is one
quarantine entry.  XML goes through defusedxml (entity expansion and external references
are refused and quarantined).

Format is detected from the content (:func:`sniff_scan_format`); ``.gz`` / ``.zst`` files
are decompressed first.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as DET

from ..compression import decompress_bounded
from ..errors import InputError
from ..net import parse_ips
from ..schema import QUARANTINE_SCHEMA, TS
from .cpe import normalize_product

SERVICE_SCHEMA = pa.schema(
    [
        pa.field("ip", pa.string(), nullable=False),  # normalized text (edge table, small)
        pa.field("port", pa.int32(), nullable=False),
        pa.field("proto", pa.string(), nullable=False),  # tcp | udp | sctp
        pa.field("service", pa.string()),  # scanner's service name (http, https, ...)
        pa.field("product", pa.string()),  # scanner's product field, verbatim
        pa.field("version", pa.string()),  # scanner's version field, verbatim
        pa.field("extrainfo", pa.string()),
        pa.field("banner", pa.string()),  # cut to 1024 characters
        pa.field("cpes", pa.list_(pa.string())),  # CPEs the scanner attached
        pa.field("hostname", pa.string()),
        pa.field("product_id", pa.string()),  # canonical "vendor:product" (cpe.py), null = unknown
        pa.field("vendor", pa.string()),
        pa.field("product_name", pa.string()),  # canonical display name
        pa.field("norm_version", pa.string()),  # version in the vendor's notation
        pa.field("cpe", pa.string()),  # canonical CPE 2.3
        pa.field("product_match", pa.string()),  # "cpe": a scanner CPE named it; "name": a product-name rule
        pa.field("scanned_at", TS),
        pa.field("source_format", pa.string()),
        pa.field("source_file", pa.string()),
    ]
)
"""One row per open service seen by a scan."""

SCAN_FORMATS = ("nmap-xml", "masscan-json", "masscan-list", "host-json")

_BANNER_MAX = 1024


@dataclass
class ScanLoad:
    """What :func:`load_scans` read: services, what it could not use, and counts."""

    services: pa.Table
    quarantine: pa.Table
    counts: dict[str, int] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)  # file -> detected format


class _Collector:
    """Rows and quarantine entries of one file."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.rows: list[dict[str, Any]] = []
        self.bad: list[tuple[int, str, str, str]] = []
        self.hosts = 0
        self.skipped = 0  # closed/filtered ports, hosts down: not bad, just not exposed
        self.positions: list[tuple[int, str]] = []  # of each row, for quarantining bad addresses

    def check_addresses(self) -> None:
        """Validate and normalize all row addresses at once (vectorized), quarantine bad ones."""
        if not self.rows:
            return
        texts = _normalize_ips([r["ip"] for r in self.rows])
        keep = []
        for r, t, (pos, kind) in zip(self.rows, texts, self.positions):
            if t is None:
                self.quarantine(pos, f"not an IP address: {r['ip']!r}", r["ip"], kind)
            else:
                r["ip"] = t
                keep.append(r)
        self.rows = keep

    def quarantine(self, position: int, reason: str, raw: Any = "", kind: str = "line") -> None:
        self.bad.append((int(position), kind, reason, str(raw or "")[:512]))

    def add(
        self,
        ip: Any,
        port: Any,
        proto: Any,
        *,
        position: int,
        kind: str,
        service: str | None = None,
        product: str | None = None,
        version: str | None = None,
        extrainfo: str | None = None,
        banner: str | None = None,
        cpes: Iterable[str] | None = None,
        hostname: str | None = None,
        scanned_at: datetime | None = None,
    ) -> None:
        if isinstance(ip, int) and not isinstance(ip, bool) and 0 <= ip < 2**32:
            ip = str(ipaddress.IPv4Address(ip))  # Shodan's "ip" field is an integer
        ip_text = "" if ip is None else str(ip)
        try:
            port_i = int(port)
        except (TypeError, ValueError):
            port_i = -1
        if not 0 <= port_i <= 65535:
            self.quarantine(position, f"port out of range or missing: {port!r}", f"{ip_text} {port}", kind)
            return
        self.positions.append((int(position), kind))
        proto_s = str(proto or "tcp").strip().lower()
        self.rows.append(
            {
                "ip": ip_text,
                "port": port_i,
                "proto": proto_s,
                "service": _s(service),
                "product": _s(product),
                "version": _s(version),
                "extrainfo": _s(extrainfo),
                "banner": _s(banner, _BANNER_MAX),
                "cpes": [str(c) for c in cpes or () if c],
                "hostname": _s(hostname),
                "scanned_at": scanned_at,
                "source_format": self.fmt,
                "source_file": str(self.path),
            }
        )


class _Raw:
    """A record shown as JSON only if it ends up in quarantine (dumping every record is slow)."""

    __slots__ = ("rec",)

    def __init__(self, rec: Any) -> None:
        self.rec = rec

    def __str__(self) -> str:
        return self.rec if isinstance(self.rec, str) else json.dumps(self.rec, default=str)[:512]


def _s(v: Any, limit: int = 512) -> str | None:
    if v is None:
        return None
    t = str(v).strip()
    return t[:limit] if t else None


def _normalize_ips(values: list[str]) -> list[str | None]:
    """Canonical text of each address (None where it is not one), via the columnar parser."""
    parsed = parse_ips(pa.array(values, pa.string()))
    v4 = np.asarray(pc.fill_null(parsed.v4, 0).to_numpy(zero_copy_only=False), dtype=np.uint32)
    octets = [pa.array(((v4 >> s) & 255).astype(np.uint32)).cast(pa.string()) for s in (24, 16, 8, 0)]
    v4_text = pc.binary_join_element_wise(*octets, ".").to_pylist()
    is_v4 = np.asarray(pc.is_valid(parsed.v4).to_numpy(zero_copy_only=False), dtype=bool)
    v6 = parsed.v6.to_pylist()
    v6_text = {b: str(ipaddress.IPv6Address(b)) for b in set(v6) if b is not None}
    return [v4_text[i] if is_v4[i] else (v6_text[v6[i]] if v6[i] is not None else None) for i in range(len(values))]


def _ip_text(v: Any) -> str | None:
    try:
        if isinstance(v, int) and not isinstance(v, bool):
            return str(ipaddress.IPv4Address(v))  # Shodan's "ip" field is an integer
        a = ipaddress.ip_address(str(v).strip())
    except (ValueError, TypeError):
        return None
    if a.version == 6 and a.ipv4_mapped is not None:
        return str(a.ipv4_mapped)
    return str(a)


def _epoch(v: Any) -> datetime | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    if x <= 0 or x > 4e9:
        return None
    return datetime.fromtimestamp(x, UTC)


def _iso(v: Any) -> datetime | None:
    if not isinstance(v, str) or not v:
        return _epoch(v)
    try:
        d = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


# --- nmap XML --------------------------------------------------------------------------


def read_nmap_xml(data: bytes, out: _Collector) -> None:
    """nmap ``-oX``: one row per ``<port>`` whose state is ``open``.

    A run killed mid-scan has no ``</nmaprun>``: the hosts parsed before the cut are kept,
    the parse error is quarantined with its line.
    """
    run_start: datetime | None = None
    root_seen = False
    index = 0
    try:
        for event, elem in DET.iterparse(io.BytesIO(data), events=("start", "end")):
            if event == "start":
                if not root_seen:
                    root_seen = True
                    if elem.tag != "nmaprun":
                        out.quarantine(1, f"not an nmap XML report (root element <{elem.tag}>)", kind="line")
                        return
                    run_start = _epoch(elem.get("start"))
                continue
            if elem.tag != "host":
                continue
            index += 1
            _nmap_host(elem, index, run_start, out)
            elem.clear()
    except DefusedXmlException as e:
        out.quarantine(0, f"unsafe XML refused ({type(e).__name__}): {e}", kind="offset")
    except DET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else 0
        out.quarantine(line, f"XML parse error after {index} complete host(s), scan truncated or corrupt: {e}")
    except (ValueError, LookupError) as e:  # expat: a declared encoding it cannot parse (UTF-16) or does not know
        out.quarantine(0, f"XML not readable after {index} complete host(s): {e}", kind="offset")


def _nmap_host(host: Any, index: int, run_start: datetime | None, out: _Collector) -> None:
    status = host.find("status")
    if status is not None and status.get("state") not in (None, "up"):
        out.skipped += 1
        return
    ip = None
    for a in host.findall("address"):
        if a.get("addrtype") in ("ipv4", "ipv6"):
            ip = a.get("addr")
            break
    if ip is None:
        out.quarantine(index, "host without an IPv4/IPv6 address", kind="record")
        return
    out.hosts += 1
    hn = host.find("hostnames/hostname")
    hostname = hn.get("name") if hn is not None else None
    when = _epoch(host.get("starttime")) or run_start
    for port in host.findall("ports/port"):
        st = port.find("state")
        if st is None or st.get("state") != "open":
            out.skipped += 1
            continue
        svc = port.find("service")
        attrs = dict(svc.attrib) if svc is not None else {}
        cpes = [c.text.strip() for c in (svc.findall("cpe") if svc is not None else []) if c.text]
        extra = " ".join(x for x in (attrs.get("extrainfo"), attrs.get("devicetype"), attrs.get("ostype")) if x)
        # NSE script output (http-title, ssl-cert) often names the appliance when -sV did not.
        scripts = " | ".join(f"{s.get('id')}: {s.get('output', '')}" for s in port.findall("script"))
        out.add(
            ip,
            port.get("portid"),
            port.get("protocol"),
            position=index,
            kind="record",
            service=attrs.get("name"),
            product=attrs.get("product"),
            version=attrs.get("version"),
            extrainfo=extra or None,
            banner=scripts or None,
            cpes=cpes,
            hostname=hostname,
            scanned_at=when,
        )


# --- masscan ---------------------------------------------------------------------------


def _masscan_record(rec: Any, pos: int, out: _Collector, raw: str) -> None:
    if not isinstance(rec, dict) or "ip" not in rec or not isinstance(rec.get("ports"), list):
        out.quarantine(pos, "masscan record without ip/ports", raw)
        return
    out.hosts += 1
    when = _epoch(rec.get("timestamp"))
    for p in rec["ports"]:
        if not isinstance(p, dict):
            out.quarantine(pos, "masscan port entry is not an object", raw)
            continue
        svc = p.get("service") if isinstance(p.get("service"), dict) else None
        status = p.get("status")
        if svc is None and status not in (None, "open"):
            out.skipped += 1
            continue
        out.add(
            rec["ip"],
            p.get("port"),
            p.get("proto"),
            position=pos,
            kind="line",
            service=svc.get("name") if svc else None,
            banner=svc.get("banner") if svc else None,
            scanned_at=when,
        )


def read_masscan_json(data: bytes, out: _Collector) -> None:
    """masscan ``-oJ``: a JSON array, often with a trailing comma masscan itself writes.

    Parsed line by line (masscan writes one record per line) so one bad line costs one
    record, not the file.
    """
    text = data.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, list):
        for i, rec in enumerate(doc, 1):
            _masscan_record(rec, i, out, json.dumps(rec)[:512])
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip().rstrip(",").strip()
        if s in ("", "[", "]", "{finished: 1}"):
            continue
        try:
            rec = json.loads(s)
        except (ValueError, RecursionError) as e:
            out.quarantine(lineno, f"not a JSON record: {e}", line)
            continue
        _masscan_record(rec, lineno, out, line)


_MASSCAN_LINE = re.compile(r"^(open|closed|banner)\s+(tcp|udp|sctp)\s+(\d+)\s+(\S+)\s+(\d+)(?:\s+(\S+)\s*(.*))?$")


def read_masscan_list(data: bytes, out: _Collector) -> None:
    """masscan ``-oL``: ``open tcp 443 192.0.2.1 1700000000`` and ``banner`` lines."""
    seen_hosts: set[str] = set()
    for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = _MASSCAN_LINE.match(s)
        if not m:
            out.quarantine(lineno, "not a masscan list line (status proto port ip time)", line)
            continue
        status, proto, port, ip, ts, svc, banner = m.groups()
        if status == "closed":
            out.skipped += 1
            continue
        seen_hosts.add(ip)
        out.add(
            ip,
            port,
            proto,
            position=lineno,
            kind="line",
            service=svc if status == "banner" else None,
            banner=banner if status == "banner" else None,
            scanned_at=_epoch(ts),
        )
    out.hosts += len(seen_hosts)


# --- Shodan / Censys host JSON --------------------------------------------------------


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [str(x) for x in v if isinstance(x, (str, int, float))]
    return []


def _shodan_banner(b: dict[str, Any], ip: Any, pos: int, out: _Collector, raw: Any) -> None:
    hostnames = _as_list(b.get("hostnames"))
    http = b.get("http") if isinstance(b.get("http"), dict) else {}
    title = http.get("title") if http else None
    banner = " | ".join(x for x in (title, b.get("data") if isinstance(b.get("data"), str) else None) if x)
    out.add(
        b.get("ip_str", ip) if b.get("ip_str") is not None else ip,
        b.get("port"),
        b.get("transport"),
        position=pos,
        kind="record",
        service=(b.get("_shodan") or {}).get("module") if isinstance(b.get("_shodan"), dict) else b.get("service"),
        product=b.get("product"),
        version=b.get("version"),
        extrainfo=b.get("info") if isinstance(b.get("info"), str) else None,
        banner=banner or None,
        cpes=_as_list(b.get("cpe23")) + _as_list(b.get("cpe")),
        hostname=hostnames[0] if hostnames else None,
        scanned_at=_iso(b.get("timestamp")),
    )


def _censys_service(s: dict[str, Any], ip: Any, when: datetime | None, pos: int, out: _Collector) -> None:
    product = version = None
    cpes: list[str] = []
    software = s.get("software")
    for sw in software if isinstance(software, list) else []:
        if not isinstance(sw, dict):
            continue
        cpe = sw.get("uniform_resource_identifier") or sw.get("cpe")
        if isinstance(cpe, str):
            cpes.append(cpe)
        if product is None and sw.get("product"):
            product = " ".join(str(x) for x in (sw.get("vendor"), sw.get("product")) if x)
            version = sw.get("version")
    http = s.get("http") if isinstance(s.get("http"), dict) else {}
    resp = http.get("response") if isinstance(http.get("response"), dict) else {}
    title = resp.get("html_title")
    banner = " | ".join(str(x) for x in (title, s.get("banner")) if x)
    out.add(
        ip,
        s.get("port"),
        s.get("transport_protocol"),
        position=pos,
        kind="record",
        service=s.get("extended_service_name") or s.get("service_name"),
        product=product,
        version=version,
        banner=banner or None,
        cpes=cpes,
        scanned_at=_iso(s.get("observed_at")) or when,
    )


def _host_record(rec: Any, pos: int, out: _Collector) -> None:
    raw = _Raw(rec)
    if not isinstance(rec, dict):
        out.quarantine(pos, "host record is not a JSON object", raw, "record")
        return
    if isinstance(rec.get("result"), dict):  # Censys API envelope
        rec = rec["result"]
    if isinstance(rec.get("services"), list):  # Censys host
        out.hosts += 1
        ip = rec.get("ip")
        when = _iso(rec.get("last_updated_at"))
        for s in rec["services"]:
            if isinstance(s, dict):
                _censys_service(s, ip, when, pos, out)
            else:
                out.quarantine(pos, "Censys service entry is not an object", raw, "record")
        return
    if isinstance(rec.get("data"), list):  # Shodan host API
        out.hosts += 1
        ip = rec.get("ip_str", rec.get("ip"))
        for b in rec["data"]:
            if isinstance(b, dict):
                _shodan_banner(b, ip, pos, out, raw)
            else:
                out.quarantine(pos, "Shodan banner entry is not an object", raw, "record")
        return
    if "port" in rec:  # one Shodan banner (stream / download)
        out.hosts += 1
        _shodan_banner(rec, rec.get("ip_str", rec.get("ip")), pos, out, raw)
        return
    out.quarantine(pos, "host record has neither services, data nor port", raw, "record")


def read_host_json(data: bytes, out: _Collector) -> None:
    """Shodan banners / host API and Censys host records: one document or JSON lines."""
    text = data.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        doc = None
    if doc is not None:
        recs = doc if isinstance(doc, list) else [doc]
        if isinstance(doc, dict) and isinstance(doc.get("matches"), list):  # Shodan search
            recs = doc["matches"]
        for i, rec in enumerate(recs, 1):
            _host_record(rec, i, out)
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        try:
            rec = json.loads(s)
        except (ValueError, RecursionError) as e:
            out.quarantine(lineno, f"not a JSON record: {e}", line)
            continue
        _host_record(rec, lineno, out)


# --- detection and loading -------------------------------------------------------------

_READERS: dict[str, Callable[[bytes, _Collector], None]] = {
    "nmap-xml": read_nmap_xml,
    "masscan-json": read_masscan_json,
    "masscan-list": read_masscan_list,
    "host-json": read_host_json,
}


def sniff_scan_format(head: bytes) -> str | None:
    """Name of the scan format of a file from its first bytes, or ``None``."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip().decode("utf-8", "replace")
    if text.startswith("<"):
        return "nmap-xml"
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if first.startswith("#masscan") or _MASSCAN_LINE.match(first):
        return "masscan-list"
    if text.startswith(("[", "{")):
        if re.search(r'"ports"\s*:\s*\[', text) and not re.search(r'"(services|ip_str|data)"\s*:', text):
            return "masscan-json"
        return "host-json"
    return None


def _decompress(raw: bytes) -> bytes:
    # streamed with a bound, so a decompression bomb stops there instead of filling memory
    return decompress_bounded(raw)


def _read_file(path: Path) -> tuple[_Collector, str | None]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(
            f"cannot read scan file: {e.strerror or e}", path=path, hint="check the path and permissions"
        ) from e
    probe = _Collector(path, "unknown")
    try:
        data = _decompress(raw)
    except Exception as e:  # corrupt archive: the whole file is one bad record
        probe.quarantine(0, f"cannot decompress: {e}", kind="offset")
        return probe, None
    fmt = sniff_scan_format(data[:65536])
    if fmt is None:
        probe.quarantine(
            0,
            "unknown scan format (expected nmap XML, masscan JSON/list, Shodan/Censys JSON)",
            data[:200].decode("utf-8", "replace"),
            kind="offset",
        )
        return probe, None
    out = _Collector(path, fmt)
    _READERS[fmt](data, out)
    out.check_addresses()
    return out, fmt


def _normalize(rows: list[dict[str, Any]]) -> None:
    """Attach canonical product ids; one lookup per distinct product text, not per row."""
    cache: dict[tuple[Any, ...], Any] = {}
    for r in rows:
        k = (r["product"], r["version"], tuple(r["cpes"]), r["banner"], r["extrainfo"])
        if k not in cache:
            text_extra = " ".join(x for x in (r["extrainfo"], r["banner"]) if x) or None
            cache[k] = normalize_product(r["product"], r["version"], list(r["cpes"]), text_extra)
        n = cache[k]
        r["product_id"] = n.product_id if n else None
        r["vendor"] = n.vendor if n else None
        r["product_name"] = n.display if n else None
        r["norm_version"] = n.version if n else None
        r["cpe"] = n.cpe if n else None
        r["product_match"] = n.match if n else None


def _merge_duplicates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per ip/port/proto per file: masscan writes "open" and "banner" separately."""
    merged: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in rows:
        k = (r["ip"], r["port"], r["proto"])
        cur = merged.get(k)
        if cur is None:
            merged[k] = r
            continue
        for f, v in r.items():
            if f == "cpes":
                cur[f] = list(dict.fromkeys(cur[f] + v))
            elif cur.get(f) is None and v is not None:
                cur[f] = v
    return list(merged.values())


def _newest_per_service(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Across files, the newest observation of an ip/port/proto wins (ties: the later file)."""
    floor = datetime.min.replace(tzinfo=UTC)
    best: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in rows:
        k = (r["ip"], r["port"], r["proto"])
        cur = best.get(k)
        if cur is None or (r["scanned_at"] or floor) >= (cur["scanned_at"] or floor):
            best[k] = r
    return list(best.values())


def _iter_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    for p in paths:
        p = Path(p)
        if p.is_dir():
            yield from sorted(x for x in p.rglob("*") if x.is_file() and not x.name.startswith("."))
        else:
            yield p


def load_scans(paths: Iterable[str | Path]) -> ScanLoad:
    """Read exposure scans into one services table.

    Parameters
    ----------
    paths
        Scan files or directories (searched recursively); format detected per file.

    Returns
    -------
    ScanLoad
        ``services`` (:data:`SERVICE_SCHEMA`, one row per open ip:port/proto; the newest
        observation wins when several scans saw it),
        ``quarantine`` (:data:`sightline.schema.QUARANTINE_SCHEMA`), ``counts`` (files,
        hosts, services, edge_services, skipped, quarantined) and the format per file.

    Raises
    ------
    InputError
        A path that does not exist or cannot be read (bad *content* is quarantined).
    """
    all_rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    counts = {"files": 0, "hosts": 0, "services": 0, "edge_services": 0, "skipped": 0, "quarantined": 0}
    formats: dict[str, str] = {}
    for path in _iter_paths(paths):
        out, fmt = _read_file(path)
        counts["files"] += 1
        formats[str(path)] = fmt or "unknown"
        rows = _merge_duplicates(out.rows)
        all_rows.extend(rows)
        counts["hosts"] += out.hosts
        counts["skipped"] += out.skipped
        counts["quarantined"] += len(out.bad)
        for pos, kind, reason, raw in out.bad:
            bad.append({"source_file": str(path), "position": pos, "position_kind": kind, "reason": reason, "raw": raw})
    all_rows = _newest_per_service(all_rows)
    _normalize(all_rows)
    counts["services"] = len(all_rows)
    counts["edge_services"] = sum(1 for r in all_rows if r["product_id"])
    services = pa.Table.from_pylist(all_rows, schema=SERVICE_SCHEMA)
    quarantine = pa.Table.from_pylist(bad, schema=QUARANTINE_SCHEMA)
    return ScanLoad(services, quarantine, counts, formats)


__all__ = [
    "SERVICE_SCHEMA",
    "SCAN_FORMATS",
    "ScanLoad",
    "load_scans",
    "sniff_scan_format",
]
