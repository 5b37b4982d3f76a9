"""Skipped intel rows are said on the console by ``intel add`` and ``hunt``, not only in ``intel status``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app

from .zeekgen import conn, write_tsv

HEAD = "indicator,type,actor,first_seen,last_seen,confidence,tlp\n"


def _run(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _text(res) -> str:  # type: ignore[no-untyped-def]
    return " ".join(res.output.split())


def _feed(tmp_path: Path, bad: int) -> Path:
    p = tmp_path / "feed.csv"
    good = "".join(f"45.77.1.{i},ipv4,RedJuliett,2024/01/15,,80,amber\n" for i in range(1, 4))
    p.write_text(
        HEAD + good + "".join(f"45.77.2.{i},ipv4,RedJuliett,0{i}/02/2024,,80,amber\n" for i in range(1, bad + 1))
    )
    return p


def test_intel_add_warns_with_count_reasons_and_where_to_look(tmp_path: Path) -> None:
    res = _run(["intel", "add", str(_feed(tmp_path, 5)), "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    text = _text(res)
    assert "warning: 5 of 8 intel row(s) skipped, not loaded (feed.csv 5)" in text
    assert "feed.csv line 5: bad value: ambiguous date '01/02/2024'" in text
    # counted per reason, one example each, not one line per skipped row
    assert "5 x bad value, e.g. feed.csv line 5" in text and "see `sightline intel status --all`" in text
    assert "line 6" not in text


def test_hunt_warns_about_skipped_intel_and_strict_exits_2(tmp_path: Path) -> None:
    feed = _feed(tmp_path, 1)
    log = write_tsv(
        tmp_path / "c.log", [conn(1709251200.0 + k, "203.0.113.5", 40000 + k, "45.77.1.1", 443) for k in range(3)]
    )
    res = _run(["hunt", "-t", str(log), "-i", str(feed), "--workspace", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    text = _text(res)
    assert "warning: 1 of 4 intel row(s) skipped, not loaded (feed.csv 1)" in text
    assert "feed.csv line 5: bad value: ambiguous date" in text and "see `sightline intel status --all`" in text
    assert "3 indicators" in text  # the 2024/01/15 rows were loaded
    res = _run(["hunt", "-t", str(log), "-i", str(feed), "--strict", "--workspace", str(tmp_path / "b")])
    assert res.exit_code == 2 and "1 intel row(s) skipped" in _text(res)


def test_no_warning_when_nothing_was_skipped(tmp_path: Path) -> None:
    res = _run(["intel", "add", str(_feed(tmp_path, 0)), "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 0 and "warning" not in res.output
    from sightline.cli.intel_cmds import skip_warning

    assert skip_warning([{"source": "x", "read": 3, "skipped": 0, "skips": []}]) == []
