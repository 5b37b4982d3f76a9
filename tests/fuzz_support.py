"""Fuzz targets, seed corpora and input mutators shared by the fuzz tests and ``bench.reliability``.

A *target* takes raw bytes (what an attacker could put in a file or a datagram), runs one
parser through its public entry point and checks the result against the contract every
parser promises:

- garbage ends up as quarantine entries / reported skips, or as a typed
  :class:`sightline.errors.SightlineError` (the CLI turns it into a message and exit 2);
- any other exception is a bug (the target lets it propagate, the fuzzer reports it);
- what *is* accepted fits the declared schema (flows cast to ``FLOW_SCHEMA``; ports in
  0..65535; byte/packet counters not negative; every flow has both addresses).

Seeds are small valid inputs: hand-made ones written here, plus slices of the real public
data in ``tests/data`` (``tests/data/SOURCES.md``), so the mutators start from realistic structure.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sightline.errors import SightlineError
from sightline.schema import FLOW_SCHEMA, INDICATOR_SCHEMA, ORG_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
REGRESSIONS = DATA / "regressions"

__all__ = ["Target", "TARGETS", "ContractViolation", "mutate", "mutate_json", "INTERESTING", "run_target"]


class ContractViolation(AssertionError):
    """A parser accepted input but produced output that breaks the schema contract."""


@dataclass
class Target:
    """One fuzz target: ``run(data)`` parses ``data``; ``seeds`` are valid starting inputs."""

    name: str
    run: Callable[[bytes], dict[str, int]]
    seeds: list[bytes] = field(default_factory=list)
    json_lines: bool = False  # seeds are JSON documents / JSON lines (structure-aware mutation)


def run_target(target: Target, data: bytes) -> dict[str, int]:
    """Run ``target`` on ``data``; a :class:`SightlineError` is an allowed outcome (counted)."""
    try:
        return target.run(data)
    except SightlineError:
        return {"rows": 0, "bad": 0, "error": 1}


# ----------------------------------------------------------------------------- checks


def check_flows(table: pa.Table) -> None:
    """Contract of accepted flows (what the store and the detections rely on)."""
    if table.num_rows == 0:
        return
    try:
        table = table.select(FLOW_SCHEMA.names).cast(FLOW_SCHEMA)
    except (pa.ArrowInvalid, KeyError) as e:
        raise ContractViolation(f"flows do not cast to FLOW_SCHEMA: {e}") from e
    if table.column("ts").null_count:
        raise ContractViolation("flow without a timestamp")
    for name in ("src_port", "dst_port"):
        col = table.column(name)
        if col.null_count < table.num_rows:
            lo, hi = pc.min(col).as_py(), pc.max(col).as_py()
            if lo < 0 or hi > 65535:
                raise ContractViolation(f"{name} out of range: {lo}..{hi}")
    for name in ("bytes_out", "bytes_in", "packets_out", "packets_in"):
        col = table.column(name)
        if col.null_count < table.num_rows and pc.min(col).as_py() < 0:
            raise ContractViolation(f"negative {name}")
    for side in ("src", "dst"):
        v4 = table.column(f"{side}_ip").is_valid()
        v6 = table.column(f"{side}_ip6").is_valid()
        if not pc.all(pc.or_(v4, v6)).as_py():
            raise ContractViolation(f"flow without a {side} address")
    dur = table.column("duration_s")
    if dur.null_count < table.num_rows:
        d = dur.to_numpy(zero_copy_only=False)
        d = d[~np.isnan(d)] if d.dtype.kind == "f" else d
        if len(d) and (not np.isfinite(d).all() or d.min() < 0):
            raise ContractViolation("duration not a finite non-negative number")


# ----------------------------------------------------------------------------- telemetry


def _reader_target(fmt_name: str) -> Callable[[bytes], dict[str, int]]:
    from sightline.ingest import ReaderContext
    from sightline.ingest.base import get_format

    def run(data: bytes) -> dict[str, int]:
        fmt = get_format(fmt_name)
        assert fmt is not None, fmt_name
        ctx = ReaderContext(path=Path(f"fuzz-{fmt_name}"), stream=io.BytesIO(data))
        rows = 0
        for batch in fmt.read(ctx):
            t = pa.Table.from_batches([batch])
            check_flows(t)
            rows += t.num_rows
        ctx.quarantine_table()  # must build (QUARANTINE_SCHEMA)
        return {"rows": rows, "bad": ctx.bad_count}

    return run


def _netflow_packets(data: bytes) -> dict[str, int]:
    """``data`` = datagrams, each prefixed by a 2-byte big-endian length, fed to one decoder."""
    from sightline.ingest.netflow import NetflowDecoder

    bad: list[int] = []
    dec = NetflowDecoder(lambda pos, reason, raw: bad.append(pos), source_file="fuzz")
    pos = 0
    while pos + 2 <= len(data):
        (n,) = struct.unpack_from(">H", data, pos)
        dec.feed(data[pos + 2 : pos + 2 + n], "192.0.2.10", pos)
        pos += 2 + n
    t = dec.flush()
    check_flows(t)
    return {"rows": t.num_rows, "bad": len(bad)}


def _auto_detect(data: bytes) -> dict[str, int]:
    """The whole ``sightline ingest`` path for one file: detection, decompression, reader,
    staging and commit into a fresh workspace.  It may only report a reason, never raise."""
    import duckdb

    from sightline.ingest import ingest_file
    from sightline.store import Workspace

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "input"
        p.write_bytes(data)
        ws = Workspace(Path(d) / "ws")
        res = ingest_file(ws, p)
        files = ws.manifest().get("files", {})
        if res.format is None or res.skipped:
            if files:
                raise ContractViolation("an unreadable file left an entry in the manifest")
            return {"rows": 0, "bad": 0}
        (entry,) = files.values()
        stored = 0
        for part in entry["parts"]:
            t = duckdb.sql(f"select * from read_parquet('{ws.root / part}')").fetch_arrow_table()
            check_flows(t)
            stored += t.num_rows
        if stored != entry["rows"] or stored != res.rows:
            raise ContractViolation(f"manifest says {entry['rows']} rows, store holds {stored}")
        return {"rows": res.rows, "bad": res.quarantined}


# ----------------------------------------------------------------------------- intel / orgs / scans


def _with_file(data: bytes, name: str, fn: Callable[[Path], dict[str, int]]) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        return fn(p)


def _intel(data: bytes) -> dict[str, int]:
    from sightline.intel import load_intel_files

    def go(p: Path) -> dict[str, int]:
        load = load_intel_files([p])
        t = load.table
        if t.schema != INDICATOR_SCHEMA:
            t.cast(INDICATOR_SCHEMA)
        t.validate(full=True)
        if t.num_rows and pc.any(pc.is_null(t.column("value"))).as_py():
            raise ContractViolation("indicator without a value")
        return {"rows": t.num_rows, "bad": sum(r.skipped for r in load.report)}

    return _with_file(data, "intel.txt", go)


def _orgs(data: bytes) -> dict[str, int]:
    from sightline.enrich.orgs import load_orgs_csv

    def go(p: Path) -> dict[str, int]:
        load = load_orgs_csv(p)
        load.table.cast(ORG_SCHEMA).validate(full=True)
        return {"rows": load.table.num_rows, "bad": len(load.bad)}

    return _with_file(data, "orgs.csv", go)


def _scans(data: bytes) -> dict[str, int]:
    from sightline.exposure.scans import SERVICE_SCHEMA, load_scans

    def go(p: Path) -> dict[str, int]:
        load = load_scans([p])
        load.services.cast(SERVICE_SCHEMA).validate(full=True)
        ports = load.services.column("port")
        if (
            ports.null_count < len(ports)
            and len(ports)
            and (pc.min(ports).as_py() < 0 or pc.max(ports).as_py() > 65535)
        ):
            raise ContractViolation("service port out of range")
        return {"rows": load.services.num_rows, "bad": load.quarantine.num_rows}

    return _with_file(data, "scan.dat", go)


# ----------------------------------------------------------------------------- seeds


def _head_lines(path: Path, n: int) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        out = []
        for i, line in enumerate(fh):
            if i >= n:
                break
            out.append(line)
    return b"".join(out)


def _grep_lines(path: Path, needle: bytes, n: int) -> bytes:
    out = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            if needle in line:
                out.append(line)
                if len(out) >= n:
                    break
    return b"".join(out)


ZEEK_FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes "
    "conn_state local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts "
    "resp_ip_bytes tunnel_parents"
).split()
_ZEEK_ROWS = [
    [
        "1709251200.000001",
        "C1",
        "203.0.113.5",
        "49152",
        "198.51.100.7",
        "443",
        "tcp",
        "ssl",
        "12.5",
        "4096",
        "65536",
        "SF",
        "-",
        "-",
        "0",
        "ShADadFf",
        "20",
        "5000",
        "30",
        "70000",
        "(empty)",
    ],
    [
        "1709251260.5",
        "C2",
        "2001:db8::5",
        "5353",
        "2001:db8::7",
        "53",
        "udp",
        "dns",
        "-",
        "-",
        "-",
        "S0",
        "-",
        "-",
        "0",
        "D",
        "1",
        "60",
        "0",
        "0",
        "(empty)",
    ],
    [
        "1709251300.25",
        "C3",
        "198.51.100.7",
        "61000",
        "203.0.113.9",
        "4433",
        "tcp",
        "-",
        "0.001",
        "0",
        "0",
        "REJ",
        "-",
        "-",
        "0",
        "Sr",
        "1",
        "40",
        "1",
        "40",
        "(empty)",
    ],
]


def _zeek_tsv_seed() -> bytes:
    head = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#fields\t" + "\t".join(ZEEK_FIELDS),
    ]
    return ("\n".join(head + ["\t".join(r) for r in _ZEEK_ROWS]) + "\n#close\t2024-03-01-00-00-00\n").encode()


def _zeek_json_seed(nested: bool) -> bytes:
    lines = []
    for r in _ZEEK_ROWS:
        rec: dict[str, Any] = {}
        for k, v in zip(ZEEK_FIELDS, r):
            if v == "-" or k in ("tunnel_parents",):
                continue
            rec[k] = float(v) if k in ("ts", "duration") else int(v) if v.isdigit() else v
        if nested:
            rec["id"] = {k[3:]: rec.pop(k) for k in list(rec) if k.startswith("id.")}
        lines.append(json.dumps(rec))
    return ("\n".join(lines) + "\n").encode()


_EVE = [
    {
        "timestamp": "2024-03-01T00:00:00.000000+0000",
        "flow_id": 1,
        "event_type": "flow",
        "src_ip": "203.0.113.5",
        "src_port": 49152,
        "dest_ip": "198.51.100.7",
        "dest_port": 443,
        "proto": "TCP",
        "app_proto": "tls",
        "flow": {
            "pkts_toserver": 10,
            "pkts_toclient": 12,
            "bytes_toserver": 4000,
            "bytes_toclient": 90000,
            "start": "2024-03-01T00:00:00.000000+0000",
            "end": "2024-03-01T00:05:00.000000+0000",
            "age": 300,
            "state": "closed",
            "reason": "timeout",
            "alerted": False,
        },
        "tcp": {"tcp_flags": "1b", "tcp_flags_ts": "1b", "tcp_flags_tc": "1b", "syn": True, "fin": True, "ack": True},
    },
    {
        "timestamp": "2024-03-01T00:01:00.000000+0000",
        "event_type": "netflow",
        "src_ip": "2001:db8::1",
        "src_port": 53,
        "dest_ip": "2001:db8::2",
        "dest_port": 5353,
        "proto": "UDP",
        "netflow": {
            "pkts": 1,
            "bytes": 80,
            "start": "2024-03-01T00:01:00.000000+0000",
            "end": "2024-03-01T00:01:00.100000+0000",
            "age": 0,
        },
    },
]

_NFDUMP = (
    "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt\n"
    "2018-01-12 15:37:30.250,2018-01-12 15:37:31.250,1.000,147.32.80.119,147.32.82.62,52324,902,TCP,...A..SF,0,0,4,240,3,180\n"
    "2018-01-12 15:37:30,2018-01-12 15:37:30,0.000,2001:db8::5,2001:db8::6,53,5353,UDP,........,0,0,3,300,0,0\n"
    "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n2,360,4,0,0,0\n"
)
_NFDUMP_LONG = (
    "firstSeen,lastSeen,duration,srcAddr,dstAddr,srcPort,dstPort,proto,flags,packets,bytes\n"
    "1515771450250,1515771451250,1.000,147.32.80.119,147.32.82.62,52324,902,TCP,...A..SF,4,240\n"
)


def _netflow_seeds() -> tuple[list[bytes], list[bytes]]:
    """(pcap files, length-prefixed datagram streams) for v5, v9 and IPFIX."""
    from sightline.ingest.nfexport import encode_export, pcap_of_datagrams, synthetic_flows

    pcaps: list[bytes] = []
    streams: list[bytes] = []
    for version, v6, biflow in ((5, 0, False), (9, 3, False), (10, 3, True)):
        t = synthetic_flows(6, seed=version, v6_every=v6, biflow=biflow)
        payloads = (
            encode_export(t, version, per_packet=3, biflow=biflow)
            if version != 5
            else encode_export(t, 5, per_packet=3)
        )
        pcaps.append(pcap_of_datagrams(payloads))
        streams.append(b"".join(struct.pack(">H", len(p)) + p for p in payloads))
    for name in ("nfv5.pcap", "data+templates.pcap", "options-template.pcap", "ipfixprobe-templates.pcap"):
        pcaps.append((DATA / "akvorado" / name).read_bytes())
    return pcaps, streams


def _pcap_seeds() -> list[bytes]:
    from sightline.ingest.nfexport import pcap_of_datagrams

    out = [pcap_of_datagrams([b"hello", b"\x00" * 40])]
    out.append((DATA / "slips" / "test12-icmp-portscan.pcap").read_bytes())
    out.append((DATA / "slips" / "test8-malicious.pcap").read_bytes()[:6000])  # a cut capture is a realistic seed too
    return out


_STIX = {
    "type": "bundle",
    "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
    "objects": [
        {
            "type": "threat-actor",
            "spec_version": "2.1",
            "id": "threat-actor--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2024-01-01T00:00:00Z",
            "modified": "2024-01-01T00:00:00Z",
            "name": "RedJuliett",
        },
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--c410e480-e42b-47d1-9476-85307c12bcbf",
            "created": "2024-01-01T00:00:00Z",
            "modified": "2024-01-01T00:00:00Z",
            "name": "C2",
            "description": "<script>alert(1)</script>",
            "pattern_type": "stix",
            "pattern": "[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'evil.example']",
            "valid_from": "2024-01-01T00:00:00Z",
            "valid_until": "9999-12-31T23:59:59Z",
            "confidence": 80,
            "object_marking_refs": ["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"],
        },
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--d410e480-e42b-47d1-9476-85307c12bcbf",
            "created": "2024-01-01T00:00:00Z",
            "modified": "2024-01-01T00:00:00Z",
            "pattern_type": "stix",
            "pattern": "[ipv6-addr:value = '2001:db8::/32']",
            "valid_from": "2024-01-01T00:00:00Z",
        },
        {
            "type": "relationship",
            "spec_version": "2.1",
            "id": "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad",
            "created": "2024-01-01T00:00:00Z",
            "modified": "2024-01-01T00:00:00Z",
            "relationship_type": "indicates",
            "source_ref": "indicator--c410e480-e42b-47d1-9476-85307c12bcbf",
            "target_ref": "threat-actor--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        },
    ],
}

_MISP = {
    "Event": {
        "info": "RedJuliett C2",
        "uuid": "5e3c3b3a-0000-4000-8000-000000000001",
        "date": "2024-03-01",
        "Tag": [{"name": "tlp:amber"}, {"name": 'misp-galaxy:threat-actor="RedJuliett"'}],
        "Attribute": [
            {
                "type": "ip-dst",
                "value": "198.51.100.7",
                "category": "Network activity",
                "to_ids": True,
                "uuid": "5e3c3b3a-0000-4000-8000-000000000002",
                "first_seen": "2024-01-01T00:00:00Z",
                "last_seen": "2024-06-01T00:00:00Z",
            },
            {"type": "ip-dst|port", "value": "198.51.100.8|4433", "category": "Network activity"},
            {"type": "domain", "value": "evil.example", "category": "Network activity", "Tag": [{"name": "tlp:red"}]},
            {"type": "vulnerability", "value": "CVE-2023-46805", "category": "External analysis"},
        ],
        "Object": [
            {"name": "ip-port", "Attribute": [{"type": "ip-dst", "object_relation": "ip", "value": "203.0.113.77"}]}
        ],
    }
}

_INTEL_CSV = (
    "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
    "198.51.100.7,ipv4,RedJuliett,2024-01-01,2024-06-30,80,amber\n"
    "198.51.100.0/24,ipv4-cidr,RedJuliett,,,60,green\n"
    "evil[.]example,domain,RedJuliett,2024-01-01,,90,clear\n"
    "2001:db8::1,ipv6,,9999-12-31,,101,red\n"
)
_INTEL_LIST = "# RedJuliett C2\n198.51.100.7\n198.51.100.0/24\nhxxp://evil[.]example/x\n2001:db8::1\n203.0.113.5:4433\n"
_ORGS = (
    "org_id,name,sector,country,cidr\n"
    "tw-semi-01,Formosa Semi <b>,semiconductor,TW,203.0.113.0/25\n"
    'tw-gov-02,"台灣 Ministry, =HYPERLINK(""x"")",government,tw,2001:db8::/48;198.51.100.0/26\n'
)
_NMAP = b"""<?xml version="1.0"?>
<nmaprun scanner="nmap" start="1709251200" version="7.94">
<host><status state="up"/><address addr="203.0.113.10" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="443"><state state="open"/><service name="https" product="Ivanti Connect Secure" version="22.3R1"><cpe>cpe:/a:ivanti:connect_secure:22.3r1</cpe></service></port>
<port protocol="tcp" portid="22"><state state="closed"/></port></ports></host>
<host><status state="up"/><address addr="2001:db8::10" addrtype="ipv6"/><ports><port protocol="udp" portid="500"><state state="open"/><service name="isakmp" product="Fortinet FortiGate"/></port></ports></host>
</nmaprun>
"""
_MASSCAN_JSON = (
    b'[\n{"ip": "203.0.113.10", "timestamp": "1709251200", "ports": [{"port": 443, "proto": "tcp", '
    b'"status": "open", "reason": "syn-ack", "ttl": 52}]},\n'
    b'{"ip": "203.0.113.11", "timestamp": "1709251201", "ports": [{"port": 4433, "proto": "tcp", '
    b'"service": {"name": "https", "banner": "Server: FortiGate"}}]}\n]\n'
)
_MASSCAN_LIST = b"#masscan\nopen tcp 443 203.0.113.10 1709251200\nbanner tcp 443 203.0.113.10 1709251200 http Server: nginx\n# end\n"
_SHODAN = (
    b'{"ip_str": "203.0.113.10", "port": 443, "transport": "tcp", "product": "Pulse Secure", "version": "9.1R8",'
    b' "timestamp": "2024-03-01T00:00:00.000000", "cpe23": ["cpe:2.3:a:pulsesecure:pulse_connect_secure:9.1:r8"],'
    b' "data": "HTTP/1.1 200 OK"}\n'
    b'{"ip": "203.0.113.12", "services": [{"port": 10443, "transport_protocol": "TCP", "service_name": "HTTP",'
    b' "software": [{"vendor": "Fortinet", "product": "FortiOS", "version": "7.0.1"}]}], "last_updated_at": "2024-03-01T00:00:00Z"}\n'
)


def _file(p: Path) -> bytes:
    return p.read_bytes()


def _targets() -> dict[str, Target]:
    nf_pcaps, nf_streams = _netflow_seeds()
    zeek_real = _head_lines(DATA / "slips" / "port-scans" / "horizontal-conn.log", 24)
    eve_real = _grep_lines(DATA / "slips" / "test6-malicious.suricata.json.gz", b'"event_type":"flow"', 6)
    eve = ("\n".join(json.dumps(e) for e in _EVE) + "\n").encode()
    t = [
        Target("zeek_tsv", _reader_target("zeek_tsv"), [_zeek_tsv_seed(), zeek_real]),
        Target(
            "zeek_json", _reader_target("zeek_json"), [_zeek_json_seed(False), _zeek_json_seed(True)], json_lines=True
        ),
        Target("suricata_eve", _reader_target("suricata_eve"), [eve, eve_real], json_lines=True),
        Target("nfdump_csv", _reader_target("nfdump_csv"), [_NFDUMP.encode(), _NFDUMP_LONG.encode()]),
        Target("netflow_pcap", _reader_target("netflow_pcap"), nf_pcaps),
        Target("netflow_packets", _netflow_packets, nf_streams),
        Target("pcap", _reader_target("pcap"), _pcap_seeds()),
        Target(
            "ingest_autodetect",
            _auto_detect,
            [_zeek_tsv_seed(), eve, _NFDUMP.encode(), nf_pcaps[0], gzip.compress(_zeek_tsv_seed())],
        ),
        Target(
            "stix",
            _intel,
            [
                json.dumps(_STIX).encode(),
                _file(DATA / "intel" / "bundle_v1.json"),
                _file(DATA / "intel" / "oasis_stix" / "oasis_infrastructure.json"),
            ],
            json_lines=True,
        ),
        Target(
            "misp", _intel, [json.dumps(_MISP).encode(), _file(DATA / "exposure" / "actor_misp.json")], json_lines=True
        ),
        Target(
            "intel_csv",
            _intel,
            [
                _INTEL_CSV.encode(),
                _file(DATA / "intel" / "basic.csv"),
                _head_lines(DATA / "intel" / "raptor_train" / "blacklotuslabs_Raptor_Train_IOCs.txt", 30),
            ],
        ),
        Target("intel_list", _intel, [_INTEL_LIST.encode(), _file(DATA / "intel" / "plain.txt")]),
        Target("orgs_csv", _orgs, [_ORGS.encode(), _file(DATA / "exposure" / "orgs.csv")]),
        Target(
            "nmap_xml",
            _scans,
            [_NMAP, _file(DATA / "exposure" / "edge_nmap.xml"), _file(DATA / "nmap" / "libnmap_2_hosts_version.xml")],
        ),
        Target("masscan", _scans, [_MASSCAN_JSON, _MASSCAN_LIST, _file(DATA / "exposure" / "masscan.list")]),
        Target("shodan_json", _scans, [_SHODAN, _file(DATA / "exposure" / "censys_host.json")], json_lines=True),
    ]
    for x in t:
        x.seeds = [s for s in x.seeds if s]
    return {x.name: x for x in t}


TARGETS: dict[str, Target] = _targets()
"""All fuzz targets by name (the parsers sightline exposes to untrusted files)."""


# ----------------------------------------------------------------------------- mutators

INTERESTING: list[bytes] = [
    b"",
    b"-",
    b"-1",
    b"0",
    b"65535",
    b"65536",
    b"4294967296",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"1e309",
    b"NaN",
    b"nan",
    b"inf",
    b"-inf",
    b"253402300800",
    b"-62135596800",
    b"99999999999999999999",
    b"9999-12-31T23:59:59Z",
    b"0000-00-00",
    b"1969-12-31T23:59:59.999999Z",
    b"\x00",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\t",
    b"\n",
    b"\r\n",
    b"\r",
    b",",
    b";",
    b'"',
    b"'",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b"::",
    b":::",
    b"999.1.1.1",
    b"1.2.3",
    b"256.256.256.256",
    b"fe80::1%eth0",
    b"::ffff:1.2.3.4",
    b"1.2.3.4/33",
    b"0.0.0.0/0",
    b"<script>alert(1)</script>",
    b"=cmd|' /C calc'!A0",
    "\u53f0\u7063\u202e\U0001f600".encode(),
    b"\xef\xbb\xbf",
    b"#fields\t",
    b"#separator \\x2c",
    b'"id.orig_h"',
    b"\\x",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"[" * 64,
    b'<!DOCTYPE x [<!ENTITY a "aaaa">]>',
    b"&a;",
    b"]]>",
    b"<![CDATA[",
    b"A" * 300,
]

_BOUNDARY_INTS = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def mutate(seed: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    """Apply byte-level mutations to ``seed``; each op is ``(kind, a, b)`` with arbitrary ints.

    Kinds: flip a bit, insert an interesting token, delete a range, replace a range by a
    token, truncate, duplicate a range, overwrite 1/2/4 bytes with a boundary integer
    (big-endian: the byte order of NetFlow/IPFIX headers and lengths).
    """
    b = bytearray(seed)
    for kind, x, y in ops:
        n = len(b)
        k = kind % 7
        pos = x % (n + 1)
        if k == 0 and n:
            b[pos % n] ^= 1 << (y % 8)
        elif k == 1:
            b[pos:pos] = INTERESTING[y % len(INTERESTING)]
        elif k == 2:
            del b[pos : pos + 1 + y % 64]
        elif k == 3:
            b[pos : pos + 1 + (y >> 8) % 16] = INTERESTING[y % len(INTERESTING)]
        elif k == 4:
            del b[pos:]
        elif k == 5 and n:
            ln = 1 + y % 256
            b[pos:pos] = b[pos : pos + ln]
        elif k == 6 and n:
            width = (1, 2, 4)[y % 3]
            val = _BOUNDARY_INTS[(y >> 2) % len(_BOUNDARY_INTS)] & ((1 << (8 * width)) - 1)
            b[pos : pos + width] = val.to_bytes(width, "big")
    return bytes(b)


def _paths(doc: Any, out: list[tuple[Any, Any]]) -> None:
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((doc, k))
            _paths(v, out)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((doc, i))
            _paths(v, out)


def mutate_json(seed: bytes, picks: list[tuple[int, Any]]) -> bytes:
    """Replace values inside a JSON seed (a document or JSON lines) with generated values.

    ``picks`` are ``(index, value)``: ``index`` chooses a node (modulo the node count), the
    node's value becomes ``value``.  Keeps the structure realistic so the parser gets past
    its first checks, which byte mutation rarely does for JSON.
    """
    text = seed.decode("utf-8", "replace")
    try:
        docs = [json.loads(text)]
        lines = False
    except ValueError:
        try:
            docs = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        except ValueError:
            return seed
        lines = True
    nodes: list[tuple[Any, Any]] = []
    for d in docs:
        _paths(d, nodes)
    for idx, value in picks:
        if nodes:
            container, key = nodes[idx % len(nodes)]
            container[key] = value
    if lines:
        return ("\n".join(json.dumps(d, ensure_ascii=False) for d in docs) + "\n").encode("utf-8", "surrogatepass")
    return json.dumps(docs[0], ensure_ascii=False).encode("utf-8", "surrogatepass")
