"""derived_indicators on each engine: how names link intel to addresses."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from sightline.detect.derive import NAME_LEAD_S, derived_indicators
from sightline.engines import get_engine
from sightline.ingest import ingest_paths
from sightline.schema import INDICATOR_SCHEMA
from sightline.store import Workspace

from . import datafiles
from . import namesgen as ng

SLIPS = datafiles.SLIPS / "test9-mixed-zeek-dir"
EVE = datafiles.SLIPS / "test6-malicious.suricata.json.gz"
DAY = 1709251200.0
UTC = UTC


def ind(
    iid: str, typ: str, value: str, *, vf: datetime | None = None, vu: datetime | None = None, revoked: bool = False
) -> dict:
    return {
        "indicator_id": iid,
        "type": typ,
        "value": value,
        "actor": "RedJuliett",
        "confidence": 80,
        "tlp": "amber",
        "source": "feed.csv",
        "valid_from": vf,
        "valid_until": vu,
        "revoked": revoked,
    }


def derive(ws: Workspace, rows: list[dict], engine_name: str) -> list[dict]:
    table = pa.Table.from_pylist(rows, schema=INDICATOR_SCHEMA)
    eng = get_engine(engine_name)
    try:
        return derived_indicators(eng, ws.name_files(), table).to_pylist()
    finally:
        eng.close()


def addr(r: dict) -> str:
    return str(ipaddress.ip_address(r["ip_start4"] if r["ip_start4"] is not None else r["ip_start6"]))


def test_certificate_serial_through_ssl_fuids_and_x509(tmp_path: Path, engine_name: str) -> None:
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [SLIPS / "ssl.log.gz", SLIPS / "x509.log.gz"])
    # serial of www.bing.com's certificate, written with colons and a leading zero
    out = derive(
        ws, [ind("s1", "x509_serial", "00:2d:00:00:32:99:d7:07:1d:b7:d1:70:8a:42:00:00:00:00:32:99")], engine_name
    )
    # Bing's servers in this capture that presented it
    assert {addr(r) for r in out} == {"204.79.197.200", "13.107.21.200"}
    r = out[0]
    assert r["value"] == "00:2d:00:00:32:99:d7:07:1d:b7:d1:70:8a:42:00:00:00:00:32:99"
    assert r["source"] == "derived:feed.csv" and r["source_id"] == "s1" and r["type"] == "ipv4"
    assert "presented certificate" in r["description"]


def test_suricata_sha1_and_sni(tmp_path: Path, engine_name: str) -> None:
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [EVE])
    out = derive(
        ws,
        [ind("c", "x509_sha1", "2dd19f809986fcac5f2a2afda3f37e967cdd2437"), ind("d", "domain", "myedimax.com")],
        engine_name,
    )
    got = {(r["source_id"], addr(r)) for r in out}
    assert ("c", "122.248.252.67") in got and ("d", "122.248.252.67") in got


def test_window_is_intersected_and_revoked_parents_ignored(tmp_path: Path, engine_name: str) -> None:
    log = ng.write_tsv(
        tmp_path / "dns.log",
        "dns",
        ng.DNS_FIELDS,
        [
            ng.dns(DAY, "203.0.113.5", "a.evil.com", ["45.77.2.20"], [60.0]),
            ng.dns(DAY + 7200, "203.0.113.5", "evil.com", ["2001:db8::9"], [172800.0]),
            ng.dns(DAY, "203.0.113.5", "notevil.com", ["45.77.2.30"]),
            ng.dns(DAY, "203.0.113.5", "gone.net", ["45.77.2.40"]),
        ],
    )
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [log])
    until = datetime(2024, 3, 1, 12, tzinfo=UTC)
    out = derive(
        ws, [ind("e", "domain", "evil.com", vu=until), ind("g", "domain", "gone.net", revoked=True)], engine_name
    )
    by = {addr(r): r for r in out}
    assert set(by) == {"45.77.2.20", "2001:db8::9"}
    v4, v6 = by["45.77.2.20"], by["2001:db8::9"]
    lead = timedelta(seconds=NAME_LEAD_S)  # a name counts from a moment before it was first seen
    assert v4["valid_from"] == datetime(2024, 3, 1, tzinfo=UTC) - lead and v4["valid_until"] == until
    assert v6["type"] == "ipv6" and v6["valid_from"] == datetime(2024, 3, 1, 2, tzinfo=UTC) - lead
    # a listed window that ended before the name was seen yields nothing
    assert derive(ws, [ind("o", "domain", "evil.com", vu=datetime(2024, 2, 1, tzinfo=UTC))], engine_name) == []


def test_one_day_floor_after_short_ttl(tmp_path: Path, engine_name: str) -> None:
    log = ng.write_tsv(
        tmp_path / "dns.log", "dns", ng.DNS_FIELDS, [ng.dns(DAY, "203.0.113.5", "evil.com", ["45.77.2.20"], [20.0])]
    )
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [log])
    (r,) = derive(ws, [ind("e", "domain", "evil.com")], engine_name)
    assert r["valid_until"] == datetime(2024, 3, 2, tzinfo=UTC)
