"""`sightline demo`: simulate, hunt and report in one command, with the simulated world's geo."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app


def test_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--flows", "30000", "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert f"report: {(out / 'report.html').resolve()}" in res.output.replace("\n", "")
    doc = json.loads((out / "findings.json").read_text())
    truth = json.loads((out / "scenario" / "truth.json").read_text())["organizations"]
    assert {o["org_id"]: o["verdict"] for o in doc["organizations"]} == truth
    # organizations and actor servers are placed in their real networks by the geo tables
    assert all(o["asns"] for o in doc["organizations"])
    # (an actor address inside a victim's network -- the simulated relay -- is described as the
    # victim's, without geo: assess.infrastructure)
    outside = [a for a in doc["actor_infrastructure"] if not a["victim_owned"]]
    assert outside and all(a["asn"] and a["country"] for a in outside)
    assert any(a["victim_owned"] and a["hosting"] == "victim network" for a in doc["actor_infrastructure"])
    html = (out / "report.html").read_text()
    assert "Actor infrastructure" in html and "not where the operators sit" in html
