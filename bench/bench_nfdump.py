"""sightline vs nfdump 1.7 on the same flows: IOC match + per-pair aggregation, 5,000 indicators.

The flows of the bench store (``cached_store(N)``) are exported as NetFlow v5 over loopback UDP
to Debian's ``nfcapd`` (LZ4 files), then ``nfdump -r FILE -f FILTER -A srcip,dstip`` runs with an
``ip in [...]`` filter of the 5,000 indicators.  sightline runs on its own Parquet store of the
same flows, two ways:

- ``ioc_sql``: the bench's stand-in query (semi-join + GROUP BY src, dst), the same job as nfdump's;
- ``run_detection``: sightline's real detection stage (indicator match on both sides, validity
  windows, per-contact aggregation, intervals, host -> org, baseline, popularity) -- more work
  than nfdump does, reported so nobody mistakes the stand-in for the product.

Usage: python -m bench.bench_nfdump --flows N
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.bench_data import cached_store, emit, indicators, orgs, peak_rss_mb
from bench.bench_match import IOC_SQL, best_of
from bench.bench_netflow import _send, _udp_rx_queue
from sightline.detect import run_detection
from sightline.engines import get_engine
from sightline.ingest.netflow import NetflowDecoder
from sightline.ingest.nfexport import V5_RECORD
from sightline.store import FlowWriter, Workspace

_HDR = np.dtype(
    [
        ("version", ">u2"),
        ("count", ">u2"),
        ("uptime", ">u4"),
        ("secs", ">u4"),
        ("nsecs", ">u4"),
        ("seq", ">u4"),
        ("etype", "u1"),
        ("eid", "u1"),
        ("sampling", ">u2"),
    ]
)
_REC = V5_RECORD
_PER = 30  # records per v5 packet (the protocol's maximum)
_UPTIME_MS = 1_000_000_000  # exporter uptime: large enough that no flow start precedes boot


def _ipv4_flows(files: list[str]) -> dict[str, np.ndarray]:
    """The store's IPv4 flows as numpy columns (v5 carries IPv4 only)."""
    cols = ["ts", "duration_s", "src_ip", "dst_ip", "src_port", "dst_port", "proto", "bytes_out", "packets_out"]
    t = pa.concat_tables([pq.read_table(f, columns=cols) for f in files])
    t = t.filter(pc.and_(pc.is_valid(t.column("src_ip")), pc.is_valid(t.column("dst_ip"))))
    proto = pc.dictionary_encode(t.column("proto")).combine_chunks()
    pmap = np.array([{"tcp": 6, "udp": 17, "icmp": 1}.get(v, 0) for v in proto.dictionary.to_pylist()], np.uint8)
    start = t.column("ts").cast(pa.int64()).to_numpy() // 1000
    dur = np.round(pc.fill_null(t.column("duration_s"), 0.0).to_numpy() * 1000).astype(np.int64)

    def num(c: str) -> np.ndarray:
        return pc.fill_null(t.column(c), 0).to_numpy()

    return {
        "src": num("src_ip"),
        "dst": num("dst_ip"),
        "sp": num("src_port"),
        "dp": num("dst_port"),
        "proto": pmap[np.asarray(proto.indices.fill_null(0))],
        "bytes": num("bytes_out"),
        "pkts": num("packets_out"),
        "start": start,
        "end": start + dur,
    }


