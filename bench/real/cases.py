"""The cases of `make eval-real` (bench/real/cases.toml): loading, checking, writing their inputs.

A case names its telemetry by source id (sources.toml), carries the intel rows and the
organization registry it writes into its workspace, and the truth: one entry per organization
with a verdict (``compromised`` / ``exploitation_attempt`` / ``reconnaissance``) and, for
decoys, registered organizations whose truth is ``none``.  Each entry selects the flows that
justify it (``select``) and a ``why`` template filled from those flows (facts.py).
"""

from __future__ import annotations

import csv
import ipaddress
import tomllib
from pathlib import Path
from typing import Any

from .fetch import load_sources, local_path

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases.toml"
VERDICTS = ("compromised", "exploitation_attempt", "reconnaissance", "none")
INTEL_FIELDS = ["indicator", "type", "actor", "first_seen", "last_seen", "confidence", "tlp"]
ORG_FIELDS = ["org_id", "name", "sector", "country", "cidr"]


class CaseError(Exception):
    pass


def load_cases(path: Path = CASES) -> list[dict[str, Any]]:
    """All cases, checked for shape (unknown sources, verdicts, registry ids)."""
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    sources = load_sources()
    cases = doc.get("case") or []
    seen: set[str] = set()
    for c in cases:
        name = c.get("name")
        if not name or name in seen:
            raise CaseError(f"{path}: a case has no name or a duplicate name {name!r}")
        seen.add(name)
        for k in ("class", "telemetry", "intel", "orgs", "truth", "summary"):
            if k not in c:
                raise CaseError(f"case {name}: missing {k!r}")
        for sid in c["telemetry"]:
            if sid not in sources:
                raise CaseError(f"case {name}: unknown telemetry source {sid!r} (see sources.toml)")
        org_ids = {o[0] for o in c["orgs"]}
        for o in c["orgs"]:
            if len(o) != len(ORG_FIELDS):
                raise CaseError(f"case {name}: org row {o} needs {ORG_FIELDS}")
            ipaddress.ip_network(o[4], strict=False)
        for row in c["intel"]:
            if len(row) != len(INTEL_FIELDS):
                raise CaseError(f"case {name}: intel row {row} needs {INTEL_FIELDS}")
        for t in c["truth"]:
            if t.get("verdict") not in VERDICTS:
                raise CaseError(f"case {name}: truth {t} has verdict not in {VERDICTS}")
            if t.get("org") not in org_ids and not str(t.get("org", "")).startswith(("AS", "net:")):
                raise CaseError(f"case {name}: truth org {t.get('org')!r} is not in the case's orgs")
            if "why" not in t or "select" not in t:
                raise CaseError(f"case {name}: truth for {t.get('org')} needs 'select' and 'why'")
    return cases


def case_telemetry(case: dict[str, Any]) -> list[Path]:
    sources = load_sources()
    return [local_path(sources[sid]) for sid in case["telemetry"]]


def truth_verdicts(case: dict[str, Any]) -> dict[str, str]:
    """org_id -> verdict for the organizations whose truth is not ``none``."""
    return {t["org"]: t["verdict"] for t in case["truth"] if t["verdict"] != "none"}


def write_inputs(case: dict[str, Any], where: Path) -> tuple[Path, Path]:
    """Write the case's intel CSV and orgs CSV into ``where``; returns their paths."""
    where.mkdir(parents=True, exist_ok=True)
    intel, orgs = where / "intel.csv", where / "orgs.csv"
    with open(intel, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(INTEL_FIELDS)
        w.writerows(case["intel"])
    with open(orgs, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ORG_FIELDS)
        w.writerows(case["orgs"])
    return intel, orgs
