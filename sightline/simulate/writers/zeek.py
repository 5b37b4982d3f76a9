"""Zeek ``conn.log`` writers: TSV with the standard header, and JSON lines.

Lines are assembled column-wise with Arrow string kernels; only the few corrupt records
(a configurable rate) are touched one by one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import WriterSpec, register_writer

FIELDS = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
)
TYPES = (
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
)

_HISTORY_TCP = {
    "SF": "ShADadFf",
    "S0": "S",
    "REJ": "Sr",
    "RSTO": "ShADadR",
    "RSTR": "ShADadr",
    "S1": "ShAD",
    "SH": "SF",
    "OTH": "CCC",
    "S2": "ShADF",
    "S3": "ShADf",
    "RSTOS0": "SR",
    "RSTRH": "Hr",
    "SHR": "Hfr",
}
_HISTORY_UDP = {"SF": "Dd", "S0": "D"}
_OCTETS = pa.array([str(i) for i in range(256)], pa.string())
_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def _v4_text(col: pa.Array) -> pa.Array:
    v = np.asarray(col.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.uint32)
    parts = [_OCTETS.take(pa.array((v >> s) & 0xFF)) for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*parts, ".")


def _v6_text(col: pa.Array) -> pa.Array:
    enc = pc.dictionary_encode(col)
    texts = [None if b is None else str(ipaddress.IPv6Address(b)) for b in enc.dictionary.to_pylist()]
    return pa.array(texts, pa.string()).take(enc.indices)


def ip_text(v4: pa.Array, v6: pa.Array) -> pa.Array:
    """Text addresses from the store's two-column form (vectorized for IPv4)."""
    t4 = _v4_text(v4)
    if v6.null_count == len(v6):
        return t4
    return pc.if_else(pc.is_valid(v4), t4, _v6_text(v6))


