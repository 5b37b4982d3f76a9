"""Empty telemetry files (rotated logs of a quiet interval) are skipped and counted, not errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import zstandard
from typer.testing import CliRunner

from sightline.cli import app
from sightline.ingest import EMPTY_FILE, ingest_paths
from sightline.store import Workspace

from .zeekgen import conn, write_tsv

EMPTY = {
    "zero_bytes": ("conn.log", b""),
    "whitespace": ("conn.log", b"  \n\n\t\r\n"),
    "empty_gz": ("conn.log.gz", gzip.compress(b"")),
    "whitespace_gz": ("conn.log.gz", gzip.compress(b"\n\n")),
    "empty_zst": ("conn.log.zst", zstandard.ZstdCompressor().compress(b"")),
    "zero_bytes_gz_name": ("conn.log.gz", b""),
}


def _write(tmp_path: Path, case: str) -> Path:
    name, data = EMPTY[case]
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _run(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _text(res) -> str:  # type: ignore[no-untyped-def]
    """The output with the console's line wrapping undone."""
    return " ".join(res.output.split())


@pytest.mark.parametrize("case", list(EMPTY), ids=list(EMPTY))
def test_empty_file_is_skipped_and_counted(tmp_path: Path, case: str) -> None:
    p = _write(tmp_path, case)
    s = ingest_paths(Workspace(tmp_path / "ws"), [p])
    f = s.files[0]
    assert (f.empty, f.skipped, f.reason, f.rows) == (True, True, EMPTY_FILE, 0)
    assert s.errors == [] and s.empty == [f]


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_ingest_cli_empty_file_exit_0_with_note(tmp_path: Path, strict: bool) -> None:
    """Like a header-only Zeek log, an empty file is no error, not even under --strict."""
    empty = _write(tmp_path, "zero_bytes")
    header_only = write_tsv(tmp_path / "header.log", [])
    res = _run(
        ["ingest", str(empty), str(header_only), "--workspace", str(tmp_path / "ws")] + (["--strict"] if strict else [])
    )
    assert res.exit_code == 0, res.output
    assert f"skipped {empty}: empty file, nothing to ingest" in _text(res)
    assert "1 empty (skipped)" in _text(res)


def test_hunt_with_only_empty_telemetry_exit_0(tmp_path: Path) -> None:
    intel = tmp_path / "i.csv"
    intel.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n45.77.1.10,ipv4,RedJuliett,,,80,amber\n"
    )
    empty = _write(tmp_path, "empty_gz")
    res = _run(["hunt", "-t", str(empty), "-i", str(intel), "--strict", "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    assert "empty file, nothing to ingest" in _text(res) and "unknown format" not in _text(res)


def test_empty_files_are_not_taken_for_duplicates(tmp_path: Path) -> None:
    """Every empty file has the same hash: none may be 'already ingested', even with --format."""
    ws = Workspace(tmp_path / "ws")
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"")
    b.write_bytes(b"")
    s = ingest_paths(ws, [a, b], fmt_name="zeek_tsv")
    assert [f.reason for f in s.files] == [EMPTY_FILE, EMPTY_FILE]
    rows = [conn(1709251200.0, "10.0.0.1", 1, "10.0.0.2", 80)]
    assert ingest_paths(ws, [write_tsv(tmp_path / "c.log", rows)]).rows == 1


def test_whitespace_beyond_the_sniffed_head_then_data_is_not_empty(tmp_path: Path) -> None:
    p = tmp_path / "odd.log"
    p.write_bytes(b"\n" * 70_000 + b"some data")
    f = ingest_paths(Workspace(tmp_path / "ws"), [p]).files[0]
    assert not f.empty and f.reason and "unknown format" in f.reason
