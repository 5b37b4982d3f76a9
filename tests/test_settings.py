"""Environment variables: read in one place, each documented in the README's table, typed."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

from sightline.core.settings import VARIABLES, settings

PACKAGE = Path(__file__).resolve().parent.parent / "sightline"
README = PACKAGE.parent / "README.md"
READERS = {PACKAGE / "core" / "settings.py", PACKAGE / "config.py"}


def _reads_environment(tree: ast.AST) -> list[int]:
    """Lines that read one variable: ``os.environ.get(..)``, ``os.environ[..]``, ``os.getenv(..)``."""

    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and ((node.func.attr == "get" and is_environ(node.func.value)) or node.func.attr == "getenv")
        ):
            out.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_environ(node.value):
            out.append(node.lineno)
    return out


def test_only_settings_and_config_read_the_environment() -> None:
    found = {
        f"{p.relative_to(PACKAGE.parent)}:{line}"
        for p in PACKAGE.rglob("*.py")
        if p not in READERS
        for line in _reads_environment(ast.parse(p.read_text("utf-8")))
    }
    assert not found


def test_every_variable_named_in_the_code_is_documented() -> None:
    names = {
        m for p in PACKAGE.rglob("*.py") for m in re.findall(r"SIGHTLINE_[A-Z0-9_]*[A-Z0-9]", p.read_text("utf-8"))
    }
    names = {n for n in names if "__" not in n}  # SIGHTLINE_<SECTION>__<KEY>: sightline.toml overrides
    documented = {v.name for v in VARIABLES}
    assert names - documented == set()
    table = set(re.findall(r"^\| `(SIGHTLINE_[^`]+)` \|", README.read_text("utf-8"), re.M))
    assert table == documented


CASES = [
    (
        "nothing set",
        {},
        {
            "row_group_rows": 16384,
            "sort_parts": True,
            "index_mode": "auto",
            "index_cache_bytes": 256 << 20,
            "retire_grace_s": 3600.0,
            "memory_limit": "2GB",
            "spark_master": None,
            "spark_conf": "",
            "chromium": None,
            "log_level": "WARNING",
        },
    ),
    (
        "set",
        {
            "SIGHTLINE_ROW_GROUP_ROWS": "4096",
            "SIGHTLINE_SORT_PARTS": "0",
            "SIGHTLINE_INDEX": "OFF",
            "SIGHTLINE_INDEX_CACHE_MB": "0.5",
            "SIGHTLINE_RETIRE_GRACE_S": "0",
            "SIGHTLINE_MEMORY_LIMIT": "8GiB",
            "SIGHTLINE_SPARK_MASTER": "local[4]",
            "SIGHTLINE_CHROMIUM": "/opt/chrome",
            "SIGHTLINE_LOG": "info",
        },
        {
            "row_group_rows": 4096,
            "sort_parts": False,
            "index_mode": "OFF",
            "index_cache_bytes": 1 << 19,
            "retire_grace_s": 0.0,
            "memory_limit": "8GiB",
            "spark_master": "local[4]",
            "chromium": "/opt/chrome",
            "log_level": "INFO",
        },
    ),
    (
        "empty and out of range",
        {
            "SIGHTLINE_ROW_GROUP_ROWS": "0",
            "SIGHTLINE_INDEX": "",
            "SIGHTLINE_SPARK_MASTER": "",
            "SIGHTLINE_RETIRE_GRACE_S": "  ",
        },
        {"row_group_rows": 1, "index_mode": "auto", "spark_master": None, "retire_grace_s": 3600.0},
    ),
]


@pytest.mark.parametrize("env,want", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_settings_from_the_environment(env: dict[str, str], want: dict[str, object]) -> None:
    s = settings(env)
    assert {k: getattr(s, k) for k in want} == want


def test_a_knob_that_is_not_a_number_falls_back_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sightline"):
        assert settings({"SIGHTLINE_INDEX_CACHE_MB": "lots"}).index_cache_bytes == 256 << 20
    assert "SIGHTLINE_INDEX_CACHE_MB" in caplog.text


def test_secrets_come_from_the_environment_only() -> None:
    assert settings({"SIGHTLINE_SECRET": "s3"}).secret("SIGHTLINE_SECRET") == "s3"
    assert settings({}).secret("SIGHTLINE_TAXII_PASSWORD") is None
