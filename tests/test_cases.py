"""Cases: created on first finding by the hunt, worked through their states, false positives as
suppressions, later hunts attaching and reopening, TLP of their content, notify and CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightline.cases import CaseStore, audit, case_tlp, visible
from sightline.cases.store import CaseError
from sightline.cli import app
from sightline.core.tlp import TLP
from sightline.store import Workspace, atomic_write_json
from sightline.suppress import list_suppressions

from .serve_support import findings, make_workspace
from .zeekgen import conn, write_tsv

DAY = 1709251200.0  # 2024-03-01T00:00:00Z
C2, EXPLOITER, SCANNER = "45.77.1.10", "45.77.1.12", "45.77.1.11"
runner = CliRunner()


def cli(*args: str) -> object:
    return runner.invoke(app, list(args), catch_exceptions=False)


# --- a workspace hunted twice: exploitation first, callbacks later ----------------------------
def _hunt_files(tmp: Path) -> dict[str, Path]:
    rnd = random.Random(3)
    first = [
        conn(DAY + 3600 + k * 60, EXPLOITER, 51000 + k, "203.0.113.5", 443, service="ssl", ob=4200, rb=9100)
        for k in range(3)
    ]
    for h in range(1, 6):  # reconnaissance of a second organization
        for port in (443, 8443):
            first.append(
                conn(
                    DAY + 10000 + h * 5 + port / 1000,
                    SCANNER,
                    40000 + h,
                    f"198.18.0.{h}",
                    port,
                    duration=None,
                    ob=0,
                    rb=0,
                    state="S0",
                    op=1,
                    rp=0,
                )
            )
    later = []
    t = DAY + 86400
    while t < DAY + 2 * 86400:
        later.append(
            conn(
                t,
                "203.0.113.5",
                rnd.randint(30000, 60000),
                C2,
                443,
                service="ssl",
                duration=2.0,
                ob=480 + rnd.randint(-20, 20),
                rb=1800 + rnd.randint(-50, 50),
            )
        )
        t += 300 + rnd.uniform(-10, 10)
    intel = tmp / "intel.csv"
    intel.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
        f"{C2},ipv4,RedJuliett,2024-01-01,,90,amber\n"
        f"{EXPLOITER},ipv4,RedJuliett,2024-01-01,,85,amber\n"
        f"{SCANNER},ipv4,RedJuliett,2024-01-01,,80,green\n"
    )
    orgs = tmp / "orgs.csv"
    orgs.write_text(
        "org_id,name,sector,country,cidr\n"
        "tw-semi-01,Hsinchu Wafer Works,semiconductor,TW,203.0.113.0/26\n"
        "tw-gov-03,Ministry of Digital Things,government,TW,198.18.0.0/24\n"
    )
    return {
        "first": write_tsv(tmp / "conn1.log", sorted(first, key=lambda r: r["ts"])),
        "later": write_tsv(tmp / "conn2.log", later),
        "intel": intel,
        "orgs": orgs,
    }


@pytest.fixture(scope="module")
def hunted_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("cases")
    files = _hunt_files(tmp)
    ws = tmp / "ws"
    r = cli(
        "hunt",
        "--telemetry",
        str(files["first"]),
        "--intel",
        str(files["intel"]),
        "--orgs",
        str(files["orgs"]),
        "--workspace",
        str(ws),
    )
    assert r.exit_code == 0, r.output
    return ws, files


@pytest.fixture
def ws_once(hunted_once: tuple[Path, dict[str, Path]], tmp_path: Path) -> tuple[Workspace, dict[str, Path]]:
    import shutil

    shutil.copytree(hunted_once[0], tmp_path / "ws")
    return Workspace(tmp_path / "ws"), hunted_once[1]


def test_hunt_opens_one_case_per_affected_organization(ws_once: tuple[Workspace, dict[str, Path]]) -> None:
    ws, _ = ws_once
    cases = {c["org_id"]: c for c in CaseStore(ws).all()}
    assert set(cases) == {"tw-semi-01", "tw-gov-03"}
    assert cases["tw-semi-01"]["state"] == "new" and cases["tw-semi-01"]["verdict"] == "exploitation_attempt"
    assert cases["tw-gov-03"]["verdict"] == "reconnaissance"
    assert {f["host"] for f in cases["tw-gov-03"]["findings"].values()} == {f"198.18.0.{h}" for h in range(1, 6)}
    # the case carries the TLP of what it holds (the scanner's intel is GREEN, the exploiter's AMBER)
    assert cases["tw-gov-03"]["tlp"] == "green" and cases["tw-semi-01"]["tlp"] == "amber"
    # syncing again (as the dashboard and the CLI do) changes nothing
    before = (ws.root / "cases" / "cases.json").read_bytes()
    res = CaseStore(ws).sync()
    assert res.created == [] and res.attached == {} and res.reopened == []
    assert (
        json.loads((ws.root / "cases" / "cases.json").read_bytes())["cases"].keys()
        == json.loads(before)["cases"].keys()
    )


def _sync_in_child(root: str) -> None:
    CaseStore(Workspace(root)).sync()


def test_concurrent_syncs_make_no_second_case(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", with_users=False)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_sync_in_child, args=(str(ws.root),)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    book = json.loads((ws.root / "cases" / "cases.json").read_text())
    assert sorted(book["cases"]) == ["AS4780", "tw-gov-03", "tw-semi-01"]
    created = [e for c in book["cases"].values() for e in c["events"] if e["what"] == "created"]
    assert len(created) == 3  # one creation each, whichever process came first


def test_a_write_that_fails_leaves_the_store_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_workspace(tmp_path / "ws", with_users=False)
    store = CaseStore(ws)
    store.sync()
    before = store.path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.update("tw-semi-01", who="ana", where="test", state="triaged")
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert CaseStore(ws).get("tw-semi-01")["state"] == "new"
    assert not [p for p in store.dir.iterdir() if p.name.endswith(".tmp")]


def test_states_from_new_to_remediated_with_history_and_audit(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", with_users=False)
    store = CaseStore(ws)
    store.sync()
    for state in ("triaged", "notified", "acknowledged", "remediated"):
        case = store.update("tw-semi-01", who="ana", where="192.0.2.9", state=state)
        assert case["state"] == state
    moves = [(e["old"], e["new"]) for e in case["events"] if e["what"] == "state"]
    assert moves == [
        ("new", "triaged"),
        ("triaged", "notified"),
        ("notified", "acknowledged"),
        ("acknowledged", "remediated"),
    ]
    assert case["closed_verdict"] == "compromised"
    lines = [ln for ln in audit.read(ws, what="case.state")]
    assert [(ln["who"], ln["from"], ln["new"]) for ln in lines][-1] == ("ana", "192.0.2.9", "remediated")
    with pytest.raises(CaseError) as e:
        store.update("tw-semi-01", who="ana", where="test", state="acknowledged")
    assert "cannot move" in e.value.message and "triaged" in (e.value.hint or "")
    with pytest.raises(CaseError, match="unknown state"):
        store.update("tw-semi-01", who="ana", where="test", state="closed")


def test_false_positive_becomes_a_suppression_and_reopening_removes_it(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", with_users=False)
    store = CaseStore(ws)
    store.sync()
    with pytest.raises(CaseError, match="needs a reason"):
        store.update("tw-semi-01", who="ana", where="test", state="false_positive")
    case = store.update("tw-semi-01", who="ana", where="test", state="false_positive", reason="our own red team")
    sups = list_suppressions(ws)
    assert {s["finding"] for s in sups} == {"tw-semi-01/203.0.113.5/198.51.100.7"}
    assert all("our own red team" in s["reason"] and s["who"] == "ana" for s in sups)
    assert case["suppressions"] == [s["id"] for s in sups]
    case = store.update("tw-semi-01", who="ana", where="test", state="triaged")
    assert list_suppressions(ws) == [] and case["suppressions"] == []


def test_later_hunts_attach_and_reopen_a_closed_case_when_the_verdict_escalates(
    ws_once: tuple[Workspace, dict[str, Path]],
) -> None:
    ws, files = ws_once
    store = CaseStore(ws)
    for state in ("triaged", "notified", "remediated"):
        store.update("tw-semi-01", who="ana", where="test", state=state)
    store.update("tw-gov-03", who="ana", where="test", state="triaged")
    # the same data hunted again: nothing escalates, the closed case stays closed
    assert cli("detect", "--workspace", str(ws.root)).exit_code == 0
    assert CaseStore(ws).get("tw-semi-01")["state"] == "remediated"
    # callbacks arrive: compromised, stronger than what the case was closed with
    r = cli("hunt", "--telemetry", str(files["later"]), "--workspace", str(ws.root))
    assert r.exit_code == 0, r.output
    case = CaseStore(ws).get("tw-semi-01")
    assert case["state"] == "new" and case["verdict"] == "compromised"
    reopened = [e for e in case["events"] if e["what"] == "reopened"]
    assert len(reopened) == 1 and "exploitation_attempt to compromised" in reopened[0]["reason"]
    assert any(f["behaviour"] == "beacon" and f["indicator"] == C2 for f in case["findings"].values())
    assert [v["verdict"] for v in case["verdicts"]] == ["exploitation_attempt", "compromised"]
    assert CaseStore(ws).get("tw-gov-03")["state"] == "triaged"  # open cases keep their state
    assert len(CaseStore(ws).all()) == 2


def test_case_tlp_is_the_most_restrictive_content_and_hides_the_case(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", with_users=False)
    store = CaseStore(ws)
    store.sync()
    assert store.get("tw-gov-03")["tlp"] == "red"  # one red beacon among amber rows
    amber = [c["org_id"] for c in visible(store.all(), TLP.AMBER, TLP.AMBER)]
    assert sorted(amber) == ["tw-semi-01"]
    # a note is marked by its author (default: the workspace's default TLP, AMBER)
    case = store.update("tw-semi-01", who="ana", where="test", note="called their CERT")
    assert case["notes"][-1]["tlp"] == "amber" and case["tlp"] == "amber"
    with pytest.raises(CaseError, match="cannot mark a note TLP:RED"):
        store.update("tw-semi-01", who="ana", where="test", note="source is X", note_tlp="red", clearance=TLP.AMBER)
    case = store.update("tw-semi-01", who="admin", where="test", note="source is X", note_tlp="red")
    assert case["tlp"] == "red" and case_tlp(case, TLP.AMBER) == TLP.RED
    assert visible(store.all(), TLP.AMBER, TLP.AMBER) == []
    with pytest.raises(CaseError, match="no case"):  # not visible, so not changeable
        store.update("tw-semi-01", who="ana", where="test", state="triaged", clearance=TLP.AMBER)


def test_due_date_from_the_kev_due_dates_of_the_exposure(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", with_users=False)
    doc = findings()
    doc["exposure"] = [
        {
            "org_id": "tw-semi-01",
            "ip": "203.0.113.5",
            "port": 443,
            "product": "FortiOS",
            "tlp": "amber",
            "cves": [
                {"cve": "CVE-2022-42475", "kev": {"due_date": "2023-01-03"}, "actor_linked": True},
                {"cve": "CVE-2000-0001", "kev": None},
            ],
        },
        {
            "org_id": "tw-semi-01",
            "ip": "203.0.113.6",
            "port": 4433,
            "tlp": "amber",
            "cves": [{"cve": "CVE-2024-21762", "kev": {"due_date": "2024-02-16"}}],
        },
    ]
    atomic_write_json(ws.findings_dir / "latest.json", doc)
    store = CaseStore(ws)
    store.sync()
    case = store.get("tw-semi-01")
    assert (
        case["due"] == "2023-01-03"
        and "CVE-2022-42475" in case["due_source"]
        and "203.0.113.5:443" in case["due_source"]
    )
    case = store.update("tw-semi-01", who="ana", where="test", due="2024-05-01")
    assert case["due"] == "2024-05-01" and case["due_source"] == "set by ana"
    case = store.update("tw-semi-01", who="ana", where="test", due="")
    assert case["due"] == "2023-01-03"
    with pytest.raises(CaseError, match="not a date"):
        store.update("tw-semi-01", who="ana", where="test", due="next week")


def test_notify_records_what_was_sent_to_whom_and_when(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", with_users=False)
    out = tmp_path / "notices"
    r = cli("notify", "--out", str(out), "--workspace", str(ws.root))
    assert r.exit_code == 0, r.output
    case = CaseStore(ws).get("tw-semi-01")
    assert case["state"] == "notified"
    (notice,) = case["notices"]
    assert notice["tlp"] == "amber" and notice["to"].startswith("tw-semi-01")
    assert {Path(f).name for f in notice["files"]} == {"notice-tw-semi-01.md", "notice-tw-semi-01.eml"}
    assert notice["message_id"] in (out / "notice-tw-semi-01.eml").read_text()
    assert [ln["org_id"] for ln in audit.read(ws, what="notice")] == [
        n for n in ["tw-semi-01", "tw-gov-03"] if (out / f"notice-{n}.md").exists()
    ]


def test_cli_list_show_set_and_audit(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", with_users=False)
    w = str(ws.root)
    r = cli("case", "list", "--json", "-w", w)
    assert r.exit_code == 0, r.output
    listed = json.loads(r.stdout)
    assert {c["org_id"] for c in listed["cases"]} == {"tw-semi-01", "tw-gov-03", "AS4780"}
    assert listed["counts"]["new"] == 3
    green = json.loads(cli("case", "list", "--json", "--tlp", "green", "-w", w).stdout)
    assert green == {"counts": {s: 0 for s in listed["counts"]}, "cases": []}
    r = cli(
        "case",
        "set",
        "tw-semi-01",
        "--state",
        "triaged",
        "--assignee",
        "ana",
        "--note",
        "patch the FortiGate",
        "--json",
        "-w",
        w,
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["assignee"] == "ana"
    r = cli("case", "set", "tw-semi-01", "--state", "remediated", "-w", w)
    assert r.exit_code == 2 and "cannot move to remediated" in r.output and "notified" in r.output
    r = cli("case", "show", "tw-semi-01", "-w", w)
    assert r.exit_code == 0 and "patch the FortiGate" in r.stdout and "new -> triaged" in r.stdout
    assert cli("case", "show", "tw-gov-03", "--tlp", "amber", "-w", w).exit_code == 2
    r = cli("audit", "--json", "--what", "case", "--since", "1h", "-w", w)
    kinds = [json.loads(line)["what"] for line in r.stdout.splitlines()]
    assert kinds == ["case.state", "case.assignee", "case.note"]
    assert cli("audit", "--since", "yesterday-ish", "-w", w).exit_code == 2
