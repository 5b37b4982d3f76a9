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
    "EDGE_PRODUCTS",
    "canonical_product",
    "is_edge",
    "product_for_text",
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
    edge: bool = True  # an edge device (firewall, VPN, gateway): ranked first among equals


_DOTTED3 = re.compile(r"\bv?(\d+\.\d+\.\d+)")
_DOTTED = re.compile(r"\bv?(\d+(?:\.\d+)+(?:-h\d+)?)")
_IVANTI = re.compile(r"\b(\d+\.\d+R\d+(?:\.\d+)*)", re.I)
_CITRIX = re.compile(r"\b(\d+\.\d+-\d+\.\d+)")
_SONICOS = re.compile(r"\b(\d+\.\d+\.\d+(?:\.\d+)?-\d+[a-z]?)", re.I)
_CISCO = re.compile(r"\b(\d+\.\d+(?:\.\d+)?(?:\(\d+\w*\)\d*)?)")
_TPLINK = re.compile(r"\b(\d+\.\d+\.\d+(?:\s+Build\s+\d+)?)", re.I)
_PANOS = re.compile(r"\b(\d+\.\d+\.\d+(?:-h\d+)?)")
_JUNOS = re.compile(r"\b(\d+\.\d+[A-Z]\d+(?:[.-]S?\d+)*)", re.I)
_ZYXEL = re.compile(r"\bV?(\d+\.\d+)(?:\([A-Z0-9.]+\))?")


def _r(
    pattern: str, part: str, vendor: str, product: str, version_re: re.Pattern[str], display: str, edge: bool = True
) -> ProductRule:
    return ProductRule(re.compile(pattern, re.I), part, vendor, product, version_re, display, edge)


def _w(pattern: str, vendor: str, product: str, display: str, version_re: re.Pattern[str] | None = None) -> ProductRule:
    """A web server or application (not an edge device)."""
    return _r(pattern, "a", vendor, product, version_re or _DOTTED, display, edge=False)


