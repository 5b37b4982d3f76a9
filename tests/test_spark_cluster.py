"""A hunt on a real Spark standalone cluster gives the same findings as DuckDB.

The cluster is started from the pyspark package's own launcher (``bin/spark-class``): a master
and two workers, each a separate JVM bound to 127.0.0.1 with one core and a small memory, so
the executors are other processes that only see what is shipped to them or stored where they
can read it (here: the workspace path, which every process on this machine reads).  The hunt
is run the way a user runs it, ``sightline hunt --engine spark --spark-master spark://...``,
with the indicator index forced on, so that the index, the candidate flows and the flows of
baselines and pivoting are read by the executors (the driver only gets part names back).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sightline.pipeline import detect_workspace
from sightline.simulate import simulate
from sightline.store import Workspace

from .conftest import _spark_missing

pytestmark = [pytest.mark.spark, pytest.mark.timeout(600)]

START_DEADLINE_S = 120.0  # a loaded 2-core machine starts three JVMs slowly; normally ~10 s
WORKERS = 2
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _wait_for(log: Path, pattern: str, procs: list[subprocess.Popen], what: str) -> re.Match[str]:
    """Poll a daemon's log for ``pattern`` (its own announcement that it is up)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        m = rx.search(log.read_text(errors="replace")) if log.exists() else None
        if m:
            return m
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise RuntimeError(f"spark {what} did not come up:\n{tail}")


def _stop(procs: list[subprocess.Popen]) -> None:
    """Kill each daemon's process group (a worker's executors are in its group), TERM then KILL."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # executors left behind by a worker that exited
        except ProcessLookupError:
            pass
        p.wait()


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A Spark standalone master and two workers (1 core, 768 MiB each) on 127.0.0.1."""
    missing = _spark_missing()
    if missing:
        pytest.skip(f"spark engine not available: {missing}")
    home = _spark_home()
    spark_class = home / "bin" / "spark-class"
    root = tmp_path_factory.mktemp("spark-cluster")
    conf_dir = root / "conf"  # empty: no spark-defaults.conf of the machine leaks in
    conf_dir.mkdir()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_CONF_DIR": str(conf_dir),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(root),
        "PYSPARK_PYTHON": sys.executable,
        # no fixed ports: the REST submission server (6066) is off, UIs on free ports
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        "SPARK_DAEMON_JAVA_OPTS": QUICK_JVM,
        "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=false",
    }
    env.pop("SPARK_MASTER_HOST", None)
    procs: list[subprocess.Popen] = []

    def launch(name: str, *args: str) -> Path:
        log = root / f"{name}.log"
        with open(log, "wb") as fh:
            procs.append(
                subprocess.Popen(
                    [str(spark_class), *args],
                    env=env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # own process group: torn down as a whole
                )
            )
        return log

    try:
        mlog = launch(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
        )  # fmt: skip
        url = _wait_for(mlog, r"Starting Spark master at (spark://127\.0\.0\.1:\d+)", procs, "master").group(1)
        workdirs, wlogs = [], []
        for i in range(WORKERS):  # both start at once, then each must announce it joined
            wd = root / f"worker{i}"
            wd.mkdir()
            workdirs.append(wd)
            wlogs.append(
                launch(
                    f"worker{i}",
                    "org.apache.spark.deploy.worker.Worker",
                    "--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
                    "--cores", "1", "--memory", "768m", "--work-dir", str(wd),
                    url,
                )
            )  # fmt: skip
        for i, wlog in enumerate(wlogs):
            _wait_for(wlog, r"Successfully registered with master", procs, f"worker {i}")
        yield {"url": url, "workdirs": workdirs, "root": root, "env": env}
    finally:
        _stop(procs)


def _shape(doc: dict[str, Any]) -> dict[str, Any]:
    """What a user compares: organizations, their verdicts, hosts and evidence counts."""
    return {
        o["org_id"]: {
            "verdict": o["verdict"],
            "confidence": o["confidence"],
            "hosts": {
                h["ip"]: (h["verdict"], len(h["evidence"]), sorted(e["behaviour"] for e in h["evidence"]))
                for h in o["hosts"]
            },
        }
        for o in doc["organizations"]
    }


def test_hunt_on_standalone_cluster_matches_duckdb(spark_cluster: dict[str, Any], tmp_path: Path) -> None:
    sim = simulate(tmp_path / "sim", seed=3, flows=2000, days=1, victims=5, bystanders=5)
    ws_dir, out = tmp_path / "ws", tmp_path / "out"
    env = {
        **spark_cluster["env"],
        "SIGHTLINE_INDEX": "on",
        # executors of 512 MiB fit the workers' 768 MiB; one core each, both workers used.
        # Short JVMs on a small store: the quick JIT alone (no C2) halves the hunt's time here
        "SIGHTLINE_SPARK_CONF": "spark.executor.memory=512m;spark.executor.cores=1;spark.cores.max=2;"
        f"spark.sql.shuffle.partitions=2;spark.locality.wait=0;spark.executor.extraJavaOptions={QUICK_JVM};"
        f"spark.driver.extraJavaOptions={QUICK_JVM}",
    }
    for var in ("SIGHTLINE_SPARK_MASTER", "SIGHTLINE_SPARK_PATH_MAP"):
        env.pop(var, None)
    driver = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("sightline")), "hunt",
            "--workspace", str(ws_dir),
            "--telemetry", *map(str, sim.telemetry),
            "--intel", *map(str, sim.intel),
            "--orgs", str(sim.orgs),
            "--out", str(out),
            "--engine", "spark",
            "--spark-master", spark_cluster["url"],
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the driver and its JVM go together if the hunt hangs
    )  # fmt: skip
    try:
        _out, err = driver.communicate(timeout=540)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 0, err[-4000:]
    spark_doc = json.loads((out / "findings.json").read_text())
    assert spark_doc["engine"] == "spark"

    # the work ran in executors on both workers, not in the driver
    for wd in spark_cluster["workdirs"]:
        assert list(wd.glob("app-*/*/stderr")), f"no executor ran on {wd}"

    duck = detect_workspace(Workspace(ws_dir), engine_name="duckdb", index="off").to_dict()
    got, want = _shape(spark_doc), _shape(duck)
    assert want, "the simulated campaign must give findings"
    assert {v["verdict"] for v in want.values()} >= {"compromised", "exploitation_attempt", "reconnaissance"}
    assert got == want
    assert spark_doc["inputs"]["matched_flows"] == duck["inputs"]["matched_flows"]
    assert spark_doc["summary"]["by_verdict"] == duck["summary"]["by_verdict"]
