"""pcap / pcapng -> flows, Zeek-like (format ``pcap``).

Packets are parsed one by one into small columns (the only per-packet Python work); flows are
then assembled with numpy: packets are grouped by protocol and unordered endpoint pair
(ICMP by address pair only), sorted by time, and split into flows

- after an idle gap longer than :data:`IDLE_TIMEOUT_S` (Zeek's defaults: TCP 5 min,
  UDP/ICMP/other 1 min),
- when a TCP SYN without ACK follows a FIN or RST of the same endpoint pair (a new connection
  reusing the ports),
- every :data:`ACTIVE_TIMEOUT_S` of a long-lived flow (so that one flow never spans days).

Like Zeek's ``conn.log``: the originator is the sender of the first packet (or its receiver
when that packet is a SYN-ACK); ``bytes_out``/``bytes_in`` count transport *payload* bytes
(Zeek ``orig_bytes``/``resp_bytes``, from the IP length fields, so a short snaplen does not
shrink them); ICMP ``src_port``/``dst_port`` are the first packet's type and code;
``conn_state`` follows :func:`sightline.ingest.tcpstate.conn_state_biflow`; ``history`` has
Zeek's letters in the order they first occurred (``^`` first when the first packet was a
SYN-ACK and the roles were flipped); a flow cut by a timeout starts without ``S``, as Zeek's
record after an inactivity timeout does.

The same pass fills the names dataset (:mod:`sightline.ingest.pcap_names`: DNS answers, TLS
SNI, HTTP ``Host``), so domain indicators match on pcap input as on Zeek dns/ssl logs.

Memory stays bounded: packets are processed in windows of :data:`WINDOW_PACKETS`; flows
still open at the end of a window (last packet within the idle timeout) carry over.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import FLOW_SCHEMA
from .base import Format, ReaderContext, register_format
from .netflow import PROTO_NAMES, _v6_array
from .pcap_names import PacketNames
from .pcapio import ip_layer, is_pcap, iter_packets
from .tcpstate import ACK, FIN, NEVER, RST, SYN, conn_state_biflow, history_text

IDLE_TIMEOUT_S = {6: 300.0, 17: 60.0, 1: 60.0, 58: 60.0}
DEFAULT_IDLE_S = 60.0
ACTIVE_TIMEOUT_S = 3600.0
WINDOW_PACKETS = 1_000_000

_COLS = ("ts", "proto", "sport", "dport", "flags", "plen", "v6")


class _Packets:
    """Column buffers for a window of packets."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.proto: list[int] = []
        self.sport: list[int] = []
        self.dport: list[int] = []
        self.flags: list[int] = []
        self.plen: list[int] = []
        self.v6: list[bool] = []
        self.src: list[bytes] = []
        self.dst: list[bytes] = []

    def __len__(self) -> int:
        return len(self.ts)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "ts": np.asarray(self.ts, dtype=np.int64),
            "proto": np.asarray(self.proto, dtype=np.int64),
            "sport": np.asarray(self.sport, dtype=np.int64),
            "dport": np.asarray(self.dport, dtype=np.int64),
            "flags": np.asarray(self.flags, dtype=np.int64),
            "plen": np.asarray(self.plen, dtype=np.int64),
            "v6": np.asarray(self.v6, dtype=bool),
            "src": np.frombuffer(b"".join(self.src), dtype=np.uint8).reshape(-1, 16),
            "dst": np.frombuffer(b"".join(self.dst), dtype=np.uint8).reshape(-1, 16),
        }


