"""pcapng read natively on every pcap path, and names (DNS answers, TLS SNI, HTTP Host) from
packets, so domain indicators match on pcap input.

Real captures: ``akvorado/data+templates.pcapng`` is akvorado's NetFlow v9 export capture
(the ``.pcap`` beside it) written as pcapng by Wireshark's editcap; ``slips/test-cc-capture-
2-cut.pcapng`` is a cut of Stratosphere's ``test-cc-capture-2.pcap`` (TLS sessions to
``testing.com`` and DNS answers) written as pcapng by editcap (see SOURCES.md).  The HTTP
request is made here with dpkt (no small public capture with a plain-HTTP Host was at hand).
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import dpkt
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from sightline.cli import app
from sightline.ingest import ingest_paths
from sightline.ingest.inputs import detect_file_format
from sightline.ingest.pcap_names import dns_answers, http_host, tls_sni
from sightline.store import Workspace, read_parts

from .datafiles import AKVORADO, SLIPS

NF_PCAPNG = AKVORADO / "data+templates.pcapng"
SNI_PCAPNG = SLIPS / "test-cc-capture-2-cut.pcapng"


def _flows(ws: Workspace) -> pa.Table:
    t = read_parts(ws.flow_files())
    return t.drop_columns(["source_file"]).sort_by([("ts", "ascending"), ("src_port", "ascending")])


def _names(ws: Workspace) -> pa.Table:
    files = ws.name_files()
    if not files:
        return pa.table({"kind": pa.array([], pa.string()), "name": pa.array([], pa.string())})
    t = pa.concat_tables([pq.read_table(f) for f in files])
    return t.drop_columns(["source_file"]).sort_by([("ts", "ascending"), ("kind", "ascending"), ("name", "ascending")])


def _as_classic_pcap(src: Path, dst: Path) -> Path:
    """The same packets and timestamps in classic pcap (dpkt), to compare the two readers."""
    r = dpkt.pcapng.Reader(src.open("rb"))
    with dst.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=r.datalink())
        for ts, pkt in r:
            w.writepkt(pkt, ts)
    return dst


def test_netflow_v9_in_pcapng_is_decoded_as_export_packets(tmp_path: Path) -> None:
    assert detect_file_format(NF_PCAPNG).name == "netflow_pcap"
    a, b = Workspace(tmp_path / "ng"), Workspace(tmp_path / "classic")
    sa = ingest_paths(a, [NF_PCAPNG])
    sb = ingest_paths(b, [AKVORADO / "data+templates.pcap"])
    assert sa.files[0].format == "netflow_pcap" and sa.rows == sb.rows == 10
    fa, fb = _flows(a), _flows(b)
    assert fa.drop_columns(["source_format"]).equals(fb.drop_columns(["source_format"]))
    # the exporter -> collector UDP datagrams are not flows of their own
    assert set(fa.column("source_format").to_pylist()) == {"netflow_v9"}


def test_pcapng_and_pcap_give_the_same_flows_and_names(tmp_path: Path) -> None:
    classic = _as_classic_pcap(SNI_PCAPNG, tmp_path / "same.pcap")
    a, b = Workspace(tmp_path / "ng"), Workspace(tmp_path / "classic")
    ingest_paths(a, [SNI_PCAPNG])
    ingest_paths(b, [classic])
    assert _flows(a).equals(_flows(b)) and _flows(a).num_rows == 65
    na, nb = _names(a), _names(b)
    assert na.equals(nb)
    pairs = list(zip(na.column("kind").to_pylist(), na.column("name").to_pylist()))
    assert pairs.count(("tls_sni", "testing.com")) == 5
    assert ("dns_answer", "urlhaus-api.abuse.ch") in pairs
    sni = na.filter(pa.compute.equal(na.column("kind"), "tls_sni")).to_pylist()[0]
    assert sni["dst_port"] == 443 and sni["src_ip"] is not None and sni["dst_ip"] is not None


def test_domain_indicator_matches_pcap_through_sni(tmp_path: Path) -> None:
    intel = tmp_path / "domains.txt"
    intel.write_text("testing.com\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["hunt", "-t", str(SNI_PCAPNG), "-i", str(intel), "--workspace", str(tmp_path / "ws"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    assert doc["inputs"]["derived_indicators"] == 1 and doc["inputs"]["matched_flows"] == 5
    evidence = [e for o in doc["organizations"] for h in o["hosts"] for e in h["evidence"]]
    assert evidence and {e["indicator"] for e in evidence} == {"testing.com"}
    assert not doc.get("stale_matches")  # the session began a moment before its SNI was seen


def _http_capture(path: Path, host: str) -> Path:
    """Three HTTP requests to ``host`` (each a handshake, a GET with Host, an answer), made with dpkt."""
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh)
        t = 1_709_251_200.0
        cli, srv = bytes([10, 0, 0, 5]), bytes([198, 51, 100, 80])
        for k in range(3):
            sport = 40000 + k

            def seg(src: bytes, dst: bytes, sp: int, dp: int, flags: int, data: bytes = b"") -> bytes:
                tcp = dpkt.tcp.TCP(sport=sp, dport=dp, flags=flags, data=data, seq=1, ack=1)
                ip = dpkt.ip.IP(src=src, dst=dst, p=6, data=tcp)
                ip.len = len(ip)
                return bytes(dpkt.ethernet.Ethernet(src=b"\x00" * 6, dst=b"\x00" * 6, type=0x0800, data=ip))

            req = f"GET /gate.php HTTP/1.1\r\nHost: {host}:8080\r\nUser-Agent: x\r\n\r\n".encode()
            for dt, pkt in (
                (0.00, seg(cli, srv, sport, 8080, dpkt.tcp.TH_SYN)),
                (0.01, seg(srv, cli, 8080, sport, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK)),
                (0.02, seg(cli, srv, sport, 8080, dpkt.tcp.TH_ACK)),
                (0.03, seg(cli, srv, sport, 8080, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, req)),
                (
                    0.05,
                    seg(
                        srv,
                        cli,
                        8080,
                        sport,
                        dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH,
                        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 900,
                    ),
                ),
                (0.06, seg(cli, srv, sport, 8080, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)),
                (0.07, seg(srv, cli, 8080, sport, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)),
            ):
                w.writepkt(pkt, t + k * 300 + dt)
    return path


def test_http_host_feeds_domain_matching(tmp_path: Path) -> None:
    cap = _http_capture(tmp_path / "http.pcap", "c2.evil-example.net")
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [cap])
    names = _names(ws).to_pylist()
    hosts = [(n["kind"], n["name"], n["dst_port"]) for n in names if n["kind"] == "http_host"]
    assert hosts == [("http_host", "c2.evil-example.net", 8080)] * 3
    intel = tmp_path / "d.txt"
    intel.write_text("evil-example.net\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["hunt", "-i", str(intel), "--workspace", str(tmp_path / "ws"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    assert doc["inputs"]["matched_flows"] == 3
    assert {e["indicator"] for o in doc["organizations"] for h in o["hosts"] for e in h["evidence"]} == {
        "evil-example.net"
    }


def test_name_parsers_never_raise_on_garbage() -> None:
    rnd = random.Random(7)
    hello = b"\x16\x03\x01\x00\x40\x01\x00\x00\x3c\x03\x03" + b"\x00" * 32
    for _ in range(3000):
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 120)))
        for p in (blob, hello + blob, b"GET / HTTP/1.1\r\nHost:" + blob, b"\x00\x01\x81\x80" + blob):
            tls_sni(p)
            http_host(p)
            dns_answers(p)
    assert http_host(b"GET / HTTP/1.1\r\nHost: 198.51.100.7\r\n\r\n") is None  # an address, not a name
    assert http_host(b"GET / HTTP/1.1\r\nhost: WWW.Example.COM.\r\n\r\n") == "www.example.com"


def test_truncated_pcapng_keeps_what_was_read(tmp_path: Path) -> None:
    data = SNI_PCAPNG.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) // 2 + 7])
    ws = Workspace(tmp_path / "ws")
    s = ingest_paths(ws, [cut])
    assert s.files[0].format == "pcap" and s.rows > 0 and s.files[0].quarantined == 1
    assert io.BytesIO(data).read(4) == b"\x0a\x0d\x0d\x0a"


def test_url_indicator_matches_the_http_request_for_it(tmp_path: Path) -> None:
    cap = _http_capture(tmp_path / "http.pcap", "c2.evil-example.net")
    ws = Workspace(tmp_path / "ws")
    ingest_paths(ws, [cap])
    urls = [n["name"] for n in _names(ws).to_pylist() if n["kind"] == "http_url"]
    assert urls == ["http://c2.evil-example.net:8080/gate.php"] * 3
    intel = tmp_path / "urls.csv"
    intel.write_text(
        "indicator,type\nhxxp://c2.evil-example.net:8080/gate.php,url\nhttp://c2.evil-example.net:8080/other.php,url\n"
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["hunt", "-i", str(intel), "--workspace", str(tmp_path / "ws"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    assert doc["inputs"]["derived_indicators"] == 1 and doc["inputs"]["matched_flows"] == 3
    assert {e["indicator"] for o in doc["organizations"] for h in o["hosts"] for e in h["evidence"]} == {
        "http://c2.evil-example.net:8080/gate.php"
    }
