"""Product/version text and scanner CPEs -> one canonical product id per edge product.

Scanners name the same appliance many ways: nmap says ``Fortinet FortiGate VPN`` or gives
``cpe:/o:fortinet:fortios:6.0.4``; Shodan says ``FortiOS``; Censys gives CPE 2.3 strings;
NVD splits one product into several CPEs (``pulsesecure:pulse_connect_secure`` and
``ivanti:connect_secure``; one BIG-IP CPE per module).  :func:`normalize_product` maps all of
them to a canonical ``vendor:product`` id (the key used in ``data/exposure/cve_ranges.json``)
plus a canonical CPE 2.3 string, and pulls the version out of the text where the scanner
left the version field empty.

The rules are data (:data:`PRODUCT_RULES`, :data:`CPE_ALIASES`); their order matters where
texts overlap (FortiGate before generic "VPN", NetScaler Gateway before ADC).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ProductRule",
    "PRODUCT_RULES",
    "CPE_ALIASES",
    "NormalizedProduct",
    "parse_cpe",
    "normalize_product",
    "make_cpe23",
]


@dataclass(frozen=True)
class ProductRule:
    """One text pattern -> canonical product."""

    pattern: re.Pattern[str]
    part: str  # CPE part: "o" operating system/firmware, "a" application, "h" hardware
    vendor: str
    product: str
    version_re: re.Pattern[str]  # how this vendor writes a version inside free text
    display: str


_DOTTED3 = re.compile(r"\bv?(\d+\.\d+\.\d+)")
_DOTTED = re.compile(r"\bv?(\d+(?:\.\d+)+(?:-h\d+)?)")
_IVANTI = re.compile(r"\b(\d+\.\d+R\d+(?:\.\d+)*)", re.I)
_CITRIX = re.compile(r"\b(\d+\.\d+-\d+\.\d+)")
_SONICOS = re.compile(r"\b(\d+\.\d+\.\d+(?:\.\d+)?-\d+[a-z]?)", re.I)
_CISCO = re.compile(r"\b(\d+\.\d+(?:\.\d+)?(?:\(\d+\w*\)\d*)?)")
_TPLINK = re.compile(r"\b(\d+\.\d+\.\d+(?:\s+Build\s+\d+)?)", re.I)
_PANOS = re.compile(r"\b(\d+\.\d+\.\d+(?:-h\d+)?)")
_ZYXEL = re.compile(r"\bV?(\d+\.\d+)(?:\([A-Z0-9.]+\))?")


def _r(pattern: str, part: str, vendor: str, product: str, version_re: re.Pattern[str], display: str) -> ProductRule:
    return ProductRule(re.compile(pattern, re.I), part, vendor, product, version_re, display)


PRODUCT_RULES: tuple[ProductRule, ...] = (
    _r(r"forti(?:gate|os|net\s+ssl[- ]?vpn)", "o", "fortinet", "fortios", _DOTTED3, "Fortinet FortiOS"),
    _r(r"ivanti\s+(?:connect|policy)\s+secure|pulse\s+(?:connect\s+)?secure|\bpulse\s+ssl\s*vpn",
       "a", "ivanti", "connect_secure", _IVANTI, "Ivanti Connect Secure"),
    _r(r"firepower\s+threat\s+defen[cs]e|\bcisco\s+ftd\b", "a", "cisco", "firepower_threat_defense",
       _CISCO, "Cisco Firepower Threat Defense"),
    _r(r"adaptive\s+security\s+appliance|\bcisco\s+asa\b|\basa\s+\d", "a", "cisco",
       "adaptive_security_appliance_software", _CISCO, "Cisco ASA"),
    _r(r"\bios[ -]?xe\b", "o", "cisco", "ios_xe", _CISCO, "Cisco IOS XE"),
    _r(r"pan-?os|palo\s*alto|globalprotect", "o", "paloaltonetworks", "pan-os", _PANOS, "Palo Alto PAN-OS"),
    _r(r"netscaler\s+gateway|citrix\s+gateway", "a", "citrix", "netscaler_gateway", _CITRIX,
       "Citrix NetScaler Gateway"),
    _r(r"netscaler|citrix\s+adc", "a", "citrix", "netscaler_application_delivery_controller", _CITRIX,
       "Citrix NetScaler ADC"),
    _r(r"big-?ip", "a", "f5", "big-ip", _DOTTED, "F5 BIG-IP"),
    _r(r"sonicwall|sonicos", "o", "sonicwall", "sonicos", _SONICOS, "SonicWall SonicOS"),
    _r(r"zyxel|zywall|usg\s+flex", "o", "zyxel", "zld", _ZYXEL, "Zyxel ZLD firewall"),
    _r(r"\bqnap\b|\bqts\b", "o", "qnap", "qts", _DOTTED, "QNAP QTS"),
    _r(r"synology|diskstation", "a", "synology", "diskstation_manager", _DOTTED, "Synology DSM"),
    _r(r"vigor\s*2960", "o", "draytek", "vigor2960_firmware", _DOTTED, "DrayTek Vigor2960"),
    _r(r"vigor\s*3900", "o", "draytek", "vigor3900_firmware", _DOTTED, "DrayTek Vigor3900"),
    _r(r"vigor\s*300b", "o", "draytek", "vigor300b_firmware", _DOTTED, "DrayTek Vigor300B"),
    _r(r"draytek|\bvigor\b", "o", "draytek", "vigor_firmware", _DOTTED, "DrayTek Vigor"),
    _r(r"archer\s*ax21", "o", "tp-link", "archer_ax21_firmware", _TPLINK, "TP-Link Archer AX21"),
    _r(r"microsoft\s+exchange", "a", "microsoft", "exchange_server", _DOTTED, "Microsoft Exchange Server"),
    _r(r"softether", "a", "softether", "vpn", _DOTTED, "SoftEther VPN"),
)
"""Free-text rules, first match wins."""

CPE_ALIASES: dict[str, str] = {
    "fortinet:fortios": "fortinet:fortios",
    "fortinet:fortigate": "fortinet:fortios",
    "ivanti:connect_secure": "ivanti:connect_secure",
    "ivanti:policy_secure": "ivanti:connect_secure",
    "pulsesecure:pulse_connect_secure": "ivanti:connect_secure",
    "pulsesecure:pulse_secure": "ivanti:connect_secure",
    "cisco:adaptive_security_appliance_software": "cisco:adaptive_security_appliance_software",
    "cisco:adaptive_security_appliance": "cisco:adaptive_security_appliance_software",
    "cisco:asa": "cisco:adaptive_security_appliance_software",
    "cisco:firepower_threat_defense": "cisco:firepower_threat_defense",
    "cisco:ios_xe": "cisco:ios_xe",
    "paloaltonetworks:pan-os": "paloaltonetworks:pan-os",
    "paloaltonetworks:pan_os": "paloaltonetworks:pan-os",
    "citrix:netscaler_application_delivery_controller": "citrix:netscaler_application_delivery_controller",
    "citrix:application_delivery_controller": "citrix:netscaler_application_delivery_controller",
    "citrix:application_delivery_controller_firmware": "citrix:netscaler_application_delivery_controller",
    "citrix:netscaler_gateway": "citrix:netscaler_gateway",
    "citrix:gateway": "citrix:netscaler_gateway",
    "citrix:gateway_firmware": "citrix:netscaler_gateway",
    "f5:big-ip": "f5:big-ip",
    "sonicwall:sonicos": "sonicwall:sonicos",
    "zyxel:zld": "zyxel:zld",
    "qnap:qts": "qnap:qts",
    "synology:diskstation_manager": "synology:diskstation_manager",
    "draytek:vigor2960_firmware": "draytek:vigor2960_firmware",
    "draytek:vigor3900_firmware": "draytek:vigor3900_firmware",
    "draytek:vigor300b_firmware": "draytek:vigor300b_firmware",
    "tp-link:archer_ax21_firmware": "tp-link:archer_ax21_firmware",
    "microsoft:exchange_server": "microsoft:exchange_server",
    "softether:vpn": "softether:vpn",
    "softether:softether_vpn": "softether:vpn",
}
"""Scanner/NVD ``vendor:product`` -> canonical id.  BIG-IP modules are folded by prefix."""

_PART = {
    r.vendor + ":" + r.product: r.part for r in PRODUCT_RULES
}
_DISPLAY = {r.vendor + ":" + r.product: r.display for r in PRODUCT_RULES}
_RULE_BY_ID = {r.vendor + ":" + r.product: r for r in PRODUCT_RULES}


@dataclass(frozen=True)
class NormalizedProduct:
    """Canonical identity of one scanned service's product."""

    product_id: str  # "vendor:product", the key of cve_ranges.json
    vendor: str
    display: str
    version: str | None
    cpe: str  # CPE 2.3 formatted string, version "*" when unknown