PRODUCT_RULES: tuple[ProductRule, ...] = (
    _r(r"forti(?:gate|os|net\s+ssl[- ]?vpn)", "o", "fortinet", "fortios", _DOTTED3, "Fortinet FortiOS"),
    _r(
        r"ivanti\s+(?:connect|policy)\s+secure|pulse\s+(?:connect\s+)?secure|\bpulse\s+ssl\s*vpn",
        "a",
        "ivanti",
        "connect_secure",
        _IVANTI,
        "Ivanti Connect Secure",
    ),
    _r(
        r"firepower\s+threat\s+defen[cs]e|\bcisco\s+ftd\b",
        "a",
        "cisco",
        "firepower_threat_defense",
        _CISCO,
        "Cisco Firepower Threat Defense",
    ),
    _r(
        r"adaptive\s+security\s+appliance|\bcisco\s+asa\b|\basa\s+\d",
        "a",
        "cisco",
        "adaptive_security_appliance_software",
        _CISCO,
        "Cisco ASA",
    ),
    _r(r"\bios[ -]?xe\b", "o", "cisco", "ios_xe", _CISCO, "Cisco IOS XE"),
    _r(r"pan-?os|palo\s*alto|globalprotect", "o", "paloaltonetworks", "pan-os", _PANOS, "Palo Alto PAN-OS"),
    _r(
        r"netscaler\s+gateway|citrix\s+gateway", "a", "citrix", "netscaler_gateway", _CITRIX, "Citrix NetScaler Gateway"
    ),
    _r(
        r"netscaler|citrix\s+adc",
        "a",
        "citrix",
        "netscaler_application_delivery_controller",
        _CITRIX,
        "Citrix NetScaler ADC",
    ),
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
    _r(r"junos|juniper\s+(?:srx|ex|mx)", "o", "juniper", "junos", _JUNOS, "Juniper Junos OS"),
    _r(r"sophos\s+(?:xg|firewall|sfos)|\bsfos\b", "o", "sophos", "sfos", _DOTTED, "Sophos Firewall"),
    _r(
        r"\bsma\s*100|sonicwall\s+sma|secure\s+mobile\s+access",
        "o",
        "sonicwall",
        "sma100_firmware",
        _SONICOS,
        "SonicWall SMA 100",
    ),
    _r(r"check\s*point|gaia", "o", "checkpoint", "gaia_os", _DOTTED, "Check Point Gaia"),
    _r(r"vcenter", "a", "vmware", "vcenter_server", _DOTTED, "VMware vCenter Server"),
    _r(r"\besxi\b|vmware\s+esx", "o", "vmware", "esxi", _DOTTED, "VMware ESXi"),
    _r(
        r"\bepmm\b|endpoint\s+manager\s+mobile|mobileiron\s+core",
        "a",
        "ivanti",
        "endpoint_manager_mobile",
        _DOTTED,
        "Ivanti EPMM",
    ),
    _r(r"moveit", "a", "progress", "moveit_transfer", _DOTTED, "Progress MOVEit Transfer"),
    _r(r"goanywhere", "a", "fortra", "goanywhere_managed_file_transfer", _DOTTED, "Fortra GoAnywhere MFT"),
    _r(r"crushftp", "a", "crushftp", "crushftp", _DOTTED, "CrushFTP"),
    _r(r"serv-u", "a", "solarwinds", "serv-u", _DOTTED, "SolarWinds Serv-U"),
    _r(r"screenconnect", "a", "connectwise", "screenconnect", _DOTTED, "ConnectWise ScreenConnect"),
    _w(r"apache\s+(?:httpd|http\s+server)", "apache", "http_server", "Apache HTTP Server"),
    _w(r"apache\s+tomcat|\bcoyote\b", "apache", "tomcat", "Apache Tomcat"),
    _w(r"activemq", "apache", "activemq", "Apache ActiveMQ"),
    _w(r"\bnginx\b", "f5", "nginx", "nginx"),
    _w(r"confluence", "atlassian", "confluence_server", "Atlassian Confluence"),
    _w(r"\bjira\b", "atlassian", "jira_server", "Atlassian Jira"),
    _w(r"bitbucket", "atlassian", "bitbucket_server", "Atlassian Bitbucket"),
    _w(r"gitlab", "gitlab", "gitlab", "GitLab"),
    _w(r"jenkins|\bjetty\b.*hudson", "jenkins", "jenkins", "Jenkins"),
    _w(r"teamcity", "jetbrains", "teamcity", "JetBrains TeamCity"),
    _w(
        r"microsoft[- ]iis|internet\s+information\s+services",
        "microsoft",
        "internet_information_services",
        "Microsoft IIS",
    ),
    _w(r"sharepoint", "microsoft", "sharepoint_server", "Microsoft SharePoint Server"),
    _w(r"zimbra", "zimbra", "collaboration", "Zimbra Collaboration"),
    _w(r"roundcube", "roundcube", "webmail", "Roundcube Webmail"),
    _w(r"\bexim\b", "exim", "exim", "Exim"),
    _w(r"webmin", "webmin", "webmin", "Webmin"),
    _w(r"weblogic", "oracle", "weblogic_server", "Oracle WebLogic Server"),
    _w(r"openfire", "igniterealtime", "openfire", "Openfire"),
    _w(r"papercut", "papercut", "papercut_mf", "PaperCut MF/NG"),
    _w(r"grafana", "grafana", "grafana", "Grafana"),
    _w(r"kibana", "elastic", "kibana", "Kibana"),
    _w(r"\bminio\b", "minio", "minio", "MinIO"),
    _w(r"zabbix", "zabbix", "zabbix", "Zabbix"),
    _w(r"vbulletin", "vbulletin", "vbulletin", "vBulletin"),
    _w(r"drupal", "drupal", "drupal", "Drupal"),
    _w(r"liferay", "liferay", "liferay_portal", "Liferay Portal"),
    _w(r"\bsolr\b", "apache", "solr", "Apache Solr"),
    _w(r"\bphp(?:/|\s|$)", "php", "php", "PHP"),
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
    # web servers and applications: NVD names one product several ways over the years
    "igor_sysoev:nginx": "f5:nginx",
    "nginx:nginx": "f5:nginx",
    "f5:nginx_open_source": "f5:nginx",
    "f5:nginx_plus": "f5:nginx",
    "atlassian:confluence": "atlassian:confluence_server",
    "atlassian:confluence_data_center": "atlassian:confluence_server",
    "atlassian:jira": "atlassian:jira_server",
    "atlassian:jira_data_center": "atlassian:jira_server",
    "atlassian:bitbucket": "atlassian:bitbucket_server",
    "atlassian:bitbucket_data_center": "atlassian:bitbucket_server",
    "ipswitch:moveit_transfer": "progress:moveit_transfer",
    "progress:moveit_transfer": "progress:moveit_transfer",
    "microsoft:iis": "microsoft:internet_information_services",
    "microsoft:internet_information_server": "microsoft:internet_information_services",
    "ivanti:ics": "ivanti:connect_secure",
    "ivanti:ips": "ivanti:connect_secure",
    "ivanti:connect_secure_firmware": "ivanti:connect_secure",
    "synacor:zimbra_collaboration_suite": "zimbra:collaboration",
    "zimbra:zimbra_collaboration_suite": "zimbra:collaboration",
    "zimbra:collaboration_suite": "zimbra:collaboration",
    "helpsystems:goanywhere_managed_file_transfer": "fortra:goanywhere_managed_file_transfer",
    "papercut:papercut_ng": "papercut:papercut_mf",
    "sonicwall:sma_100_firmware": "sonicwall:sma100_firmware",
    "sonicwall:sma_200_firmware": "sonicwall:sma100_firmware",
    "sonicwall:sma_210_firmware": "sonicwall:sma100_firmware",
    "sonicwall:sma_400_firmware": "sonicwall:sma100_firmware",
    "sonicwall:sma_410_firmware": "sonicwall:sma100_firmware",
    "sonicwall:sma_500v_firmware": "sonicwall:sma100_firmware",
    "sophos:xg_firewall_firmware": "sophos:sfos",
    "sophos:firewall": "sophos:sfos",
    "sophos:xg_firewall": "sophos:sfos",
    "vmware:vcenter": "vmware:vcenter_server",
    "vmware:esx": "vmware:esxi",
    "oracle:weblogic": "oracle:weblogic_server",
    "connectwise:screenconnect": "connectwise:screenconnect",
}
"""Scanner/NVD ``vendor:product`` -> canonical id.  BIG-IP modules are folded by prefix."""

