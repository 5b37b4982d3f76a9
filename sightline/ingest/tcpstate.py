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

Zeek's ``history`` letters (uppercase: the originator, lowercase: the responder; ``S``/``s`` a
SYN, ``H``/``h`` a SYN-ACK, ``A``/``a`` a pure ACK, ``D``/``d`` payload, ``F``/``f`` a FIN,
``R``/``r`` a RST, a leading ``^``: the sensor flipped the roles) are built by
:func:`history_text` from where each letter first occurred: per packet in the pcap reader, from
the per-direction flags in :func:`history_biflow` (Suricata: which letters, not their order).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
        nt & (resp_pkts > 0),
        nt,
        half & rrst,
        half & orst,
        half & ofin,
        half,
        rhalf & rrst,
        rhalf & rfin,
        est & orst,
        est & rrst,
        est & ofin & rfin,
        est & ofin,
        est & rfin,
        est,
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


NEVER = np.iinfo(np.int64).max
"""Position of a history letter that never occurred."""


def history_text(first: np.ndarray, letters: bytes, flipped: np.ndarray | None = None) -> pa.Array:
    """Zeek ``history`` strings, the letters in the order they first occurred.

    ``first``: one row per flow, one column per letter of ``letters``: where (packet index, or
    any ordering key) the letter first occurred, :data:`NEVER` where it did not; ties keep the
    order of ``letters``.  ``flipped``: flows whose roles were flipped get a leading ``^``.
    A flow without any letter gets null (nothing known), not an empty history.
    """
    n, k = first.shape
    if flipped is not None:
        first = np.hstack([np.where(flipped, -1, NEVER).astype(np.int64)[:, None], first])
        letters = b"^" + letters
        k += 1
    if n == 0:
        return pa.array([], pa.string())
    order = np.argsort(first, axis=1, kind="stable")
    present = np.take_along_axis(first, order, axis=1) < NEVER
    codes = np.where(present, np.frombuffer(letters, np.uint8)[order], 0).astype(np.uint8)
    # absent letters sort last and are NUL bytes, which a fixed-width bytes value drops
    text = pa.array(np.ascontiguousarray(codes).view(f"S{k}").ravel(), pa.binary()).cast(pa.string())
    return pc.if_else(pa.array(present.any(axis=1)), text, pa.scalar(None, pa.string()))


_BIFLOW_LETTERS = b"ShsAaFfRr"


def history_biflow(is_tcp: np.ndarray, orig: np.ndarray, resp: np.ndarray, known: np.ndarray) -> pa.Array:
    """``history`` letters from the cumulative flags of each direction (Suricata's
    ``tcp_flags_ts``/``tcp_flags_tc``): ``S`` when the originator sent a SYN, ``h``/``s`` when the
    responder sent a SYN with/without ACK, ``A``/``a``, ``F``/``f``, ``R``/``r`` when that direction
    sent the flag.  Flags say which letters, not in what order: the order is fixed.  Null where
    ``known`` is false (no flags reported) or not TCP."""
    o = orig.astype(np.int64)
    r = resp.astype(np.int64)
    ok = is_tcp.astype(bool) & known.astype(bool)
    cols = [
        (o & SYN) != 0,
        ((r & SYN) != 0) & ((r & ACK) != 0),
        ((r & SYN) != 0) & ((r & ACK) == 0),
        (o & ACK) != 0,
        (r & ACK) != 0,
        (o & FIN) != 0,
        (r & FIN) != 0,
        (o & RST) != 0,
        (r & RST) != 0,
    ]
    first = (
        np.stack([np.where(c & ok, i, NEVER) for i, c in enumerate(cols)], axis=1)
        if len(o)
        else np.zeros((0, len(cols)), np.int64)
    )
    return history_text(first, _BIFLOW_LETTERS)


__all__ = [
    "conn_state_biflow",
    "conn_state_uniflow",
    "history_text",
    "history_biflow",
    "NEVER",
    "FIN",
    "SYN",
    "RST",
    "PSH",
    "ACK",
]
