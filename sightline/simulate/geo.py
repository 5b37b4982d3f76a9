"""Real address space the simulated world lives in.

Every block below was looked up in the IP-to-ASN table of sapics/ip-location-db (RouteViews,
DB-IP and NRO data, CC-BY-4.0; see ``sightline/data/LICENSES.md``) so that a later geo/ASN
enrichment places simulated organizations and actor servers in the right ASN and country.
Only a handful of ranges is kept: facts (which ASN announces which range), not the database.

Organizations and people in the simulation are fictional; only the networks are real.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Network:
    """An autonomous system and some address ranges it announces."""

    key: str
    asn: int
    as_name: str
    country: str
    kind: str  # isp | academic | government | research | vps | residential | cdn | cloud | scanner | resolver | hosting
    v4: tuple[tuple[str, str], ...]  # inclusive (first, last) ranges
    v6: tuple[str, ...] = ()  # CIDRs
    background: bool = True  # the background's destination pools draw from it (networks_of_kind)

    def v4_ranges(self) -> np.ndarray:
        """``(k, 2)`` uint64 array of inclusive integer ranges."""
        return np.array(
            [(int(ipaddress.IPv4Address(a)), int(ipaddress.IPv4Address(b))) for a, b in self.v4],
            dtype=np.uint64,
        )


NETWORKS: dict[str, Network] = {
    n.key: n
    for n in [
        # --- Taiwan
        Network(
            "hinet",
            3462,
            "Chunghwa Telecom Co., Ltd.",
            "TW",
            "isp",
            (("1.160.0.0", "1.175.255.255"), ("111.240.0.0", "111.255.255.255"), ("114.32.0.0", "114.47.255.255")),
            ("2001:b000:400::/40",),
        ),
        Network(
            "tanet",
            1659,
            "Taiwan Academic Network (TANet) Information Center",
            "TW",
            "academic",
            (("163.13.0.0", "163.28.255.255"), ("140.118.0.0", "140.129.50.255"), ("120.101.68.0", "120.126.31.255")),
            ("2001:288:1000::/36",),
        ),
        Network(
            "gsn",
            4782,
            "Data Communication Business Group",
            "TW",
            "government",
            (("117.56.0.0", "117.56.255.255"), ("163.29.0.0", "163.29.255.255"), ("210.69.0.0", "210.69.255.255")),
            ("2001:4420::/32",),
        ),
        Network(
            "seednet",
            4780,
            "Digital United Inc.",
            "TW",
            "isp",
            (("175.180.0.0", "175.182.76.255"), ("59.104.112.0", "59.105.255.255"), ("112.104.0.0", "112.104.255.255")),
        ),
        Network(
            "tfn",
            9924,
            "Taiwan Fixed Network",
            "TW",
            "isp",
            (("124.8.0.0", "124.12.255.255"), ("219.80.0.0", "219.81.255.255")),
        ),
        Network(
            "fet",
            17421,
            "Mobile Business Group",
            "TW",
            "residential",
            (("42.70.0.0", "42.79.255.255"), ("111.80.0.0", "111.83.255.255")),
        ),
        Network(
            "twaren",
            7539,
            "National Center for High-performance Computing",
            "TW",
            "research",
            (("211.73.64.0", "211.73.95.255"), ("203.145.200.0", "203.145.223.255"), ("211.79.48.0", "211.79.63.255")),
        ),
        # --- Hong Kong, Korea
        Network(
            "pccw",
            4760,
            "PCCW IMS Limited",
            "HK",
            "isp",
            (("219.76.224.0", "219.79.255.255"), ("112.118.0.0", "112.120.255.255")),
            ("2404:c800:1000::/36",),
        ),
        Network(
            "hkbn",
            9269,
            "Hong Kong Broadband Network Limited",
            "HK",
            "isp",
            (("119.246.0.0", "119.247.255.255"), ("123.202.0.0", "123.203.255.255")),
        ),
        Network(
            "kt", 4766, "Korea Telecom", "KR", "isp", (("14.64.0.0", "14.95.255.255"), ("115.0.0.0", "115.21.7.255"))
        ),
        Network("skb", 9318, "SK Broadband Co Ltd", "KR", "isp", (("180.68.0.0", "180.71.255.255"),)),
        # --- Africa, Laos
        Network(
            "djtel",
            30990,
            "DJIBOUTI TELECOM S.A.",
            "DJ",
            "isp",
            (("197.241.32.0", "197.241.63.255"), ("41.189.224.0", "41.189.255.255")),
        ),
        Network(
            "laotel",
            9873,
            "Lao Telecommunication Public Company",
            "LA",
            "isp",
            (("115.84.64.0", "115.84.127.255"), ("202.137.128.0", "202.137.159.255")),
        ),
        Network("safaricom", 33771, "Safaricom Limited", "KE", "isp", (("105.160.0.0", "105.167.255.255"),)),
        Network("jtl", 36866, "Jamii Telecommunications Limited", "KE", "isp", (("197.232.0.0", "197.232.255.255"),)),
        Network(
            "ktrw",
            37228,
            "KT RWANDA NETWORK Ltd",
            "RW",
            "isp",
            (("105.178.0.0", "105.178.127.255"), ("197.243.0.0", "197.243.127.255")),
        ),
        # --- United States
        Network(
            "att", 7018, "AT&T Enterprises, LLC", "US", "isp", (("107.192.0.0", "107.223.255.255"),), ("2600:300::/32",)
        ),
        Network("verizon", 701, "Verizon Business", "US", "isp", (("71.112.0.0", "71.127.255.255"),)),
        Network(
            "comcast", 7922, "Comcast Cable Communications, LLC", "US", "residential", (("73.0.0.0", "73.255.255.255"),)
        ),
        # --- VPS providers (where actor servers rent)
        Network(
            "vultr",
            20473,
            "The Constant Company, LLC",
            "US",
            "vps",
            (("45.76.0.0", "45.77.255.255"), ("45.32.0.0", "45.32.255.255")),
        ),
        Network(
            "digitalocean",
            14061,
            "DigitalOcean, LLC",
            "US",
            "vps",
            (
                ("104.131.0.0", "104.131.255.255"),
                ("104.236.0.0", "104.236.255.255"),
                ("104.248.0.0", "104.248.255.255"),
            ),
        ),
        Network(
            "linode",
            63949,
            "Akamai Technologies, Inc.",
            "US",
            "vps",
            (("172.105.0.0", "172.105.255.255"), ("172.236.0.0", "172.239.255.255")),
        ),
        Network(
            "ovh", 16276, "OVH SAS", "FR", "vps", (("54.36.0.0", "54.39.255.255"), ("141.94.0.0", "141.95.255.255"))
        ),
        Network(
            "alibaba", 45102, "Alibaba (US) Technology Co., Ltd.", "US", "vps", (("47.240.0.0", "47.243.255.255"),)
        ),
        Network(
            "contabo",
            51167,
            "Contabo GmbH",
            "DE",
            "vps",
            (("161.97.64.0", "161.97.127.255"), ("144.91.64.0", "144.91.127.255")),
        ),
        # --- residential ISPs where compromised SOHO routers sit
        Network(
            "vnpt",
            45899,
            "VNPT Corp",
            "VN",
            "residential",
            (("113.160.0.0", "113.191.255.255"), ("14.160.0.0", "14.191.255.255")),
        ),
        Network("chinanet", 4134, "Chinanet", "CN", "residential", (("115.208.0.0", "115.215.255.255"),)),
        # --- CDNs and clouds everybody talks to
        Network(
            "cloudflare",
            13335,
            "Cloudflare, Inc.",
            "US",
            "cdn",
            (("104.16.0.0", "104.19.255.255"), ("172.65.0.0", "172.65.255.255")),
        ),
        Network(
            "amazon", 16509, "Amazon.com, Inc.", "US", "cloud", (("3.128.0.0", "3.191.255.255"),), ("2600:1f00::/34",)
        ),
        Network(
            "google",
            15169,
            "Google LLC",
            "US",
            "cloud",
            (("35.208.0.0", "35.215.255.255"), ("34.112.0.0", "34.115.255.255")),
            ("2001:4860::/34",),
        ),
        Network("microsoft", 8075, "Microsoft Corporation", "US", "cloud", (("20.192.0.0", "20.255.255.255"),)),
        # --- benign internet-wide scanners
        Network(
            "censys",
            398324,
            "Censys, Inc.",
            "US",
            "scanner",
            (
                ("162.142.125.0", "162.142.125.255"),
                ("167.248.133.0", "167.248.133.255"),
                ("206.168.32.0", "206.168.35.255"),
            ),
        ),
        Network("carinet", 10439, "CariNet, Inc.", "US", "scanner", (("71.6.128.0", "71.6.255.255"),)),
        Network("he", 6939, "Hurricane Electric LLC", "US", "scanner", (("184.104.0.0", "184.104.127.255"),)),
        # --- services a feed names by mistake, and research scanners it lists (simulate.realtraffic);
        # kept out of the background's pools (background=False) so that the background stays
        # what it was
        Network(
            "cloudflare_dns",
            13335,
            "Cloudflare, Inc.",
            "AU",
            "resolver",
            (("1.1.1.0", "1.1.1.255"), ("1.0.0.0", "1.0.0.255")),
            background=False,
        ),
        Network(
            "google_dns",
            15169,
            "Google LLC",
            "US",
            "resolver",
            (("8.8.8.0", "8.8.8.255"), ("8.8.4.0", "8.8.4.255")),
            background=False,
        ),
        Network(
            "quad9",
            19281,
            "Quad9",
            "US",
            "resolver",
            (("9.9.9.0", "9.9.9.255"), ("149.112.112.0", "149.112.112.255")),
            background=False,
        ),
        Network("fastly", 54113, "Fastly, Inc.", "US", "cdn", (("151.101.0.0", "151.101.255.255"),), background=False),
        Network(
            "akamai",
            20940,
            "Akamai International B.V.",
            "US",
            "cdn",
            (("23.192.0.0", "23.192.15.255"), ("23.215.0.0", "23.215.13.255")),
            background=False,
        ),
        Network(
            "censys_b",
            398324,
            "Censys, Inc.",
            "US",
            "scanner",
            (("167.94.138.0", "167.94.138.255"), ("66.132.159.0", "66.132.159.255")),
            background=False,
        ),
        Network(
            "censys_c", 398705, "Censys, Inc.", "US", "scanner", (("167.94.145.0", "167.94.146.255"),), background=False
        ),
        Network(
            "censys_d", 398722, "Censys, Inc.", "US", "scanner", (("199.45.154.0", "199.45.155.255"),), background=False
        ),
        Network(
            "driftnet",
            211298,
            "Driftnet Ltd",
            "GB",
            "scanner",
            (
                ("193.163.125.0", "193.163.125.255"),
                ("87.236.176.0", "87.236.176.255"),
                ("185.247.137.0", "185.247.137.255"),
            ),
            background=False,
        ),
        Network(
            "carinet_b",
            10439,
            "CariNet, Inc.",
            "US",
            "scanner",
            (("66.240.192.0", "66.240.255.255"),),
            background=False,
        ),
        Network(
            "internap",
            32475,
            "Internap Holding LLC",
            "US",
            "hosting",
            (("198.20.64.0", "198.20.127.255"),),
            background=False,
        ),
        Network(
            "advania",
            50613,
            "Advania Island ehf",
            "IS",
            "hosting",
            (("82.221.96.0", "82.221.159.255"),),
            background=False,
        ),
    ]
}
"""Networks by short key."""


def networks_of_kind(*kinds: str) -> list[Network]:
    """Networks of these kinds the background draws destinations and remote peers from."""
    return [n for n in NETWORKS.values() if n.kind in kinds and n.background]


def random_v4(rng: np.random.Generator, nets: list[Network], size: int) -> np.ndarray:
    """``size`` random IPv4 addresses (uint64) from the ranges of ``nets``, uniform by address."""
    ranges = np.concatenate([n.v4_ranges() for n in nets])
    widths = (ranges[:, 1] - ranges[:, 0] + 1).astype(np.float64)
    pick = rng.choice(len(ranges), size=size, p=widths / widths.sum())
    off = np.floor(rng.random(size) * widths[pick]).astype(np.uint64)
    addr = ranges[pick, 0] + off
    # keep clear of .0 and .255: they are rarely hosts
    low = addr & np.uint64(0xFF)
    addr = np.where(low == 0, addr + np.uint64(1), addr)
    addr = np.where(low == 255, addr - np.uint64(1), addr)
    return addr.astype(np.uint64)


def random_v6(rng: np.random.Generator, nets: list[Network], size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` random IPv6 addresses as (hi, lo) uint64 pairs inside the v6 prefixes of ``nets``."""
    prefixes = [ipaddress.IPv6Network(p) for n in nets for p in n.v6]
    pick = rng.integers(0, len(prefixes), size=size)
    hi = np.empty(size, dtype=np.uint64)
    lo = rng.integers(1, 1 << 16, size=size, dtype=np.uint64)  # low host ids, as hosts usually get
    for i, net in enumerate(prefixes):
        sel = pick == i
        base = int(net.network_address) >> 64
        free = 64 - net.prefixlen
        sub = rng.integers(0, 1 << min(free, 62), size=int(sel.sum()), dtype=np.uint64)
        hi[sel] = np.uint64(base) | sub
    return hi, lo


__all__ = ["Network", "NETWORKS", "networks_of_kind", "random_v4", "random_v6"]


def write_geo_tables(out_dir: Path) -> list[Path]:
    """The simulated world's networks as ip-location-db range CSVs (``asn.csv``: start,end,asn,org;
    ``country.csv``: start,end,country), for ``sightline geo load`` / ``hunt --geo``."""
    from ..store import atomic_write_text

    asn_lines, cc_lines = [], []
    for n in NETWORKS.values():
        name = '"' + n.as_name.replace('"', "'") + '"'
        ranges = [(a, b) for a, b in n.v4]
        for cidr in n.v6:
            net = ipaddress.ip_network(cidr, strict=False)
            ranges.append((str(net.network_address), str(net.broadcast_address)))
        for a, b in ranges:
            asn_lines.append(f"{a},{b},{n.asn},{name}")
            cc_lines.append(f"{a},{b},{n.country}")
    d = Path(out_dir)
    asn_path, cc_path = d / "asn.csv", d / "country.csv"
    atomic_write_text(asn_path, "\n".join(asn_lines) + "\n")
    atomic_write_text(cc_path, "\n".join(cc_lines) + "\n")
    return [asn_path, cc_path]
