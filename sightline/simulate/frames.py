"""The canonical flow table the generators produce, before any output format.

A *frame* is a dict of equal-length numpy arrays (columns below).  Generators build frames;
:func:`to_arrow` turns one into :data:`sightline.schema.FLOW_SCHEMA` plus the simulator's
``corrupt`` column, which writers consume.  Keeping the canonical table in numpy keeps every
step vectorized (no Python loop per flow).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..net import IPV6_TYPE
from ..schema import FLOW_SCHEMA

PROTOS = ("tcp", "udp", "icmp")
STATES = ("SF", "S0", "REJ", "RSTO", "RSTR", "S1", "SH", "OTH", "S2", "S3", "RSTOS0", "RSTRH", "SHR")
SERVICES = ("", "ssl", "http", "dns", "ntp", "ssh", "smtp", "openvpn", "ipsec", "quic", "imap")
FAILED = np.array([s in ("S0", "REJ", "RSTOS0", "RSTRH", "SH", "SHR") for s in STATES])

LABELS = {
    0: "background",
    1: "benign_scanner",
    2: "benign_vpn",
    3: "benign_shared_cdn",
    4: "benign_stale_ip",
    5: "benign_wrong_ioc",
    6: "listed_resolver",
    7: "listed_cdn",
    8: "listed_cloud",
    9: "listed_research_scanner",
    10: "recon",
    11: "exploit",
    12: "beacon",
    13: "tunnel",
    14: "exfil",
    15: "refused_callback",
    16: "stray_refused_attempt",
    17: "relay_outbound",
    18: "relay_inbound",
}
CALLBACK_LABELS = (12, 13, 14, 15, 17, 18)
"""Labels that make the flow's host (and its organization) compromised."""
INBOUND_LABELS = (9, 10, 11, 18)
"""Labels whose host (the party the verdict is about) is the flow's destination."""

COLUMNS: dict[str, type] = {
    "ts": np.int64,  # microseconds since the epoch, true time (skew is added when writing)
    "dur": np.float64,  # seconds
    "v6": np.bool_,
    "s_hi": np.uint64,
    "s_lo": np.uint64,  # v4: s_lo holds the address, s_hi 0
    "sport": np.int32,
    "d_hi": np.uint64,
    "d_lo": np.uint64,
    "dport": np.int32,
    "proto": np.uint8,
    "state": np.uint8,
    "service": np.uint8,
    "bout": np.int64,
    "bin": np.int64,  # -1 = unknown (written as unset)
    "pout": np.int64,
    "pin": np.int64,
    "sensor": np.int16,
    "label": np.uint8,
    "org": np.int32,  # index of the organization the flow belongs to
    "corrupt": np.uint8,  # 0 fine, 1 truncated line, 2 garbled field
}

Frame = dict[str, np.ndarray]


def empty(n: int = 0) -> Frame:
    return {k: np.zeros(n, dtype=t) for k, t in COLUMNS.items()}


def concat(frames: list[Frame]) -> Frame:
    frames = [f for f in frames if len(f["ts"])]
    if not frames:
        return empty()
    return {k: np.concatenate([f[k] for f in frames]) for k in COLUMNS}


def take(frame: Frame, idx: np.ndarray) -> Frame:
    return {k: v[idx] for k, v in frame.items()}


def size(frame: Frame) -> int:
    return len(frame["ts"])


def code(values: tuple[str, ...], name: str) -> int:
    return values.index(name)


def packets(
    rng: np.random.Generator, nbytes: np.ndarray, state: np.ndarray, proto: np.ndarray, forward: bool
) -> np.ndarray:
    """Packet counts consistent with byte counts and connection state."""
    mss = rng.uniform(500, 1400, size=len(nbytes))
    p = np.ceil(np.maximum(nbytes, 0) / mss).astype(np.int64)
    tcp = proto == 0
    p = p + np.where(tcp, 2 if forward else 2, 0) + (~tcp & (p == 0))
    s0 = state == STATES.index("S0")
    rej = state == STATES.index("REJ")
    p = np.where(s0, (1 + rng.integers(0, 3, size=len(p))) if forward else 0, p)
    p = np.where(rej, 1, p)
    return p


def to_arrow(frame: Frame, skew_us: np.ndarray, sensor_names: list[str]) -> pa.Table:
    """The frame as FLOW_SCHEMA columns plus ``corrupt`` (uint8), timestamps skewed per sensor."""
    n = size(frame)
    v6 = frame["v6"]
    ts = frame["ts"] + skew_us[frame["sensor"]]

    def ip4(lo: np.ndarray) -> pa.Array:
        return pa.array(lo.astype(np.uint32), pa.uint32(), mask=v6)

    def ip6(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
        raw = np.empty((n, 2), dtype=">u8")
        raw[:, 0], raw[:, 1] = hi, lo
        arr = pa.FixedSizeBinaryArray.from_buffers(IPV6_TYPE, n, [None, pa.py_buffer(raw.tobytes())])
        return _mask_binary(arr, v6)

    def opt(v: np.ndarray) -> pa.Array:
        return pa.array(v, pa.int64(), mask=v < 0)

    svc_dict = pa.array(SERVICES, pa.string())
    cols = {
        "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "duration_s": pa.array(frame["dur"], pa.float64()),
        "src_ip": ip4(frame["s_lo"]),
        "src_ip6": ip6(frame["s_hi"], frame["s_lo"]),
        "src_port": pa.array(frame["sport"], pa.int32()),
        "dst_ip": ip4(frame["d_lo"]),
        "dst_ip6": ip6(frame["d_hi"], frame["d_lo"]),
        "dst_port": pa.array(frame["dport"], pa.int32()),
        "proto": pa.array(PROTOS, pa.string()).take(pa.array(frame["proto"])),
        "bytes_out": opt(frame["bout"]),
        "bytes_in": opt(frame["bin"]),
        "packets_out": opt(frame["pout"]),
        "packets_in": opt(frame["pin"]),
        "conn_state": pa.array(STATES, pa.string()).take(pa.array(frame["state"])),
        "service": svc_dict.take(pa.array(frame["service"], mask=frame["service"] == 0)),
        "sensor": pa.array(sensor_names, pa.string()).take(pa.array(frame["sensor"])),
        "source_format": pa.nulls(n, pa.string()),
        "source_file": pa.nulls(n, pa.string()),
        "history": pa.nulls(n, pa.string()),
    }
    table = pa.table([cols[f.name] for f in FLOW_SCHEMA], schema=FLOW_SCHEMA)
    return table.append_column("corrupt", pa.array(frame["corrupt"], pa.uint8()))


def _mask_binary(arr: pa.FixedSizeBinaryArray, valid: np.ndarray) -> pa.Array:
    """Null out entries where ``valid`` is false."""
    if valid.all():
        return arr
    return pc.if_else(pa.array(valid), arr, pa.scalar(None, IPV6_TYPE))


__all__ = [
    "PROTOS",
    "STATES",
    "SERVICES",
    "LABELS",
    "CALLBACK_LABELS",
    "INBOUND_LABELS",
    "COLUMNS",
    "Frame",
    "FAILED",
    "empty",
    "concat",
    "take",
    "size",
    "code",
    "packets",
    "to_arrow",
]
