"""Dashboard clearance: what each clearance keeps of a findings document (through the one policy)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from sightline.core.tlp import TLP
from sightline.schema import INDICATOR_SCHEMA
from sightline.serve.access import clearance_of, filter_for_clearance

from .serve_support import RED_TRACES, _indicator, findings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TLP:RED", TLP.RED),
        ("white", TLP.CLEAR),
        ("AMBER+STRICT", TLP.AMBER_STRICT),
        ("amberstrict", TLP.AMBER_STRICT),
        (None, TLP.CLEAR),
        ("", TLP.CLEAR),
        ("purple", TLP.CLEAR),
    ],
    ids=["prefixed", "tlp1-white", "upper", "no-separator", "unset", "empty", "unknown"],
)
def test_a_stored_clearance_that_cannot_be_read_grants_the_least(value: str | None, expected: TLP) -> None:
    assert clearance_of(value) == expected


def _orgs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["org_id"]: o for o in doc["organizations"]}


def _table(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=INDICATOR_SCHEMA)


INDICATORS = _table(
    _indicator("198.51.100.7", "amber"),
    _indicator("192.0.2.66", "red", 70),
    _indicator("198.51.100.250", "red"),
    _indicator("198.51.100.99", "green", 60),
)


def test_red_clearance_keeps_everything() -> None:
    out = filter_for_clearance(findings(), "red", indicators=INDICATORS)
    assert set(_orgs(out)) == {"tw-semi-01", "AS4780", "tw-gov-03"}
    assert out["summary"]["by_verdict"] == {"compromised": 2, "exploitation_attempt": 0, "reconnaissance": 1}
    assert out["tlp"] == "red"


def test_amber_clearance_leaves_no_trace_of_red() -> None:
    doc = findings()
    out = filter_for_clearance(doc, "amber", indicators=INDICATORS)
    orgs = _orgs(out)
    assert set(orgs) == {"tw-semi-01", "tw-gov-03"}
    text = json.dumps(out)
    for trace in RED_TRACES:
        assert trace not in text, trace
    # The mixed org keeps only its amber exploitation evidence; its verdict, confidence, times
    # and marking are re-derived from that evidence alone by the one verdict rule.
    gov = orgs["tw-gov-03"]
    host = gov["hosts"][0]
    assert [e["behaviour"] for e in host["evidence"]] == ["exploitation"]
    assert host["indicators"] == ["198.51.100.7"]
    assert host["verdict"] == gov["verdict"] == "exploitation_attempt"
    assert host["confidence"] == 70 and gov["confidence"] == 70
    assert (gov["first_seen"], gov["last_seen"]) == ("2024-03-04T08:00:00Z", "2024-03-04T08:02:00Z")
    assert gov["tlp"] == "amber" and out["tlp"] == "amber"
    assert out["summary"]["by_verdict"] == {"compromised": 1, "exploitation_attempt": 1, "reconnaissance": 0}
    assert out["summary"]["by_sector"] == {
        "government": {"exploitation_attempt": 1},
        "semiconductor": {"compromised": 1},
    }
    assert out["inputs"]["indicators"] == 2  # the amber and the green one, not the two red
    # the red suspected address rests on the red beacon: withheld with it
    assert [s["ip"] for s in out["suspected_infrastructure"]] == ["198.51.100.200"]
    assert [x["org_id"] for x in out["exposure"]] == ["tw-semi-01"]
    # The input is not modified.
    assert len(doc["organizations"][2]["hosts"][0]["evidence"]) == 2


def test_green_clearance_sees_only_green() -> None:
    out = filter_for_clearance(findings(), "green", indicators=INDICATORS)
    assert out["organizations"] == []
    assert out["summary"]["by_verdict"] == {"compromised": 0, "exploitation_attempt": 0, "reconnaissance": 0}
    assert [s["indicator"] for s in out["stale_matches"]] == ["198.51.100.99"]
    assert out["suspected_infrastructure"] == [] and out["exposure"] == []
    assert out["inputs"]["indicators"] == 1  # counts only what a green reader may know of
    assert out["tlp"] == "green"


def test_unmarked_content_counts_as_the_workspace_default() -> None:
    doc = findings()
    for org in doc["organizations"]:
        org.pop("tlp")
        for host in org["hosts"]:
            host.pop("tlp")
            for ev in host["evidence"]:
                ev.pop("tlp")
    # nothing is marked: all of it is amber (fail closed), whatever the organization was
    assert _orgs(filter_for_clearance(doc, "green")) == {}
    assert len(_orgs(filter_for_clearance(doc, "amber"))) == 3
    # a workspace configured to treat unmarked content as red keeps it from amber readers too
    assert _orgs(filter_for_clearance(doc, "amber", default_tlp=TLP.RED)) == {}


def test_amber_strict_needs_its_clearance() -> None:
    doc = findings()
    doc["organizations"][0]["hosts"][0]["evidence"][1]["tlp"] = "amber+strict"
    amber = _orgs(filter_for_clearance(doc, "amber"))["tw-semi-01"]["hosts"][0]
    strict = _orgs(filter_for_clearance(doc, "amber+strict"))["tw-semi-01"]["hosts"][0]
    assert [e["behaviour"] for e in amber["evidence"]] == ["exploitation"]
    assert amber["verdict"] == "exploitation_attempt"
    assert [e["behaviour"] for e in strict["evidence"]] == ["beacon", "exploitation"] or sorted(
        e["behaviour"] for e in strict["evidence"]
    ) == ["beacon", "exploitation"]
    assert strict["verdict"] == "compromised"


def test_intel_remarked_red_after_detection_is_withheld() -> None:
    # The evidence says amber, but today the indicator table marks the indicator red.
    table = _table(_indicator("198.51.100.7", "red"))
    out = filter_for_clearance(findings(), "amber", indicators=table)
    assert "198.51.100.7" not in json.dumps(out["organizations"])
    assert "198.51.100.7" not in json.dumps(out.get("actor_infrastructure"))
