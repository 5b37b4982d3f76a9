"""DuckDB and Spark run the same detection SQL and must produce the same findings.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sightline import net
from sightline.pipeline import detect_workspace, hunt
from sightline.store import FlowWriter, Workspace, flows_table_from_columns

from .test_hunt_e2e import C2, DAY, SCANNER, scenario

pytest.importorskip("pyspark")
pytest.importorskip("sqlglot")
pytestmark = [pytest.mark.spark, pytest.mark.timeout(600)]

V6_ACTOR = "2001:db8:bad::7"
VOLATILE = ("generated_at", "run_id", "engine")


@pytest.fixture(scope="module")
def spark_engine(spark_session):
    """The test run's one Spark session (tests/conftest.py): startup is the slow part on 2 cores."""
    return spark_session


def _stable(doc: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in doc.items() if k not in VOLATILE}, sort_keys=True, indent=1)


def _add_unidirectional(ws: Workspace) -> None:
    """NetFlow-like records: bytes_in null, replies as separate records, an IPv6 actor."""
    n = 40
    ts = [int((DAY + 50_000 + 600 * k) * 1e6) for k in range(n)]
    v4 = net.parse_ips(pa.array(["203.0.113.9", C2] * (n // 2)))
    v4b = net.parse_ips(pa.array([C2, "203.0.113.9"] * (n // 2)))
    cols = {
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "duration_s": pa.array([1.5] * n),
        "src_ip": v4.v4,
        "dst_ip": v4b.v4,
        "src_port": pa.array([40_000 + k if k % 2 == 0 else 443 for k in range(n)], pa.int32()),
        "dst_port": pa.array([443 if k % 2 == 0 else 40_000 + k - 1 for k in range(n)], pa.int32()),
        "proto": pa.array(["tcp"] * n),
        "bytes_out": pa.array([900 + k for k in range(n)], pa.int64()),
        "bytes_in": pa.nulls(n, pa.int64()),
        "packets_out": pa.array([5] * n, pa.int64()),
        "packets_in": pa.nulls(n, pa.int64()),
        "sensor": pa.array(["nf1"] * n),
        "source_format": pa.array(["netflow_v5"] * n),
        "source_file": pa.array(["uni.nf"] * n),
    }
    w = FlowWriter(ws, "ab" * 32, "uni.nf", "netflow_v5")
    w.write(flows_table_from_columns(cols, n))
    v6s = net.parse_ips(pa.array([V6_ACTOR] * 4))  # inbound: the actor sends payload to a VPN port
    v6d = net.parse_ips(pa.array(["2001:db8:5::20"] * 4))
    cols6 = {
        "ts": pa.array([int((DAY + 60_000 + 300 * k) * 1e6) for k in range(4)], pa.timestamp("us", tz="UTC")),
        "src_ip6": v6s.v6,
        "dst_ip6": v6d.v6,
        "src_port": pa.array([50_000 + k for k in range(4)], pa.int32()),
        "dst_port": pa.array([8443] * 4, pa.int32()),
        "proto": pa.array(["tcp"] * 4),
        "bytes_out": pa.array([3000] * 4, pa.int64()),
        "bytes_in": pa.array([None, 0, 5000, None], pa.int64()),
        "packets_out": pa.array([6] * 4, pa.int64()),
        "packets_in": pa.array([None, 1, 6, None], pa.int64()),
        "conn_state": pa.array(["SF", "REJ", "SF", None]),
        "source_format": pa.array(["ipfix"] * 4),
    }
    w.write(flows_table_from_columns(cols6, 4))
    w.commit(None)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    tmp = tmp_path_factory.mktemp("parity")
    files = scenario(tmp)
    with open(files["intel"], "a") as fh:
        fh.write("2001:db8:bad::/48,cidr,RedJuliett,,,75,amber\n")
    ws = Workspace(tmp / "ws")
    res = hunt(ws, telemetry=[files["conn"], files["conn6"]], intel=[files["intel"]], orgs_csv=files["orgs"])
    ws.base_matched = res.findings.inputs["matched_flows"]  # type: ignore[attr-defined]
    _add_unidirectional(ws)
    return ws


def test_same_findings_on_duckdb_and_spark(workspace: Workspace, spark_engine) -> None:
    duck = detect_workspace(workspace, engine_name="duckdb").to_dict()
    spark = detect_workspace(workspace, engine_name="spark").to_dict()
    assert spark["engine"] == "spark" and duck["engine"] == "duckdb"
    # the scenario really exercises the edge cases: IPv6 range indicator, unidirectional records
    ips = {h["ip"]: h["verdict"] for o in duck["organizations"] for h in o["hosts"]}
    assert ips["2001:db8:5::20"] == "exploitation_attempt" and ips["203.0.113.5"] == "compromised"
    assert duck["inputs"]["matched_flows"] == workspace.base_matched + 40 + 4  # every added record matched
    # parts of both timestamp units (whole-ms NetFlow-like parts are stored in ms) in one store
    import pyarrow.parquet as pq

    assert {pq.read_schema(f).field("ts").type.unit for f in workspace.flow_files()} == {"ms", "us"}
    assert _stable(spark) == _stable(duck)


def test_same_findings_through_the_index_on_spark(workspace: Workspace, spark_engine, tmp_path: Path) -> None:
    """A retro-hunt through the indicator index on Spark (the engine reads the index, the
    candidates, the baselines' and pivoting's flows itself) finds what DuckDB's full scan finds:
    IPv6 CIDR indicator, unidirectional records, suspected infrastructure."""
    from .test_pivot import UNKNOWN_C2, pivot_scenario

    duck = detect_workspace(workspace, engine_name="duckdb", index="off").to_dict()
    spark = detect_workspace(workspace, engine_name="spark", index="on").to_dict()
    assert _stable(spark) == _stable(duck)
    files, extra = pivot_scenario(tmp_path)
    ws = Workspace(tmp_path / "ws")
    hunt(ws, telemetry=[files["conn"], extra], intel=[files["intel"]], orgs_csv=files["orgs"])
    duck = detect_workspace(ws, engine_name="duckdb", index="off").to_dict()
    spark = detect_workspace(ws, engine_name="spark", index="on").to_dict()
    assert UNKNOWN_C2 in {s["ip"] for s in spark["suspected_infrastructure"]}
    assert _stable(spark) == _stable(duck)


def test_same_findings_on_an_empty_store(tmp_path: Path, spark_engine) -> None:
    files = scenario(tmp_path)
    ws = Workspace(tmp_path / "ws")
    hunt(ws, intel=[files["intel"]], orgs_csv=files["orgs"])  # no telemetry: an empty window
    duck = detect_workspace(ws, engine_name="duckdb").to_dict()
    spark = detect_workspace(ws, engine_name="spark").to_dict()
    assert duck["organizations"] == [] and duck["inputs"]["flows"] == 0
    assert _stable(spark) == _stable(duck)


def test_scanner_only_window_matches(tmp_path: Path, spark_engine) -> None:
    """Indicators whose validity windows exclude every flow: stale matches only, on both engines."""
    files = scenario(tmp_path)
    intel = tmp_path / "old.csv"
    intel.write_text(
        "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"
        f"{SCANNER},ipv4,RedJuliett,2020-01-01,2020-02-01,80,green\n"
        f"{C2},ipv4,RedJuliett,2025-01-01,,90,amber\n"
    )
    ws = Workspace(tmp_path / "ws")
    hunt(ws, telemetry=[files["conn"], files["conn6"]], intel=[intel], orgs_csv=files["orgs"])
    duck = detect_workspace(ws, engine_name="duckdb").to_dict()
    spark = detect_workspace(ws, engine_name="spark").to_dict()
    assert duck["organizations"] == []
    assert duck.get("stale_matches"), "out-of-window contacts must be reported as stale"
    assert _stable(spark) == _stable(duck)


def test_duckdb_gives_back_what_python_holds() -> None:
    """Engine.fit_memory: DuckDB's limit shrinks by what the rest of the process holds, never
    below half of the configured limit (a hunt's findings sit in Python while pivoting runs)."""
    from sightline.engines.duckdb import DuckDBEngine

    eng = DuckDBEngine(memory_limit="8GiB")

    def limit() -> int:
        text = eng.con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
        num, unit = text.split()
        return int(float(num) * {"MiB": 1 << 20, "GiB": 1 << 30, "KiB": 1 << 10}[unit])

    held = b"x" * (1 << 30)  # 1 GiB, resident
    eng.fit_memory()
    after = limit()
    assert len(held) == 1 << 30
    assert 4 << 30 <= after <= (8 << 30) - (1 << 30) + (256 << 20) + (16 << 20)
    eng.close()


def test_same_suspected_infrastructure_on_both_engines(tmp_path: Path, spark_engine) -> None:
    """Pivoting (candidates, regularity, pruning, talkers) gives the same answer on Spark."""
    from .test_pivot import UNKNOWN_C2, pivot_scenario

    files, extra = pivot_scenario(tmp_path)
    ws = Workspace(tmp_path / "ws")
    hunt(ws, telemetry=[files["conn"], extra], intel=[files["intel"]], orgs_csv=files["orgs"])
    duck = detect_workspace(ws, engine_name="duckdb").to_dict()
    spark = detect_workspace(ws, engine_name="spark").to_dict()
    assert UNKNOWN_C2 in {s["ip"] for s in duck["suspected_infrastructure"]}
    assert _stable(spark) == _stable(duck)


def test_same_orientation_from_history_and_parts_without_it(tmp_path: Path, spark_engine) -> None:
    """Mid-session records re-oriented by ports (``history`` without SYN, ``^``) on both engines,
    in a store that also holds a part written before the ``history`` column existed."""
    from .test_orientation import FLIPPED_HOST, MID_HOST, WORKSTATION, orientation_rows, write_intel_orgs
    from .zeekgen import write_tsv

    intel, orgs = write_intel_orgs(tmp_path)
    ws = Workspace(tmp_path / "ws")
    hunt(ws, telemetry=[write_tsv(tmp_path / "conn.log", orientation_rows())], intel=[intel], orgs_csv=orgs)
    _add_unidirectional(ws)  # NetFlow-like parts: history null
    old = pa.schema([f for f in flows_table_from_columns({}, 0).schema if f.name != "history"])
    w = FlowWriter(ws, "ef" * 32, "old.log", "zeek_tsv", schema=old)
    v4s, v4d = net.parse_ips(pa.array(["45.77.1.14"] * 3)), net.parse_ips(pa.array([MID_HOST] * 3))
    w.write(
        flows_table_from_columns(
            {  # an old store's probes of the same host: still probes
                "ts": pa.array([int((DAY + 70_000 + k) * 1e6) for k in range(3)], pa.timestamp("us", tz="UTC")),
                "src_ip": v4s.v4,
                "dst_ip": v4d.v4,
                "src_port": pa.array([41_000] * 3, pa.int32()),
                "dst_port": pa.array([22, 3389, 8443], pa.int32()),
                "proto": pa.array(["tcp"] * 3),
                "bytes_out": pa.array([0] * 3, pa.int64()),
                "bytes_in": pa.array([0] * 3, pa.int64()),
                "packets_out": pa.array([1] * 3, pa.int64()),
                "packets_in": pa.array([1] * 3, pa.int64()),
                "conn_state": pa.array(["REJ"] * 3),
            },
            3,
        ).drop_columns(["history"])
    )
    w.commit(None)
    import pyarrow.parquet as pq

    assert not all("history" in pq.read_schema(f).names for f in ws.flow_files())
    duck = detect_workspace(ws, engine_name="duckdb").to_dict()
    spark = detect_workspace(ws, engine_name="spark").to_dict()
    orgs_found = {o["org_id"]: o["verdict"] for o in duck["organizations"]}
    assert orgs_found["tw-c2-02"] == "compromised" and orgs_found["tw-edge-04"] == "exploitation_attempt"
    assert "tw-flip-03" not in orgs_found
    # only the old part's probes count against the mid-session host: its no-SYN records do not
    mid = [e for o in duck["organizations"] for h in o["hosts"] if h["ip"] == MID_HOST for e in h["evidence"]]
    assert [(e["behaviour"], e["flows"]) for e in mid] == [("scan", 3)]
    assert not {FLIPPED_HOST, WORKSTATION} & {h["ip"] for o in duck["organizations"] for h in o["hosts"]}
    assert _stable(spark) == _stable(duck)


def test_store_paths_reach_spark_as_uris(monkeypatch) -> None:
    """Local paths are never resolved against a cluster's default file system (HDFS on YARN):
    they become file:// URIs, or where SIGHTLINE_SPARK_PATH_MAP says executors read them; a URI
    is passed through."""
    from sightline.engines.spark import spark_path
    from sightline.errors import ConfigError

    part = "/data/sl/flows/day=2024-03-01/ab.parquet"
    monkeypatch.delenv("SIGHTLINE_SPARK_PATH_MAP", raising=False)
    assert spark_path(part) == "file://" + part
    assert spark_path("s3a://bucket/sl/flows/x.parquet") == "s3a://bucket/sl/flows/x.parquet"
    monkeypatch.setenv("SIGHTLINE_SPARK_PATH_MAP", "/data=hdfs://nn/data; /data/sl/=s3a://bucket/sl/")
    assert spark_path(part) == "s3a://bucket/sl/flows/day=2024-03-01/ab.parquet"  # longest prefix
    assert spark_path("/data/other/x.parquet") == "hdfs://nn/data/other/x.parquet"
    assert spark_path("/database/x.parquet") == "file:///database/x.parquet"  # a prefix is a directory
    monkeypatch.setenv("SIGHTLINE_SPARK_PATH_MAP", "no-equals-sign")
    with pytest.raises(ConfigError):
        spark_path(part)
