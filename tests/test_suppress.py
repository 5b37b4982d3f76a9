"""Allowlists in layers, per-finding suppressions, detector control and de-duplication."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sightline.config import load_config
from sightline.errors import ConfigError
from sightline.findings import validate_findings
from sightline.store import Workspace
from sightline.suppress import apply_suppressions, load_allowlist, parse_finding

from .test_hunt_e2e import EXPLOITER, SCANNER, STALE, run, scenario, verdicts


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hunted")
    files = scenario(tmp)
    res = run(
        [
            "hunt",
            "--telemetry",
            str(files["conn"]),
            "--telemetry",
            str(files["conn6"]),
            "--intel",
            str(files["intel"]),
            "--orgs",
            str(files["orgs"]),
            "--workspace",
            str(tmp / "ws"),
        ]
    )
    assert res.exit_code == 0, res.output
    return tmp / "ws"


@pytest.fixture
def ws(base: Path, tmp_path: Path) -> Path:
    """A private copy of the hunted workspace (the flow store is only read)."""
    dst = tmp_path / "ws"
    shutil.copytree(base, dst)
    return dst


def report(ws: Path, tmp: Path, name: str = "f.json") -> dict:
    res = run(["report", "--format", "json", "--out", str(tmp / name), "--workspace", str(ws)])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp / name).read_text())
    validate_findings(doc)
    return doc


def test_allowlist_change_flips_finding_without_reingest(ws: Path, tmp_path: Path):
    manifest = (ws / "manifest.json").read_bytes()
    before = report(ws, tmp_path, "before.json")
    assert verdicts(before)["tw-gov-03"] == "reconnaissance"
    ours = ws / "ours.csv"
    ours.write_text(f"value,category,provider,note\n{SCANNER},research_scanner,Our red team,weekly scan\n")
    (ws / "sightline.toml").write_text('[allowlist]\nfiles = ["ours.csv"]\n')

    doc = report(ws, tmp_path, "after.json")
    assert "tw-gov-03" not in verdicts(doc) and "hk-rel-05" not in verdicts(doc)
    assert verdicts(doc)["tw-semi-01"] == "compromised"  # other orgs untouched
    assert doc["summary"]["by_verdict"]["reconnaissance"] == 0
    gone = [s for s in doc["suppressed"] if s["org_id"] == "tw-gov-03"]
    assert len(gone) == 20 and {s["rule"] for s in gone} == {f"allowlist:{ours.resolve()}:2"}
    assert "research_scanner" in gone[0]["reason"] and gone[0]["evidence"]["actor_ip"] == SCANNER
    assert set(doc["suppression"]["suppressed_organizations"]) == {"tw-gov-03", "hk-rel-05"}
    # nothing was ingested again and the flow count is the same
    assert (ws / "manifest.json").read_bytes() == manifest
    assert doc["inputs"]["flows"] == before["inputs"]["flows"]

    ours.write_text("value,category,provider,note\n")  # entry removed -> the finding comes back
    again = report(ws, tmp_path, "again.json")
    assert verdicts(again) == verdicts(before) and again["suppressed"] == []


def test_suppress_cli_add_list_remove(ws: Path, tmp_path: Path):
    res = run(
        [
            "suppress",
            f"tw-univ-02/*/{EXPLOITER}/32",
            "--reason",
            "authorised pentest",
            "--by",
            "alice",
            "--workspace",
            str(ws),
        ]
    )
    assert res.exit_code == 0, res.output
    ident = res.stdout.strip().splitlines()[-1]
    listing = json.loads(run(["suppress", "--list", "--json", "--workspace", str(ws)]).stdout)
    assert [(s["id"], s["who"], s["reason"], s["match"]) for s in listing] == [
        (ident, "alice", "authorised pentest", {"org_id": "tw-univ-02", "indicator": EXPLOITER})
    ]
    assert listing[0]["when"].endswith("Z")

    doc = report(ws, tmp_path)
    assert "tw-univ-02" not in verdicts(doc)
    # the same indicator elsewhere is not hidden: tw-semi-01 was exploited by it too
    semi = next(o for o in doc["organizations"] if o["org_id"] == "tw-semi-01")
    assert any(e["indicator"] == EXPLOITER for h in semi["hosts"] for e in h["evidence"])
    s = next(s for s in doc["suppressed"] if s["org_id"] == "tw-univ-02")
    assert s["rule"] == f"suppression:{ident}" and "authorised pentest" in s["reason"] and "alice" in s["reason"]

    assert run(["suppress", "--remove", ident, "--workspace", str(ws)]).exit_code == 0
    assert verdicts(report(ws, tmp_path, "g.json"))["tw-univ-02"] == "exploitation_attempt"
    assert json.loads(run(["suppress", "--list", "--json", "--workspace", str(ws)]).stdout) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["tw-gov-03"], "cannot read finding"),
        (["org:tw-gov-03"], "needs a reason"),
        (["--remove", "s-nothere"], "no suppression"),
        ([], "nothing to suppress"),
    ],
    ids=["bad-finding", "no-reason", "unknown-id", "empty"],
)
def test_suppress_usage_errors_exit_2(ws: Path, args: list[str], message: str):
    res = run(["suppress", *args, *(["--reason", "x"] if args == ["tw-gov-03"] else []), "--workspace", str(ws)])
    assert res.exit_code == 2 and message in res.output


@pytest.mark.parametrize(
    "text, expected",
    [
        ("org:tw-gov-03", {"org_id": "tw-gov-03"}),
        ("host:2001:DB8:5::10", {"host": "2001:db8:5::10"}),
        ("indicator:45.77.1.12/32", {"indicator": "45.77.1.12"}),
        ("indicator:Evil.Example.COM.", {"indicator": "evil.example.com"}),
        (
            "tw-semi-01/203.0.113.5/45.77.0.0/16",
            {"org_id": "tw-semi-01", "host": "203.0.113.5", "indicator": "45.77.0.0/16"},
        ),
        ("*/203.0.113.5/*", {"host": "203.0.113.5"}),
    ],
    ids=["org", "host-v6", "cidr-32", "name", "three-part-cidr", "wildcards"],
)
def test_parse_finding(text: str, expected: dict):
    assert parse_finding(text) == expected


def test_detectors_switched_off_and_tuned(ws: Path, tmp_path: Path):
    (ws / "sightline.toml").write_text("[detectors.beacon]\nenabled = false\n[detectors.scan]\nmin_flows = 1000\n")
    res = run(["detect", "--workspace", str(ws)])
    assert res.exit_code == 0, res.output
    assert "Stages" in res.output and "detect.match" in res.output  # per-stage table without -v
    doc = json.loads((ws / "findings" / "latest.json").read_text())
    v = verdicts(doc)
    assert v["tw-semi-01"] == "compromised"  # callbacks after exploitation still decide
    assert "tw-gov-03" not in v and v["tw-univ-02"] == "exploitation_attempt"
    behaviours = {e["behaviour"] for o in doc["organizations"] for h in o["hosts"] for e in h["evidence"]}
    assert "beacon" not in behaviours and "scan" not in behaviours
    rules = {s["rule"] for s in doc["suppressed"]}
    assert {"detector:beacon", "detector:scan.min_flows"} <= rules


def _doc(evidence: list[dict], verdict: str = "compromised") -> dict:
    host = {
        "ip": "203.0.113.9",
        "verdict": verdict,
        "confidence": 90,
        "tlp": "amber",
        "first_seen": min(e["first_seen"] for e in evidence),
        "last_seen": max(e["last_seen"] for e in evidence),
        "indicators": sorted({e["indicator"] for e in evidence}),
        "evidence": evidence,
    }
    org = {
        "org_id": "tw-x",
        "name": "X",
        "sector": "semiconductor",
        "country": "TW",
        "asns": [],
        "source": "registry",
        "verdict": verdict,
        "confidence": 90,
        "tlp": "amber",
        "first_seen": host["first_seen"],
        "last_seen": host["last_seen"],
        "hosts": [host],
    }
    return {
        "schema": "sightline.findings/1",
        "run_id": "r1",
        "inputs": {"flows": 1, "registry_organizations": 1},
        "organizations": [org],
        "stale_matches": [],
        "summary": {},
    }


def _ev(
    behaviour: str,
    ip: str,
    port: int = 443,
    first: str = "2024-03-01T00:00:00Z",
    last: str = "2024-03-01T01:00:00Z",
    **kw,
) -> dict:
    return dict(
        {
            "indicator": ip,
            "actor_ip": ip,
            "actor": "RedJuliett",
            "indicator_confidence": 90,
            "tlp": "amber",
            "first_seen": first,
            "last_seen": last,
            "behaviour": behaviour,
            "direction": "outbound",
            "dst_port": port,
            "flows": 10,
            "bytes_out": 5000,
            "bytes_in": 9000,
            "score": 0.8,
            "detail": "d",
            "confidence": 80,
            "decisive": True,
        },
        **kw,
    )


def test_allowlisted_cloud_storage_never_hides_exfiltration(tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    ours = tmp_path / "ours.csv"
    ours.write_text("52.216.0.0/15,cloud_storage,Amazon S3,\n")  # headerless rows are accepted
    cfg_file = tmp_path / "sightline.toml"
    cfg_file.write_text(f'[allowlist]\nfiles = ["{ours}"]\n')
    doc = _doc(
        [
            _ev("exfiltration", "52.216.8.1", bytes_out=60_000_000, bytes_in=20_000),
            _ev("callback", "52.216.8.1", score=0.7),
        ]
    )
    out = apply_suppressions(doc, ws, load_config(cfg_file)).to_dict()
    host = out["organizations"][0]["hosts"][0]
    assert [e["behaviour"] for e in host["evidence"]] == ["exfiltration"]
    assert host["evidence"][0]["allowlisted"].startswith(f"allowlist:{ours}:1") and host["verdict"] == "compromised"
    assert [(s["behaviour"], s["rule"]) for s in out["suppressed"]] == [("callback", f"allowlist:{ours}:1")]
    assert doc["organizations"][0]["hosts"][0]["evidence"][1]["behaviour"] == "callback"  # input untouched


def test_repeated_alerts_deduplicated_per_host_pair_and_window(tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    ip = "45.77.1.10"
    rows = [
        _ev("callback", ip, 443, score=0.7),
        _ev("callback", ip, 8443, "2024-03-01T01:30:00Z", "2024-03-01T02:00:00Z", score=0.75),
        _ev("callback", ip, 443, "2024-03-03T00:00:00Z", "2024-03-03T01:00:00Z", score=0.7),  # next window
        _ev("callback", "45.77.1.11", 443, score=0.7),
    ]  # another pair
    cfg = tmp_path / "c.toml"
    cfg.write_text("[dedup]\nwindow_s = 3600\n")
    out = apply_suppressions(_doc(rows), ws, load_config(cfg)).to_dict()
    kept = out["organizations"][0]["hosts"][0]["evidence"]
    assert [(e["actor_ip"], e["dst_port"], e.get("duplicates")) for e in kept] == [
        (ip, 8443, 1),
        (ip, 443, None),
        ("45.77.1.11", 443, None),
    ]
    assert [s["rule"] for s in out["suppressed"]] == ["dedup:3600s"]
    cfg.write_text("[dedup]\nwindow_s = 0\n")
    assert len(apply_suppressions(_doc(rows), ws, load_config(cfg)).organizations[0].hosts[0].evidence) == 4


def test_stale_contact_listed_without_verdict_and_marked_when_suppressed(ws: Path, tmp_path: Path):
    doc = report(ws, tmp_path)
    assert "tw-misc-04" not in verdicts(doc)
    stale = [s for s in doc["stale_matches"] if s["indicator"] == STALE]
    assert stale and stale[0]["host"] == "198.18.1.5" and stale[0].get("suppressed_by") is None
    ident = (
        run(["suppress", f"indicator:{STALE}", "--reason", "sinkholed since 2023", "--workspace", str(ws)])
        .stdout.strip()
        .splitlines()[-1]
    )
    doc = report(ws, tmp_path, "g.json")
    stale = [s for s in doc["stale_matches"] if s["indicator"] == STALE]
    assert stale[0]["suppressed_by"] == f"suppression:{ident}"  # still listed, marked


def test_allowlist_layers_and_bad_rows(tmp_path: Path):
    """The bundled set is empty (shared infrastructure is marked by the warninglists, not
    hidden); the workspace's files and the configured ones are read, bad rows reported."""
    ws = Workspace(tmp_path / "ws")
    cfg = load_config(env={}, workspace=ws.root)
    assert len(load_allowlist(cfg, ws)) == 0
    assert load_allowlist(cfg, ws).match_ip("8.8.8.8") is None
    (ws.root / "allowlist").mkdir(parents=True)
    (ws.root / "allowlist" / "ours.csv").write_text(
        "value,category,provider\n9.9.9.9,dns_resolver,Quad9\n*.backup.example.com,backup,Ours\nnot valid!,x\n"
    )
    al = load_allowlist(cfg, ws)
    assert al.match_ip("9.9.9.9").provider == "Quad9" and al.match_name("eu.backup.example.com").category == "backup"
    assert al.match_ip("45.77.1.10") is None and al.match_name("backup.example.com.evil.example") is None
    assert any("ours.csv:4" in p and "neither an IP" in p for p in al.problems)


