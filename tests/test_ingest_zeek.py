"""Zeek readers: chunking does not change results; headers, gzip, JSON forms, bad records."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from sightline.ingest import ingest_paths, zeek
from sightline.store import Workspace

from .datafiles import WRCCDC
from .test_hunt_e2e import scenario
from .zeekgen import conn, write_json, write_tsv


def _flows(ws: Workspace) -> list[tuple]:
    return duckdb.sql(
        f"SELECT ts, src_ip, src_ip6, src_port, dst_ip, dst_ip6, dst_port, proto, bytes_out, bytes_in, conn_state "
        f"FROM read_parquet({ws.flow_files()}) ORDER BY ALL"
    ).fetchall()


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
    second = (
        "#separator \\x09\n#fields\tid.resp_h\tid.resp_p\tts\tid.orig_h\tid.orig_p\tproto\n"
        "#types\taddr\tport\ttime\taddr\tport\tenum\n"
        "10.9.9.9\t443\t1709251300.5\t10.0.0.7\t5555\ttcp\n"
    )
    both = tmp_path / "both.log"
    both.write_text(text + second)
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [both])
    assert s.rows == 4 and s.quarantined == 0
    rows = duckdb.sql(
        f"SELECT dst_port, src_port, bytes_out FROM read_parquet({ws.flow_files()}) ORDER BY ts"
    ).fetchall()
    assert rows[-1] == (443, 5555, None)


def test_json_nested_id_and_iso_timestamps(tmp_path: Path) -> None:
    p = tmp_path / "conn.json"
    recs = [
        {
            "ts": "2024-03-01T00:00:01.500000Z",
            "uid": "C1",
            "id": {"orig_h": "10.0.0.1", "orig_p": 1, "resp_h": "2001:db8::1", "resp_p": 443},
            "proto": "tcp",
            "orig_bytes": 10,
            "resp_bytes": 20,
            "conn_state": "SF",
        },
        {
            "ts": 1709251202.0,
            "uid": "C2",
            "id": {"orig_h": "10.0.0.1", "orig_p": 2, "resp_h": "10.0.0.3", "resp_p": 80},
            "proto": "tcp",
            "conn_state": "S0",
        },
    ]
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n{broken\n")
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [p])
    assert s.rows == 2 and s.quarantined == 1
    rows = duckdb.sql(
        f"SELECT epoch_ms(ts), dst_ip6 IS NOT NULL, dst_port FROM read_parquet({ws.flow_files()}) ORDER BY ts"
    ).fetchall()
    assert rows == [(1709251201500, True, 443), (1709251202000, False, 80)]
    assert _quarantine(ws) == [(3, _quarantine(ws)[0][1])] and "JSON" in _quarantine(ws)[0][1]


def test_hostile_values_are_quarantined_not_stored(tmp_path: Path) -> None:
    rows = [
        conn(1709251200.0, "10.0.0.1", 1, "10.0.0.2", 80),
        conn(253402300800.0, "10.0.0.1", 2, "10.0.0.2", 80),  # year 10000
        conn(-5.0, "10.0.0.1", 3, "10.0.0.2", 80),
        conn(1709251200.0, "10.0.0.1", 70000, "10.0.0.2", 80),
        conn(1709251200.0, "999.1.1.1", 4, "10.0.0.2", 80),
        conn(1709251200.0, "10.0.0.1", 5, "10.0.0.2", 80, ob=-7),
    ]
    p = write_tsv(tmp_path / "c.log", rows)
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [p])
    assert s.rows == 1 and s.quarantined == 5
    reasons = [r for _, r in _quarantine(ws)]
    assert (
        any("ts" in r for r in reasons)
        and any("src_port" in r for r in reasons)
        and any("src_ip" in r for r in reasons)
    )


def test_json_lines_via_writer(tmp_path: Path) -> None:
    p = write_json(
        tmp_path / "c.json", [conn(1709251200.0 + i, "10.0.0.1", 1000 + i, "10.0.0.2", 443) for i in range(5)]
    )
    ws = Workspace(tmp_path / "ws")
    assert ingest_paths(ws, [p]).rows == 5


def test_other_zeek_logs_are_not_taken_for_flows(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [WRCCDC / "zeek-default/weird.log.gz", WRCCDC / "zeek-default/known_hosts.log.gz"])
    assert s.rows == 0
    assert all("Zeek" in f.reason and "not telemetry" in f.reason for f in s.files)
    weird_json = tmp_path / "weird.json"
    weird_json.write_text(
        json.dumps(
            {
                "ts": 1709251200.0,
                "uid": "C1",
                "id.orig_h": "10.0.0.1",
                "id.orig_p": 1,
                "id.resp_h": "10.0.0.2",
                "id.resp_p": 80,
                "name": "bad_TCP_checksum",
            }
        )
        + "\n"
    )
    assert ingest_paths(ws, [weird_json]).rows == 0


# --- Zeek JSON with LogAscii::json_timestamps=JSON::TS_ISO8601 --------------------------

ISO_FORMS = {
    "z_micro": lambda e: _iso(e, "%Y-%m-%dT%H:%M:%S.%fZ"),
    "z_whole": lambda e: _iso(e, "%Y-%m-%dT%H:%M:%SZ"),
    "offset_utc": lambda e: _iso(e, "%Y-%m-%dT%H:%M:%S.%f+00:00"),
    "offset_plus2": lambda e: _iso(e + 7200, "%Y-%m-%dT%H:%M:%S.%f+02:00"),
}


def _iso(epoch: float, fmt: str) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime(fmt)


def _json_rows(n: int, ts_of, *, nested: bool = False, frac: float = 0.25) -> list[dict]:
    out = []
    for i in range(n):
        epoch = 1709251200 + i * 7 + frac
        r = {
            k: v
            for k, v in conn(epoch, "10.0.0.1", 1000 + i % 60000, "198.51.100.7", 443, ob=i).items()
            if v is not None
        }
        r["ts"] = ts_of(epoch)
        if nested:
            r["id"] = {k[3:]: r.pop(k) for k in list(r) if k.startswith("id.")}
        out.append(r)
    return out


def _count_one_record(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = zeek._one_record

    def counting(line: bytes):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return real(line)

    monkeypatch.setattr(zeek, "_one_record", counting)
    return calls


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested_id"])
@pytest.mark.parametrize("form", list(ISO_FORMS), ids=list(ISO_FORMS))
def test_json_iso_timestamps_take_the_block_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str, nested: bool
) -> None:
    """ISO 8601 ``ts`` is parsed a block at a time (not line by line) and gives the same flows as epoch ``ts``."""
    n = 3000
    iso = tmp_path / "iso.json"
    frac = 0.0 if form == "z_whole" else 0.25
    iso.write_text("".join(json.dumps(r) + "\n" for r in _json_rows(n, ISO_FORMS[form], nested=nested, frac=frac)))
    epoch = tmp_path / "epoch.json"
    epoch.write_text("".join(json.dumps(r) + "\n" for r in _json_rows(n, lambda e: e, nested=nested, frac=frac)))
    calls = _count_one_record(monkeypatch)
    ws_iso, ws_epoch = Workspace(tmp_path / "wi"), Workspace(tmp_path / "we")
    s = ingest_paths(ws_iso, [iso])
    assert (s.rows, s.quarantined) == (n, 0)
    assert calls[0] == 0  # not one line went through the one-record fallback
    ingest_paths(ws_epoch, [epoch])
    assert _flows(ws_iso) == _flows(ws_epoch)


def test_json_iso_block_with_bad_lines_quarantines_only_those(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _json_rows(400, ISO_FORMS["z_micro"])
    lines = [json.dumps(r) for r in rows]
    bad = {
        50: json.dumps(dict(rows[0], ts="yesterday")),
        120: '{"ts": "2024-03-01T00:00:00Z", "id.orig_h": "10.0.0.1", "id.orig_',  # truncated
        200: json.dumps(dict(rows[0], ts=1709251300.5, **{"id.orig_p": 4242})),  # an epoch line among ISO ones: kept
        250: json.dumps(dict(rows[0], **{"id.orig_h": "999.1.1.1"})),
        300: json.dumps(dict(rows[0], ts="2024-13-01T00:00:00Z")),
        330: "not json at all",
    }
    for i in sorted(bad):  # ascending: each bad line ends up at index i
        lines.insert(i, bad[i])
    p = tmp_path / "conn.json"
    p.write_text("\n".join(lines) + "\n")
    calls = _count_one_record(monkeypatch)
    whole = Workspace(tmp_path / "whole")
    s = ingest_paths(whole, [p])
    assert (s.rows, s.quarantined) == (401, 5)
    got = {pos: reason for pos, reason in _quarantine(whole)}
    assert sorted(got) == [51, 121, 251, 301, 331]  # 1-based line numbers of the bad lines
    assert got[51] == "bad ts" and got[301] == "bad ts" and got[251] == "bad src_ip"
    assert got[121].startswith("bad JSON record") and got[331].startswith("bad JSON record")
    assert calls[0] <= 2  # only the two lines that are not JSON reach the fallback
    ports = duckdb.sql(f"SELECT epoch_ms(ts) FROM read_parquet({whole.flow_files()}) WHERE src_port = 4242").fetchall()
    assert ports == [(1709251300500,)]
    monkeypatch.setattr(zeek, "JSON_CHUNK_BYTES", 1500)  # many chunks: same flows, same quarantine
    chunked = Workspace(tmp_path / "chunked")
    ingest_paths(chunked, [p])
    assert _flows(chunked) == _flows(whole) and _quarantine(chunked) == _quarantine(whole)


def test_json_mixed_ts_kinds_give_one_batch_per_chunk(tmp_path: Path) -> None:
    """Even a file that alternates epoch and ISO ``ts`` line by line (the worst case for the
    block parser) is normalized a chunk at a time: no one-row batches, nothing lost."""
    from sightline.ingest.base import ReaderContext

    rows = _json_rows(500, ISO_FORMS["z_micro"])
    for i in range(0, 500, 2):
        rows[i]["ts"] = 1709251200 + i * 7 + 0.25
    p = tmp_path / "mixed.json"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open(p, "rb") as fh:
        batches = list(zeek.read_zeek_json(ReaderContext(path=p, stream=fh)))
    assert len(batches) == 1 and batches[0].num_rows == 500
    assert batches[0].column(0).to_pylist() == sorted(batches[0].column(0).to_pylist())


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("2024-03-01T00:00:01.500000Z", 1709251201.5),
        ("2024-03-01T00:00:01Z", 1709251201.0),
        ("2024-03-01T00:00:01.5+00:00", 1709251201.5),
        ("2024-03-01T02:00:01+0200", 1709251201.0),
        ("2024-02-29T19:00:01-05:00", 1709251201.0),
        ("2024-03-01 00:00:01.25", 1709251201.25),  # no zone: UTC, as Zeek writes
        ("2024-03-01T00:00Z", 1709251200.0),
        ("1709251201.5", 1709251201.5),
    ],
    ids=[
        "z_micro",
        "z_whole",
        "offset_colon",
        "offset_plus",
        "offset_minus",
        "no_zone_space",
        "no_seconds",
        "epoch_text",
    ],
)
def test_ts_text_to_seconds(text: str, seconds: float) -> None:
    import pyarrow as pa

    one = zeek._ts_seconds(pa.array([text]))
    assert one.type == pa.float64() and one.to_pylist() == [pytest.approx(seconds, abs=1e-6)]
    mixed = zeek._ts_seconds(pa.array([text, "yesterday", None]))  # a bad value stays text for normalize
    assert mixed.type == pa.string() and mixed[1].as_py() == "yesterday" and mixed[2].as_py() is None
    assert float(mixed[0].as_py()) == pytest.approx(seconds, abs=1e-6)


def test_json_quoted_numbers_take_the_block_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shipper that quotes numbers ("id.orig_p": "443") is read a block at a time too; a
    value that is no number costs only its row, with the field named."""
    rows = _json_rows(2000, lambda e: e)
    for r in rows:
        r["id.orig_p"], r["id.resp_p"], r["orig_bytes"] = str(r["id.orig_p"]), str(r["id.resp_p"]), str(r["orig_bytes"])
    rows[700]["id.orig_p"] = "x"
    quoted = tmp_path / "quoted.json"
    quoted.write_text("".join(json.dumps(r) + "\n" for r in rows))
    calls = _count_one_record(monkeypatch)
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [quoted])
    assert (s.rows, s.quarantined, calls[0]) == (1999, 1, 0)
    assert _quarantine(ws) == [(701, "bad src_port")]
    plain = tmp_path / "plain.json"
    plain.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(_json_rows(2000, lambda e: e)) if i != 700))
    ingest_paths(ref := Workspace(tmp_path / "ref"), [plain])
    assert _flows(ws) == _flows(ref)


def test_json_millisecond_timestamps(tmp_path: Path) -> None:
    """``LogAscii::json_timestamps=JSON::TS_MILLIS``: integer ms since the epoch give the same
    flows as epoch seconds; one absurd seconds value among seconds is still quarantined."""
    n = 2000
    ms = tmp_path / "ms.json"
    ms.write_text("".join(json.dumps(r) + "\n" for r in _json_rows(n, lambda e: int(round(e * 1000)))))
    sec = tmp_path / "sec.json"
    sec.write_text("".join(json.dumps(r) + "\n" for r in _json_rows(n, lambda e: e)))
    ws_ms, ws_sec = Workspace(tmp_path / "wm"), Workspace(tmp_path / "ws")
    s = ingest_paths(ws_ms, [ms])
    assert (s.rows, s.quarantined) == (n, 0)
    ingest_paths(ws_sec, [sec])
    assert _flows(ws_ms) == _flows(ws_sec)
    rows = _json_rows(50, lambda e: e)
    rows[7]["ts"] = 1709251200123  # a corrupt value, not a ms log
    bad = tmp_path / "bad.json"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = ingest_paths(Workspace(tmp_path / "wb"), [bad])
    assert (s.rows, s.quarantined) == (49, 1)