_PART = {r.vendor + ":" + r.product: r.part for r in PRODUCT_RULES}
_DISPLAY = {r.vendor + ":" + r.product: r.display for r in PRODUCT_RULES}
_RULE_BY_ID = {r.vendor + ":" + r.product: r for r in PRODUCT_RULES}

EDGE_PRODUCTS: frozenset[str] = frozenset(
    [pid for pid, r in _RULE_BY_ID.items() if r.edge]
    + [
        "cisco:ios",
        "cisco:ios_xr",
        "cisco:identity_services_engine",
        "citrix:sd-wan",
        "f5:big-ip_access_policy_manager",
        "fortinet:fortiproxy",
        "fortinet:fortiweb",
        "fortinet:fortimanager",
        "fortinet:fortisiem",
        "ivanti:endpoint_manager_mobile",
        "ivanti:policy_secure",
        "paloaltonetworks:globalprotect",
        "sonicwall:sma1000_firmware",
        "watchguard:fireware",
        "zyxel:usg_flex_100w_firmware",
        "barracuda:email_security_gateway_900",
        "array_networks:arrayos_ag",
        "sophos:cyberoamos",
    ]
)
"""Canonical ids of edge devices (firewalls, VPNs, gateways): among findings of one priority
they come first.  Everything else (web servers, applications) is ranked after them."""


