"""Test-wide settings and the engine fixture.

Under CI (``CI=true``) hypothesis runs derandomized: the same examples every run, so a
red CI always means a change broke something.  Finding new crashing inputs is the job of
the randomized campaigns in ``make reliability``, whose finds become regression inputs.

``engine_name`` runs a detection test once per engine (``duckdb``, ``spark``), the way
ibis runs one suite on every backend: the test passes the name on (``--engine`` on the
CLI, ``engine_name=`` in the API) and asserts the same findings on both.  A known gap of
one engine is declared on the test, never tested for inside it::

    @pytest.mark.notyet("spark", reason="...", raises=EngineError)

which makes that engine's run a strict xfail: it must fail (with that exception, if
given), and the day it passes the marker has to go.  The Spark runs share one session,
``local[2]``, started by the first test that needs it; they are marked ``spark`` and are
skipped, with the reason, where pyspark, sqlglot or Java is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")

ENGINES = ("duckdb", "spark")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "notyet(*engines, reason, raises=None): a known gap of these engines; their runs are strict xfails"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("engine_name") if callspec is not None else None
        if engine is None:
            continue
        for mark in item.iter_markers("notyet"):
            unknown = set(mark.args) - set(ENGINES)
            if unknown:
                raise pytest.UsageError(f"{item.nodeid}: notyet names no engine {sorted(unknown)}; engines: {ENGINES}")
            if "reason" not in mark.kwargs:
                raise pytest.UsageError(f"{item.nodeid}: notyet needs reason=")
            if engine in mark.args:
                item.add_marker(
                    pytest.mark.xfail(
                        reason=f"{engine}: {mark.kwargs['reason']}", raises=mark.kwargs.get("raises"), strict=True
                    )
                )


def _spark_missing() -> str | None:
    for mod in ("pyspark", "sqlglot"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install 'sightline[spark]')"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and (Path(java_home) / "bin" / "java").exists()):
        return "Java is not installed (Spark needs Java 17+; Debian: apt-get install default-jre-headless)"
    return None


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """The one Spark session of the test run (``local[2]``); SparkEngine reuses the active session."""
    missing = _spark_missing()
    if missing:
        pytest.skip(f"spark engine not available: {missing}")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from sightline.engines.spark import SparkEngine

    session = SparkEngine(master="local[2]").spark
    yield session
    session.stop()


@pytest.fixture(
    params=[pytest.param("duckdb", id="duckdb"), pytest.param("spark", id="spark", marks=pytest.mark.spark)]
)
def engine_name(request: pytest.FixtureRequest) -> str:
    """The engine a detection test runs on: every such test runs on both."""
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    return str(request.param)
