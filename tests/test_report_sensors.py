"""Zeek Intel file and Suricata rules: checked against Zeek's field layout and the rule grammar."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pytest

from sightline.report.suricata import IPS_PER_RULE, render_rules, write_rules
from sightline.report.zeek_intel import ZEEK_FIELDS, write_zeek_intel
from sightline.schema import INDICATOR_SCHEMA

HERE = Path(__file__).parent
SAMPLE = HERE / "data" / "sample_findings.json"
GOLDEN = HERE / "golden" / "report"
ZEEK_INTEL_TYPES = {
    "Intel::ADDR",
    "Intel::SUBNET",
    "Intel::URL",
    "Intel::SOFTWARE",
    "Intel::EMAIL",
    "Intel::DOMAIN",
    "Intel::USER_NAME",
    "Intel::CERT_HASH",
    "Intel::PUBKEY_HASH",
    "Intel::FILE_HASH",
    "Intel::FILE_NAME",
}


@pytest.fixture()
def findings() -> dict:
    return json.loads(SAMPLE.read_text("utf-8"))


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=INDICATOR_SCHEMA)


INTEL = [
    {
        "indicator_id": "1",
        "type": "ipv4",
        "value": "198.51.100.7",
        "actor": "RedJuliett",
        "confidence": 80,
        "tlp": "amber",
        "description": "SoftEther\tVPN\nserver",
    },
    {"indicator_id": "2", "type": "ipv4", "value": "203.0.113.128/25", "actor": "RedJuliett", "tlp": "green"},
    {"indicator_id": "3", "type": "ipv6", "value": "2001:db8:bad::1", "actor": "RedJuliett", "tlp": "green"},
    {"indicator_id": "4", "type": "domain", "value": "vpn.evil-example.com", "actor": "RedJuliett", "tlp": "amber"},
    {"indicator_id": "5", "type": "x509_sha1", "value": "AB" * 20, "actor": "RedJuliett", "tlp": "amber"},
    {"indicator_id": "6", "type": "ja3", "value": "e7d705a3286e19ea42f587b344ee6865", "actor": "RedJuliett"},
    {"indicator_id": "7", "type": "url", "value": "http://evil-example.com/x.php", "actor": "RedJuliett"},
    {"indicator_id": "8", "type": "x509_serial", "value": "0a1b", "actor": "RedJuliett"},
    {"indicator_id": "9", "type": "ipv4", "value": "192.0.2.99", "actor": "RedJuliett", "revoked": True},
    {"indicator_id": "10", "type": "domain", "value": 'bad";pcre:"/x/', "actor": "RedJuliett"},
]


# --- Zeek --------------------------------------------------------------------------------------


def _read_zeek(text: str) -> list[dict[str, str]]:
    """Read an intel file the way Zeek's ASCII input reader does (tab separator, '#' comments)."""
    fields = None
    rows = []
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("#fields\t"):
            fields = line[len("#fields\t") :].split("\t")
            continue
        if line.startswith("#"):
            continue
        assert fields is not None, "data before #fields"
        cells = line.split("\t")
        assert len(cells) == len(fields), line
        rows.append(dict(zip(fields, cells)))
    return rows


def test_zeek_intel_layout(tmp_path, findings):
    out = tmp_path / "intel.dat"
    skipped = write_zeek_intel(findings, out, indicators=_table(INTEL))
    text = out.read_text("utf-8")
    assert text.splitlines()[0].startswith("# TLP:")
    assert text.splitlines()[1] == "#fields\t" + "\t".join(ZEEK_FIELDS)
    rows = _read_zeek(text)
    by_ind = {r["indicator"]: r for r in rows}
    for r in rows:
        assert r["indicator_type"] in ZEEK_INTEL_TYPES
        assert r["indicator"] not in ("", "-")
        assert r["meta.source"] == "sightline"
    assert by_ind["198.51.100.7"]["indicator_type"] == "Intel::ADDR"
    assert "SoftEther VPN server" in by_ind["198.51.100.7"]["meta.desc"]  # tab/newline flattened
    assert by_ind["203.0.113.128/25"]["indicator_type"] == "Intel::SUBNET"
    assert by_ind["2001:db8:bad::1"]["indicator_type"] == "Intel::ADDR"
    assert by_ind["vpn.evil-example.com"]["indicator_type"] == "Intel::DOMAIN"
    assert by_ind["abababababababababababababababababababab".upper()]["indicator_type"] == "Intel::CERT_HASH"
    assert by_ind["evil-example.com/x.php"]["indicator_type"] == "Intel::URL"
    assert "192.0.2.99" not in by_ind  # revoked
    assert any("ja3" in s for s in skipped) and any("x509_serial" in s for s in skipped)


def test_zeek_intel_from_findings_only(tmp_path, findings):
    out = tmp_path / "intel.dat"
    write_zeek_intel(findings, out)
    rows = _read_zeek(out.read_text("utf-8"))
    assert sorted(r["indicator"] for r in rows) == ["192.0.2.66", "198.51.100.7"]