def is_edge(product_id: str | None) -> bool:
    """Whether a canonical product id is an edge device."""
    if not product_id:
        return False
    return product_id in EDGE_PRODUCTS or product_id.startswith(("f5:big-ip", "zyxel:", "draytek:"))


def canonical_product(vendor: str, product: str) -> str:
    """Canonical ``vendor:product`` for a CPE's vendor and product (aliases folded, else as is)."""
    v, p = vendor.lower(), product.lower()
    return _canonical_from_cpe(v, p) or f"{v}:{p}"


def product_for_text(text: str) -> str | None:
    """Canonical id of the first product rule the free text matches (e.g. a CVE record's
    ``vendor product`` names), or None."""
    for rule in PRODUCT_RULES:
        if rule.pattern.search(text):
            return f"{rule.vendor}:{rule.product}"
    return None


@dataclass(frozen=True)
class NormalizedProduct:
    """Canonical identity of one scanned service's product."""

    product_id: str  # "vendor:product", the key of cve_ranges.json
    vendor: str
    display: str
    version: str | None
    cpe: str  # CPE 2.3 formatted string, version "*" when unknown
    match: str = "name"  # "cpe": the scanner's CPE named it; "name": a product-name rule did


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
    vendor, product = vendor.replace("\\", ""), product.replace("\\", "")  # CPE 2.3 escapes: joomla\!
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
    """Identify a scanned service's product from what a scanner reported.

    Parameters
    ----------
    product, version
        The scanner's product and version fields (nmap ``-sV``, Shodan, Censys).
    cpes
        CPE strings the scanner attached (2.2 URI or 2.3).  A CPE wins over text: one
        sightline knows an alias for first, then applications, then operating systems; an
        unknown CPE keeps its own ``vendor:product`` (NVD's dictionary is the namespace of
        the CVE ranges, so it matches them as is).
    banner
        Free text (banner, extrainfo, HTTP title) searched when the product field is empty.

    Returns
    -------
    NormalizedProduct or None
        ``match`` is ``"cpe"`` when a CPE named the product, ``"name"`` when a product-name
        rule did; ``None`` when neither says what the service is.
    """
    parsed_cpes = [p for p in (parse_cpe(c) for c in cpes or ()) if p is not None]
    if parsed_cpes:
        known = [p for p in parsed_cpes if _canonical_from_cpe(p[1], p[2]) is not None]
        order = {"a": 0, "o": 1, "h": 2}
        best = known[0] if known else min(parsed_cpes, key=lambda p: order.get(p[0], 3))
        part, vendor, prod, cver = best
        pid = _canonical_from_cpe(vendor, prod) or f"{vendor}:{prod}"
        rule = _RULE_BY_ID.get(pid)
        ver = version or cver
        if rule is not None:
            ver = _clean_version(rule, ver)
        elif ver is not None:
            ver = ver.strip() or None
        v, p = pid.split(":", 1)
        display = _DISPLAY.get(pid) or (product.strip() if product and product.strip() else f"{v} {p}")
        return NormalizedProduct(pid, v, display, ver, make_cpe23(_PART.get(pid, part), v, p, ver), "cpe")
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
                    tail = text[hit.start() :]
                    if is_banner:
                        tail = tail[:80]
                    m = rule.version_re.search(tail)
                    ver = m.group(1) if m else None
                pid = f"{rule.vendor}:{rule.product}"
                return NormalizedProduct(
                    pid, rule.vendor, rule.display, ver, make_cpe23(rule.part, rule.vendor, rule.product, ver), "name"
                )
    return None
