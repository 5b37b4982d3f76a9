"""A CLI that scripts can drive: ``--json`` on the commands that print tables, tables that keep
whole words when output is not a terminal, several values after one ``--telemetry`` /
``--intel`` flag (the repeated form still works)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightline.cli import app

from .test_hunt_e2e import scenario

LONG_SOURCE = "a-rather-long-intel-feed-file-name-nobody-would-want-cut.csv"


def cli(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    f = scenario(tmp_path)
    # the one intel file split in two, so two files can follow one --intel
    lines = f["intel"].read_text().splitlines()
    a, b = tmp_path / "intel-a.csv", tmp_path / LONG_SOURCE
    a.write_text("\n".join(lines[:3]) + "\n")
    b.write_text("\n".join([lines[0], *lines[3:]]) + "\n")
    f["intel_a"], f["intel_b"] = a, b
    return f


def test_several_values_after_one_flag_and_repeated_form_agree(files: dict[str, Path], tmp_path: Path) -> None:
    one_flag = cli(
        "hunt",
        "--telemetry",
        str(files["conn"]),
        str(files["conn6"]),
        "--intel",
        str(files["intel_a"]),
        str(files["intel_b"]),
        "--orgs",
        str(files["orgs"]),
        "-w",
        str(tmp_path / "ws1"),
        "--json",
    )
    repeated = cli(
        "hunt",
        "-t",
        str(files["conn"]),
        "-t",
        str(files["conn6"]),
        "-i",
        str(files["intel_a"]),
        "-i",
        str(files["intel_b"]),
        "--orgs",
        str(files["orgs"]),
        "--workspace",
        str(tmp_path / "ws2"),
        "--json",
    )
    a, b = json.loads(one_flag.stdout), json.loads(repeated.stdout)
    assert {f["path"] for f in a["files"]} == {str(files["conn"]), str(files["conn6"])}
    assert a["inputs"]["indicators"] == b["inputs"]["indicators"] == 5
    verdicts = {o["org_id"]: o["verdict"] for o in a["organizations"]}
    assert verdicts == {o["org_id"]: o["verdict"] for o in b["organizations"]}
    assert verdicts["tw-semi-01"] == "compromised"
    assert a["summary"]["by_verdict"]["compromised"] >= 1
    assert [s["stage"] for s in a["stages"]][:1]  # the stage table, as data


def test_json_on_table_commands_and_no_cut_words(files: dict[str, Path], tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    cli("intel", "add", str(files["intel_a"]), str(files["intel_b"]), "-w", ws)
    # piped (CliRunner is no terminal): the whole source name, no ellipsis
    table = cli("intel", "status", "-w", ws).stdout
    assert LONG_SOURCE in table and "…" not in table
    assert "imported" in table and "skipped" in table
    st = json.loads(cli("intel", "status", "-w", ws, "--json").stdout)
    assert st["totals"]["active"] == 5 and LONG_SOURCE in st["sources"]

    added = json.loads(cli("intel", "add", str(files["intel_a"]), "-w", ws, "--json").stdout)
    assert added["sources"][0]["read"] == 2 and "active" in added["workspace"]

    cli("hunt", "-t", str(files["conn"]), "--orgs", str(files["orgs"]), "-w", ws)
    det = json.loads(cli("detect", "-w", ws, "--json").stdout)
    assert any(o["verdict"] == "compromised" for o in det["organizations"])

    cli("suppress", "org:tw-misc-04", "--reason", "a reason long enough to be cut in a narrow table", "-w", ws)
    sup = cli("suppress", "--list", "-w", ws).stdout
    assert "a reason long enough to be cut in a narrow table" in sup
    assert json.loads(cli("suppress", "--list", "--json", "-w", ws).stdout)[0]["finding"] == "org:tw-misc-04"

    cfg = json.loads(cli("config", "show", "--json", "-w", ws).stdout)
    assert "sharing.default_tlp" in cfg

    CliRunner().invoke(
        app, ["users", "add", "ana", "--role", "analyst", "--password-stdin", "-w", ws], input="a long passphrase 42\n"
    )
    users = json.loads(cli("users", "list", "--json", "-w", ws).stdout)
    assert [(u["name"], u["role"]) for u in users] == [("ana", "analyst")]

    kev = json.loads(cli("kev", "status", "--json", "-w", ws).stdout)
    assert kev["cves"] > 0


def test_exposure_json_prints_and_json_file_still_writes(tmp_path: Path) -> None:
    from .datafiles import NMAP

    scan = NMAP / "libnmap_2_hosts_version.xml"
    ws = str(tmp_path / "ws")
    printed = cli("exposure", str(scan), "-w", ws, "--json")
    doc = json.loads(printed.stdout)
    assert doc["schema"].startswith("sightline.exposure")
    target = tmp_path / "e.json"
    cli("exposure", str(scan), "-w", ws, "--json", str(target))
    assert json.loads(target.read_text())["schema"] == doc["schema"]
    # the scan file itself is never taken for the output
    bad = cli("exposure", "--json", str(scan), "-w", ws, ok=False)
    assert bad.exit_code == 2 and scan.read_bytes().lstrip().startswith(b"<")


def test_every_command_takes_spark_master(monkeypatch) -> None:
    """``--spark-master URL`` works on any command (as ``SIGHTLINE_SPARK_MASTER``, which the
    Spark engine reads), also on commands that declare no such option."""
    from sightline.cli import _common_options
    from sightline.core.settings import settings

    for var in ("SIGHTLINE_SPARK_MASTER", "SIGHTLINE_ENGINE"):
        monkeypatch.setenv(var, "")  # whatever the command sets is undone after the test
    argv = _common_options(["detect", "-w", "ws", "--spark-master", "spark://head:7077", "--engine=spark"])
    assert argv == ["detect", "-w", "ws"]
    assert settings().spark_master == "spark://head:7077"
    assert _common_options(["intel", "status", "--spark-master=yarn"]) == ["intel", "status"]
    assert settings().spark_master == "yarn"
