"""Numbers behind each case's truth, computed from the telemetry and its labels (not from sightline).

A case's truth line says *why* an organization has its verdict ("192.168.1.107 made 718
connections labelled Malicious to 66.63.168.35:5888, all REJ, median interval 1.5 s").  Those
numbers come from here: the raw telemetry is read by small readers of our own (Zeek conn.log TSV
and JSON lines with the Stratosphere ``label``/``detailedlabel`` columns, Suricata eve.json flow
events labelled by the alerts of the same flow, and pcap reduced to TCP connection attempts),
never through sightline's ingest, so a bug there cannot hide in the truth.

Usage: python -m bench.real.facts CASE [--select 'src=1.2.3.4,dst=5.6.7.8'] [--top 20]
"""

from __future__ import annotations

import argparse
import gzip
import io
import ipaddress
import json
import struct
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

COLUMNS = [
    "ts",
    "src",
    "sport",
    "dst",
    "dport",
    "proto",
    "state",
    "duration",
    "bytes_out",
    "bytes_in",
    "label",
    "detail",
]


def _open_text(path: Path) -> io.TextIOBase:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return io.StringIO(raw.decode("utf-8", "replace"))


def _num(v: Any) -> float | None:
    if v in (None, "-", "", "(empty)"):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _zeek_tsv(lines: Iterable[str]) -> dict[str, list]:
    out: dict[str, list] = {c: [] for c in COLUMNS}
    fields: list[str] = []
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            # IoT-23 writes its last three columns with spaces: "tunnel_parents   label   detailed-label"
            if fields and "   " in fields[-1]:
                fields = fields[:-1] + fields[-1].split()
            continue
        if not line or line.startswith("#") or not fields:
            continue
        parts = line.split("\t")
        if len(parts) < len(fields) and "   " in parts[-1]:
            parts = parts[:-1] + parts[-1].split("   ")
        row = dict(zip(fields, parts))
        _add(
            out,
            row.get("ts"),
            row.get("id.orig_h"),
            row.get("id.orig_p"),
            row.get("id.resp_h"),
            row.get("id.resp_p"),
            row.get("proto"),
            row.get("conn_state"),
            row.get("duration"),
            row.get("orig_bytes"),
            row.get("resp_bytes"),
            row.get("label"),
            row.get("detailedlabel", row.get("detailed-label")),
        )
    return out


def _add(out: dict[str, list], ts, src, sport, dst, dport, proto, state, duration, bo, bi, label, detail) -> None:
    out["ts"].append(_num(ts))
    out["src"].append(src)
    out["sport"].append(int(_num(sport) or 0))
    out["dst"].append(dst)
    out["dport"].append(int(_num(dport) or 0))
    out["proto"].append((proto or "").lower())
    out["state"].append(state)
    out["duration"].append(_num(duration))
    out["bytes_out"].append(_num(bo))
    out["bytes_in"].append(_num(bi))
    out["label"].append(None if label in (None, "-", "(empty)") else label)
    out["detail"].append(None if detail in (None, "-", "(empty)") else detail)


def _zeek_json(lines: Iterable[str]) -> dict[str, list]:
    out: dict[str, list] = {c: [] for c in COLUMNS}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        _add(
            out,
            r.get("ts"),
            r.get("id.orig_h"),
            r.get("id.orig_p"),
            r.get("id.resp_h"),
            r.get("id.resp_p"),
            r.get("proto"),
            r.get("conn_state"),
            r.get("duration"),
            r.get("orig_bytes"),
            r.get("resp_bytes"),
            r.get("label"),
            r.get("detailedlabel"),
        )
    return out


