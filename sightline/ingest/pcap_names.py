"""Names from packets: DNS answers, TLS ClientHello SNI and HTTP ``Host`` -> names dataset.

The pcap reader (:mod:`sightline.ingest.pcap`) hands each packet's transport payload here;
only packets that can carry a name are looked at (UDP from port 53, TCP payload that starts
like a TLS handshake record or an HTTP request), so the cost on other traffic is a byte
comparison.  Rows follow :data:`sightline.ingest.names.NAMES_SCHEMA`, as Zeek ``dns.log`` /
``ssl.log`` and Suricata ``dns``/``tls`` events give them:

- ``dns_answer``: one per A/AAAA answer of a DNS response; client = the response's receiver,
  ``dst_ip``/``dst_ip6`` = the answer address, ``name`` = the query, ``ttl_s`` the answer's TTL;
- ``tls_sni``: one per ClientHello with a server name; client, server, ``dst_port``, ``name``;
- ``http_host``: one per HTTP request with a ``Host`` header naming a host (not an address);
- ``http_url``: the same request's URL, ``http://host[:port]/path?query`` (for URL indicators).

What is read: the first segment of a ClientHello (a ClientHello split over several segments
gives its SNI when the extension lies in the first one, as it does for nearly every client),
the first 4 KiB of an HTTP request, DNS over UDP.  Malformed or truncated data yields no
row; it never stops the capture's flows.
"""

from __future__ import annotations

import re
import struct

import numpy as np
import pyarrow as pa

from ..schema import TS
from .names import NAMES_SCHEMA

_HTTP_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ")
_NAME_OK = re.compile(r"^(?=.{1,253}$)[a-z0-9_*-]+(\.[a-z0-9_-]+)*$")
_V4PAD = b"\x00" * 12


def _clean(name: str) -> str | None:
    n = name.strip().rstrip(".").lower()
    if not n or not _NAME_OK.match(n):
        return None
    if n.replace(".", "").isdigit():  # a dotted address, not a name
        return None
    return n


def tls_sni(payload: bytes) -> str | None:
    """The server name of a TLS ClientHello at the start of ``payload``, or None."""
    if len(payload) < 43 or payload[0] != 0x16 or payload[1] != 3 or payload[5] != 1:
        return None
    p = 5 + 4 + 2 + 32  # record header, handshake header, client version, random
    n = len(payload)
    try:
        p += 1 + payload[p]  # session id
        (cs,) = struct.unpack_from(">H", payload, p)
        p += 2 + cs
        p += 1 + payload[p]  # compression methods
        (ext_len,) = struct.unpack_from(">H", payload, p)
        p += 2
        end = min(n, p + ext_len)
        while p + 4 <= end:
            etype, elen = struct.unpack_from(">HH", payload, p)
            p += 4
            if etype == 0:
                # server_name_list: u16 length, then (u8 type, u16 len, name) entries
                q, stop = p + 2, min(p + elen, n)
                while q + 3 <= stop:
                    ntype, nlen = payload[q], struct.unpack_from(">H", payload, q + 1)[0]
                    q += 3
                    if ntype == 0 and q + nlen <= n:
                        return _clean(payload[q : q + nlen].decode("ascii", "replace"))
                    q += nlen
                return None
            p += elen
    except (IndexError, struct.error):
        return None
    return None


def http_request(payload: bytes) -> tuple[str, str | None] | None:
    """``(host, url)`` of an HTTP request: the ``Host`` header's name (its port removed) and the
    URL asked for (``http://host[:port]/path?query``, as intel writes URLs; None when the
    request target is not a path), or None when it is no request naming a host."""
    if not payload.startswith(_HTTP_METHODS):
        return None
    head = payload[:4096]
    i = head.lower().find(b"\r\nhost:")
    if i < 0:
        return None
    j = head.find(b"\r\n", i + 7)
    value = head[i + 7 : j if j >= 0 else len(head)].decode("ascii", "replace").strip().lower()
    if value.startswith("["):  # an IPv6 literal
        return None
    name, _, port = value.partition(":") if value.count(":") == 1 else (value, "", "")
    host = _clean(name)
    if host is None:
        return None
    line = head[: head.find(b"\r\n")] if b"\r\n" in head else head
    parts = line.split(b" ")
    target = parts[1].decode("ascii", "replace") if len(parts) >= 3 else ""
    url = None
    if target.startswith("/") and " " not in target and len(target) <= 2048:
        url = f"http://{host}{':' + port if port and port != '80' else ''}{target}"
    elif target.lower().startswith("http://") and len(target) <= 2048:  # a proxy request
        scheme_host, sep, path = target[7:].partition("/")
        url = f"http://{scheme_host.lower()}{sep}{path}"
    return host, url


def http_host(payload: bytes) -> str | None:
    """The host named by an HTTP request's ``Host`` header (its port removed), or None."""
    got = http_request(payload)
    return None if got is None else got[0]


