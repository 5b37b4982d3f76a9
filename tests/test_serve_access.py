"""TLP clearance filter: what each clearance keeps of a findings document."""

from __future__ import annotations

import json

import pytest
from .serve_support import RED_TRACES, findings

from sightline.serve.access import filter_for_clearance, normalize_tlp, tlp_rank


@pytest.mark.parametrize(
    ("value", "expected"),
    [("TLP:RED", "red"), ("white", "clear"), ("AMBER+STRICT", "amber+strict"), ("tlp:amber-strict", "amber+strict"),
     (None, "amber"), ("", "amber"), ("purple", "red")],
    ids=["prefixed", "tlp1-white", "upper", "dash-alias", "unmarked", "empty", "unknown-fails-closed"],
)
def test_normalize_tlp(value: str | None, expected: str) -> None:
    assert normalize_tlp(value) == expected


def _orgs(doc: dict) -> dict[str, dict]:
    return {o["org_id"]: o for o in doc["organizations"]}


def test_red_clearance_keeps_everything() -> None:
    doc = findings()
    out = filter_for_clearance(doc, "red")
    assert set(_orgs(out)) == {"tw-semi-01", "AS4780", "tw-gov-03"}
    assert out["summary"]["by_verdict"] == {"compromised": 2, "exploitation_attempt": 0, "reconnaissance": 1}
    assert out["inputs"]["indicators"] == doc["inputs"]["indicators"]
    assert out["tlp"] == "red"


def test_amber_clearance_leaves_no_trace_of_red() -> None:
    doc = findings()
    out = filter_for_clearance(doc, "amber", hidden_indicators={"192.0.2.66", "198.51.100.250"}, visible_indicator_count=2)
    orgs = _orgs(out)
    assert set(orgs) == {"tw-semi-01", "tw-gov-03"}
    text = json.dumps(out)
    for trace in RED_TRACES:
        assert trace not in text, trace
    # The mixed org keeps only its amber exploitation evidence, and its verdict, times and
    # marking are re-derived from that evidence alone.
    gov = orgs["tw-gov-03"]
    host = gov["hosts"][0]
    assert [e["behaviour"] for e in host["evidence"]] == ["exploitation"]
    assert host["indicators"] == ["198.51.100.7"]
    assert host["verdict"] == gov["verdict"] == "exploitation_attempt"
    assert host["confidence"] == 70 and gov["confidence"] == 70
    assert (gov["first_seen"], gov["last_seen"]) == ("2024-03-04T08:00:00Z", "2024-03-04T08:02:00Z")
    assert gov["tlp"] == "amber" and out["tlp"] == "amber"
    assert out["summary"]["by_verdict"] == {"compromised": 1, "exploitation_attempt": 1, "reconnaissance": 0}
    assert out["summary"]["by_sector"] == {"semiconductor": {"compromised": 1}, "government": {"exploitation_attempt": 1}}
    assert out["inputs"]["indicators"] == 2
    assert out["suspected_infrastructure"][1]["organizations"] == []
    assert [x["org_id"] for x in out["exposure"]] == ["tw-semi-01"]
    # The input is not modified.
    assert len(doc["organizations"][2]["hosts"][0]["evidence"]) == 2


def test_green_clearance_sees_only_green() -> None:
    out = filter_for_clearance(findings(), "green")
    assert out["organizations"] == []
    assert out["summary"]["by_verdict"] == {"compromised": 0, "exploitation_attempt": 0, "reconnaissance": 0}
    assert [s["indicator"] for s in out["stale_matches"]] == ["198.51.100.99"]
    assert out["suspected_infrastructure"] == [] and out["exposure"] == []
    assert "indicators" not in out["inputs"]  # the total would reveal how much is hidden


def test_unmarked_evidence_inherits_and_defaults_to_amber() -> None:
    doc = findings()
    for org in doc["organizations"]:
        for host in org["hosts"]:
            for ev in host["evidence"]:
                ev.pop("tlp")
            host.pop("tlp")
    # tw-semi-01 is amber, AS4780 red: unmarked evidence takes its organization's marking.
    assert set(_orgs(filter_for_clearance(doc, "amber"))) == {"tw-semi-01"}
    for org in doc["organizations"]:
        org.pop("tlp")
    doc.pop("tlp")
    assert _orgs(filter_for_clearance(doc, "green")) == {}
    assert len(_orgs(filter_for_clearance(doc, "amber"))) == 3


def test_amber_strict_needs_its_clearance() -> None:
    doc = findings()
    doc["organizations"][0]["hosts"][0]["evidence"][1]["tlp"] = "amber+strict"
    amber = _orgs(filter_for_clearance(doc, "amber"))["tw-semi-01"]["hosts"][0]
    strict = _orgs(filter_for_clearance(doc, "amber+strict"))["tw-semi-01"]["hosts"][0]
    assert [e["behaviour"] for e in amber["evidence"]] == ["exploitation"]
    assert [e["behaviour"] for e in strict["evidence"]] == ["exploitation", "beacon"]
    assert tlp_rank("amber+strict") > tlp_rank("amber")


def test_hidden_indicator_drops_evidence_marked_lower() -> None:
    # The evidence says amber, but the indicator table says the indicator is red.
    out = filter_for_clearance(findings(), "amber", hidden_indicators={"198.51.100.7"})
    assert "198.51.100.7" not in json.dumps(out["organizations"])
