"""Benchmark: NetFlow v9/IPFIX decode rate from pcap, and the live collector vs nfcapd.

Usage: python bench/bench_netflow.py [--records N]
Prints records/s for each measurement and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

from sightline.ingest.base import ReaderContext
from sightline.ingest.collector import Collector
from sightline.ingest.netflow import read_netflow_pcap
from sightline.ingest.nfexport import encode_export, pcap_of_datagrams, synthetic_flows
from sightline.store import Workspace


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def decode_rate(datagrams: list[bytes], n: int, label: str) -> float:
    data = pcap_of_datagrams(datagrams)
    t0 = time.perf_counter()
    ctx = ReaderContext(Path("bench.pcap"), io.BytesIO(data))
    rows = sum(b.num_rows for b in read_netflow_pcap(ctx))
    dt = time.perf_counter() - t0
    assert rows == n, (rows, n)
    rate = rows / dt
    print(f"decode {label:6s} from pcap: {rows:,} records in {dt:.2f}s = {rate:,.0f} records/s")
    return rate


def _udp_rx_queue(port: int) -> int:
    with open("/proc/net/udp") as fh:
        for line in fh.readlines()[1:]:
            parts = line.split()
            if int(parts[1].split(":")[1], 16) == port:
                return int(parts[4].split(":")[1], 16)
    return 0


def _send(port: int, datagrams: list[bytes], pace_every: int = 64, wait_port: int | None = None) -> None:
    """Send on loopback; every ``pace_every`` datagrams wait until the receiver's queue is
    below 128 KiB, so that the measurement is of decoding, not of kernel buffer overflow."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i, d in enumerate(datagrams):
            s.sendto(d, ("127.0.0.1", port))
            if i % pace_every == 0:
                while _udp_rx_queue(wait_port or port) > 128 << 10:
                    time.sleep(0.0005)


def collector_rate(datagrams: list[bytes], n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(Path(d) / "ws")
        col = Collector(ws, [0], batch_records=500_000)
        stop = threading.Event()
        th = threading.Thread(target=col.run, args=(stop,))
        th.start()
        t0 = time.perf_counter()
        _send(col.bound_ports[0], datagrams)
        stop.set()
        th.join()
        dt = time.perf_counter() - t0
        rows = sum(pq.read_metadata(f).num_rows for f in ws.flow_files())
    print(f"sightline collector: {rows:,}/{n:,} records ({n - rows:,} lost) in {dt:.2f}s = {rows / dt:,.0f} records/s")
    return rows / dt


def nfcapd_rate(datagrams: list[bytes], n: int) -> float | None:
    if shutil.which("nfcapd") is None or shutil.which("nfdump") is None:
        print("nfcapd: not installed, skipped")
        return None
    with tempfile.TemporaryDirectory() as d, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        proc = subprocess.Popen(
            ["nfcapd", "-p", str(port), "-w", d, "-t", "3600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while True:  # until nfcapd has bound its port
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", port))
                time.sleep(0.01)
            except OSError:
                break
        t0 = time.perf_counter()
        _send(port, datagrams)
        while _udp_rx_queue(port):
            time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        dt = time.perf_counter() - t0
        out = subprocess.run(
            ["nfdump", "-R", d, "-o", "csv"], capture_output=True, text=True, env=dict(os.environ, TZ="UTC")
        ).stdout
        rows = int(out.strip().splitlines()[-1].split(",")[0])
    print(f"nfcapd (same stream): {rows:,}/{n:,} records ({n - rows:,} lost) in {dt:.2f}s = {rows / dt:,.0f} records/s")
    return rows / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--stream-records", type=int, default=300_000)
    args = ap.parse_args()
    flows = synthetic_flows(args.records, v6_every=10)
    for version, label in ((9, "v9"), (10, "IPFIX")):
        decode_rate(encode_export(flows, version, per_packet=28), args.records, label)
    sflows = flows.slice(0, args.stream_records)
    stream = encode_export(sflows, 9, per_packet=28)
    ours = collector_rate(stream, sflows.num_rows)
    theirs = nfcapd_rate(stream, sflows.num_rows)
    if theirs:
        print(f"collector ratio sightline/nfcapd: {ours / theirs:.2f}")
    print(f"peak RSS: {_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
