"""TLP filtering, marking and victim pseudonyms; the render dispatcher for every format."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

import sightline.report as report
from sightline.errors import ConfigError
from sightline.report.tlp import anonymize_victims, document_tlp, filter_findings, normalize_tlp
from sightline.schema import INDICATOR_SCHEMA

SAMPLE = Path(__file__).parent / "data" / "sample_findings.json"


@pytest.fixture()
def findings() -> dict:
    return json.loads(SAMPLE.read_text("utf-8"))


@pytest.mark.parametrize(("raw", "want"), [("TLP:AMBER", "amber"), ("white", "clear"), ("Amber+Strict", "amber+strict"),
                                           (None, "clear"), ("RED", "red")], ids=str)
def test_normalize(raw, want):
    assert normalize_tlp(raw) == want


def test_normalize_rejects_unknown():
    with pytest.raises(ConfigError, match="unknown TLP level"):
        normalize_tlp("purple")


@pytest.mark.parametrize(
    ("limit", "orgs", "stale", "suspected", "mark"),
    [("red", ["AS4780", "tw-semi-01"], 1, 1, "red"),
     ("amber", ["tw-semi-01"], 1, 1, "amber"),
     ("green", [], 1, 0, "green"),
     ("clear", [], 0, 0, "clear")],
    ids=["red", "amber", "green", "clear"],
)
def test_filter_levels(findings, limit, orgs, stale, suspected, mark):
    doc, dropped = filter_findings(findings, limit)
    assert sorted(o["org_id"] for o in doc["organizations"]) == orgs
    assert len(doc["stale_matches"]) == stale and len(doc["suspected_infrastructure"]) == suspected
    assert doc["tlp"] == mark if doc["organizations"] or stale else True
    assert document_tlp(doc) in ("clear", "green", "amber", "red")
    assert sum(doc["summary"]["by_verdict"].values()) == len(orgs)
    assert findings["organizations"][1]["org_id"] == "AS4780"  # input untouched
    if limit == "amber":
        assert dropped == ["organization AS4780 (TLP:RED)"]


def test_filter_drops_evidence_and_its_indicator(findings):
    ev = findings["organizations"][0]["hosts"][0]["evidence"]
    ev[0]["tlp"] = "red"
    ev[0]["indicator"] = "192.0.2.250"
    findings["organizations"][0]["hosts"][0]["indicators"].append("192.0.2.250")
    doc, dropped = filter_findings(findings, "amber")
    host = doc["organizations"][0]["hosts"][0]
    assert [e["behaviour"] for e in host["evidence"]] == ["beacon"]
    assert "192.0.2.250" not in json.dumps(doc)
    assert any(d.startswith("evidence exploitation") for d in dropped)


def test_anonymize_is_stable_and_keeps_sector_country(findings):
    a1, a2 = anonymize_victims(findings), anonymize_victims(findings)
    assert a1 == a2
    text = json.dumps(a1)
    for secret in ("Hsinchu", "tw-semi-01", "203.0.113.5", "2001:db8:1::10", "Digital United", "3462", "203.0.113.77"):
        assert secret not in text, secret
    org = a1["organizations"][0]
    assert org["sector"] == "semiconductor" and org["country"] == "TW"
    assert a1["suspected_infrastructure"][0]["organizations"] == [org["org_id"]]
    assert "198.51.100.7" in text  # the actor's indicators stay


FORMATS = ["html", "pdf", "md", "json", "stix", "misp", "zeek-intel", "suricata"]
TEXT_FORMATS = [f for f in FORMATS if f != "pdf"]  # the PDF is the HTML printed (tests/test_report_pdf.py)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_render_every_format_with_tlp_and_anonymize(tmp_path, findings, fmt):
    table = pa.Table.from_pylist(
        [{"indicator_id": "1", "type": "ipv4", "value": "198.51.100.7", "tlp": "amber", "actor": "RedJuliett"},
         {"indicator_id": "2", "type": "ipv4", "value": "192.0.2.66", "tlp": "red", "actor": "RedJuliett"}],
        schema=INDICATOR_SCHEMA,
    )
    (path,) = report.render(findings, fmt, tmp_path, indicators=table, tlp="amber", anonymize=True)
    assert path.parent == tmp_path and path.name == report.DEFAULT_NAMES[fmt]
    text = path.read_text("utf-8")
    for secret in ("Hsinchu", "203.0.113.5", "Digital United", "192.0.2.66", "2001:db8:1::10"):
        assert secret not in text, secret
    assert "198.51.100.7" in text
    assert "TLP:RED" not in text.upper() and "tlp:red" not in text
    assert "amber" in text.lower()
    if fmt in ("html", "md"):
        assert "Withheld for this audience (TLP): 1 item." in text


def test_render_json_as_is(tmp_path, findings):
    (path,) = report.render(findings, "json", tmp_path / "out.json")
    assert json.loads(path.read_text("utf-8")) == findings


def test_render_unknown_format(tmp_path, findings):
    with pytest.raises(ConfigError, match="unknown report format"):
        report.render(findings, "docx", tmp_path)


def test_public_api():
    assert set(report.__all__) == {"FORMATS", "DEFAULT_NAMES", "render", "prepare"}
    assert tuple(report.FORMATS) == tuple(FORMATS)
