"""pcap -> flows: Zeek-like flow assembly and conn_state, truncation, windows."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pyarrow as pa
import pytest

import sightline.ingest.pcap as pcapmod
from sightline.ingest.base import ReaderContext
from sightline.ingest.pcap import read_pcap_flows

from .datafiles import SLIPS

DATA = SLIPS  # real captures, tests/data/SOURCES.md


def _ip(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def _tcp(src, dst, sp, dp, flags, payload=b""):
    tcp = struct.pack(">HHIIBBHHH", sp, dp, 0, 0, 5 << 4, flags, 1024, 0, 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, _ip(src), _ip(dst)) + tcp
    return b"\x00" * 12 + b"\x08\x00" + ip


def _udp(src, dst, sp, dp, payload=b""):
    udp = struct.pack(">HHHH", sp, dp, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, _ip(src), _ip(dst)) + udp
    return b"\x00" * 12 + b"\x08\x00" + ip


def _pcap(frames: list[tuple[float, bytes]]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for t, f in frames:
        out.append(struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)), len(f), len(f)) + f)
    return b"".join(out)


def _flows(data: bytes) -> tuple[list[dict], ReaderContext]:
    ctx = ReaderContext(Path("t.pcap"), io.BytesIO(data))
    b = list(read_pcap_flows(ctx))
    return (pa.Table.from_batches(b).to_pylist() if b else []), ctx


A, B = "10.0.0.1", "198.51.100.7"
S, SA, AK, F, R, PA = 0x02, 0x12, 0x10, 0x11, 0x04, 0x18

CASES = [
    ("S0", [(A, B, S)]),
    ("REJ", [(A, B, S), (B, A, R | AK)]),
    ("SF", [(A, B, S), (B, A, SA), (A, B, AK), (A, B, PA), (A, B, F), (B, A, F), (A, B, AK)]),
    ("S1", [(A, B, S), (B, A, SA), (A, B, AK)]),
    ("RSTO", [(A, B, S), (B, A, SA), (A, B, AK), (A, B, R)]),
    ("RSTR", [(A, B, S), (B, A, SA), (A, B, AK), (B, A, R)]),
    ("S2", [(A, B, S), (B, A, SA), (A, B, F)]),
    ("SH", [(A, B, S), (A, B, F)]),
    ("OTH", [(A, B, AK), (B, A, AK)]),
]


@pytest.mark.parametrize("state,pkts", CASES, ids=[c[0] for c in CASES])
def test_conn_state_like_zeek(state, pkts):
    frames = []
    for i, (s, d, fl) in enumerate(pkts):
        sp, dp = (40000, 443) if s == A else (443, 40000)
        frames.append((1000.0 + i * 0.01, _tcp(s, d, sp, dp, fl, b"x" * 10 if fl == PA else b"")))
    rows, ctx = _flows(_pcap(frames))
    assert len(rows) == 1 and ctx.bad_count == 0
    assert rows[0]["conn_state"] == state
    assert rows[0]["src_ip"] == int.from_bytes(_ip(A), "big") and rows[0]["dst_port"] == 443


def test_bytes_are_payload_per_direction_and_idle_timeout_splits():
    frames = [
        (1.0, _udp(A, B, 5353, 53, b"q" * 30)),
        (1.1, _udp(B, A, 53, 5353, b"r" * 100)),
        (1.2 + 61, _udp(A, B, 5353, 53, b"q" * 7)),
    ]  # > 60 s later: a new UDP flow
    rows, _ = _flows(_pcap(frames))
    assert [(r["bytes_out"], r["bytes_in"], r["packets_out"], r["packets_in"], r["conn_state"]) for r in rows] == [
        (30, 100, 1, 1, "SF"),
        (7, 0, 1, 0, "S0"),
    ]


def test_syn_after_fin_starts_a_new_connection():
    pk = [(A, B, S), (B, A, SA), (A, B, F), (B, A, F), (A, B, S)]
    frames = [
        (10.0 + i, _tcp(s, d, 40000 if s == A else 443, 443 if s == A else 40000, fl))
        for i, (s, d, fl) in enumerate(pk)
    ]
    rows, _ = _flows(_pcap(frames))
    assert [r["conn_state"] for r in rows] == ["SF", "S0"]


def test_windows_give_the_same_flows_as_one_pass(monkeypatch):
    frames = []
    for k in range(40):
        for i in range(5):
            frames.append(
                (
                    100.0 + k * 0.5 + i * 0.01,
                    _udp(A, B, 1000 + k, 53, b"a" * i) if i % 2 == 0 else _udp(B, A, 53, 1000 + k, b"b"),
                )
            )
    data = _pcap(frames)
    whole, _ = _flows(data)
    monkeypatch.setattr(pcapmod, "WINDOW_PACKETS", 7)
    windowed, _ = _flows(data)
    key = lambda r: (r["ts"], r["src_port"])  # noqa: E731
    assert sorted(windowed, key=key) == sorted(whole, key=key) and len(whole) == 40


def test_truncated_pcap_keeps_flows_and_quarantines_the_cut():
    data = _pcap([(1.0, _udp(A, B, 1, 2, b"x")), (2.0, _udp(A, B, 3, 4, b"y"))])
    rows, ctx = _flows(data[:-5])
    assert len(rows) == 1 and ctx.bad_count == 1 and ctx._bad[0][1] == "offset"
    rows, ctx = _flows(data[:30] + b"\xff" * 16)  # corrupt record header with a huge length
    assert rows == [] and ctx.bad_count >= 1


def test_real_pcaps():
    rows, _ = _flows((DATA / "test8-malicious.pcap").read_bytes())
    assert len(rows) == 1 and rows[0]["proto"] == "udp" and rows[0]["packets_out"] + rows[0]["packets_in"] == 15
    rows, _ = _flows((DATA / "test12-icmp-portscan.pcap").read_bytes())
    assert {r["proto"] for r in rows} == {"icmp"} and {r["src_port"] for r in rows} == {8}


HISTORY_CASES = [
    ("S0", "S"),
    ("REJ", "Sr"),
    ("SF", "ShADFf"),
    ("S1", "ShA"),
    ("RSTO", "ShAR"),
    ("RSTR", "ShAr"),
    ("SH", "SF"),
    ("OTH", "Aa"),
]


@pytest.mark.parametrize("state,history", HISTORY_CASES, ids=[c[0] for c in HISTORY_CASES])
def test_history_letters_like_zeek(state, history):
    """Zeek's history letters in the order they first occurred (uppercase: originator)."""
    pkts = dict(CASES)[state]
    frames = [
        (
            1000.0 + i * 0.01,
            _tcp(s, d, 40000 if s == A else 443, 443 if s == A else 40000, fl, b"x" * 10 if fl == PA else b""),
        )
        for i, (s, d, fl) in enumerate(pkts)
    ]
    rows, _ = _flows(_pcap(frames))
    assert rows[0]["history"] == history


