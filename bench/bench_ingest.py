"""Zeek TSV conn.log ingest: rows/s of ``sightline ingest`` beside DuckDB's own ``read_csv`` ->
Parquet on the same file in the same run, and parallel ingest of several files at
``--jobs 1`` against ``--jobs 2``; peak RSS and the load average of each measurement.

Every measurement runs in its own process (so its peak RSS is its own; a parallel ingest
adds its largest worker's), one after the other, alternating sightline and DuckDB when
``--repeat`` asks for more than one round; the best round of each is reported.

Usage: python -m bench.bench_ingest --rows N [--files K] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from bench.bench_data import CACHE, emit, ext_pool
from sightline.simulate.writers.zeek import FIELDS, TYPES


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


def _log(n: int, seed: int = 3) -> Path:
    """The cached conn.log of ``n`` rows (written once)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / (f"conn-{n}.log" if seed == 3 else f"conn-{n}-s{seed}.log")
    if not log.exists():
        write_conn_log(str(log) + ".tmp", n, seed)
        shutil.move(str(log) + ".tmp", log)
    return log


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------- one measurement


def _measure(what: str, paths: list[str], jobs: int) -> dict:
    """Run one measurement in this process; returns its numbers."""
    root = CACHE / f"ingest-ws-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()[0]
    worker_cpu, worker_peak = 0.0, 0.0
    t0, c0 = time.perf_counter(), _cpu_s()
    if what == "duckdb":
        import duckdb

        out = CACHE / f"duckdb-{os.getpid()}.parquet"
        con = duckdb.connect()
        con.execute(f"SET threads={len(os.sched_getaffinity(0))}")
        # DuckDB's own CSV sniffer and Parquet writer, as a user would run them
        con.execute(
            f"COPY (SELECT * FROM read_csv('{paths[0]}', delim='\\t', header=false, comment='#', "
            "nullstr=['-', '(empty)'])) TO '" + str(out) + "' (FORMAT parquet)"
        )
        dt = time.perf_counter() - t0
        rows = con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0]
        size = out.stat().st_size
        out.unlink()
        quarantined = 0
    else:
        from sightline.ingest import ingest_paths
        from sightline.store import Workspace

        ws = Workspace(root)
        ws.ensure()
        summary = ingest_paths(ws, paths, jobs=jobs)
        dt = time.perf_counter() - t0
        if jobs > 1:  # the workers' CPU time and memory, as they reported them with each file
            worker_cpu = sum(f.cpu_seconds for f in summary.files)
            worker_peak = max((f.peak_rss_mb for f in summary.files), default=0.0)
        counts = ws.counts()
        rows, quarantined = counts["flows"], counts["quarantined"]
        size = sum(p.stat().st_size for p in (root / "flows").rglob("*.parquet"))
    res = {
        "seconds": round(dt, 2),
        "rows": rows,
        "rows_per_s": round(rows / dt),
        "cpu_s": round(_cpu_s() - c0 + worker_cpu, 2),
        "bytes_per_flow": round(size / max(rows, 1), 2),
        "quarantined": quarantined,
        "peak_rss_mb": round(_peak_mb(), 1),
        "worker_peak_rss_mb": round(worker_peak, 1),
        "load_avg_1m": round((load + os.getloadavg()[0]) / 2, 2),  # at its start and end
    }
    shutil.rmtree(root, ignore_errors=True)
    return res


