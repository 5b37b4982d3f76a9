"""PDF report: the HTML report printed by Debian's Chromium, with the same TLP filtering."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pytest

from sightline import report
from sightline.errors import ConfigError
from sightline.schema import INDICATOR_SCHEMA

pypdf = pytest.importorskip("pypdf")
SAMPLE = Path(__file__).parent / "data" / "sample_findings.json"


def _text(path: Path) -> str:
    reader = pypdf.PdfReader(io.BytesIO(path.read_bytes()))
    assert len(reader.pages) >= 1
    return "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_report_has_the_findings_and_respects_tlp(tmp_path: Path) -> None:
    findings = json.loads(SAMPLE.read_text("utf-8"))
    (full,) = report.render(findings, "pdf", tmp_path / "full.pdf")
    assert full.read_bytes().startswith(b"%PDF-")
    text = _text(full)
    assert "Hsinchu" in text and "compromised" in text.lower()

    table = pa.Table.from_pylist(
        [
            {"indicator_id": "1", "type": "ipv4", "value": "198.51.100.7", "tlp": "amber", "actor": "RedJuliett"},
            {"indicator_id": "2", "type": "ipv4", "value": "192.0.2.66", "tlp": "red", "actor": "RedJuliett"},
        ],
        schema=INDICATOR_SCHEMA,
    )
    from sightline.store import Workspace

    (shared,) = report.render(
        findings, "pdf", tmp_path, indicators=table, tlp="amber", anonymize=True, ws=Workspace(tmp_path / "ws")
    )
    assert shared.name == "report.pdf"
    text = _text(shared)
    for secret in ("Hsinchu", "203.0.113.5", "192.0.2.66"):
        assert secret not in text, secret
    assert "198.51.100.7" in text


def test_pdf_without_a_browser_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGHTLINE_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(ConfigError, match="Chromium") as e:
        report.render(json.loads(SAMPLE.read_text("utf-8")), "pdf", tmp_path)
    assert "apt-get install chromium" in (e.value.hint or "")
    assert not (tmp_path / "report.pdf").exists()
