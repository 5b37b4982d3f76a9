"""Geo tables: real ip-location-db CSVs and generated MMDB files; engine interval join."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from sightline.engines.duckdb import DuckDBEngine
from sightline.enrich import geo
from sightline.errors import InputError
from sightline.net import parse_ips
from sightline.store import Workspace

from .datafiles import GEO


@pytest.fixture(scope="module")
def real_ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("geo") / "ws").ensure()
    for f in (
        "asn-ipv4.csv.gz",
        "asn-ipv6.csv.gz",
        "geo-whois-asn-country-ipv4.csv.gz",
        "geo-whois-asn-country-ipv6.csv.gz",
    ):
        geo.load_geo(ws, GEO / f)
    return ws


def lookup(ws, ips):
    p = parse_ips(pa.array(ips))
    eng = DuckDBEngine(threads=1)
    eng.register_table("q", pa.table({"ip4": p.v4, "ip6": p.v6}))
    res = geo.enrich_ips(eng, "q", ws)
    eng.close()
    out = {}
    for r in res.to_pylist():
        ip = str(ipaddress.IPv4Address(r["ip4"])) if r["ip4"] is not None else str(ipaddress.IPv6Address(r["ip6"]))
        out[ip] = (r["asn"], r["as_org"], r["country"])
    return out


def test_known_taiwan_and_public_addresses(real_ws):
    got = lookup(real_ws, ["140.112.8.116", "168.95.1.1", "8.8.8.8", "10.0.0.1", "2001:4860:4860::8888"])
    assert got["140.112.8.116"][0] == 1659 and got["140.112.8.116"][2] == "TW"  # NTU on TANet
    assert got["168.95.1.1"][0] == 3462 and "Chunghwa" in got["168.95.1.1"][1]
    assert got["8.8.8.8"] == (15169, "Google LLC", "US")
    assert got["10.0.0.1"] == (None, None, None)  # private space is in no table
    assert got["2001:4860:4860::8888"][0] == 15169


def test_engine_join_agrees_with_a_sorted_search(real_ws):
    """Random addresses: the bucketed SQL join returns what a binary search over the ranges does."""
    t = geo.read_geo(real_ws, "asn")
    t4 = t.filter(pa.compute.is_valid(t.column("ip_start4")))
    starts = np.asarray(t4.column("ip_start4").to_numpy(), dtype=np.int64)
    ends = np.asarray(t4.column("ip_end4").to_numpy(), dtype=np.int64)
    asns = np.asarray(t4.column("asn").to_numpy())
    order = np.argsort(starts)
    starts, ends, asns = starts[order], ends[order], asns[order]
    rng = np.random.default_rng(7)
    ips = rng.integers(0, 2**32, 20_000, dtype=np.int64)
    i = np.searchsorted(starts, ips, side="right") - 1
    hit = (i >= 0) & (ips <= ends[np.clip(i, 0, None)])
    expect = {int(ip): (int(asns[j]) if h else None) for ip, j, h in zip(ips, i, hit)}
    eng = DuckDBEngine(threads=1)
    eng.register_table("q", pa.table({"ip4": pa.array(ips, pa.uint32()), "ip6": pa.nulls(len(ips), pa.binary(16))}))
    res = geo.enrich_ips(eng, "q", real_ws)
    got = dict(zip(res.column("ip4").to_pylist(), res.column("asn").to_pylist()))
    assert got == expect
    assert 0.3 < sum(v is not None for v in got.values()) / len(got) < 0.95


def test_loading_ipv6_keeps_ipv4_rows(real_ws):
    t = geo.read_geo(real_ws, "asn")
    n4 = pa.compute.sum(pa.compute.is_valid(t.column("ip_start4"))).as_py()
    n6 = pa.compute.sum(pa.compute.is_valid(t.column("ip_start6"))).as_py()
    assert n4 == 3_035 and n6 == 308  # row counts of the two (cut) source files (tests/data/SOURCES.md)


def test_lookup_hosts_for_pipeline(real_ws):
    p = parse_ips(pa.array(["140.112.8.116", "2001:4860:4860::8888"]))
    hosts = pa.table({"host_ip4": p.v4, "host_ip6": p.v6})
    eng = DuckDBEngine(threads=1)
    info = geo.lookup_hosts(eng, real_ws, hosts)
    assert info["140.112.8.116"]["country"] == "TW" and info["2001:4860:4860::8888"]["asn"] == 15169


def _write_mmdb(path: Path, records: list[tuple[str, dict]]) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    for net, rec in records:
        w.insert_network(IPSet([net]), rec)
    w.to_db_file(str(path))


def test_mmdb_asn_and_country_layouts(tmp_path):
    asn_db = tmp_path / "asn.mmdb"
    _write_mmdb(
        asn_db,
        [
            (
                "203.0.113.0/24",
                {"autonomous_system_number": 64500, "autonomous_system_organization": "Example Semi Corp"},
            ),
            (
                "2001:db8::/32",
                {"autonomous_system_number": 64501, "autonomous_system_organization": "Example University"},
            ),
        ],
    )
    cc_db = tmp_path / "city.mmdb"
    _write_mmdb(
        cc_db,
        [
            ("203.0.113.0/25", {"country": {"iso_code": "TW"}, "city": {"names": {"en": "Hsinchu"}}}),
            ("203.0.113.128/25", {"registered_country": {"iso_code": "JP"}}),
        ],
    )
    ws = Workspace(tmp_path / "ws").ensure()
    assert geo.load_geo(ws, asn_db)["kind"] == "asn"
    assert geo.load_geo(ws, cc_db)["kind"] == "country"
    got = lookup(ws, ["203.0.113.5", "203.0.113.200", "2001:db8::1", "198.51.100.1"])
    assert got["203.0.113.5"] == (64500, "Example Semi Corp", "TW")
    assert got["203.0.113.200"] == (64500, "Example Semi Corp", "JP")
    assert got["2001:db8::1"] == (64501, "Example University", None)
    assert got["198.51.100.1"] == (None, None, None)


def test_bad_geo_inputs(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    bad = tmp_path / "bad.csv"
    bad.write_text("1.0.0.0,1.0.0.255,13335,Cloudflare\nnot-an-ip,1.0.1.255,1,X\n1.0.2.0,1.0.2.255,AS7,Seven\n")
    info = geo.load_geo(ws, bad)
    assert info["rows"] == 2 and info["skipped"] == 1
    assert lookup(ws, ["1.0.2.9"])["1.0.2.9"][0] == 7
    with pytest.raises(InputError, match="not found"):
        geo.load_geo(ws, tmp_path / "missing.csv")
    two = tmp_path / "two.csv"
    two.write_text("1.0.0.0,1.0.0.255\n")
    with pytest.raises(InputError, match="columns"):
        geo.load_geo(ws, two)


def test_cli_geo_load_and_update(tmp_path):
    from sightline.cli import app

    src = tmp_path / "cc.csv"
    src.write_text("1.0.0.0,1.0.0.255,AU\n")
    ws = tmp_path / "ws"
    r = CliRunner().invoke(app, ["geo", "load", str(src), "--workspace", str(ws)])
    assert r.exit_code == 0, r.output
    assert "country table, 1 ranges" in r.output
    src.write_text("1.0.0.0,1.0.0.255,TW\n")
    r = CliRunner().invoke(app, ["geo", "update", "--workspace", str(ws)])
    assert r.exit_code == 0, r.output
    assert lookup(Workspace(ws), ["1.0.0.1"])["1.0.0.1"][2] == "TW"
    r = CliRunner().invoke(app, ["geo", "load", str(tmp_path / "nope.csv"), "--workspace", str(ws)])
    assert r.exit_code == 2 and "not found" in r.output
