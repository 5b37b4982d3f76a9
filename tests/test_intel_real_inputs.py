"""Intel as vendors publish it: MISP events whose attributes are all ``to_ids = false``
(ESET's malware-ioc repository), directories and globs with bad files among good ones, and
files that hold no indicator at all (refused with what they look like, exit 2).

The ESET events are real (``tests/data/intel/eset``, BSD-2-Clause, see SOURCES.md); the
trailing-comma JSON is made here after the one ESET file of that repository that is not
valid JSON (1.5 MB, too big to ship).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app
from sightline.intel import intel_status, load_intel_files, read_indicators
from sightline.store import Workspace

from .datafiles import INTEL, SLIPS

ESET = INTEL / "eset"
POWERPOOL = ESET / "misp-powerpool.json"
SIGNSIGHT = ESET / "signsight-misp-event.json"
BLOCKLIST = ESET / "rqz-dnsduvel_blocklist.json"  # ESET's, JSON but no IOC document


def _run(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _text(res) -> str:  # type: ignore[no-untyped-def]
    return " ".join(res.output.split())


def _conn_log(tmp_path: Path) -> Path:
    src = SLIPS / "port-scans" / "horizontal-conn.log"
    dst = tmp_path / "conn.log"
    shutil.copy(src, dst)
    return dst


def test_to_ids_false_event_is_refused_by_default_and_loads_with_include_non_ids(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    res = _run(["intel", "add", str(POWERPOOL), "--workspace", str(ws)])
    assert res.exit_code == 2
    text = _text(res)
    assert "to_ids = false" in text and "--include-non-ids" in text

    res = _run(["intel", "add", str(POWERPOOL), "--include-non-ids", "--workspace", str(ws)])
    assert res.exit_code == 0, res.output
    values = set(read_indicators(Workspace(ws)).column("value").to_pylist())
    # the report's domains and C2 address load; the report's own URL (External analysis) does not
    assert {"newsrental.net", "rosbusiness.eu", "afishaonline.eu", "sports-collectors.com"} <= values
    assert "27.102.106.149" in values
    assert not any("welivesecurity" in v for v in values)
    src = intel_status(Workspace(ws))["sources"]["misp-powerpool.json"]
    assert src["include_non_ids"] is True and src["non_ids"] == src["loaded"] == 10
    assert src["skip_reasons"] == {"unsupported type": 7, "reference, not an indicator": 1}
    res = _run(["intel", "status", "--workspace", str(ws)])
    assert "misp-powerpool.json: 10 indicator(s) from to_ids = false attributes" in _text(res)


def test_include_non_ids_per_source_setting(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "sightline.toml").write_text('[intel]\ninclude_non_ids = ["misp-power*"]\n')
    res = _run(["intel", "add", str(POWERPOOL), str(SIGNSIGHT), "--workspace", str(ws)])
    assert res.exit_code == 0, res.output  # one of the two loads: not an error
    sources = intel_status(Workspace(ws))["sources"]
    assert sources["misp-powerpool.json"]["loaded"] == 10 and "signsight-misp-event.json" not in sources
    text = _text(res)
    assert "signsight-misp-event.json" in text and "--include-non-ids" in text


def test_directory_and_glob_skip_bad_files_and_load_the_rest(tmp_path: Path) -> None:
    d = tmp_path / "vendor"
    d.mkdir()
    for f in (POWERPOOL, SIGNSIGHT, BLOCKLIST, ESET / "LICENSE"):
        shutil.copy(f, d / f.name)
    (d / "trailing-comma.json").write_text(
        '{"Event": {"info": "x", "Attribute": [{"type": "ip-dst", "value": "1.2.3.4"},]}}'
    )
    _conn_log(d)
    ws = tmp_path / "ws"
    res = _run(["intel", "add", str(d), "--include-non-ids", "--workspace", str(ws)])
    assert res.exit_code == 0, res.output
    text = _text(res)
    assert "skipped 4 file(s), nothing loaded from them" in text
    assert "trailing-comma.json: not valid JSON" in text
    assert "rqz-dnsduvel_blocklist.json" in text and "keys duvelDetails" in text
    assert "this is a Zeek conn.log" in text
    assert len(read_indicators(Workspace(ws))) == 16  # 10 + 6 from the two events

    res = _run(["intel", "add", str(d), "--include-non-ids", "--strict", "--workspace", str(tmp_path / "ws2")])
    assert res.exit_code == 2 and "4 file(s) skipped" in _text(res)
    assert len(read_indicators(Workspace(tmp_path / "ws2"))) == 16  # what was good is kept

    res = _run(["intel", "add", str(d / "*.json"), "--include-non-ids", "--workspace", str(tmp_path / "ws3")])
    assert res.exit_code == 0, res.output
    assert "skipped 2 file(s)" in _text(res)
    assert len(read_indicators(Workspace(tmp_path / "ws3"))) == 16


def test_many_bad_files_are_counted_per_reason_and_all_lists_them(tmp_path: Path) -> None:
    d = tmp_path / "feed"
    d.mkdir()
    (d / "good.txt").write_text("45.77.1.1\n")
    for i in range(12):
        (d / f"bad{i:02d}.json").write_text('{"a": [1,]}')
    res = _run(["intel", "add", str(d), "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    text = _text(res)
    assert "12 x not valid JSON, e.g." in text and "`--all` lists every file" in text
    assert "bad11.json" not in text
    res = _run(["intel", "add", str(d), "--all", "--workspace", str(tmp_path / "ws")])
    assert "bad11.json: not valid JSON" in _text(res)


def test_files_with_no_indicator_are_refused_saying_what_they_are(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    res = _run(["intel", "add", str(_conn_log(tmp_path)), "--workspace", ws])
    assert res.exit_code == 2 and "this is a Zeek conn.log" in _text(res)
    res = _run(["intel", "add", str(BLOCKLIST), "--workspace", ws])
    assert res.exit_code == 2 and "keys duvelDetails" in _text(res)
    res = _run(["intel", "add", str(SLIPS / "test8-malicious.pcap"), "--workspace", ws])
    assert res.exit_code == 2 and "packet capture" in _text(res)
    eve = tmp_path / "eve.json"
    eve.write_text('{"event_type": "flow", "src_ip": "10.0.0.1"}\n{"event_type": "flow", "src_ip": "10.0.0.2"}\n')
    res = _run(["intel", "add", str(eve), "--workspace", ws])
    assert res.exit_code == 2 and "this is Suricata eve.json (flow events" in _text(res)
    table = tmp_path / "hosts.csv"
    table.write_text("hostname,owner,room\nprinter-3,facilities,B12\nnas-1,it,B01\n")
    res = _run(["intel", "add", str(table), "--workspace", ws])
    assert res.exit_code == 2 and "no indicator in this file" in _text(res)
    assert not (tmp_path / "ws" / "intel" / "indicators.parquet").exists()


def test_load_api_reports_refusals_instead_of_raising(tmp_path: Path) -> None:
    load = load_intel_files([BLOCKLIST, tmp_path / "missing.json", INTEL / "plain.txt"], skip_bad_files=True)
    assert [r.source for r in load.report] == ["plain.txt"]
    assert {Path(r.path).name for r in load.refused} == {"rqz-dnsduvel_blocklist.json", "missing.json"}


def test_geo_and_orgs_files_without_usable_rows_exit_2(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    notgeo = tmp_path / "hosts.csv"
    notgeo.write_text("name,owner,country\nprinter,facilities,TW\nnas,it,TW\n")
    res = _run(["geo", "load", str(notgeo), "--workspace", ws])
    assert res.exit_code == 2 and "no IP range in this file" in _text(res)
    orgs = tmp_path / "orgs.csv"
    orgs.write_text("org_id,name,sector,country,cidr\nacme,Acme,semiconductor,TW,not-a-cidr\nbeta,Beta,,TW,\n")
    res = _run(["orgs", "load", str(orgs), "--workspace", ws])
    assert res.exit_code == 2 and "no valid row" in _text(res) and "bad cidr" in _text(res)


def test_hunt_without_usable_intel_is_refused(tmp_path: Path) -> None:
    log = _conn_log(tmp_path)
    res = _run(["hunt", "-t", str(log), "--workspace", str(tmp_path / "a")])
    assert res.exit_code == 2 and "no usable indicators" in _text(res)
    res = _run(["hunt", "-t", str(log), "-i", str(BLOCKLIST), "--workspace", str(tmp_path / "b")])
    assert res.exit_code == 2 and "none of the intel given holds a usable indicator" in _text(res)


def test_hunt_include_non_ids_matches_a_to_ids_false_domain(tmp_path: Path) -> None:
    """The vendor's domain (to_ids false) matches DNS answers in a real capture only when asked for."""
    from .datafiles import SLIPS as _SLIPS

    intel = tmp_path / "event.json"
    ev = POWERPOOL.read_text().replace("newsrental.net", "testing.com")  # the capture's C2 name
    intel.write_text(ev)
    cap = _SLIPS / "test-cc-capture-2-cut.pcapng"
    res = _run(["hunt", "-t", str(cap), "-i", str(intel), "--workspace", str(tmp_path / "a")])
    assert res.exit_code == 2 and "--include-non-ids" in _text(res)
    out = tmp_path / "out"
    res = _run(
        [
            "hunt",
            "-t",
            str(cap),
            "-i",
            str(intel),
            "--include-non-ids",
            "--workspace",
            str(tmp_path / "b"),
            "--out",
            str(out),
        ]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    assert doc["summary"]["by_verdict"].get("compromised") == 1
    assert {e["indicator"] for o in doc["organizations"] for h in o["hosts"] for e in h["evidence"]} == {"testing.com"}
