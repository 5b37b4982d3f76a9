"""``make reliability``: long fuzz campaign, SIGKILL trials, full-size hostile inputs, pip-audit.

Prints one table per part and writes ``bench/results/reliability.json``.  Knobs (environment):

- ``SIGHTLINE_FUZZ_SECONDS`` seconds per fuzz target (default 60)
- ``SIGHTLINE_FUZZ_ENGINE`` ``atheris`` (coverage-guided, default when installed) or ``hypothesis``
- ``SIGHTLINE_CRASH_TRIALS`` SIGKILL trials (default 20: 16 ingest + 4 collect)
- ``SIGHTLINE_BIG_MB`` size of the huge line and the bombs (default 1024)
- ``SIGHTLINE_TARGETS`` comma-separated subset of fuzz targets

Crashing fuzz inputs are saved under ``bench/results/crashes/<target>/``; move them to
``tests/data/regressions/<target>/`` once fixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
CRASHES = RESULTS / "crashes"

# atheris driver run in a child per target: libFuzzer owns the process and exits at the end
_ATHERIS = r"""
import sys, atheris
sys.path.insert(0, {root!r})
with atheris.instrument_imports(include=["sightline"]):
    import sightline.ingest, sightline.intel, sightline.exposure.scans, sightline.enrich.orgs
from tests.fuzz_support import TARGETS, run_target
target = TARGETS[{name!r}]

def one(data: bytes) -> None:
    try:
        run_target(target, data)
    except NotImplementedError:
        pass  # a parser still being written on main

