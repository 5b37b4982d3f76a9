"""Scan readers on real nmap XML and hand-made masscan/Shodan/Censys fixtures."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from sightline.errors import InputError
from sightline.exposure import SERVICE_SCHEMA, load_scans, read_services, store_services
from sightline.exposure.scans import sniff_scan_format
from sightline.store import Workspace

from .datafiles import NMAP

HERE = Path(__file__).parent
FIX = HERE / "data/exposure"


def _open_ports_by_regex(path: Path) -> set[tuple[str, int]]:
    """Independent count of open ports: text search, not an XML parser."""
    found: set[tuple[str, int]] = set()
    text = path.read_text()
    for host in re.findall(r"<host[ >].*?</host>", text, flags=re.S):
        if 'state="up"' not in host:
            continue
        m = re.search(r'<address addr="([^"]+)" addrtype="ipv[46]"', host)
        for port in re.findall(r'portid="(\d+)"><state state="open"', host):
            found.add((m.group(1), int(port)))
    return found


@pytest.mark.parametrize("name", sorted(p.name for p in NMAP.glob("*.xml")))
def test_real_nmap_xml_every_open_port_becomes_a_service(name: str) -> None:
    path = NMAP / name
    load = load_scans([path])
    assert load.formats[str(path)] == "nmap-xml"
    assert load.quarantine.num_rows == 0
    got = {(r["ip"], r["port"]) for r in load.services.select(["ip", "port"]).to_pylist()}
    assert got == _open_ports_by_regex(path)
    assert load.services.schema.equals(SERVICE_SCHEMA)


def test_real_nmap_sv_fields_and_edge_product() -> None:
    load = load_scans([NMAP / "libnmap_dionaea_scan.xml"])
    rows = {(r["ip"], r["port"]): r for r in load.services.to_pylist()}
    mysql = rows[("172.28.1.3", 3306)]
    assert (mysql["product"], mysql["version"], mysql["cpes"]) == ("MySQL", "5.7.16", ["cpe:/a:mysql:mysql:5.7.16"])
    assert (mysql["product_id"], mysql["product_match"]) == ("mysql:mysql", "cpe")  # its own CPE names it
    nas = rows[("172.28.1.3", 21)]
    assert nas["product_id"] == "synology:diskstation_manager" and nas["norm_version"] is None
    assert nas["scanned_at"] is not None


def test_truncated_nmap_keeps_complete_hosts_and_quarantines_the_cut() -> None:
    load = load_scans([FIX / "truncated_nmap.xml"])
    assert {r["ip"] for r in load.services.to_pylist()} == {"203.0.113.10"}
    (q,) = load.quarantine.to_pylist()
    assert q["source_file"].endswith("truncated_nmap.xml")
    assert q["position_kind"] == "line" and q["position"] == 21
    assert "truncated" in q["reason"]


def test_xml_entity_expansion_is_refused_not_expanded() -> None:
    load = load_scans([FIX / "entity_bomb_nmap.xml"])
    assert load.services.num_rows == 0
    (q,) = load.quarantine.to_pylist()
    assert "unsafe XML refused" in q["reason"] and "Entities" in q["reason"]


def test_masscan_json_with_trailing_commas_and_bad_lines() -> None:
    load = load_scans([FIX / "masscan.json"])
    rows = {(r["ip"], r["port"], r["proto"]): r for r in load.services.to_pylist()}
    assert set(rows) == {("203.0.113.30", 10443, "tcp"), ("203.0.113.31", 500, "udp")}
    # the "open" record and the banner record of one port merge into one service
    fgt = rows[("203.0.113.30", 10443, "tcp")]
    assert fgt["product_id"] == "fortinet:fortios" and fgt["norm_version"] == "6.0.4"
    reasons = {(q["position"], q["reason"].split(":")[0]) for q in load.quarantine.to_pylist()}
    assert reasons == {(5, "not a JSON record"), (6, "not an IP address"), (7, "port out of range or missing")}


def test_masscan_list() -> None:
    load = load_scans([FIX / "masscan.list"])
    rows = {(r["ip"], r["port"]): r for r in load.services.to_pylist()}
    assert set(rows) == {("203.0.113.40", 443), ("203.0.113.41", 4433)}
    assert rows[("203.0.113.40", 443)]["product_id"] == "f5:big-ip"
    assert rows[("203.0.113.40", 443)]["norm_version"] == "15.1.5"
    assert [(q["position"], q["position_kind"]) for q in load.quarantine.to_pylist()] == [(5, "line")]
    assert load.counts["skipped"] == 1  # the closed port


def test_shodan_banners_ndjson() -> None:
    load = load_scans([FIX / "shodan.ndjson"])
    rows = {r["ip"]: r for r in load.services.to_pylist()}
    assert set(rows) == {"203.0.113.50", "203.0.113.51", "203.0.113.53"}
    assert rows["203.0.113.50"]["product_id"] == "f5:big-ip"  # NVD module CPE folded
    assert rows["203.0.113.50"]["hostname"] == "lb.example.org"
    assert {q["position"] for q in load.quarantine.to_pylist()} == {3, 5}


def test_censys_host_ipv6() -> None:
    load = load_scans([FIX / "censys_host.json"])
    rows = {(r["port"], r["proto"]): r for r in load.services.to_pylist()}
    assert set(rows) == {(443, "tcp"), (500, "udp")}
    zld = rows[(443, "tcp")]
    assert zld["ip"] == "2001:db8:5::1" and zld["product_id"] == "zyxel:zld" and zld["norm_version"] == "5.35"
    assert load.quarantine.num_rows == 1


def test_censys_service_with_malformed_software_keeps_the_service(tmp_path: Path) -> None:
    """Found by fuzzing: ``"software": true`` crashed the reader; the service itself is good."""
    p = tmp_path / "censys.json"
    p.write_text(
        '{"ip": "192.0.2.4", "services": [{"port": 443, "transport_protocol": "TCP", '
        '"service_name": "HTTP", "software": true}]}\n'
    )
    load = load_scans([p])
    assert [(r["ip"], r["port"]) for r in load.services.to_pylist()] == [("192.0.2.4", 443)]


def test_compressed_scan_and_unknown_format(tmp_path: Path) -> None:
    gz = tmp_path / "scan.xml.gz"
    gz.write_bytes(gzip.compress((FIX / "edge_nmap.xml").read_bytes()))
    junk = tmp_path / "notes.txt"
    junk.write_text("hello, this is not a scan\n")
    load = load_scans([gz, junk])
    assert load.formats == {str(gz): "nmap-xml", str(junk): "unknown"}
    assert load.counts["edge_services"] == sum(1 for r in load.services.to_pylist() if r["product_id"]) == 7
    (q,) = load.quarantine.to_pylist()
    assert q["source_file"] == str(junk) and "unknown scan format" in q["reason"]


def test_missing_scan_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as ei:
        load_scans([tmp_path / "nope.xml"])
    assert ei.value.exit_code == 2 and "nope.xml" in str(ei.value)


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b'<?xml version="1.0"?><nmaprun>', "nmap-xml"),
        (b"#masscan\nopen tcp 80 192.0.2.1 1700000000\n", "masscan-list"),
        (b'[\n{"ip": "192.0.2.1", "timestamp": "1", "ports": [ {"port": 80} ] },\n', "masscan-json"),
        (b'{"ip_str": "192.0.2.1", "port": 443, "data": "x"}\n', "host-json"),
        (b"\x00\x01binary", None),
    ],
)
def test_sniff(head: bytes, fmt: str | None) -> None:
    assert sniff_scan_format(head) == fmt


def test_store_services_newest_observation_wins(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    first = load_scans([FIX / "edge_nmap.xml"]).services
    store_services(ws, first)
    assert read_services(ws).num_rows == first.num_rows
    # A later re-scan of 203.0.113.10:443 shows the patched version: it must replace the old row.
    rows = [r for r in first.to_pylist() if (r["ip"], r["port"]) == ("203.0.113.10", 443)]
    patched = dict(rows[0], version="7.2.7", norm_version="7.2.7", scanned_at=rows[0]["scanned_at"].replace(year=2025))
    import pyarrow as pa

    stored = store_services(ws, pa.Table.from_pylist([patched], schema=SERVICE_SCHEMA))
    assert stored.num_rows == first.num_rows
    again = {(r["ip"], r["port"]): r for r in read_services(ws).to_pylist()}
    assert again[("203.0.113.10", 443)]["norm_version"] == "7.2.7"
    # an older scan arriving later does not overwrite the newer observation
    store_services(ws, pa.Table.from_pylist(rows, schema=SERVICE_SCHEMA))
    again = {(r["ip"], r["port"]): r for r in read_services(ws).to_pylist()}
    assert again[("203.0.113.10", 443)]["norm_version"] == "7.2.7"