def _decimal6(us: np.ndarray) -> pa.Array:
    """Microsecond integers as ``seconds.micros`` text, exact (Zeek prints 6 decimals)."""
    sec = pa.array(us // 1_000_000).cast(pa.string())
    frac = pc.utf8_lpad(pa.array(us % 1_000_000).cast(pa.string()), 6, "0")
    return pc.binary_join_element_wise(sec, frac, ".")


def _uids(rng: np.random.Generator, n: int) -> pa.Array:
    digits = _B62[rng.integers(0, 62, size=(n, 17))]
    digits[:, 0] = ord("C")
    return pa.array(digits.view("S17").ravel(), pa.binary()).cast(pa.string())


def _text_columns(table: pa.Table, rng: np.random.Generator) -> dict[str, pa.Array]:
    """Every conn.log field as text; nulls stay null (the caller decides how to print them)."""
    t = table
    n = t.num_rows
    ts_us = t.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    dur = t.column("duration_s").combine_chunks()
    dur_us = np.round(dur.fill_null(0).to_numpy(zero_copy_only=False) * 1e6).astype(np.int64)
    proto = t.column("proto").combine_chunks()
    state = t.column("conn_state").combine_chunks()
    tcp_hist = pa.array(list(_HISTORY_TCP.values()), pa.string())
    udp_hist = pa.array([_HISTORY_UDP.get(k, "D") for k in _HISTORY_TCP], pa.string())
    sidx = pc.index_in(state, pa.array(list(_HISTORY_TCP), pa.string()))
    hist = pc.if_else(pc.equal(proto, "tcp"), tcp_hist.take(sidx), udp_hist.take(sidx))

    def num(name: str) -> pa.Array:
        return t.column(name).combine_chunks()

    def ip_bytes(b: pa.Array, p: pa.Array) -> pa.Array:
        hdr = pc.if_else(pc.equal(proto, "tcp"), 40, 28).cast(pa.int64())
        return pc.add(b, pc.multiply(p, hdr))

    return {
        "ts": _decimal6(ts_us),
        "uid": _uids(rng, n),
        "id.orig_h": ip_text(num("src_ip"), num("src_ip6")),
        "id.orig_p": num("src_port").cast(pa.string()),
        "id.resp_h": ip_text(num("dst_ip"), num("dst_ip6")),
        "id.resp_p": num("dst_port").cast(pa.string()),
        "proto": proto,
        "service": num("service"),
        "duration": _decimal6(dur_us),
        "orig_bytes": num("bytes_out").cast(pa.string()),
        "resp_bytes": num("bytes_in").cast(pa.string()),
        "conn_state": state,
        "local_orig": pa.nulls(n, pa.string()),
        "local_resp": pa.nulls(n, pa.string()),
        "missed_bytes": pa.array(np.zeros(n, np.int64)).cast(pa.string()),
        "history": hist,
        "orig_pkts": num("packets_out").cast(pa.string()),
        "orig_ip_bytes": ip_bytes(num("bytes_out"), num("packets_out")).cast(pa.string()),
        "resp_pkts": num("packets_in").cast(pa.string()),
        "resp_ip_bytes": ip_bytes(num("bytes_in"), num("packets_in")).cast(pa.string()),
        "tunnel_parents": pa.nulls(n, pa.string()),
    }


def _corrupt(lines: pa.Array, corrupt: np.ndarray, rng: np.random.Generator, garble: callable) -> pa.Array:
    """Truncate or garble the flagged lines (a rare, per-record edit)."""
    idx = np.nonzero(corrupt)[0]
    if not len(idx):
        return lines
    old = lines.take(pa.array(idx)).to_pylist()
    new = []
    for line, kind in zip(old, corrupt[idx].tolist()):
        if kind == 1:
            cut = int(rng.integers(5, max(6, len(line) - 10)))
            new.append(line[:cut])
        else:
            new.append(garble(line, rng))
    mask = np.zeros(len(lines), bool)
    mask[idx] = True
    return pc.replace_with_mask(lines, pa.array(mask), pa.array(new, pa.string()))


def _garble_tsv(line: str, rng: np.random.Generator) -> str:
    parts = line.split("\t")
    which = int(rng.integers(0, 3))
    if which == 0:
        parts[9] = "4o9%"  # orig_bytes not a number
    elif which == 1:
        parts[2] = "10.300.7." + parts[2][-1:]  # impossible address
    else:
        parts[3] = "70000"  # port out of range
    return "\t".join(parts)


def _garble_json(line: str, rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        return line.replace('"orig_bytes":', '"orig_bytes":"n/a","x":', 1)
    return line.replace("{", "{\x00", 1)[:-1]


def _join_lines(lines: pa.Array) -> bytes:
    with_nl = pc.binary_join_element_wise(lines, pa.scalar(""), "\n")
    offsets, data = with_nl.buffers()[1], with_nl.buffers()[2]
    off = np.frombuffer(offsets, dtype=np.int32, count=len(with_nl) + 1, offset=with_nl.offset * 4)
    return data.to_pybytes()[off[0] : off[-1]] if data is not None else b""


def _zeek_time(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d-%H-%M-%S")


class ZeekTSVWriter:
    """conn.log in Zeek's default TSV layout (``#fields`` header, ``-`` for unset)."""

    def __init__(self, path: Path, ctx: dict) -> None:
        self.path = path
        self.rng = np.random.default_rng(ctx.get("seed", 0))
        self.fh = open(path, "wb")
        opened = ctx.get("opened", dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        self.closed_at = ctx.get("closed", opened)
        header = [
            "#separator \\x09",
            "#set_separator\t,",
            "#empty_field\t(empty)",
            "#unset_field\t-",
            "#path\tconn",
            f"#open\t{_zeek_time(opened)}",
            "#fields\t" + "\t".join(FIELDS),
            "#types\t" + "\t".join(TYPES),
        ]
        self.fh.write(("\n".join(header) + "\n").encode())

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        cols = _text_columns(table, self.rng)
        parts = [pc.fill_null(cols[f], "-") for f in FIELDS]
        lines = pc.binary_join_element_wise(*parts, "\t")
        corrupt = table.column("corrupt").to_numpy()
        lines = _corrupt(lines, corrupt, self.rng, _garble_tsv)
        self.fh.write(_join_lines(lines))

    def close(self) -> None:
        self.fh.write(f"#close\t{_zeek_time(self.closed_at)}\n".encode())
        self.fh.close()


_JSON_STR = {"uid", "id.orig_h", "id.resp_h", "proto", "service", "conn_state", "history"}
_JSON_SKIP = {"local_orig", "local_resp", "tunnel_parents"}


class ZeekJSONWriter:
    """conn.log as Zeek JSON lines (``LogAscii::use_json``); unset fields are left out."""

    def __init__(self, path: Path, ctx: dict) -> None:
        self.path = path
        self.rng = np.random.default_rng(ctx.get("seed", 0))
        self.fh = open(path, "wb")

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        cols = _text_columns(table, self.rng)
        parts: list[pa.Array | pa.Scalar] = []
        first = True
        for f in FIELDS:
            if f in _JSON_SKIP:
                continue
            quote = '"' if f in _JSON_STR else ""
            lead = ("{" if first else ",") + f'"{f}":{quote}'
            frag = pc.binary_join_element_wise(pa.scalar(lead), cols[f], pa.scalar(quote), "")
            parts.append(frag if first else pc.fill_null(frag, ""))
            first = False
        parts.append(pa.scalar("}"))
        lines = pc.binary_join_element_wise(*parts, "")
        corrupt = table.column("corrupt").to_numpy()
        lines = _corrupt(lines, corrupt, self.rng, _garble_json)
        self.fh.write(_join_lines(lines))

    def close(self) -> None:
        self.fh.close()


register_writer(WriterSpec("zeek_tsv", "log", ZeekTSVWriter, "Zeek conn.log, TSV"))
register_writer(WriterSpec("zeek_json", "json", ZeekJSONWriter, "Zeek conn.log, JSON lines"))

__all__ = ["FIELDS", "TYPES", "ZeekTSVWriter", "ZeekJSONWriter", "ip_text"]
