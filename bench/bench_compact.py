"""Compaction: a store ingested as hourly files, retro-hunt reads before and after ``compact``.

The flows of ``bench_data`` are written as one input file per hour (24 parts per day, as hourly
Zeek logs or collector batches make them), then the same 5,000 new indicators as the retro
bench (mostly rarely seen addresses) are looked up through the index: row groups selected and
the time of the detection statements, before and after compacting every day into one part.

Usage: python -m bench.bench_compact --flows N
"""

from __future__ import annotations

import argparse
import shutil
import time

import numpy as np
import pyarrow as pa

from bench.bench_data import CACHE, DAY0, emit, ext_pool, flow_chunk, indicators, orgs, peak_rss_mb
from sightline.detect import run_detection
from sightline.engines import get_engine
from sightline.store import FlowWriter, Workspace, flows_for_addresses, layout
from sightline.store import index as ix
from sightline.store.compact import compact, day_parts

DAYS = 7


def hourly_store(n: int, seed: int = 7) -> Workspace:
    root = CACHE / f"hourly-{n}"
    shutil.rmtree(root, ignore_errors=True)
    ws = Workspace(root)
    ws.ensure()
    rng = np.random.default_rng(seed)
    pool = ext_pool()
    per = n // (DAYS * 24)
    for d in range(DAYS):
        for h in range(24):
            t = flow_chunk(per, rng, pool, days=1)
            ts = (DAY0 + d * 86_400 + h * 3_600) * 1_000_000 + np.sort(rng.integers(0, 3_600_000_000, per))
            t = t.set_column(0, "ts", pa.array(ts, pa.timestamp("us", tz="UTC")))
            w = FlowWriter(ws, f"{d:02d}{h:02d}".ljust(64, "0"), f"conn.{d:02d}-{h:02d}.log", "zeek_tsv")
            w.write(t)
            w.commit(None)
    return ws


def retro(ws: Workspace, ind: pa.Table) -> tuple[int, int, float]:
    files = ws.flow_files()
    ix.ensure_index(ws, files)
    best = float("inf")
    for _ in range(2):
        eng = get_engine("duckdb", threads=2)
        t0 = time.perf_counter()
        sel = ix.candidate_row_groups(ws, files, ind)
        cand = ix.load_candidates(sel, ind)
        det = run_detection(eng, files, ind, orgs(), flows=cand, flows_for=flows_for_addresses(eng, ws, files))
        best = min(best, time.perf_counter() - t0)
        eng.close()
    return sum(len(v) for v in sel.values()), det.matched_flows, best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=20_000_000)
    n = ap.parse_args().flows
    t0 = time.perf_counter()
    ws = hourly_store(n)
    t_build = time.perf_counter() - t0
    ind = indicators(5000, present_fraction=0.05, popular=False)
    parts_before = sum(len(v) for v in day_parts(ws).values())
    rg_total_before = layout.total_row_groups(ws.flow_files())
    rgs_before, matched_before, s_before = retro(ws, ind)
    t0 = time.perf_counter()
    res = compact(ws)
    t_compact = time.perf_counter() - t0
    rgs_after, matched_after, s_after = retro(ws, ind)
    assert matched_after == matched_before, "compaction changed what matches"
    emit(
        [
            {
                "bench": "compact_hourly_store",
                "flows": n,
                "parts_before": parts_before,
                "parts_after": sum(len(v) for v in day_parts(ws).values()),
                "store_build_s": round(t_build, 1),
                "compact_s": round(t_compact, 1),
                "compact_flows_per_s": round(res.rows / t_compact),
                "row_groups_total_before": rg_total_before,
                "row_groups_total_after": layout.total_row_groups(ws.flow_files()),
                "retro_row_groups_before": rgs_before,
                "retro_row_groups_after": rgs_after,
                "retro_detection_s_before": round(s_before, 3),
                "retro_detection_s_after": round(s_after, 3),
                "matched_flows": matched_after,
                "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        ]
    )
    shutil.rmtree(ws.root, ignore_errors=True)


if __name__ == "__main__":
    main()