atheris.Setup(sys.argv, one)
atheris.Fuzz()
"""


def _atheris_available() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def fuzz_atheris(name: str, seconds: int, work: Path) -> dict:
    from tests.fuzz_support import TARGETS

    corpus = work / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(TARGETS[name].seeds):
        (corpus / f"seed{i}").write_bytes(s)
    reg = ROOT / "tests" / "data" / "regressions" / name
    if reg.is_dir():
        for p in reg.iterdir():
            shutil.copy(p, corpus / f"reg-{p.name}")
    art = CRASHES / name
    art.mkdir(parents=True, exist_ok=True)
    script = work / f"fuzz_{name}.py"
    script.write_text(_ATHERIS.format(root=str(ROOT), name=name))
    cmd = [
        sys.executable,
        str(script),
        f"-max_total_time={seconds}",
        "-print_final_stats=1",
        "-rss_limit_mb=4096",
        "-timeout=60",
        f"-artifact_prefix={art}/",
        "-max_len=65536",
        str(corpus),
    ]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 3 + 300, cwd=work)
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", p.stderr)
    cov = re.findall(r"cov: (\d+)", p.stderr)
    crashes = sorted(x.name for x in art.iterdir()) if art.exists() else []
    return {
        "target": name,
        "engine": "atheris",
        "seconds": round(time.perf_counter() - t0, 1),
        "execs": int(execs[-1]) if execs else 0,
        "coverage_edges": int(cov[-1]) if cov else 0,
        "crashes": len(crashes),
        "crash_files": crashes[:5],
        "rc": p.returncode,
        "tail": "" if p.returncode == 0 else p.stderr[-1500:],
    }


def fuzz_hypothesis_like(name: str, seconds: int) -> dict:
    """Random mutation loop (same mutators as the test suite) for ``seconds``."""
    from tests.fuzz_support import INTERESTING, TARGETS, mutate, mutate_json, run_target

    t = TARGETS[name]
    rng = random.Random(1234)
    n = crashes = 0
    art = CRASHES / name
    t0 = time.perf_counter()
    scalars = [None, True, False, 0, -1, 2**63, 2**64, 1e309, float("nan"), "", "x" * 1000] + [
        s.decode("utf-8", "replace") for s in INTERESTING
    ]
    while time.perf_counter() - t0 < seconds:
        seed = rng.choice(t.seeds)
        if t.json_lines and rng.random() < 0.5:
            blob = mutate_json(seed, [(rng.randrange(10**6), rng.choice(scalars)) for _ in range(rng.randint(1, 4))])
        elif rng.random() < 0.1:
            blob = rng.randbytes(rng.randint(0, 4096))
        else:
            blob = mutate(
                seed, [(rng.randrange(7), rng.randrange(2**32), rng.randrange(2**32)) for _ in range(rng.randint(1, 8))]
            )
        n += 1
        try:
            run_target(t, blob)
        except NotImplementedError:
            pass
        except Exception:  # noqa: BLE001 - any other exception is a finding
            crashes += 1
            art.mkdir(parents=True, exist_ok=True)
            (art / hashlib.sha256(blob).hexdigest()[:16]).write_bytes(blob)
    return {
        "target": name,
        "engine": "mutation-loop",
        "seconds": round(time.perf_counter() - t0, 1),
        "execs": n,
        "coverage_edges": None,
        "crashes": crashes,
    }


def part_fuzz() -> list[dict]:
    from tests.fuzz_support import TARGETS

    seconds = int(os.environ.get("SIGHTLINE_FUZZ_SECONDS", "60"))
    engine = os.environ.get("SIGHTLINE_FUZZ_ENGINE", "atheris" if _atheris_available() else "hypothesis")
    names = [n for n in os.environ.get("SIGHTLINE_TARGETS", ",".join(TARGETS)).split(",") if n]
    out = []
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            res = fuzz_atheris(name, seconds, Path(d)) if engine == "atheris" else fuzz_hypothesis_like(name, seconds)
            print(
                f"  fuzz {name:18s} {res['engine']:13s} {res['execs']:>9,} execs  {res['seconds']:>6}s  "
                f"cov {res['coverage_edges'] or '-':>6}  crashes {res['crashes']}",
                flush=True,
            )
            out.append(res)
    return out


def part_crash() -> list[dict]:
    from sightline.ingest.nfexport import encode_export, synthetic_flows
    from tests.crash_support import INGEST_KILL_POINTS, collect_trial, ingest_trial, restart_collect, write_zeek

    trials = int(os.environ.get("SIGHTLINE_CRASH_TRIALS", "20"))
    n_collect = max(1, trials // 5)
    rng = random.Random(7)
    out = []
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        files = [write_zeek(root / f"conn{i}.log", 60_000 + 5_000 * i, seed=i, days=3) for i in range(4)]
        expected = {str(f): 60_000 + 5_000 * i for i, f in enumerate(files)}
        for t in range(trials - n_collect):
            kp = (
                INGEST_KILL_POINTS[t % len(INGEST_KILL_POINTS)]
                if t < len(INGEST_KILL_POINTS)
                else rng.choice(INGEST_KILL_POINTS)
            )
            t0 = time.perf_counter()
            try:
                res = ingest_trial(root / f"ws{t}", files, kp, expected)
                res["ok"] = True
            except (AssertionError, TimeoutError) as e:
                res = {"kill_point": f"{kp.name}:{kp.k}", "ok": False, "error": str(e)[:300]}
            res.update(kind="ingest", seconds=round(time.perf_counter() - t0, 1))
            print(
                f"  ingest  kill at {res['kill_point']:18s} killed={res.get('killed')!s:5s} "
                f"rows at kill {res.get('rows_at_kill', '-')!s:>7}  final {res.get('rows_final', '-')!s:>7}  "
                f"{'OK' if res['ok'] else 'FAIL ' + res['error']}",
                flush=True,
            )
            out.append(res)
            shutil.rmtree(root / f"ws{t}", ignore_errors=True)
        for t in range(n_collect):
            ws = root / f"cws{t}"
            per, batch = 20, 200
            k = rng.randint(1, 6)
            t0 = time.perf_counter()
            try:
                res = collect_trial(
                    ws, encode_export(synthetic_flows(3000, seed=100 + t), 9, per_packet=per), k, per, batch
                )
                more = encode_export(synthetic_flows(600, seed=200 + t), 9, per_packet=per)
                final = restart_collect(ws, more, per, batch)
                assert final.stored == res["rows_at_kill"] + 600 and final.distinct == final.stored
                res.update(ok=True, rows_final=final.stored)
            except (AssertionError, TimeoutError) as e:
                res = {"ok": False, "error": str(e)[:300]}
            res.update(kind="collect", kill_after_batches=k, seconds=round(time.perf_counter() - t0, 1))
            print(
                f"  collect kill after {k} batch(es)    rows at kill {res.get('rows_at_kill', '-')!s:>7}  "
                f"final {res.get('rows_final', '-')!s:>7}  {'OK' if res['ok'] else 'FAIL ' + res['error']}",
                flush=True,
            )
            out.append(res)
    return out


def part_hostile() -> list[dict]:
    from tests.hostile_support import (
        baseline_rss_mb,
        ingest_in_child,
        intel_in_child,
        scans_in_child,
        write_gzip_bomb,
        write_long_line,
        write_zstd_bomb,
    )

    big = int(os.environ.get("SIGHTLINE_BIG_MB", "1024")) << 20
    base = baseline_rss_mb()
    out = [{"case": "baseline (imports only)", "peak_rss_mb": round(base)}]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cases = [
            ("single line", lambda: write_long_line(root / "long.log", big), ingest_in_child),
            ("zstd bomb -> ingest", lambda: write_zstd_bomb(root / "b.zst", big, body=b"\n" * 4096), ingest_in_child),
            ("zstd bomb of flows -> ingest", lambda: write_zstd_bomb(root / "f.zst", big), ingest_in_child),
            ("gzip bomb -> ingest", lambda: write_gzip_bomb(root / "b.gz", big, body=b"\n" * 4096), ingest_in_child),
            (
                "zstd bomb -> intel",
                lambda: write_zstd_bomb(root / "i.zst", big, body=b"\n" * 4096, head=b"1.2.3.4\n"),
                intel_in_child,
            ),
            (
                "zstd bomb -> scans",
                lambda: write_zstd_bomb(root / "s.zst", big, body=b"\n" * 4096, head=b"[\n"),
                scans_in_child,
            ),
        ]
        for label, make, run in cases:
            p = make()
            res = run(p, root / f"ws-{p.name}")
            res.update(
                case=f"{label} ({big >> 20} MiB)",
                input_bytes=p.stat().st_size,
                extra_rss_mb=round(res["peak_rss_mb"] - base),
            )
            what = res.get("error") or (res.get("quarantine_reasons") or [res.get("reason") or "ok"])[0]
            print(
                f"  {res['case']:34s} file {res['input_bytes']:>11,} B  peak RSS {res['peak_rss_mb']:>7.0f} MiB "
                f"(+{res['extra_rss_mb']})  {res['seconds']:.1f}s  rows {res.get('rows', '-')}  -> {str(what)[:70]}",
                flush=True,
            )
            out.append(res)
            p.unlink()
            shutil.rmtree(root / f"ws-{p.name}", ignore_errors=True)
    return out


def part_audit() -> dict:
    exe = Path(sys.executable).parent / "pip-audit"
    if not exe.exists():
        print("  pip-audit not installed (.venv/bin/pip install pip-audit)")
        return {"status": "not installed"}
    p = subprocess.run(
        [str(exe), "-l", "--progress-spinner", "off", "-f", "json"], capture_output=True, text=True, timeout=600
    )
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        print(f"  pip-audit could not run (network?): {p.stderr.strip()[-300:]}")
        return {"status": "unavailable", "stderr": p.stderr[-1000:]}
    deps = doc.get("dependencies", [])
    vulns = [(d["name"], d["version"], v["id"]) for d in deps for v in d.get("vulns", [])]
    print(f"  pip-audit: {len(deps)} packages, {len(vulns)} known vulnerabilities")
    for name, ver, vid in vulns:
        print(f"    {name} {ver}: {vid}")
    return {"status": "ok", "packages": len(deps), "vulnerabilities": vulns}


def main() -> None:
    parts = os.environ.get("SIGHTLINE_PARTS", "fuzz,crash,hostile,audit").split(",")
    report: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "fuzz" in parts:
        print("== fuzzing (garbage must end as quarantine/skip or a typed SightlineError)")
        report["fuzz"] = part_fuzz()
    if "crash" in parts:
        print("== crash safety (SIGKILL at polled workspace states; store checked, then re-run)")
        report["crash"] = part_crash()
    if "hostile" in parts:
        print("== hostile inputs (peak RSS in a child process)")
        report["hostile"] = part_hostile()
    if "audit" in parts:
        print("== dependencies")
        report["audit"] = part_audit()
    fz, cr = report.get("fuzz", []), report.get("crash", [])
    summary = {
        "fuzz_targets": len(fz),
        "fuzz_execs": sum(r["execs"] for r in fz),
        "fuzz_crashes": sum(r["crashes"] for r in fz),
        "crash_trials": len(cr),
        "crash_trials_ok": sum(1 for r in cr if r.get("ok")),
        "crash_trials_killed": sum(1 for r in cr if r.get("killed", r.get("kind") == "collect")),
    }
    report["summary"] = summary
    print("== summary: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in summary.items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    from sightline.store import atomic_write_json

    atomic_write_json(RESULTS / "reliability.json", report)
    if summary["fuzz_crashes"] or summary["crash_trials_ok"] < summary["crash_trials"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
