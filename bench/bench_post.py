"""The stages after detection on a big campaign (issue-sized: 10M flows, 5,000 indicators).

Runs the workspace hunt in this process (DuckDB), then writes findings.json and report.html as
`hunt --out` does, and prints the per-stage table, output sizes and peak RSS.

With ``--botnet``, the big-result case instead: ``--flows`` ordinary flows plus 1,000 (or
``--botnet-orgs``, at most 2,500) organizations x 100 victim hosts calling their organization's C2
(a relay botnet seen by an ISP).

Usage: python -m bench.bench_post [--flows N] [--orgs N] [--botnet [--botnet-orgs N]] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_data import cached_botnet_store, cached_store, emit, indicators, orgs, peak_rss_mb
from sightline.pipeline import detect_workspace, new_run, write_outputs
from sightline.store import atomic_write_parquet

DETECTION = {"load", "derive", "index", "detect"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=10_000_000)
    ap.add_argument("--orgs", type=int, default=256, help="registered /24s in 10.0.0.0/16")
    ap.add_argument("--botnet", action="store_true", help="organizations x 100 victim hosts on top of --flows")
    ap.add_argument("--botnet-orgs", type=int, default=1000, help="organizations of the --botnet case")
    ap.add_argument("--out", help="directory for findings.json and report.html (default: temporary)")
    a = ap.parse_args()
    if a.botnet:
        ws, a.orgs = cached_botnet_store(a.flows, a.botnet_orgs), a.botnet_orgs
    else:
        ws = cached_store(a.flows)
    atomic_write_parquet(ws.indicators_path, indicators(5000))
    atomic_write_parquet(ws.orgs_path, orgs(a.orgs))
    run = new_run("bench")
    t0 = time.perf_counter()
    doc = detect_workspace(ws, engine_name="duckdb", run=run, index="off")
    t1 = time.perf_counter()
    out = Path(a.out or tempfile.mkdtemp(prefix="sightline-post-"))
    with run.timed("report"):
        paths = write_outputs(doc, out, ws)
    t2 = time.perf_counter()
    render_s = _render_seconds(out / "report.html")
    # the whole process as a user runs it: `sightline hunt` over the stored flows, with its report
    cli = Path(sys.executable).parent / "sightline"
    t3 = time.perf_counter()
    proc = subprocess.run(
        [str(cli), "hunt", "--workspace", str(ws.root), "--out", str(out / "cli")],
        capture_output=True,
        text=True,
        env=dict(os.environ, SIGHTLINE_INDEX="off"),
    )
    whole = time.perf_counter() - t3
    if proc.returncode not in (0, 1):
        print(proc.stdout[-2000:], proc.stderr[-2000:])
    stages = [(s.stage, s.rows, s.seconds) for s in run.stages]
    detection = sum(s for n, _, s in stages if n in DETECTION)
    after = sum(s for n, _, s in stages if n not in DETECTION and not n.startswith("detect."))
    width = max(len(n) for n, _, _ in stages)
    for n, rows, s in stages:
        print(f"  {n:<{width}} {s:8.2f} s  {'' if rows is None else rows}")
    hosts = sum(len(o.hosts) for o in doc.organizations)
    evidence = sum(len(h.evidence) for o in doc.organizations for h in o.hosts)
    sizes = {p.name: p.stat().st_size for p in paths}
    print(f"  organizations {len(doc.organizations)}, hosts {hosts}, evidence {evidence}; outputs {sizes}")
    emit(
        [
            {
                "bench": "post_detection_botnet" if a.botnet else "post_detection",
                "flows": a.flows,
                "organizations": len(doc.organizations),
                "hosts": hosts,
                "evidence": evidence,
                "detection_s": round(detection, 2),
                "after_detection_s": round(after, 2),
                "hunt_s": round(t1 - t0, 2),
                "report_s": round(t2 - t1, 2),
                "findings_json_mb": round(sizes.get("findings.json", 0) / 2**20, 1),
                "report_html_mb": round(sizes.get("report.html", 0) / 2**20, 2),
                "report_render_s": render_s,
                "hunt_process_s": round(whole, 2),
                "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        ]
    )


def _render_seconds(page: Path) -> float | None:
    """Seconds until Chromium has loaded and laid out the report (None without a browser)."""
    if not os.path.exists("/usr/bin/chromium"):
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            tab = browser.new_page()
            t0 = time.perf_counter()
            tab.goto(page.as_uri(), wait_until="load")
            tab.evaluate("document.body.getBoundingClientRect().height")  # forces layout
            return round(time.perf_counter() - t0, 2)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
