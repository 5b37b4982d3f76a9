"""Spark local[2] against DuckDB: the detection SQL on the same N stored flows and the same cores.

DuckDB runs with 2 threads, Spark with ``local[2]``; both run the whole detection stage
(``run_detection``) on the bench store and must find the same matched flows and contacts.
Spark runs twice in one session: the first run pays for the JVM's warm-up (class loading,
JIT), the second is what a long-lived session (``sightline serve``, ``watch``) sees.  CPU
seconds are given beside wall seconds: on a shared machine the wall clock measures the
neighbours too.

Usage: python -m bench.bench_spark --flows N [--partitions 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from bench.bench_data import cached_store, emit, indicators, orgs, peak_rss_mb
from sightline.detect import run_detection
from sightline.engines import get_engine


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a process (the Spark JVM) so far, all threads (JIT and GC included)."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=10_000_000)
    ap.add_argument("--partitions", default="4", help="spark.sql.shuffle.partitions")
    a = ap.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from sightline.engines.spark import SparkEngine

    ws = cached_store(a.flows)
    files = ws.flow_files()
    ind, org = indicators(5000), orgs()

    duck = get_engine("duckdb", threads=2)
    c0, t0 = _self_cpu(), time.perf_counter()
    det_d = run_detection(duck, files, ind, org)
    d_s, d_cpu = time.perf_counter() - t0, _self_cpu() - c0
    duck.close()
    d_load = os.getloadavg()[0]

    t0 = time.perf_counter()
    eng = SparkEngine(master="local[2]", conf={"spark.sql.shuffle.partitions": a.partitions})
    startup = time.perf_counter() - t0
    jvm = eng.spark.sparkContext._gateway.proc.pid  # type: ignore[union-attr]
    out = []
    for run in ("cold", "warm"):
        c0, t0 = _proc_cpu(jvm), time.perf_counter()
        det = run_detection(eng, files, ind, org)
        dt, cpu = time.perf_counter() - t0, _proc_cpu(jvm) - c0
        same = det.matched_flows == det_d.matched_flows and det.contacts.num_rows == det_d.contacts.num_rows
        out.append(
            {
                "bench": "spark_local2_detect",
                "flows": a.flows,
                "run": run,
                "shuffle_partitions": int(a.partitions),
                "seconds": round(dt, 2),
                "cpu_s": round(cpu, 1),
                "flows_per_s": round(a.flows / dt),
                "duckdb_seconds": round(d_s, 2),
                "duckdb_cpu_s": round(d_cpu, 1),
                "ratio_to_duckdb": round(dt / d_s, 2),
                "cpu_ratio_to_duckdb": round(cpu / d_cpu, 2),
                "target_ratio": 3,
                "same_results": same,
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "duckdb_load_avg_1m": round(d_load, 2),
                "startup_s": round(startup, 1),
                "matched_flows": det.matched_flows,
                "stages": {t["stage"]: t["seconds"] for t in det.timings},
                "driver_peak_rss_mb": round(peak_rss_mb(), 1),
            }
        )
        eng.close()
    eng.spark.stop()
    emit(out)


if __name__ == "__main__":
    main()
