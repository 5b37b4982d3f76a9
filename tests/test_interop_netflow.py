"""Interop with real peers: pmacctd exports a generated pcap as NetFlow v5/v9/IPFIX to
sightline's collector and to nfcapd; flow count, bytes and packets must agree."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading

import pyarrow.compute as pc
import pytest

from sightline.ingest.collector import Collector
from sightline.store import Workspace, read_parts

pytestmark = [
    pytest.mark.skipif(shutil.which("pmacctd") is None, reason="pmacctd not installed (apt-get install pmacct)"),
    pytest.mark.skipif(shutil.which("nfcapd") is None, reason="nfcapd not installed (apt-get install nfdump)"),
]


def _traffic_pcap(path, n_flows: int = 50) -> None:
    """n TCP connections (SYN, SYN-ACK, ACK, data, FIN, FIN) between distinct port pairs."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    t0 = 1_700_000_000

    def frame(src, dst, sp, dp, flags, payload=b""):
        tcp = struct.pack(">HHIIBBHHH", sp, dp, 0, 0, 5 << 4, flags, 1024, 0, 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst) + tcp
        return b"\x00" * 12 + b"\x08\x00" + ip

    a, b = bytes([10, 0, 0, 1]), bytes([198, 51, 100, 7])
    for i in range(n_flows):
        sp = 30000 + i
        pk = [
            (a, b, sp, 443, 0x02, b""),
            (b, a, 443, sp, 0x12, b""),
            (a, b, sp, 443, 0x10, b""),
            (a, b, sp, 443, 0x18, b"x" * (10 + i)),
            (a, b, sp, 443, 0x11, b""),
            (b, a, 443, sp, 0x11, b""),
        ]
        for j, (s, d, p1, p2, fl, pl) in enumerate(pk):
            f = frame(s, d, p1, p2, fl, pl)
            t = t0 + i + j * 0.01
            out.append(struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)) % 1_000_000, len(f), len(f)) + f)
    path.write_bytes(b"".join(out))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pmacct_export(tmp_path, pcap, version: int) -> list[bytes]:
    """Run pmacctd on the pcap once and capture the export datagrams it sends."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    conf = tmp_path / f"pm-{version}.conf"
    conf.write_text(
        f"pcap_savefile: {pcap}\npcap_savefile_wait: false\nplugins: nfprobe\n"
        f"nfprobe_receiver: 127.0.0.1:{port}\nnfprobe_version: {version}\n"
    )
    res = subprocess.run(["pmacctd", "-f", str(conf)], timeout=60, capture_output=True, text=True)
    sink.setblocking(False)
    got = []
    while True:
        try:
            got.append(sink.recv(65535))
        except BlockingIOError:
            break
    sink.close()
    if not got:
        pytest.fail(f"pmacctd exported nothing (exit {res.returncode}): {res.stderr[-500:]}")
    return got


def _udp_rx_queue(port: int) -> int:
    """Bytes waiting in the receive queue of the UDP socket bound to ``port`` (Linux /proc)."""
    with open("/proc/net/udp") as fh:
        for line in fh.readlines()[1:]:
            parts = line.split()
            if int(parts[1].split(":")[1], 16) == port:
                return int(parts[4].split(":")[1], 16)
    return 0


def _send(port: int, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))


@pytest.mark.parametrize("version", [5, 9, 10], ids=["v5", "v9", "ipfix"])
def test_pmacct_export_matches_nfcapd(tmp_path, version):
    pcap = tmp_path / "traffic.pcap"
    _traffic_pcap(pcap)
    export = _pmacct_export(tmp_path, pcap, version)

    # sightline's collector gets the export stream ...
    ws = Workspace(tmp_path / "ws")
    col = Collector(ws, [0])
    stop = threading.Event()
    th = threading.Thread(target=col.run, args=(stop,))
    th.start()
    _send(col.bound_ports[0], export)
    stop.set()
    th.join(timeout=60)
    t = read_parts(ws.flow_files())
    ours = (t.num_rows, pc.sum(t["bytes_out"]).as_py(), pc.sum(t["packets_out"]).as_py())

    # ... and so does nfcapd
    port = _free_port()
    d = tmp_path / "nfcapd"
    d.mkdir()
    proc = subprocess.Popen(
        ["nfcapd", "-p", str(port), "-w", str(d), "-t", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(500):  # nfcapd binds asynchronously: wait until its UDP port is taken
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", port))
            except OSError:
                break
            if proc.poll() is not None:
                pytest.fail("nfcapd exited early")
            threading.Event().wait(0.02)
        _send(port, export)
        # SIGTERM makes nfcapd drop what it has not read yet: wait until its socket queue is empty
        for _ in range(1000):
            if _udp_rx_queue(port) == 0:
                break
            threading.Event().wait(0.01)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    out = subprocess.run(
        ["nfdump", "-R", str(d), "-o", "csv"],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, TZ="UTC"),
    ).stdout
    flows, byts, pkts = (int(x) for x in out.strip().splitlines()[-1].split(",")[:3])
    assert ours == (flows, byts, pkts)
    assert flows == 100  # 50 connections, one record per direction
    assert col.stats.quarantined == 0