def parse_cpe(text: str) -> tuple[str, str, str, str | None] | None:
    """Split a CPE 2.2 URI (``cpe:/o:fortinet:fortios:6.0.4``) or CPE 2.3 string.

    Returns
    -------
    (part, vendor, product, version) or None
        Lower-cased; version ``None`` when absent or a wildcard.  ``None`` for text that is
        not a CPE.
    """
    t = text.strip()
    low = t.lower()
    if low.startswith("cpe:2.3:"):
        fields = re.split(r"(?<!\\):", t[8:])
        if len(fields) < 3:
            return None
        part, vendor, product = fields[0], fields[1], fields[2]
        version = fields[3] if len(fields) > 3 else None
    elif low.startswith("cpe:/"):
        fields = t[5:].split(":")
        if len(fields) < 3:
            return None
        part, vendor, product = fields[0], fields[1], fields[2]
        version = fields[3] if len(fields) > 3 else None
    else:
        return None
    if not vendor or not product or part.lower() not in ("a", "o", "h"):
        return None
    version = version.replace("\\", "") if version else None
    if version in ("*", "-", ""):
        version = None
    return part.lower(), vendor.lower(), product.lower(), version


def make_cpe23(part: str, vendor: str, product: str, version: str | None) -> str:
    """A CPE 2.3 formatted string; characters CPE reserves are escaped."""
    def esc(v: str) -> str:
        return re.sub(r"([^A-Za-z0-9_.\-])", r"\\\1", v.replace(" ", "_"))

    ver = esc(version) if version else "*"
    return f"cpe:2.3:{part}:{esc(vendor)}:{esc(product)}:{ver}:*:*:*:*:*:*:*"