def test_missing_org_allowlist_file_is_a_config_error(tmp_path: Path):
    cfg = tmp_path / "sightline.toml"
    cfg.write_text('[allowlist]\nfiles = ["nope.csv"]\n')
    with pytest.raises(ConfigError) as e:
        load_allowlist(load_config(cfg), None)
    assert "nope.csv" in str(e.value) and "allowlist.files" in str(e.value)


def test_nat_addresses_are_flagged_and_missing_network_context_noted(tmp_path: Path):
    doc = _doc([_ev("callback", "45.77.1.10")])
    org = doc["organizations"][0]
    other = json.loads(json.dumps(org["hosts"][0]))
    other["ip"] = "198.51.100.20"
    org["hosts"][0]["ip"] = "10.1.2.3"
    org["hosts"].append(other)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[network]\ninternal_ranges = ["10.0.0.0/8"]\nnat_addresses = ["10.1.2.3"]\n')
    out = apply_suppressions(doc, Workspace(tmp_path / "ws"), load_config(cfg)).to_dict()
    hosts = {h["ip"]: h for h in out["organizations"][0]["hosts"]}
    assert "nat" in hosts["10.1.2.3"]["shared_address"] and hosts["198.51.100.20"]["shared_address"] is None
    assert out["summary"]["by_verdict"]["compromised"] == 1 and "notes" not in out
    assert any(
        "no internal ranges" in n
        for n in apply_suppressions(
            dict(doc, inputs={"registry_organizations": 0}), Workspace(tmp_path / "ws"), load_config(env={})
        ).notes
        or []
    )


def test_config_flag_on_any_command(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``--config FILE`` works on detect (and every other command) like $SIGHTLINE_CONFIG."""
    import sys

    from sightline.cli import main

    monkeypatch.setenv("SIGHTLINE_CONFIG", "")  # restored after the test: main() sets it
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text("[detectors.beacon]\nenabled = false\n")
    monkeypatch.setattr(sys, "argv", ["sightline", "detect", "--workspace", str(ws), "--config", str(cfg)])
    with pytest.raises(SystemExit) as ex:
        main()
    assert ex.value.code in (0, None)
    doc = json.loads((ws / "findings" / "latest.json").read_text())
    assert "detector:beacon" in {s["rule"] for s in doc["suppressed"]}
    monkeypatch.setattr(
        sys, "argv", ["sightline", "detect", "--workspace", str(ws), "--config", str(tmp_path / "no.toml")]
    )
    with pytest.raises(SystemExit) as ex:
        main()
    assert ex.value.code == 2  # a missing configuration file is a usage error, said as such
