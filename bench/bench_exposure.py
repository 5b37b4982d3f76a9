"""Exposure: share of the KEV catalog with version ranges, and the run time for N scanned services.

Usage: python -m bench.bench_exposure --services 100000

The scan is an nmap -oX file generated here (hosts of 4 services each; products drawn from
edge devices, web servers and applications, versions inside and outside KEV ranges, a tenth
without a version); timed: reading it (``load_scans``) and ranking it (``assess_exposure``).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from bench.bench_data import emit, peak_rss_mb

PRODUCTS = [  # (nmap product text, CPE prefix or "", versions)
    ("Fortinet FortiGate SSL VPN", "cpe:/o:fortinet:fortios", ["7.2.0", "7.2.4", "7.2.8", "7.4.3", "6.4.15", "7.0.12"]),
    ("Palo Alto GlobalProtect", "cpe:/o:paloaltonetworks:pan-os", ["10.2.9", "10.2.9-h1", "11.1.2-h3", "10.2.12-h2"]),
    ("Ivanti Connect Secure", "", ["22.4R2.1", "22.7R2.3", "9.1R18", "22.6R2"]),
    ("Citrix NetScaler ADC", "", ["13.1-48.47", "13.1-49.15", "14.1-8.50", "13.0-92.19"]),
    ("F5 BIG-IP", "cpe:/a:f5:big-ip_local_traffic_manager", ["15.1.5", "15.1.5.1", "16.1.2.2", "17.1.0"]),
    ("Apache httpd", "cpe:/a:apache:http_server", ["2.4.49", "2.4.51", "2.4.58", "2.4.62", "2.2.22"]),
    ("nginx", "cpe:/a:igor_sysoev:nginx", ["1.18.0", "1.24.0", "1.25.3"]),
    ("Atlassian Confluence", "cpe:/a:atlassian:confluence_server", ["7.13.6", "7.13.7", "8.5.3", "8.5.4"]),
    ("GitLab", "cpe:/a:gitlab:gitlab", ["13.8.7", "13.8.8", "16.0.0"]),
    ("Jenkins", "cpe:/a:jenkins:jenkins", ["2.153", "2.154", "2.440"]),
    ("Microsoft IIS httpd", "cpe:/a:microsoft:internet_information_services", ["6.0", "7.5", "10.0"]),
    ("OpenSSH", "cpe:/a:openbsd:openssh", ["7.4", "8.9p1", "9.6p1"]),
    ("MySQL", "cpe:/a:mysql:mysql", ["5.7.16", "8.0.36"]),
]


def make_scan(path: Path, services: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    per_host = 4
    with path.open("w") as f:
        f.write(
            '<?xml version="1.0"?>\n<nmaprun scanner="nmap" args="nmap -sV" start="1718000000" '
            'version="7.94" xmloutputversion="1.05">\n'
        )
        for h in range(services // per_host):
            ip = f"10.{(h >> 16) & 255}.{(h >> 8) & 255}.{h & 255}"
            ports = []
            for k in range(per_host):
                product, cpe, versions = PRODUCTS[rnd.randrange(len(PRODUCTS))]
                version = "" if rnd.random() < 0.1 else rnd.choice(versions)
                cpe_el = f"<cpe>{cpe}:{version}</cpe>" if cpe and version else (f"<cpe>{cpe}</cpe>" if cpe else "")
                ports.append(
                    f'<port protocol="tcp" portid="{443 + k}"><state state="open" reason="syn-ack"/>'
                    f'<service name="https" product="{product}" version="{version}" method="probed" '
                    f'conf="10">{cpe_el}</service></port>'
                )
            f.write(
                f'<host starttime="1718000000"><status state="up"/><address addr="{ip}" addrtype="ipv4"/>'
                f"<ports>{''.join(ports)}</ports></host>\n"
            )
        f.write('<runstats><finished time="1718000100"/></runstats></nmaprun>\n')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=100_000)
    n = ap.parse_args().services

    from sightline.exposure import assess_exposure, load_cve_ranges, load_kev, load_scans

    table = load_cve_ranges()
    kev = load_kev()
    kev_ids = set(kev["cve"].to_pylist())
    ranged = {e["cve"] for e in table if e["products"]} & kev_ids
    with tempfile.TemporaryDirectory() as d:
        scan = Path(d) / "scan.xml"
        make_scan(scan, n)
        t0 = time.perf_counter()
        load = load_scans([scan])
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        entries = assess_exposure(load.services, kev, ranges=table)
        t_assess = time.perf_counter() - t0
    confirmed = sum(1 for e in entries if e["match"] != "possibly_affected")
    results = [
        {
            "metric": "kev_cves_with_ranges",
            "value": len(ranged),
            "of": len(kev_ids),
            "share": round(len(ranged) / len(kev_ids), 4),
        },
        {"metric": "exposure_read_s", "services": load.services.num_rows, "value": round(t_read, 3)},
        {
            "metric": "exposure_assess_s",
            "services": load.services.num_rows,
            "value": round(t_assess, 3),
            "rows": len(entries),
            "confirmed_rows": confirmed,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    ]
    for r in results:
        print(r)
    emit(results)


if __name__ == "__main__":
    main()
