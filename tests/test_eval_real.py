"""The `make eval-real` harness (bench/real): its scoring arithmetic and its run on committed real data.

These tests check the harness, not sightline's current verdicts: the end-to-end runs use a stand-in
`sightline` that writes a findings.json with a known confusion, and the real-CLI run only checks
that every organization of the truth and of the findings gets a row.  Data: the small GPL-2.0
Stratosphere captures committed under bench/real/data (licence texts beside them).
"""

from __future__ import annotations

import gzip
import json
import sys

import pytest

from bench.real import run as realrun
from bench.real.cases import case_telemetry, load_cases, truth_verdicts
from bench.real.facts import facts, load
from bench.real.fetch import load_sources, local_path, verify

SMALL = ["c2-refused-remcos", "c2-long-session-android-rat", "decoy-low-confidence"]


def _case(name: str) -> dict:
    return {c["name"]: c for c in load_cases()}[name]


def _findings(orgs: dict[str, str]) -> dict:
    return {
        "schema": "sightline.findings/1",
        "organizations": [
            {
                "org_id": k,
                "verdict": v,
                "confidence": 70,
                "hosts": [
                    {
                        "ip": "192.0.2.1",
                        "verdict": v,
                        "confidence": 70,
                        "indicators": ["198.51.100.1"],
                        "evidence": [
                            {
                                "behaviour": "beacon",
                                "direction": "outbound",
                                "indicator": "198.51.100.1",
                                "dst_port": 443,
                                "flows": 12,
                                "score": 0.9,
                                "detail": "made up",
                                "decisive": True,
                            }
                        ],
                    }
                ],
            }
            for k, v in orgs.items()
        ],
    }


def test_committed_sources_verify_against_their_pins():
    sources = load_sources()
    committed = [s for s in sources.values() if s.get("committed")]
    assert committed, "some sources must be committed for the test suite"
    for s in committed:
        assert verify(local_path(s), s), f"{s['id']} does not match its pinned sha256"
    # a copy that differs by one byte is refused
    s = next(s for s in committed if s.get("compress", True))
    bad = local_path(s).parent / "tampered.gz"
    try:
        raw = bytearray(gzip.decompress(local_path(s).read_bytes()))
        raw[-2] ^= 1
        bad.write_bytes(gzip.compress(bytes(raw)))
        assert not verify(bad, s)
    finally:
        bad.unlink(missing_ok=True)


def test_facts_count_the_publishers_labels():
    """facts() over the label column agrees with a plain count of the labelled lines."""
    case = _case("c2-refused-remcos")
    path = case_telemetry(case)[0]
    lines = [
        ln.split("\t") for ln in gzip.decompress(path.read_bytes()).decode().splitlines() if not ln.startswith("#")
    ]
    malicious = [p for p in lines if p[-2] == "Malicious"]
    rej = [p for p in malicious if p[11] == "REJ"]
    f = facts(load(path), {"label": "Malicious"})
    assert f["flows"] == len(malicious) > 0
    assert f"REJ {len(rej)}" in f["states"]
    assert f["srcs"] == len({p[2] for p in malicious})


def test_score_case_and_metrics_on_a_known_confusion():
    case = {
        "name": "k",
        "class": "x",
        "truth": [
            {"org": "a", "verdict": "compromised", "why": "a"},
            {"org": "b", "verdict": "reconnaissance", "why": "b"},
            {"org": "c", "verdict": "none", "why": "c"},
        ],
    }
    found = _findings({"a": "compromised", "c": "compromised", "AS64500": "exploitation_attempt"})
    rows = realrun.score_case(case, found)
    table = {r["org"]: (r["expected"], r["found"], r["ok"]) for r in rows}
    assert table == {
        "a": ("compromised", "compromised", True),
        "b": ("reconnaissance", "none", False),
        "c": ("none", "compromised", False),
        "AS64500": ("none", "exploitation_attempt", False),
    }
    wrong = {r["org"]: r["why_wrong"] for r in rows if not r["ok"]}
    assert "beacon outbound indicator 198.51.100.1" in wrong["c"][0]
    assert wrong["b"][0].startswith("no finding for b")
    m = realrun.metrics(rows)
    c, r, e = (m["per_verdict"][v] for v in ("compromised", "reconnaissance", "exploitation_attempt"))
    assert (c["tp"], c["fp"], c["fn"], c["precision"], c["recall"]) == (1, 1, 0, 0.5, 1.0)
    assert (r["tp"], r["fp"], r["fn"], r["recall"]) == (0, 0, 1, 0.0)
    assert (e["tp"], e["fp"], e["fn"], e["precision"]) == (0, 1, 0, 0.0)
    o, d = m["overall"], m["detection"]
    assert (o["tp"], o["fp"], o["fn"]) == (1, 2, 1) and o["precision"] == pytest.approx(1 / 3) and o["recall"] == 0.5
    assert (d["tp"], d["fp"], d["fn"]) == (1, 2, 1)
    assert m["confusion"]["none"]["compromised"] == 1 and m["n"] == 4


