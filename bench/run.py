"""Run every benchmark, each in its own process (so peak RSS is per benchmark), print a table
and write bench/results.json.

Usage::

    python -m bench.run            # full sizes (long: tens of minutes)
    python -m bench.run --quick    # small sizes, a few minutes
    python -m bench.run --only match,retro --flows 5000000

Modules ``bench/bench_<name>.py`` print ``RESULTS <json list>`` as their last line; the other
engineers' scripts (bench_netflow.py, bench_serve.py) print text, which is kept as is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def plan(quick: bool, flows: int | None) -> list[tuple[str, list[str]]]:
    f = flows or (2_000_000 if quick else 20_000_000)
    # retro-hunt over a long history (the 200M flows: about 5 GB of store, built once
    # and cached under SIGHTLINE_BENCH_DIR)
    retro = flows or (2_000_000 if quick else 200_000_000)
    sizes = [flows] if flows else ([2_000_000] if quick else [10_000_000, 30_000_000, 100_000_000])
    steps: list[tuple[str, list[str]]] = [
        ("ingest", ["-m", "bench.bench_ingest", "--rows", str(1_000_000 if quick else 10_000_000)]),
        ("match", ["-m", "bench.bench_match", "--flows", str(f)]),
        ("nfdump", ["-m", "bench.bench_nfdump", "--flows", str(f)]),
        ("retro", ["-m", "bench.bench_retro", "--flows", str(retro)]),
        ("compact", ["-m", "bench.bench_compact", "--flows", str(f)]),
        ("exposure", ["-m", "bench.bench_exposure", "--services", str(20_000 if quick else 100_000)]),
    ]
    steps += [(f"hunt-{s}", ["-m", "bench.bench_hunt", "--flows", str(s)]) for s in sizes]
    # a big campaign: the stages after detection, the outputs, the whole `sightline hunt` process,
    # beside nfdump's IOC aggregation over the same number of flows
    post = flows or (2_000_000 if quick else 10_000_000)
    steps.append((f"post-detection-{post}", ["-m", "bench.bench_post", "--flows", str(post)]))
    if post != f:
        steps.append((f"nfdump-{post}", ["-m", "bench.bench_nfdump", "--flows", str(post)]))
    # the big result: 1,000 organizations x 100 victim hosts (a relay botnet seen by an ISP)
    botnet = 1_000_000 if quick else 5_000_000
    steps.append((f"post-detection-botnet-{botnet}", ["-m", "bench.bench_post", "--flows", str(botnet), "--botnet"]))
    # seconds from a rotated file appearing to its alert, input at 100k flows/s
    steps.append(("watch", ["-m", "bench.bench_watch", "--rate", "100000", "--interval", "5" if quick else "10",
                            "--files", "3" if quick else "6"]))  # fmt: skip
    steps.append(("spark", ["-m", "bench.bench_spark", "--flows", str(1_000_000 if quick else 10_000_000)]))
    if not quick and not flows:
        steps.append(("spark-30000000", ["-m", "bench.bench_spark", "--flows", "30000000", "--partitions", "8"]))
    if (HERE / "bench_netflow.py").exists():
        steps.append(
            (
                "netflow",
                [str(HERE / "bench_netflow.py")]
                + (["--records", "200000", "--stream-records", "100000"] if quick else []),
            )
        )
    if (HERE / "bench_serve.py").exists():
        steps.append(("serve", [str(HERE / "bench_serve.py")]))
    return steps


def run_step(name: str, args: list[str], timeout: int) -> dict:
    env = dict(
        os.environ,
        SPARK_LOCAL_IP=os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    try:
        p = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"step": name, "ok": False, "error": f"timed out after {timeout}s"}
    wall = round(time.perf_counter() - t0, 1)
    lines = p.stdout.strip().splitlines()
    res = next((json.loads(ln[8:]) for ln in reversed(lines) if ln.startswith("RESULTS ")), None)
    # the machine may be shared: every number is printed with the load it was measured under
    load = f"{load0:.2f}->{os.getloadavg()[0]:.2f}"
    out = {"step": name, "ok": p.returncode == 0, "wall_s": wall, "load_avg_1m": load}
    if res is not None:
        out["results"] = res
    else:
        out["output"] = lines[-15:]
    if p.returncode != 0:
        out["error"] = (p.stderr.strip().splitlines() or ["?"])[-1]
    return out


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(steps: list[dict]) -> str:
    rows = []
    for s in steps:
        if not s["ok"]:
            rows.append(f"{s['step']:<24} FAILED: {s.get('error')}")
            continue
        for r in s.get("results", []):
            keys = [k for k in r if k not in ("bench",)]
            rows.append(
                f"{r['bench']:<24} " + "  ".join(f"{k}={_fmt(r[k])}" for k in keys) + f"  step_load={s['load_avg_1m']}"
            )
        for ln in s.get("output", []):
            rows.append(f"{s['step']:<24} {ln}")
        if not s.get("results"):
            rows.append(f"{s['step']:<24} step_load={s['load_avg_1m']}")
    return "\n".join(rows)


def _write(a: argparse.Namespace, done: list[dict]) -> None:
    doc = {
        "quick": a.quick,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "steps": done,
    }
    tmp = Path(a.out + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, a.out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    ap.add_argument("--flows", type=int, help="flows in the store for match/retro/hunt")
    ap.add_argument(
        "--only", help="comma-separated step names (ingest, match, nfdump, retro, compact, hunt, spark, netflow, serve)"
    )
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per step")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    done = []
    for name, args in plan(a.quick, a.flows):
        if only and name.split("-")[0] not in only:
            continue
        print(f"== {name}", flush=True)
        done.append(run_step(name, args, a.timeout))
        print(table(done[-1:]), flush=True)
        _write(a, done)  # after every step: a long run stopped half-way still leaves its numbers
    print("\n" + table(done))
    print(f"\nwritten: {a.out}")
    return 0 if all(s["ok"] for s in done) else 1


if __name__ == "__main__":
    sys.exit(main())
