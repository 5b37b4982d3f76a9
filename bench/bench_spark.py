"""Spark local[2]: the detection SQL on N stored flows, by shuffle partitions.

Usage: python -m bench.bench_spark --flows N [--partitions 4,8]
"""

from __future__ import annotations

import argparse
import os
import time

from bench.bench_data import cached_store, emit, indicators, orgs, peak_rss_mb
from sightline.detect import run_detection


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=10_000_000)
    ap.add_argument("--partitions", default="4,16")
    a = ap.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from sightline.engines.spark import SparkEngine

    ws = cached_store(a.flows)
    files = ws.flow_files()
    t0 = time.perf_counter()
    eng = SparkEngine(master="local[2]")
    startup = time.perf_counter() - t0
    out = []
    for p in [int(x) for x in a.partitions.split(",")]:
        eng.spark.conf.set("spark.sql.shuffle.partitions", str(p))
        t0 = time.perf_counter()
        det = run_detection(eng, files, indicators(5000), orgs())
        dt = time.perf_counter() - t0
        out.append(
            {
                "bench": "spark_local2_detect",
                "flows": a.flows,
                "shuffle_partitions": p,
                "seconds": round(dt, 2),
                "flows_per_s": round(a.flows / dt),
                "startup_s": round(startup, 1),
                "matched_flows": det.matched_flows,
                "driver_peak_rss_mb": round(peak_rss_mb(), 1),
            }
        )
        eng.close()
    eng.spark.stop()
    emit(out)


if __name__ == "__main__":
    main()
