"""`hunt` detection stage end to end on the stored flows (DuckDB): wall time and peak RSS.

Usage: python -m bench.bench_hunt --flows N [--engine duckdb|spark]
"""

from __future__ import annotations

import argparse
import time

from bench.bench_data import cached_store, emit, indicators, orgs, peak_rss_mb
from sightline.pipeline import detect_workspace
from sightline.store import atomic_write_parquet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=10_000_000)
    ap.add_argument("--engine", default="duckdb")
    a = ap.parse_args()
    ws = cached_store(a.flows)
    atomic_write_parquet(ws.indicators_path, indicators(5000))
    atomic_write_parquet(ws.orgs_path, orgs())
    t0 = time.perf_counter()
    doc = detect_workspace(ws, engine_name=a.engine, index="off").to_dict()
    dt = time.perf_counter() - t0
    emit(
        [
            {
                "bench": f"hunt_{a.engine}",
                "flows": a.flows,
                "seconds": round(dt, 2),
                "flows_per_s": round(a.flows / dt),
                "matched_flows": doc["inputs"]["matched_flows"],
                "organizations": len(doc["organizations"]),
                "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        ]
    )


if __name__ == "__main__":
    main()
