"""The same simulated campaign, written as Zeek, NetFlow v9 (one record per direction seen
by the exporter), IPFIX biflow and Suricata eve.json flow events, gives the same organization
verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.simulate import simulate


@pytest.mark.parametrize("fmt", ["zeek_tsv", "netflow_v9", "ipfix", "suricata_eve"])
def test_verdicts_match_truth_in_every_format(tmp_path: Path, fmt: str) -> None:
    sim = simulate(tmp_path / "sim", seed=77, flows=60_000, days=3, formats=(fmt,))
    out = tmp_path / "out"
    args = ["hunt", "--orgs", str(sim.orgs), "--out", str(out), "-w", str(tmp_path / "ws")]
    for t in sim.telemetry:
        args += ["-t", str(t)]
    for i in sim.intel:
        args += ["-i", str(i)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    truth = json.loads(Path(sim.truth).read_text())["organizations"]
    found = {o["org_id"]: o["verdict"] for o in doc["organizations"]}
    assert found == truth
