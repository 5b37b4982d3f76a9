"""Simulator output as Suricata eve.json ``flow`` events (writer ``suricata_eve``).

Each flow becomes one bidirectional flow event, the inverse of
:mod:`sightline.ingest.suricata`'s mapping: ``bytes_out``/``packets_out`` -> ``*_toserver``,
``bytes_in``/``packets_in`` -> ``*_toclient``; byte counts are IP-level as Suricata counts
them (40 header bytes per packet added, the amount detection takes off again).  The Zeek
``conn_state`` is written as the per-direction TCP flags that map back to it
(:func:`sightline.ingest.tcpstate.conn_state_biflow`).  Lines are assembled column-wise;
records flagged ``corrupt`` are truncated or get a non-numeric byte count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .writers import WriterSpec, register_writer
from .writers.zeek import _corrupt, _join_lines, ip_text

HEADER_BYTES = 40
"""IP + TCP header bytes per packet; detection subtracts the same amount from IP-level counts."""

_FIN, _SYN, _RST, _PSH, _ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_STATE_FLAGS: dict[str, tuple[int, int]] = {
    "SF": (_SYN | _ACK | _PSH | _FIN, _SYN | _ACK | _PSH | _FIN),
    "S0": (_SYN, 0),
    "REJ": (_SYN, _RST | _ACK),
    "RSTOS0": (_SYN | _RST, 0),
    "SH": (_SYN | _FIN, 0),
    "RSTRH": (_ACK, _SYN | _ACK | _RST),
    "SHR": (_ACK, _SYN | _ACK | _FIN),
    "RSTO": (_SYN | _ACK | _RST, _SYN | _ACK),
    "RSTR": (_SYN | _ACK, _SYN | _ACK | _RST),
    "S2": (_SYN | _ACK | _FIN, _SYN | _ACK),
    "S3": (_SYN | _ACK, _SYN | _ACK | _FIN),
    "S1": (_SYN | _ACK, _SYN | _ACK),
    "OTH": (_ACK, _ACK),
}
"""Zeek state -> (flags to server, flags to client) that map back to the same state."""

_STATES = pa.array(list(_STATE_FLAGS), pa.string())
_HEX = pa.array([f"{i:02x}" for i in range(256)], pa.string())


def _iso(us: pa.Array) -> pa.Array:
    """Microseconds since the epoch -> ``2024-03-01T00:00:00.123456+0000`` (eve's layout)."""
    ts = pc.cast(us, pa.timestamp("us"))
    return pc.binary_join_element_wise(pc.strftime(ts, format="%Y-%m-%dT%H:%M:%S"), pa.scalar("+0000"), "")


def _ip_bytes(b: pa.Array, p: pa.Array) -> pa.Array:
    return pc.add(pc.fill_null(b, 0), pc.multiply(pc.fill_null(p, 0), HEADER_BYTES))


def _json_str(a: pa.Array) -> pa.Array:
    """Quote text for JSON (the simulator's values need only backslash and quote escaped)."""
    a = pc.replace_substring(pc.replace_substring(a, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise(pa.scalar('"'), a, pa.scalar('"'), "")


def _field(name: str, value: pa.Array, *, first: bool = False) -> pa.Array:
    """``,"name":value``; null values drop the field (as Suricata leaves unknowns out)."""
    lead = ("{" if first else ",") + f'"{name}":'
    frag = pc.binary_join_element_wise(pa.scalar(lead), value, "")
    return frag if first else pc.fill_null(frag, "")


class SuricataEveWriter:
    """eve.json with one ``flow`` event per flow."""

    def __init__(self, path: Path, ctx: dict) -> None:
        self.path = path
        self.rng = np.random.default_rng(ctx.get("seed", 0))
        self.fh = open(path, "wb")
        self.next_id = int(self.rng.integers(1, 1 << 40))

    def write(self, table: pa.Table) -> None:
        n = table.num_rows
        if n == 0:
            return

        def col(name: str) -> pa.Array:
            return table.column(name).combine_chunks()

        start_us = col("ts").cast(pa.int64())
        dur_us = pc.cast(pc.round(pc.multiply(pc.fill_null(col("duration_s"), 0.0), 1e6)), pa.int64())
        end_us = pc.add(start_us, dur_us)
        proto = col("proto")
        is_tcp = pc.fill_null(pc.equal(proto, "tcp"), False)
        sidx = pc.fill_null(pc.index_in(col("conn_state"), _STATES), _STATES.index("OTH"))
        ts_flags = pa.array([v[0] for v in _STATE_FLAGS.values()]).take(sidx)
        tc_flags = pa.array([v[1] for v in _STATE_FLAGS.values()]).take(sidx)
        both = pc.bit_wise_or(ts_flags, tc_flags)
        tcp = pc.binary_join_element_wise(
            pa.scalar('{"tcp_flags":"'),
            _HEX.take(both),
            pa.scalar('","tcp_flags_ts":"'),
            _HEX.take(ts_flags),
            pa.scalar('","tcp_flags_tc":"'),
            _HEX.take(tc_flags),
            pa.scalar('"}'),
            "",
        )
        tcp = pc.if_else(is_tcp, tcp, pa.scalar(None, pa.string()))
        ids = pa.array(np.arange(self.next_id, self.next_id + n, dtype=np.int64)).cast(pa.string())
        self.next_id += n
        start = _iso(start_us)
        flow = pc.binary_join_element_wise(
            pa.scalar('{"pkts_toserver":'),
            pc.fill_null(col("packets_out"), 0).cast(pa.string()),
            pa.scalar(',"pkts_toclient":'),
            pc.fill_null(col("packets_in"), 0).cast(pa.string()),
            pa.scalar(',"bytes_toserver":'),
            _ip_bytes(col("bytes_out"), col("packets_out")).cast(pa.string()),
            pa.scalar(',"bytes_toclient":'),
            _ip_bytes(col("bytes_in"), col("packets_in")).cast(pa.string()),
            pa.scalar(',"start":"'),
            start,
            pa.scalar('","end":"'),
            _iso(end_us),
            pa.scalar('","age":'),
            pc.divide(dur_us, 1_000_000).cast(pa.string()),
            pa.scalar(',"state":"closed","reason":"timeout","alerted":false}'),
            "",
        )
        parts = [
            _field("timestamp", _json_str(start), first=True),
            _field("flow_id", ids),
            _field("event_type", pa.array(['"flow"'] * n, pa.string())),
            _field("src_ip", _json_str(ip_text(col("src_ip"), col("src_ip6")))),
            _field("src_port", col("src_port").cast(pa.string())),
            _field("dest_ip", _json_str(ip_text(col("dst_ip"), col("dst_ip6")))),
            _field("dest_port", col("dst_port").cast(pa.string())),
            _field("proto", _json_str(pc.utf8_upper(proto))),
            _field("app_proto", _json_str(col("service"))),
            _field("flow", flow),
            _field("tcp", tcp),
            _field("host", _json_str(col("sensor"))),
            pa.array(["}"] * n, pa.string()),
        ]
        lines = pc.binary_join_element_wise(*parts, "")
        if "corrupt" in table.column_names:
            corrupt = np.asarray(table.column("corrupt").fill_null(0).to_numpy(zero_copy_only=False))
            lines = _corrupt(lines, corrupt, self.rng, _garble)
        self.fh.write(_join_lines(lines))

    def close(self) -> None:
        self.fh.close()


def _garble(line: str, rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        return line.replace('"src_ip":"', '"src_ip":"300.1.', 1)  # an impossible address
    return line.replace('"start":"', '"start":"not a time ', 1)


register_writer(WriterSpec("suricata_eve", "json", SuricataEveWriter, "Suricata eve.json flow events"))

__all__ = ["SuricataEveWriter", "HEADER_BYTES"]
