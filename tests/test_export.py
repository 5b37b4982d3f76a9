"""Exports: stable schemas, round-trip through DuckDB, CSV injection neutralized."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from sightline.export import EXPORT_SCHEMAS, export_table, neutralize, write_export

from .test_hunt_e2e import STALE, run, scenario


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    files = scenario(tmp)
    ws = tmp / "ws"
    res = run(
        [
            "hunt",
            "--telemetry",
            str(files["conn"]),
            "--telemetry",
            str(files["conn6"]),
            "--intel",
            str(files["intel"]),
            "--orgs",
            str(files["orgs"]),
            "--workspace",
            str(ws),
        ]
    )
    assert res.exit_code == 0, res.output
    res = run(["suppress", "org:hk-rel-05", "--reason", "=cmd|' /C calc'!A0", "--workspace", str(ws)])
    assert res.exit_code == 0, res.output
    return ws


def _findings(ws: Path) -> dict:
    from sightline.pipeline import latest_findings
    from sightline.store import Workspace

    return latest_findings(Workspace(ws)).to_dict()


def _text(v):
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return v


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


@pytest.mark.parametrize("what", ["findings", "evidence", "stale"])
@pytest.mark.parametrize("fmt", ["parquet", "ndjson", "csv"])
def test_export_round_trips_through_duckdb(ws: Path, tmp_path: Path, fmt: str, what: str):
    out = tmp_path / f"x.{fmt}"
    res = run(["export", "--format", fmt, "--what", what, "--out", str(out), "--workspace", str(ws)])
    assert res.exit_code == 0, res.output
    expected = export_table(_findings(ws), what)
    schema = EXPORT_SCHEMAS[what]
    names = schema.names
    con = _con()
    if fmt == "parquet":
        back = con.sql(f"SELECT * FROM read_parquet('{out}')").to_arrow_table()
        assert back.schema.names == names
        assert back.to_pylist() == expected.to_pylist()
        return
    if fmt == "csv":
        assert out.read_text().splitlines()[0] == ",".join(names)  # header row
        rel = con.execute("SELECT * FROM read_csv(?, header = true, all_varchar = true)", [str(out)])
        want = [
            [
                None
                if v is None
                else neutralize(v)
                if isinstance(v, str)
                else ("true" if v else "false")
                if isinstance(v, bool)
                else str(_text(v))
                for v in r.values()
            ]
            for r in expected.to_pylist()
        ]
    else:
        cols = {n: "VARCHAR" for n in names}
        rel = con.execute(f"SELECT * FROM read_json(?, format = 'newline_delimited', columns = {cols!r})", [str(out)])
        want = [
            [None if v is None else json.dumps(v) if isinstance(v, bool) else str(_text(v)) for v in r.values()]
            for r in expected.to_pylist()
        ]
    assert [d[0] for d in rel.description] == names
    assert [list(r) for r in rel.fetchall()] == want


def test_export_contents_are_what_an_analyst_needs(ws: Path, tmp_path: Path):
    doc = _findings(ws)
    ev = export_table(doc, "evidence").to_pylist()
    n_active = sum(len(h["evidence"]) for o in doc["organizations"] for h in o["hosts"])
    assert len(ev) == n_active + len(doc["suppressed"]) and len(doc["suppressed"]) == 1
    sup = [r for r in ev if r["status"] == "suppressed"]
    assert sup[0]["org_id"] == "hk-rel-05" and sup[0]["rule"].startswith("suppression:")
    beacon = next(r for r in ev if r["behaviour"] == "beacon")
    assert (beacon["org_id"], beacon["host"], beacon["org_verdict"], beacon["host_verdict"]) == (
        "tw-semi-01",
        "203.0.113.5",
        "compromised",
        "compromised",
    )
    assert beacon["first_seen"].tzinfo is not None and beacon["flows"] > 100
    stale = export_table(doc, "stale").to_pylist()
    assert [(s["host"], s["indicator"], s["flows"]) for s in stale] == [("198.18.1.5", STALE, 6)]
    fnd = export_table(doc, "findings").to_pylist()
    assert {r["org_id"]: r["verdict"] for r in fnd} == {o["org_id"]: o["verdict"] for o in doc["organizations"]}
    # the analyst's hostile reason text is neutralized in CSV
    out = tmp_path / "e.csv"
    write_export(export_table(doc, "evidence"), "csv", out)
    (cell,) = (
        _con()
        .execute("SELECT reason FROM read_csv(?, all_varchar = true) WHERE status = 'suppressed'", [str(out)])
        .fetchall()
    )
    assert cell[0].startswith("'=cmd")


@pytest.mark.parametrize(
    "value, safe",
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
    ],
    ids=["eq", "plus", "minus", "at", "tab", "cr", "plain", "inner", "empty"],
)
def test_neutralize(value: str, safe: str):
    assert neutralize(value) == safe


def test_stdout_and_usage_errors(ws: Path):
    res = run(["export", "--format", "ndjson", "--what", "findings", "--workspace", str(ws)])
    assert res.exit_code == 0
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert {r["org_id"] for r in rows} >= {"tw-semi-01", "tw-univ-02"} and "hk-rel-05" not in {
        r["org_id"] for r in rows
    }
    assert run(["export", "--format", "parquet", "--workspace", str(ws)]).exit_code == 2
    bad = run(["export", "--format", "xlsx", "--workspace", str(ws)])
    assert bad.exit_code == 2 and "ndjson | csv | parquet" in bad.output
    assert run(["export", "--what", "everything", "--workspace", str(ws)]).exit_code == 2
