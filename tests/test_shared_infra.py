"""Shared-infrastructure marks: MISP warninglists (bundled snapshot), sightline's own CSVs, the
user's CSVs and AS organizations; most specific range wins; names match up to a public suffix."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import pyarrow.compute as pc
import pytest

from sightline.enrich import geo
from sightline.enrich.shared_infra import (
    MULTI_TENANT,
    SHARED_INFRA_SCHEMA,
    SharedMark,
    classifier,
    classify_as_org,
    classify_name,
    load_shared_infra,
    name_classifier,
)
from sightline.net import parse_network
from sightline.pipeline import _shared_checker
from sightline.store import Workspace

DATA = Path(__file__).resolve().parent.parent / "sightline" / "data" / "shared_infra"


@pytest.fixture(scope="module")
def check():
    return classifier()


@pytest.fixture(scope="module")
def table():
    return load_shared_infra()


def _lists_holding(table, ip: str) -> set[str]:
    """The sources of every range that holds ``ip`` (what a classifier chooses among)."""
    r = parse_network(ip)
    if r.start4 is not None:
        m = pc.and_(pc.less_equal(table["ip_start4"], r.start4), pc.greater_equal(table["ip_end4"], r.start4))
    else:
        m = pc.and_(pc.less_equal(table["ip_start6"], r.start6), pc.greater_equal(table["ip_end6"], r.start6))
    return {s.split("@")[0] for s in table.filter(pc.fill_null(m, False)).column("source").to_pylist()}


@pytest.mark.parametrize(
    "ip,category,source,multi_tenant",
    [
        ("8.8.8.8", "resolver", "misp-warninglist:public-dns-v4@", True),
        ("2001:4860:4860::8888", "resolver", "misp-warninglist:public-dns-v6@", True),
        ("104.16.1.1", "cdn", "misp-warninglist:cloudflare@", True),
        ("2606:4700::6810:1", "cdn", "misp-warninglist:cloudflare@", True),
        ("23.32.0.5", "cdn", "misp-warninglist:akamai@", True),
        ("2a02:26f0::1", "cdn", "misp-warninglist:akamai@", True),
        ("3.85.12.34", "cloud", "misp-warninglist:amazon-aws@", False),  # EC2 us-east-1
        ("2600:1f18:1::1", "cloud", "misp-warninglist:amazon-aws@", False),
        ("20.43.1.1", "cloud", "misp-warninglist:microsoft-azure@", False),
        ("52.96.0.1", "saas", "misp-warninglist:microsoft-office365-ip@", True),
        ("162.142.125.10", "scanner", "misp-warninglist:censys-scanning@", False),
        ("45.76.1.1", "vpn", "misp-warninglist:vpn-ipv4@", False),  # Vultr: a datacenter in the VPN list
    ],
    ids=lambda v: v if isinstance(v, str) and v[0].isdigit() else None,
)
def test_real_list_content_marks_addresses(check, ip, category, source, multi_tenant):
    mark = check(ip)
    assert isinstance(mark, SharedMark)
    assert (mark.category, mark.multi_tenant) == (category, multi_tenant)
    assert mark.source.startswith(source) and mark.list_name.startswith("MISP warninglist: ")


def test_resolver_mark_names_the_misp_list(check):
    m = check("8.8.8.8")
    assert m.list_name == "MISP warninglist: List of known IPv4 public DNS resolvers"
    assert m.source == "misp-warninglist:public-dns-v4@20240615" and m.entry == "8.8.8.8"
    assert str(m) == "resolver: MISP warninglist: List of known IPv4 public DNS resolvers"
    with pytest.raises(FrozenInstanceError):
        m.category = "cdn"  # type: ignore[misc]


@pytest.mark.parametrize("ip", ["192.0.2.1", "140.112.8.116", "2001:db8::1", "not an ip", ""])
def test_unlisted_addresses_and_junk_are_not_marked(check, ip):
    assert check(ip) is None


def test_most_specific_range_wins(check, table):
    # Cloudflare's resolver sits inside Cloudflare's CDN /32: the resolver list names it
    assert {"misp-warninglist:cloudflare", "misp-warninglist:public-dns-v6"} <= _lists_holding(
        table, "2606:4700:4700::1111"
    )
    assert check("2606:4700:4700::1111").category == "resolver"
    # a Google Public DNS address the resolver list lacks: the /24 of sightline's CSV, not the
    # datacenter aggregate that also holds it
    assert "misp-warninglist:vpn-ipv4" in _lists_holding(table, "8.8.8.10")
    m = check("8.8.8.10")
    line = next(
        i for i, ln in enumerate((DATA / "resolvers.csv").read_text().splitlines(), 1) if ln.startswith("8.8.8.0/24,")
    )
    assert (m.category, m.source) == ("resolver", f"sightline:shared_infra/resolvers.csv:{line}")


def test_aggregate_lists_do_not_rename_a_providers_ranges(check, table):
    # the VPN/datacenter list holds finer ranges inside Akamai's and Office 365's own lists
    assert {"misp-warninglist:akamai", "misp-warninglist:vpn-ipv4"} <= _lists_holding(table, "23.32.0.5")
    assert check("23.32.0.5").source.startswith("misp-warninglist:akamai@")
    assert "misp-warninglist:github" in _lists_holding(table, "40.126.1.1")
    assert check("40.126.1.1").category == "saas"


def test_rentable_compute_inside_a_cdn_list_is_hosting(check, table):
    # Akamai's list (from BGP) holds 172.224.0.0/12, which carries Linode (AS63949) VPS
    assert "misp-warninglist:akamai" in _lists_holding(table, "172.236.250.91")
    m = check("172.236.250.91")
    assert (m.category, m.multi_tenant) == ("hosting", False)
    assert m.source.startswith("sightline:shared_infra/cloud.csv:") and "AS63949" in m.list_name
    assert check("172.224.7.1").category == "cdn"  # Akamai's own edge in the same list range


def test_own_csv_keeps_only_what_the_lists_lack(check, table):
    m = check("141.212.121.10")
    assert (m.category, m.list_name) == ("scanner", "University of Michigan research scans")
    assert m.source.startswith("sightline:shared_infra/scanners.csv:")
    assert check("2602:80d:1000::5").list_name == "Censys"

    # no bundled CSV row repeats a warninglist range of its own category
    def keys(t):
        cols = ("ip_start4", "ip_start6", "prefix_len", "category")
        return set(zip(*(t.column(c).to_pylist() for c in cols)))

    csv_rows = table.filter(pc.starts_with(table["source"], "sightline:"))
    assert csv_rows.num_rows >= 8
    assert not keys(csv_rows) & keys(table.filter(pc.starts_with(table["source"], "misp-warninglist:")))


def test_cidr_input_is_marked_only_inside_a_range(check):
    assert check("104.16.0.0/16").category == "cdn"
    assert check("104.0.0.0/8") is None


def test_table_has_every_range_with_schema():
    probs: list[str] = []
    t = load_shared_infra(problems=probs)
    assert t.schema == SHARED_INFRA_SCHEMA and not probs
    assert t.num_rows > 100_000
    assert set(t.column("category").unique().to_pylist()) >= {"resolver", "cdn", "cloud", "saas", "vpn", "scanner"}


def test_user_csv_adds_and_overrides_and_bad_rows_are_skipped(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    assert classifier(ws)("203.0.113.9") is None
    (ws.root / "shared_infra").mkdir()
    (ws.root / "shared_infra" / "ours.csv").write_text(
        "cidr,kind,name\n203.0.113.0/24,cloud,Our hosting provider\n8.8.8.0/24,allow,Google DNS (ours)\n"
        "300.1.1.0/24,cdn,x\nonlyone\n"
    )
    probs: list[str] = []
    check = classifier(ws, problems=probs)
    m = check("203.0.113.9")
    assert (m.category, m.list_name, m.source, m.multi_tenant) == (
        "cloud",
        "Our hosting provider",
        "workspace:shared_infra/ours.csv:2",
        False,
    )
    # the user's /24 wins over the warninglist's /32: the user's own rows come first
    assert str(check("8.8.8.8")) == "allow: Google DNS (ours)" and check("8.8.8.8").multi_tenant
    assert any("ours.csv:4" in p and "bad CIDR" in p for p in probs)
    assert any("ours.csv:5" in p and "expected cidr,kind,name" in p for p in probs)


def _geo_ws(tmp_path) -> Workspace:
    ws = Workspace(tmp_path / "ws").ensure()
    v4 = tmp_path / "asn-ipv4.csv"
    v4.write_text(
        "192.0.2.0,192.0.2.255,20940,Akamai International B.V.\n"
        "198.51.100.0,198.51.100.255,8075,Microsoft Corporation\n"
        '203.0.113.0,203.0.113.127,63949,"Akamai Technologies, Inc."\n'
        "203.0.113.128,203.0.113.255,3462,Data Communication Business Group\n"
    )
    v6 = tmp_path / "asn-ipv6.csv"
    v6.write_text("2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,13335,Cloudflare\n")
    geo.load_geo(ws, v4)
    geo.load_geo(ws, v6)
    return ws


def test_as_organization_stands_in_where_the_lists_miss(tmp_path):
    check = classifier(_geo_ws(tmp_path))
    m = check("192.0.2.7")
    assert (m.category, m.source, m.multi_tenant) == ("cdn", "as-org:AS20940", True)
    assert "Akamai International B.V." in m.list_name
    assert check("198.51.100.1").category == "saas"
    assert check("203.0.113.5").category == "hosting"  # Linode under Akamai's name: rentable VPS
    assert check("203.0.113.200") is None  # HiNet: nobody's shared infrastructure
    assert check("2001:db8::1").category == "cdn"
    assert check("8.8.8.8").source.startswith("misp-warninglist:")  # the lists come first


@pytest.mark.parametrize(
    "as_org,asn,category",
    [
        ("AKAMAI-AS", 20940, "cdn"),
        ("Akamai Technologies, Inc.", 63949, "hosting"),
        ("Linode, LLC", None, "hosting"),
        ("CLOUDFLARENET", 13335, "cdn"),
        ("FASTLY", 54113, "cdn"),
        ("AMAZON-02", 16509, "cloud"),
        ("MICROSOFT-CORP-MSN-AS-BLOCK", 8075, "saas"),
        ("GOOGLE", 15169, "saas"),
        ("GOOGLE-CLOUD-PLATFORM", 396982, "cloud"),
        ("The Constant Company, LLC", 20473, "hosting"),
        ("ESET, spol. s r.o.", 50881, "saas"),
        ("Driftnet Ltd", 211298, "scanner"),
        ("Chunghwa Telecom Co., Ltd.", 3462, None),
        ("Pineapple Networks", None, None),
        ("", None, None),
    ],
    ids=lambda v: str(v),
)
def test_classify_as_org(as_org, asn, category):
    m = classify_as_org(as_org, asn)
    assert (m.category if m else None) == category


@pytest.mark.parametrize(
    "name,category,source",
    [
        ("2gis.com", "popular_domain", "misp-warninglist:tranco10k@"),  # only in the Tranco list
        ("maps.2gis.com", "popular_domain", "misp-warninglist:tranco10k@"),
        ("google.com", "saas", "misp-warninglist:google@"),
        ("mail.google.com", "saas", "misp-warninglist:google@"),  # Google's list before the popular ones
        ("outlook.office365.com", "saas", "misp-warninglist:microsoft"),
        ("dns.google", "resolver", "misp-warninglist:public-dns-hostname@"),
        ("github.io", "popular_domain", "misp-warninglist:"),
        ("evil.github.io", None, None),  # a public suffix: the names under it are anybody's
        ("foo.azurewebsites.net", None, None),
        ("x.duckdns.org", None, None),  # a dynamic-DNS parent
        ("www.bbc.co.uk", "popular_domain", "misp-warninglist:"),
        ("evil-c2.example-unlisted.xyz", None, None),
        ("", None, None),
    ],
    ids=lambda v: str(v),
)
def test_classify_name(name, category, source):
    m = classify_name(name)
    assert (m.category if m else None) == category
    if m:
        assert m.source.startswith(source) and m.multi_tenant == (category in MULTI_TENANT)


def test_name_classifier_of_a_workspace_equals_bundled_without_updates(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    f = name_classifier(ws)
    assert f("2GIS.com.") == classify_name("2gis.com")


def test_what_each_mark_does_to_a_verdict(tmp_path):
    from sightline.assess import _as_mark, _effective, guards_for

    mark = _shared_checker(Workspace(tmp_path / "ws").ensure())

    def guards(
        ip: str, behaviour: str, port: int = 443, direction: str = "outbound", n: int = 30, conf: int = 70
    ) -> list[str]:
        m = _effective(_as_mark(mark(ip)), port, ip)
        return guards_for(
            behaviour, direction, m, popular=False, indicator_confidence=conf, series_n=n, max_duration=7200.0
        )

    # a CDN edge, a public resolver, a hyperscaler address: nothing decides, whatever the behaviour,
    # unless the intel is very sure of a C2 pattern; connecting in is never an attack for the first two
    for ip, port in (("104.16.1.1", 443), ("8.8.8.8", 853), ("3.85.12.34", 443)):
        for b in ("beacon", "long_connection", "callback"):
            assert guards(ip, b, port) in (["shared_infrastructure"], ["weak_on_crowded"]), (ip, b)
        assert guards(ip, "beacon", port, conf=85) == [] and guards(ip, "callback", port, conf=85) != []
        assert guards(ip, "beacon", port, n=8, conf=85) == ["too_few_connections"]
    for b in ("exploitation", "scan"):
        assert guards("104.16.1.1", b, direction="inbound", conf=95) == ["shared_infrastructure"]
        assert guards("3.85.12.34", b, direction="inbound") == []  # an actor scanning from AWS
    assert guards("162.142.125.10", "scan", direction="inbound") == ["research_scanner"]
    assert guards("193.163.125.4", "scan", direction="inbound") == ["research_scanner"]  # Driftnet
    # an open resolver of the lists is a resolver for DNS traffic only (routers are on them too)
    open_resolver = "1.2.213.166"  # one of the 62,745 addresses of "List of known IPv4 public DNS resolvers"
    assert mark(open_resolver).category == "resolver"
    assert guards(open_resolver, "beacon", 8443) == [] and guards(open_resolver, "beacon", 53) == [
        "shared_infrastructure"
    ]
    # the big anycast resolvers are shared on any port (DNS over HTTPS), whichever list names them
    assert mark("1.1.1.1").source.startswith("misp-warninglist:")
    assert guards("1.1.1.1", "long_connection", 443) == ["shared_infrastructure"]
    # the actor's VPS (Vultr; Linode inside Akamai's list) stays an ordinary indicator
    for vps in ("45.76.1.1", "172.236.250.91"):
        assert guards(vps, "callback") == [] and guards(vps, "exploitation", direction="inbound") == []
    assert guards("192.0.2.1", "callback") == []
