"""Kill ``sightline ingest`` / ``sightline collect`` with SIGKILL and check what the store says.

Shared by :mod:`tests.test_crash_safety` (a few trials on small inputs) and
``bench.reliability`` (many trials, bigger inputs).  Kill points are chosen by polling the
workspace (staging directory present, k files committed, a moved part not yet in the
manifest, ...), never by sleeping a fixed time, so each trial hits the state it names.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from sightline.store import Workspace

_SCRIPT = Path(sys.executable).parent / "sightline"
SIGHTLINE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-c", "from sightline.cli import main; main()"]
ZEEK_HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t"
    "orig_bytes\tresp_bytes\tconn_state\torig_pkts\tresp_pkts\n"
)

__all__ = [
    "write_zeek",
    "KillPoint",
    "INGEST_KILL_POINTS",
    "ingest_trial",
    "collect_trial",
    "check_store",
    "StoreState",
]


def write_zeek(path: Path, rows: int, seed: int, days: int = 2) -> Path:
    """A Zeek TSV conn.log of ``rows`` distinct flows spread over ``days`` days (vectorized)."""
    rng = np.random.default_rng(seed)
    ts = 1_709_251_200 + np.sort(rng.integers(0, days * 86_400, rows)) + rng.random(rows).round(6)
    src = rng.integers(0x0A000000, 0x0A00FFFF, rows)
    dst = rng.integers(0xC6336400, 0xC63364FF, rows)

    def dotted(a: np.ndarray) -> np.ndarray:
        parts = [((a >> s) & 255).astype(str) for s in (24, 16, 8, 0)]
        return np.char.add(
            np.char.add(
                np.char.add(np.char.add(parts[0], "."), np.char.add(parts[1], ".")), np.char.add(parts[2], ".")
            ),
            parts[3],
        )

    uid = np.char.add(f"S{seed}x", np.arange(rows).astype(str))  # unique per row: doubles are countable
    cols = [
        np.char.mod("%.6f", ts),
        uid,
        dotted(src),
        rng.integers(1024, 65535, rows).astype(str),
        dotted(dst),
        rng.choice(["443", "4433", "8443", "22"], rows),
        np.full(rows, "tcp"),
        np.full(rows, "ssl"),
        np.char.mod("%.3f", rng.random(rows) * 10),
        rng.integers(0, 10**6, rows).astype(str),
        rng.integers(0, 10**6, rows).astype(str),
        rng.choice(["SF", "S0", "REJ"], rows),
        rng.integers(1, 100, rows).astype(str),
        rng.integers(0, 100, rows).astype(str),
    ]
    body = "\n".join("\t".join(r) for r in zip(*cols))
    path.write_text(ZEEK_HEADER + body + "\n")
    return path


@dataclass(frozen=True)
class KillPoint:
    """A workspace state to wait for before SIGKILL; ``k`` parametrizes it (e.g. files committed)."""

    name: str
    k: int = 0


def _manifest_files(ws: Path) -> dict:
    try:
        return json.loads((ws / "manifest.json").read_text()).get("files", {})
    except (OSError, ValueError):
        return {}


def _staged(ws: Path) -> bool:
    st = ws / ".staging"
    try:
        return any(p.is_file() for p in st.rglob("*"))
    except OSError:
        return False


def _uncommitted_part(ws: Path) -> bool:
    listed = {p for e in _manifest_files(ws).values() for p in e.get("parts", [])}
    flows = ws / "flows"
    try:
        return any(str(p.relative_to(ws)) not in listed for p in flows.rglob("*.parquet"))
    except (OSError, ValueError):
        return False


def reached(ws: Path, kp: KillPoint) -> bool:
    """Whether the workspace is in the state ``kp`` names."""
    if kp.name == "staging":  # a file is being read and written to .staging/
        return _staged(ws)
    if kp.name == "committed":  # k input files are in the manifest
        return len(_manifest_files(ws)) >= kp.k
    if kp.name == "staging_after":  # k files committed and the next one is being staged
        return len(_manifest_files(ws)) >= kp.k and _staged(ws)
    if kp.name == "moved_not_listed":  # a part moved into flows/ before the manifest lists it
        return _uncommitted_part(ws)
    if kp.name == "started":  # the workspace exists (lock taken, nothing written yet)
        return (ws / ".lock").exists()
    raise ValueError(kp.name)


INGEST_KILL_POINTS = [
    KillPoint("started"),
    KillPoint("staging"),
    KillPoint("committed", 1),
    KillPoint("staging_after", 1),
    KillPoint("moved_not_listed"),
    KillPoint("committed", 2),
    KillPoint("staging_after", 2),
]


def _kill_when(proc: subprocess.Popen, ws: Path, kp: KillPoint, timeout: float = 120.0) -> bool:
    """Poll until ``kp`` is reached, then SIGKILL; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reached(ws, kp):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.0005)  # polling interval, not a timing assumption
    proc.kill()
    proc.wait()
    raise TimeoutError(f"kill point {kp} not reached")


