"""Hostile input generators (streamed, never held in memory whole) and a child-process runner
that reports peak RSS.  Shared by the hostile-input tests and ``bench.reliability``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import zstandard

__all__ = [
    "ZEEK_HEAD",
    "ZEEK_ROW",
    "write_long_line",
    "write_zstd_bomb",
    "write_gzip_bomb",
    "ingest_in_child",
    "intel_in_child",
    "scans_in_child",
]

ZEEK_HEAD = (
    b"#separator \\x09\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\t"
    b"service\tduration\torig_bytes\tresp_bytes\tconn_state\torig_pkts\tresp_pkts\n"
)
ZEEK_ROW = b"1709251200.5\tC1\t203.0.113.5\t49152\t198.51.100.7\t443\ttcp\tssl\t1.5\t100\t200\tSF\t3\t3\n"
_MB = 1 << 20


def write_long_line(path: Path, size: int, *, before: int = 2, after: int = 2) -> Path:
    """A Zeek TSV log whose middle line is ``size`` bytes long (written in 1 MiB pieces)."""
    with open(path, "wb") as fh:
        fh.write(ZEEK_HEAD + ZEEK_ROW * before)
        piece = b"A" * _MB
        left = size
        while left > 0:
            fh.write(piece[: min(left, _MB)])
            left -= _MB
        fh.write(b"\n" + ZEEK_ROW * after)
    return path


def write_zstd_bomb(path: Path, size: int, body: bytes = ZEEK_ROW, head: bytes = ZEEK_HEAD) -> Path:
    """``head`` then ``body`` repeated up to ``size`` bytes, zstd-compressed as a stream."""
    block = body * max(1, _MB // len(body))
    cctx = zstandard.ZstdCompressor(level=3)
    with open(path, "wb") as fh, cctx.stream_writer(fh) as w:
        _fill(w, head, block, size)
    return path


def _fill(w, head: bytes, block: bytes, size: int) -> None:  # type: ignore[no-untyped-def]
    """Write ``head``, then ``block`` until at least ``size`` bytes of it are written."""
    w.write(head)
    done = 0
    while done < size:
        w.write(block)
        done += len(block)


def write_gzip_bomb(path: Path, size: int, body: bytes = ZEEK_ROW, head: bytes = ZEEK_HEAD) -> Path:
    import gzip

    block = body * max(1, _MB // len(body))
    with gzip.open(path, "wb", compresslevel=9) as w:
        _fill(w, head, block, size)
    return path


_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
kind, arg, ws = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
try:
    if kind == "ingest":
        from sightline.ingest import ingest_paths
        from sightline.store import Workspace
        s = ingest_paths(Workspace(ws), [arg])
        f = s.files[0]
        out = {"rows": f.rows, "quarantined": f.quarantined, "reason": f.reason, "format": f.format}
        import pyarrow.parquet as pq
        q = Workspace(ws).quarantine_files()
        out["quarantine_reasons"] = sorted({r for p in q for r in pq.read_table(p).column("reason").to_pylist()})[:20]
    elif kind == "intel":
        from sightline.intel import load_intel_files
        load = load_intel_files([Path(arg)])
        out = {"rows": load.table.num_rows}
    elif kind == "scans":
        from sightline.exposure.scans import load_scans
        load = load_scans([arg])
        out = {"rows": load.services.num_rows, "quarantine_reasons": load.quarantine.column("reason").to_pylist()[:5]}
except Exception as e:
    from sightline.errors import SightlineError
    out = {"error": type(e).__name__, "typed": isinstance(e, SightlineError), "message": str(e)[:300]}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["seconds"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def _child(kind: str, arg: Path, ws: Path, timeout: float) -> dict:
    p = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(arg), str(ws)], capture_output=True, text=True, timeout=timeout
    )
    if p.returncode != 0:
        raise AssertionError(f"child crashed (rc {p.returncode}): {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def ingest_in_child(path: Path, ws: Path, timeout: float = 600) -> dict:
    """``ingest_paths`` on one file in a fresh interpreter: counts, reasons, peak RSS (MiB)."""
    return _child("ingest", path, ws, timeout)


def intel_in_child(path: Path, ws: Path, timeout: float = 600) -> dict:
    return _child("intel", path, ws, timeout)


def scans_in_child(path: Path, ws: Path, timeout: float = 600) -> dict:
    return _child("scans", path, ws, timeout)


def baseline_rss_mb() -> float:
    """Peak RSS of a child that only imports what the ingest child imports (to subtract)."""
    code = (
        "import resource, json; import sightline.ingest, sightline.intel, sightline.exposure.scans; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


if __name__ == "__main__":  # pragma: no cover - manual probing
    print(json.dumps(ingest_in_child(Path(sys.argv[1]), Path(sys.argv[2]))))
