"""Bounded load test of ``sightline serve`` on loopback (not a unit test).

Builds a workspace with synthetic findings (``--orgs`` organizations, 3 hosts x 3 evidence
rows each, mixed TLP), starts ``sightline serve`` as a separate process on a free loopback
port, then sends an open-loop request stream at ``--rate`` requests/s for ``--seconds``
seconds over a mix of API endpoints and dashboard pages, for a viewer (TLP:AMBER) and an
admin (TLP:RED).  Prints p50/p90/p99/max latency, achieved rate and errors, and writes them
to ``bench/results/serve.json``.

``--scenario cases`` loads the case list instead (``GET /api/v1/cases``, pages of 100 and
state filters, one case per organization, opened before the run as a hunt would): the
analysts' view under load.  Requests are spread over ``--callers`` users and API tokens, as
many analysts would send them, so each stays inside the server's per-caller API rate limit
(``serve --api-rate``, 20/s by default); results go to ``bench/results/serve-cases.json``.

    .venv/bin/python bench/bench_serve.py [--rate 200] [--seconds 30] [--orgs 2000] [--scenario mixed|cases]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = ("compromised", "exploitation_attempt", "reconnaissance")
SECTORS = ("semiconductor", "aerospace", "government", "university", "religious", "industry_association", "telecom")
TLPS = ("green", "amber", "amber", "amber", "red")


def synthetic_findings(n_orgs: int, seed: int = 7) -> dict:
    """A findings document of ``n_orgs`` organizations with 3 hosts x 3 evidence rows each."""
    rnd = random.Random(seed)
    orgs = []
    for i in range(n_orgs):
        verdict = rnd.choice(VERDICTS)
        day = 1 + rnd.randrange(20)
        hosts = []
        for h in range(3):
            ev = []
            for e in range(3):
                tlp = rnd.choice(TLPS)
                ev.append(
                    {
                        "behaviour": rnd.choice(("beacon", "exploitation", "scan")),
                        "indicator": f"198.51.{i % 250}.{e + 1}",
                        "actor": "RedJuliett",
                        "direction": "outbound",
                        "dst_port": 443,
                        "flows": rnd.randrange(1, 500),
                        "bytes_out": rnd.randrange(10**6),
                        "bytes_in": rnd.randrange(10**7),
                        "first_seen": f"2024-03-{day:02d}T01:00:00Z",
                        "last_seen": f"2024-03-{day + 2:02d}T05:00:00Z",
                        "score": round(rnd.random(), 2),
                        "detail": "synthetic",
                        "tlp": tlp,
                    }
                )
            hosts.append(
                {
                    "ip": f"10.{i // 250}.{i % 250}.{h + 1}",
                    "verdict": verdict,
                    "confidence": rnd.randrange(40, 100),
                    "tlp": "red",
                    "indicators": sorted({x["indicator"] for x in ev}),
                    "evidence": ev,
                    "first_seen": f"2024-03-{day:02d}T01:00:00Z",
                    "last_seen": f"2024-03-{day + 2:02d}T05:00:00Z",
                }
            )
        orgs.append(
            {
                "org_id": f"org-{i:05d}",
                "name": f"Organization {i}",
                "sector": rnd.choice(SECTORS),
                "country": "TW",
                "asns": [64500 + i % 500],
                "verdict": verdict,
                "confidence": rnd.randrange(40, 100),
                "tlp": "red",
                "first_seen": f"2024-03-{day:02d}T01:00:00Z",
                "last_seen": f"2024-03-{day + 2:02d}T05:00:00Z",
                "hosts": hosts,
            }
        )
    return {
        "schema": "sightline.findings/1",
        "generated_at": "2024-03-25T00:00:00Z",
        "tlp": "amber",
        "window": {"start": "2024-03-01T00:00:00Z", "end": "2024-03-25T00:00:00Z"},
        "inputs": {"flows": 10**8, "indicators": 750, "quarantined": 0},
        "organizations": orgs,
        "summary": {},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(root: Path, n_orgs: int, callers: int, cases: bool) -> dict[str, list[str]]:
    sys.path.insert(0, str(ROOT))
    from sightline.serve import UserStore
    from sightline.store import Workspace, atomic_write_json

    ws = Workspace(root).ensure()
    atomic_write_json(ws.findings_dir / "latest.json", synthetic_findings(n_orgs))
    store = UserStore(ws)
    tokens: dict[str, list[str]] = {"viewer": [], "admin": []}
    for i in range(callers):
        for role, clearance in (("viewer", "amber"), ("admin", "red")):
            name = f"{role}{i:02d}"
            store.add(name, f"bench-{name}-passphrase", role=role, clearance=clearance)
            tokens[role].append(store.new_token(name))
    if cases:  # the hunt that wrote the findings would have opened the cases
        from sightline.cases import CaseStore

        t0 = time.perf_counter()
        res = CaseStore(ws).sync()
        print(f"cases: {len(res.created)} opened in {time.perf_counter() - t0:.1f} s")
    return tokens


async def _wait_ready(client: httpx.AsyncClient, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("server did not start")


async def _session_cookie(client: httpx.AsyncClient, name: str) -> str:
    client.cookies.clear()
    page = await client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = await client.post(
        "/login", data={"username": name, "password": f"bench-{name}-passphrase", "csrf": csrf.group(1), "next": "/"}
    )
    assert r.status_code == 303, r.status_code
    return str(client.cookies.get("sl_session"))


async def _fetch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, headers: dict[str, str]) -> int:
    """One HTTP/1.1 keep-alive GET on an open connection; returns the status code.

    A minimal client keeps the load generator's own CPU cost far below the server's, so
    the numbers describe the server (a full client library costs more per request than
    the endpoints do, on the same 2 cores).
    """
    head = f"GET {path} HTTP/1.1\r\nHost: bench\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode())
    await writer.drain()
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), 0)
    if length:
        await reader.readexactly(length)
    return status


def _mixed_jobs(
    rnd: random.Random, n: int, tokens: dict[str, list[str]], cookies: list[str], n_orgs: int
) -> list[tuple[str, dict[str, str]]]:
    api = [
        "/api/v1/orgs?limit=50",
        "/api/v1/orgs?verdict=compromised&sector=government&limit=100",
        "/api/v1/evidence?verdict=exploitation_attempt&limit=100",
        "/api/v1/summary",
        "/api/v1/orgs?since=2024-03-10T00:00:00Z&until=2024-03-12T00:00:00Z",
    ]
    jobs: list[tuple[str, dict[str, str]]] = []
    for _ in range(n):
        kind = rnd.random()
        if kind < 0.15:
            jobs.append(
                (
                    rnd.choice(["/", "/orgs?verdict=compromised", f"/orgs/org-{rnd.randrange(n_orgs):05d}"]),
                    {"Cookie": f"sl_session={rnd.choice(cookies)}"},
                )
            )
        elif kind < 0.3:
            jobs.append(
                (
                    f"/api/v1/orgs/org-{rnd.randrange(n_orgs):05d}",
                    {"Authorization": f"Bearer {rnd.choice(tokens['admin'])}"},
                )
            )
        else:
            who = "admin" if kind < 0.6 else "viewer"
            jobs.append((rnd.choice(api), {"Authorization": f"Bearer {rnd.choice(tokens[who])}"}))
    return jobs


def _case_jobs(rnd: random.Random, n: int, tokens: dict[str, list[str]]) -> list[tuple[str, dict[str, str]]]:
    paths = [
        "/api/v1/cases",
        "/api/v1/cases?limit=100&offset=100",
        "/api/v1/cases?state=new&limit=50",
        "/api/v1/cases?state=triaged",
    ]
    callers = tokens["viewer"] + tokens["admin"]
    return [(rnd.choice(paths), {"Authorization": f"Bearer {callers[i % len(callers)]}"}) for i in range(n)]


async def _run(
    base: str, tokens: dict[str, list[str]], rate: float, seconds: float, n_orgs: int, scenario: str
) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as client:
        await _wait_ready(client, time.monotonic() + 30)
        cookies = [await _session_cookie(client, f"viewer{i:02d}") for i in range(len(tokens["viewer"]))]
        if scenario == "cases":  # warm up: the first request of each clearance filters the findings once
            for who in ("viewer", "admin"):
                r = await client.get("/api/v1/cases", headers={"Authorization": f"Bearer {tokens[who][0]}"})
                assert r.status_code == 200, r.text
                print(f"{who}: {r.json()['total']} cases visible, counts {r.json()['counts']}")
    host, port = base.removeprefix("http://").split(":")
    rnd = random.Random(1)
    n = int(rate * seconds)
    jobs = _case_jobs(rnd, n, tokens) if scenario == "cases" else _mixed_jobs(rnd, n, tokens, cookies, n_orgs)

    queue: asyncio.Queue[tuple[float, str, dict[str, str]] | None] = asyncio.Queue()
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []
    statuses: dict[str, int] = {}
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (job := await queue.get()) is not None:
                due, path, headers = job
                try:
                    status = await _fetch(reader, writer, path, headers)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                    continue
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                # Measured from when the request was due, not when a connection was free,
                # so queueing behind a slow server counts (no coordinated omission).
                latencies.append(time.perf_counter() - due)
                timeline.append((due - start, latencies[-1]))
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(64)]
    start = time.perf_counter()
    for i, (path, headers) in enumerate(jobs):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, path, headers))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    lat = sorted(latencies)
    # p50 per tenth of the run: shows warm-up and whether latency grows (saturation).
    tenths = []
    for k in range(10):
        part = sorted(x for t, x in timeline if k * seconds / 10 <= t < (k + 1) * seconds / 10)
        tenths.append(round(1000 * part[len(part) // 2], 1) if part else None)

    def pct(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else float("nan")

    return {
        "requests": n,
        "target_rate": rate,
        "seconds": round(elapsed, 2),
        "achieved_rate": round(len(lat) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * lat[-1], 2) if lat else None,
        "mean_ms": round(1000 * statistics.fmean(lat), 2) if lat else None,
        "statuses": statuses,
        "transport_errors": errors,
        "orgs": n_orgs,
        "p50_ms_by_tenth": tenths,
    }


def main() -> None:
    # A SIGTERM (e.g. from `timeout`) must still stop the server process in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second (open loop)")
    ap.add_argument("--seconds", type=float, default=30.0, help="duration (bounded: at most 300)")
    ap.add_argument("--orgs", type=int, default=2000, help="organizations in the synthetic findings")
    ap.add_argument("--scenario", choices=("mixed", "cases"), default="mixed", help="request mix (see above)")
    ap.add_argument("--callers", type=int, default=20, help="users (each with an API token) sending the requests")
    args = ap.parse_args()
    seconds = min(args.seconds, 300.0)
    with tempfile.TemporaryDirectory(prefix="sightline-bench-serve-") as tmp:
        tokens = _setup(Path(tmp) / "ws", args.orgs, args.callers, args.scenario == "cases")
        port = _free_port()
        exe = ROOT / ".venv" / "bin" / "sightline"
        cmd = [
            str(exe) if exe.exists() else "sightline",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workspace",
            str(Path(tmp) / "ws"),
        ]
        env = dict(os.environ, SIGHTLINE_SECRET="bench-secret-not-for-production")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            result = asyncio.run(_run(f"http://127.0.0.1:{port}", tokens, args.rate, seconds, args.orgs, args.scenario))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    result["scenario"] = args.scenario
    print(
        f"serve load ({args.scenario}): {result['requests']} requests at {args.rate:g}/s target over {result['seconds']} s "
        f"({result['orgs']} orgs): achieved {result['achieved_rate']}/s, p50 {result['p50_ms']} ms, "
        f"p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms; statuses {result['statuses']}, "
        f"transport errors {result['transport_errors']}; p50 by tenth of the run (ms): {result['p50_ms_by_tenth']}"
    )
    out = ROOT / "bench" / "results" / ("serve.json" if args.scenario == "mixed" else "serve-cases.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
