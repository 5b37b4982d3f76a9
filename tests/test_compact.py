"""Compaction: a day's parts become one locality-sorted part, with the same findings."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sightline import net
from sightline.cli import _common_options, app
from sightline.ingest import ingest_paths
from sightline.pipeline import detect_workspace, hunt
from sightline.store import FlowWriter, Workspace, flows_table_from_columns, writer
from sightline.store import compact as cp
from sightline.store import index as ix

from .test_hunt_e2e import C2, scenario
from .test_index import _history, _stable


def _c2() -> pa.Table:
    v = net.parse_ips(pa.array([C2])).v4
    return ix.ips_as_indicators(pa.table({"ip4": v, "ip6": pa.nulls(1, net.IPV6_TYPE)}))


@pytest.fixture
def many_parts(tmp_path: Path, monkeypatch) -> tuple[Workspace, dict[str, Path]]:
    """Four input files of the same day, each with a few beacons to C2: four parts."""
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 2_000)
    files = scenario(tmp_path)
    ws = Workspace(tmp_path / "ws")
    hunt(ws, telemetry=[files["conn"]], intel=[files["intel"]], orgs_csv=files["orgs"])
    for k in range(4):
        planted = [(5_000 + 1_000 * j, "203.0.113.7", C2) for j in range(8)]
        _history(ws, 20_000, 10 + k, f"{k + 1:02d}" * 32, planted)
    return ws, files


def _rows(ws: Workspace) -> list[tuple]:
    t = pa.concat_tables(
        [pq.read_table(f, columns=["ts", "src_ip", "dst_ip", "src_port", "bytes_out"]) for f in ws.flow_files()]
    )
    return sorted(zip(*(t.column(c).to_pylist() for c in t.column_names)))


def test_same_findings_fewer_parts_and_row_groups(many_parts) -> None:
    ws, _ = many_parts
    before_doc = detect_workspace(ws, index="off").to_dict()
    before_rows = _rows(ws)
    parts_before = cp.day_parts(ws)
    busiest = max(parts_before, key=lambda d: len(parts_before[d]))
    assert len(parts_before[busiest]) >= 5
    sel_before = ix.candidate_row_groups(ws, ws.flow_files(), _c2())

    res = cp.compact(ws)
    assert busiest in {d.day for d in res.days}
    assert all(len(v) == 1 for v in cp.day_parts(ws).values())
    assert _rows(ws) == before_rows  # every flow once: nothing lost, nothing doubled
    sel_after = ix.candidate_row_groups(ws, ws.flow_files(), _c2())
    assert sum(map(len, sel_after.values())) < sum(map(len, sel_before.values()))
    for mode in ("off", "on"):
        assert _stable(detect_workspace(ws, index=mode).to_dict()) == _stable(before_doc)
    assert cp.compact(ws).days == []  # nothing left to do


def test_reingesting_a_compacted_file_is_still_skipped(many_parts) -> None:
    ws, files = many_parts
    rows = len(_rows(ws))
    cp.compact(ws)
    summary = ingest_paths(ws, [files["conn"]])
    assert summary.files[0].skipped
    assert len(_rows(ws)) == rows


def test_hunts_that_listed_the_old_parts_can_still_read_them(many_parts, monkeypatch) -> None:
    ws, _ = many_parts
    listed = ws.flow_files()
    cp.compact(ws)
    with ws.lock():
        ws.cleanup_orphans()  # an ingest starting meanwhile keeps retired parts within the grace
    assert sum(pq.read_metadata(f).num_rows for f in listed) == len(_rows(ws))
    monkeypatch.setenv("SIGHTLINE_RETIRE_GRACE_S", "0")
    res = cp.compact(ws)
    assert res.retired_deleted == len(set(listed) - set(ws.flow_files()))
    assert not any(Path(f).exists() for f in set(listed) - set(ws.flow_files()))
    assert ws.manifest().get("retired") == {}


def test_a_crash_before_the_swap_leaves_the_store_as_it_was(many_parts, monkeypatch) -> None:
    ws, _ = many_parts
    before = _rows(ws)
    files_before = ws.flow_files()

    def crash(manifest: dict) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ws, "write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        cp.compact(ws)
    monkeypatch.undo()
    assert ws.flow_files() == files_before and _rows(ws) == before
    with ws.lock():
        assert ws.cleanup_orphans() >= 1  # the merged part nobody committed
    ix.prune_orphans(ws)
    assert cp.compact(ws).days  # and it can simply run again
    assert _rows(ws) == before


def test_today_is_left_to_the_collector(tmp_path: Path) -> None:
    import time

    import numpy as np

    ws = Workspace(tmp_path / "ws")
    ws.ensure()
    now_us = int(time.time() * 1e6)
    for k in range(3):
        w = FlowWriter(ws, f"{k + 7:02d}" * 32, f"batch{k}", "netflow_v9")
        n = 100
        w.write(
            flows_table_from_columns(
                {
                    "ts": pa.array(np.full(n, now_us - 1000 * k, np.int64), pa.timestamp("us", tz="UTC")),
                    "src_ip": pa.array(np.arange(n, dtype=np.uint32) + 0x0A000001, pa.uint32()),
                    "dst_ip": pa.array(np.full(n, 0x5DB80001, np.uint32), pa.uint32()),
                },
                n,
            )
        )
        w.commit(None)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    if len(cp.day_parts(ws).get(today, [])) != 3:
        pytest.skip("the UTC day changed while the test ran")
    assert cp.compact(ws).days == []
    assert [d.day for d in cp.compact(ws, include_today=True).days] == [today]


def test_cli(many_parts) -> None:
    ws, _ = many_parts
    res = CliRunner().invoke(app, ["compact", "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    assert "compacted" in res.output and "parts" in res.output
    # every command takes --engine (the design's contract), through the same preprocessing as main()
    res = CliRunner().invoke(app, _common_options(["compact", "-w", str(ws.root), "--engine", "duckdb"]))
    assert res.exit_code == 0 and "nothing to compact" in res.output
    assert json.loads((ws.root / "manifest.json").read_text())["retired"]


def test_an_unreadable_part_leaves_its_day_alone(many_parts, tmp_path: Path) -> None:
    ws, _ = many_parts
    parts = cp.day_parts(ws)
    busiest = max(parts, key=lambda d: len(parts[d]))
    victim = ws.root / parts[busiest][0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # a torn file
    res = CliRunner().invoke(app, ["compact", "-w", str(ws.root)])
    assert res.exit_code == 2
    assert busiest in res.output and "not compacted" in res.output
    assert cp.day_parts(ws)[busiest] == parts[busiest]  # untouched, nothing half-done
    assert not (ws.staging_dir / f"compact-{busiest}").exists()


def test_a_bad_grace_setting_falls_back_to_the_default(many_parts, monkeypatch, caplog) -> None:
    ws, _ = many_parts
    listed = ws.flow_files()
    cp.compact(ws)
    monkeypatch.setenv("SIGHTLINE_RETIRE_GRACE_S", "one hour")
    with ws.lock():
        ws.cleanup_orphans()  # must not fail every ingest over a typo
    assert all(Path(f).exists() for f in listed)  # default grace (an hour) still protects them
    assert "SIGHTLINE_RETIRE_GRACE_S" in caplog.text