@dataclass
class StoreState:
    files: int  # manifest entries
    rows: int  # rows the manifest promises
    stored: int  # rows DuckDB reads from manifest-listed parts
    distinct: int  # distinct flow uids among them
    by_source: dict[str, int]


def check_store(ws: Path) -> StoreState:
    """Open the store as a reader would; raise AssertionError on any inconsistency."""
    files = _manifest_files(ws)
    w = Workspace(ws)
    parts = w.flow_files()
    for p in parts:
        assert Path(p).is_file(), f"manifest lists a part that is missing: {p}"
    promised = sum(int(e["rows"]) for e in files.values())
    if not parts:
        assert promised == 0, "manifest promises rows but lists no parts"
        return StoreState(len(files), 0, 0, 0, {})
    con = duckdb.connect()
    rel = con.sql(
        "select source_file, count(*) n, count(distinct (ts, src_ip, src_port, dst_ip, dst_port, bytes_out)) d "
        f"from read_parquet({parts!r}) group by source_file"
    )
    by_source = {s: int(n) for s, n, _ in rel.fetchall()}
    distinct = sum(int(d) for _, _, d in rel.fetchall())
    stored = sum(by_source.values())
    for e in files.values():  # every acknowledged file has all of its rows, exactly once
        assert by_source.get(e["source_file"], 0) >= int(e["rows"]), f"rows lost for {e['source_file']}"
    assert stored == promised, f"store holds {stored} rows, manifest promises {promised}"
    con.close()
    return StoreState(len(files), promised, stored, distinct, by_source)


