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
from sightline.ingest.store import read_parts
from sightline.workspace import Workspace

NFCAPD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "netflow" / "slips-test1-malicious.nfdump"
needs_nfdump = pytest.mark.skipif(shutil.which("nfdump") is None, reason="nfdump binary not installed (apt-get install nfdump)")

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
@pytest.mark.skipif(not NFCAPD.exists(), reason="shared nfcapd file not present")
def test_nfcapd_file_matches_nfdump_totals(tmp_path):
    out = subprocess.run(["nfdump", "-r", str(NFCAPD), "-o", "csv"], capture_output=True, text=True,
                         env=dict(os.environ, TZ="UTC"), check=True).stdout
    flows, byts, pkts = (int(x) for x in out.strip().splitlines()[-1].split(",")[:3])
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [NFCAPD])
    assert s.files[0].format == "nfcapd" and s.rows == flows == 4593
    import pyarrow.compute as pc

    t = read_parts(ws.flow_files())
    assert (pc.sum(t["bytes_out"]).as_py(), pc.sum(t["packets_out"]).as_py()) == (byts, pkts)
    assert ingest_paths(ws, [NFCAPD]).rows == 0
