"""Rebuild the real-data copies in ``tests/data/`` from the team's shared data directory.

Not run by the tests. ``python tests/data/make_cuts.py /path/to/shared/data`` writes every file
listed in ``tests/data/SOURCES.md``: small files verbatim, big ones cut as described there. The
cuts are deterministic (fixed seed, gzip without a timestamp), so a rerun gives the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import random
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# Copied verbatim: shared-data path -> tests/data path.
VERBATIM = {
    "intel/flax_typhoon/pudgydragon_IP.txt": "intel/flax_typhoon/pudgydragon_IP.txt",
    "intel/flax_typhoon/pudgydragon_uri.txt": "intel/flax_typhoon/pudgydragon_uri.txt",
    "intel/stix/LICENSE-oasis-cti-stix2-json-schemas": "intel/oasis_stix/LICENSE",
    "intel/stix/oasis_indicator-for-c2-ip-address.json": "intel/oasis_stix/oasis_indicator-for-c2-ip-address.json",
    "intel/stix/oasis_infrastructure.json": "intel/oasis_stix/oasis_infrastructure.json",
    "intel/stix/oasis_threat-report-apt1.json": "intel/oasis_stix/oasis_threat-report-apt1.json",
    "geo/licenses/DBIP-LICENSE": "geo/licenses/DBIP-LICENSE",
    "geo/licenses/NRO_LICENSE": "geo/licenses/NRO_LICENSE",
    "geo/licenses/ROUTEVIEWS-LICENSE": "geo/licenses/ROUTEVIEWS-LICENSE",
    "geo/licenses/MODIFICATIONS": "geo/licenses/MODIFICATIONS",
    "zeek/slips/LICENSE": "slips/LICENSE",
    "zeek/slips/test9-mixed-zeek-dir/conn.log.gz": "slips/test9-mixed-zeek-dir/conn.log.gz",
    "zeek/slips/test9-mixed-zeek-dir/dns.log.gz": "slips/test9-mixed-zeek-dir/dns.log.gz",
    "zeek/slips/test9-mixed-zeek-dir/ssl.log.gz": "slips/test9-mixed-zeek-dir/ssl.log.gz",
    "zeek/slips/test9-mixed-zeek-dir/x509.log.gz": "slips/test9-mixed-zeek-dir/x509.log.gz",
    "zeek/slips/port-scans/horizontal-conn.log": "slips/port-scans/horizontal-conn.log",
    "suricata/slips-test6-malicious.suricata.json.gz": "slips/test6-malicious.suricata.json.gz",
    "netflow/slips-test1-malicious.nfdump": "slips/test1-malicious.nfdump",
    "pcap/slips-test8-malicious.pcap": "slips/test8-malicious.pcap",
    "pcap/slips-test12-icmp-portscan.pcap": "slips/test12-icmp-portscan.pcap",
    "zeek/stratosphere-sdft/LICENSE": "stratosphere-sdft/LICENSE",
    "zeek/stratosphere-sdft/002-zeek-scenario-port-scanning/conn.log.gz": "stratosphere-sdft/002-zeek-scenario-port-scanning/conn.log.gz",
    "zeek/stratosphere-sdft/008-zeek-mixed/conn.log.labeled.gz": "stratosphere-sdft/008-zeek-mixed/conn.log.labeled.gz",
    "zeek/wrccdc2018/LICENSE": "wrccdc2018/LICENSE",
    "zeek/wrccdc2018/zeek-default/known_hosts.log.gz": "wrccdc2018/zeek-default/known_hosts.log.gz",
    "nmap/LICENCE-python-libnmap": "nmap/LICENCE",
    **{
        f"nmap/libnmap_{n}.xml": f"nmap/libnmap_{n}.xml"
        for n in (
            "1_os_banner_scripts",
            "2_hosts_version",
            "dionaea_scan",
            "extra_ports",
            "full_sudo6",
            "fullscan",
            "os_scan6",
        )
    },
    "netflow/akvorado-testdata/LICENSE.txt": "akvorado/LICENSE.txt",
    **{
        f"netflow/akvorado-testdata/{n}.pcap": f"akvorado/{n}.pcap"
        for n in (
            "data+templates",
            "data",
            "ipfixprobe-data",
            "ipfixprobe-templates",
            "nfv5",
            "options-data",
            "options-template",
            "template",
        )
    },
}

# Addresses the tests look up in the geo tables by name (test_enrich_geo, test_actor_infra, test_hunt_e2e).
NAMED = [
    "140.112.8.116",
    "168.95.1.1",
    "8.8.8.8",
    "45.77.1.10",
    "45.77.1.11",
    "45.77.1.12",
    "45.77.1.99",
    "2001:4860:4860::8888",
]
WIDEST = 2000  # widest IPv4 ranges kept: random addresses land in a table range about a third of the time
SAMPLE4, SAMPLE6 = 1000, 300  # seeded random rows of ordinary size
SSL_SESSIONS = 3000  # WRCCDC ssl sessions kept (seeded sample of uids, same ones in TSV and JSON)
HEAD_RECORDS = 200  # WRCCDC weird/dns logs: first records only (the tests only sniff their kind)


def write_gz(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(data)


def sim_networks() -> tuple[list[tuple[int, int]], list[ipaddress.IPv6Network]]:
    sys.path.insert(0, str(ROOT))
    from sightline.simulate.geo import NETWORKS

    v4 = [(int(ipaddress.IPv4Address(a)), int(ipaddress.IPv4Address(b))) for n in NETWORKS.values() for a, b in n.v4]
    v6 = [ipaddress.IPv6Network(p) for n in NETWORKS.values() for p in n.v6]
    return v4, v6


def cut_geo(src: Path, dst: Path, v6: bool) -> int:
    """Rows overlapping the simulator's networks or holding a named address, the widest ranges, a sample."""
    lines = gzip.open(src, "rt", encoding="utf-8").read().splitlines(keepends=True)
    sim4, sim6 = sim_networks()
    named = [int(ipaddress.ip_address(a)) for a in NAMED if (":" in a) == v6]
    sims = [(int(n.network_address), int(n.broadcast_address)) for n in sim6] if v6 else sim4
    keep: set[int] = set()
    spans = []
    for i, line in enumerate(lines):
        a, b = line.split(",", 2)[:2]
        s, e = int(ipaddress.ip_address(a)), int(ipaddress.ip_address(b))
        spans.append(e - s)
        if any(s <= x <= e for x in named) or any(s <= hi and lo <= e for lo, hi in sims):
            keep.add(i)
    if not v6:
        keep |= set(sorted(range(len(lines)), key=lambda i: -spans[i])[:WIDEST])
    rnd = random.Random(20261207)
    keep |= set(rnd.sample(range(len(lines)), SAMPLE6 if v6 else SAMPLE4))
    write_gz(dst, "".join(lines[i] for i in sorted(keep)).encode())
    return len(keep)


