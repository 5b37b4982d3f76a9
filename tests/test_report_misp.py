"""MISP event: attributes, sightings, tags, galaxy; loads back into PyMISP without loss."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from pymisp import MISPEvent

from sightline.report.misp import to_misp_event, write_misp
from sightline.schema import INDICATOR_SCHEMA

from .share_support import shared

HERE = Path(__file__).parent
SAMPLE = HERE / "data" / "sample_findings.json"
GOLDEN = HERE / "golden" / "report" / "sample.misp.json"


@pytest.fixture()
def findings() -> dict:
    # as every output receives it: through the sharing policy (the workspace's own view)
    return shared(json.loads(SAMPLE.read_text("utf-8")))[0]


def _summary(ev: MISPEvent) -> dict:
    """Everything a consumer uses, in a comparable form."""
    return {
        "uuid": ev.uuid,
        "info": ev.info,
        "date": str(ev.date),
        "tags": sorted(t.name for t in ev.tags),
        "threat_level_id": int(ev.threat_level_id),
        "distribution": int(ev.distribution),
        "galaxies": sorted((g.type, c.value, c.tag_name, c.uuid) for g in ev.galaxies for c in g.clusters),
        "attributes": sorted(
            (
                a.uuid,
                a.type,
                a.category,
                str(a.value),
                bool(a.to_ids),
                a.comment,
                tuple(sorted(t.name for t in a.tags)),
                str(getattr(a, "first_seen", "")),
                str(getattr(a, "last_seen", "")),
                tuple(sorted((s.uuid, str(s.type), s.source, str(s.date_sighting)) for s in a.sightings)),
            )
            for a in ev.attributes
        ),
    }


def test_round_trip_without_loss(tmp_path, findings):
    ev = to_misp_event(findings)
    out = tmp_path / "event.json"
    write_misp(findings, out)
    loaded = MISPEvent()
    loaded.load(out.read_text("utf-8"))
    assert _summary(loaded) == _summary(ev)
    # and a second trip through PyMISP's JSON is byte-stable
    again = MISPEvent()
    again.load(loaded.to_json())
    assert again.to_json(sort_keys=True) == loaded.to_json(sort_keys=True)


def test_event_content(findings):
    ev = to_misp_event(findings)
    tags = {t.name for t in ev.tags}
    assert "tlp:red" in tags  # the most restrictive TLP inside
    assert 'misp-galaxy:threat-actor="RedJuliett"' in tags
    assert [c.value for g in ev.galaxies for c in g.clusters] == ["RedJuliett"]
    attrs = {(a.type, a.value): a for a in ev.attributes}
    c2 = attrs[("ip-dst", "198.51.100.7")]
    assert c2.to_ids is True and {t.name for t in c2.tags} == {"tlp:amber"}
    assert sorted(s.source for s in c2.sightings) == ["sightline beacon, 412 flows", "sightline exploitation, 3 flows"]
    scanner = attrs[("ip-src", "192.0.2.66")]  # only ever inbound: a source
    assert {t.name for t in scanner.tags} == {"tlp:red"}
    assert attrs[("target-org", "Hsinchu Wafer Technology")].to_ids is False
    assert attrs[("target-machine", "203.0.113.5")].category == "Targeting data"
    assert any("interval 300s ±4s over 6 days" in a.value for a in ev.attributes if a.type == "text")
    assert attrs[("ip-dst", "198.51.100.200")].to_ids is False  # suspected, not intel


def test_filtered_event_has_no_red(findings):
    doc, _ = shared(findings, "amber")
    ev = to_misp_event(doc)
    text = ev.to_json()
    assert "tlp:red" not in text and "Digital United" not in text and "192.0.2.66" not in text
    assert {t.name for t in ev.tags} >= {"tlp:amber"}


def test_indicator_table_types(findings):
    findings["organizations"][0]["hosts"][0]["evidence"][1]["indicator"] = "c2.example.net"
    findings["organizations"][0]["hosts"][0]["indicators"].append("c2.example.net")
    table = pa.Table.from_pylist(
        [
            {
                "indicator_id": "a",
                "type": "domain",
                "value": "c2.example.net",
                "confidence": 65,
                "tlp": "green",
                "description": "SoftEther C2",
            }
        ],
        schema=INDICATOR_SCHEMA,
    )
    ev = to_misp_event(findings, indicators=table)
    a = next(a for a in ev.attributes if a.value == "c2.example.net")
    assert a.type == "domain" and a.comment == "SoftEther C2"
    assert {t.name for t in a.tags} == {"tlp:green", "sightline:indicator-confidence=65"}


def test_golden(tmp_path, findings):
    out = tmp_path / "e.json"
    write_misp(findings, out)
    text = out.read_text("utf-8")
    if os.environ.get("SIGHTLINE_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, "utf-8")
    assert text == GOLDEN.read_text("utf-8")
