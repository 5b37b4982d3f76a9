"""Version ordering and CVE range boundaries (both sides of every bound)."""

from __future__ import annotations

import pytest

from sightline.exposure.assess import load_cve_ranges, match_cves
from sightline.exposure.cpe import normalize_product, parse_cpe
from sightline.exposure.versions import compare_versions, in_range, version_key

RANGES = load_cve_ranges()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("7.2", "7.2.0", 0),
        ("7.2.4", "7.2.10", -1),
        ("10.2.9", "10.2.9-h1", -1),
        ("10.2.9-h1", "10.2.10", -1),
        ("22.4R2", "22.4R2.1", -1),
        ("9.1R18.3", "22.1R1", -1),
        ("13.1-48.47", "13.1-49.13", -1),
        ("6.5.4.14-109n", "6.5.4.15-116n", -1),
        ("1.1.3 Build 20221125", "1.1.4", -1),
        ("v7.2.4", "7.2.4", 0),
    ],
    ids=lambda v: str(v),
)
def test_compare_versions(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_unknown_version_is_never_in_range() -> None:
    assert version_key("unknown") is None
    assert not in_range(None, {"fixed": "99"})
    assert not in_range("n/a", {"introduced": "0"})
    with pytest.raises(ValueError):
        compare_versions("x", "1")


# Vendor notation as scanners report it: (product id, version, CVE, affected?).
VENDOR_CASES = [
    ("fortinet:fortios", "5.6.2", "CVE-2018-13379", False),
    ("fortinet:fortios", "5.6.3", "CVE-2018-13379", True),
    ("fortinet:fortios", "6.0.4", "CVE-2018-13379", True),
    ("fortinet:fortios", "6.0.5", "CVE-2018-13379", False),
    ("fortinet:fortios", "7.2.2", "CVE-2022-42475", True),
    ("fortinet:fortios", "7.2.3", "CVE-2022-42475", False),
    ("fortinet:fortios", "7.2.4", "CVE-2023-27997", True),
    ("fortinet:fortios", "7.2.5", "CVE-2023-27997", False),
    ("fortinet:fortios", "7.4.0", "CVE-2023-27997", False),
    ("fortinet:fortios", "7.4.2", "CVE-2024-21762", True),
    ("fortinet:fortios", "7.4.3", "CVE-2024-21762", False),
    ("fortinet:fortios", "7.6.0", "CVE-2024-21762", False),
    ("fortinet:fortios", "5.6.99", "CVE-2024-21762", False),
    ("ivanti:connect_secure", "22.4R2.1", "CVE-2023-46805", True),
    ("ivanti:connect_secure", "22.6R2", "CVE-2023-46805", True),
    ("ivanti:connect_secure", "22.7R1", "CVE-2023-46805", False),
    ("ivanti:connect_secure", "9.1R18", "CVE-2024-21887", True),
    ("ivanti:connect_secure", "9.1R18.3", "CVE-2024-21887", False),
    ("ivanti:connect_secure", "8.3R7.1", "CVE-2024-21887", False),
    ("ivanti:connect_secure", "8.2R12", "CVE-2019-11510", True),
    ("ivanti:connect_secure", "8.2R12.1", "CVE-2019-11510", False),
    ("ivanti:connect_secure", "8.1R15", "CVE-2019-11510", False),
    ("ivanti:connect_secure", "9.0R3.3", "CVE-2019-11510", True),
    ("ivanti:connect_secure", "9.0R3.4", "CVE-2019-11510", False),
    ("citrix:netscaler_application_delivery_controller", "13.1-48.47", "CVE-2023-3519", True),
    ("citrix:netscaler_application_delivery_controller", "13.1-49.13", "CVE-2023-3519", False),
    ("citrix:netscaler_gateway", "13.0-91.12", "CVE-2023-3519", True),
    ("citrix:netscaler_gateway", "13.0-91.13", "CVE-2023-3519", False),
    ("citrix:netscaler_gateway", "14.1-4.42", "CVE-2023-3519", False),
    ("citrix:netscaler_gateway", "12.1-65.25", "CVE-2023-3519", False),
    ("paloaltonetworks:pan-os", "10.1.12", "CVE-2024-3400", False),
    ("paloaltonetworks:pan-os", "10.2.0", "CVE-2024-3400", True),
    ("paloaltonetworks:pan-os", "10.2.9", "CVE-2024-3400", True),
    ("paloaltonetworks:pan-os", "10.2.9-h1", "CVE-2024-3400", False),
    ("paloaltonetworks:pan-os", "11.1.2-h1", "CVE-2024-3400", True),
    ("paloaltonetworks:pan-os", "11.1.2-h3", "CVE-2024-3400", False),
    ("f5:big-ip", "15.1.5", "CVE-2022-1388", True),
    ("f5:big-ip", "15.1.5.1", "CVE-2022-1388", False),
    ("f5:big-ip", "16.1.2.1", "CVE-2022-1388", True),
    ("f5:big-ip", "16.1.2.2", "CVE-2022-1388", False),
    ("f5:big-ip", "12.1.6", "CVE-2022-1388", True),
    ("f5:big-ip", "17.0.0", "CVE-2022-1388", False),
    ("sonicwall:sonicos", "7.0.1-5035", "CVE-2024-40766", True),
    ("sonicwall:sonicos", "7.0.1-5036", "CVE-2024-40766", False),
    ("sonicwall:sonicos", "7.1.1-7040", "CVE-2024-40766", False),
    ("sonicwall:sonicos", "6.5.4.14-109n", "CVE-2024-40766", True),
    ("sonicwall:sonicos", "6.5.4.15-116n", "CVE-2024-40766", False),
    ("zyxel:zld", "4.50", "CVE-2023-28771", False),
    ("zyxel:zld", "4.60", "CVE-2023-28771", True),
    ("zyxel:zld", "5.35", "CVE-2023-28771", True),
    ("zyxel:zld", "5.36", "CVE-2023-28771", False),
    ("draytek:vigor2960_firmware", "1.3.1_Beta", "CVE-2020-8515", True),
    ("draytek:vigor2960_firmware", "1.5.1", "CVE-2020-8515", False),
    ("tp-link:archer_ax21_firmware", "1.1.3 Build 20221125", "CVE-2023-1389", True),
    ("tp-link:archer_ax21_firmware", "1.1.4 Build 20230219", "CVE-2023-1389", False),
]


@pytest.mark.parametrize(
    ("pid", "version", "cve", "affected"), VENDOR_CASES, ids=[f"{c[2]}-{c[1]}" for c in VENDOR_CASES]
)
def test_vendor_versions_against_curated_ranges(pid: str, version: str, cve: str, affected: bool) -> None:
    assert (cve in match_cves(pid, version, RANGES)) is affected


def _step(bound: str, delta: int) -> str:
    """The next version above (delta=+1) or below (-1) ``bound`` in the last digit run."""
    key = list(version_key(bound) or ())
    if delta > 0:
        key[-1] += 1
    else:
        while key and key[-1] == 0:
            key.pop()
        key[-1] -= 1
        key.append(99999)  # the highest release of the previous line
    return ".".join(str(k) for k in key)


def _boundary_cases() -> list[tuple[str, str, dict[str, str], str, bool]]:
    cases = []
    for entry in RANGES:
        for pid, ranges in entry["products"].items():
            for rng in ranges:
                tag = f"{entry['cve']}:{pid}"
                if "introduced" in rng and (version_key(rng["introduced"]) or (0,)) != (0,):
                    cases.append((tag, rng["introduced"], rng, "introduced", True))
                    cases.append((tag, _step(rng["introduced"], -1), rng, "below introduced", False))
                if "fixed" in rng:
                    cases.append((tag, rng["fixed"], rng, "fixed", False))
                    cases.append((tag, _step(rng["fixed"], -1), rng, "below fixed", True))
                if "last_affected" in rng:
                    cases.append((tag, rng["last_affected"], rng, "last affected", True))
                    cases.append((tag, _step(rng["last_affected"], +1), rng, "above last affected", False))
    return cases


BOUNDARY_CASES = _boundary_cases()


@pytest.mark.parametrize(
    ("tag", "version", "rng", "side", "inside"), BOUNDARY_CASES, ids=[f"{c[0]}-{c[3]}-{c[1]}" for c in BOUNDARY_CASES]
)
def test_every_curated_range_boundary_both_sides(
    tag: str, version: str, rng: dict[str, str], side: str, inside: bool
) -> None:
    assert in_range(version, rng) is inside


def test_every_curated_cve_is_in_the_real_kev_catalog_and_cites_a_source() -> None:
    from .datafiles import kev_catalog

    kev = kev_catalog()
    ids = {v["cveID"] for v in kev["vulnerabilities"]}
    for entry in RANGES:
        assert entry["cve"] in ids, entry["cve"]
        assert entry["source"].startswith(("CVE record", "NVD configuration", "override"))
        assert set(entry["range_source"]) == set(entry["products"]) | set(entry.get("all_versions", ()))
        assert set(entry["range_source"].values()) <= {"cve_record", "nvd_configuration", "override"}


@pytest.mark.parametrize(
    ("product", "version", "cpes", "banner", "pid", "nver"),
    [
        ("Fortinet FortiGate SSL VPN", "v7.2.4,build1396 (GA)", [], None, "fortinet:fortios", "7.2.4"),
        (None, None, ["cpe:/o:fortinet:fortios:6.0.4"], None, "fortinet:fortios", "6.0.4"),
        ("Pulse Secure SSL VPN", "9.0R3.3", [], None, "ivanti:connect_secure", "9.0R3.3"),
        (
            None,
            None,
            ["cpe:2.3:a:pulsesecure:pulse_connect_secure:9.1r11:*:*:*:*:*:*:*"],
            None,
            "ivanti:connect_secure",
            "9.1r11",
        ),
        (None, None, ["cpe:2.3:a:f5:big-ip_access_policy_manager:16.1.2:*:*:*:*:*:*:*"], None, "f5:big-ip", "16.1.2"),
        ("Citrix Gateway", "13.0-91.12", [], None, "citrix:netscaler_gateway", "13.0-91.12"),
        (None, None, [], "HTTP/1.1 200 OK <title>FortiGate - FortiOS v6.0.4</title>", "fortinet:fortios", "6.0.4"),
        ("Zyxel ZLD", "V5.35(ABPS.0)", [], None, "zyxel:zld", "5.35"),
        ("Microsoft Exchange smtpd", None, [], None, "microsoft:exchange_server", None),
        ("SoftEther VPN Server", "4.38", [], None, "softether:vpn", "4.38"),
        ("DrayTek Vigor2960 httpd", "1.4.4_Beta", [], None, "draytek:vigor2960_firmware", "1.4.4"),
        ("Cisco ASA httpd", "9.16(3)19", [], None, "cisco:adaptive_security_appliance_software", "9.16(3)19"),
    ],
)
def test_normalize_product(product, version, cpes, banner, pid, nver) -> None:  # type: ignore[no-untyped-def]
    n = normalize_product(product, version, cpes, banner)
    assert n is not None and n.product_id == pid and n.version == nver
    assert n.cpe.startswith("cpe:2.3:") and f":{pid.split(':')[1]}:" in n.cpe


def test_normalize_keeps_unknown_cpes_and_ignores_bad_ones() -> None:
    ssh = normalize_product("OpenSSH", "8.9p1", ["cpe:/a:openbsd:openssh:8.9p1"])
    assert ssh is not None and (ssh.product_id, ssh.version, ssh.match) == ("openbsd:openssh", "8.9p1", "cpe")
    assert normalize_product("Unknown thing", None, ["not a cpe", "cpe:/x:a:b"]) is None
    assert parse_cpe("cpe:/o:fortinet:fortios") == ("o", "fortinet", "fortios", None)
