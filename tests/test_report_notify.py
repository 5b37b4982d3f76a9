"""Victim notices: one per organization, nothing from any other organization, valid e-mail."""

from __future__ import annotations

import copy
import json
import os
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.report.notify import build_notices, write_notices
from sightline.store import Workspace, atomic_write_json

HERE = Path(__file__).parent
SAMPLE = HERE / "data" / "sample_findings.json"
GOLDEN = HERE / "golden" / "report"


@pytest.fixture()
def findings() -> dict:
    doc = json.loads(SAMPLE.read_text("utf-8"))
    # a third victim sharing the C2 with tw-semi-01, plus exposure rows for two of them
    other = copy.deepcopy(doc["organizations"][0])
    other.update(org_id="tw-univ-07", name="Taipei Institute of Technology", sector="university", asns=[1659])
    other["hosts"][0]["ip"] = "192.0.2.140"
    other["hosts"][0]["evidence"][1]["detail"] = "interval 600s ±9s over 2 days"
    doc["organizations"].append(other)
    doc["exposure"] = [
        {
            "org_id": "tw-semi-01",
            "ip": "203.0.113.1",
            "port": 443,
            "product": "Fortinet FortiOS",
            "version": "7.0.11",
            "cves": ["CVE-2023-27997"],
            "kev": True,
            "tlp": "amber",
        },
        {
            "ip": "192.0.2.129",
            "org_id": "tw-univ-07",
            "port": 10443,
            "product": "Ivanti Connect Secure",
            "cves": ["CVE-2024-21887"],
            "kev": True,
            "tlp": "amber",
        },
    ]
    return doc


def _secrets_of(org: dict) -> set[str]:
    s = {org["org_id"], org["name"], *(str(a) for a in org.get("asns") or [])}
    for h in org["hosts"]:
        s.add(h["ip"])
        for e in h["evidence"]:
            s.add(e["detail"])
    return s


def test_one_notice_per_org_and_no_leaks(tmp_path, findings):
    paths, withheld = write_notices(findings, tmp_path, tlp="red")
    notices, _ = build_notices(findings, tlp="red")
    assert sorted(n.org_id for n in notices) == ["AS4780", "tw-semi-01", "tw-univ-07"]
    assert len(paths) == 6 and withheld == []
    orgs = {o["org_id"]: o for o in findings["organizations"]}
    for n in notices:
        md = (tmp_path / f"notice-{n.stem}.md").read_text("utf-8")
        eml = message_from_bytes((tmp_path / f"notice-{n.stem}.eml").read_bytes(), policy=default_policy)
        body = eml.get_content()
        mine = _secrets_of(orgs[n.org_id])
        for oid, other in orgs.items():
            if oid == n.org_id:
                continue
            for secret in _secrets_of(other) - mine:
                assert secret not in md, (n.org_id, secret)
                assert secret not in body, (n.org_id, secret)
                assert secret not in str(eml), (n.org_id, secret)
        for secret in mine - {str(a) for a in orgs[n.org_id].get("asns") or []}:
            assert secret in md
    # exposure goes only to its owner, with the KEV CVE to patch
    semi = (tmp_path / "notice-tw-semi-01.md").read_text("utf-8")
    univ = (tmp_path / "notice-tw-univ-07.md").read_text("utf-8")
    assert "CVE-2023-27997" in semi and "CVE-2023-27997" not in univ
    assert "CVE-2024-21887" in univ and "CVE-2024-21887" not in semi
    assert "Isolate the hosts" in semi
    recon = (tmp_path / "notice-AS4780.md").read_text("utf-8")
    assert "Isolate the hosts" not in recon and "Block the listed indicators" in recon


def test_eml_is_rfc5322(tmp_path, findings):
    write_notices(findings, tmp_path)
    for p in sorted(tmp_path.glob("*.eml")):
        raw = p.read_bytes()
        assert b"\r\n" in raw and all(len(line) <= 998 for line in raw.split(b"\r\n"))
        msg = message_from_bytes(raw, policy=default_policy)
        assert msg.defects == []
        for h in ("From", "To", "Date", "Subject", "Message-ID"):
            assert msg[h], h
            assert msg[h].defects == () if hasattr(msg[h], "defects") else True
        assert str(msg["Subject"]).strip().startswith("[TLP:AMBER]")
        assert msg.get_content().startswith("**TLP:AMBER**")


def test_default_amber_withholds_red(tmp_path, findings):
    paths, withheld = write_notices(findings, tmp_path)
    assert not (tmp_path / "notice-AS4780.md").exists()
    assert any(w.startswith("evidence scan") and "AS4780" in w and "TLP:RED" in w for w in withheld)
    assert "organization AS4780 (no verdict on what may be shared)" in withheld


def test_bad_sender_is_a_config_error(findings):
    from sightline.errors import ConfigError

    with pytest.raises(ConfigError):
        build_notices(findings, sender="not an address")


def test_cli_notify_reads_workspace(tmp_path, findings):
    ws = Workspace(tmp_path / "ws").ensure()
    atomic_write_json(ws.findings_dir / "latest.json", findings)
    out = tmp_path / "notices"
    r = CliRunner().invoke(app, ["notify", "--out", str(out), "--workspace", str(ws.root)])
    assert r.exit_code == 0, r.output
    assert "2 notices written" in r.output
    assert "AS4780" in r.output  # named as withheld
    assert sorted(p.name for p in out.iterdir()) == [
        "notice-tw-semi-01.eml",
        "notice-tw-semi-01.md",
        "notice-tw-univ-07.eml",
        "notice-tw-univ-07.md",
    ]


def test_cli_notify_without_findings_says_what_to_do(tmp_path):
    r = CliRunner().invoke(app, ["notify", "--out", str(tmp_path / "n"), "--workspace", str(tmp_path / "empty")])
    assert r.exit_code == 2
    assert "sightline hunt" in r.output


def test_cli_notify_bad_tlp(tmp_path, findings):
    f = tmp_path / "f.json"
    f.write_text(json.dumps(findings))
    r = CliRunner().invoke(app, ["notify", "--out", str(tmp_path / "n"), "--findings", str(f), "--tlp", "purple"])
    assert r.exit_code == 2 and "unknown TLP level" in r.output


def test_cli_notify_corrupt_findings(tmp_path):
    f = tmp_path / "f.json"
    f.write_text("{not json")
    r = CliRunner().invoke(app, ["notify", "--out", str(tmp_path / "n"), "--findings", str(f)])
    assert r.exit_code == 2 and "not a sightline findings document" in " ".join(r.output.split())


def test_golden_notice(tmp_path):
    doc = json.loads(SAMPLE.read_text("utf-8"))
    notices, _ = build_notices(doc)
    text = notices[0].markdown
    if os.environ.get("SIGHTLINE_UPDATE_GOLDEN"):
        (GOLDEN / "notice-tw-semi-01.md").write_text(text, "utf-8")
    assert text == (GOLDEN / "notice-tw-semi-01.md").read_text("utf-8")
