"""NetFlow v5, v9 and IPFIX (v10) export decoding, vectorized per template.

One :class:`NetflowDecoder` serves both the pcap-file reader (format ``netflow_pcap``, UDP
export packets captured in a pcap) and the live collector (:mod:`sightline.ingest.collector`).

How decoding works: each export packet is split into sets in Python (a handful per packet);
the records of a data set are *not* parsed one by one but appended, as raw bytes, to a
pending group per template.  :meth:`NetflowDecoder.flush` turns each group into a
``(records, record_length)`` ``uint8`` matrix and reads every mapped field as a column with
numpy.  NetFlow v5 is handled as a fixed built-in template.  IPFIX templates with
variable-length fields are re-packed record by record into a fixed layout first (the slow
path; the fields we map are never variable-length).

Field mapping, declared once (:data:`NETFLOW_FIELDS`): information element -> role, in
priority order.  ``(29305, ie)`` is the RFC 5103 reverse (biflow) element of ``ie``.

Semantics:

- ``ts`` = flow start; from ``flowStart*`` (150/152/154/156) or, for v5/v9, from
  ``FIRST_SWITCHED`` (22) relative to the header's sysUptime; IPFIX ``flowStartSysUpTime``
  uses ``systemInitTimeMilliseconds`` (160) from the record or an options record; failing
  all, the export time.
- Unidirectional records: ``bytes_in``/``packets_in`` null.  Biflow (reverse elements, or
  initiator/responder counters 231/232/298/299): both directions filled.
- Sampling: rate from the v5 header, from options data (34 samplingInterval,
  50 samplerRandomInterval, 305/306 samplingPacketInterval/Space, per sampler id 48/302 or
  per exporter and observation domain), or from a 34 field in the record itself.  Counts are
  multiplied by the rate; rates seen are kept in :attr:`NetflowDecoder.stats`.
- ICMP: ports follow Zeek (``src_port`` = ICMP type, ``dst_port`` = code), from
  ``icmpTypeCode*`` (32/139) or the v5/v9 convention ``dst_port = type * 256 + code``.
- ``conn_state`` from TCP flags, see :mod:`sightline.ingest.tcpstate`.
- ``sensor`` = the exporter's address unless the user names a sensor.

Bad input (a lying length field, a set past the end of the packet, a data set whose template
is unknown, an empty template, records without IP addresses) is quarantined with the packet's
byte offset (pcap) or sequence position (collector) and never stops decoding.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ..schema import FLOW_SCHEMA
from .base import Format, ReaderContext, register_format
from .normalize import MAX_TS_US
from .pcapio import ip_layer, is_pcap, iter_packets, udp_payload
from .tcpstate import conn_state_biflow, conn_state_uniflow

REVERSE_PEN = 29305
"""RFC 5103: reverse-direction information elements use this private enterprise number."""

NETFLOW_FIELDS: dict[str, list[tuple[int, int]]] = {
    "bytes_out": [(0, 1), (0, 85), (0, 231)],
    "packets_out": [(0, 2), (0, 86), (0, 298)],
    "bytes_in": [(REVERSE_PEN, 1), (REVERSE_PEN, 85), (0, 232)],
    "packets_in": [(REVERSE_PEN, 2), (REVERSE_PEN, 86), (0, 299)],
    "proto": [(0, 4)],
    "tcp_flags": [(0, 6)],
    "rev_tcp_flags": [(REVERSE_PEN, 6)],
    "src_port": [(0, 7), (0, 180), (0, 182)],
    "dst_port": [(0, 11), (0, 181), (0, 183)],
    "icmp_type_code": [(0, 32), (0, 139)],
    "src4": [(0, 8)],
    "dst4": [(0, 12)],
    "src6": [(0, 27)],
    "dst6": [(0, 28)],
    "first_uptime": [(0, 22)],
    "last_uptime": [(0, 21)],
    "start_s": [(0, 150)],
    "end_s": [(0, 151)],
    "start_ms": [(0, 152)],
    "end_ms": [(0, 153)],
    "start_ntp_us": [(0, 154)],
    "end_ntp_us": [(0, 155)],
    "start_ntp_ns": [(0, 156)],
    "end_ntp_ns": [(0, 157)],
    "duration_ms": [(0, 161)],
    "sys_init_ms": [(0, 160)],
    "sampler_id": [(0, 48), (0, 302)],
    "sampling_interval": [(0, 34)],
}
"""Flow role -> information elements ``(enterprise number, id)`` carrying it, best first."""

_V5_LAYOUT = [  # (ie, length): the fixed v5 record, expressed as a template
    (8, 4),
    (12, 4),
    (15, 4),
    (10, 2),
    (14, 2),
    (2, 4),
    (1, 4),
    (22, 4),
    (21, 4),
    (7, 2),
    (11, 2),
    (210, 1),
    (6, 1),
    (4, 1),
    (5, 1),
    (16, 2),
    (17, 2),
    (9, 1),
    (13, 1),
    (210, 2),
]
VARLEN = 65535
NTP_EPOCH_OFFSET_S = 2_208_988_800
MAX_RECORDS_PER_FLUSH = 262_144

_PROTO_NAMES = [str(i) for i in range(256)]
for _num, _name in {
    1: "icmp",
    2: "igmp",
    6: "tcp",
    17: "udp",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "icmp",
    89: "ospf",
    132: "sctp",
}.items():
    _PROTO_NAMES[_num] = _name
PROTO_NAMES = pa.array(_PROTO_NAMES, pa.string())
"""IP protocol number -> flow-schema ``proto`` text (ICMPv6 is ``icmp``, as in Zeek)."""

BadCallback = Callable[[int, str, bytes], None]


@dataclass(eq=False)
class Template:
    """A (data or options) template; ``reclen`` is None when a field has variable length."""

    fields: list[tuple[int, int, int]]  # (enterprise number, element id, length)
    options: bool = False
    scope_count: int = 0
    reclen: int | None = None
    offsets: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    packed: Template | None = None  # fixed-layout twin of a variable-length template

    @classmethod
    def build(cls, fields: list[tuple[int, int, int]], options: bool = False, scope_count: int = 0) -> Template:
        t = cls(fields, options, scope_count)
        if all(f[2] != VARLEN for f in fields):
            off = 0
            for pen, ie, ln in fields:
                t.offsets.setdefault((pen, ie), (off, ln))
                off += ln
            t.reclen = off
        else:
            t.packed = cls.build([f for f in fields if f[2] != VARLEN], options, scope_count)
        return t

    def to_json(self) -> dict[str, Any]:
        return {"fields": [list(f) for f in self.fields], "options": self.options, "scope": self.scope_count}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Template:
        return cls.build([tuple(f) for f in obj["fields"]], bool(obj.get("options")), int(obj.get("scope", 0)))  # type: ignore[misc]


V5_TEMPLATE = Template.build([(0, ie, ln) for ie, ln in _V5_LAYOUT])


@dataclass
class _Group:
    """Raw records of one template waiting to be decoded, with per-chunk context."""

    template: Template
    version: int
    chunks: list[bytes] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    export_ms: list[int] = field(default_factory=list)
    uptime_ms: list[int] = field(default_factory=list)
    exporter: list[int] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    domain: list[int] = field(default_factory=list)
    records: int = 0


def _uint(raw: np.ndarray, off: int, size: int) -> np.ndarray:
    """Big-endian unsigned column of ``size`` bytes at ``off`` of each record (any size)."""
    if size > 8:
        off, size = off + size - 8, 8
    sub = raw[:, off : off + size]
    if size in (1, 2, 4, 8):
        return np.ascontiguousarray(sub).view(f">u{size}").ravel().astype(np.int64 if size < 8 else np.uint64)
    acc = np.zeros(len(raw), dtype=np.int64)
    for k in range(size):
        acc = (acc << 8) | sub[:, k].astype(np.int64)
    return acc


def _ipfix_varlen(data: bytes, pos: int) -> tuple[int, int]:
    """(length, header size) of an IPFIX variable-length field at ``pos``."""
    n = data[pos]
    if n < 255:
        return n, 1
    return (data[pos + 1] << 8) | data[pos + 2], 3


class NetflowDecoder:
    """Stateful NetFlow v5/v9/IPFIX decoder (templates, sampling) for many exporters.

    Parameters
    ----------
    on_bad
        Called with ``(position, reason, raw)`` for every problem found; decoding goes on.
    source_file
        Value of the ``source_file`` column.
    sensor
        Fixed ``sensor`` value; default: the exporter's address.
    """

    def __init__(self, on_bad: BadCallback, *, source_file: str = "", sensor: str | None = None) -> None:
        self.on_bad = on_bad
        self.source_file = source_file
        self.sensor = sensor
        self.templates: dict[tuple[str, int, int, int], Template] = {}
        self.sampling: dict[tuple[str, int], int] = {}  # (exporter, domain) -> rate
        self.samplers: dict[tuple[str, int, int], int] = {}  # (exporter, domain, sampler id) -> rate
        self.sys_init: dict[tuple[str, int], int] = {}  # (exporter, domain) -> systemInitTimeMilliseconds
        self.stats: dict[str, Any] = {"packets": 0, "records": 0, "sampling_rates": {}, "unknown_template_sets": 0}
        self._exporters: list[str] = []
        self._exporter_idx: dict[str, int] = {}
        self._domains: list[tuple[str, int]] = []
        self._domain_idx: dict[tuple[str, int], int] = {}
        self._groups: dict[int, _Group] = {}
        self.pending_records = 0

    # ------------------------------------------------------------------ state (collector restarts)
    def state(self) -> dict[str, Any]:
        """Templates and sampling rates as JSON-able data (to survive a collector restart)."""
        return {
            "templates": [[list(k), t.to_json()] for k, t in self.templates.items()],
            "sampling": [[list(k), v] for k, v in self.sampling.items()],
            "samplers": [[list(k), v] for k, v in self.samplers.items()],
            "sys_init": [[list(k), v] for k, v in self.sys_init.items()],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for k, t in state.get("templates", []):
            self.templates[(str(k[0]), int(k[1]), int(k[2]), int(k[3]))] = Template.from_json(t)
        for k, v in state.get("sampling", []):
            self.sampling[(str(k[0]), int(k[1]))] = int(v)
        for k, v in state.get("samplers", []):
            self.samplers[(str(k[0]), int(k[1]), int(k[2]))] = int(v)
        for k, v in state.get("sys_init", []):
            self.sys_init[(str(k[0]), int(k[1]))] = int(v)

    # ------------------------------------------------------------------ packets
    def feed(self, data: bytes, exporter: str, position: int) -> None:
        """Decode one export datagram from ``exporter``; problems go to ``on_bad``."""
        self.stats["packets"] += 1
        if len(data) < 4:
            self.on_bad(position, "datagram too short for a NetFlow/IPFIX header", data)
            return
        version = (data[0] << 8) | data[1]
        try:
            if version == 5:
                self._feed_v5(data, exporter, position)
            elif version == 9:
                self._feed_v9(data, exporter, position)
            elif version == 10:
                self._feed_ipfix(data, exporter, position)
            else:
                self.on_bad(position, f"not a NetFlow v5/v9/IPFIX packet (version {version})", data)
        except (struct.error, IndexError, ValueError) as e:  # defensive: a bound we missed
            self.on_bad(position, f"malformed export packet: {e}", data)

    def _ids(self, exporter: str, domain: int) -> tuple[int, int]:
        ei = self._exporter_idx.get(exporter)
        if ei is None:
            ei = self._exporter_idx[exporter] = len(self._exporters)
            self._exporters.append(exporter)
        dk = (exporter, domain)
        di = self._domain_idx.get(dk)
        if di is None:
            di = self._domain_idx[dk] = len(self._domains)
            self._domains.append(dk)
        return ei, di

    def _add(
        self,
        t: Template,
        version: int,
        body: bytes,
        count: int,
        export_ms: int,
        uptime_ms: int,
        exporter: str,
        domain: int,
        position: int,
    ) -> None:
        g = self._groups.get(id(t))
        if g is None or g.template is not t:
            g = self._groups[id(t)] = _Group(t, version)
        ei, di = self._ids(exporter, domain)
        g.chunks.append(body)
        g.counts.append(count)
        g.export_ms.append(export_ms)
        g.uptime_ms.append(uptime_ms)
        g.exporter.append(ei)
        g.domain.append(di)
        g.position.append(position)
        g.records += count
        self.pending_records += count

    def _feed_v5(self, data: bytes, exporter: str, position: int) -> None:
        if len(data) < 24:
            self.on_bad(position, "NetFlow v5 header truncated", data)
            return
        _v, count, uptime, secs, nsecs, _seq, _etype, engine_id, samp = struct.unpack_from(">HHIIIIBBH", data)
        need = 24 + 48 * count
        if count == 0 or count > 30 or len(data) < need:
            self.on_bad(
                position, f"NetFlow v5 header says {count} records ({need} bytes), packet has {len(data)} bytes", data
            )
            return
        rate = samp & 0x3FFF
        if rate > 1:
            self.sampling[(exporter, engine_id)] = rate
            self.stats["sampling_rates"][exporter] = rate
        export_ms = secs * 1000 + nsecs // 1_000_000
        self._add(V5_TEMPLATE, 5, data[24:need], count, export_ms, uptime, exporter, engine_id, position)

    def _feed_v9(self, data: bytes, exporter: str, position: int) -> None:
        if len(data) < 20:
            self.on_bad(position, "NetFlow v9 header truncated", data)
            return
        _v, _count, uptime, secs, _seq, domain = struct.unpack_from(">HHIIII", data)
        self._sets(data, 20, len(data), 9, exporter, domain, secs * 1000, uptime, position)

    def _feed_ipfix(self, data: bytes, exporter: str, position: int) -> None:
        if len(data) < 16:
            self.on_bad(position, "IPFIX header truncated", data)
            return
        _v, length, secs, _seq, domain = struct.unpack_from(">HHIII", data)
        if length > len(data) or length < 16:
            self.on_bad(position, f"IPFIX header length {length} does not match the {len(data)}-byte datagram", data)
            return
        self._sets(data, 16, length, 10, exporter, domain, secs * 1000, -1, position)

    def _sets(
        self,
        data: bytes,
        pos: int,
        end: int,
        version: int,
        exporter: str,
        domain: int,
        export_ms: int,
        uptime: int,
        position: int,
    ) -> None:
        tmpl_id, opt_id = (0, 1) if version == 9 else (2, 3)
        while pos + 4 <= end:
            set_id, set_len = struct.unpack_from(">HH", data, pos)
            if set_len < 4 or pos + set_len > end:
                self.on_bad(
                    position,
                    f"set {set_id} at byte {pos} claims {set_len} bytes, {end - pos} left in packet",
                    data[pos : pos + 64],
                )
                return
            body_start, body_end = pos + 4, pos + set_len
            if set_id == tmpl_id:
                self._templates(data, body_start, body_end, version, exporter, domain, position, options=False)
            elif set_id == opt_id:
                self._templates(data, body_start, body_end, version, exporter, domain, position, options=True)
            elif set_id >= 256:
                t = self.templates.get((exporter, version, domain, set_id))
                if t is None:
                    self.stats["unknown_template_sets"] += 1
                    self.on_bad(
                        position,
                        f"data set for template {set_id} before its template (exporter {exporter}, domain {domain})",
                        data[pos : pos + 64],
                    )
                elif t.options:
                    self._options_data(t, data, body_start, body_end, exporter, domain)
                else:
                    self._data(t, data, body_start, body_end, version, export_ms, uptime, exporter, domain, position)
            # set ids 4..255 are reserved: skip them
            pos += set_len

    def _templates(
        self, data: bytes, pos: int, end: int, version: int, exporter: str, domain: int, position: int, *, options: bool
    ) -> None:
        while pos + 4 <= end:
            tid, count = struct.unpack_from(">HH", data, pos)
            if tid < 256:
                if version == 10 and count == 0 and tid in (2, 3):  # withdraw all templates of the domain
                    for k in [k for k in self.templates if k[:3] == (exporter, version, domain)]:
                        del self.templates[k]
                    return
                if tid == 0 and count == 0:  # padding at the end of the set
                    return
                self.on_bad(position, f"template id {tid} is reserved", data[pos : pos + 64])
                return
            scope = 0
            if options and version == 9:
                scope_len, opt_len = count, struct.unpack_from(">H", data, pos + 4)[0] if pos + 6 <= end else 0
                pos += 6
                nfields, scope = (scope_len + opt_len) // 4, scope_len // 4
            elif options:
                if pos + 6 > end:
                    self.on_bad(position, "options template header truncated", data[pos:end])
                    return
                scope = struct.unpack_from(">H", data, pos + 4)[0]
                pos += 6
                nfields = count
            else:
                pos += 4
                nfields = count
            if nfields == 0:
                if version == 10:  # withdrawal of one template
                    self.templates.pop((exporter, version, domain, tid), None)
                    continue
                self.on_bad(position, f"template {tid} has no fields", data[pos - 4 : pos + 60])
                return
            fields: list[tuple[int, int, int]] = []
            for _ in range(nfields):
                if pos + 4 > end:
                    self.on_bad(position, f"template {tid} runs past the end of its set", data[pos:end])
                    return
                ie, ln = struct.unpack_from(">HH", data, pos)
                pos += 4
                pen = 0
                if version == 10 and ie & 0x8000:
                    if pos + 4 > end:
                        self.on_bad(position, f"template {tid} runs past the end of its set", data[pos:end])
                        return
                    pen = struct.unpack_from(">I", data, pos)[0]
                    pos += 4
                    ie &= 0x7FFF
                if ln == VARLEN and version == 9:
                    self.on_bad(position, f"template {tid}: variable length is not allowed in NetFlow v9", b"")
                    return
                fields.append((pen, ie, ln))
            t = Template.build(fields, options, scope)
            if t.reclen == 0 or (t.packed is not None and not t.packed.fields and not options):
                self.on_bad(position, f"template {tid} has zero-length records", b"")
                continue
            key = (exporter, version, domain, tid)
            old = self.templates.get(key)
            if old is None or old.fields != t.fields or old.options != t.options:
                self.templates[key] = t  # a refresh with the same layout keeps the old object
            if version == 9 and options:
                # v9 option templates may be followed by padding to a 4-byte boundary
                continue

    # ------------------------------------------------------------------ records
    def _records(self, t: Template, data: bytes, pos: int, end: int) -> tuple[Template, bytes, int]:
        """Fixed-layout template, raw bytes and count of the records in a data set."""
        if t.reclen is not None:
            n = (end - pos) // t.reclen if t.reclen else 0
            return t, data[pos : pos + n * t.reclen], n
        assert t.packed is not None
        out = bytearray()
        n = 0
        while pos < end:
            start = pos
            rec = bytearray()
            ok = True
            for _pen, _ie, ln in t.fields:
                if ln == VARLEN:
                    if pos >= end:
                        ok = False
                        break
                    vlen, hdr = _ipfix_varlen(data, pos)
                    pos += hdr + vlen
                else:
                    rec += data[pos : pos + ln]
                    pos += ln
                if pos > end:
                    ok = False
                    break
            if not ok or pos == start:
                break  # padding or a record cut by the set end
            out += rec
            n += 1
        return t.packed, bytes(out), n

    def _data(
        self,
        t: Template,
        data: bytes,
        pos: int,
        end: int,
        version: int,
        export_ms: int,
        uptime: int,
        exporter: str,
        domain: int,
        position: int,
    ) -> None:
        ft, body, n = self._records(t, data, pos, end)
        if n:
            self._add(ft, version, body, n, export_ms, uptime, exporter, domain, position)

    def _options_data(self, t: Template, data: bytes, pos: int, end: int, exporter: str, domain: int) -> None:
        ft, body, n = self._records(t, data, pos, end)
        if not n or not ft.reclen:
            return
        raw = np.frombuffer(body, dtype=np.uint8).reshape(n, ft.reclen)

        def col(*keys: tuple[int, int]) -> np.ndarray | None:
            for k in keys:
                if k in ft.offsets:
                    return _uint(raw, *ft.offsets[k])
            return None

        interval = col((0, 34), (0, 50))
        pkt_int, pkt_space = col((0, 305)), col((0, 306))
        if interval is None and pkt_int is not None:
            space = pkt_space if pkt_space is not None else np.zeros(n, dtype=np.int64)
            interval = np.where(pkt_int > 0, (pkt_int + space) // np.maximum(pkt_int, 1), 0)
        sid = col((0, 48), (0, 302))
        init = col((0, 160))
        if init is not None and int(init[-1]) > 0:
            self.sys_init[(exporter, domain)] = int(init[-1])
        if interval is None:
            return
        for i in range(n):
            rate = int(interval[i])
            if rate <= 0:
                continue
            if sid is not None:
                self.samplers[(exporter, domain, int(sid[i]))] = rate
            self.sampling[(exporter, domain)] = rate
            self.stats["sampling_rates"][exporter] = rate

    # ------------------------------------------------------------------ columnar decode
    def flush(self) -> pa.Table:
        """Decode all pending records into a FLOW_SCHEMA table and clear them."""
        tables = []
        groups, self._groups, self.pending_records = self._groups, {}, 0
        for g in groups.values():
            t = self._decode_group(g)
            if t is not None and t.num_rows:
                tables.append(t)
        if not tables:
            return FLOW_SCHEMA.empty_table()
        return pa.concat_tables(tables)

    def _decode_group(self, g: _Group) -> pa.Table | None:
        t = g.template
        assert t.reclen
        n = g.records
        raw = np.frombuffer(b"".join(g.chunks), dtype=np.uint8).reshape(n, t.reclen)
        counts = np.asarray(g.counts, dtype=np.int64)

        def per_rec(values: list[int]) -> np.ndarray:
            return np.repeat(np.asarray(values, dtype=np.int64), counts)

        # one strided structured view over the records: each field converts in a single pass
        names, formats, offs = [], [], []
        for k, (o, ln) in t.offsets.items():
            if ln in (1, 2, 4, 8):
                names.append(f"{k[0]}_{k[1]}")
                formats.append(f">u{ln}")
                offs.append(o)
        view = (
            np.frombuffer(
                raw, dtype=np.dtype({"names": names, "formats": formats, "offsets": offs, "itemsize": t.reclen})
            )
            if names
            else None
        )

        def col(role: str) -> np.ndarray | None:
            for k in NETFLOW_FIELDS[role]:
                if k in t.offsets:
                    o, ln = t.offsets[k]
                    if view is not None and ln in (1, 2, 4, 8):
                        return view[f"{k[0]}_{k[1]}"].astype(np.int64 if ln < 8 else np.uint64)
                    return _uint(raw, o, ln)
            return None

        def has(role: str) -> bool:
            return any(k in t.offsets for k in NETFLOW_FIELDS[role])

        export_ms = per_rec(g.export_ms)
        domain = per_rec(g.domain)
        exporter = per_rec(g.exporter)
        position = per_rec(g.position)
        self.stats["records"] += n

        # addresses
        src4, dst4 = col("src4"), col("dst4")
        has6 = has("src6") and has("dst6")
        is4 = np.zeros(n, dtype=bool) if src4 is None or dst4 is None else np.ones(n, dtype=bool)
        if has6:
            so, _ = t.offsets[NETFLOW_FIELDS["src6"][0]]
            do, _ = t.offsets[NETFLOW_FIELDS["dst6"][0]]
            src6b = np.ascontiguousarray(raw[:, so : so + 16])
            dst6b = np.ascontiguousarray(raw[:, do : do + 16])
            # a template may carry both families; the v4 fields are zero on IPv6 records
            s64, d64 = src6b.view(np.uint64), dst6b.view(np.uint64)
            is6 = ((s64[:, 0] | s64[:, 1]) != 0) | ((d64[:, 0] | d64[:, 1]) != 0)
            if src4 is not None and dst4 is not None:
                is4 = ~is6 | (src4 != 0) | (dst4 != 0)
                is6 &= ~is4
        else:
            is6 = np.zeros(n, dtype=bool)
        noaddr = ~(is4 | is6)

        # time
        ts_ms, dur_ms = self._times(g, raw, col, export_ms, domain, n)

        # counters, scaled by the sampling rate
        rate = self._rates(col("sampler_id"), col("sampling_interval"), domain, exporter, n)
        bytes_out = col("bytes_out")
        packets_out = col("packets_out")
        bytes_in, packets_in = col("bytes_in"), col("packets_in")
        biflow = bytes_in is not None or packets_in is not None
        zeros = np.zeros(n, dtype=np.int64)

        corrupt = np.zeros(n, dtype=bool)  # counters beyond int64 once scaled, ports beyond 16 bits

        def scaled(a: np.ndarray | None) -> np.ndarray:
            if a is None:
                return zeros * rate
            # a forged 64-bit counter (or one times a huge sampling rate) would wrap negative
            over = a.astype(np.float64) * rate >= 2.0**63
            corrupt[:] |= over
            return np.where(over, 0, a.astype(np.int64) * rate)

        proto = col("proto")
        proto = zeros if proto is None else proto
        flags = col("tcp_flags")
        flags = zeros if flags is None else flags & 0xFF
        sport, dport = col("src_port"), col("dst_port")
        sport = zeros if sport is None else sport
        dport = zeros if dport is None else dport
        icmp = (proto == 1) | (proto == 58)
        if icmp.any():
            tc = col("icmp_type_code")
            tc = dport if tc is None else np.where(tc != 0, tc, dport)
            sport = np.where(icmp, tc >> 8, sport)
            dport = np.where(icmp, tc & 0xFF, dport)
        is_tcp = proto == 6
        rflags = col("rev_tcp_flags") if biflow else None
        if rflags is not None:
            state = conn_state_biflow(is_tcp, flags, rflags & 0xFF, scaled(packets_in))
        else:
            # biflow byte counters without the reverse flags field: only the originator's
            # flags are known, so use the one-direction mapping rather than read the
            # missing reverse flags as "responder never answered"
            state = conn_state_uniflow(is_tcp, flags)

        scaled_cols = {
            k: scaled(v)
            for k, v in (
                ("bytes_out", bytes_out),
                ("bytes_in", bytes_in),
                ("packets_out", packets_out),
                ("packets_in", packets_in),
            )
        }
        corrupt |= (sport < 0) | (sport > 65535) | (dport < 0) | (dport > 65535)  # a template may say 4 bytes
        good = ~noaddr & (ts_ms >= 0) & (ts_ms * 1000 <= MAX_TS_US) & ~corrupt
        if (corrupt & ~noaddr).any():
            i = int(np.nonzero(corrupt & ~noaddr)[0][0])
            self.on_bad(
                int(position[i]), f"{int((corrupt & ~noaddr).sum())} record(s) with counters or ports out of range", b""
            )
        if noaddr.any():
            i = int(np.nonzero(noaddr)[0][0])
            self.on_bad(
                int(position[i]),
                f"{int(noaddr.sum())} record(s) without IPv4/IPv6 addresses (template of {len(t.fields)} fields)",
                b"",
            )
        badts = ~noaddr & ~corrupt & ~good
        if badts.any():
            i = int(np.nonzero(badts)[0][0])
            self.on_bad(int(position[i]), f"{int(badts.sum())} record(s) with an out-of-range start time", b"")

        exporters = pa.array(self._exporters, pa.string())
        sensor = (
            pa.array([self.sensor] * n, pa.string()) if self.sensor is not None else exporters.take(pa.array(exporter))
        )
        fmt = {5: "netflow_v5", 9: "netflow_v9", 10: "ipfix"}[g.version]
        cols: dict[str, pa.Array] = {
            # out-of-range times (forged uptime/export clocks) are dropped below; zero them first
            # so the array can be built at all
            "ts": pa.array(np.where(good, ts_ms, 0).astype(np.int64) * 1000, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "duration_s": pa.array(dur_ms / 1000.0, pa.float64()),
            "src_ip": pa.array(
                np.where(is4, src4 if src4 is not None else 0, 0).astype(np.uint32), pa.uint32(), mask=~is4
            ),
            "src_ip6": _v6_array(src6b if has6 else None, is6),
            "src_port": pa.array(sport.astype(np.int32), pa.int32()),
            "dst_ip": pa.array(
                np.where(is4, dst4 if dst4 is not None else 0, 0).astype(np.uint32), pa.uint32(), mask=~is4
            ),
            "dst_ip6": _v6_array(dst6b if has6 else None, is6),
            "dst_port": pa.array(dport.astype(np.int32), pa.int32()),
            "proto": PROTO_NAMES.take(pa.array(proto.astype(np.int64) & 0xFF)),
            "bytes_out": pa.array(scaled_cols["bytes_out"], pa.int64()),
            "bytes_in": pa.array(scaled_cols["bytes_in"], pa.int64()) if biflow else pa.nulls(n, pa.int64()),
            "packets_out": pa.array(scaled_cols["packets_out"], pa.int64()),
            "packets_in": pa.array(scaled_cols["packets_in"], pa.int64()) if biflow else pa.nulls(n, pa.int64()),
            "conn_state": state,
            "service": pa.nulls(n, pa.string()),
            "sensor": sensor,
            "source_format": pa.array([fmt] * n, pa.string()),
            "source_file": pa.array([self.source_file] * n, pa.string()),
            # no history: flags are OR-ed over a record that timeouts cut, so a record without a
            # SYN is mostly a long connection's next record, not one a capture began mid-way
            "history": pa.nulls(n, pa.string()),
        }
        table = pa.Table.from_arrays([cols[f.name] for f in FLOW_SCHEMA], schema=FLOW_SCHEMA)
        if not good.all():
            table = table.filter(pa.array(good))
        return table

    def _times(
        self,
        g: _Group,
        raw: np.ndarray,
        col: Callable[[str], np.ndarray | None],
        export_ms: np.ndarray,
        domain: np.ndarray,
        n: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        start = end = None
        for s_role, e_role, conv in (
            ("start_ms", "end_ms", lambda a: a.astype(np.int64)),
            ("start_s", "end_s", lambda a: a.astype(np.int64) * 1000),
            ("start_ntp_us", "end_ntp_us", _ntp_to_ms),
            ("start_ntp_ns", "end_ntp_ns", _ntp_to_ms),
        ):
            s = col(s_role)
            if s is not None:
                start = conv(s)
                e = col(e_role)
                end = conv(e) if e is not None else None
                break
        if start is None:
            first, last = col("first_uptime"), col("last_uptime")
            if first is not None:
                if g.version in (5, 9):
                    uptime = np.repeat(np.asarray(g.uptime_ms, dtype=np.int64), np.asarray(g.counts))
                    start = export_ms - uptime_age_ms(uptime, first)
                    end = export_ms - uptime_age_ms(uptime, last) if last is not None else None
                else:
                    init = col("sys_init_ms")
                    if init is None:
                        lut = np.asarray([self.sys_init.get(d, -1) for d in self._domains], dtype=np.int64)
                        init = lut[domain]
                    known = init >= 0
                    start = np.where(known, init + first, export_ms)
                    end = np.where(known, init + last, export_ms) if last is not None else None
        if start is None:
            start = export_ms.copy()
        if end is None:
            dur = col("duration_ms")
            end = start + (dur if dur is not None else 0)
        dur_ms = np.maximum(end - start, 0)
        return start, dur_ms

    def _rates(
        self,
        sampler_id: np.ndarray | None,
        interval: np.ndarray | None,
        domain: np.ndarray,
        exporter: np.ndarray,
        n: int,
    ) -> np.ndarray:
        lut = np.asarray([self.sampling.get(d, 1) for d in self._domains] or [1], dtype=np.int64)
        rate = lut[domain]
        if interval is not None:
            rate = np.where(interval > 1, interval, rate)
        if sampler_id is not None and self.samplers:
            for sid in np.unique(sampler_id).tolist():
                for di, (exp, dom) in enumerate(self._domains):
                    r = self.samplers.get((exp, dom, int(sid)))
                    if r:
                        rate = np.where((sampler_id == sid) & (domain == di), r, rate)
        return np.maximum(rate, 1).astype(np.int64)


UPTIME_WRAP_MS = 1 << 32
"""sysUptime is a 32-bit count of milliseconds: it wraps every 49.7 days."""
UPTIME_AHEAD_MS = 100_000
"""How far a record's first/last switched may lie *after* the header's sysUptime and still be
read as such, not as a wrap (Cisco IOS bug CSCei12353; nfdump allows the same 100 s)."""


def uptime_age_ms(uptime: np.ndarray, stamp: np.ndarray) -> np.ndarray:
    """How long before the export a record's sysUptime stamp (first/last switched) was, in ms.

    ``(uptime - stamp) mod 2^32``: when sysUptime wrapped between the flow and its export,
    the stamp is numerically larger than the header's uptime, and a plain difference would
    date the flow 49.7 days in the future.  A stamp at most :data:`UPTIME_AHEAD_MS` after
    the header's uptime stays a small negative age (a flow stamped just after its export
    header was taken), not one 49.7 days back.
    """
    age = (uptime.astype(np.int64) - stamp.astype(np.int64)) % UPTIME_WRAP_MS
    return np.where(age >= UPTIME_WRAP_MS - UPTIME_AHEAD_MS, age - UPTIME_WRAP_MS, age)


def _ntp_to_ms(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.uint64)
    secs = (a >> np.uint64(32)).astype(np.int64) - NTP_EPOCH_OFFSET_S
    frac = (a & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return secs * 1000 + (frac * 1000 >> 32)


def _v6_array(b: np.ndarray | None, valid: np.ndarray) -> pa.Array:
    n = len(valid)
    if b is None or not valid.any():
        return pa.nulls(n, pa.binary(16))
    validity = pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(
        pa.binary(16), n, [validity, pa.py_buffer(b.tobytes())], null_count=int(n - valid.sum())
    )


# ---------------------------------------------------------------------------- pcap reader


def _addr_text(b: bytes) -> str:
    return str(ipaddress.ip_address(b))


def looks_like_export(payload: bytes) -> bool:
    """Whether a UDP payload has a plausible NetFlow v5/v9 or IPFIX header."""
    if len(payload) < 16:
        return False
    v = (payload[0] << 8) | payload[1]
    if v == 5:
        c = (payload[2] << 8) | payload[3]
        return 1 <= c <= 30 and len(payload) >= 24 + 48 * c
    if v == 9:
        return (
            len(payload) >= 24
            and ((payload[20] << 8) | payload[21]) in (0, 1)
            or (len(payload) >= 24 and ((payload[20] << 8) | payload[21]) >= 256)
        )
    if v == 10:
        return ((payload[2] << 8) | payload[3]) == len(payload)
    return False


def _export_payloads(ctx: ReaderContext, on_bad: BadCallback) -> Iterator[tuple[int, str, bytes]]:
    cache: dict[bytes, str] = {}
    for pkt in iter_packets(ctx.stream, on_bad):
        l3 = ip_layer(pkt.linktype, pkt.data)
        if l3 is None:
            continue
        u = udp_payload(l3)
        if u is None:
            continue
        exp = cache.get(l3.src)
        if exp is None:
            exp = cache[l3.src] = _addr_text(l3.src)
        yield pkt.offset, exp, u[2]


def read_netflow_pcap(ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
    """Flows from NetFlow/IPFIX export packets captured in a pcap file."""

    def on_bad(pos: int, reason: str, raw: bytes) -> None:
        ctx.quarantine(pos, reason, raw.hex() if raw else "", kind="offset")

    dec = NetflowDecoder(on_bad, source_file=str(ctx.path), sensor=ctx.sensor)
    for offset, exporter, payload in _export_payloads(ctx, on_bad):
        if not looks_like_export(payload):
            on_bad(offset, "UDP payload is not a NetFlow/IPFIX export packet", payload[:64])
            continue
        dec.feed(payload, exporter, offset)
        if dec.pending_records >= MAX_RECORDS_PER_FLUSH:
            yield from dec.flush().to_batches()
    yield from dec.flush().to_batches()


def sniff_netflow_pcap(head: bytes) -> bool:
    """A pcap or pcapng whose UDP packets (most of the first ones) carry NetFlow/IPFIX exports."""
    if not is_pcap(head):
        return False
    import io

    ip_pkts = export = 0
    for pkt in iter_packets(io.BytesIO(head), lambda *a: None):
        l3 = ip_layer(pkt.linktype, pkt.data)
        if l3 is None:
            continue
        ip_pkts += 1
        u = udp_payload(l3)
        if u is not None and looks_like_export(u[2]):
            export += 1
        if ip_pkts >= 50:
            break
    return export > 0 and export * 2 >= ip_pkts


register_format(
    Format(
        "netflow_pcap", sniff_netflow_pcap, read_netflow_pcap, "NetFlow v5/v9/IPFIX export packets captured in a pcap"
    )
)

__all__ = [
    "NETFLOW_FIELDS",
    "PROTO_NAMES",
    "NetflowDecoder",
    "Template",
    "read_netflow_pcap",
    "sniff_netflow_pcap",
    "looks_like_export",
    "REVERSE_PEN",
    "uptime_age_ms",
    "UPTIME_WRAP_MS",
    "UPTIME_AHEAD_MS",
]
