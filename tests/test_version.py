"""One version number: ``sightline.__version__`` is the source; the package metadata, the CLI's
``--version`` and every findings document say the same."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from typer.testing import CliRunner

import sightline
from sightline.cli import app
from sightline.pipeline import hunt
from sightline.store import Workspace

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_takes_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"], "write the version in sightline/__init__.py only"
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sightline.__version__"}


def test_metadata_cli_and_findings_agree(tmp_path: Path) -> None:
    v = sightline.__version__
    assert v and v[0].isdigit()
    assert importlib.metadata.version("sightline") == v
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"sightline {v}"
    intel = tmp_path / "i.csv"
    intel.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n198.51.100.7,ipv4,RedJuliett,,,80,amber\n"
    )
    doc = hunt(Workspace(tmp_path / "ws"), intel=[intel]).findings
    assert doc.sightline_version == v
