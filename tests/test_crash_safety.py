"""SIGKILL ``sightline ingest`` and ``sightline collect`` mid-run; the store must stay consistent.

After each kill: DuckDB reads every manifest-listed part; a file listed in the manifest has
all of its rows; nothing unlisted is visible to readers.  After re-running the same ingest:
every input is stored exactly once and the killed run's orphans are gone.  The collector,
killed after k committed batches, keeps every acknowledged flow, doubles none, and a
restarted collector on the same workspace adds to it cleanly.

Six trials here on small inputs; ``make reliability`` runs many more on bigger ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash_support import KillPoint, check_store, collect_trial, ingest_trial, restart_collect, write_zeek

ROWS = 12_000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, int]]:
    d = tmp_path_factory.mktemp("inputs")
    files = [write_zeek(d / f"conn{i}.log", ROWS + 1000 * i, seed=i) for i in range(3)]
    return files, {str(f): ROWS + 1000 * i for i, f in enumerate(files)}


@pytest.mark.parametrize(
    "kp",
    [
        KillPoint("started"),
        KillPoint("staging"),
        KillPoint("committed", 1),
        KillPoint("staging_after", 1),
        KillPoint("committed", 2),
    ],
    ids=lambda kp: f"{kp.name}-{kp.k}",
)
def test_ingest_killed_store_consistent_and_rerun_exact(tmp_path: Path, inputs, kp: KillPoint) -> None:
    files, expected = inputs
    res = ingest_trial(tmp_path / "ws", files, kp, expected)
    assert res["killed"], f"ingest finished before reaching {kp}"
    assert res["rows_final"] == sum(expected.values())


@pytest.mark.parametrize(
    "kp",
    [KillPoint("staging"), KillPoint("committed", 1), KillPoint("moved_not_listed"), KillPoint("committed", 3)],
    ids=lambda kp: f"{kp.name}-{kp.k}",
)
def test_parallel_ingest_killed_rerun_exact(tmp_path: Path, many_inputs, kp: KillPoint) -> None:
    """``--jobs 2``: worker processes stage files while this one commits; SIGKILL of the ingest
    leaves a readable store, and a re-run (in parallel too) stores every flow exactly once."""
    files, expected = many_inputs
    res = ingest_trial(tmp_path / "ws", files, kp, expected, ("--jobs", "2"))
    assert res["killed"], f"ingest finished before reaching {kp}"
    assert res["rows_final"] == sum(expected.values())


@pytest.fixture(scope="module")
def many_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, int]]:
    d = tmp_path_factory.mktemp("many")
    files = [write_zeek(d / f"conn{i}.log", ROWS + 500 * i, seed=100 + i) for i in range(6)]
    return files, {str(f): ROWS + 500 * i for i, f in enumerate(files)}


def test_collect_killed_keeps_acknowledged_batches(tmp_path: Path) -> None:
    from sightline.ingest.nfexport import encode_export, synthetic_flows

    per_packet, batch = 20, 100
    flows = synthetic_flows(1200, seed=11)
    payloads = encode_export(flows, 9, per_packet=per_packet)
    ws = tmp_path / "ws"
    res = collect_trial(ws, payloads, kill_after_batches=3, records_per_payload=per_packet, batch_records=batch)
    assert res["batches_at_kill"] >= 3 and res["rows_at_kill"] >= 3 * batch
    # a restarted collector on the same workspace: new flows added, old ones neither lost nor doubled
    more = encode_export(synthetic_flows(400, seed=12), 9, per_packet=per_packet)
    final = restart_collect(ws, more, per_packet, batch)
    assert final.stored == res["rows_at_kill"] + 400
    assert final.distinct == final.stored
    assert check_store(ws).stored == final.stored
