"""Names telemetry ingest: Zeek dns/ssl/x509 (TSV and JSON) and Suricata eve dns/tls."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from sightline.ingest import detect_file_format, ingest_paths
from sightline.ingest.names import NAMES_SCHEMA
from sightline.store import Workspace

from . import datafiles
from . import namesgen as ng
from .datafiles import WRCCDC

SLIPS = datafiles.SLIPS / "test9-mixed-zeek-dir"
EVE = datafiles.SLIPS / "test6-malicious.suricata.json.gz"
DAY = 1709251200.0


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


def names(ws: Workspace, where: str = "true") -> list[dict]:
    files = ws.name_files()
    if not files:
        return []
    return (
        duckdb.sql(f"SELECT * FROM read_parquet({files}) WHERE {where} ORDER BY ts, kind, name")
        .to_arrow_table()
        .to_pylist()
    )


@pytest.mark.parametrize(
    "path,fmt",
    [
        (WRCCDC / "zeek-default" / "dns.log.gz", "zeek_dns"),
        (WRCCDC / "zeek-default" / "ssl.log.gz", "zeek_ssl"),
        (WRCCDC / "zeek-default" / "x509.log.gz", "zeek_x509"),
        (WRCCDC / "zeek-json" / "ssl.json.gz", "zeek_ssl"),
        (WRCCDC / "zeek-json" / "x509.json.gz", "zeek_x509"),
        (SLIPS / "dns.log.gz", "zeek_dns"),
        (SLIPS / "ssl.log.gz", "zeek_ssl"),
        (SLIPS / "x509.log.gz", "zeek_x509"),
        (SLIPS / "conn.log.gz", "zeek_json"),
        (EVE, "suricata_eve"),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{v.parent.name}/{v.name}",
)
def test_formats_are_sniffed_by_content(path: Path, fmt: str) -> None:
    assert detect_file_format(path).name == fmt


def test_real_zeek_tsv_and_json_give_the_same_rows(tmp_path: Path) -> None:
    a, b = Workspace(tmp_path / "tsv"), Workspace(tmp_path / "json")
    ingest_paths(a, [WRCCDC / "zeek-default" / "ssl.log.gz", WRCCDC / "zeek-default" / "x509.log.gz"])
    ingest_paths(b, [WRCCDC / "zeek-json" / "ssl.json.gz", WRCCDC / "zeek-json" / "x509.json.gz"])
    cols = "ts, src_ip, dst_ip, dst_port, kind, name, cert_sha256, cert_serial, cert_index"
    q = f"SELECT {cols} FROM read_parquet(?) ORDER BY ALL"
    ta = duckdb.sql(q.replace("?", str(a.name_files()))).fetchall()
    tb = duckdb.sql(q.replace("?", str(b.name_files()))).fetchall()
    assert len(ta) > 1_500  # 3,000 of the capture's 49,474 TLS sessions (tests/data/SOURCES.md)
    assert ta == tb
    assert a.counts()["flows"] == 0 and a.flow_files() == []  # names never enter the flow store
    kinds = {r[4] for r in ta}
    assert kinds == {"tls_sni", "tls_cert", "x509"}
    # presented certificates are found in x509.log by fingerprint (Zeek logs each certificate
    # once per cache period, so sessions of certificates first seen before the log have none)
    sql = (
        f"SELECT avg(CASE WHEN cert_sha256 IN (SELECT cert_sha256 FROM read_parquet({a.name_files()}) "
        f"WHERE kind = 'x509') THEN 1.0 ELSE 0.0 END) FROM read_parquet({a.name_files()}) WHERE kind = 'tls_cert'"
    )
    assert duckdb.sql(sql).fetchall()[0][0] > 0.6


def test_real_dns_answers_one_row_per_address(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [SLIPS / "dns.log.gz"])
    assert s.quarantined == 0
    rows = names(ws, "name = 'www.msftncsi.com'")
    # answers: two CNAMEs and two addresses; only the addresses become rows, with their TTLs
    first = [r for r in rows if r["ts"] == rows[0]["ts"]]
    assert sorted((r["dst_ip"], r["ttl_s"]) for r in first) == [
        (ip("195.113.232.73"), 20.0),
        (ip("195.113.232.75"), 20.0),
    ]
    assert all(r["kind"] == "dns_answer" and r["src_ip"] == ip("10.0.2.15") for r in rows)


def test_old_zeek_ssl_cert_fuids_join_x509_serials(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [SLIPS / "ssl.log.gz", SLIPS / "x509.log.gz"])
    f = ws.name_files()
    got = duckdb.sql(f"""SELECT count(*) FROM read_parquet({f}) t JOIN read_parquet({f}) x
                         ON t.kind = 'tls_cert' AND x.kind = 'x509' AND t.cert_id = x.cert_id
                         WHERE t.dst_ip IS NOT NULL AND x.cert_serial IS NOT NULL""").fetchall()[0][0]
    assert got > 100
    bing = names(ws, "kind = 'x509' AND cert_id = 'FKMTO94tQEsBTFbPgc'")
    assert bing[0]["cert_serial"] == "2d00003299d7071db7d1708a42000000003299"


def test_suricata_eve_gives_flows_and_names(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [EVE])
    assert s.rows == 3512  # the flow events, as before
    tls = names(ws, "kind LIKE 'tls%'")
    assert {r["kind"] for r in tls} == {"tls_sni", "tls_cert"}
    cert = next(r for r in tls if r["kind"] == "tls_cert")
    assert cert["cert_sha1"] == "2dd19f809986fcac5f2a2afda3f37e967cdd2437"
    assert cert["cert_serial"] == "178e1ed7bd75efcd3d8fffd3" and cert["dst_port"] == 55443
    assert cert["name"] == "www.myedimax.com"
    dns = names(ws, "kind = 'dns_answer'")
    assert len(dns) > 100 and all(r["src_ip"] is not None and r["dst_ip"] is not None for r in dns)


def test_eve_versions_and_client_side(tmp_path: Path) -> None:
    eve = tmp_path / "eve.json"
    eve.write_text(
        # eve 1: one answer per event, logged from the resolver's side
        '{"timestamp":"2024-03-01T01:00:00.000000+0000","event_type":"dns","src_ip":"10.0.0.53","src_port":53,'
        '"dest_ip":"203.0.113.5","dest_port":41000,"proto":"UDP","dns":{"type":"answer","id":1,'
        '"rrname":"A.Evil.COM","rrtype":"A","ttl":60,"rdata":"45.77.2.20"}}\n'
        # eve 2: answers list with a CNAME and an AAAA, logged in query direction
        '{"timestamp":"2024-03-01T01:00:01.5+00:00","event_type":"dns","src_ip":"203.0.113.6","src_port":41001,'
        '"dest_ip":"10.0.0.53","dest_port":53,"proto":"UDP","dns":{"version":2,"type":"answer","id":2,'
        '"rrname":"b.evil.com","answers":[{"rrname":"b.evil.com","rrtype":"CNAME","ttl":30,"rdata":"c.example"},'
        '{"rrname":"c.example","rrtype":"AAAA","ttl":30,"rdata":"2001:db8::7"}]}}\n'
        '{"timestamp":"2024-03-01T01:00:02Z","event_type":"dns","src_ip":"203.0.113.6","src_port":41001,'
        '"dest_ip":"10.0.0.53","dest_port":53,"proto":"UDP","dns":{"type":"query","rrname":"b.evil.com","rrtype":"A"}}\n'
        '{"timestamp":"2024-03-01T01:00:03Z","event_type":"dns","src_ip":"not-an-ip","src_port":41001,'
        '"dest_ip":"10.0.0.53","dest_port":53,"dns":{"type":"answer","rrname":"x.com","rrtype":"A","rdata":"1.2.3.4"}}\n'
    )
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [eve])
    rows = names(ws)
    assert [(r["name"], r["src_ip"], r["dst_ip"], r["dst_ip6"], r["ttl_s"]) for r in rows] == [
        ("a.evil.com", ip("203.0.113.5"), ip("45.77.2.20"), None, 60.0),
        ("b.evil.com", ip("203.0.113.6"), None, bytes.fromhex("20010db8000000000000000000000007"), 30.0),
    ]
    assert s.quarantined == 1
    q = duckdb.sql(f"SELECT position, reason FROM read_parquet({ws.quarantine_files()})").fetchall()
    assert q == [(4, "dns_answer: bad client address")]


def test_bad_lines_are_quarantined_with_position(tmp_path: Path) -> None:
    log = ng.write_tsv(
        tmp_path / "dns.log",
        "dns",
        ng.DNS_FIELDS,
        [
            ng.dns(DAY, "203.0.113.5", "ok.example", ["45.77.2.20"]),
            ng.dns(DAY + 1, "not-an-ip", "bad.example", ["45.77.2.21"]),
            {**ng.dns(DAY + 2, "203.0.113.5", "badts.example", ["45.77.2.22"]), "ts": "yesterday"},
        ],
        extra=["too\tfew\tfields"],
    )
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [log])
    assert [r["name"] for r in names(ws)] == ["ok.example"]
    q = duckdb.sql(f"SELECT position, reason FROM read_parquet({ws.quarantine_files()}) ORDER BY position").fetchall()
    assert q == [
        (10, "dns_answer: bad client address"),
        (11, "dns_answer: bad or missing ts"),
        (12, "expected 24 fields, got 3"),
    ]
    assert s.quarantined == 3


def test_ingest_is_idempotent_and_schema_holds(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    first = ingest_paths(ws, [SLIPS / "dns.log.gz", SLIPS / "ssl.log.gz"])
    before = ws.name_files()
    again = ingest_paths(ws, [SLIPS / "dns.log.gz", SLIPS / "ssl.log.gz"])
    assert all(f.skipped for f in again.files) and not any(f.skipped for f in first.files)
    assert ws.name_files() == before
    for f in before:
        assert pq.read_schema(f).remove_metadata().equals(NAMES_SCHEMA)
        assert "/names/day=" in f


def test_orphaned_name_parts_are_cleaned(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [SLIPS / "dns.log.gz"])
    stray = ws.names_dir / "day=2024-03-01" / "deadbeef.parquet"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"half-written")
    ingest_paths(ws, [SLIPS / "ssl.log.gz"])
    assert not stray.exists()
    assert len(ws.name_files()) == 2 and all(Path(f).exists() for f in ws.name_files())
