"""The same simulated campaign, written as Zeek, NetFlow v9 (one record per flow, forward
direction only: no reverse counters), IPFIX biflow and Suricata eve.json flow events, gives the
same organization verdicts -- the real-traffic shapes included (popular services and research
scanners the intel names, refused callbacks, a relay inside a registered organization)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.simulate import simulate

FORMATS = ["zeek_tsv", "netflow_v9", "ipfix", "suricata_eve"]


@pytest.fixture(scope="module")
def hunted(tmp_path_factory):
    """Per format: (truth.json, organization verdicts found), simulated and hunted once."""
    cache: dict[str, tuple[dict, dict[str, str]]] = {}

    def run(fmt: str) -> tuple[dict, dict[str, str]]:
        if fmt not in cache:
            tmp = tmp_path_factory.mktemp(fmt)
            sim = simulate(tmp / "sim", seed=77, flows=60_000, days=3, formats=(fmt,))
            out = tmp / "out"
            args = ["hunt", "--orgs", str(sim.orgs), "--out", str(out), "-w", str(tmp / "ws")]
            for t in sim.telemetry:
                args += ["-t", str(t)]
            for i in sim.intel:
                args += ["-i", str(i)]
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 0, res.output
            doc = json.loads((out / "findings.json").read_text())
            cache[fmt] = (
                json.loads(Path(sim.truth).read_text()),
                {o["org_id"]: o["verdict"] for o in doc["organizations"]},
            )
        return cache[fmt]

    return run


@pytest.mark.parametrize("fmt", FORMATS)
def test_verdicts_match_truth_in_every_format(hunted, fmt: str) -> None:
    truth_doc, found = hunted(fmt)
    assert found == truth_doc["organizations"]


def test_refused_callbacks_in_netflow_v9(hunted) -> None:
    """One-way records whose flags show only the caller's SYN are unanswered attempts."""
    truth_doc, found = hunted("netflow_v9")
    org = truth_doc["real_traffic"]["refused_callbacks"]["org_id"]
    assert truth_doc["organizations"][org] == "compromised"
    assert found.get(org) == "compromised"