def _iso_ts(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def _suricata(lines: Iterable[str]) -> dict[str, list]:
    """eve.json ``flow`` events; label = the alert signatures seen on the same flow_id."""
    flows: list[dict] = []
    alerts: dict[Any, set[str]] = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        e = json.loads(line)
        if e.get("event_type") == "alert":
            alerts.setdefault(e.get("flow_id"), set()).add(e.get("alert", {}).get("signature", "alert"))
        elif e.get("event_type") == "flow":
            flows.append(e)
    out: dict[str, list] = {c: [] for c in COLUMNS}
    for e in flows:
        f = e.get("flow", {})
        start, end = _iso_ts(f.get("start")), _iso_ts(f.get("end"))
        sigs = alerts.get(e.get("flow_id"))
        _add(
            out,
            start,
            e.get("src_ip"),
            e.get("src_port"),
            e.get("dest_ip"),
            e.get("dest_port"),
            e.get("proto"),
            f.get("state"),
            (end - start) if start is not None and end is not None else None,
            f.get("bytes_toserver"),
            f.get("bytes_toclient"),
            "Alert" if sigs else None,
            "; ".join(sorted(sigs)) if sigs else None,
        )
    return out


def _pcap(raw: bytes) -> dict[str, list]:
    """TCP connections of a libpcap file (Ethernet or raw IP): one per first SYN of a 4-tuple,
    with the TCP payload bytes each way (bytes_out = from the side that sent the SYN)."""
    out: dict[str, list] = {c: [] for c in COLUMNS}
    magic = raw[:4]
    endian = {
        b"\xd4\xc3\xb2\xa1": "<",
        b"\xa1\xb2\xc3\xd4": ">",
        b"\x4d\x3c\xb2\xa1": "<",
        b"\xa1\xb2\x3c\x4d": ">",
    }.get(magic)
    if endian is None:
        raise ValueError("not a libpcap file (pcapng is not read here)")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", raw[20:24])[0]
    pos = 24
    conns: dict[tuple, int] = {}
    bo: list[int] = []
    bi: list[int] = []
    last: list[float] = []
    while pos + 16 <= len(raw):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", raw[pos : pos + 16])
        pkt = raw[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ts = sec + frac / (1e9 if nano else 1e6)
        off = 14 if linktype == 1 else 0
        if linktype == 1:
            etype = struct.unpack(">H", pkt[12:14])[0]
            if etype == 0x8100:
                etype, off = struct.unpack(">H", pkt[16:18])[0], 18
            if etype != 0x0800:
                continue
        ip = pkt[off:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:]
        if len(tcp) < 14:
            continue
        payload = max(0, total - ihl - (tcp[12] >> 4) * 4)
        flags = tcp[13]
        src, dst = str(ipaddress.IPv4Address(ip[12:16])), str(ipaddress.IPv4Address(ip[16:20]))
        sport, dport = struct.unpack(">HH", tcp[:4])
        key, rkey = (src, sport, dst, dport), (dst, dport, src, sport)
        if key in conns:
            i = conns[key]
            bo[i] += payload
        elif rkey in conns:
            i = conns[rkey]
            bi[i] += payload
        elif flags & 0x02 and not flags & 0x10:  # SYN without ACK opens a connection
            conns[key] = len(bo)
            bo.append(payload)
            bi.append(0)
            last.append(ts)
            _add(out, ts, src, sport, dst, dport, "tcp", "SYN", None, None, None, None, None)
            continue
        else:
            continue
        last[i] = ts
    out["bytes_out"] = [float(v) for v in bo]
    out["bytes_in"] = [float(v) for v in bi]
    out["duration"] = [e - s for s, e in zip(out["ts"], last)]
    return out


def load(path: Path) -> pa.Table:
    """One telemetry file -> a table of COLUMNS (format detected from the content)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        cols = _pcap(raw)
    else:
        text = raw.decode("utf-8", "replace")
        head = text.lstrip()[:4000]
        if head.startswith("#"):
            cols = _zeek_tsv(io.StringIO(text))
        elif '"event_type"' in head:
            cols = _suricata(io.StringIO(text))
        else:
            cols = _zeek_json(io.StringIO(text))
    schema = pa.schema(
        [
            ("ts", pa.float64()),
            ("src", pa.string()),
            ("sport", pa.int64()),
            ("dst", pa.string()),
            ("dport", pa.int64()),
            ("proto", pa.string()),
            ("state", pa.string()),
            ("duration", pa.float64()),
            ("bytes_out", pa.float64()),
            ("bytes_in", pa.float64()),
            ("label", pa.string()),
            ("detail", pa.string()),
        ]
    )
    return pa.table(cols, schema=schema)


def load_all(paths: Iterable[Path]) -> pa.Table:
    return pa.concat_tables([load(p) for p in paths])


_SELECT_KEYS = {"src", "dst", "dport", "proto", "label", "detail", "state", "not_state"}


def _where(sel: dict[str, Any]) -> tuple[str, list]:
    unknown = set(sel) - _SELECT_KEYS
    if unknown:
        raise ValueError(f"unknown selection keys {sorted(unknown)}; use {sorted(_SELECT_KEYS)}")
    clauses, args = ["true"], []
    for k, v in sel.items():
        vals = v if isinstance(v, list) else [v]
        col = {"not_state": "state"}[k] if k == "not_state" else k
        marks = ",".join("?" for _ in vals)
        clauses.append(f"{col} {'not in' if k == 'not_state' else 'in'} ({marks})")
        args += [int(x) if k == "dport" else str(x) for x in vals]
    return " and ".join(clauses), args


def facts(table: pa.Table, sel: dict[str, Any]) -> dict[str, Any]:
    """Counts, states, labels, timing and bytes of the flows that ``sel`` picks."""
    con = duckdb.connect()
    con.register("f", table)
    where, args = _where(sel)
    q = f"""
      with s as (select * from f where {where}),
      g as (select ts - lag(ts) over (partition by src, dst order by ts) gap from s)
      select count(*) flows, count(distinct src) srcs, count(distinct dst) dsts, count(distinct dport) dports,
             min(ts) first_ts, max(ts) last_ts, coalesce(sum(bytes_out), 0) bytes_out,
             coalesce(sum(bytes_in), 0) bytes_in, max(duration) max_duration,
             (select median(gap) from g) median_interval, (select quantile_cont(gap, 0.9) from g) p90_interval,
             (select count(*) from s where coalesce(bytes_out,0) > 0 and coalesce(bytes_in,0) > 0) two_way
      from s"""
    row = con.execute(q, args).fetchone()
    keys = [
        "flows",
        "srcs",
        "dsts",
        "dports",
        "first_ts",
        "last_ts",
        "bytes_out",
        "bytes_in",
        "max_duration",
        "median_interval",
        "p90_interval",
        "two_way",
    ]
    out: dict[str, Any] = dict(zip(keys, row))

    def dist(col: str, n: int = 4) -> str:
        rows = con.execute(
            f"select coalesce({col}::varchar, '-') v, count(*) n from f where {where} "
            f"group by 1 order by n desc, v limit {n + 1}",
            args,
        ).fetchall()
        more = len(rows) > n
        return ", ".join(f"{v} {c}" for v, c in rows[:n]) + (", ..." if more else "")

    def values(col: str, n: int = 5) -> str:
        rows = con.execute(
            f"select {col}::varchar v, count(*) c from f where {where} group by 1 order by c desc, v limit {n + 1}",
            args,
        ).fetchall()
        return ", ".join(str(v) for v, _ in rows[:n]) + (", ..." if len(rows) > n else "")

    out["src_list"] = values("src")
    out["dst_list"] = values("dst")
    out["port_list"] = values("dport")
    out["states"] = dist("state")
    out["labels"] = dist("label || coalesce('/' || detail, '')", 3)
    out["ports"] = dist("dport", 5)
    out["top_dsts"] = dist("dst", 3)
    out["top_srcs"] = dist("src", 3)
    for k in ("median_interval", "p90_interval", "max_duration"):
        out[k] = None if out[k] is None else round(float(out[k]), 1)
    for k in ("bytes_out", "bytes_in"):
        out[k] = int(out[k])
    out["span_s"] = None if out["first_ts"] is None else round(out["last_ts"] - out["first_ts"], 1)
    for k in ("first_ts", "last_ts"):
        v = out[k]
        out[k] = None if v is None else datetime.fromtimestamp(v, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def render(template: str, values: dict[str, Any], sel: dict[str, Any]) -> str:
    """``template`` with ``{flows}``, ``{states}``, ... and the selection's own keys filled in."""
    return template.format(**{**{k: ("" if v is None else v) for k, v in values.items()}, **sel})


def main(argv: list[str] | None = None) -> int:
    from .cases import case_telemetry, load_cases

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case")
    ap.add_argument("--select", default="", help="k=v[,k=v]: src, dst, dport, proto, label, detail, state, not_state")
    ap.add_argument("--top", type=int, default=20, help="also list the top N (src, dst, dport, label) groups")
    args = ap.parse_args(argv)
    cases = {c["name"]: c for c in load_cases()}
    case = cases[args.case]
    table = load_all(case_telemetry(case))
    sel: dict[str, Any] = {}
    for part in filter(None, args.select.split(",")):
        k, v = part.split("=", 1)
        sel.setdefault(k, []).append(v)
    print(json.dumps(facts(table, sel), indent=1))
    con = duckdb.connect()
    con.register("f", table)
    where, qargs = _where(sel)
    for r in con.execute(
        f"select src, dst, dport, proto, label, detail, count(*) n, string_agg(distinct state, ',') "
        f"from f where {where} group by all order by n desc limit {args.top}",
        qargs,
    ).fetchall():
        print(*r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
