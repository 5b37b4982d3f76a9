"""--strict: a run that quarantined records or skipped input exits 2, after keeping what was good."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app
from sightline.store import Workspace

from .zeekgen import conn, write_tsv

DAY = 1709251200.0


def _run(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_strict_ingest_and_hunt(tmp_path: Path) -> None:
    rows = [conn(DAY + k, "203.0.113.5", 40000 + k, "45.77.1.10", 443) for k in range(5)]
    log = write_tsv(tmp_path / "c.log", rows, extra_lines=[(2, "this\tis\tnot\ta\tconn\trecord")])
    res = _run(["ingest", str(log), "--workspace", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    res = _run(["ingest", str(log), "--strict", "--workspace", str(tmp_path / "b")])
    assert res.exit_code == 2, res.output
    assert "1 record(s) quarantined in 1 file(s)" in res.output
    assert Workspace(tmp_path / "b").counts()["flows"] == 5  # the good records are stored all the same

    intel = tmp_path / "i.csv"
    intel.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n45.77.1.10,ipv4,RedJuliett,,,80,amber\n"
    )
    clean = write_tsv(tmp_path / "clean.log", rows)
    res = _run(["hunt", "-t", str(clean), "-i", str(intel), "--strict", "--workspace", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    res = _run(["hunt", "-t", str(log), "-i", str(intel), "--strict", "--workspace", str(tmp_path / "d")])
    assert res.exit_code == 2 and "strict:" in res.output


def test_strict_intel_add(tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n45.77.1.10,ipv4,RedJuliett,,,80,amber\n"
        "not-an-indicator-at-all!,ipv4,RedJuliett,,,80,amber\n"
    )
    ws = str(tmp_path / "ws")
    assert _run(["intel", "add", str(feed), "--workspace", ws]).exit_code == 0
    res = _run(["intel", "add", str(feed), "--strict", "--workspace", ws])
    assert res.exit_code == 2 and "1 object(s) skipped" in res.output, res.output
