"""Exposure assessment: scans x real KEV x actor activity x org registry -> priority list."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.enrich.orgs import load_orgs_csv
from sightline.exposure import (
    ACTIVITY_SCHEMA,
    activity_from_findings,
    assess_exposure,
    load_kev,
    load_scans,
    read_actor_cves,
    to_csv,
    unranged_cves,
)
from sightline.exposure.export import safe_cell

HERE = Path(__file__).parent
FIX = HERE / "data/exposure"
SCANS = [FIX / n for n in ("edge_nmap.xml", "masscan.json", "masscan.list", "shodan.ndjson", "censys_host.json")]


@pytest.fixture(scope="module")
def services() -> pa.Table:
    return load_scans(SCANS).services


@pytest.fixture(scope="module")
def kev() -> pa.Table:
    return load_kev()


@pytest.fixture(scope="module")
def orgs() -> pa.Table:
    return load_orgs_csv(FIX / "orgs.csv").table


ACTIVITY = pa.Table.from_pylist(
    [
        {"ip": "203.0.113.20", "port": None, "org_id": "tw-semi-01", "activity": "compromised"},
        {"ip": "203.0.113.20", "port": 443, "org_id": "tw-semi-01", "activity": "reconnaissance"},
        {"ip": "203.0.113.10", "port": 443, "org_id": "tw-semi-01", "activity": "exploitation_attempt"},
        {"ip": "198.18.5.5", "port": 4443, "org_id": "tw-gov-02", "activity": "reconnaissance"},
        # the actor probed another port of the SonicWall: not this service
        {"ip": "192.0.2.200", "port": 8443, "org_id": None, "activity": "exploitation_attempt"},
        # scanned, but the version there is patched: must not appear at all
        {"ip": "198.18.5.9", "port": 443, "org_id": "tw-gov-02", "activity": "exploitation_attempt"},
    ],
    schema=ACTIVITY_SCHEMA,
)


def _by_service(entries: list[dict]) -> dict[tuple[str, int], dict]:
    return {(e["ip"], e["port"]): e for e in entries}


def test_priority_list_scenario(services: pa.Table, kev: pa.Table, orgs: pa.Table) -> None:
    actor, _ = read_actor_cves(FIX / "actor_cves.txt")
    entries = assess_exposure(services, kev, activity=ACTIVITY, orgs=orgs, actor_cves=actor)
    got = _by_service(entries)

    assert [e["priority"] for e in entries[:3]] == ["compromised", "exploited_and_vulnerable", "scanned_and_vulnerable"]
    assert [e["priority_rank"] for e in entries] == sorted(e["priority_rank"] for e in entries)

    ivanti = got[("203.0.113.20", 443)]
    assert (ivanti["priority"], ivanti["org_id"], ivanti["activity"]) == ("compromised", "tw-semi-01", "compromised")
    assert {c["cve"] for c in ivanti["cves"]} == {"CVE-2023-46805", "CVE-2024-21887"}
    assert all(c["actor_linked"] for c in ivanti["cves"]) and ivanti["actor_linked"]
    k = next(c["kev"] for c in ivanti["cves"] if c["cve"] == "CVE-2023-46805")
    assert k["date_added"] == "2024-01-10" and k["vendor_project"] == "Ivanti"

    fgt = got[("203.0.113.10", 443)]
    assert fgt["priority"] == "exploited_and_vulnerable"
    fgt_cves = {c["cve"]: c["actor_linked"] for c in fgt["cves"]}
    assert {"CVE-2023-27997": False, "CVE-2024-21762": True}.items() <= fgt_cves.items()
    assert {c["match"] for c in fgt["cves"] if c["cve"] in ("CVE-2023-27997", "CVE-2024-21762")} == {"exact_cpe"}
    assert next(c for c in fgt["cves"] if c["cve"] == "CVE-2023-27997")["kev"]["known_ransomware"] is True

    assert got[("198.18.5.5", 4443)]["priority"] == "scanned_and_vulnerable"
    sonic = got[("192.0.2.200", 443)]
    assert (sonic["priority"], sonic["org_id"]) == ("vulnerable", None)

    # patched versions are not listed, even when the actor touched them
    assert ("198.18.5.9", 443) not in got  # FortiOS 7.4.3
    # PAN-OS 10.2.9-h1 is the fix of CVE-2024-3400, but still inside CVE-2024-0012's range (fixed 10.2.12-h2)
    assert {c["cve"] for c in got[("198.18.5.5", 443)]["cves"]} == {"CVE-2024-0012", "CVE-2024-9474"}
    assert ("203.0.113.51", 443) not in got  # BIG-IP 15.1.5.1
    assert ("203.0.113.10", 22) not in got  # OpenSSH: no KEV CVE for it

    zyxel = got[("2001:db8:5::1", 443)]
    assert zyxel["org_id"] == "tw-uni-03"  # IPv6 registry range
    assert zyxel["cpe"] == "cpe:2.3:o:zyxel:zld:5.35:*:*:*:*:*:*:*"


def test_without_activity_everything_is_plain_vulnerable(services: pa.Table, kev: pa.Table) -> None:
    entries = assess_exposure(services, kev)
    assert entries and {e["priority"] for e in entries} == {"vulnerable"}
    assert not any(e["actor_linked"] for e in entries)
    assert all(e["org_id"] is None for e in entries)


def test_cve_missing_from_kev_is_still_reported_with_kev_none(services: pa.Table, kev: pa.Table) -> None:
    import pyarrow.compute as pc

    trimmed = kev.filter(pc.invert(pc.is_in(kev["cve"], pa.array(["CVE-2023-3519"]))))
    e = _by_service(assess_exposure(services, trimmed))[("198.18.5.5", 4443)]
    (c,) = [c for c in e["cves"] if c["cve"] == "CVE-2023-3519"]
    assert c == {
        "cve": "CVE-2023-3519",
        "kev": None,
        "actor_linked": False,
        "range_source": "nvd_configuration",
        "match": c["match"],
    } and c["match"] in ("exact_cpe", "product_name")


def test_actor_cve_list_and_unranged(tmp_path: Path) -> None:
    cves, skipped = read_actor_cves(FIX / "actor_cves.txt")
    assert cves == ["CVE-2023-46805", "CVE-2024-21887", "CVE-2024-21762", "CVE-2021-99999"]
    assert [line for line, _ in skipped] == [5]
    assert unranged_cves(cves) == ["CVE-2021-99999"]


def test_activity_from_sample_findings() -> None:
    doc = json.loads((HERE / "data/sample_findings.json").read_text())
    act = activity_from_findings(doc)
    rows = act.to_pylist()
    assert {
        "ip": "203.0.113.5",
        "port": None,
        "org_id": "tw-semi-01",
        "activity": "compromised",
        "tlp": "amber",
    } in rows
    assert {
        "ip": "203.0.113.5",
        "port": 443,
        "org_id": "tw-semi-01",
        "activity": "exploitation_attempt",
        "tlp": "amber",
    } in rows
    assert any(r["org_id"] == "AS4780" and r["activity"] == "reconnaissance" for r in rows)
    assert act.schema.equals(ACTIVITY_SCHEMA)


def test_csv_export_neutralizes_formulas(services: pa.Table, kev: pa.Table, tmp_path: Path) -> None:
    entries = assess_exposure(services, kev)
    out = tmp_path / "tickets.csv"
    n = to_csv(entries, out)
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert n == len(rows) == sum(len(e["cves"]) for e in entries)
    evil = [r for r in rows if r["ip"] == "203.0.113.53"]
    assert evil and all(r["hostname"] == "'=cmd|' /C calc'!A0" for r in evil)
    for r in rows:
        for v in r.values():
            assert not v.startswith(("=", "+", "-", "@", "\t", "\r"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        (None, ""),
        (True, "yes"),
        (443, "443"),
    ],
)
def test_safe_cell(value, expected) -> None:  # type: ignore[no-untyped-def]
    assert safe_cell(value) == expected


def test_cli_exposure_end_to_end(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    runner = CliRunner()
    r = runner.invoke(app, ["orgs", "load", str(FIX / "orgs.csv"), "--workspace", str(ws)])
    assert r.exit_code == 0, r.output
    # a previous hunt in this workspace saw exploitation of the FortiGate
    ev = {
        "behaviour": "exploitation",
        "indicator": "45.77.1.10",
        "direction": "inbound",
        "dst_port": 443,
        "flows": 2,
        "bytes_out": 4000,
        "bytes_in": 900,
        "first_seen": "2024-03-01T00:00:00Z",
        "last_seen": "2024-03-01T00:01:00Z",
        "score": 0.8,
        "detail": "2 sessions with request payload",
        "indicator_confidence": 80,
        "confidence": 70,
    }
    findings = {
        "schema": "sightline.findings/1",
        "organizations": [
            {
                "org_id": "tw-semi-01",
                "name": "Semi",
                "sector": "semiconductor",
                "country": "TW",
                "asns": [],
                "verdict": "exploitation_attempt",
                "confidence": 70,
                "first_seen": ev["first_seen"],
                "last_seen": ev["last_seen"],
                "hosts": [
                    {
                        "ip": "203.0.113.10",
                        "verdict": "exploitation_attempt",
                        "confidence": 70,
                        "indicators": ["45.77.1.10"],
                        "evidence": [ev],
                    }
                ],
            }
        ],
    }
    (ws / "findings").mkdir(parents=True)
    (ws / "findings" / "latest.json").write_text(json.dumps(findings))
    out_csv = tmp_path / "out.csv"
    r = runner.invoke(
        app,
        [
            "exposure",
            *map(str, SCANS),
            str(FIX / "truncated_nmap.xml"),
            "--actor-cves",
            str(FIX / "actor_cves.txt"),
            "--csv",
            str(out_csv),
            "--workspace",
            str(ws),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "quarantined" in r.output and "CVE-2021-99999" in r.output
    doc = json.loads((ws / "exposure" / "exposure.json").read_text())
    assert doc["schema"] == "sightline.exposure/1" and doc["kev_catalog"]["version"] == "2025.08.25"
    first = doc["exposure"][0]
    assert (first["ip"], first["priority"], first["org_id"]) == (
        "203.0.113.10",
        "exploited_and_vulnerable",
        "tw-semi-01",
    )
    assert (ws / "exposure" / "services.parquet").exists() and (ws / "exposure" / "quarantine.parquet").exists()
    assert out_csv.read_text().splitlines()[0].startswith("priority_rank,priority,org_id,ip")

    # a re-run with the patched version clears the finding for that service
    patched = tmp_path / "rescan.ndjson"
    patched.write_text(
        json.dumps(
            {
                "ip_str": "203.0.113.10",
                "port": 443,
                "transport": "tcp",
                "product": "FortiGate",
                "version": "7.2.7",
                "timestamp": "2025-01-01T00:00:00",
            }
        )
        + "\n"
    )
    r = runner.invoke(app, ["exposure", str(patched), "--workspace", str(ws)])
    assert r.exit_code == 0, r.output
    doc = json.loads((ws / "exposure" / "exposure.json").read_text())
    assert ("203.0.113.10", 443) not in {(e["ip"], e["port"]) for e in doc["exposure"]}
    assert doc["exposure"]  # the other stored services are still assessed


def test_cli_exposure_bad_input_is_exit_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["exposure", str(tmp_path / "missing.xml"), "--workspace", str(tmp_path / "ws")])
    assert r.exit_code == 2 and "cannot read scan file" in r.output


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("actor_stix.json", ["CVE-2023-3519", "CVE-2022-1388"]),
        ("actor_misp.json", ["CVE-2024-21887", "CVE-2023-46805"]),
    ],
)
def test_actor_cves_from_stix_and_misp(name: str, expected: list[str]) -> None:
    # CVE-2019-0708 is in the STIX bundle but nothing exploits/targets it: not actor-linked
    cves, skipped = read_actor_cves(FIX / name)
    assert cves == expected and skipped == []


def test_stix_actor_cves_flag_entries(services: pa.Table, kev: pa.Table) -> None:
    cves, _ = read_actor_cves(FIX / "actor_stix.json")
    got = _by_service(assess_exposure(services, kev, actor_cves=cves))
    assert got[("198.18.5.5", 4443)]["actor_linked"] is True
    assert got[("203.0.113.40", 443)]["actor_linked"] is True
    assert got[("192.0.2.200", 443)]["actor_linked"] is False
