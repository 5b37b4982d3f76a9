"""`make eval`: simulate scenarios, hunt them, score the findings against the truth.

Runs `sightline simulate`, `sightline hunt` and `sightline evaluate` as subprocesses (the way a
user would) on a few seeds and sizes, then prints one score table.

Evaluation seeds (1001, 2002, 3003) were never used while developing the simulator or the
detections; development used seeds 1-13 (tests use 1, 2, 3).  Do not tune on these.

Usage: python -m bench.eval [--seeds 1001,2002,3003] [--flows 200000] [--large 1000000]
       [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

EVAL_SEEDS = (1001, 2002, 3003)
VERDICTS = ("compromised", "exploitation_attempt", "reconnaissance")


def _sightline() -> list[str]:
    exe = Path(sys.executable).with_name("sightline")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from sightline.cli import main; main()"]


def _run(cmd: list[str], what: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # hunt exits 1 only with --fail-on, which we do not pass
        sys.stderr.write(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}\n")
        raise SystemExit(proc.returncode or 1)
    return time.perf_counter() - t0


def run_case(work: Path, seed: int, flows: int, formats: str) -> dict:
    """Simulate, hunt and evaluate one scenario; returns the scores plus timings."""
    case = work / f"seed{seed}-{flows}"
    if case.exists():
        shutil.rmtree(case)
    sim, hunt_out, ws = case / "sim", case / "hunt", case / "ws"
    exe = _sightline()
    t_sim = _run(
        [*exe, "simulate", "--out", str(sim), "--seed", str(seed), "--flows", str(flows), "--formats", formats],
        "simulate",
    )
    intel = sorted((sim / "intel").iterdir())
    cmd = [
        *exe,
        "hunt",
        "--telemetry",
        str(sim / "telemetry"),
        "--orgs",
        str(sim / "orgs.csv"),
        "--out",
        str(hunt_out),
        "--workspace",
        str(ws),
    ]
    for p in intel:
        cmd += ["--intel", str(p)]
    t_hunt = _run(cmd, "hunt")
    scores = case / "scores.json"
    _run(
        [
            *exe,
            "evaluate",
            "--truth",
            str(sim / "truth.json"),
            "--findings",
            str(hunt_out / "findings.json"),
            "--json",
            str(scores),
        ],
        "evaluate",
    )
    result = json.loads(scores.read_text())
    result["timing"] = {"simulate_s": t_sim, "hunt_s": t_hunt}
    result["case"] = {"seed": seed, "flows": flows, "formats": formats}
    return result


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default=",".join(map(str, EVAL_SEEDS)))
    ap.add_argument("--flows", type=int, default=200_000)
    ap.add_argument("--large", type=int, default=1_000_000, help="flows of one extra, larger case (0: skip)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the scenario and workspace directories")
    ap.add_argument("--json", type=Path, default=None, help="write all scores here")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sightline-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    cases = [(s, args.flows, "zeek_tsv,zeek_json") for s in seeds]
    if args.large and seeds:
        cases.append((seeds[0], args.large, "zeek_tsv"))
    con = Console()
    results = []
    try:
        for seed, flows, fmts in cases:
            con.print(f"seed {seed}, {flows:,} flows ({fmts}) ...", highlight=False)
            results.append(run_case(work, seed, flows, fmts))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    t = Table(title="sightline evaluation (organization level; P/R per verdict)")
    t.add_column("seed")
    t.add_column("flows", justify="right")
    for v in ("compromised", "exploit", "recon"):
        t.add_column(f"{v} P/R", justify="right")
    for col in ("all F1", "host F1", "hunt s"):
        t.add_column(col, justify="right")
    for r in results:
        o = r["organizations"]
        row = [str(r["case"]["seed"]), f"{r['case']['flows']:,}"]
        for v in VERDICTS:
            row.append(f"{_f(o['per_verdict'][v]['precision'])}/{_f(o['per_verdict'][v]['recall'])}")
        h = r.get("hosts")
        row += [_f(o["overall"]["f1"]), _f(h["overall"]["f1"]) if h else "n/a", f"{r['timing']['hunt_s']:.1f}"]
        t.add_row(*row)
    con.print(t)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