def test_history_marks_a_flip_and_a_capture_that_began_mid_session(tmp_path: Path):
    from sightline.ingest import ingest_paths
    from sightline.store import Workspace, read_parts

    frames = [
        # the SYN was missed: the SYN-ACK comes first, its receiver is the originator ('^')
        (1.0, _tcp(B, A, 443, 40000, SA)),
        (1.1, _tcp(A, B, 40000, 443, AK)),
        (1.2, _tcp(A, B, 40000, 443, PA, b"q" * 9)),
        (1.3, _tcp(B, A, 443, 40000, PA, b"r" * 90)),
        # a session older than the capture: the server's data first, no SYN at all
        (2.0, _tcp(B, A, 443, 40001, PA, b"r" * 50)),
        (2.1, _tcp(A, B, 40001, 443, AK)),
        (3.0, _udp(A, B, 5353, 53, b"q" * 30)),
        (3.1, _udp(B, A, 53, 5353, b"r" * 60)),
    ]
    pcap = tmp_path / "t.pcap"
    pcap.write_bytes(_pcap(frames))
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [pcap])
    got = read_parts(ws.flow_files()).sort_by("ts").to_pylist()
    assert [(r["src_port"], r["dst_port"], r["history"]) for r in got] == [
        (40000, 443, "^hADd"),
        (443, 40001, "Da"),
        (5353, 53, "Dd"),
    ]