def _stages(path: str) -> dict:
    """CPU seconds of each stage of a Zeek TSV ingest, run one after the other in one thread
    (the ingest itself overlaps parsing with reading, in threads)."""
    import pyarrow.parquet as pq

    from sightline.ingest import zeek
    from sightline.ingest.base import ReaderContext
    from sightline.ingest.identity import content_identity
    from sightline.store import Workspace
    from sightline.store.index import build_part_index
    from sightline.store.layout import locality_order, whole_ms
    from sightline.store.writer import ROW_GROUP_ROWS, write_sorted_runs

    out: dict[str, float] = {}

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        c = time.process_time()
        r = fn()
        out[name] = out.get(name, 0.0) + time.process_time() - c
        return r

    timed("identity_sha256", lambda: content_identity(Path(path)))
    with open(path, "rb") as fh:
        ctx = ReaderContext(path=Path(path), stream=fh)
        segs = timed("read_split", lambda: list(zeek._segments(ctx)))
    tables = []
    for seg in segs:
        t, _bad = timed("parse_csv", lambda seg=seg: zeek._parse_segment(seg))
        if t is not None:
            tables.append(timed("normalize", lambda t=t: zeek._normalize(t, path, "zeek_tsv", None)[0]))
    flows = pa.concat_tables(tables)
    timed("locality_sort", lambda: locality_order(flows))
    root = CACHE / f"stages-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "flows").mkdir(parents=True)
    part = root / "flows" / "part.parquet"
    ms = whole_ms(flows.column("ts"))
    timed("sort_gather_encode", lambda: write_sorted_runs([flows], part, flows.schema, ROW_GROUP_ROWS, ts_ms=ms))
    out["gather_encode"] = out.pop("sort_gather_encode") - out["locality_sort"]
    timed("index", lambda: build_part_index(Workspace(root), part))
    rows = pq.ParquetFile(part).metadata.num_rows
    shutil.rmtree(root, ignore_errors=True)
    total = sum(out.values())
    return {
        "rows": rows,
        **{f"{k}_s": round(v, 2) for k, v in out.items()},
        "total_cpu_s": round(total, 2),
        "rows_per_cpu_s": round(rows / total),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _run(what: str, paths: list[Path], jobs: int = 1) -> dict:
    """One measurement in a fresh process (its own peak RSS)."""
    cmd = [sys.executable, "-m", "bench.bench_ingest", "--one", what, "--jobs", str(jobs), *map(str, paths)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    best = max(runs, key=lambda r: r["rows_per_s"])
    return {**best, "rounds": len(runs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of the single log")
    ap.add_argument("--files", type=int, default=4, help="logs of the parallel ingest (rows/files rows each)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds (alternating sightline and DuckDB)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        res = _stages(a.paths[0]) if a.one == "stages" else _measure(a.one, a.paths, a.jobs)
        print(json.dumps(res), flush=True)
        return
    log = _log(a.rows)
    per = max(a.rows // a.files, 1)
    many = [_log(per, seed=100 + i) for i in range(a.files)]
    single: dict[str, list[dict]] = {"sightline": [], "duckdb": []}
    par: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(a.repeat):
        single["sightline"].append(_run("sightline", [log]))
        single["duckdb"].append(_run("duckdb", [log]))
        for jobs in (1, 2):
            par[jobs].append(_run("sightline", many, jobs))
    s, d = _best(single["sightline"]), _best(single["duckdb"])
    rows = [
        {
            "bench": "zeek_tsv_ingest",
            **s,
            "duckdb_read_csv_rows_per_s": d["rows_per_s"],
            "vs_duckdb": round(s["rows_per_s"] / d["rows_per_s"], 2),
            "target_rows_per_s": 1_500_000,
            "log_bytes": log.stat().st_size,
        },
        {"bench": "duckdb_read_csv_parquet", **d},
    ]
    rows.append({"bench": "zeek_tsv_ingest_stages", **_run("stages", [log])})
    p1, p2 = _best(par[1]), _best(par[2])
    for jobs, r in ((1, p1), (2, p2)):
        rows.append({"bench": f"zeek_tsv_ingest_{a.files}files_jobs{jobs}", "files": a.files, **r})
    rows[-1]["speedup_vs_jobs1"] = round(p2["rows_per_s"] / p1["rows_per_s"], 2)
    emit(rows)


if __name__ == "__main__":
    main()
