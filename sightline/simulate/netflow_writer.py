"""Simulator output as NetFlow v9 / IPFIX export packets in a pcap (writers ``netflow_v9``, ``ipfix``).

The flows are buffered and encoded at :meth:`close` with
:func:`sightline.ingest.nfexport.encode_export` (numpy-packed records).  IPFIX is written as
biflow (RFC 5103 reverse counters), so it carries the same information as Zeek's conn.log
minus ``service``; v9 is unidirectional (``bytes_in``/``packets_in`` are lost, as with real
NetFlow).  Records flagged ``corrupt`` are written with a lying set length so that the reader's
quarantine is exercised.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..ingest.nfexport import encode_export, pcap_of_datagrams
from ..schema import FLOW_SCHEMA
from ..store import atomic_write_bytes
from .writers import WriterSpec, register_writer


class ExportPcapWriter:
    """Buffers flow tables; writes one pcap of export packets on close."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version
        self._tables: list[pa.Table] = []
        self._bad = 0

    def write(self, table: pa.Table) -> None:
        corrupt = np.zeros(table.num_rows, dtype=bool)
        if "corrupt" in table.column_names:
            corrupt = np.asarray(table.column("corrupt").fill_null(0).to_numpy(zero_copy_only=False)) != 0
        self._bad += int(corrupt.sum())
        good = table.filter(pa.array(~corrupt)) if corrupt.any() else table
        self._tables.append(good.select(FLOW_SCHEMA.names).cast(FLOW_SCHEMA))

    def close(self) -> None:
        t = pa.concat_tables(self._tables) if self._tables else FLOW_SCHEMA.empty_table()
        packets = encode_export(t, self.version, biflow=self.version == 10)
        for _ in range(self._bad):  # a data set whose length runs past the end of its packet
            hdr = (
                struct.pack(">HHIII", 10, 16 + 8, 0, 0, 1)
                if self.version == 10
                else struct.pack(">HHIIII", 9, 1, 0, 0, 0, 1)
            )
            packets.append(hdr + struct.pack(">HH", 256, 60000) + b"\0" * 4)
        atomic_write_bytes(self.path, pcap_of_datagrams(packets))


register_writer(
    WriterSpec("netflow_v9", "pcap", lambda p, ctx: ExportPcapWriter(p, 9), "NetFlow v9 export packets in a pcap")
)
register_writer(
    WriterSpec("ipfix", "pcap", lambda p, ctx: ExportPcapWriter(p, 10), "IPFIX (biflow) export packets in a pcap")
)

__all__ = ["ExportPcapWriter"]
