"""Retro-hunt: 5,000 new indicators over the stored history, through the index vs a full scan.

Both sides run the whole detection stage (``detect_workspace``: match, behaviours, baselines,
assessment, pivoting, findings) and must produce the same findings; the detection statements
alone (``run_detection``) are timed both ways too.

Usage: python -m bench.bench_retro --flows N
"""

from __future__ import annotations

import argparse
import json
import time

from bench.bench_data import cached_store, emit, indicators, orgs, peak_rss_mb
from sightline.detect import run_detection
from sightline.engines import get_engine
from sightline.pipeline import detect_workspace
from sightline.store import atomic_write_parquet, flows_for_addresses, layout
from sightline.store import index as ix

VOLATILE = ("generated_at", "run_id", "engine", "workspace_state")


def _stable(doc: dict) -> str:
    return json.dumps({k: v for k, v in doc.items() if k not in VOLATILE}, sort_keys=True, default=str)


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
    atomic_write_parquet(ws.indicators_path, ind)
    atomic_write_parquet(ws.orgs_path, orgs())
    sel = ix.candidate_row_groups(ws, files, ind)
    t0 = time.perf_counter()
    full = detect_workspace(ws, index="off").to_dict()
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    indexed = detect_workspace(ws, index="on").to_dict()
    t_idx = time.perf_counter() - t0
    assert _stable(indexed) == _stable(full), "the index changed the findings"
    # the detection statements alone (match, behaviours, baselines): the part the index is for;
    # pivoting above reads every flow of the compromised hosts whichever way the flows are found
    eng = get_engine("duckdb", threads=2)
    t0 = time.perf_counter()
    det_full = run_detection(eng, files, ind, orgs())
    d_full = time.perf_counter() - t0
    eng.close()
    eng = get_engine("duckdb", threads=2)
    t0 = time.perf_counter()
    cand = ix.load_candidates(ix.candidate_row_groups(ws, files, ind), ind)
    det_idx = run_detection(eng, files, ind, orgs(), flows=cand, flows_for=flows_for_addresses(eng, ws, files))
    d_idx = time.perf_counter() - t0
    eng.close()
    assert det_idx.matched_flows == det_full.matched_flows
    emit(
        [
            {
                "bench": "retro_hunt_index",
                "flows": n,
                "indicators": 5000,
                "matched_flows": full["inputs"]["matched_flows"],
                "organizations": len(full["organizations"]),
                "row_groups_read": sum(len(v) for v in sel.values()),
                "row_groups_total": layout.total_row_groups(files),
                "full_scan_s": round(t_full, 3),
                "indexed_s": round(t_idx, 3),
                "speedup": round(t_full / t_idx, 1),
                "detection_full_s": round(d_full, 3),
                "detection_indexed_s": round(d_idx, 3),
                "detection_speedup": round(d_full / d_idx, 1),
                "index_build_s": round(t_build, 3),
                "indexes_built": built,
                "target_speedup": 10,
                "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        ]
    )


if __name__ == "__main__":
    main()
