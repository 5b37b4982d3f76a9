"""Assessment on simulated campaigns gives the organizations, verdicts, hosts and evidence it gave
before it was made column-wise (golden files written by the row-by-row assessment of sightline
before #22; regenerate with SIGHTLINE_WRITE_GOLDEN=1 only for an intended change of verdicts)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from sightline.pipeline import hunt
from sightline.simulate import simulate
from sightline.store import Workspace

GOLDEN = Path(__file__).parent / "data" / "golden"
SEEDS = (11, 12)


def summary(doc: dict) -> dict:
    """What a user acts on: each organization's verdict and hosts, each host's evidence rows."""
    return {
        o["org_id"]: {
            "verdict": o["verdict"],
            "confidence": o["confidence"],
            "hosts": {
                h["ip"]: {
                    "verdict": h["verdict"],
                    "confidence": h["confidence"],
                    "evidence": [
                        [
                            e["behaviour"],
                            e["indicator"],
                            e["direction"],
                            e["dst_port"],
                            e["flows"],
                            e["score"],
                            e["confidence"],
                            e["first_seen"],
                            e["last_seen"],
                            e["detail"],
                            sorted(e.get("guards") or []),
                        ]
                        for e in h["evidence"]
                    ],
                }
                for h in o["hosts"]
            },
        }
        for o in doc["organizations"]
    }


def golden(s: dict) -> dict:
    """Per organization: verdict, counts and a digest of everything :func:`summary` holds."""
    return {
        oid: {
            "verdict": o["verdict"],
            "confidence": o["confidence"],
            "hosts": len(o["hosts"]),
            "evidence": sum(len(h["evidence"]) for h in o["hosts"].values()),
            "sha256": hashlib.sha256(json.dumps(o, sort_keys=True).encode()).hexdigest(),
        }
        for oid, o in s.items()
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_same_findings_as_the_row_by_row_assessment(tmp_path: Path, seed: int) -> None:
    sim = tmp_path / "sim"
    simulate(sim, seed=seed, flows=60_000, days=4)
    ws = Workspace(tmp_path / "ws")
    res = hunt(
        ws,
        telemetry=[sim / "telemetry"],
        intel=[sim / "intel"],
        orgs_csv=sim / "orgs.csv",
        geo=[sim / "geo"] if (sim / "geo").exists() else [],
    )
    got = golden(summary(res.findings.to_dict()))
    path = GOLDEN / f"assess-seed{seed}.json"
    if os.environ.get("SIGHTLINE_WRITE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    assert sorted(got) == sorted(want)
    for oid in want:
        assert got[oid] == want[oid], oid
    assert sum(o["evidence"] for o in got.values()) > 0
