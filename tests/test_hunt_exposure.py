"""Exposure joined with the hunt: the exploited appliance runs a KEV-listed version."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app

from .test_hunt_e2e import scenario


def test_findings_carry_prioritized_exposure(tmp_path: Path, engine_name: str) -> None:
    """On either engine: the exposure joins run in the hunt's engine (``--engine``)."""
    files = scenario(tmp_path)
    ws = tmp_path / "ws"
    scan = tmp_path / "shodan.ndjson"
    scan.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                # the university's VPN portal that the actor exploited: FortiOS in CVE-2018-13379's range
                {
                    "ip_str": "203.0.113.70",
                    "port": 4433,
                    "transport": "tcp",
                    "product": "FortiGate",
                    "version": "6.0.4",
                    "cpe23": ["cpe:2.3:o:fortinet:fortios:6.0.4"],
                    "timestamp": "2024-03-01T10:00:00.000000",
                },
                # one release past CVE-2018-13379's range (6.0.0-6.0.4): that CVE is not flagged
                {
                    "ip_str": "203.0.113.71",
                    "port": 443,
                    "transport": "tcp",
                    "product": "FortiGate",
                    "version": "6.0.5",
                    "cpe23": ["cpe:2.3:o:fortinet:fortios:6.0.5"],
                    "timestamp": "2024-03-01T10:00:00.000000",
                },
                # a vulnerable appliance nobody touched
                {
                    "ip_str": "198.18.1.9",
                    "port": 443,
                    "transport": "tcp",
                    "product": "FortiGate",
                    "version": "6.0.2",
                    "cpe23": ["cpe:2.3:o:fortinet:fortios:6.0.2"],
                    "timestamp": "2024-03-01T10:00:00.000000",
                },
            ]
        )
        + "\n"
    )
    r = CliRunner().invoke(app, ["exposure", str(scan), "-w", str(ws)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app,
        [
            "hunt",
            "-t",
            str(files["conn"]),
            "-i",
            str(files["intel"]),
            "--orgs",
            str(files["orgs"]),
            "--out",
            str(out),
            "-w",
            str(ws),
            "--engine",
            engine_name,
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "findings.json").read_text())
    assert doc["engine"] == engine_name
    by_ip = {e["ip"]: e for e in doc["exposure"]}
    assert "CVE-2018-13379" not in {c["cve"] for c in by_ip["203.0.113.71"]["cves"]}
    exploited, idle = by_ip["203.0.113.70"], by_ip["198.18.1.9"]
    assert any(c["cve"] == "CVE-2018-13379" and c["kev"] for c in exploited["cves"])
    assert exploited["org_id"] == "tw-univ-02" and idle["org_id"] == "tw-misc-04"
    assert exploited["priority_rank"] < idle["priority_rank"]