FAKE = r"""
import json, os, sys
args = sys.argv[1:]
out = args[args.index("--out") + 1]
os.makedirs(out, exist_ok=True)
verdicts = json.loads(os.environ["FAKE_VERDICTS"])
orgs = [line.split(",")[0] for line in open(args[args.index("--orgs") + 1]).read().splitlines()[1:]]
found = {o: verdicts[o] for o in orgs if o in verdicts}
found.update(verdicts.get("_extra", {}))
doc = {"schema": "sightline.findings/1", "organizations": [
    {"org_id": k, "verdict": v, "confidence": 55, "hosts": [{"ip": "192.0.2.9", "verdict": v, "confidence": 55,
     "indicators": [], "evidence": [{"behaviour": "scan", "direction": "inbound", "indicator": "x", "dst_port": 1,
     "flows": 3, "score": 0.5, "detail": "fake", "decisive": True}]}]} for k, v in found.items()]}
json.dump(doc, open(os.path.join(out, "findings.json"), "w"))
"""


def test_runner_end_to_end_with_a_stand_in_sightline(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "fake_sightline.py"
    fake.write_text(FAKE)
    # remcos: right; android RAT: missed; low-confidence decoy: a false compromised, plus one extra AS org
    monkeypatch.setenv(
        "FAKE_VERDICTS",
        json.dumps({"sme-office": "compromised", "phone-vpn": "none", "_extra": {"AS64511": "reconnaissance"}}),
    )
    results, md = tmp_path / "results.json", tmp_path / "RESULTS.md"
    argv = [a for n in SMALL for a in ("--case", n)] + [
        "--no-fetch",
        "--results",
        str(results),
        "--markdown",
        str(md),
        "--sightline",
        f"{sys.executable} {fake}",
    ]
    assert realrun.main(argv) == 0
    assert realrun.main(argv + ["--strict"]) == 1
    doc = json.loads(results.read_text())
    rows = {(r["case"], r["org"]): (r["expected"], r["found"], r["ok"]) for r in doc["rows"]}
    assert rows == {
        ("c2-refused-remcos", "sme-office"): ("compromised", "compromised", True),
        ("c2-refused-remcos", "AS64511"): ("none", "reconnaissance", False),
        ("c2-long-session-android-rat", "phone-vpn"): ("compromised", "none", False),
        ("c2-long-session-android-rat", "AS64511"): ("none", "reconnaissance", False),
        ("decoy-low-confidence", "phone-vpn"): ("none", "none", True),
        ("decoy-low-confidence", "AS64511"): ("none", "reconnaissance", False),
    }
    m = doc["metrics"]
    assert (m["per_verdict"]["compromised"]["tp"], m["per_verdict"]["compromised"]["fn"]) == (1, 1)
    assert m["per_verdict"]["compromised"]["recall"] == 0.5
    assert (m["detection"]["tp"], m["detection"]["fp"], m["detection"]["fn"]) == (1, 3, 1)
    # the truth's justification is computed from the flows, not typed in
    remcos = next(c for c in doc["cases"] if c["case"] == "c2-refused-remcos")
    flows = remcos["truth"][0]["facts"]["flows"]
    assert flows > 0 and f"made {flows} connections" in remcos["rows"][0]["why_truth"]
    text = capsys.readouterr().out
    assert "WRONG" in text and "overall (exact verdict)" in text
    assert "| c2-long-session-android-rat | long-session C2 | phone-vpn | compromised | none |" in md.read_text()


def test_runner_with_the_real_cli_names_every_organization(tmp_path):
    """One real `sightline hunt`: every truth org and every org in findings.json gets exactly one row."""
    results = tmp_path / "results.json"
    keep = tmp_path / "keep"
    assert (
        realrun.main(
            [
                "--case",
                "c2-long-session-android-rat",
                "--no-fetch",
                "--results",
                str(results),
                "--markdown",
                str(tmp_path / "r.md"),
                "--keep",
                str(keep),
            ]
        )
        == 0
    )
    doc = json.loads(results.read_text())
    findings = json.loads((keep / "c2-long-session-android-rat" / "out" / "findings.json").read_text())
    named = {o["org_id"] for o in findings["organizations"]}
    truth = set(truth_verdicts(_case("c2-long-session-android-rat"))) | {"phone-vpn"}
    assert sorted(r["org"] for r in doc["rows"]) == sorted(truth | named)


def test_harness_error_exits_2(tmp_path):
    assert realrun.main(["--case", "no-such-case", "--no-fetch", "--results", str(tmp_path / "r.json")]) == 2
