"""MISP events through PyMISP's model, CVE links, and the intel CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app
from sightline.intel import actor_cves, add_to_workspace, load_intel_files, read_indicators
from sightline.store import Workspace

HERE = Path(__file__).parent / "data" / "intel"


def test_misp_event_attributes_tags_galaxy_sightings():
    load = load_intel_files([HERE / "misp_event.json"])
    rep = load.report[0]
    assert rep.format == "misp" and rep.read == 9 and rep.loaded == 5 and rep.revoked == 1
    reasons = {s.position.rsplit("-", 1)[1]: s.reason for s in rep.skips}
    assert reasons["00000000a004"].startswith("not for detection")
    assert "regkey" in reasons["00000000a005"] and "192.0.2.300" in reasons["00000000a006"]
    rows = {r["value"]: r for r in load.table.to_pylist()}
    assert rows["198.51.100.7"]["actor"] == "RedJuliett" and rows["198.51.100.7"]["tlp"] == "green"
    assert rows["198.51.100.7"]["valid_until"].date().isoformat() == "2024-05-31"
    assert rows["192.0.2.10"]["port"] == 5555 and rows["192.0.2.10"]["tlp"] == "amber"  # attribute tag wins
    assert rows["vpn.example-bad.com"]["type"] == "domain"
    assert rows["203.0.113.50"]["confidence"] == 25  # one false-positive sighting
    assert rows["2aa12e5989065951be84ce932b65bd197dd6be3fa987838bad48536c0c74d145"]["type"] == "x509_sha256"
    assert "5f6b2c1e-0000-4000-8000-00000000a008" in load.revoked_ids


def test_stix_exploits_vulnerability_gives_actor_cves(tmp_path):
    bundle = {
        "type": "bundle",
        "id": "bundle--0c6f6b8e-1111-4b53-a4b8-5b0c7d5a3333",
        "objects": [
            {
                "type": "intrusion-set",
                "spec_version": "2.1",
                "id": "intrusion-set--0f1b5d44-7c2a-4d4e-9a4b-1b0d3f6a0001",
                "created": "2024-01-01T00:00:00.000Z",
                "modified": "2024-01-01T00:00:00.000Z",
                "name": "RedJuliett",
            },
            {
                "type": "vulnerability",
                "spec_version": "2.1",
                "id": "vulnerability--5d2f5c3a-0000-4000-8000-000000000001",
                "created": "2024-01-01T00:00:00.000Z",
                "modified": "2024-01-01T00:00:00.000Z",
                "name": "CVE-2023-46805",
                "external_references": [{"source_name": "cve", "external_id": "CVE-2023-46805"}],
            },
            {
                "type": "vulnerability",
                "spec_version": "2.1",
                "id": "vulnerability--5d2f5c3a-0000-4000-8000-000000000002",
                "created": "2024-01-01T00:00:00.000Z",
                "modified": "2024-01-01T00:00:00.000Z",
                "name": "CVE-2000-0001",
            },
            {
                "type": "relationship",
                "spec_version": "2.1",
                "id": "relationship--5d2f5c3a-0000-4000-8000-000000000003",
                "created": "2024-01-01T00:00:00.000Z",
                "modified": "2024-01-01T00:00:00.000Z",
                "relationship_type": "exploits",
                "source_ref": "intrusion-set--0f1b5d44-7c2a-4d4e-9a4b-1b0d3f6a0001",
                "target_ref": "vulnerability--5d2f5c3a-0000-4000-8000-000000000001",
            },
        ],
    }
    p = tmp_path / "cves.json"
    p.write_text(json.dumps(bundle))
    load = load_intel_files([p])
    assert load.actor_cves == ["CVE-2023-46805"]  # the unlinked vulnerability is not the actor's
    ws = Workspace(tmp_path / "ws").ensure()
    add_to_workspace(ws, load)
    assert actor_cves(ws) == ["CVE-2023-46805"]


def test_cli_intel_add_and_status(tmp_path):
    ws = tmp_path / "ws"
    r = CliRunner().invoke(
        app, ["intel", "add", str(HERE / "basic.csv"), str(HERE / "misp_event.json"), "--workspace", str(ws)]
    )
    assert r.exit_code == 0, r.output
    assert "basic.csv" in r.output and "line 8" in r.output and "not an IP" in r.output
    assert len(read_indicators(Workspace(ws))) == 11
    r = CliRunner().invoke(app, ["intel", "status", "--workspace", str(ws), "--all"])
    assert r.exit_code == 0, r.output
    assert "misp_event.json" in r.output and "to_ids is false" in r.output
    r = CliRunner().invoke(app, ["intel", "add", str(tmp_path / "missing.json"), "--workspace", str(ws)])
    assert r.exit_code == 2 and "cannot read" in " ".join(r.output.split())


def test_cli_malformed_json_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"type": "bundle", "objects": [')
    r = CliRunner().invoke(app, ["intel", "add", str(bad), "--workspace", str(tmp_path / "ws")])
    assert r.exit_code == 2 and "not valid JSON" in " ".join(r.output.split())
