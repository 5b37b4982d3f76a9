"""NetFlow v5/v9/IPFIX: real export captures, round trips, sampling, robustness, store integration."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sightline.ingest import detect_file_format, ingest_paths
from sightline.ingest.base import ReaderContext
from sightline.ingest.netflow import NetflowDecoder, read_netflow_pcap
from sightline.ingest.nfexport import encode_export, pcap_of_datagrams, synthetic_flows
from sightline.store import Workspace

from .datafiles import AKVORADO as AKV
from .datafiles import SLIPS

KEY = ["ts", "src_ip", "src_ip6", "src_port", "dst_ip", "dst_ip6", "dst_port", "proto", "bytes_out", "packets_out"]


def _read(data: bytes, name: str = "x.pcap") -> tuple[pa.Table, ReaderContext]:
    ctx = ReaderContext(Path(name), io.BytesIO(data))
    batches = list(read_netflow_pcap(ctx))
    t = pa.Table.from_batches(batches) if batches else pa.table({})
    return t, ctx


def _cat(*names: str) -> bytes:
    parts = [(AKV / n).read_bytes() for n in names]
    return parts[0] + b"".join(p[24:] for p in parts[1:])


def _sorted(t: pa.Table, cols: list[str]) -> pa.Table:
    return t.select(cols).sort_by([("ts", "ascending"), ("src_port", "ascending"), ("dst_port", "ascending")])


def test_real_v5_capture_decodes_all_records():
    t, ctx = _read((AKV / "nfv5.pcap").read_bytes())
    assert t.num_rows == 29 and ctx.bad_count == 0
    assert set(t.column("source_format").to_pylist()) == {"netflow_v5"}
    assert t.column("bytes_in").null_count == 29  # unidirectional
    assert t.column("sensor").to_pylist()[0] == "10.19.144.41"  # the exporter


def test_real_v9_template_then_data_and_options_sampling():
    t, ctx = _read(_cat("template.pcap", "data.pcap"))
    assert t.num_rows == 4 and ctx.bad_count == 0
    assert t.column("bytes_out").to_pylist()[0] == 1500
    # the options template + data announce 1-in-30000 sampling: counts are scaled
    ts, ctx2 = _read(_cat("options-template.pcap", "options-data.pcap", "template.pcap", "data.pcap"))
    assert ctx2.bad_count == 0
    assert ts.column("bytes_out").to_pylist()[0] == 1500 * 30000
    assert ts.column("packets_out").to_pylist()[0] == 30000


def test_real_v9_data_without_template_is_quarantined():
    t, ctx = _read((AKV / "data.pcap").read_bytes())
    assert t.num_rows == 0
    assert ctx.bad_count == 1 and "before its template" in ctx._bad[0][2]


def test_real_ipfix_biflow_from_ipfixprobe():
    t, ctx = _read(_cat("ipfixprobe-templates.pcap", "ipfixprobe-data.pcap"))
    assert t.num_rows == 4 and ctx.bad_count == 0
    rows = {(r["src_port"], r["dst_port"]): r for r in t.to_pylist()}
    smtp = rows[(1470, 25)]
    assert (smtp["bytes_out"], smtp["bytes_in"], smtp["packets_out"], smtp["packets_in"]) == (21673, 1546, 28, 25)
    assert smtp["conn_state"] == "SF"


def test_autodetect_export_pcap_vs_traffic_pcap():
    assert detect_file_format(AKV / "nfv5.pcap").name == "netflow_pcap"
    traffic = SLIPS / "test8-malicious.pcap"
    assert detect_file_format(traffic).name == "pcap"


@pytest.mark.parametrize(
    "version,biflow", [(5, False), (9, False), (10, False), (10, True)], ids=["v5", "v9", "ipfix", "ipfix-biflow"]
)
def test_round_trip_v4_v6(version, biflow):
    src = synthetic_flows(3000, v6_every=0 if version == 5 else 4, biflow=biflow)
    t, ctx = _read(pcap_of_datagrams(encode_export(src, version, biflow=biflow)))
    assert ctx.bad_count == 0
    cols = KEY + (["bytes_in", "packets_in"] if biflow else ["conn_state"])
    assert _sorted(t, cols).equals(_sorted(src, cols))


def test_sampling_rate_scales_counts_and_is_recorded():
    src = synthetic_flows(500)
    rate = 64
    pk = encode_export(src, 9, sampling_rate=rate)
    dec = NetflowDecoder(lambda *a: None)
    for p in pk:
        dec.feed(p, "192.0.2.9", 0)
    out = dec.flush()
    expect = pc.multiply(pc.divide(src.column("bytes_out"), rate), rate)
    assert sorted(out.column("bytes_out").to_pylist()) == sorted(expect.to_pylist())
    assert dec.stats["sampling_rates"] == {"192.0.2.9": rate}


def test_template_refresh_with_new_layout_applies_to_later_data():
    a = synthetic_flows(50, seed=1)
    b = synthetic_flows(50, seed=2, biflow=True)
    dec = NetflowDecoder(lambda *x: None)
    for p in encode_export(a, 10, template_every=1):
        dec.feed(p, "192.0.2.9", 0)
    for p in encode_export(b, 10, biflow=True, template_every=1):  # same template id, new layout
        dec.feed(p, "192.0.2.9", 0)
    out = dec.flush()
    assert out.num_rows == 100
    assert out.column("bytes_in").null_count == 50


def test_templates_are_per_exporter():
    src = synthetic_flows(30)
    pk = encode_export(src, 9)
    dec = NetflowDecoder(lambda *x: None)
    dec.feed(pk[0], "192.0.2.1", 0)  # carries the template for exporter 1 only
    bad: list = []
    dec2 = NetflowDecoder(lambda *x: bad.append(x))
    dec2.templates = dec.templates
    data_only = pk[1] if len(pk) > 1 else pk[0]
    dec2.feed(data_only, "192.0.2.2", 7)
    assert dec2.flush().num_rows == 0 or len(pk) == 1
    assert any("before its template" in b[1] for b in bad) or len(pk) == 1


def test_enterprise_and_variable_length_fields_are_skipped():
    # IPFIX template: src4, dst4, an enterprise field (PEN 9, 4 bytes), a variable-length
    # string (IE 82 interfaceName), bytes, packets, proto
    fields = (
        struct.pack(">HH", 8, 4)
        + struct.pack(">HH", 12, 4)
        + struct.pack(">HHI", 0x8000 | 100, 4, 9)
        + struct.pack(">HH", 82, 65535)
        + struct.pack(">HH", 1, 8)
        + struct.pack(">HH", 2, 8)
        + struct.pack(">HH", 4, 1)
    )
    tset = struct.pack(">HH", 2, 8 + len(fields)) + struct.pack(">HH", 400, 7) + fields
    recs = b""
    for i, name in enumerate([b"eth0", b"x" * 300]):
        vl = bytes([len(name)]) if len(name) < 255 else b"\xff" + struct.pack(">H", len(name))
        recs += (
            struct.pack(">II", 0x0A000001 + i, 0xC6336401)
            + b"\0\0\0\1"
            + vl
            + name
            + struct.pack(">QQB", 1000 + i, 3, 6)
        )
    dset = struct.pack(">HH", 400, 4 + len(recs)) + recs
    body = tset + dset
    pkt = struct.pack(">HHIII", 10, 16 + len(body), 1_700_000_000, 0, 5) + body
    bad: list = []
    dec = NetflowDecoder(lambda *x: bad.append(x))
    dec.feed(pkt, "192.0.2.3", 0)
    out = dec.flush()
    assert bad == []
    assert out.column("bytes_out").to_pylist() == [1000, 1001]
    assert out.column("src_ip").to_pylist() == [0x0A000001, 0x0A000002]


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda p: p[:2] + struct.pack(">H", 30) + p[4:], "NetFlow v5 header says 30 records"),
        (lambda p: p[:40], "NetFlow v5 header says"),
        (lambda p: b"\x00\x07" + p[2:], "version 7"),
        (lambda p: b"\x00", "too short"),
    ],
    ids=["lying-count", "truncated", "bad-version", "tiny"],
)
def test_bad_v5_packets_are_quarantined(mutate, reason):
    good = encode_export(synthetic_flows(10), 5)[0]
    bad: list = []
    dec = NetflowDecoder(lambda *x: bad.append(x))
    dec.feed(mutate(good), "192.0.2.1", 123)
    assert dec.flush().num_rows == 0
    assert len(bad) == 1 and reason in bad[0][1] and bad[0][0] == 123


def test_lying_ipfix_lengths_are_quarantined_not_fatal():
    pk = encode_export(synthetic_flows(40), 10, per_packet=20)
    liar = pk[0][:2] + struct.pack(">H", len(pk[0]) + 100) + pk[0][4:]  # header length > datagram
    # a set whose length runs past the end of the packet
    set_liar = pk[1][:16] + pk[1][16:18] + struct.pack(">H", 60000) + pk[1][20:]
    bad: list = []
    dec = NetflowDecoder(lambda *x: bad.append(x))
    for i, p in enumerate([liar, set_liar, pk[0], pk[1]]):
        dec.feed(p, "192.0.2.1", i)
    out = dec.flush()
    assert out.num_rows == 40
    assert [b[0] for b in bad] == [0, 1]


def test_garbage_and_truncated_pcap_never_crash(tmp_path):
    src = synthetic_flows(200)
    data = pcap_of_datagrams(encode_export(src, 9))
    t, ctx = _read(data[: len(data) - 37])  # cut inside the last packet
    assert ctx.bad_count == 1 and "truncated packet" in ctx._bad[0][2]
    assert 0 < t.num_rows < 200
    import random

    rnd = random.Random(3)
    for _ in range(30):  # random byte flips inside export packets
        b = bytearray(data)
        for _ in range(20):
            b[rnd.randrange(24, len(b))] = rnd.randrange(256)
        _read(bytes(b))  # must not raise


def test_ingest_into_store_is_idempotent_and_counted(tmp_path):
    src = synthetic_flows(1000, v6_every=10)
    f = tmp_path / "export.pcap"
    f.write_bytes(pcap_of_datagrams(encode_export(src, 10)))
    ws = Workspace(tmp_path / "ws")
    s1 = ingest_paths(ws, [f])
    assert s1.rows == 1000 and s1.files[0].format == "netflow_pcap"
    s2 = ingest_paths(ws, [f])
    assert s2.rows == 0 and s2.files[0].skipped
    assert ws.counts()["flows"] == 1000
