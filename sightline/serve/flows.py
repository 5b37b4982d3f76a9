"""The actual flows behind an evidence row: one host x the addresses of an indicator, paged.

One DuckDB query over the workspace's committed parquet flow parts (``Workspace.flow_files()``);
addresses are compared as the store keeps them (IPv4 ``uint32``, IPv6 16-byte binary, ranges
for CIDR indicators), so Parquet row-group statistics skip most of a large store.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..net import IPRange, ip_text, parse_network

__all__ = ["FLOW_COLUMNS_SHOWN", "host_flows", "peer_ranges"]

FLOW_COLUMNS_SHOWN = (
    "ts",
    "duration_s",
    "src",
    "src_port",
    "dst",
    "dst_port",
    "proto",
    "bytes_out",
    "bytes_in",
    "packets_out",
    "packets_in",
    "conn_state",
    "service",
    "sensor",
)


def peer_ranges(values: list[str]) -> list[IPRange]:
    """The address ranges of indicator values (addresses and CIDRs; names are skipped)."""
    out = []
    for v in values:
        try:
            out.append(parse_network(v))
        except ValueError:
            continue
    return out


def _side(col: str, r: IPRange, params: list[Any]) -> str:
    if r.version == 4:
        if r.start4 == r.end4:
            params.append(r.start4)
            return f"{col} = ?"
        params += [r.start4, r.end4]
        return f"{col} BETWEEN ? AND ?"
    if r.start6 == r.end6:
        params.append(r.start6)
        return f"{col}6 = ?"
    params += [r.start6, r.end6]
    return f"{col}6 BETWEEN ? AND ?"


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def host_flows(
    files: list[str], host: str, peers: list[IPRange], *, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    """Flows between ``host`` and any of ``peers`` (either direction), oldest first.

    Returns ``{"total", "limit", "offset", "items"}``; items carry addresses as text and
    times as ISO-8601 (UTC).
    """
    page: dict[str, Any] = {"total": 0, "limit": limit, "offset": offset, "items": []}
    try:
        h = parse_network(host)
    except ValueError:
        return page
    peers = [p for p in peers if p.version == h.version]
    if not files or not peers:
        return page
    import duckdb

    params: list[Any] = []
    clauses = []
    for p in peers:
        clauses.append(f"({_side('src_ip', h, params)} AND {_side('dst_ip', p, params)})")
        clauses.append(f"({_side('src_ip', p, params)} AND {_side('dst_ip', h, params)})")
    where = " OR ".join(clauses)
    source = f"read_parquet([{', '.join(_quote(f) for f in files)}], union_by_name = true)"
    con = duckdb.connect()
    try:
        con.execute("SET threads = 2")
        total = con.execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchone()
        rows = con.execute(
            "SELECT ts, duration_s, src_ip, src_ip6, src_port, dst_ip, dst_ip6, dst_port, proto, bytes_out, bytes_in, "
            f"packets_out, packets_in, conn_state, service, sensor FROM {source} WHERE {where} "
            "ORDER BY ts, src_port, dst_port LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
    finally:
        con.close()
    page["total"] = int(total[0]) if total else 0
    items = []
    for ts, dur, s4, s6, sp, d4, d6, dp, proto, bo, bi, po, pi, state, service, sensor in rows:
        if isinstance(ts, dt.datetime):
            ts = (ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        items.append(
            {
                "ts": ts,
                "duration_s": dur,
                "src": ip_text(s4, s6),
                "src_port": sp,
                "dst": ip_text(d4, d6),
                "dst_port": dp,
                "proto": proto,
                "bytes_out": bo,
                "bytes_in": bi,
                "packets_out": po,
                "packets_in": pi,
                "conn_state": state,
                "service": service,
                "sensor": sensor,
            }
        )
    page["items"] = items
    return page
