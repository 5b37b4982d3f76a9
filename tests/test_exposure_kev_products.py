"""Both sides of KEV ranges for 30+ products, through the scan readers and the bundled table.

Each case is an advisory fact (vendor bulletin / CVE record), written here independently of
the generated table: the last vulnerable release is flagged with the CVE, the first fixed
release is not.  Scans go in as nmap ``-oX`` XML (the shape nmap writes: a CPE where nmap
names one, else only the product text) and as Shodan banners (``product``/``version``/
``cpe23``), so the product mapping, the version notation and the range table are all tested
together.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest

from sightline.exposure import assess_exposure, load_kev, load_scans

from .datafiles import NMAP

# (product text as a scanner writes it, CPE or None, CVE, last vulnerable, first fixed, why)
CASES: list[tuple[str, str | None, str, str, str, str]] = [
    ("Apache httpd", "cpe:/a:apache:http_server", "CVE-2021-41773", "2.4.49", "2.4.51", "only 2.4.49"),
    ("Apache httpd", "cpe:/a:apache:http_server", "CVE-2021-42013", "2.4.50", "2.4.51", "2.4.49-2.4.50"),
    ("Fortinet FortiGate SSL VPN", None, "CVE-2022-42475", "7.2.0", "7.2.8", "7.2.0-7.2.2, FG-IR-22-398"),
    ("Fortinet FortiGate SSL VPN", "cpe:/o:fortinet:fortios", "CVE-2024-21762", "7.2.6", "7.2.7", "FG-IR-24-015"),
    ("FortiOS", None, "CVE-2023-27997", "7.0.10", "7.0.12", "FG-IR-23-097"),
    ("FortiOS", None, "CVE-2018-13382", "6.0.4", "6.0.5", "FG-IR-18-389"),
    ("Fortinet FortiGate SSL VPN", None, "CVE-2018-13379", "5.4.10", "5.4.13", "5.4.6-5.4.12 (override)"),
    (
        "Palo Alto GlobalProtect",
        "cpe:/o:paloaltonetworks:pan-os",
        "CVE-2024-3400",
        "10.2.9",
        "10.2.9-h1",
        "hotfix fixes it",
    ),
    ("Palo Alto PAN-OS", None, "CVE-2024-0012", "10.2.12-h1", "10.2.12-h2", "hotfix notation"),
    ("Palo Alto PAN-OS", None, "CVE-2020-2021", "9.0.8", "9.0.9", "PAN-OS 9.0 < 9.0.9"),
    ("Ivanti Connect Secure", None, "CVE-2023-46805", "22.4R2.1", "22.7R2.3", "Ivanti R notation"),
    ("Pulse Secure SSL VPN", None, "CVE-2019-11510", "9.0R3.3", "9.0R3.4", "Pulse 9.0R3.4 fixed (override)"),
    ("Citrix NetScaler ADC", None, "CVE-2023-3519", "13.1-48.47", "13.1-49.13", "build notation"),
    ("Citrix NetScaler Gateway", None, "CVE-2023-4966", "13.1-49.13", "13.1-49.15", "Citrix Bleed, CNA 'patch'"),
    (
        "F5 BIG-IP",
        "cpe:/a:f5:big-ip_local_traffic_manager",
        "CVE-2022-1388",
        "15.1.5",
        "15.1.5.1",
        "BIG-IP modules fold to one product",
    ),
    ("Zyxel USG FLEX", None, "CVE-2023-28771", "5.35", "5.36", "'4.60 through 5.35'"),
    ("SonicWall SonicOS", None, "CVE-2024-40766", "6.5.4.14-109n", "6.5.4.15-116n", "per-branch override"),
    (
        "Atlassian Confluence",
        "cpe:/a:atlassian:confluence_server",
        "CVE-2022-26134",
        "7.13.6",
        "7.13.7",
        "JSON 4 split pairs",
    ),
    ("Atlassian Confluence", None, "CVE-2023-22515", "8.3.2", "8.3.3", "Confluence 8.x"),
    ("Atlassian Confluence", None, "CVE-2023-22527", "8.5.3", "8.5.4", "Confluence 8.5"),
    ("GitLab", "cpe:/a:gitlab:gitlab", "CVE-2021-22205", "13.8.7", "13.8.8", "ExifTool in GitLab"),
    ("Jenkins", "cpe:/a:jenkins:jenkins", "CVE-2018-1000861", "2.153", "2.154", "Stapler"),
    ("Progress MOVEit Transfer", None, "CVE-2023-34362", "2021.0.6", "2021.0.7", "year-numbered versions"),
    ("JetBrains TeamCity", None, "CVE-2024-27198", "2023.11.3", "2023.11.4", "TeamCity"),
    ("ConnectWise ScreenConnect", None, "CVE-2024-1709", "23.9.7", "23.9.8", "ScreenConnect"),
    ("CrushFTP", None, "CVE-2024-4040", "10.7.0", "10.7.1", "CrushFTP"),
    (
        "Ivanti EPMM",
        "cpe:/a:ivanti:endpoint_manager_mobile",
        "CVE-2023-35078",
        "11.10.0.1",
        "11.10.0.2",
        "four-part versions",
    ),
    ("Drupal", "cpe:/a:drupal:drupal", "CVE-2018-7600", "7.57", "7.58", "Drupalgeddon 2"),
    ("ActiveMQ OpenWire transport", "cpe:/a:apache:activemq", "CVE-2016-3088", "5.13.3", "5.14.0", "ActiveMQ"),
    ("Apache Struts", "cpe:/a:apache:struts", "CVE-2018-11776", "2.5.16", "2.5.17", "Struts"),
    ("OpenSSL", "cpe:/a:openssl:openssl", "CVE-2014-0160", "1.0.1f", "1.0.1g", "letter releases"),
    ("Apache Tomcat", "cpe:/a:apache:tomcat", "CVE-2017-12617", "7.0.81", "7.0.82", "NVD exact version list"),
    (
        "Microsoft IIS httpd",
        "cpe:/a:microsoft:internet_information_services",
        "CVE-2017-7269",
        "6.0",
        "7.5",
        "IIS 6.0 WebDAV",
    ),
    ("Apache httpd", "cpe:/a:apache:http_server", "CVE-2024-38475", "2.4.59", "2.4.60", "mod_rewrite"),
    ("Apache Tomcat", "cpe:/a:apache:tomcat", "CVE-2025-24813", "9.0.98", "9.0.99", "partial PUT"),
    ("PHP", "cpe:/a:php:php", "CVE-2024-4577", "8.1.28", "8.1.29", "CGI argument injection"),
    ("GeoServer", "cpe:/a:geoserver:geoserver", "CVE-2024-36401", "2.24.3", "2.24.4", "OGC filter eval"),
    ("Wazuh", "cpe:/a:wazuh:wazuh", "CVE-2025-24016", "4.9.0", "4.9.1", "DistributedAPI"),
    ("Craft CMS", "cpe:/a:craftcms:craft_cms", "CVE-2025-23209", "4.13.7", "4.13.8", "Craft CMS 4"),
    ("Apache OFBiz", "cpe:/a:apache:ofbiz", "CVE-2024-38856", "18.12.14", "18.12.15", "OFBiz"),
    ("Joomla!", "cpe:/a:joomla:joomla\\!", "CVE-2023-23752", "4.2.7", "4.2.8", "escaped CPE name"),
    ("FortiProxy", "cpe:/a:fortinet:fortiproxy", "CVE-2022-42475", "7.2.1", "7.2.2", "FG-IR-22-398"),
]


def _nmap_xml(rows: list[tuple[str, int, str, str, str | None]]) -> str:
    """nmap -oX output, one host per service (nmaprun/host/address/ports/port/state/service/cpe)."""
    hosts = []
    for ip, port, product, version, cpe in rows:
        cpe_el = f"<cpe>{cpe}:{version}</cpe>" if cpe else ""
        hosts.append(
            f'<host starttime="1718000000" endtime="1718000060"><status state="up" reason="syn-ack"/>'
            f'<address addr="{ip}" addrtype="ipv4"/><ports>'
            f'<port protocol="tcp" portid="{port}"><state state="open" reason="syn-ack" reason_ttl="54"/>'
            f'<service name="https" product={quoteattr(product)} version={quoteattr(version)} method="probed" '
            f'conf="10">{cpe_el}</service></port></ports></host>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<nmaprun scanner="nmap" args="nmap -sV -oX scan.xml" '
        'start="1718000000" version="7.94" xmloutputversion="1.05">'
        + "".join(hosts)
        + '<runstats><finished time="1718000100"/></runstats></nmaprun>\n'
    )


def _shodan(rows: list[tuple[str, int, str, str, str | None]]) -> str:
    lines = []
    for ip, port, product, version, cpe in rows:
        b: dict[str, object] = {
            "ip_str": ip,
            "port": port,
            "transport": "tcp",
            "product": product,
            "version": version,
            "timestamp": "2024-06-10T06:13:20.000000",
        }
        if cpe:
            part, vendor, prod = cpe[5:].split(":")
            b["cpe23"] = [f"cpe:2.3:{part}:{vendor}:{prod}:{version}"]
        lines.append(json.dumps(b))
    return "\n".join(lines) + "\n"


def _rows(side: int) -> list[tuple[str, int, str, str, str | None]]:
    return [
        (f"198.51.100.{i + 1}", 443, product, case[3 + side], cpe)
        for i, case in enumerate(CASES)
        for product, cpe in [(case[0], case[1])]
    ]


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], dict[str, set[str]]]:
    """CVEs flagged (version-confirmed) per (format, side) and address."""
    d = tmp_path_factory.mktemp("kevscans")
    kev = load_kev()
    out: dict[tuple[str, int], dict[str, set[str]]] = {}
    for side in (0, 1):
        for fmt, text in (("nmap", _nmap_xml(_rows(side))), ("shodan", _shodan(_rows(side)))):
            path = d / f"{fmt}-{side}.{'xml' if fmt == 'nmap' else 'json'}"
            path.write_text(text)
            load = load_scans([path])
            assert load.quarantine.num_rows == 0
            entries = assess_exposure(load.services, kev)
            out[(fmt, side)] = {
                e["ip"]: {c["cve"] for c in e["cves"] if c["match"] != "possibly_affected"} for e in entries
            }
    return out


@pytest.mark.parametrize("fmt", ["nmap", "shodan"])
@pytest.mark.parametrize(("i", "case"), list(enumerate(CASES)), ids=[f"{c[2]}-{c[0]}" for c in CASES])
def test_vulnerable_release_flagged_fixed_release_not(found: dict, fmt: str, i: int, case: tuple) -> None:
    product, _cpe, cve, bad, good, why = case
    ip = f"198.51.100.{i + 1}"
    assert cve in found[(fmt, 0)].get(ip, set()), f"{product} {bad} should carry {cve} ({why})"
    assert cve not in found[(fmt, 1)].get(ip, set()), f"{product} {good} is fixed for {cve} ({why})"


def test_thirty_distinct_kev_products_are_covered() -> None:
    from sightline.exposure.cpe import normalize_product

    from .datafiles import kev_catalog

    kev = {v["cveID"] for v in kev_catalog()["vulnerabilities"]}
    assert all(c[2] in kev for c in CASES)
    products = set()
    for product, cpe, _cve, bad, _good, _why in CASES:
        n = normalize_product(product, bad, [f"{cpe}:{bad}"] if cpe else [])
        assert n is not None, product
        products.add(n.product_id)
    assert len(products) >= 30


def test_fortios_7_2_0_against_7_2_8_and_apache_2_4_49_against_2_4_51(found: dict) -> None:
    fgt = next(i for i, c in enumerate(CASES) if c[2] == "CVE-2022-42475")
    apache = next(i for i, c in enumerate(CASES) if c[2] == "CVE-2021-41773")
    for fmt in ("nmap", "shodan"):
        assert {"CVE-2022-42475", "CVE-2023-27997", "CVE-2024-21762"} <= found[(fmt, 0)][f"198.51.100.{fgt + 1}"]
        assert not {"CVE-2022-42475", "CVE-2023-27997", "CVE-2024-21762"} & found[(fmt, 1)].get(
            f"198.51.100.{fgt + 1}", set()
        )
        assert found[(fmt, 0)][f"198.51.100.{apache + 1}"] >= {"CVE-2021-41773", "CVE-2021-42013"}
        assert not {"CVE-2021-41773", "CVE-2021-42013"} & found[(fmt, 1)].get(f"198.51.100.{apache + 1}", set())


def test_real_nmap_xml_jenkins_from_http_headers() -> None:
    """A real nmap run (python-libnmap's test data): Jenkins 1.508 on 8080 carries the Stapler
    RCE CVE-2018-1000861 (fixed in 2.154 / LTS 2.138.4) by version; an nginx whose version nmap
    could not read is only *possibly* affected."""
    load = load_scans(sorted(NMAP.glob("*.xml")))
    entries = {(e["ip"], e["port"]): e for e in assess_exposure(load.services, load_kev())}
    jenkins = entries[("127.0.0.1", 8080)]
    assert jenkins["version"] == "1.508" and jenkins["match"] == "product_name"
    stapler = next(c for c in jenkins["cves"] if c["cve"] == "CVE-2018-1000861")
    assert (stapler["match"], stapler["range_source"]) == ("product_name", "nvd_configuration")
    nginx = entries[("172.28.1.3", 80)]
    assert nginx["version"] is None and nginx["match"] == "possibly_affected"
    assert all(c["match"] == "possibly_affected" for c in nginx["cves"])


def test_rows_say_where_the_range_came_from_and_rank_edge_devices_first(tmp_path: Path) -> None:
    rows = [
        ("198.51.100.1", 443, "Apache httpd", "2.4.49", "cpe:/a:apache:http_server"),
        ("198.51.100.2", 443, "Fortinet FortiGate SSL VPN", "7.2.0", None),
        ("198.51.100.3", 443, "Citrix NetScaler ADC", "13.1-48.47", None),
        ("198.51.100.4", 443, "Ivanti Connect Secure", "", None),
    ]
    path = tmp_path / "s.xml"
    path.write_text(_nmap_xml(rows))
    entries = assess_exposure(load_scans([path]).services, load_kev())
    by_ip = {e["ip"]: e for e in entries}
    assert by_ip["198.51.100.1"]["match"] == "exact_cpe" and not by_ip["198.51.100.1"]["edge_device"]
    assert by_ip["198.51.100.2"]["match"] == "product_name" and by_ip["198.51.100.2"]["edge_device"]
    citrix = next(c for c in by_ip["198.51.100.3"]["cves"] if c["cve"] == "CVE-2023-3519")
    assert citrix["range_source"] == "nvd_configuration"
    fgt = {c["cve"]: c["range_source"] for c in by_ip["198.51.100.2"]["cves"]}
    assert "CVE-2018-13379" not in fgt  # 7.2.0 is outside the 2018 ranges
    assert by_ip["198.51.100.4"]["match"] == "possibly_affected"  # no version: every ICS KEV CVE, possibly
    assert {"CVE-2023-46805", "CVE-2019-11510"} <= {c["cve"] for c in by_ip["198.51.100.4"]["cves"]}
    order = [e["ip"] for e in entries]
    # confirmed before possible; within confirmed, edge devices before the web server
    assert order.index("198.51.100.2") < order.index("198.51.100.1") < order.index("198.51.100.4")
    assert order.index("198.51.100.3") < order.index("198.51.100.1")


def test_kev_update_builds_workspace_ranges_from_record_mirrors(tmp_path: Path) -> None:
    """``sightline kev update --cve-records DIR --nvd DIR`` on real (trimmed) records: the
    workspace gets its own table, and ``sightline exposure`` uses it."""
    from typer.testing import CliRunner

    from sightline.cli import app

    recs = Path(__file__).parent / "data" / "kev_records"
    ws = tmp_path / "ws"
    r = CliRunner().invoke(
        app, ["kev", "update", "--cve-records", str(recs / "cve5"), "--nvd", str(recs / "nvd"), "--workspace", str(ws)]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((ws / "kev" / "cve_ranges.json").read_text())
    got = {e["cve"]: e for e in doc["cves"]}
    assert got["CVE-2023-4966"]["range_source"]["citrix:netscaler_gateway"] == "cve_record"
    assert got["CVE-2021-41773"]["products"] == {"apache:http_server": ["2.4.49"]}
    assert doc["unranged"]["CVE-2021-44228"] == "no record in the sources"
    scan = tmp_path / "s.xml"
    scan.write_text(_nmap_xml([("198.51.100.9", 443, "Apache httpd", "2.4.49", "cpe:/a:apache:http_server")]))
    r = CliRunner().invoke(app, ["exposure", str(scan), "--workspace", str(ws), "--json", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    (row,) = json.loads((tmp_path / "e.json").read_text())["exposure"]
    assert {c["cve"] for c in row["cves"]} == {"CVE-2021-41773", "CVE-2021-42013"}
