"""Encode flows as NetFlow v5/v9/IPFIX export packets, and wrap datagrams in a pcap.

Used by the simulator's NetFlow writer, the benchmarks and the tests (the reverse of
:mod:`sightline.ingest.netflow`).  Records are packed with numpy structured arrays.

Input: a FLOW_SCHEMA table (IPv4 and IPv6 rows both allowed).  Output: a list of UDP
payloads, each a complete export packet (templates are sent in the first packet and then every
``template_every`` packets, like real exporters' template refresh).
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import FLOW_SCHEMA
from .netflow import REVERSE_PEN

_PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1, "gre": 47, "esp": 50, "sctp": 132}
_STATE_FLAGS = {  # a flag set that maps back to the same uniflow conn_state (tcpstate)
    "S0": 0x02,
    "REJ": 0x06,
    "SF": 0x1B,
    "RSTO": 0x16,
    "RSTR": 0x16,
    "S1": 0x12,
    "SH": 0x03,
    "OTH": 0x18,
    "S2": 0x13,
    "S3": 0x1B,
    "RSTOS0": 0x06,
    "RSTRH": 0x14,
    "SHR": 0x19,
}


V5_RECORD = np.dtype(
    [
        ("src", ">u4"),
        ("dst", ">u4"),
        ("nh", ">u4"),
        ("in", ">u2"),
        ("out", ">u2"),
        ("pkts", ">u4"),
        ("bytes", ">u4"),
        ("first", ">u4"),
        ("last", ">u4"),
        ("sp", ">u2"),
        ("dp", ">u2"),
        ("pad", "u1"),
        ("flags", "u1"),
        ("proto", "u1"),
        ("tos", "u1"),
        ("sas", ">u2"),
        ("das", ">u2"),
        ("sm", "u1"),
        ("dm", "u1"),
        ("pad2", ">u2"),
    ]
)
"""One NetFlow v5 flow record as it is sent (48 bytes, network byte order)."""


def _cols(table: pa.Table) -> dict[str, np.ndarray]:
    n = table.num_rows
    proto = table.column("proto").to_pylist()
    state = table.column("conn_state").to_pylist()

    def num(name: str) -> np.ndarray:
        return np.asarray(pc.fill_null(table.column(name), 0).to_numpy(), dtype=np.int64)

    v4 = np.asarray(table.column("src_ip").is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    ts_us = np.asarray(table.column("ts").cast(pa.int64()).to_numpy(), dtype=np.int64)
    dur = np.asarray(pc.fill_null(table.column("duration_s"), 0.0).to_numpy(), dtype=np.float64)

    def v6(name: str) -> np.ndarray:
        vals = table.column(name).to_pylist()
        return np.frombuffer(b"".join(v if v is not None else b"\0" * 16 for v in vals), np.uint8).reshape(n, 16)

    return {
        "v4": v4,
        "src4": num("src_ip").astype(np.uint32),
        "dst4": num("dst_ip").astype(np.uint32),
        "src6": v6("src_ip6"),
        "dst6": v6("dst_ip6"),
        "sport": num("src_port"),
        "dport": num("dst_port"),
        "proto": np.asarray([_PROTO_NUM.get(p or "", int(p) if (p or "").isdigit() else 0) for p in proto], np.int64),
        "flags": np.asarray([_STATE_FLAGS.get(s or "", 0) for s in state], np.int64),
        "bytes": num("bytes_out"),
        "pkts": num("packets_out"),
        "rbytes": num("bytes_in"),
        "rpkts": num("packets_in"),
        "start_ms": ts_us // 1000,
        "end_ms": ts_us // 1000 + np.round(dur * 1000).astype(np.int64),
    }


def _fields(version: int, v6: bool, biflow: bool) -> list[tuple[int, int, int, str]]:
    """(enterprise, ie, length, column) of our templates."""
    f = [
        (0, 27 if v6 else 8, 16 if v6 else 4, "src6" if v6 else "src4"),
        (0, 28 if v6 else 12, 16 if v6 else 4, "dst6" if v6 else "dst4"),
        (0, 7, 2, "sport"),
        (0, 11, 2, "dport"),
        (0, 4, 1, "proto"),
        (0, 6, 1, "flags"),
        (0, 1, 8, "bytes"),
        (0, 2, 8, "pkts"),
    ]
    if version == 9:
        f += [(0, 22, 4, "first_up"), (0, 21, 4, "last_up")]
    else:
        f += [(0, 152, 8, "start_ms"), (0, 153, 8, "end_ms")]
    if biflow:
        f += [(REVERSE_PEN, 1, 8, "rbytes"), (REVERSE_PEN, 2, 8, "rpkts")]
    return f


def _pack(cols: dict[str, np.ndarray], idx: np.ndarray, fields: list[tuple[int, int, int, str]]) -> np.ndarray:
    dt = np.dtype([(f"f{i}", f"V{ln}" if ln == 16 else f">u{ln}") for i, (_, _, ln, _) in enumerate(fields)])
    rec = np.zeros(len(idx), dtype=dt)
    for i, (_, _, ln, name) in enumerate(fields):
        if ln == 16:
            rec[f"f{i}"] = np.ascontiguousarray(cols[name][idx]).view("V16").ravel()
        else:
            rec[f"f{i}"] = cols[name][idx] & ((1 << (8 * ln)) - 1) if ln < 8 else cols[name][idx]
    return rec


def encode_export(
    table: pa.Table,
    version: int,
    *,
    domain: int = 1,
    per_packet: int = 24,
    biflow: bool = False,
    template_every: int = 20,
    sampling_rate: int = 1,
    uptime_base_ms: int | None = None,
) -> list[bytes]:
    """Encode flows as NetFlow v5 (``version=5``), v9 or IPFIX (``10``) export packets.

    ``sampling_rate > 1`` announces the rate in the v5 header, or in an options record
    (v9/IPFIX); counts are divided by it first so that a decoder scales them back.
    """
    if table.num_rows == 0:
        return []
    c = _cols(table)
    if sampling_rate > 1:
        for k in ("bytes", "pkts", "rbytes", "rpkts"):
            c[k] = c[k] // sampling_rate
    order = np.argsort(c["end_ms"], kind="stable")  # exporters send flows as they expire
    out: list[bytes] = []
    seq = 0
    if version == 5:
        idx4 = order[c["v4"][order]]
        for k in range(0, len(idx4), 30):
            idx = idx4[k : k + 30]
            export_ms = int(c["end_ms"][idx].max()) + 1000
            uptime = 10_000_000
            first = (uptime - (export_ms - c["start_ms"][idx])).astype(np.int64)
            last = (uptime - (export_ms - c["end_ms"][idx])).astype(np.int64)
            v5 = np.zeros(
                len(idx),
                dtype=V5_RECORD,
            )
            v5["src"], v5["dst"] = c["src4"][idx], c["dst4"][idx]
            v5["pkts"], v5["bytes"] = c["pkts"][idx], c["bytes"][idx]
            v5["first"], v5["last"] = first & 0xFFFFFFFF, last & 0xFFFFFFFF
            v5["sp"], v5["dp"] = c["sport"][idx], c["dport"][idx]
            v5["flags"], v5["proto"] = c["flags"][idx], c["proto"][idx]
            hdr = struct.pack(
                ">HHIIIIBBH",
                5,
                len(idx),
                uptime,
                export_ms // 1000,
                (export_ms % 1000) * 1_000_000,
                seq,
                0,
                domain & 0xFF,
                (sampling_rate & 0x3FFF) if sampling_rate > 1 else 0,
            )
            seq += len(idx)
            out.append(hdr + v5.tobytes())
        return out

    groups = []
    for is6, tid in ((False, 256), (True, 257)):
        sel = order[c["v4"][order] != is6]
        if len(sel):
            groups.append((tid, _fields(version, is6, biflow and version == 10), sel))
    tmpl_set_id, opt_set_id = (0, 1) if version == 9 else (2, 3)

    def template_set() -> bytes:
        body = b""
        for tid, fields, _ in groups:
            rec = struct.pack(">HH", tid, len(fields))
            for pen, ie, ln, _ in fields:
                if pen:
                    rec += struct.pack(">HHI", ie | 0x8000, ln, pen)
                else:
                    rec += struct.pack(">HH", ie, ln)
            body += rec
        sets = struct.pack(">HH", tmpl_set_id, 4 + len(body)) + body
        if sampling_rate > 1:
            if version == 9:  # scope: system (1) 4 bytes; option: SAMPLING_INTERVAL (34) 4 bytes
                ob = struct.pack(">HHHHHHH", 300, 4, 4, 1, 4, 34, 4)
            else:
                ob = struct.pack(">HHH", 300, 2, 1) + struct.pack(">HHHH", 149, 4, 34, 4)
            ob += b"\0" * ((4 - len(ob) % 4) % 4)
            sets += struct.pack(">HH", opt_set_id, 4 + len(ob)) + ob
            od = struct.pack(">II", domain, sampling_rate)
            sets += struct.pack(">HH", 300, 4 + len(od)) + od
        return sets

    npk = 0
    for tid, fields, sel in groups:
        for k in range(0, len(sel), per_packet):
            idx = sel[k : k + per_packet]
            export_ms = (int(c["end_ms"][idx].max()) // 1000 + 1) * 1000  # headers carry whole seconds
            if version == 9:
                uptime = uptime_base_ms if uptime_base_ms is not None else 10_000_000
                c["first_up"] = np.zeros(len(c["v4"]), np.int64)
                c["last_up"] = np.zeros(len(c["v4"]), np.int64)
                c["first_up"][idx] = (uptime - (export_ms - c["start_ms"][idx])) & 0xFFFFFFFF
                c["last_up"][idx] = (uptime - (export_ms - c["end_ms"][idx])) & 0xFFFFFFFF
            data = _pack(c, idx, fields).tobytes()
            body = b""
            if npk % template_every == 0:
                body += template_set()
            pad = (4 - (len(data) + 4) % 4) % 4
            body += struct.pack(">HH", tid, 4 + len(data) + pad) + data + b"\0" * pad
            if version == 9:
                hdr = struct.pack(">HHIIII", 9, len(idx), uptime, export_ms // 1000, npk, domain)
            else:
                hdr = struct.pack(">HHIII", 10, 16 + len(body), export_ms // 1000, seq, domain)
            seq += len(idx)
            npk += 1
            out.append(hdr + body)
    return out


def pcap_of_datagrams(
    payloads: list[bytes],
    *,
    exporter: str = "192.0.2.10",
    collector: str = "192.0.2.1",
    dport: int = 2055,
    ts_s: float = 1_700_000_000.0,
) -> bytes:
    """A classic pcap (Ethernet/IPv4/UDP) carrying the datagrams, one per packet."""
    src = bytes(int(x) for x in exporter.split("."))
    dst = bytes(int(x) for x in collector.split("."))
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for i, p in enumerate(payloads):
        udp = struct.pack(">HHHH", 40000, dport, 8 + len(p), 0) + p
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src, dst) + udp
        frame = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip
        t = ts_s + i * 1e-4
        parts.append(
            struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)) % 1_000_000, len(frame), len(frame)) + frame
        )
    return b"".join(parts)


_STATES = ["S0", "SF", "REJ", "OTH", "S1"]


def synthetic_flows(n: int, seed: int = 7, v6_every: int = 0, biflow: bool = False) -> pa.Table:
    """n flows with distinct 5-tuples; every ``v6_every``-th flow is IPv6 (0: none)."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000_000 + np.sort(rng.integers(0, 3_600_000_000, n))
    ts = ts - ts % 1000  # NetFlow carries milliseconds
    is6 = np.zeros(n, dtype=bool) if not v6_every else (np.arange(n) % v6_every == 0)
    src4 = (10 << 24) + rng.integers(1, 1 << 16, n)
    dst4 = (203 << 24) + (0 << 16) + (113 << 8) + rng.integers(1, 255, n)
    v6 = [bytes.fromhex("20010db8") + int(i).to_bytes(12, "big") for i in range(n)]
    proto = np.where(np.arange(n) % 3 == 0, "udp", "tcp")
    state = np.where(proto == "tcp", np.array(_STATES)[np.arange(n) % len(_STATES)], None)
    bytes_out = rng.integers(40, 1_000_000, n)
    pk = rng.integers(1, 1000, n)
    cols = {
        "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "duration_s": pa.array(rng.integers(0, 600_000, n) / 1000.0),
        "src_ip": pa.array(src4.astype(np.uint32), pa.uint32(), mask=is6),
        "src_ip6": pa.array([v if m else None for v, m in zip(v6, is6)], pa.binary(16)),
        "src_port": pa.array((np.arange(n) % 50000 + 1024).astype(np.int32)),
        "dst_ip": pa.array(dst4.astype(np.uint32), pa.uint32(), mask=is6),
        "dst_ip6": pa.array([bytes.fromhex("20010db8ffff") + bytes(10) if m else None for m in is6], pa.binary(16)),
        "dst_port": pa.array(rng.choice([53, 80, 443, 8443], n).astype(np.int32)),
        "proto": pa.array(proto.tolist()),
        "bytes_out": pa.array(bytes_out),
        "bytes_in": pa.array(rng.integers(0, 100_000, n)) if biflow else pa.nulls(n, pa.int64()),
        "packets_out": pa.array(pk),
        "packets_in": pa.array(rng.integers(0, 100, n)) if biflow else pa.nulls(n, pa.int64()),
        "conn_state": pa.array(state.tolist(), pa.string()),
        "service": pa.nulls(n, pa.string()),
        "sensor": pa.nulls(n, pa.string()),
        "source_format": pa.array(["synthetic"] * n),
        "source_file": pa.array(["synthetic"] * n),
        "history": pa.nulls(n, pa.string()),
    }
    return pa.Table.from_arrays([cols[f.name] for f in FLOW_SCHEMA], schema=FLOW_SCHEMA)


__all__ = ["V5_RECORD", "encode_export", "pcap_of_datagrams", "synthetic_flows"]
