"""`sightline evaluate` on hand-made truth and findings with known scores."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.errors import InputError
from sightline.evaluate import evaluate, render_table

TRUTH = {
    "organizations": {
        "a": "compromised",
        "b": "compromised",
        "c": "exploitation_attempt",
        "d": "reconnaissance",
        "e": "reconnaissance",
    },
    "universe": list("abcdefgh"),
    "hosts": {"203.0.113.5": "compromised", "2001:db8::1": "reconnaissance"},
}


def _org(org_id: str, verdict: str, hosts: list[tuple[str, str]] = ()) -> dict:
    return {"org_id": org_id, "verdict": verdict, "hosts": [{"ip": ip, "verdict": v} for ip, v in hosts]}


FINDINGS = {
    "schema": "sightline.findings/1",
    "organizations": [
        _org("a", "compromised", [("203.0.113.5", "compromised")]),
        _org("b", "exploitation_attempt"),
        _org("c", "exploitation_attempt"),
        _org("d", "reconnaissance", [("2001:DB8:0::1", "reconnaissance"), ("198.51.100.9", "reconnaissance")]),
        _org("f", "reconnaissance"),
    ],
    "unknown_key": {"readers": "ignore it"},
}


def test_org_scores_match_hand_computation():
    r = evaluate(TRUTH, FINDINGS)["organizations"]
    comp, expl, rec = (r["per_verdict"][v] for v in ("compromised", "exploitation_attempt", "reconnaissance"))
    assert (comp["precision"], comp["recall"]) == (1.0, 0.5)
    assert comp["f1"] == pytest.approx(2 / 3)
    assert (expl["precision"], expl["recall"]) == (0.5, 1.0)
    assert (rec["precision"], rec["recall"], rec["f1"]) == (0.5, 0.5, 0.5)
    assert (r["overall"]["tp"], r["overall"]["fp"], r["overall"]["fn"]) == (3, 2, 2)
    assert r["overall"]["precision"] == pytest.approx(0.6)
    assert r["detection"]["precision"] == pytest.approx(0.8) and r["detection"]["recall"] == pytest.approx(0.8)
    conf = r["confusion"]
    assert conf["compromised"]["exploitation_attempt"] == 1
    assert conf["reconnaissance"]["none"] == 1
    assert conf["none"]["reconnaissance"] == 1
    assert conf["none"]["none"] == 2  # g, h from the universe
    assert r["n"] == 8


def test_host_scores_normalize_addresses():
    h = evaluate(TRUTH, FINDINGS)["hosts"]
    assert h["per_verdict"]["compromised"]["recall"] == 1.0
    rec = h["per_verdict"]["reconnaissance"]
    assert (rec["tp"], rec["fp"], rec["fn"]) == (1, 1, 0)  # 2001:DB8:0::1 == 2001:db8::1


def test_undefined_ratios_are_none_and_perfect_is_one():
    r = evaluate({"organizations": {"a": "reconnaissance"}}, {"organizations": [_org("a", "reconnaissance")]})
    org = r["organizations"]
    assert org["per_verdict"]["compromised"]["precision"] is None
    assert org["per_verdict"]["reconnaissance"]["f1"] == 1.0
    assert r["hosts"] is None


@pytest.mark.parametrize(
    "truth,findings",
    [
        ({"organizations": {"a": "owned"}}, {"organizations": []}),
        ({"organizations": {}}, {"organizations": [{"org_id": "x", "verdict": "bad"}]}),
        ({"orgs": {}}, {"organizations": []}),
        ({"organizations": {}}, {"organizations": [{"verdict": "compromised"}]}),
    ],
    ids=["bad-truth-verdict", "bad-finding-verdict", "truth-without-organizations", "finding-without-org-id"],
)
def test_bad_input_is_a_typed_error(truth, findings):
    with pytest.raises(InputError):
        evaluate(truth, findings)


def test_cli_prints_table_and_writes_json(tmp_path):
    t, f, out = tmp_path / "truth.json", tmp_path / "findings.json", tmp_path / "scores.json"
    t.write_text(json.dumps(TRUTH))
    f.write_text(json.dumps(FINDINGS))
    res = CliRunner().invoke(app, ["evaluate", "--truth", str(t), "--findings", str(f), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "compromised" in res.output and "0.667" in res.output
    saved = json.loads(out.read_text())
    assert saved["organizations"]["per_verdict"]["exploitation_attempt"]["precision"] == 0.5


def test_cli_bad_input_exits_2(tmp_path):
    t = tmp_path / "truth.json"
    t.write_text("{not json")
    res = CliRunner().invoke(app, ["evaluate", "--truth", str(t), "--findings", str(tmp_path / "none.json")])
    assert res.exit_code == 2


def test_render_table_has_both_levels():
    from rich.console import Console

    con = Console(record=True, width=120)
    con.print(render_table(evaluate(TRUTH, FINDINGS)))
    text = con.export_text()
    assert "organizations: confusion" in text and "hosts: precision" in text
