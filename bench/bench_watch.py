"""``sightline watch`` lag: seconds from a rotated Zeek file appearing to its alert.

Rotated conn logs of ``rate x interval`` flows each (the input rate, e.g. 100k flows/s with a
file every 10 s) are moved into a directory ``sightline watch`` follows, one every
``interval`` seconds; each holds a new victim's beacons to an indicator.  The lag is measured
from the file's rename into the directory to the receipt of that victim's alert at a local
webhook.  Every hunt covers the whole store, so the lag grows with the store: the results list
each file's lag.

Usage: python -m bench.bench_watch --rate 100000 --interval 10 --files 6
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.bench_data import CACHE, emit
from bench.bench_ingest import FIELDS, write_conn_log

C2 = "45.77.1.10"


def beacon_lines(org: int, start: float, n: int = 30) -> str:
    lines = []
    for k in range(n):
        ts = start + k * 300.0
        row = {
            "ts": f"{ts:.6f}",
            "uid": f"Cb{org}x{k}",
            "id.orig_h": f"10.0.{org}.5",
            "id.orig_p": str(40000 + k),
            "id.resp_h": C2,
            "id.resp_p": "443",
            "proto": "tcp",
            "service": "ssl",
            "duration": "2.000000",
            "orig_bytes": "480",
            "resp_bytes": "1800",
            "conn_state": "SF",
            "local_orig": "-",
            "local_resp": "-",
            "missed_bytes": "0",
            "history": "ShADadFf",
            "orig_pkts": "4",
            "orig_ip_bytes": "640",
            "resp_pkts": "4",
            "resp_ip_bytes": "1960",
            "tunnel_parents": "(empty)",
        }
        lines.append("\t".join(row[f] for f in FIELDS))
    return "\n".join(lines) + "\n"


def make_file(path: Path, rows: int, org: int, seed: int) -> None:
    write_conn_log(str(path), rows, seed=seed)
    data = path.read_bytes()
    cut = data.rindex(b"#close")
    with open(path, "wb") as fh:
        fh.write(data[:cut])
        fh.write(beacon_lines(org, 1_709_251_200 + 600).encode())
        fh.write(data[cut:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=100_000, help="input flows per second")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between rotated files")
    ap.add_argument("--files", type=int, default=6)
    a = ap.parse_args()
    rows = int(a.rate * a.interval)
    root = CACHE / "watch-bench"
    shutil.rmtree(root, ignore_errors=True)
    spool, tele, intel, ws = root / "spool", root / "zeek", root / "intel", root / "ws"
    for d in (spool, tele, intel):
        d.mkdir(parents=True)
    for i in range(a.files):
        make_file(spool / f"conn.{i:02d}.log", rows, org=10 + i, seed=100 + i)
    (root / "orgs.csv").write_text(
        "org_id,name,sector,country,cidr\n" + "".join(f"org-{i:03d},Org {i},x,TW,10.0.{i}.0/24\n" for i in range(256))
    )
    (intel / "c2.csv").write_text(f"indicator,type,actor,first_seen,last_seen,confidence,tlp\n{C2},ipv4,X,,,90,green\n")
    got: dict[str, float] = {}

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if doc.get("kind") == "new_victim":
                got.setdefault(doc["org_id"], time.time())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    py = [sys.executable, "-c", "from sightline.cli import main; main()"]
    env = dict(os.environ, SIGHTLINE_LOG="WARNING")
    subprocess.run([*py, "orgs", "load", str(root / "orgs.csv"), "-w", str(ws)], check=True, env=env)
    proc = subprocess.Popen(
        [*py, "watch", "-t", str(tele), "-i", str(intel), "-w", str(ws), "--poll", "0.2", "--settle", "0"]
        + ["--sink", f"webhook+http://127.0.0.1:{srv.server_address[1]}/?tlp=green"],
        env=env,
        stderr=open(root / "watch.log", "w"),  # noqa: SIM115
    )
    lags = []
    try:
        for i in range(a.files):
            t_next = time.time() + a.interval
            src = spool / f"conn.{i:02d}.log"
            at = time.time()
            os.replace(src, tele / src.name)
            org = f"org-{10 + i:03d}"
            end = at + 600
            while org not in got and time.time() < end and proc.poll() is None:
                time.sleep(0.05)
            lags.append(round(got.get(org, float("nan")) - at, 2))
            time.sleep(max(0.0, t_next - time.time()))  # pacing of the input, not a measurement
    finally:
        proc.terminate()
        proc.wait(60)
        srv.shutdown()
    emit(
        [
            {
                "bench": "watch_file_to_alert",
                "input_flows_per_s": a.rate,
                "rotation_s": a.interval,
                "flows_per_file": rows,
                "files": a.files,
                "lag_s_per_file": lags,
                "lag_s_median": sorted(lags)[len(lags) // 2],
                "lag_s_max": max(lags),
                "keeps_up": max(lags) < a.interval,
            }
        ]
    )


if __name__ == "__main__":
    main()
