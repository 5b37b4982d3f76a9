"""A file's identity is its content: compressed copies, renamed copies and rotated logs add
nothing; a file that grew since it was ingested adds only what was appended."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import zstandard

from sightline.ingest import CHANGED_WHILE_READ, identity, ingest_paths, run
from sightline.ingest.nfexport import encode_export, pcap_of_datagrams, synthetic_flows
from sightline.store import Workspace, read_parts

from .zeekgen import FIELDS, TYPES, _cell, conn, write_tsv

ALREADY = "already ingested (same content as "


def _eve(i: int) -> bytes:
    rec = {
        "timestamp": "2024-03-01T00:00:00.000000+0000",
        "event_type": "flow",
        "src_ip": "10.0.0.1",
        "src_port": 10000 + i,
        "dest_ip": "198.51.100.7",
        "dest_port": 443,
        "proto": "TCP",
        "flow": {
            "pkts_toserver": 3,
            "pkts_toclient": 2,
            "bytes_toserver": 300 + i,
            "bytes_toclient": 200,
            "start": f"2024-03-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000000+0000",
            "end": f"2024-03-01T00:{i // 60 % 60:02d}:{i % 60:02d}.500000+0000",
        },
    }
    return (json.dumps(rec) + "\n").encode()


def _eve_lines(a: int, b: int) -> bytes:
    return b"".join(_eve(i) for i in range(a, b))


def _stored(ws: Workspace) -> pa.Table:
    return read_parts(ws.flow_files())


def _distinct(t: pa.Table) -> int:
    return len(set(zip(t.column("ts").to_pylist(), t.column("src_port").to_pylist())))


# --- same content, other bytes on disk ------------------------------------------------------


def _gz(data: bytes) -> bytes:
    return gzip.compress(data)


def _zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def _plain(data: bytes) -> bytes:
    return data


CASES = {  # first file, second file (same content)
    "plain-then-gz": (("eve.json", _plain), ("eve.json.gz", _gz)),
    "gz-then-plain": (("eve.json.gz", _gz), ("eve.json", _plain)),
    "plain-then-zst": (("eve.json", _plain), ("eve.json.zst", _zst)),
    "zst-then-gz": (("eve.json.zst", _zst), ("copy.json.gz", _gz)),
    "renamed-copy": (("eve.json", _plain), ("elsewhere/renamed.json", _plain)),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_same_content_is_already_ingested(tmp_path: Path, case: str) -> None:
    data = _eve_lines(0, 50)
    (n1, enc1), (n2, enc2) = CASES[case]
    a, b = tmp_path / n1, tmp_path / n2
    b.parent.mkdir(parents=True, exist_ok=True)
    a.write_bytes(enc1(data))
    b.write_bytes(enc2(data))
    ws = Workspace(tmp_path / "ws")
    assert ingest_paths(ws, [a]).rows == 50
    f = ingest_paths(ws, [b]).files[0]
    assert (f.rows, f.skipped, f.reason) == (0, True, f"{ALREADY}{a})")
    assert ws.counts()["flows"] == 50


def test_manifest_records_the_content_hash(tmp_path: Path) -> None:
    data = _eve_lines(0, 5)
    p = tmp_path / "eve.json.gz"
    p.write_bytes(_gz(data))
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [p])
    ((key, entry),) = ws.manifest()["files"].items()
    assert key == hashlib.sha256(p.read_bytes()).hexdigest()  # still keyed by the bytes on disk
    assert entry["content_sha256"] == hashlib.sha256(data).hexdigest() and entry["content_size"] == len(data)


def test_old_manifest_entries_still_match(tmp_path: Path) -> None:
    """Entries written before content hashes existed (keyed by the raw hash, nothing else)."""
    gz, plain = tmp_path / "a.json.gz", tmp_path / "b.json"
    gz.write_bytes(_gz(_eve_lines(0, 5)))
    plain.write_bytes(_eve_lines(5, 10))
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [gz, plain])
    m = ws.manifest()
    for e in m["files"].values():
        for k in ("content_sha256", "content_size", "source_path"):
            e.pop(k)
    ws.write_manifest(m)
    s = ingest_paths(ws, [gz, plain, tmp_path / "b.json"])
    assert s.rows == 0 and all(f.reason.startswith(ALREADY) for f in s.files)
    copy = tmp_path / "c.json.gz"  # a plain file's raw hash is its content hash, old entry or not
    copy.write_bytes(_gz(plain.read_bytes()))
    assert ingest_paths(ws, [copy]).files[0].reason == f"{ALREADY}{plain})"


def test_logrotate_with_delaycompress_adds_only_the_new_log(tmp_path: Path) -> None:
    """eve.json -> eve.json.1 -> eve.json.2.gz, a new eve.json each time (logrotate's
    ``rotate``, ``compress``, ``delaycompress``)."""
    d = tmp_path / "suricata"
    d.mkdir()
    (d / "eve.json.1").write_bytes(_eve_lines(0, 40))
    (d / "eve.json").write_bytes(_eve_lines(40, 70))
    ws = Workspace(tmp_path / "ws")
    assert ingest_paths(ws, [d]).rows == 70
    (d / "eve.json.2.gz").write_bytes(_gz((d / "eve.json.1").read_bytes()))
    (d / "eve.json.1").unlink()
    (d / "eve.json").rename(d / "eve.json.1")
    (d / "eve.json").write_bytes(_eve_lines(70, 100))
    s = ingest_paths(ws, [d])
    assert s.rows == 30
    assert sorted(f.reason[: len(ALREADY)] for f in s.files if f.skipped) == [ALREADY, ALREADY]
    t = _stored(ws)
    assert t.num_rows == _distinct(t) == 100


# --- files that grew ------------------------------------------------------------------------


def _tsv_bytes(rows: list[dict], *, close: bool) -> bytes:
    """A Zeek conn.log as :func:`tests.zeekgen.write_tsv` writes it (8 header lines)."""
    lines = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#open\t2024-03-01-00-00-00",
        "#fields\t" + "\t".join(FIELDS),
        "#types\t" + "\t".join(TYPES),
    ]
    lines += ["\t".join(_cell(r[f]) for f in FIELDS) for r in rows]
    if close:
        lines.append("#close\t2024-03-09-00-00-00")
    return ("\n".join(lines) + "\n").encode()


def _rows_only(data: bytes) -> bytes:
    """The data lines of a Zeek TSV log (what a grown log adds after its header)."""
    return data.split(b"#types", 1)[1].split(b"\n", 1)[1]


def _conns(a: int, b: int) -> list[dict]:
    return [conn(1709251200.0 + i, "10.0.0.1", 20000 + i, "198.51.100.7", 443, ob=100 + i, rb=50) for i in range(a, b)]


def _zeek_json(a: int, b: int) -> bytes:
    return b"".join((json.dumps(r) + "\n").encode() for r in _conns(a, b))


NFDUMP_HEADER = (
    "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,nh,nhb,"
    "svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,"
    "ra,eng,exid,tr\n"
)


def _nfdump_rows(a: int, b: int) -> bytes:
    tail = (
        ",0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,"
        + ",".join(["00:00:00:00:00:00"] * 4)
        + ","
        + ",".join(["0-0-0"] * 10)
        + ",0.000,0.000,0.000,10.0.0.254,0/0,1,1970-01-01 00:00:00.000\n"
    )
    return "".join(
        f"2024-03-01 00:{i // 60:02d}:{i % 60:02d},2024-03-01 00:{i // 60:02d}:{i % 60:02d},0.000,10.0.0.1,"
        f"198.51.100.7,{30000 + i},443,TCP,...A..S.,0,0,2,{120 + i},0,0,0,0" + tail
        for i in range(a, b)
    ).encode()


GROWING = {  # name -> (file name, content of rows [a, b), lines before the first row)
    "suricata-eve": ("eve.json", lambda a, b: _eve_lines(a, b), 0),
    "zeek-json": ("conn.json", _zeek_json, 0),
    "zeek-tsv": (
        "conn.log",
        lambda a, b: _rows_only(_tsv_bytes(_conns(a, b), close=False)) if a else _tsv_bytes(_conns(a, b), close=False),
        8,
    ),
    "nfdump-csv": ("flows.csv", lambda a, b: (b"" if a else NFDUMP_HEADER.encode()) + _nfdump_rows(a, b), 1),
}


@pytest.mark.parametrize("kind", list(GROWING), ids=list(GROWING))
def test_grown_file_adds_only_what_was_appended(tmp_path: Path, kind: str) -> None:
    name, rows, head_lines = GROWING[kind]
    p = tmp_path / name
    p.write_bytes(rows(0, 30))
    ws = Workspace(tmp_path / "ws")
    assert ingest_paths(ws, [p]).rows == 30
    bad = b"this is not a record\n"
    p.write_bytes(rows(0, 30) + rows(30, 40) + bad + rows(40, 60))
    f = ingest_paths(ws, [p]).files[0]
    assert (f.rows, f.quarantined, f.skipped) == (30, 1, False)
    assert "read only what was appended" in f.note and f"line {head_lines + 31:,}" in f.note
    t = _stored(ws)
    assert t.num_rows == _distinct(t) == 60
    import duckdb

    ((pos,),) = duckdb.sql(f"SELECT position FROM read_parquet({ws.quarantine_files()})").fetchall()
    assert pos == head_lines + 41  # the line of the whole file, not of the tail read
    assert ingest_paths(ws, [p]).files[0].reason.startswith(ALREADY)  # and the grown file is now known


def test_live_zeek_log_then_its_rotated_archive(tmp_path: Path) -> None:
    """conn.log ingested while Zeek writes it; later the archive conn.00:00:00-01:00:00.log.gz
    holds it whole (more rows, then #close): only the rows after the first ingest are new."""
    live = tmp_path / "current" / "conn.log"
    live.parent.mkdir()
    live.write_bytes(_tsv_bytes(_conns(0, 25), close=False))
    ws = Workspace(tmp_path / "ws")
    assert ingest_paths(ws, [live]).rows == 25
    archive = tmp_path / "2024-03-01" / "conn.00:00:00-01:00:00.log.gz"
    archive.parent.mkdir()
    archive.write_bytes(_gz(_tsv_bytes(_conns(0, 70), close=True)))
    f = ingest_paths(ws, [archive]).files[0]
    assert (f.rows, f.quarantined) == (45, 0) and "once decompressed" in f.note
    t = _stored(ws)
    assert t.num_rows == _distinct(t) == 70


def _cut_cases() -> dict[str, tuple[bytes, bytes, int]]:
    """name -> (content seen by the first ingest, content later, rows stored in all)."""
    full = _eve_lines(0, 10)
    line9 = _eve(9)
    tsv = _tsv_bytes(_conns(0, 10), close=False)
    return {
        # the writer was inside record 10: the first ingest quarantined it; it is read whole now
        "json-cut-mid-record": (full[: len(full) - len(line9) // 2], full + _eve_lines(10, 20), 20),
        # record 10 was complete, only its newline was still to come: not stored twice
        "json-newline-missing": (full[:-1], full + _eve_lines(10, 20), 20),
        # a TSV line cut inside its last field (tunnel_parents, unused): stored then, not again
        "tsv-cut-in-last-field": (tsv[:-4], tsv + _rows_only(_tsv_bytes(_conns(10, 20), close=True)), 20),
    }


@pytest.mark.parametrize("case", list(_cut_cases()), ids=list(_cut_cases()))
def test_grown_file_read_while_a_line_was_written(tmp_path: Path, case: str) -> None:
    first, later, total = _cut_cases()[case]
    p = tmp_path / ("conn.log" if case.startswith("tsv") else "eve.json")
    p.write_bytes(first)
    ws = Workspace(tmp_path / "ws")
    s1 = ingest_paths(ws, [p])
    p.write_bytes(later)
    s2 = ingest_paths(ws, [p])
    assert s2.files[0].note and s1.rows + s2.rows == total
    t = _stored(ws)
    assert t.num_rows == _distinct(t) == total
    if case == "json-cut-mid-record":
        assert (s1.quarantined, s2.quarantined) == (1, 0) and "read whole now" in s2.files[0].note


def test_grown_binary_file_is_refused(tmp_path: Path) -> None:
    pkts = encode_export(synthetic_flows(300), 9)
    p = tmp_path / "export.pcap"
    p.write_bytes(pcap_of_datagrams(pkts[:5]))
    ws = Workspace(tmp_path / "ws")
    first = ingest_paths(ws, [p]).rows
    full = pcap_of_datagrams(pkts)
    assert full.startswith(p.read_bytes())
    p.write_bytes(full)
    f = ingest_paths(ws, [p]).files[0]
    assert (f.rows, f.skipped) == (0, False)
    assert "cannot be read from the middle" in f.reason and "not while they are written" in f.reason
    assert ws.counts()["flows"] == first


def test_file_changed_while_read_stores_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copytruncate rotation between hashing and reading: the bytes read are not the ones
    hashed, so nothing is stored and the next ingest reads the file as it is then."""
    p = tmp_path / "eve.json"
    p.write_bytes(_eve_lines(0, 20))
    real = run.content_identity

    def rotate_after_hashing(path, offsets=(), **kw):  # type: ignore[no-untyped-def]
        ident = real(path, offsets, **kw)
        p.write_bytes(_eve_lines(100, 120))  # truncated and rewritten to the same length
        return ident

    monkeypatch.setattr(run, "content_identity", rotate_after_hashing)
    ws = Workspace(tmp_path / "ws")
    f = ingest_paths(ws, [p]).files[0]
    assert (f.rows, f.reason) == (0, CHANGED_WHILE_READ) and ws.counts()["flows"] == 0
    monkeypatch.setattr(run, "content_identity", real)
    assert ingest_paths(ws, [p]).rows == 20


def test_header_only_log_does_not_claim_later_logs(tmp_path: Path) -> None:
    """A prefix that stored nothing (a Zeek log with only its header) is no "ingested part"."""
    a = write_tsv(tmp_path / "a.log", [], close=False)
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [a])
    b = tmp_path / "b.log"
    b.write_bytes(a.read_bytes() + _rows_only(_tsv_bytes(_conns(0, 5), close=True)))
    f = ingest_paths(ws, [b]).files[0]
    assert (f.rows, f.note) == (5, "")


def test_chunked_and_whole_ingest_store_the_same_flows(tmp_path: Path) -> None:
    """Ingesting a log in three growth steps stores exactly what ingesting it once does."""
    data = _eve_lines(0, 90)
    cuts = [len(_eve_lines(0, 30)) + 17, len(_eve_lines(0, 61))]  # one cut inside a record
    p = tmp_path / "eve.json"
    ws = Workspace(tmp_path / "ws")
    for end in [*cuts, len(data)]:
        p.write_bytes(data[:end])
        ingest_paths(ws, [p])
    once = tmp_path / "once" / "eve.json"
    once.parent.mkdir()
    shutil.copy(p, once)
    ws1 = Workspace(tmp_path / "ws1")
    ingest_paths(ws1, [once])
    key = ["ts", "src_port", "bytes_out", "bytes_in", "packets_out", "conn_state"]
    a = _stored(ws).select(key).sort_by([("ts", "ascending"), ("src_port", "ascending")])
    b = _stored(ws1).select(key).sort_by([("ts", "ascending"), ("src_port", "ascending")])
    assert a.equals(b) and pc.sum(a["bytes_out"]).as_py() == pc.sum(b["bytes_out"]).as_py()


def test_fresh_compressed_file_is_hashed_while_read_not_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compressed file whose first 64 KiB no ingested file shares cannot be a copy or a
    continuation: it is decompressed once (its content hashed as it is read); one that shares
    them is hashed first, and found to be a copy."""
    ws = Workspace(tmp_path / "ws")
    other = tmp_path / "other.json"
    other.write_bytes(_eve_lines(500, 520))
    ingest_paths(ws, [other])
    calls: list[Path] = []
    real = run.content_identity

    def counting(path, offsets=(), **kw):  # type: ignore[no-untyped-def]
        calls.append(Path(path))
        return real(path, offsets, **kw)

    monkeypatch.setattr(run, "content_identity", counting)
    data = _eve_lines(0, 3000)  # more than 64 KiB
    gz = tmp_path / "eve.json.gz"
    gz.write_bytes(_gz(data))
    assert ingest_paths(ws, [gz]).rows == 3000 and calls == []
    entry = next(e for e in ws.manifest()["files"].values() if e["source_file"] == str(gz))
    assert (entry["content_sha256"], entry["content_size"]) == (hashlib.sha256(data).hexdigest(), len(data))
    zst = tmp_path / "eve.json.zst"
    zst.write_bytes(_zst(data))
    f = ingest_paths(ws, [zst]).files[0]
    assert calls == [zst] and f.reason == f"{ALREADY}{gz})"


def test_scan_marks_match_a_brute_force_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashes and line positions at many offsets, across tiny block boundaries."""
    import io
    import random

    monkeypatch.setattr(identity, "HASH_BLOCK", 37)
    rnd = random.Random(5)
    for _ in range(200):
        data = bytes(rnd.choice(b"ab\n") for _ in range(rnd.randrange(1, 400)))
        offsets = {rnd.randrange(1, len(data) + 5) for _ in range(rnd.randrange(0, 12))}
        sha, size, marks = identity._scan(io.BytesIO(data), offsets)
        assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
        assert set(marks) == {o for o in offsets if o <= len(data)}
        for o, m in marks.items():
            assert m.sha256 == hashlib.sha256(data[:o]).hexdigest() and m.last_byte == data[o - 1 : o]
            assert (m.lines, m.line_start) == (data[:o].count(b"\n"), data[:o].rfind(b"\n") + 1)