def _canonical_from_cpe(vendor: str, product: str) -> str | None:
    key = f"{vendor}:{product}"
    if key in CPE_ALIASES:
        return CPE_ALIASES[key]
    if vendor == "f5" and product.startswith("big-ip"):
        return "f5:big-ip"
    if vendor == "zyxel" and re.match(r"(atp|usg|zywall|vpn)\w*_firmware$", product):
        return "zyxel:zld"
    if vendor == "draytek" and product.startswith("vigor"):
        return "draytek:vigor_firmware"
    return None


def _clean_version(rule: ProductRule, version: str | None) -> str | None:
    """Cut a scanner's version field down to the vendor's own notation.

    ``v7.2.4,build1396 (GA)`` -> ``7.2.4``: FortiOS build numbers would otherwise sort a
    patched 7.2.4 above the range bound ``7.2.4``.
    """
    if not version:
        return None
    m = rule.version_re.search(version)
    if m:
        return re.sub(r"\s+", " ", m.group(1)).strip()
    return version.strip() or None


def normalize_product(
    product: str | None,
    version: str | None = None,
    cpes: list[str] | None = None,
    banner: str | None = None,
) -> NormalizedProduct | None:
    """Recognise an edge product from what a scanner reported.

    Parameters
    ----------
    product, version
        The scanner's product and version fields (nmap ``-sV``, Shodan, Censys).
    cpes
        CPE strings the scanner attached (2.2 URI or 2.3); a known CPE wins over text.
    banner
        Free text (banner, extrainfo, HTTP title) searched when the product field is empty.

    Returns
    -------
    NormalizedProduct or None
        ``None`` when the service is not one of the edge products sightline knows.
    """
    for c in cpes or ():
        parsed = parse_cpe(c)
        if parsed is None:
            continue
        _part, vendor, prod, cver = parsed
        pid = _canonical_from_cpe(vendor, prod)
        if pid is None:
            continue
        rule = _RULE_BY_ID[pid] if pid in _RULE_BY_ID else None
        ver = version or cver
        if rule is not None:
            ver = _clean_version(rule, ver)
        v, p = pid.split(":", 1)
        return NormalizedProduct(pid, v, _DISPLAY.get(pid, pid), ver, make_cpe23(_PART.get(pid, "a"), v, p, ver))
    for text, is_banner in ((product, False), (banner, True)):
        if not text:
            continue
        for rule in PRODUCT_RULES:
            hit = rule.pattern.search(text)
            if hit:
                ver = _clean_version(rule, version)
                if ver is None:
                    # Only look for the version right after the product name: a banner also
                    # holds "HTTP/1.1" and dates that would read as versions.
                    tail = text[hit.start():]
                    if is_banner:
                        tail = tail[:80]
                    m = rule.version_re.search(tail)
                    ver = m.group(1) if m else None
                pid = f"{rule.vendor}:{rule.product}"
                return NormalizedProduct(
                    pid, rule.vendor, rule.display, ver, make_cpe23(rule.part, rule.vendor, rule.product, ver)
                )
    return None
