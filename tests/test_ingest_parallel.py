"""Parallel ingest (``--jobs N``): many files read at once by worker processes end in the same
store as one process reading them in turn -- the same manifest (entries, order, counts, what
was skipped as already ingested or read only from where a grown file continues), the same
flows and the same quarantine -- and ingesting it all again adds nothing."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.ingest import auto_jobs, ingest_paths
from sightline.store import Workspace, read_parts

from . import datafiles
from .crash_support import write_zeek
from .zeekgen import conn, write_tsv

ALREADY = "already ingested (same content as "


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A day's worth of rotated logs with everything that makes files depend on each other."""
    d = tmp_path_factory.mktemp("telemetry")
    for i in range(4):
        write_zeek(d / f"conn.{i}.log", 3000 + 500 * i, seed=i)
    # the same content compressed, and renamed: nothing new
    (d / "conn.0.copy.log.gz").write_bytes(gzip.compress((d / "conn.0.log").read_bytes()))
    shutil.copy(d / "conn.1.log", d / "conn.1.renamed.log")
    # a live log read before it grew ("conn.live.a") and after ("conn.live.b"): only the tail is new
    grown = write_zeek(d / "conn.live.b.log", 4000, seed=7)
    data = grown.read_bytes()
    cut = data.index(b"\n", len(data) * 2 // 3) + 1
    (d / "conn.live.a.log").write_bytes(data[:cut])
    # bad records: a short line and a port out of range are quarantined, their neighbours kept
    rows = [conn(1_709_280_000.0 + i, "10.1.0.1", 40000 + i, "198.51.100.9", 443) for i in range(50)]
    write_tsv(
        d / "conn.bad.log", rows, extra_lines=[(10, "1709280000.5\tCshort\t10.1.0.2"), (20, "\t".join(["x"] * 3))]
    )
    bad_port = dict(rows[0], **{"id.resp_p": 70000, "ts": 1_709_280_100.0})
    write_tsv(d / "conn.port.log", rows[:5] + [bad_port])
    # DNS answers, TLS names and certificates (the names dataset), and Suricata flows with names
    for name in ("dns.log.gz", "ssl.log.gz", "x509.log.gz"):
        shutil.copy(datafiles.WRCCDC / "zeek-default" / name, d / name)
    shutil.copy(datafiles.SLIPS / "test6-malicious.suricata.json.gz", d / "eve.json.gz")
    (d / "empty.log").write_bytes(b"")
    (d / "notes.txt").write_text("not telemetry\n")
    return d


def _store(root: Path) -> dict:
    ws = Workspace(root)
    files = ws.manifest()["files"]
    keep = ("source_file", "format", "rows", "quarantined", "quarantined_total", "parts", "name_parts")
    keep += ("content_sha256", "content_size", "appended_to", "read_from", "quarantine_file")
    entries = [(k, {f: e.get(f) for f in keep}) for k, e in files.items()]
    flows = read_parts(ws.flow_files()).sort_by([("source_file", "ascending"), ("ts", "ascending")])
    names = sorted(repr(sorted(r.items())) for p in ws.name_files() for r in pq.read_table(p).to_pylist())
    quarantine = sorted(
        (r["source_file"], r["position"], r["reason"])
        for q in ws.quarantine_files()
        for r in pq.read_table(q).to_pylist()
    )
    return {"entries": entries, "flows": flows, "names": names, "quarantine": quarantine}


def _results(summary) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(f.path, f.format, f.rows, f.quarantined, f.skipped, f.empty, f.reason, f.note) for f in summary.files]


def test_jobs_two_same_store_as_one(tmp_path: Path, telemetry: Path) -> None:
    one = ingest_paths(Workspace(tmp_path / "one"), [telemetry], jobs=1)
    two = ingest_paths(Workspace(tmp_path / "two"), [telemetry], jobs=2)
    assert _results(two) == _results(one)
    a, b = _store(tmp_path / "one"), _store(tmp_path / "two")
    assert b["entries"] == a["entries"]
    assert b["flows"].equals(a["flows"])
    assert b["quarantine"] == a["quarantine"]
    assert b["names"] == a["names"] and len(a["names"]) > 100

    # what the files are, as a user sees it: copies skipped, the grown log read from where it continued
    by_name = {Path(f.path).name: f for f in two.files}
    assert by_name["conn.0.copy.log.gz"].rows == 3000  # first in order: read; the plain file is then a copy
    assert by_name["conn.0.log"].skipped and by_name["conn.0.log"].reason.startswith(ALREADY)
    assert by_name["conn.1.renamed.log"].skipped
    assert by_name["conn.live.b.log"].note and by_name["conn.live.b.log"].rows == 4000 - by_name["conn.live.a.log"].rows
    assert by_name["conn.bad.log"].rows == 50 and by_name["conn.bad.log"].quarantined == 2
    assert by_name["conn.port.log"].rows == 5 and by_name["conn.port.log"].quarantined == 1
    assert by_name["empty.log"].empty and by_name["notes.txt"].reason
    distinct = b["flows"].group_by(["source_file", "ts", "src_port"]).aggregate([]).num_rows
    assert distinct == b["flows"].num_rows == two.rows  # every flow once

    # and again, in parallel: nothing added, nothing changed
    again = ingest_paths(Workspace(tmp_path / "two"), [telemetry], jobs=2)
    assert again.rows == 0
    assert all(f.skipped or f.reason for f in again.files)
    assert _store(tmp_path / "two")["entries"] == b["entries"]
    assert not any((tmp_path / "two" / ".staging").rglob("*.parquet")), "staging left behind"


def test_cli_jobs(tmp_path: Path, telemetry: Path) -> None:
    ws = tmp_path / "ws"
    r = CliRunner().invoke(app, ["ingest", str(telemetry), "--workspace", str(ws), "--jobs", "2"])
    assert r.exit_code == 0, r.output
    ref = ingest_paths(Workspace(tmp_path / "ref"), [telemetry], jobs=1)
    assert Workspace(ws).counts()["flows"] == ref.rows
    assert (
        json.loads((ws / "manifest.json").read_text())["files"].keys()
        == Workspace(tmp_path / "ref").manifest()["files"].keys()
    )


def test_auto_jobs_reads_little_input_in_process(telemetry: Path) -> None:
    files = sorted(p for p in telemetry.iterdir() if p.is_file())
    assert auto_jobs(files) == 1  # a few MB: worker processes would cost more than they save
    assert auto_jobs(files[:1]) == 1
