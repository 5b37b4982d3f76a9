"""Schema validation: findings and KEV catalogs are still checked, without the slow import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from sightline.errors import SightlineError
from sightline.findings import validate_findings


def _fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_validating_does_not_load_the_iri_grammar_library() -> None:
    got = _fresh(
        "import json, sys\n"
        "from sightline.findings.build import _validator\n"
        "from sightline.exposure.kev import validate_kev\n"
        "_validator()\n"
        "print(json.dumps({'loaded': 'rfc3987_syntax' in sys.modules, 'blocked': sys.modules.get('rfc3987_syntax', 1) is None}))"
    )
    assert got == {"loaded": False, "blocked": False}


@pytest.mark.skipif(importlib.util.find_spec("rfc3987_syntax") is None, reason="rfc3987_syntax not installed")
def test_the_skipped_library_stays_importable_for_others() -> None:
    got = _fresh(
        "import json\n"
        "from sightline.jsonschemas import load\n"
        "load()\n"
        "import rfc3987_syntax\n"
        "print(json.dumps({'ok': rfc3987_syntax.is_valid_syntax('iri', 'https://example.org/a')}))"
    )
    assert got == {"ok": True}


def test_a_bad_findings_document_is_still_rejected() -> None:
    with pytest.raises(SightlineError) as e:
        validate_findings({"schema": "nonsense"})
    assert "findings do not follow" in str(e.value)


@pytest.mark.parametrize("fast", [True, False], ids=["jsonschema-rs", "jsonschema"])
def test_both_validators_agree(tmp_path, monkeypatch, fast: bool) -> None:
    from sightline.findings import build as fmod
    from sightline.pipeline import hunt
    from sightline.store import Workspace

    from .test_hunt_e2e import scenario

    files = scenario(tmp_path)
    doc = hunt(
        Workspace(tmp_path / "ws"), telemetry=[files["conn"]], intel=[files["intel"]], orgs_csv=files["orgs"]
    ).findings.to_dict()
    if not fast:
        monkeypatch.setattr(fmod, "_fast_validator", lambda: None)
    else:
        assert fmod._fast_validator() is not None
    validate_findings(doc)
    bad = json.loads(json.dumps(doc, default=str))
    bad["organizations"][0]["verdict"] = "pwned"
    with pytest.raises(SightlineError) as e:
        validate_findings(bad)
    assert e.value.field == "organizations/0/verdict"