def _concat(a: dict[str, np.ndarray] | None, b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if a is None:
        return b
    return {k: np.concatenate([a[k], b[k]]) for k in b}


def _take(a: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in a.items()}


def read_pcap_flows(ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
    """Flows from the packets of a pcap/pcapng file."""

    def on_bad(pos: int, reason: str, raw: bytes) -> None:
        ctx.quarantine(pos, reason, raw.hex() if raw else "", kind="offset")

    buf = _Packets()
    names = PacketNames(ctx.sensor, str(ctx.path))
    carry: dict[str, np.ndarray] | None = None
    v4pad = b"\x00" * 12
    for pkt in iter_packets(ctx.stream, on_bad):
        l3 = ip_layer(pkt.linktype, pkt.data)
        if l3 is None:
            continue  # ARP, STP, ...: not IP traffic, no flow
        proto = l3.proto
        sport = dport = flags = 0
        l4 = l3.l4
        hdr = 0
        if not l3.fragment:
            if proto == 6 and len(l4) >= 14:
                sport, dport = struct.unpack_from(">HH", l4)
                flags = l4[13]
                hdr = (l4[12] >> 4) * 4
            elif proto == 17 and len(l4) >= 4:
                sport, dport = struct.unpack_from(">HH", l4)
                hdr = 8
            elif proto in (1, 58) and len(l4) >= 2:
                sport, dport = l4[0], l4[1]
                hdr = 8
            # names (DNS answers, TLS SNI, HTTP Host) for domain indicators, as Zeek dns/ssl logs give
            if proto == 6 and 20 <= hdr < len(l4) and (l4[hdr] == 0x16 or 0x41 <= l4[hdr] <= 0x5A):
                names.tcp(pkt.ts_us, l3.src, l3.dst, dport, l4[hdr:])
            elif proto == 17 and sport == 53 and len(l4) > 8:
                names.udp(pkt.ts_us, l3.dst, l4[8:])
        buf.ts.append(pkt.ts_us)
        buf.proto.append(proto)
        buf.sport.append(sport)
        buf.dport.append(dport)
        buf.flags.append(flags)
        buf.plen.append(max(l3.l4_len - hdr, 0))
        buf.v6.append(l3.version == 6)
        buf.src.append(l3.src if l3.version == 6 else v4pad + l3.src)
        buf.dst.append(l3.dst if l3.version == 6 else v4pad + l3.dst)
        if len(buf) >= WINDOW_PACKETS:
            table, carry = _assemble(_concat(carry, buf.arrays()), ctx, final=False)
            buf = _Packets()
            yield from table.to_batches()
            if len(names):
                yield from names.table().to_batches()
                names = PacketNames(ctx.sensor, str(ctx.path))
    if len(names):
        yield from names.table().to_batches()
    if len(buf) or carry is not None:
        pk = _concat(carry, buf.arrays()) if len(buf) else carry
        assert pk is not None
        table, _ = _assemble(pk, ctx, final=True)
        yield from table.to_batches()


def _assemble(
    p: dict[str, np.ndarray], ctx: ReaderContext, *, final: bool
) -> tuple[pa.Table, dict[str, np.ndarray] | None]:
    n = len(p["ts"])
    if n == 0:
        return FLOW_SCHEMA.empty_table(), None
    proto = p["proto"]
    icmp = (proto == 1) | (proto == 58)
    # endpoint keys: 16-byte address + 2-byte port (ICMP: no port, so request and reply meet)
    sport_k = np.where(icmp, 0, p["sport"]).astype(">u2").view(np.uint8).reshape(-1, 2)
    dport_k = np.where(icmp, 0, p["dport"]).astype(">u2").view(np.uint8).reshape(-1, 2)
    a = np.hstack([p["src"], sport_k])
    b = np.hstack([p["dst"], dport_k])
    av = np.ascontiguousarray(a).view("S18").ravel()
    bv = np.ascontiguousarray(b).view("S18").ravel()
    a_first = av <= bv
    lo = np.where(a_first, av, bv)
    hi = np.where(a_first, bv, av)
    key = np.hstack(
        [proto.astype(np.uint8).reshape(-1, 1), lo.view(np.uint8).reshape(-1, 18), hi.view(np.uint8).reshape(-1, 18)]
    )
    keyv = np.ascontiguousarray(key).view("S37").ravel()
    _, conn = np.unique(keyv, return_inverse=True)
    order = np.lexsort((p["ts"], conn))
    s = _take(p, order)
    conn = conn[order]
    ts = s["ts"]
    flags = s["flags"]
    idle_us = np.full(n, DEFAULT_IDLE_S * 1e6)
    for pr, sec in IDLE_TIMEOUT_S.items():
        idle_us[s["proto"] == pr] = sec * 1e6
    newconn = np.ones(n, dtype=bool)
    newconn[1:] = conn[1:] != conn[:-1]
    gap = np.zeros(n, dtype=np.int64)
    gap[1:] = ts[1:] - ts[:-1]
    syn_only = ((flags & SYN) != 0) & ((flags & ACK) == 0) & (s["proto"] == 6)
    prev_closing = np.zeros(n, dtype=bool)
    prev_closing[1:] = (flags[:-1] & (FIN | RST)) != 0
    brk = newconn | (gap > idle_us) | (syn_only & prev_closing)
    # active timeout: cut long segments every ACTIVE_TIMEOUT_S from the segment's start
    seg = np.cumsum(brk) - 1
    seg_start = ts[np.nonzero(brk)[0]][seg]
    slot = (ts - seg_start) // int(ACTIVE_TIMEOUT_S * 1e6)
    brk[1:] |= slot[1:] != slot[:-1]
    starts = np.nonzero(brk)[0]
    flow = np.cumsum(brk) - 1
    nflows = len(starts)
    ends = np.append(starts[1:], n) - 1

    carry = None
    if not final:
        # flows whose last packet is within the idle timeout of the window's end may continue
        last_ts = ts[ends]
        open_flow = last_ts + idle_us[ends] >= ts.max()
        if open_flow.any():
            keep_pk = open_flow[flow]
            carry = _take(s, np.nonzero(keep_pk)[0])
            closed = ~open_flow
        else:
            closed = np.ones(nflows, dtype=bool)
    else:
        closed = np.ones(nflows, dtype=bool)

    first = starts
    f_flags = flags[first]
    # the originator sends the first packet, unless that packet is a SYN-ACK (we missed the SYN)
    swap = ((f_flags & (SYN | ACK)) == (SYN | ACK)) & (s["proto"][first] == 6)
    src_k = (
        np.ascontiguousarray(
            np.hstack([s["src"], np.where(icmp[order], 0, s["sport"]).astype(">u2").view(np.uint8).reshape(-1, 2)])
        )
        .view("S18")
        .ravel()
    )
    dst_k = (
        np.ascontiguousarray(
            np.hstack([s["dst"], np.where(icmp[order], 0, s["dport"]).astype(">u2").view(np.uint8).reshape(-1, 2)])
        )
        .view("S18")
        .ravel()
    )
    orig_key = np.where(swap, dst_k[first], src_k[first])
    from_orig = src_k == orig_key[flow]
    plen = s["plen"]
    ones = np.ones(n, dtype=np.int64)

    def per_flow(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(flow, weights=np.where(mask, values, 0), minlength=nflows).astype(np.int64)

    bytes_out = per_flow(plen, from_orig)
    bytes_in = per_flow(plen, ~from_orig)
    pk_out = per_flow(ones, from_orig)
    pk_in = per_flow(ones, ~from_orig)
    oflags = np.bitwise_or.reduceat(np.where(from_orig, flags, 0), starts)
    rflags = np.bitwise_or.reduceat(np.where(~from_orig, flags, 0), starts)
    fproto = s["proto"][first]
    state = conn_state_biflow(fproto == 6, oflags, rflags, pk_in)
    history = _history(flow, starts, s["proto"], flags, plen, from_orig, swap, fproto)

    o_addr = np.where(swap[:, None], s["dst"][first], s["src"][first])
    r_addr = np.where(swap[:, None], s["src"][first], s["dst"][first])
    o_port = np.where(swap, s["dport"][first], s["sport"][first])
    r_port = np.where(swap, s["sport"][first], s["dport"][first])
    v6 = s["v6"][first]
    dur = (ts[ends] - ts[first]) / 1e6

    def v4(addr: np.ndarray) -> pa.Array:
        vals = np.ascontiguousarray(addr[:, 12:16]).view(">u4").ravel().astype(np.uint32)
        return pa.array(vals, pa.uint32(), mask=v6)

    def v6col(addr: np.ndarray) -> pa.Array:
        return _v6_array(np.ascontiguousarray(addr), v6)

    m = nflows
    cols = {
        "ts": pa.array(ts[first], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "duration_s": pa.array(dur, pa.float64()),
        "src_ip": v4(o_addr),
        "src_ip6": v6col(o_addr),
        "src_port": pa.array(o_port.astype(np.int32)),
        "dst_ip": v4(r_addr),
        "dst_ip6": v6col(r_addr),
        "dst_port": pa.array(r_port.astype(np.int32)),
        "proto": PROTO_NAMES.take(pa.array(fproto & 0xFF)),
        "bytes_out": pa.array(bytes_out),
        "bytes_in": pa.array(bytes_in),
        "packets_out": pa.array(pk_out),
        "packets_in": pa.array(pk_in),
        "conn_state": state,
        "service": pa.nulls(m, pa.string()),
        "sensor": pa.array([ctx.sensor] * m, pa.string()),
        "source_format": pa.array(["pcap"] * m, pa.string()),
        "source_file": pa.array([str(ctx.path)] * m, pa.string()),
        "history": history,
    }
    table = pa.Table.from_arrays([cols[f.name] for f in FLOW_SCHEMA], schema=FLOW_SCHEMA)
    if not closed.all():
        table = table.filter(pa.array(closed))
    return table.sort_by("ts"), carry


_LETTERS = b"SHshAaDdFfRr"


def _history(
    flow: np.ndarray,
    starts: np.ndarray,
    proto: np.ndarray,
    flags: np.ndarray,
    plen: np.ndarray,
    from_orig: np.ndarray,
    swap: np.ndarray,
    fproto: np.ndarray,
) -> pa.Array:
    """Zeek's ``history`` of each flow from its packets (sorted by flow, then time): where each
    letter first occurred, ``^`` first when the originator was taken to be the receiver of the
    first packet (a SYN-ACK).  TCP: ``S``/``H`` SYN/SYN-ACK, ``A`` a pure ACK, ``D`` payload,
    ``F`` FIN, ``R`` RST (lowercase: the responder's).  UDP: ``D``/``d``.  Other protocols: null."""
    tcp = proto == 6
    syn, ack = (flags & SYN) != 0, (flags & ACK) != 0
    pure_ack = tcp & ack & ((flags & (SYN | FIN | RST)) == 0) & (plen == 0)
    data = ((proto == 6) | (proto == 17)) & (plen > 0)
    o, r = from_orig, ~from_orig
    masks = [
        tcp & syn & ~ack & o,
        tcp & syn & ack & o,
        tcp & syn & ~ack & r,
        tcp & syn & ack & r,
        pure_ack & o,
        pure_ack & r,
        data & o,
        data & r,
        tcp & ((flags & FIN) != 0) & o,
        tcp & ((flags & FIN) != 0) & r,
        tcp & ((flags & RST) != 0) & o,
        tcp & ((flags & RST) != 0) & r,
    ]
    idx = np.arange(len(flow), dtype=np.int64)
    first = np.stack([np.minimum.reduceat(np.where(m, idx, NEVER), starts) for m in masks], axis=1)
    text = history_text(first, _LETTERS, swap)
    known = (fproto == 6) | (fproto == 17)
    return pc.if_else(pa.array(known), text, pa.scalar(None, pa.string()))


def sniff_pcap(head: bytes) -> bool:
    return is_pcap(head)


register_format(Format("pcap", sniff_pcap, read_pcap_flows, "packet capture (pcap/pcapng), turned into flows"))

__all__ = ["read_pcap_flows", "IDLE_TIMEOUT_S", "ACTIVE_TIMEOUT_S", "WINDOW_PACKETS"]