# --- Suricata ------------------------------------------------------------------------------------

_HEADER = re.compile(
    r"^(alert|pass|drop|reject|rejectsrc|rejectdst|rejectboth) "
    r"(ip|tcp|udp|icmp|dns|tls|http|any) (\S+) (\S+) (->|<>) (\S+) (\S+) \((.*)\)$"
)
_KNOWN_OPTIONS = {
    "msg",
    "sid",
    "rev",
    "classtype",
    "metadata",
    "content",
    "nocase",
    "endswith",
    "dotprefix",
    "dns.query",
    "tls.sni",
    "tls.cert_fingerprint",
    "ja3.hash",
    "flow",
    "reference",
    "priority",
}


def _split_options(body: str) -> list[tuple[str, str | None]]:
    """Split 'k:v; k; k:"quoted\\;";' honouring backslash escapes and quotes."""
    opts, cur, i, in_q = [], "", 0, False
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            assert body[i + 1] in '\\";:', f"bad escape in {body!r}"
            cur += body[i : i + 2]
            i += 2
            continue
        if ch == '"':
            in_q = not in_q
        if ch == ";" and not in_q:
            opts.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    assert not in_q and cur.strip() == "", f"unterminated option in {body!r}"
    out = []
    for o in opts:
        k, _, v = o.partition(":")
        out.append((k.strip(), v.strip() if _ else None))
    return out


def _check_addr(a: str) -> None:
    if a in ("any", "$HOME_NET", "$EXTERNAL_NET"):
        return
    assert a.startswith("[") and a.endswith("]"), a
    for item in a[1:-1].split(","):
        ipaddress.ip_network(item, strict=False)


def parse_rule(line: str) -> dict:
    m = _HEADER.match(line)
    assert m, f"not a rule: {line}"
    _, _, src, sport, _, dst, dport, body = m.groups()
    _check_addr(src)
    _check_addr(dst)
    for p in (sport, dport):
        assert p == "any" or p.isdigit()
    opts = _split_options(body)
    keys = [k for k, _ in opts]
    assert set(keys) <= _KNOWN_OPTIONS, set(keys) - _KNOWN_OPTIONS
    d = dict(opts)
    assert d["msg"].startswith('"') and d["msg"].endswith('"')
    for k, v in opts:
        if k == "content":
            assert v.startswith('"') and v.endswith('"') and '"' not in v[1:-1].replace('\\"', "")
    assert d["sid"].isdigit() and d["rev"].isdigit()
    return {"src": src, "dst": dst, "sid": int(d["sid"]), "options": opts}


def test_suricata_rules_parse_and_sids_unique(tmp_path, findings):
    out = tmp_path / "sightline.rules"
    skipped = write_rules(findings, out, indicators=_table(INTEL))
    lines = [ln for ln in out.read_text("utf-8").splitlines() if ln and not ln.startswith("#")]
    rules = [parse_rule(ln) for ln in lines]
    sids = [r["sid"] for r in rules]
    assert len(sids) == len(set(sids))
    text = "\n".join(lines)
    assert "198.51.100.7" in text and "203.0.113.128/25" in text and "2001:db8:bad::1" in text
    assert '"192.0.2.99"' not in text and "192.0.2.99" not in text  # revoked
    assert 'content:".vpn.evil-example.com"' in text
    assert "ab:ab:ab" in text and "ja3.hash" in text
    assert any("not a domain name" in s for s in skipped)  # the injection attempt is refused
    assert any("url" in s for s in skipped)
    assert out.read_text("utf-8").startswith("# TLP:")


def test_suricata_ip_lists_are_chunked(findings):
    many = [
        {
            "indicator_id": str(i),
            "type": "ipv4",
            "value": str(ipaddress.ip_address("10.0.0.0") + i),
            "actor": "RedJuliett",
            "tlp": "amber",
        }
        for i in range(IPS_PER_RULE * 2 + 5)
    ]
    text, _ = render_rules(findings, indicators=_table(many))
    rules = [parse_rule(ln) for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert len(rules) == 6  # 3 chunks x 2 directions
    listed = set()
    for r in rules:
        side = r["dst"] if r["src"] == "$HOME_NET" else r["src"]
        listed |= set(side[1:-1].split(","))
    assert len(listed) == IPS_PER_RULE * 2 + 5


def test_golden_sensor_files(tmp_path, findings):
    for name, writer in (("sample.intel.dat", write_zeek_intel), ("sample.rules", write_rules)):
        out = tmp_path / name
        writer(findings, out)
        text = out.read_text("utf-8")
        if os.environ.get("SIGHTLINE_UPDATE_GOLDEN"):
            (GOLDEN / name).write_text(text, "utf-8")
        assert text == (GOLDEN / name).read_text("utf-8")
