"""Zeek-style ``conn_state`` from cumulative TCP flags, vectorized.

Flow exporters (NetFlow/IPFIX, Suricata, our pcap reader) report the OR of the TCP flags
seen per direction.  This module maps them to Zeek's connection states so that detections
see one vocabulary whatever the source.

Bidirectional sources (IPFIX biflow, Suricata, pcap): ``orig`` = flags sent by the
originator, ``resp`` = flags sent by the responder.

=====================================================  ==========
condition (first match wins)                            state
=====================================================  ==========
not TCP, responder sent packets                        SF
not TCP, responder sent nothing                        S0
orig SYN, resp no SYN, resp RST                        REJ
orig SYN, resp no SYN, orig RST                        RSTOS0
orig SYN, resp no SYN, orig FIN                        SH
orig SYN, resp no SYN                                  S0
orig no SYN, resp SYN, resp RST                        RSTRH
orig no SYN, resp SYN, resp FIN                        SHR
both SYN, orig RST                                     RSTO
both SYN, resp RST                                     RSTR
both SYN, both FIN                                     SF
both SYN, orig FIN                                     S2
both SYN, resp FIN                                     S3
both SYN                                               S1
anything else (mid-stream)                             OTH
=====================================================  ==========

Unidirectional sources (NetFlow v5/v9, IPFIX without reverse fields, nfdump): only one
direction's flags are known, so the mapping is coarser:

=====================================================  ==========
flags of the record (first match wins)                 state
=====================================================  ==========
not TCP, or TCP with no flags reported                 null
SYN and RST, no ACK                                    REJ
SYN only (no ACK, FIN, RST)                            S0
SYN, ACK and FIN                                       SF
SYN, ACK and RST                                       RSTO
SYN and ACK                                            S1
SYN and FIN, no ACK                                    SH
anything else (no SYN: mid-stream ACK/data/FIN/RST)    OTH
=====================================================  ==========
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def _select(conds: list[np.ndarray], names: list[str | None], n: int) -> pa.Array:
    codes = np.full(n, -1, dtype=np.int32)
    done = np.zeros(n, dtype=bool)
    for i, c in enumerate(conds):
        hit = c & ~done
        codes[hit] = i
        done |= hit
    dictionary = pa.array(names, pa.string())
    return dictionary.take(pa.array(codes, mask=codes < 0))


def conn_state_biflow(is_tcp: np.ndarray, orig: np.ndarray, resp: np.ndarray, resp_pkts: np.ndarray) -> pa.Array:
    """Zeek ``conn_state`` for flows where both directions' flags are known."""
    n = len(is_tcp)
    o = orig.astype(np.int64)
    r = resp.astype(np.int64)
    osyn, rsyn = (o & SYN) != 0, (r & SYN) != 0
    ofin, rfin = (o & FIN) != 0, (r & FIN) != 0
    orst, rrst = (o & RST) != 0, (r & RST) != 0
    t = is_tcp.astype(bool)
    nt = ~t
    half = t & osyn & ~rsyn
    rhalf = t & ~osyn & rsyn
    est = t & osyn & rsyn
    conds = [
        nt & (resp_pkts > 0), nt,
        half & rrst, half & orst, half & ofin, half,
        rhalf & rrst, rhalf & rfin,
        est & orst, est & rrst, est & ofin & rfin, est & ofin, est & rfin, est,
        t,
    ]
    names = ["SF", "S0", "REJ", "RSTOS0", "SH", "S0", "RSTRH", "SHR", "RSTO", "RSTR", "SF", "S2", "S3", "S1", "OTH"]
    return _select(conds, names, n)


def conn_state_uniflow(is_tcp: np.ndarray, flags: np.ndarray) -> pa.Array:
    """Coarse ``conn_state`` for a single direction's cumulative TCP flags (see module doc)."""
    n = len(is_tcp)
    f = flags.astype(np.int64)
    t = is_tcp.astype(bool) & (f != 0)
    syn, ack, fin, rst = (f & SYN) != 0, (f & ACK) != 0, (f & FIN) != 0, (f & RST) != 0
    conds = [
        t & syn & rst & ~ack,
        t & syn & ~ack & ~fin & ~rst,
        t & syn & ack & fin,
        t & syn & ack & rst,
        t & syn & ack,
        t & syn & fin & ~ack,
        t,
    ]
    names = ["REJ", "S0", "SF", "RSTO", "S1", "SH", "OTH"]
    return _select(conds, names, n)


__all__ = ["conn_state_biflow", "conn_state_uniflow", "FIN", "SYN", "RST", "PSH", "ACK"]