def ingest_trial(
    ws: Path, inputs: list[Path], kp: KillPoint, expected: dict[str, int], args: tuple[str, ...] = ()
) -> dict[str, object]:
    """Start an ingest, SIGKILL it at ``kp``, check the store, re-run to completion, check again.

    ``expected`` maps each input path (as passed) to its row count from a clean run; ``args``
    are more options of ``sightline ingest`` (``--jobs 2``).
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = SIGHTLINE + ["ingest", *map(str, inputs), "--workspace", str(ws), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    killed = _kill_when(proc, ws, kp)
    if not killed:  # it finished before the kill point: it must have finished cleanly
        assert proc.returncode == 0, proc.stderr.read()[-2000:] if proc.stderr else proc.returncode
    after_kill = check_store(ws)
    for src, n in after_kill.by_source.items():  # a committed file is whole
        assert n == expected[src], f"{src}: {n} rows visible after kill, file has {expected[src]}"
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = check_store(ws)
    assert final.by_source == expected, f"after re-run {final.by_source} != {expected}"
    assert final.distinct == final.stored, "a flow is stored twice"
    # orphans of the killed run were removed by the re-run: flows/ holds exactly the listed parts
    on_disk = sorted(str(p.resolve()) for p in (ws / "flows").rglob("*") if p.is_file())
    assert on_disk == Workspace(ws).flow_files(), "unlisted files left in flows/"
    # nothing of the killed run goes on writing (its worker processes died with it)
    assert not [p for p in (ws / ".staging").rglob("*") if p.is_file()], "staged files left behind"
    return {
        "kill_point": f"{kp.name}:{kp.k}",
        "killed": killed,
        "files_at_kill": after_kill.files,
        "rows_at_kill": after_kill.stored,
        "rows_final": final.stored,
    }


# ----------------------------------------------------------------------------- collector


def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def collect_trial(
    ws: Path, payloads: list[bytes], kill_after_batches: int, records_per_payload: int, batch_records: int
) -> dict[str, object]:
    """Run ``sightline collect``, send export datagrams, SIGKILL it after k committed batches.

    Checks: the store is readable, every committed batch is whole, no flow is stored twice,
    and a restarted collector (same workspace) adds new batches without doubling old ones.
    """
    proc, port = _start_collector(ws, batch_records, "collect")
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = 0
        for p in payloads:
            sock.sendto(p, ("127.0.0.1", port))
            sent += 1
            # pace by what the collector acknowledged, so the socket buffer never overflows
            deadline = time.monotonic() + 30
            while (sent * records_per_payload) - _committed_rows(ws) > 4 * batch_records:
                if time.monotonic() > deadline or proc.poll() is not None:
                    break
                time.sleep(0.001)
            if len(_manifest_files(ws)) >= kill_after_batches:
                break
        deadline = time.monotonic() + 30
        while len(_manifest_files(ws)) < kill_after_batches and time.monotonic() < deadline:
            time.sleep(0.001)
        acknowledged = check_store(ws)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = check_store(ws)
    assert after.stored >= acknowledged.stored, "acknowledged flows lost after SIGKILL"
    assert after.distinct == after.stored, "a flow is stored twice"
    assert after.stored <= sent * records_per_payload, "more flows stored than were sent"
    return {"batches_at_kill": after.files, "rows_at_kill": after.stored, "sent_records": sent * records_per_payload}


def _start_collector(ws: Path, batch_records: int, tag: str) -> tuple[subprocess.Popen, int]:
    """Start ``sightline collect`` on a free loopback port (stderr to ``<ws>.<tag>.log``) and
    wait until it is listening; the caller stops it."""
    port = _free_udp_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = SIGHTLINE + [
        "collect",
        "--netflow-port",
        str(port),
        "--workspace",
        str(ws),
        "--batch-records",
        str(batch_records),
        "--rotate-seconds",
        "3600",
    ]
    log = ws.parent / f"{ws.name}.{tag}.log"
    with open(log, "w") as errf:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, env=env)
    try:
        _wait_listening(proc, log)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, port


def _wait_listening(proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    """Wait until the collector says it is bound ("collecting on UDP ...", on stderr)."""
    deadline = time.monotonic() + timeout
    while "collecting on UDP" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"collector did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.005)


def _committed_rows(ws: Path) -> int:
    return sum(int(e.get("rows", 0)) for e in _manifest_files(ws).values())


def restart_collect(ws: Path, payloads: list[bytes], records_per_payload: int, batch_records: int) -> StoreState:
    """Run a second collector on the same workspace, send ``payloads`` (paced), stop it with
    SIGTERM (it drains and commits what it holds) and check the store."""
    before = _committed_rows(ws)
    proc, port = _start_collector(ws, batch_records, "restart")
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i, p in enumerate(payloads, start=1):
            sock.sendto(p, ("127.0.0.1", port))
            deadline = time.monotonic() + 30
            while i * records_per_payload - (_committed_rows(ws) - before) > 4 * batch_records:
                if time.monotonic() > deadline or proc.poll() is not None:
                    break
                time.sleep(0.001)
        sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return check_store(ws)
