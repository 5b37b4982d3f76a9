"""Retro-hunt: 5,000 new indicators over the stored history, with the index vs a full scan.

Usage: python -m bench.bench_retro --flows N
"""

from __future__ import annotations

import argparse
import time

from bench.bench_data import cached_store, emit, indicators, orgs, peak_rss_mb
from sightline import index as ix
from sightline.detect import run_detection
from sightline.engines import get_engine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=20_000_000)
    n = ap.parse_args().flows
    ws = cached_store(n)
    files = ws.flow_files()
    t0 = time.perf_counter()
    built = ix.ensure_index(ws, files)
    t_build = time.perf_counter() - t0
    ind = indicators(5000, present_fraction=0.05, popular=False)
    org = orgs()
    out = []
    eng = get_engine("duckdb", threads=2)
    t0 = time.perf_counter()
    full = run_detection(eng, files, ind, org)
    t_full = time.perf_counter() - t0
    eng.close()
    eng = get_engine("duckdb", threads=2)
    t0 = time.perf_counter()
    sel = ix.candidate_row_groups(ws, files, ind)
    cand = ix.load_candidates(sel, ind)
    indexed = run_detection(eng, files, ind, org, flows=cand)
    t_idx = time.perf_counter() - t0
    eng.close()
    assert indexed.matched_flows == full.matched_flows, "index changed the result"
    out.append({"bench": "retro_hunt_index", "flows": n, "indicators": 5000, "matched_flows": full.matched_flows,
                "row_groups_read": sum(len(v) for v in sel.values()), "row_groups_total": ix.total_row_groups(files),
                "full_scan_s": round(t_full, 3), "indexed_s": round(t_idx, 3),
                "speedup": round(t_full / t_idx, 1), "index_build_s": round(t_build, 3), "indexes_built": built,
                "target_speedup": 10, "peak_rss_mb": round(peak_rss_mb(), 1)})
    emit(out)


if __name__ == "__main__":
    main()
