"""Intel loaders: CSV, plain lists, vendor TSV, STIX bundles; workspace upsert and revocation."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

from sightline.intel import add_to_workspace, intel_status, load_intel_files, read_indicators
from sightline.schema import INDICATOR_SCHEMA
from sightline.store import Workspace

HERE = Path(__file__).parent / "data" / "intel"


def rows_by_value(table):
    return {r["value"]: r for r in table.to_pylist()}


def skips(load, source=None):
    return [s for r in load.report if source in (None, r.source) for s in r.skips]


def test_csv_fields_are_normalized():
    load = load_intel_files([HERE / "basic.csv"])
    assert load.table.schema == INDICATOR_SCHEMA
    rows = rows_by_value(load.table)
    ip = rows["198.51.100.7"]
    assert ip["type"] == "ipv4" and ip["ip_start4"] == ip["ip_end4"] == 0xC6336407
    # the duplicate line widens the window and keeps the highest confidence / strictest TLP
    assert ip["valid_from"] == datetime(2023, 1, 1, tzinfo=UTC)
    assert ip["valid_until"].date().isoformat() == "2024-06-30" and ip["valid_until"].hour == 23
    assert ip["confidence"] == 90 and ip["tlp"] == "amber" and ip["actor"] == "RedJuliett"
    net = rows["203.0.113.0/24"]
    assert (net["ip_start4"], net["ip_end4"]) == (0xCB007100, 0xCB0071FF)
    assert net["valid_until"] is None and net["tlp"] == "green"
    v6 = rows["2001:db8:dead::/48"]
    assert v6["type"] == "ipv6" and v6["ip_start6"] == bytes.fromhex("20010db8dead") + b"\0" * 10
    assert v6["ip_end6"] == bytes.fromhex("20010db8dead") + b"\xff" * 10
    assert v6["tlp"] == "clear" and v6["confidence"] == 50  # TLP1 white -> clear; default confidence
    assert rows["c2.example-bad.com"]["confidence"] == 85 and rows["c2.example-bad.com"]["tlp"] == "amber+strict"
    assert "http://files.example-bad.com/a.bin" in rows  # defanged URL refanged
    sock = rows["192.0.2.10"]
    assert sock["port"] == 5555 and sock["tlp"] == "red"


def test_csv_bad_rows_are_reported_with_line_and_reason():
    load = load_intel_files([HERE / "basic.csv"])
    rep = load.report[0]
    assert rep.read == 12 and rep.loaded == 6 and rep.skipped == 5
    by_line = {s.position: s.reason for s in rep.skips}
    assert "not an IP" in by_line["line 8"]
    assert "before valid_from" in by_line["line 9"]
    assert "confidence" in by_line["line 10"]
    assert "TLP" in by_line["line 11"]
    assert by_line["line 12"].startswith("unsupported type")


def test_indicator_id_is_stable_across_imports():
    a = load_intel_files([HERE / "basic.csv"]).table.column("indicator_id").to_pylist()
    b = load_intel_files([HERE / "basic.csv"]).table.column("indicator_id").to_pylist()
    assert sorted(a) == sorted(b) and len(set(a)) == len(a)


def test_plain_list_with_comments():
    load = load_intel_files([HERE / "plain.txt"])
    rows = rows_by_value(load.table)
    assert set(rows) == {
        "198.51.100.7",
        "203.0.113.0/24",
        "2001:db8::1",
        "evil.example.org",
        "http://evil.example.org/x#frag",
    }
    assert rows["203.0.113.0/24"]["description"] is None
    assert [s.position for s in load.report[0].skips] == ["line 7"]


def test_real_flax_typhoon_and_raptor_train_lists():
    load = load_intel_files(
        [
            HERE / "flax_typhoon" / "pudgydragon_IP.txt",
            HERE / "flax_typhoon" / "pudgydragon_uri.txt",
            HERE / "raptor_train" / "blacklotuslabs_Raptor_Train_IOCs.txt",
        ],
        default_actor="Flax Typhoon",
        default_tlp="clear",
    )
    ip_rep, uri_rep, raptor = load.report
    assert ip_rep.format == "list" and ip_rep.read == 20 and ip_rep.loaded == 19  # one IP listed twice
    assert uri_rep.loaded == 3
    t = load.table
    assert pc.all(pc.equal(t.column("actor"), "Flax Typhoon")).as_py()
    raptor_rows = t.filter(pc.equal(t.column("source"), raptor.source))
    types = pc.value_counts(raptor_rows.column("type")).to_pylist()
    counts = {d["values"]: d["counts"] for d in types}
    assert counts["ipv4"] >= 90 and counts["domain"] >= 100 and counts["x509_sha256"] == 3
    rows = rows_by_value(raptor_rows)
    assert rows["hyddh.com"]["valid_from"] == datetime(2024, 9, 3, tzinfo=UTC)
    assert "Tier 2" in rows["hyddh.com"]["description"]
    # the YARA rules and prose after the table are one reported block, not silently lost
    assert raptor.skipped == 1 and raptor.skips[0].reason.startswith("free text")
    # the same IP listed twice in the TSV keeps the union of its windows
    r = rows["5.188.33.135"]
    assert r["valid_from"] == datetime(2023, 7, 13, tzinfo=UTC) and r["valid_until"].date().isoformat() == "2024-03-22"


def test_stix_bundle_indicators_markings_actor_and_skips():
    load = load_intel_files([HERE / "bundle_v1.json"])
    rows = rows_by_value(load.table)
    ip = rows["198.51.100.7"]
    assert ip["actor"] == "RedJuliett" and ip["confidence"] == 85 and ip["tlp"] == "amber"
    assert ip["source_id"] == "indicator--a1000000-0000-4000-8000-000000000001"
    assert ip["valid_until"] == datetime(2024, 6, 30, tzinfo=UTC)
    assert rows["2001:db8::7"]["tlp"] == "green" and rows["vpn.example-bad.com"]["type"] == "domain"
    rep = load.report[0]
    reasons = {s.position: s.reason for s in rep.skips}
    bad = "object indicator--a1000000-0000-4000-8000-0000000000bad"
    assert bad in reasons and "malformed" in reasons[bad]
    assert "FOLLOWEDBY" in reasons["object indicator--a1000000-0000-4000-8000-000000000004"]
    assert "pattern_type 'snort'" in reasons["object indicator--a1000000-0000-4000-8000-000000000005"]
    assert rep.loaded == 4 and "RedJuliett" in load.actors


def test_real_oasis_examples():
    load = load_intel_files(
        [
            HERE / "oasis_stix" / "oasis_indicator-for-c2-ip-address.json",
            HERE / "oasis_stix" / "oasis_infrastructure.json",
            HERE / "oasis_stix" / "oasis_threat-report-apt1.json",
        ]
    )
    rows = rows_by_value(load.table)
    assert rows["10.0.0.0"]["valid_from"] == datetime(2014, 5, 8, 9, tzinfo=UTC)
    # infrastructure consists-of SCOs become indicators attributed to the infrastructure
    assert rows["198.51.100.3"]["source_id"] == "infrastructure--38c47d93-d984-4fd9-b87b-d69d0841628d"
    assert rows["example.com"]["type"] == "domain"
    assert rows["223.166.0.0/15"]["ip_start4"] == (223 << 24) | (166 << 16)
    assert rows["hugesoft.org"]["actor"] == "Ugly Gorilla"
    # issuer AND serial: serial kept at half confidence, the issuer reported as not evaluated
    serial = rows["4c0b1d197486a766b41abf4027217628"]
    assert serial["type"] == "x509_serial" and serial["confidence"] == 25
    apt1 = [r for r in load.report if r.source == "oasis_threat-report-apt1.json"][0]
    assert any("issuer" in n for n in apt1.notes)


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws").ensure()


def test_workspace_upsert_update_and_revocation(ws, tmp_path):
    bundle = tmp_path / "redjuliett.json"
    shutil.copy(HERE / "bundle_v1.json", bundle)
    c1 = add_to_workspace(ws, load_intel_files([bundle]))
    assert c1["added"] == 4 and c1["updated"] == 0
    shutil.copy(HERE / "bundle_v2.json", bundle)  # same source, newer versions of the objects
    c2 = add_to_workspace(ws, load_intel_files([bundle]))
    assert c2["updated"] == 2 and c2["added"] == 0
    assert c2["replaced"] == 1  # the domain dropped from indicator ...02's new pattern
    assert c2["revoked"] == 1  # indicator ...03 revoked
    active = rows_by_value(read_indicators(ws))
    assert set(active) == {"198.51.100.7", "2001:db8::7"}
    assert active["198.51.100.7"]["confidence"] == 95
    assert active["198.51.100.7"]["valid_until"] == datetime(2024, 9, 30, tzinfo=UTC)
    everything = read_indicators(ws, include_revoked=True)
    assert rows_by_value(everything)["192.0.2.66"]["revoked"] is True
    status = intel_status(ws)
    assert status["sources"]["redjuliett.json"]["revoked"] == 1
    assert status["sources"]["redjuliett.json"]["updated"] == 2
    assert len(list((ws.intel_dir / "reports").glob("*.json"))) == 2


def test_read_indicators_empty_workspace(ws):
    t = read_indicators(ws)
    assert t.num_rows == 0 and t.schema == INDICATOR_SCHEMA


def test_csv_and_list_feeds_are_snapshots(tmp_path: Path) -> None:
    """Re-importing a feed file withdraws what it no longer lists; an empty download does not."""
    ws = Workspace(tmp_path / "ws").ensure()
    feed = tmp_path / "feed.csv"
    head = "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
    feed.write_text(head + "45.77.1.1,ipv4,RedJuliett,,,80,amber\n45.77.1.2,ipv4,RedJuliett,,,80,amber\n")
    add_to_workspace(ws, load_intel_files([feed]))
    other = tmp_path / "other.txt"
    other.write_text("45.77.1.1\n198.51.100.9\n")
    add_to_workspace(ws, load_intel_files([other]))  # another source naming 45.77.1.1 too

    def active() -> set[tuple[str, str]]:
        t = read_indicators(ws)
        return set(zip(t.column("source").to_pylist(), t.column("value").to_pylist()))

    feed.write_text(head + "45.77.1.2,ipv4,RedJuliett,,,80,amber\n45.77.1.3,ipv4,RedJuliett,,,80,amber\n")
    load = load_intel_files([feed])
    counts = add_to_workspace(ws, load)
    assert counts["withdrawn"] == 1 and load.report[0].withdrawn == 1
    assert active() == {
        ("feed.csv", "45.77.1.2"),
        ("feed.csv", "45.77.1.3"),
        ("other.txt", "45.77.1.1"),
        ("other.txt", "198.51.100.9"),
    }
    withdrawn = read_indicators(ws, include_revoked=True)
    assert ("feed.csv", "45.77.1.1") in set(
        zip(withdrawn.column("source").to_pylist(), withdrawn.column("value").to_pylist())
    )

    feed.write_text(head)  # a broken or empty download: nothing loaded, nothing withdrawn
    load = load_intel_files([feed], skip_bad_files=True)
    assert add_to_workspace(ws, load)["withdrawn"] == 0
    assert ("feed.csv", "45.77.1.2") in active()
    assert not load.report and "only a header line" in load.refused[0].reason


# --- date and time spellings in first_seen / last_seen ---------------------------------

_T = datetime(2024, 1, 15, tzinfo=UTC)
_T10 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
_EOD = datetime(2024, 1, 15, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("2024-01-15", _T, _EOD),
        ("2024/01/15", _T, _EOD),
        ("2024/1/15", _T, _EOD),
        ("2024-01-15 10:00", _T10, _T10),
        ("2024-01-15 10:00:00", _T10, _T10),
        ("2024-01-15T10:00:00.250000", _T10.replace(microsecond=250000), _T10.replace(microsecond=250000)),
        ("2024-01-15T10:00:00Z", _T10, _T10),
        ("2024-01-15 10:00:00 UTC", _T10, _T10),
        ("2024-01-15T12:00:00+02:00", _T10, _T10),
        ("2024-01-15T05:00:00-0500", _T10, _T10),
        ("1705312800", _T10, _T10),
        ("1705312800.5", _T10.replace(microsecond=500000), _T10.replace(microsecond=500000)),
        ("1705312800000", _T10, _T10),
    ],
    ids=[
        "date",
        "date_slashes",
        "date_short_month",
        "minutes",
        "seconds",
        "fraction",
        "z",
        "utc_word",
        "offset_colon",
        "offset_minus",
        "epoch_s",
        "epoch_s_fraction",
        "epoch_ms",
    ],
)
def test_time_spellings(text: str, start: datetime, end: datetime) -> None:
    from sightline.intel.model import parse_time

    assert parse_time(text) == start
    assert parse_time(text, end_of_day=True) == end  # a bare date as the end covers its whole day


@pytest.mark.parametrize(
    "text, why",
    [
        ("01/02/2024", "ambiguous date"),
        ("15/01/2024", "ambiguous date"),
        ("1/2/24", "ambiguous date"),
        ("02-01-2024 10:00", "ambiguous date"),
        ("2024-02-30", "bad value: time"),
        ("2024-01-15 25:00", "bad value: time"),
        ("yesterday", "bad value: time"),
        ("2024-01-15T10:00:00+25:00", "bad value: time"),
    ],
)
def test_ambiguous_or_bad_times_are_refused_with_a_reason(text: str, why: str) -> None:
    from sightline.intel.model import parse_time

    with pytest.raises(ValueError, match=why):
        parse_time(text)


def test_csv_date_spellings_load_and_ambiguous_rows_say_why(tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
        "45.77.1.1,ipv4,RedJuliett,2024/01/15,,80,amber\n"
        "45.77.1.2,ipv4,RedJuliett,2024-01-15 10:00:00,2024/03/01,80,amber\n"
        "45.77.1.3,ipv4,RedJuliett,1705312800,,80,amber\n"
        "45.77.1.4,ipv4,RedJuliett,01/02/2024,,80,amber\n"
    )
    load = load_intel_files([feed])
    rows = rows_by_value(load.table)
    assert rows["45.77.1.1"]["valid_from"] == _T
    assert rows["45.77.1.2"]["valid_from"] == _T10
    assert rows["45.77.1.2"]["valid_until"] == datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert rows["45.77.1.3"]["valid_from"] == _T10
    assert "45.77.1.4" not in rows
    (skip,) = skips(load)
    assert skip.position == "line 5" and "ambiguous date '01/02/2024'" in skip.reason


@pytest.mark.parametrize("conf", [[], {"v": 1}, True, 250, "very"])
def test_stix_confidence_that_is_no_number_skips_that_indicator_only(tmp_path: Path, conf) -> None:
    """A confidence JSON can hold anything (found by the fuzz suite: a list crashed the load);
    that indicator is skipped with the reason, the rest of the bundle loads."""
    import json

    def ind(n: int, ip: str, **kw) -> dict:
        return {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--a1000000-0000-4000-8000-00000000000{n}",
            "created": "2024-01-01T00:00:00Z",
            "modified": "2024-01-01T00:00:00Z",
            "pattern_type": "stix",
            "pattern": f"[ipv4-addr:value = '{ip}']",
            "valid_from": "2024-01-01T00:00:00Z",
            **kw,
        }

    f = tmp_path / "b.json"
    f.write_text(
        json.dumps(
            {
                "type": "bundle",
                "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
                "objects": [ind(1, "198.51.100.7", confidence=conf), ind(2, "198.51.100.8", confidence=70)],
            }
        )
    )
    load = load_intel_files([f])
    assert load.table.column("value").to_pylist() == ["198.51.100.8"]
    (s,) = skips(load)
    assert "confidence" in s.reason and s.position.endswith("00000000001")
