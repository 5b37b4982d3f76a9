"""STIX 2.1 bundle: valid per stix2-validator, complete, TLP-marked, reproducible."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
import stix2
from stix2validator import ValidationOptions, validate_instance

from sightline.report.stix import TLP2_MARKING_IDS, to_stix_bundle
from sightline.schema import INDICATOR_SCHEMA

from .share_support import shared

HERE = Path(__file__).parent
SAMPLE = HERE / "data" / "sample_findings.json"
GOLDEN = HERE / "golden" / "report" / "sample.stix.json"


@pytest.fixture()
def findings() -> dict:
    # as every output receives it: through the sharing policy (the workspace's own view)
    return shared(json.loads(SAMPLE.read_text("utf-8")))[0]


def _errors(bundle: dict) -> list[str]:
    res = validate_instance(bundle, ValidationOptions(version="2.1"))
    return [str(e) for e in res.errors]


def _by_type(bundle: dict, kind: str) -> list[dict]:
    return [o for o in bundle["objects"] if o["type"] == kind]


def test_sample_bundle_validates_and_carries_the_findings(findings):
    bundle = to_stix_bundle(findings)
    assert _errors(bundle) == []
    stix2.parse(bundle, allow_custom=False)  # the reference library accepts it too
    ids = {o["id"] for o in bundle["objects"]}
    victims = {o["name"]: o for o in _by_type(bundle, "identity") if o["identity_class"] == "organization"}
    assert set(victims) == {"Hsinchu Wafer Technology", "Digital United Inc."}
    assert victims["Hsinchu Wafer Technology"]["sectors"] == ["technology"]
    assert victims["Digital United Inc."]["sectors"] == ["telecommunications"]
    (iset,) = _by_type(bundle, "intrusion-set")
    assert iset["name"] == "RedJuliett"
    targets = [r for r in _by_type(bundle, "relationship") if r["relationship_type"] == "targets"]
    assert {r["target_ref"] for r in targets} == {v["id"] for v in victims.values()}
    assert all(r["source_ref"] == iset["id"] for r in targets)
    patterns = {o["pattern"] for o in _by_type(bundle, "indicator")}
    assert patterns == {"[ipv4-addr:value = '198.51.100.7']", "[ipv4-addr:value = '192.0.2.66']"}
    sightings = _by_type(bundle, "sighting")
    assert len(sightings) == 3  # one per evidence row
    beacon = next(s for s in sightings if s["count"] == 412)
    assert beacon["where_sighted_refs"] == [victims["Hsinchu Wafer Technology"]["id"]]
    assert beacon["first_seen"] == "2024-03-02T02:00:00.000Z"
    for s in sightings:
        assert s["sighting_of_ref"] in ids and set(s["observed_data_refs"]) <= ids
    od = {o["id"]: o for o in _by_type(bundle, "observed-data")}
    assert od[beacon["observed_data_refs"][0]]["number_observed"] == 412
    notes = _by_type(bundle, "note")
    assert any("interval 300s ±4s over 6 days" in n["content"] for n in notes)
    # every reference resolves inside the bundle (markings included)
    for o in bundle["objects"]:
        for k, v in o.items():
            refs = v if k.endswith("_refs") else [v] if k.endswith("_ref") else []
            for r in refs:
                assert r in ids, (o["id"], k, r)
    # location of victims
    assert [loc["country"] for loc in _by_type(bundle, "location")] == ["TW"]


def test_objects_carry_their_own_tlp(findings):
    bundle = to_stix_bundle(findings)
    red = TLP2_MARKING_IDS["red"]
    amber = TLP2_MARKING_IDS["amber"]
    victims = {o["name"]: o for o in _by_type(bundle, "identity") if o["identity_class"] == "organization"}
    assert victims["Digital United Inc."]["object_marking_refs"] == [red]
    assert victims["Hsinchu Wafer Technology"]["object_marking_refs"] == [amber]
    markings = {m["id"]: m for m in _by_type(bundle, "marking-definition")}
    assert markings[red]["name"] == "TLP:RED"
    assert markings[red]["extensions"]["extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"]["tlp_2_0"] == "red"
    (report,) = _by_type(bundle, "report")
    assert report["object_marking_refs"] == [red]  # the whole is as restricted as its most restricted part
    assert all("object_marking_refs" in o for o in bundle["objects"] if o["type"] != "marking-definition")


def test_amber_filtered_bundle_has_no_red_content(findings):
    doc, dropped = shared(findings, "amber")
    bundle = to_stix_bundle(doc)
    assert _errors(bundle) == []
    text = json.dumps(bundle)
    assert "Digital United" not in text and "2001:db8:1::10" not in text and "192.0.2.66" not in text
    assert TLP2_MARKING_IDS["red"] not in text
    assert any("AS4780" in d for d in dropped)


def test_green_victims_are_not_named(findings):
    for org in findings["organizations"]:
        org["tlp"] = "green"
        for h in org["hosts"]:
            h["tlp"] = "green"
            for e in h["evidence"]:
                e["tlp"] = "green"
    bundle = to_stix_bundle(findings)
    text = json.dumps(bundle)
    assert "Hsinchu Wafer" not in text and "tw-semi-01" not in text
    names = [o["name"] for o in _by_type(bundle, "identity") if o["identity_class"] == "organization"]
    assert any(n.startswith("semiconductor organization (TW)") for n in names)


def test_anonymized_bundle_validates(findings):
    bundle = to_stix_bundle(shared(findings, anonymize=True)[0])
    assert _errors(bundle) == []
    text = json.dumps(bundle)
    assert "203.0.113.5" not in text and "Hsinchu" not in text


def test_indicator_table_enriches_indicators(findings):
    rows = [
        {
            "indicator_id": "csv:ipv4:198.51.100.7",
            "type": "ipv4",
            "value": "198.51.100.7",
            "actor": "RedJuliett",
            "confidence": 80,
            "tlp": "amber",
            "source": "feed.csv",
            "description": "SoftEther VPN server",
            "valid_from": None,
            "valid_until": None,
            "revoked": False,
        },
        {
            "indicator_id": "csv:domain:x",
            "type": "domain",
            "value": "vpn.example.org",
            "actor": "RedJuliett",
            "confidence": 50,
            "tlp": "green",
            "source": "feed.csv",
        },
    ]
    table = pa.Table.from_pylist(rows, schema=INDICATOR_SCHEMA)
    bundle = to_stix_bundle(findings, indicators=table)
    assert _errors(bundle) == []
    ind = next(o for o in _by_type(bundle, "indicator") if "198.51.100.7" in o["pattern"])
    assert ind["confidence"] == 80 and ind["description"] == "SoftEther VPN server"
    # only indicators the findings mention are shared
    assert "vpn.example.org" not in json.dumps(bundle)


def test_odd_input_does_not_crash():
    odd = {
        "organizations": [
            {
                "org_id": "x",
                "verdict": "compromised",
                "hosts": [
                    {
                        "ip": "not-an-ip",
                        "evidence": [
                            {
                                "indicator": "evil.example.com",
                                "behaviour": "beacon",
                                "flows": 0,
                                "first_seen": "garbage",
                                "last_seen": None,
                                "score": None,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    bundle = to_stix_bundle(odd)
    assert _errors(bundle) == []
    assert {o["pattern"] for o in _by_type(bundle, "indicator")} == {"[domain-name:value = 'evil.example.com']"}


def test_golden(findings):
    text = json.dumps(to_stix_bundle(findings), indent=2, sort_keys=True) + "\n"
    if os.environ.get("SIGHTLINE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, "utf-8")
    assert text == GOLDEN.read_text("utf-8")
