"""nfdump CSV export (both header layouts) and nfcapd files through the nfdump tool."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from sightline.ingest import detect_file_format, ingest_paths
from sightline.ingest.base import ReaderContext
from sightline.ingest.nfdump import read_nfdump_csv
from sightline.store import Workspace, read_parts

from .datafiles import SLIPS

NFCAPD = SLIPS / "test1-malicious.nfdump"
needs_nfdump = pytest.mark.skipif(
    shutil.which("nfdump") is None, reason="nfdump binary not installed (apt-get install nfdump)"
)

SHORT = (
    "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,nh,nhb,svln,dvln,"
    "ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr\n"
    "2018-01-12 15:37:30.250,2018-01-12 15:37:31.250,1.000,147.32.80.119,147.32.82.62,52324,902,TCP,......S.,0,0,1,60,0,0,0,0,"
    "0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,"
    "0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0.000,0.000,0.000,1.2.3.4,0/0,1,1970-01-01 00:00:00.000\n"
    "2018-01-12 15:37:30,2018-01-12 15:37:30,0.000,2001:db8::5,2001:db8::6,53,5353,UDP,........,0,0,3,300,2,200,0,0,"
    "0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,"
    "0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0.000,0.000,0.000,1.2.3.4,0/0,1,1970-01-01 00:00:00.000\n"
    "not,a,row\n"
    "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n2,360,4,0,0,0\n"
)
LONG = (
    "firstSeen,lastSeen,duration,srcAddr,dstAddr,srcPort,dstPort,proto,flags,packets,bytes\n"
    "1515771450250,1515771451250,1.000,147.32.80.119,147.32.82.62,52324,902,TCP,...A..SF,4,240\n"
    "2018-01-12 15:37:30.000,2018-01-12 15:37:30.000,0.000,bad-ip,147.32.82.62,1,2,UDP,........,1,60\n"
)


def _read(text: str) -> tuple[list[dict], ReaderContext]:
    ctx = ReaderContext(Path("x.csv"), io.BytesIO(text.encode()))
    b = list(read_nfdump_csv(ctx))
    return (pa.Table.from_batches(b).to_pylist() if b else []), ctx


def test_short_header_layout_with_summary_and_bad_row(tmp_path):
    rows, ctx = _read(SHORT)
    assert len(rows) == 2
    a, b = rows
    assert a["ts"].isoformat() == "2018-01-12T15:37:30.250000+00:00" and a["conn_state"] == "S0"
    assert (a["bytes_out"], a["packets_out"], a["bytes_in"]) == (60, 1, None)
    assert b["src_ip6"] is not None and (b["bytes_in"], b["packets_in"]) == (200, 2)
    assert [(q[0], q[2].split(",")[0]) for q in ctx._bad] == [(4, "expected 48 fields")]
    p = tmp_path / "flows.csv"
    p.write_text(SHORT)
    assert detect_file_format(p).name == "nfdump_csv"


def test_long_header_layout_epoch_ms_and_bad_ip():
    rows, ctx = _read(LONG)
    assert len(rows) == 1 and rows[0]["conn_state"] == "SF" and rows[0]["duration_s"] == 1.0
    assert rows[0]["ts"].isoformat() == "2018-01-12T15:37:30.250000+00:00"
    assert ctx.bad_count == 1 and "src_ip" in ctx._bad[0][2]


@needs_nfdump
def test_nfcapd_file_matches_nfdump_totals(tmp_path):
    out = subprocess.run(
        ["nfdump", "-r", str(NFCAPD), "-o", "csv"],
        capture_output=True,
        text=True,
        env=dict(os.environ, TZ="UTC"),
        check=True,
    ).stdout
    flows, byts, pkts = (int(x) for x in out.strip().splitlines()[-1].split(",")[:3])
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [NFCAPD])
    assert s.files[0].format == "nfcapd" and s.rows == flows == 4593
    import pyarrow.compute as pc

    t = read_parts(ws.flow_files())
    assert (pc.sum(t["bytes_out"]).as_py(), pc.sum(t["packets_out"]).as_py()) == (byts, pkts)
    assert ingest_paths(ws, [NFCAPD]).rows == 0


# --- nfdump -q -o csv: no header line ---------------------------------------------------

HEADERLESS = "".join(SHORT.splitlines(keepends=True)[1:3])  # the two data rows, as `nfdump -q -o csv` writes them


def test_headerless_csv_is_read_by_the_fixed_layout(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text(HEADERLESS)
    assert detect_file_format(p).name == "nfdump_csv"
    rows, ctx = _read(HEADERLESS)
    with_header, _ = _read(SHORT)
    assert ctx.bad_count == 0 and rows == with_header


@pytest.mark.parametrize(
    "text",
    ["2018-01-12 15:37:30,10.0.0.1,10.0.0.2,80\n", "just,some,csv,here\n1,2,3,4\n"],
    ids=["other-columns", "no-nfdump"],
)
def test_headerless_other_layout_is_refused_whole_not_quarantined(tmp_path, text):
    p = tmp_path / "x.csv"
    p.write_text(text)
    ws = Workspace(tmp_path / "ws")
    f = ingest_paths(ws, [p], fmt_name="nfdump_csv").files[0]
    assert (f.rows, f.quarantined, f.skipped) == (0, 0, False)
    assert "no header line" in f.reason and "without -q" in f.reason
    assert ws.manifest().get("files", {}) == {}  # not "already ingested" once exported properly
    from typer.testing import CliRunner

    from sightline.cli import app

    res = CliRunner().invoke(app, ["ingest", str(p), "--format", "nfdump_csv", "--workspace", str(ws.root)])
    assert res.exit_code == 2 and "no header line" in " ".join(res.output.split())


@needs_nfdump
def test_real_nfdump_q_csv_matches_the_csv_with_header(tmp_path):
    env = dict(os.environ, TZ="UTC")
    for name, args in (("h.csv", ["-o", "csv"]), ("q.csv", ["-q", "-o", "csv"])):
        out = subprocess.run(["nfdump", "-r", str(NFCAPD), *args], capture_output=True, check=True, env=env).stdout
        (tmp_path / name).write_bytes(out)
    assert not (tmp_path / "q.csv").read_bytes().startswith(b"ts,")
    totals = []
    for name in ("h.csv", "q.csv"):
        ws = Workspace(tmp_path / f"ws-{name}")
        s = ingest_paths(ws, [tmp_path / name])
        assert s.files[0].format == "nfdump_csv" and s.quarantined == 0
        order = [("ts", "ascending"), ("src_port", "ascending"), ("dst_port", "ascending")]
        t = read_parts(ws.flow_files()).sort_by(order)
        totals.append(t.drop_columns(["source_file"]))
    assert totals[0].num_rows == 4593 and totals[0].equals(totals[1])


# --- nfcapd through nfdump: milliseconds, UTC ---------------------------------------------

FMT_ROWS = (  # nfdump 1.7.1 -q -N -6 -o fmt:... output (padded columns, protocol numbers)
    "2023-11-14 22:13:38.643,2023-11-14 22:15:02.357,          83.714,                            10.0.105.89,"
    "                           203.0.113.32,  1025,    53,6    ,...AP.SF,     130,  664752,       0,       0\n"
    "2023-11-14 22:18:54.284,2023-11-14 22:20:29.970,          95.686,                            10.0.43.147,"
    "                          203.0.113.215,     0,   8.0,1    ,........,     909,  926770,       0,       0\n"
    "2023-11-14 22:18:54.001,2023-11-14 22:18:54.001,           0.000,                 2001:288:4ed3:b3::756c,"
    "                     2a04:4e42:8b9::228,   443, 50000,17   ,........,       3,    4200,       2,     100\n"
    "2023-11-14 22:18:54.001,2023-11-14 22:18:54.001,           0.000,                 2001:288:4ed3:b3::756c,"
    "                     2a04:4e42:8b9::228,     0,   128.0,58   ,........,       1,      64,       0,       0\n"
)


def test_nfcapd_fmt_output_keeps_ms_and_maps_protocol_numbers():
    from sightline.ingest.nfdump import NFCAPD_FIELDS, _read_csv_text

    ctx = ReaderContext(Path("x.nfcapd"), io.BytesIO(b""))
    b = list(_read_csv_text(ctx, io.BytesIO(FMT_ROWS.encode()), "nfcapd", tuple(n for n, _ in NFCAPD_FIELDS)))
    rows = pa.Table.from_batches(b).to_pylist()
    assert ctx.bad_count == 0 and len(rows) == 4
    assert [r["ts"].isoformat() for r in rows[:2]] == [
        "2023-11-14T22:13:38.643000+00:00",
        "2023-11-14T22:18:54.284000+00:00",
    ]
    assert [r["proto"] for r in rows] == ["tcp", "icmp", "udp", "icmp"]
    assert (rows[0]["conn_state"], rows[0]["bytes_out"], rows[0]["duration_s"]) == ("SF", 664752, 83.714)
    assert (rows[1]["dst_port"], rows[3]["dst_port"]) == (8, 128)
    assert (rows[2]["bytes_in"], rows[2]["packets_in"], rows[0]["bytes_in"]) == (100, 2, None)


@needs_nfdump
def test_nfcapd_keeps_milliseconds_in_utc_whatever_the_tz(tmp_path, monkeypatch):
    """The start times are nfdump's own epoch milliseconds (``-o pipe``, no zone involved),
    even when sightline runs under another TZ."""
    pipe = subprocess.run(
        ["nfdump", "-r", str(NFCAPD), "-q", "-o", "pipe"], capture_output=True, text=True, check=True
    ).stdout
    want = sorted(int(line.split("|")[1]) for line in pipe.splitlines() if line.strip())
    assert len(want) == 4593 and any(ms % 1000 for ms in want)
    monkeypatch.setenv("TZ", "Asia/Taipei")
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [NFCAPD])
    assert s.rows == 4593 and s.quarantined == 0
    got = sorted(v // 1000 for v in read_parts(ws.flow_files()).column("ts").cast(pa.int64()).to_pylist())
    assert got == want
