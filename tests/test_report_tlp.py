"""TLP filtering, marking and victim pseudonyms; the render dispatcher for every format."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pytest

import sightline.report as report
from sightline.core.tlp import TLP, marking, parse_tlp
from sightline.errors import ConfigError
from sightline.findings import Audience, from_dict, share
from sightline.schema import INDICATOR_SCHEMA
from sightline.store import Workspace

from .share_support import shared

SAMPLE = Path(__file__).parent / "data" / "sample_findings.json"


@pytest.fixture()
def findings() -> dict:
    return json.loads(SAMPLE.read_text("utf-8"))


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("TLP:AMBER", "amber"),
        ("white", "clear"),
        ("Amber+Strict", "amber+strict"),
        ("amber-strict", "amber+strict"),
        ("amber_strict", "amber+strict"),
        ("amberstrict", "amber+strict"),
        ("tlp-red", "red"),
        ("RED", "red"),
    ],
    ids=str,
)
def test_one_parser_reads_what_people_and_feeds_write(raw, want):
    assert parse_tlp(raw).label == want


@pytest.mark.parametrize("raw", ["purple", "", None, "amber plus"], ids=str)
def test_the_parser_refuses_what_is_not_a_level(raw):
    with pytest.raises(ConfigError, match="unknown"):
        parse_tlp(raw)


def test_order_and_marking_rule():
    assert TLP.CLEAR < TLP.GREEN < TLP.AMBER < TLP.AMBER_STRICT < TLP.RED
    assert [t.label for t in TLP] == ["clear", "green", "amber", "amber+strict", "red"]
    assert marking(None) == TLP.AMBER and marking("") == TLP.AMBER  # unmarked: the default, fail closed
    assert marking(None, TLP.RED) == TLP.RED
    assert marking("purple") == TLP.RED  # an unreadable marking never widens access
    assert f"{TLP.AMBER_STRICT}" == "amber+strict" and TLP.RED.title == "TLP:RED"


@pytest.mark.parametrize(
    ("limit", "orgs", "stale", "suspected"),
    [
        ("red", ["AS4780", "tw-semi-01"], 1, 1),
        ("amber", ["tw-semi-01"], 1, 1),
        ("green", [], 1, 0),
        ("clear", [], 0, 0),
    ],
    ids=["red", "amber", "green", "clear"],
)
def test_shared_at_each_level_is_headed_with_that_level(findings, limit, orgs, stale, suspected):
    doc, dropped = shared(findings, limit)
    assert sorted(o["org_id"] for o in doc["organizations"]) == orgs
    assert len(doc["stale_matches"]) == stale and len(doc["suspected_infrastructure"]) == suspected
    assert doc["tlp"] == limit  # the level it was filtered to, whatever is left in it
    assert sum(doc["summary"]["by_verdict"].values()) == len(orgs)
    assert findings["organizations"][1]["org_id"] == "AS4780"  # input untouched
    if limit == "amber":
        assert any("AS4780" in d and "TLP:RED" in d for d in dropped)


def test_withheld_evidence_takes_its_indicator_along(findings):
    ev = findings["organizations"][0]["hosts"][0]["evidence"]
    ev[0]["tlp"] = "red"
    ev[0]["indicator"] = "192.0.2.250"
    findings["organizations"][0]["hosts"][0]["indicators"].append("192.0.2.250")
    doc, dropped = shared(findings, "amber")
    host = doc["organizations"][0]["hosts"][0]
    assert [e["behaviour"] for e in host["evidence"]] == ["beacon"]
    assert "192.0.2.250" not in json.dumps(doc)
    assert any(d.startswith("evidence exploitation") for d in dropped)


def test_pseudonyms_are_stable_keyed_and_keep_sector_country(findings):
    a1, a2 = shared(findings, anonymize=True)[0], shared(findings, anonymize=True)[0]
    assert a1 == a2
    text = json.dumps(a1)
    for secret in ("Hsinchu", "tw-semi-01", "203.0.113.5", "2001:db8:1::10", "Digital United", "3462", "203.0.113.77"):
        assert secret not in text, secret
    org = a1["organizations"][0]
    assert org["sector"] == "semiconductor" and org["country"] == "TW"
    assert a1["suspected_infrastructure"][0]["organizations"] == [org["org_id"]]
    assert "198.51.100.7" in text  # the actor's indicators stay
    # keyed: another workspace's key gives other pseudonyms, and no unkeyed hash of the value matches
    other = share(from_dict(findings), Audience(None, True, b"another-workspace-secret-0123456789")).to_dict()
    assert other["organizations"][0]["org_id"] != org["org_id"]
    for kind in ("host", "org"):
        plain = hashlib.sha256(f"sightline:{kind}:203.0.113.5".encode()).hexdigest()
        assert plain[:6] not in text and plain[:8] not in text


FORMATS = ["html", "pdf", "md", "json", "stix", "misp", "zeek-intel", "suricata"]
TEXT_FORMATS = [f for f in FORMATS if f != "pdf"]  # the PDF is the HTML printed (tests/test_report_pdf.py)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_render_every_format_with_tlp_and_anonymize(tmp_path, findings, fmt):
    table = pa.Table.from_pylist(
        [
            {"indicator_id": "1", "type": "ipv4", "value": "198.51.100.7", "tlp": "amber", "actor": "RedJuliett"},
            {"indicator_id": "2", "type": "ipv4", "value": "192.0.2.66", "tlp": "red", "actor": "RedJuliett"},
        ],
        schema=INDICATOR_SCHEMA,
    )
    (path,) = report.render(
        findings, fmt, tmp_path / "out", indicators=table, tlp="amber", anonymize=True, ws=Workspace(tmp_path / "ws")
    )
    tmp_path = tmp_path / "out"
    assert path.parent == tmp_path and path.name == report.DEFAULT_NAMES[fmt]
    text = path.read_text("utf-8")
    for secret in ("Hsinchu", "203.0.113.5", "Digital United", "192.0.2.66", "2001:db8:1::10"):
        assert secret not in text, secret
    assert "198.51.100.7" in text
    assert "TLP:RED" not in text.upper() and "tlp:red" not in text
    assert "amber" in text.lower()
    if fmt in ("html", "md"):
        assert "Withheld for this audience (TLP): 2 items." in text  # the red scan row, and its organization


def test_render_json_keeps_the_workspace_view(tmp_path, findings):
    (path,) = report.render(findings, "json", tmp_path / "out.json")
    out = json.loads(path.read_text("utf-8"))
    assert [o["org_id"] for o in out["organizations"]] == [o["org_id"] for o in findings["organizations"]]
    assert out["tlp"] == "red"  # the most restrictive content in it, when nothing was withheld
    assert "tlp_withheld" not in out


def test_render_unknown_format(tmp_path, findings):
    with pytest.raises(ConfigError, match="unknown report format"):
        report.render(findings, "docx", tmp_path)


def test_public_api():
    assert set(report.__all__) == {"FORMATS", "DEFAULT_NAMES", "render", "prepare"}
    assert tuple(report.FORMATS) == tuple(FORMATS)