def dns_answers(payload: bytes) -> tuple[str, list[tuple[bool, bytes, float]]] | None:
    """``(query name, [(is_v6, address, ttl)])`` of a DNS response's A/AAAA answers, or None."""
    if len(payload) < 12 or not payload[2] & 0x80:  # not a response
        return None
    import dpkt

    try:
        msg = dpkt.dns.DNS(payload)
    except Exception:  # noqa: BLE001 - dpkt raises many kinds on hostile data; no names then
        return None
    if not msg.qd or not msg.an:
        return None
    name = _clean(str(msg.qd[0].name))
    if name is None:
        return None
    out = []
    for rr in msg.an:
        if rr.type == 1 and len(getattr(rr, "rdata", b"")) == 4:
            out.append((False, bytes(rr.rdata), float(rr.ttl)))
        elif rr.type == 28 and len(getattr(rr, "rdata", b"")) == 16:
            out.append((True, bytes(rr.rdata), float(rr.ttl)))
    return (name, out) if out else None


class PacketNames:
    """Names rows collected while a capture is read; :meth:`table` emits NAMES_SCHEMA."""

    def __init__(self, sensor: str | None, source_file: str) -> None:
        self.sensor, self.source_file = sensor, source_file
        self.ts: list[int] = []
        self.kind: list[str] = []
        self.name: list[str] = []
        self.src: list[bytes] = []
        self.src6: list[bool] = []
        self.dst: list[bytes] = []
        self.dst6: list[bool] = []
        self.port: list[int | None] = []
        self.ttl: list[float | None] = []

    def __len__(self) -> int:
        return len(self.ts)

    def _add(self, ts: int, kind: str, name: str, src: bytes, dst: bytes, port: int | None, ttl: float | None) -> None:
        self.ts.append(ts)
        self.kind.append(kind)
        self.name.append(name)
        self.src6.append(len(src) == 16)
        self.src.append(src if len(src) == 16 else _V4PAD + src)
        self.dst6.append(len(dst) == 16)
        self.dst.append(dst if len(dst) == 16 else _V4PAD + dst)
        self.port.append(port)
        self.ttl.append(ttl)

    def tcp(self, ts: int, src: bytes, dst: bytes, dport: int, payload: bytes) -> None:
        """Look at a TCP segment's payload (the caller checked it is not empty)."""
        b0 = payload[0]
        if b0 == 0x16:
            sni = tls_sni(payload)
            if sni is not None:
                self._add(ts, "tls_sni", sni, src, dst, dport, None)
        elif 0x41 <= b0 <= 0x5A:  # an upper-case letter: maybe an HTTP method
            got = http_request(payload)
            if got is not None:
                self._add(ts, "http_host", got[0], src, dst, dport, None)
                if got[1] is not None:
                    self._add(ts, "http_url", got[1], src, dst, dport, None)

    def udp(self, ts: int, dst: bytes, payload: bytes) -> None:
        """Look at a UDP datagram from port 53 (a DNS response to ``dst``)."""
        got = dns_answers(payload)
        if got is None:
            return
        name, answers = got
        for _v6, addr, ttl in answers:
            self._add(ts, "dns_answer", name, dst, addr, None, ttl)

    def table(self) -> pa.Table:
        from .netflow import _v6_array

        n = len(self.ts)
        src = np.frombuffer(b"".join(self.src), dtype=np.uint8).reshape(-1, 16)
        dst = np.frombuffer(b"".join(self.dst), dtype=np.uint8).reshape(-1, 16)
        src6 = np.asarray(self.src6, dtype=bool)
        dst6 = np.asarray(self.dst6, dtype=bool)

        def v4(addr: np.ndarray, v6: np.ndarray) -> pa.Array:
            vals = np.ascontiguousarray(addr[:, 12:16]).view(">u4").ravel().astype(np.uint32)
            return pa.array(vals, pa.uint32(), mask=v6)

        cols = {
            "ts": pa.array(self.ts, pa.int64()).cast(TS),
            "src_ip": v4(src, src6),
            "src_ip6": _v6_array(np.ascontiguousarray(src), src6),
            "dst_ip": v4(dst, dst6),
            "dst_ip6": _v6_array(np.ascontiguousarray(dst), dst6),
            "dst_port": pa.array(self.port, pa.int32()),
            "kind": pa.array(self.kind, pa.string()),
            "name": pa.array(self.name, pa.string()),
            "ttl_s": pa.array(self.ttl, pa.float64()),
            "sensor": pa.array([self.sensor] * n, pa.string()),
            "source_format": pa.array(["pcap"] * n, pa.string()),
            "source_file": pa.array([self.source_file] * n, pa.string()),
        }
        arrays = [cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in NAMES_SCHEMA]
        return pa.Table.from_arrays(arrays, schema=NAMES_SCHEMA)


__all__ = ["PacketNames", "tls_sni", "http_host", "http_request", "dns_answers"]