def encode_v5(c: dict[str, np.ndarray]) -> tuple[memoryview, int, int]:
    """All flows as back-to-back full v5 packets in one buffer (vectorized); return (buffer, packets, size)."""
    order = np.argsort(c["end"], kind="stable")  # exporters send flows as they expire
    n = len(order)
    npk = -(-n // _PER)
    pk = np.zeros(npk, dtype=np.dtype([("h", _HDR), ("r", _REC, (_PER,))]))
    rec = np.zeros(npk * _PER, dtype=_REC)
    idx = order
    export_ms = np.zeros(npk * _PER, np.int64)
    ends = np.full(npk * _PER, c["end"][idx].max(), np.int64)
    ends[:n] = c["end"][idx]
    pk_export = ends.reshape(npk, _PER).max(axis=1) + 1000
    export_ms[:] = np.repeat(pk_export, _PER)
    rec["src"][:n], rec["dst"][:n] = c["src"][idx], c["dst"][idx]
    rec["pkts"][:n] = np.minimum(c["pkts"][idx], 0xFFFFFFFF)
    rec["bytes"][:n] = np.minimum(c["bytes"][idx], 0xFFFFFFFF)
    rec["first"][:n] = (_UPTIME_MS - (export_ms[:n] - c["start"][idx])) & 0xFFFFFFFF
    rec["last"][:n] = (_UPTIME_MS - (export_ms[:n] - c["end"][idx])) & 0xFFFFFFFF
    rec["sp"][:n], rec["dp"][:n] = c["sp"][idx], c["dp"][idx]
    rec["proto"][:n] = c["proto"][idx]
    rec["flags"][:n] = np.where(c["proto"][idx] == 6, 0x1B, 0)
    pk["r"] = rec.reshape(npk, _PER)
    counts = np.full(npk, _PER)
    counts[-1] = n - (npk - 1) * _PER
    pk["h"]["version"], pk["h"]["count"], pk["h"]["uptime"] = 5, counts, _UPTIME_MS
    pk["h"]["secs"], pk["h"]["nsecs"] = pk_export // 1000, (pk_export % 1000) * 1_000_000
    pk["h"]["seq"] = (np.arange(npk, dtype=np.int64) * _PER) & 0xFFFFFFFF
    return memoryview(pk.tobytes()), npk, pk.dtype.itemsize


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _datagrams(buf: memoryview, npk: int, size: int, n_last: int) -> list[memoryview]:
    """The export packets (the last one is partial: cut to its real length)."""
    dgrams = [buf[i * size : (i + 1) * size] for i in range(npk - 1)]
    dgrams.append(buf[(npk - 1) * size : (npk - 1) * size + _HDR.itemsize + n_last * _REC.itemsize])
    return dgrams


def netflow_store(dgrams: list[memoryview], root: Path) -> tuple[Workspace, float]:
    """What sightline's collector stores of the same export: the packets go through its NetFlow
    decoder and flow writer (no UDP: the collector's socket path is measured in bench_netflow).
    Returns the workspace and the seconds taken."""
    ws = Workspace(root)
    ws.ensure()
    t0 = time.perf_counter()
    dec = NetflowDecoder(lambda pos, reason, raw: None, source_file="bench-v5-export", sensor="exporter-1")
    w = FlowWriter(ws, "5" * 64, "bench-v5-export", "netflow_v5")
    for i, d in enumerate(dgrams):
        dec.feed(bytes(d), "127.0.0.1", i)
        if dec.pending_records >= 1_000_000:
            w.write(dec.flush())
    w.write(dec.flush())
    w.commit(None)
    return ws, time.perf_counter() - t0


def collect(buf: memoryview, npk: int, size: int, n_last: int, outdir: Path) -> tuple[float, Path]:
    """Send the packets to a fresh nfcapd (LZ4 output); return (seconds, the nfcapd file)."""
    port = _free_udp_port()
    proc = subprocess.Popen(
        ["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(outdir), "-t", "86400", "-y", "-B", str(8 << 20)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(2000):  # until nfcapd has bound its port
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", port))
                time.sleep(0.005)
            except OSError:
                break
        dgrams = _datagrams(buf, npk, size, n_last)
        t0 = time.perf_counter()
        _send(port, dgrams)
        while _udp_rx_queue(port):
            time.sleep(0.001)
        dt = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    files = sorted(p for p in outdir.rglob("nfcapd.*") if p.is_file())
    if len(files) != 1:
        raise RuntimeError(f"expected one nfcapd file in {outdir}, found {[p.name for p in files]}")
    return dt, files[0]


def _nfdump_flows(path: Path) -> int:
    out = subprocess.run(["nfdump", "-r", str(path), "-I"], capture_output=True, text=True, check=True).stdout
    return int(next(ln.split(":")[1] for ln in out.splitlines() if ln.startswith("Flows:")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=20_000_000)
    ap.add_argument("--indicators", type=int, default=5000)
    a = ap.parse_args()
    if shutil.which("nfcapd") is None or shutil.which("nfdump") is None:
        emit([{"bench": "nfdump_compare", "skipped": "nfdump not installed (apt-get install -y nfdump)"}])
        return
    ws = cached_store(a.flows)
    files = ws.flow_files()
    ind = indicators(a.indicators)
    c = _ipv4_flows(files)
    n = len(c["src"])
    buf, npk, size = encode_v5(c)
    del c
    out: dict = {"bench": "nfdump_compare", "flows": n, "indicators": ind.num_rows}
    with tempfile.TemporaryDirectory(prefix="sl-nfcapd-") as d:
        send_s, nffile = collect(buf, npk, size, n - (npk - 1) * _PER, Path(d))
        got = _nfdump_flows(nffile)
        out.update(
            export_flows_per_s=round(n / send_s),
            nfcapd_flows=got,
            nfcapd_lost=n - got,
            nfcapd_lz4_bytes_per_flow=round(nffile.stat().st_size / max(got, 1), 1),
        )
        filt = Path(d) / "filter.txt"
        filt.write_text("ip in [ " + " ".join(ind.column("value").to_pylist()) + " ]\n")
        best = float("inf")
        for _ in range(2):  # warm page cache on the second run, as for DuckDB
            with open(Path(d) / "pairs.csv", "w") as fh:
                t0 = time.perf_counter()
                subprocess.run(
                    ["nfdump", "-r", str(nffile), "-f", str(filt), "-A", "srcip,dstip", "-q", "-o", "csv", "-N"],
                    stdout=fh,
                    check=True,
                )
                best = min(best, time.perf_counter() - t0)
        lines = [ln for ln in (Path(d) / "pairs.csv").read_text().splitlines() if ln and ln[0].isdigit()]
        out.update(nfdump_s=round(best, 2), nfdump_flows_per_s=round(got / best), nfdump_pairs=len(lines))
        # the same records as sightline stores them from the export: bytes per flow against
        # nfcapd's file, and the same query on them (the bench store above carries more: µs
        # times, full-precision durations, both directions' counters)
        nws, dec_s = netflow_store(_datagrams(buf, npk, size, n - (npk - 1) * _PER), Path(d) / "ws")
        del buf
        nfiles = nws.flow_files()
        eng = get_engine("duckdb", threads=2)
        eng.register_parquet("flows", nfiles)
        eng.register_table("indicators", ind)
        t_same, res_same = best_of(lambda: eng.query(IOC_SQL), 3)
        eng.close()
        same_rate = got / t_same
        out.update(
            same_records_decode_store_s=round(dec_s, 1),
            same_records_bytes_per_flow=round(sum(os.path.getsize(f) for f in nfiles) / got, 1),
            same_records_ioc_sql_s=round(t_same, 3),
            same_records_ioc_sql_flows_per_s=round(same_rate),
            same_records_ioc_sql_pairs=res_same.num_rows,
            ratio_same_records_vs_nfdump=round(same_rate / out["nfdump_flows_per_s"], 2),
        )
    eng = get_engine("duckdb", threads=2)
    eng.register_parquet("flows", files)
    eng.register_table("indicators", ind)
    t_ioc, res = best_of(lambda: eng.query(IOC_SQL), 2)
    eng.close()
    eng = get_engine("duckdb", threads=2)
    t0 = time.perf_counter()
    det = run_detection(eng, files, ind, orgs())
    t_det = time.perf_counter() - t0
    eng.close()
    ioc_rate, det_rate = a.flows / t_ioc, a.flows / t_det
    out.update(
        sightline_ioc_sql_s=round(t_ioc, 2),
        sightline_ioc_sql_flows_per_s=round(ioc_rate),
        sightline_ioc_sql_pairs=res.num_rows,
        sightline_detect_s=round(t_det, 2),
        sightline_detect_flows_per_s=round(det_rate),
        sightline_detect_matched_flows=det.matched_flows,
        ratio_ioc_sql_vs_nfdump=round(ioc_rate / out["nfdump_flows_per_s"], 2),
        ratio_detect_vs_nfdump=round(det_rate / out["nfdump_flows_per_s"], 2),
        target_ratio=10,
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
    emit([out])


if __name__ == "__main__":
    os.environ.setdefault("TZ", "UTC")
    main()
