"""Actor infrastructure profile: ASN/country from the real geo tables, roles, windows, clusters."""

from __future__ import annotations

import gzip
import ipaddress
import json
from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app

from .datafiles import GEO
from .test_hunt_e2e import C2, EXPLOITER, SCANNER, scenario


def _asn_of(ip: str) -> tuple[int, str]:
    """Independent lookup in the raw ip-location-db table (linear scan, test-only)."""
    want = int(ipaddress.ip_address(ip))
    with gzip.open(GEO / "asn-ipv4.csv.gz", "rt") as fh:
        for line in fh:
            start, end, asn, org = line.rstrip("\n").split(",", 3)
            if int(ipaddress.ip_address(start)) <= want <= int(ipaddress.ip_address(end)):
                return int(asn), org.strip('"')
    raise AssertionError(f"{ip} not in the table")


def test_actor_profile_from_real_geo(tmp_path: Path) -> None:
    files = scenario(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "hunt",
            "-t",
            str(files["conn"]),
            "-i",
            str(files["intel"]),
            "--orgs",
            str(files["orgs"]),
            "--geo",
            str(GEO / "asn-ipv4.csv.gz"),
            "--geo",
            str(GEO / "geo-whois-asn-country-ipv4.csv.gz"),
            "--out",
            str(out),
            "-w",
            str(tmp_path / "ws"),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    prof = {p["ip"]: p for p in doc["actor_infrastructure"]}
    assert {C2, SCANNER, EXPLOITER} <= set(prof)
    asn, as_org = _asn_of(C2)
    assert prof[C2]["asn"] == asn and prof[C2]["as_org"] == as_org
    assert prof[C2]["country"] and len(prof[C2]["country"]) == 2
    assert "C2/VPN endpoint" in prof[C2]["roles"] and prof[C2]["served_ports"] == [443]
    assert prof[SCANNER]["roles"] == ["scanner"]
    assert "exploit source" in prof[EXPLOITER]["roles"]
    assert prof[C2]["intel_valid_from"].startswith("2024-01-01")
    # the C2 sits apart from the scanning/exploitation infrastructure
    assert prof[C2]["cluster"] != prof[SCANNER]["cluster"]
    assert prof[C2]["cluster"].startswith("C2/VPN") and prof[SCANNER]["cluster"].startswith("scanning")
    assert "not where the operators sit" in doc["actor_infrastructure_summary"]["caveat"]


def test_actor_infrastructure_in_stix_export(tmp_path: Path) -> None:
    from stix2validator import ValidationOptions, validate_instance

    from sightline.report.stix import to_stix_bundle

    files = scenario(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "hunt",
            "-t",
            str(files["conn"]),
            "-i",
            str(files["intel"]),
            "--orgs",
            str(files["orgs"]),
            "--geo",
            str(GEO / "geo-whois-asn-country-ipv4.csv.gz"),
            "--out",
            str(out),
            "-w",
            str(tmp_path / "ws"),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "findings.json").read_text())
    bundle = to_stix_bundle(doc)
    objs = {o["id"]: o for o in bundle["objects"]}
    infra = [o for o in objs.values() if o["type"] == "infrastructure" and o["name"] == f"actor infrastructure {C2}"]
    assert infra and "command-and-control" in infra[0]["infrastructure_types"]
    rels = [o for o in objs.values() if o["type"] == "relationship" and o["source_ref"] == infra[0]["id"]]
    kinds = {r["relationship_type"]: objs[r["target_ref"]] for r in rels}
    assert kinds["consists-of"]["value"] == C2
    c2_country = next(p["country"] for p in doc["actor_infrastructure"] if p["ip"] == C2)
    assert kinds["located-at"]["country"] == c2_country
    assert any(
        o["type"] == "relationship" and o["relationship_type"] == "uses" and o["target_ref"] == infra[0]["id"]
        for o in objs.values()
    )
    result = validate_instance(bundle, ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for e in result.errors]
