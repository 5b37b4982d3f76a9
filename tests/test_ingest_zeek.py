"""Zeek readers: chunking does not change results; headers, gzip, JSON forms, bad records."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from sightline.ingest import ingest_paths, zeek
from sightline.workspace import Workspace

from .test_hunt_e2e import scenario
from .zeekgen import conn, write_json, write_tsv


def _flows(ws: Workspace) -> list[tuple]:
    return duckdb.sql(
        f"SELECT ts, src_ip, src_ip6, src_port, dst_ip, dst_ip6, dst_port, proto, bytes_out, bytes_in, conn_state "
        f"FROM read_parquet({ws.flow_files()}) ORDER BY ALL").fetchall()


def _quarantine(ws: Workspace) -> list[tuple]:
    return duckdb.sql(f"SELECT position, reason FROM read_parquet({ws.quarantine_files()}) ORDER BY ALL").fetchall()


def test_chunk_size_does_not_change_flows_or_quarantine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = scenario(tmp_path)
    whole = Workspace(tmp_path / "whole")
    ingest_paths(whole, [files["conn"], files["conn6"]])
    monkeypatch.setattr(zeek, "CHUNK_BYTES", 2048)
    monkeypatch.setattr(zeek, "JSON_CHUNK_BYTES", 300)
    chunked = Workspace(tmp_path / "chunked")
    ingest_paths(chunked, [files["conn"], files["conn6"]])
    assert _flows(whole) == _flows(chunked)
    assert _quarantine(whole) == _quarantine(chunked)
    assert len(_flows(whole)) == whole.counts()["flows"] > 800


def test_concatenated_logs_with_different_fields(tmp_path: Path) -> None:
    a = write_tsv(tmp_path / "a.log", [conn(1709251200.0 + i, "10.0.0.1", 1000 + i, "10.0.0.2", 80) for i in range(3)])
    text = a.read_text()
    # second log: fewer columns, different order
    second = ("#separator \\x09\n#fields\tid.resp_h\tid.resp_p\tts\tid.orig_h\tid.orig_p\tproto\n"
              "#types\taddr\tport\ttime\taddr\tport\tenum\n"
              "10.9.9.9\t443\t1709251300.5\t10.0.0.7\t5555\ttcp\n")
    both = tmp_path / "both.log"
    both.write_text(text + second)
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [both])
    assert s.rows == 4 and s.quarantined == 0
    rows = duckdb.sql(f"SELECT dst_port, src_port, bytes_out FROM read_parquet({ws.flow_files()}) ORDER BY ts").fetchall()
    assert rows[-1] == (443, 5555, None)


def test_json_nested_id_and_iso_timestamps(tmp_path: Path) -> None:
    p = tmp_path / "conn.json"
    recs = [
        {"ts": "2024-03-01T00:00:01.500000Z", "uid": "C1", "id": {"orig_h": "10.0.0.1", "orig_p": 1, "resp_h": "2001:db8::1",
                                                             "resp_p": 443}, "proto": "tcp", "orig_bytes": 10, "resp_bytes": 20,
         "conn_state": "SF"},
        {"ts": 1709251202.0, "uid": "C2", "id": {"orig_h": "10.0.0.1", "orig_p": 2, "resp_h": "10.0.0.3", "resp_p": 80},
         "proto": "tcp", "conn_state": "S0"},
    ]
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n{broken\n")
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [p])
    assert s.rows == 2 and s.quarantined == 1
    rows = duckdb.sql(f"SELECT epoch_ms(ts), dst_ip6 IS NOT NULL, dst_port FROM read_parquet({ws.flow_files()}) ORDER BY ts").fetchall()
    assert rows == [(1709251201500, True, 443), (1709251202000, False, 80)]
    assert _quarantine(ws) == [(3, _quarantine(ws)[0][1])] and "JSON" in _quarantine(ws)[0][1]


def test_hostile_values_are_quarantined_not_stored(tmp_path: Path) -> None:
    rows = [conn(1709251200.0, "10.0.0.1", 1, "10.0.0.2", 80),
            conn(253402300800.0, "10.0.0.1", 2, "10.0.0.2", 80),  # year 10000
            conn(-5.0, "10.0.0.1", 3, "10.0.0.2", 80),
            conn(1709251200.0, "10.0.0.1", 70000, "10.0.0.2", 80),
            conn(1709251200.0, "999.1.1.1", 4, "10.0.0.2", 80),
            conn(1709251200.0, "10.0.0.1", 5, "10.0.0.2", 80, ob=-7)]
    p = write_tsv(tmp_path / "c.log", rows)
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [p])
    assert s.rows == 1 and s.quarantined == 5
    reasons = [r for _, r in _quarantine(ws)]
    assert any("ts" in r for r in reasons) and any("src_port" in r for r in reasons) and any("src_ip" in r for r in reasons)


def test_json_lines_via_writer(tmp_path: Path) -> None:
    p = write_json(tmp_path / "c.json", [conn(1709251200.0 + i, "10.0.0.1", 1000 + i, "10.0.0.2", 443) for i in range(5)])
    ws = Workspace(tmp_path / "ws")
    assert ingest_paths(ws, [p]).rows == 5


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "zeek").exists(), reason="shared data not present")
def test_other_zeek_logs_are_not_taken_for_flows(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [SHARED / "zeek/wrccdc2018/zeek-default/weird.log.gz",
                          SHARED / "zeek/wrccdc2018/zeek-default/known_hosts.log.gz"])
    assert s.rows == 0
    assert all("Zeek" in f.reason and "not telemetry" in f.reason for f in s.files)
    weird_json = tmp_path / "weird.json"
    weird_json.write_text(json.dumps({"ts": 1709251200.0, "uid": "C1", "id.orig_h": "10.0.0.1", "id.orig_p": 1,
                                      "id.resp_h": "10.0.0.2", "id.resp_p": 80, "name": "bad_TCP_checksum"}) + "\n")
    assert ingest_paths(ws, [weird_json]).rows == 0
