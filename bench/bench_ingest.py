"""Zeek TSV conn.log ingest: rows/s and peak RSS (the log is generated with numpy/pyarrow first).

Usage: python -m bench.bench_ingest --rows N
"""

from __future__ import annotations

import argparse
import shutil
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from bench.bench_data import CACHE, emit, ext_pool, peak_rss_mb
from sightline.ingest import ingest_paths
from sightline.simulate.writers.zeek import FIELDS, TYPES
from sightline.store import Workspace


def _dotted(v: np.ndarray) -> pa.Array:
    parts = [pc.cast(pa.array((v >> s) & 255), pa.string()) for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*parts, ".")


def write_conn_log(path, n: int, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    pool = ext_pool()
    chunk = 1_000_000
    with open(path, "wb") as fh:
        fh.write(
            (
                "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
                "#open\t2024-03-01-00-00-00\n#fields\t" + "\t".join(FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n"
            ).encode()
        )
        for off in range(0, n, chunk):
            k = min(chunk, n - off)
            ts = 1_709_251_200 + np.sort(rng.uniform(0, 86_400, k))
            ob = rng.integers(0, 20_000, k)
            rb = rng.integers(0, 200_000, k)
            op = 1 + ob // 1000
            rp = 1 + rb // 1400
            cols = {
                "ts": pc.utf8_slice_codeunits(pc.cast(pa.array(ts), pa.string()), 0, 17),
                "uid": pa.array(np.char.add("C", np.arange(off, off + k).astype("U12"))),
                "oh": _dotted((0x0A000000 + rng.integers(1, 1 << 16, k)).astype(np.uint32)),
                "op": pa.array(rng.integers(1024, 65535, k)),
                "rh": _dotted(pool[np.minimum(rng.zipf(1.3, k) - 1, len(pool) - 1)]),
                "rp": pa.array(rng.choice([443, 80, 53, 22], k)),
                "proto": pa.array(np.where(rng.random(k) < 0.8, "tcp", "udp")),
                "service": pa.array(np.full(k, "-")),
                "duration": pa.array(np.round(rng.exponential(5.0, k), 6)),
                "ob": pa.array(ob),
                "rb": pa.array(rb),
                "state": pa.array(rng.choice(np.array(["SF", "S0", "REJ", "RSTO"]), k)),
                "lo": pa.array(np.full(k, "-")),
                "lr": pa.array(np.full(k, "-")),
                "mb": pa.array(np.zeros(k, np.int64)),
                "hist": pa.array(np.full(k, "ShADadFf")),
                "opk": pa.array(op),
                "oib": pa.array(ob + 40 * op),
                "rpk": pa.array(rp),
                "rib": pa.array(rb + 40 * rp),
                "tp": pa.array(np.full(k, "(empty)")),
            }
            pcsv.write_csv(
                pa.table(cols), fh, pcsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
            )
        fh.write(b"#close\t2024-03-02-00-00-00\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    n = ap.parse_args().rows
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / f"conn-{n}.log"
    if not log.exists():
        write_conn_log(str(log) + ".tmp", n)
        shutil.move(str(log) + ".tmp", log)
    root = CACHE / f"ingest-ws-{n}"
    shutil.rmtree(root, ignore_errors=True)
    ws = Workspace(root)
    ws.ensure()
    t0 = time.perf_counter()
    s = ingest_paths(ws, [log])
    dt = time.perf_counter() - t0
    rows = ws.counts()["flows"]
    size = sum(p.stat().st_size for p in (root / "flows").rglob("*.parquet"))
    emit(
        [
            {
                "bench": "zeek_tsv_ingest",
                "rows": rows,
                "quarantined": ws.counts()["quarantined"],
                "seconds": round(dt, 2),
                "rows_per_s": round(rows / dt),
                "target_rows_per_s": 1_500_000,
                "log_bytes": log.stat().st_size,
                "store_bytes_per_flow": round(size / max(rows, 1), 2),
                "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        ]
    )
    shutil.rmtree(root, ignore_errors=True)
    del s


if __name__ == "__main__":
    main()
