"""Hostile inputs: bombs, huge lines, deep JSON, XML entities, traversal, values that lie.

Each case is what an attacker who controls a log, an export, a feed or a scan could send.
The outcome must be a quarantine entry / reported skip or a typed ``SightlineError``, with
memory bounded (peak RSS measured in a child process).  ``make reliability`` repeats the
big ones at full size (1 GB line, 1 GB bombs) and prints the figures.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from sightline.enrich.orgs import load_orgs_csv, read_orgs, store_orgs
from sightline.errors import SightlineError
from sightline.exposure.scans import load_scans
from sightline.ingest import ingest_paths
from sightline.intel import load_intel_files
from sightline.store import Workspace
from tests.fuzz_support import TARGETS, run_target
from tests.hostile_support import (
    ZEEK_HEAD,
    ZEEK_ROW,
    baseline_rss_mb,
    ingest_in_child,
    intel_in_child,
    scans_in_child,
    write_long_line,
    write_zstd_bomb,
)

MB = 1 << 20


@pytest.fixture(scope="module")
def base_rss() -> float:
    return baseline_rss_mb()


# --- decompression bombs ---------------------------------------------------------------


def test_zstd_bomb_ingest_stops_at_the_ratio_bound(tmp_path: Path, base_rss: float) -> None:
    bomb = write_zstd_bomb(tmp_path / "conn.log.zst", 1 << 30, body=b"\n" * 4096)  # 1 GiB of blank lines
    assert bomb.stat().st_size < 200_000
    res = ingest_in_child(bomb, tmp_path / "ws")
    assert "error" not in res, res
    assert any("decompressed size exceeds" in r for r in res["quarantine_reasons"]), res
    assert res["peak_rss_mb"] - base_rss < 400, res


@pytest.mark.parametrize("reader", ["intel", "scans"])
def test_zstd_bomb_intel_and_scans_bounded(tmp_path: Path, base_rss: float, reader: str) -> None:
    bomb = write_zstd_bomb(tmp_path / "feed.zst", 1 << 30, body=b"\n" * 4096, head=b"198.51.100.7\n")
    res = (intel_in_child if reader == "intel" else scans_in_child)(bomb, tmp_path / "ws")
    if reader == "intel":
        assert res.get("typed") and "exceeds" in res["message"], res
    else:
        assert res["rows"] == 0 and "exceeds" in res["quarantine_reasons"][0], res
    assert res["peak_rss_mb"] - base_rss < 600, res


def test_corrupt_gzip_is_quarantined_not_fatal(tmp_path: Path) -> None:
    good = gzip.compress(ZEEK_HEAD + ZEEK_ROW * 1000)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # breaks the deflate stream midway
    p = tmp_path / "conn.log.gz"
    p.write_bytes(bytes(bad))
    summary = ingest_paths(Workspace(tmp_path / "ws"), [p])
    f = summary.files[0]
    assert f.quarantined >= 1 or f.reason  # kept what was readable, said where it broke


# --- a huge single line ----------------------------------------------------------------


def test_64mb_single_line_quarantined_with_bounded_memory(tmp_path: Path, base_rss: float) -> None:
    p = write_long_line(tmp_path / "conn.log", 64 * MB)
    res = ingest_in_child(p, tmp_path / "ws")
    assert res["rows"] == 4 and res["quarantined"] == 1, res  # the rows around it survive
    assert res["quarantine_reasons"] == ["expected 14 fields, got 1"], res
    assert res["peak_rss_mb"] - base_rss < 8 * 64, res


def test_long_json_line_quarantined(tmp_path: Path) -> None:
    rec = {
        "ts": 1709251200.5,
        "id.orig_h": "203.0.113.5",
        "id.orig_p": 1,
        "id.resp_h": "198.51.100.7",
        "id.resp_p": 443,
        "proto": "tcp",
    }
    p = tmp_path / "conn.json"
    p.write_bytes(
        (json.dumps(rec) + "\n").encode()
        + b'{"ts": 1, "x": "'
        + b"A" * (20 * MB)
        + b'"\n'
        + (json.dumps(rec) + "\n").encode()
    )
    f = ingest_paths(Workspace(tmp_path / "ws"), [p]).files[0]
    assert (f.format, f.rows, f.quarantined) == ("zeek_json", 2, 1)


# --- deep JSON -------------------------------------------------------------------------

DEEP = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b'{"type": "bundle", "objects": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
]


@pytest.mark.parametrize(
    "target", ["stix", "intel_list", "zeek_json", "suricata_eve", "shodan_json", "masscan", "ingest_autodetect"]
)
@pytest.mark.parametrize("blob", DEEP, ids=["array", "object", "bundle"])
def test_deep_json_is_refused_cleanly(target: str, blob: bytes) -> None:
    run_target(TARGETS[target], blob)  # raises only for a non-typed error
    run_target(TARGETS[target], blob + b"\n" + blob)


# --- XML -------------------------------------------------------------------------------

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE nmaprun [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">]>
<nmaprun><host><address addr="203.0.113.10" addrtype="ipv4"/><hostnames><hostname name="&g;"/></hostnames>
<ports><port protocol="tcp" portid="443"><state state="open"/></port></ports></host></nmaprun>
"""