def cut_raptor(src: Path, dst: Path) -> None:
    """The IOC table and the observed-URL block; the YARA rules (Lumen-authored text) are left out."""
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    end = next(i for i, ln in enumerate(lines) if ln.strip() == "Yara Signatures")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(lines[:end]), encoding="utf-8")


def _tsv(path: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    lines = gzip.open(path, "rt", encoding="utf-8").read().splitlines(keepends=True)
    head = [ln for ln in lines if ln.startswith("#") and not ln.startswith("#close")]
    tail = [ln for ln in lines if ln.startswith("#close")]
    fields = next(ln for ln in head if ln.startswith("#fields")).rstrip("\n").split("\t")[1:]
    return head, [ln for ln in lines if not ln.startswith("#")], tail, fields


def cut_wrccdc(src: Path, dst: Path) -> None:
    z = src / "zeek/wrccdc2018"
    head, rows, tail, fields = _tsv(z / "zeek-default/ssl.log.gz")
    iu, ifp = fields.index("uid"), fields.index("cert_chain_fps")
    uids = sorted(
        rnd_uid for rnd_uid in random.Random(20261207).sample([r.split("\t")[iu] for r in rows], SSL_SESSIONS)
    )
    want = set(uids)
    kept = [r for r in rows if r.split("\t")[iu] in want]
    fps = {fp for r in kept for fp in r.rstrip("\n").split("\t")[ifp].split(",") if fp not in ("-", "(empty)")}
    write_gz(dst / "zeek-default/ssl.log.gz", "".join(head + kept + tail).encode())
    js = [ln for ln in gzip.open(z / "zeek-json/ssl.json.gz", "rt", encoding="utf-8") if json.loads(ln)["uid"] in want]
    assert len(js) == len(kept), (len(js), len(kept))
    write_gz(dst / "zeek-json/ssl.json.gz", "".join(js).encode())
    head, rows, tail, fields = _tsv(z / "zeek-default/x509.log.gz")
    ix = fields.index("fingerprint")
    write_gz(
        dst / "zeek-default/x509.log.gz", "".join(head + [r for r in rows if r.split("\t")[ix] in fps] + tail).encode()
    )
    xj = [
        ln
        for ln in gzip.open(z / "zeek-json/x509.json.gz", "rt", encoding="utf-8")
        if json.loads(ln)["fingerprint"] in fps
    ]
    write_gz(dst / "zeek-json/x509.json.gz", "".join(xj).encode())
    for name in ("weird", "dns"):
        head, rows, tail, _ = _tsv(z / f"zeek-default/{name}.log.gz")
        write_gz(dst / f"zeek-default/{name}.log.gz", "".join(head + rows[:HEAD_RECORDS] + tail).encode())


def kev_record(src: Path, dst: Path) -> None:
    raw = (src / "kev/known_exploited_vulnerabilities.json").read_bytes()
    doc = json.loads(raw)
    rec = {
        "origin": "cisagov/kev-data@eacf03ec6637cc7be6d3d4ed50785493da5126a2:known_exploited_vulnerabilities.json",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "catalogVersion": doc["catalogVersion"],
        "count": doc["count"],
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(rec, indent=2) + "\n")


def main(src: Path) -> None:
    for a, b in VERBATIM.items():
        (HERE / b).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / a, HERE / b)
    for name, v6 in (
        ("asn-ipv4", False),
        ("asn-ipv6", True),
        ("geo-whois-asn-country-ipv4", False),
        ("geo-whois-asn-country-ipv6", True),
    ):
        n = cut_geo(src / "geo" / f"{name}.csv.gz", HERE / "geo" / f"{name}.csv.gz", v6)
        print(f"geo/{name}.csv.gz: {n} rows")
    cut_raptor(
        src / "intel/raptor_train/blacklotuslabs_Raptor_Train_IOCs.txt",
        HERE / "intel/raptor_train/blacklotuslabs_Raptor_Train_IOCs.txt",
    )
    cut_wrccdc(src, HERE / "wrccdc2018")
    kev_record(src, HERE / "kev/upstream.json")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