def test_xml_entity_expansion_refused(tmp_path: Path) -> None:
    p = tmp_path / "scan.xml"
    p.write_bytes(LAUGHS)
    load = load_scans([p])
    assert load.services.num_rows == 0
    assert "unsafe XML refused" in load.quarantine.column("reason")[0].as_py()


def test_xml_external_entity_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    p = tmp_path / "scan.xml"
    p.write_bytes(
        f"""<?xml version="1.0"?>
<!DOCTYPE nmaprun [<!ENTITY x SYSTEM "file://{secret}">]>
<nmaprun><host><address addr="203.0.113.10" addrtype="ipv4"/><hostnames><hostname name="&x;"/></hostnames>
<ports><port protocol="tcp" portid="443"><state state="open"/><service name="&x;"/></port></ports></host></nmaprun>
""".encode()
    )
    load = load_scans([p])
    text = json.dumps(load.services.to_pylist(), default=str) + json.dumps(load.quarantine.to_pylist())
    assert "TOP-SECRET" not in text
    assert load.quarantine.num_rows >= 1


# --- path traversal --------------------------------------------------------------------


def test_gzip_member_name_is_ignored(tmp_path: Path) -> None:
    """A gzip header may carry a file name; sightline never writes by it."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="../../../../escaped.log", mode="wb", fileobj=buf) as g:
        g.write(ZEEK_HEAD + ZEEK_ROW)
    d = tmp_path / "in" / "deep"
    d.mkdir(parents=True)
    (d / "conn.log.gz").write_bytes(buf.getvalue())
    ws = Workspace(tmp_path / "ws")
    assert ingest_paths(ws, [d / "conn.log.gz"]).rows == 1
    assert not list(tmp_path.rglob("escaped*"))
    assert all(Path(p).resolve().is_relative_to(ws.root.resolve()) for p in ws.flow_files())


def test_notice_file_names_stay_in_out_dir(tmp_path: Path) -> None:
    from sightline.report.notify import write_notices

    doc = json.loads((Path(__file__).parent / "data" / "sample_findings.json").read_text())
    for i, org in enumerate(doc["organizations"]):
        org["org_id"] = ["../../etc/passwd", "/abs/olute", "..\\..\\win", "a/../../b"][i % 4]
    out = tmp_path / "out" / "notices"
    write_notices(doc, out)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written)


def test_config_allowlist_traversal_resolves_from_config_dir(tmp_path: Path) -> None:
    """Config is trusted operator input; relative paths resolve from its directory, never from input data."""
    from sightline.config import load_config

    cfg = tmp_path / "conf" / "sightline.toml"
    cfg.parent.mkdir()
    cfg.write_text('[allowlist]\nfiles = ["../lists/good.csv"]\n')
    c = load_config(cfg)
    assert c.allowlist.files == (str((tmp_path / "lists" / "good.csv").resolve()),)
    cfg.write_text('[allowlist]\nfiles = "not-a-list-\\u0000"\n')
    with pytest.raises(SightlineError):
        load_config(cfg)


# --- values that lie -------------------------------------------------------------------

BAD_ROWS = {
    "999.1.1.1": ("1709251200.5", "999.1.1.1", "1", "198.51.100.7", "443", "bad src_ip"),
    "1.2.3": ("1709251200.5", "203.0.113.5", "1", "1.2.3", "443", "bad dst_ip"),
    "words": ("1709251200.5", "<script>", "1", "198.51.100.7", "443", "bad src_ip"),
    "year-10000": ("253402300800.0", "203.0.113.5", "1", "198.51.100.7", "443", "out-of-range ts"),
    "negative-ts": ("-1.0", "203.0.113.5", "1", "198.51.100.7", "443", "out-of-range ts"),
    "port-65536": ("1709251200.5", "203.0.113.5", "65536", "198.51.100.7", "443", "src_port out of range"),
    "port-2^32": ("1709251200.5", "203.0.113.5", "1", "198.51.100.7", "4294967296", "dst_port out of range"),
    "port-huge": ("1709251200.5", "203.0.113.5", "1", "198.51.100.7", "9" * 40, "bad dst_port"),
    "port-negative": ("1709251200.5", "203.0.113.5", "-5", "198.51.100.7", "443", "src_port"),
}


def test_lying_values_are_quarantined_with_reasons(tmp_path: Path) -> None:
    lines = [ZEEK_HEAD.decode()]
    for ts, src, sport, dst, dport, _ in BAD_ROWS.values():
        lines.append(f"{ts}\tC\t{src}\t{sport}\t{dst}\t{dport}\ttcp\t\u53f0\u7063<b>\t1\t1\t1\tSF\t1\t1\n")
    lines.append("253402300799.0\tC\t::ffff:1.2.3.4\t1\t2001:db8::1\t443\ttcp\tssl\t1\t1\t1\tSF\t1\t1\n")
    lines.append("0.0\tC\t0.0.0.0\t0\t255.255.255.255\t65535\tudp\t-\t-\t-\t-\tS0\t-\t-\n")
    # a zone index is dropped (Zeek never writes one; the address itself is valid)
    lines.append("1709251200.5\tC\tfe80::1%eth0\t1\t198.51.100.7\t443\ttcp\t-\t1\t1\t1\tSF\t1\t1\n")
    p = tmp_path / "conn.log"
    p.write_text("".join(lines), encoding="utf-8")
    ws = Workspace(tmp_path / "ws")
    f = ingest_paths(ws, [p]).files[0]
    assert (f.rows, f.quarantined) == (3, len(BAD_ROWS))
    q = pq.read_table(ws.quarantine_files()[0]).to_pylist()
    got = {r["position"]: r["reason"] for r in q}
    for i, (name, row) in enumerate(BAD_ROWS.items()):
        assert row[-1] in got[i + 4], (name, got.get(i + 4))  # header is 3 lines; data starts at line 4
    stored = duckdb.sql(
        f"select max(ts) m, min(ts) n, max(dst_port) p from read_parquet({ws.flow_files()!r})"
    ).fetchall()[0]
    assert stored[0].year == 9999 and stored[1].year == 1970 and stored[2] == 65535


def test_unicode_org_names_round_trip(tmp_path: Path) -> None:
    names = [
        "\u53f0\u7063\u534a\u5c0e\u9ad4",
        "\u202eevil\u202c RTL",
        "emoji \U0001f6f0\ufe0f",
        "Zero\u200bWidth",
        "Caf\u00e9 <b>&amp;",
        "=SUM(A1)",
    ]
    p = tmp_path / "orgs.csv"
    p.write_text(
        "org_id,name,sector,country,cidr\n"
        + "".join(f'org{i},"{n}",government,TW,203.0.113.{i * 8}/29\n' for i, n in enumerate(names))
        + "x,\u0000,,,1.2.3.4/40\n",
        encoding="utf-8",
    )
    load = load_orgs_csv(p)
    assert len(load.bad) == 1  # the NUL row has a bad CIDR
    ws = Workspace(tmp_path / "ws").ensure()
    store_orgs(ws, load)
    assert sorted(read_orgs(ws).column("name").to_pylist()) == sorted(names)


def test_intel_with_lying_values(tmp_path: Path) -> None:
    p = tmp_path / "iocs.csv"
    p.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
        "999.1.1.1,ipv4,A,,,50,amber\n1.2.3,ipv4,A,,,50,amber\n198.51.100.7,ipv4,A,9999-12-31,,999,purple\n"
        "198.51.100.8,ipv4,A,-0001-01-01,,-5,amber\n198.51.100.0/33,ipv4,A,,,50,amber\n"
        "203.0.113.9,ipv4,\u53f0<script>,,,50,amber\n"
    )
    load = load_intel_files([p])
    values = set(load.table.column("value").to_pylist())
    assert "999.1.1.1" not in values and "1.2.3" not in values and "198.51.100.0/33" not in values
    assert "203.0.113.9" in values
    assert load.report[0].skipped >= 3
