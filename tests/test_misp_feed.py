"""MISP feeds as MISP publishes them (``manifest.json``, ``hashes.csv``, one ``<uuid>.json``
per event), from a directory and from a URL served by a local http.server, incrementally.

The feed is laid out here the way MISP's feed export writes it, from two real ESET events
(``tests/data/intel/eset``, BSD-2-Clause): the manifest entry of each event carries its
``info``, ``date``, ``Orgc``, ``Tag``, ``analysis``, ``threat_level_id`` and ``timestamp``;
``hashes.csv`` holds ``md5(value),event uuid`` per attribute.
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.errors import IntelError
from sightline.intel import intel_status, read_indicators
from sightline.intel.feed import pull_misp_feed
from sightline.store import Workspace

from .datafiles import INTEL

ESET = INTEL / "eset"


def _event(path: Path) -> dict:
    data = json.loads(path.read_text())
    if "response" in data:
        data = data["response"][0]
    return data["Event"]


def _write_event(feed: Path, ev: dict) -> None:
    (feed / f"{ev['uuid']}.json").write_text(json.dumps({"Event": ev}, indent=1))


def _write_meta(feed: Path, events: list[dict]) -> None:
    manifest = {
        ev["uuid"]: {
            "Orgc": {"name": ev.get("Orgc", {}).get("name"), "uuid": ev.get("Orgc", {}).get("uuid")},
            "Tag": [{"name": t.get("name"), "colour": t.get("colour")} for t in ev.get("Tag", [])],
            "info": ev["info"],
            "date": ev["date"],
            "analysis": ev["analysis"],
            "threat_level_id": ev["threat_level_id"],
            "timestamp": ev["timestamp"],
        }
        for ev in events
    }
    (feed / "manifest.json").write_text(json.dumps(manifest))
    rows = [
        f"{hashlib.md5(a['value'].encode()).hexdigest()},{ev['uuid']}" for ev in events for a in ev.get("Attribute", [])
    ]
    (feed / "hashes.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def feed(tmp_path: Path) -> tuple[Path, list[dict]]:
    d = tmp_path / "feed"
    d.mkdir()
    events = [_event(ESET / "misp-powerpool.json"), _event(ESET / "signsight-misp-event.json")]
    for ev in events:
        _write_event(d, ev)
    _write_meta(d, events)
    return d, events


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def served(feed: tuple[Path, list[dict]]) -> Iterator[tuple[str, Path, list[dict], list[str]]]:
    d, events = feed
    handler = type("H", (_Handler,), {"requests": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(d)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/", d, events, handler.requests
    finally:
        srv.shutdown()
        srv.server_close()


def _values(ws: Workspace) -> set[str]:
    return set(read_indicators(ws).column("value").to_pylist())


def test_pull_feed_over_http_incrementally(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    url, d, events, requests = served
    ws = tmp_path / "ws"
    res = CliRunner().invoke(
        app, ["intel", "pull", "--misp-feed", url, "--include-non-ids", "--workspace", str(ws)], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    assert "2 event(s) listed, 2 read (new or changed), 0 unchanged" in " ".join(res.output.split())
    assert {"newsrental.net", "office365.blogdns.com", "27.102.106.149"} <= _values(Workspace(ws))
    assert sorted(requests) == sorted(["/manifest.json"] + [f"/{ev['uuid']}.json" for ev in events])
    src = intel_status(Workspace(ws))["sources"][f"{events[0]['uuid']}.json"]
    assert src["include_non_ids"] and src["non_ids"] == 10

    # nothing changed: only the manifest is fetched
    requests.clear()
    r = pull_misp_feed(Workspace(ws), url, include_non_ids=True)
    assert (r.fetched, r.unchanged) == (0, 2) and requests == ["/manifest.json"]

    # the publisher updates one event (new attribute, newer timestamp) and drops the other
    ev = copy.deepcopy(events[0])
    ev["timestamp"] = str(int(ev["timestamp"]) + 3600)
    ev["Attribute"].append(
        {
            "uuid": "7d1c8f6e-0000-4000-8000-000000000001",
            "type": "domain",
            "category": "Network activity",
            "to_ids": False,
            "value": "update-check.example-bad.net",
            "timestamp": ev["timestamp"],
        }
    )
    _write_event(d, ev)
    _write_meta(d, [ev])
    requests.clear()
    r = pull_misp_feed(Workspace(ws), url, include_non_ids=True)
    assert (r.fetched, r.unchanged, r.removed) == (1, 0, 1) and sorted(requests) == sorted(
        ["/manifest.json", f"/{ev['uuid']}.json"]
    )
    vals = _values(Workspace(ws))
    assert "update-check.example-bad.net" in vals and "newsrental.net" in vals
    assert "office365.blogdns.com" not in vals  # the dropped event is withdrawn


def test_pull_feed_skips_a_bad_event_and_retries_it(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    url, d, events, requests = served
    bad = d / f"{events[1]['uuid']}.json"
    good_text = bad.read_text()
    bad.write_text(good_text.rstrip()[:-1] + ",}")  # a trailing comma, as one vendor file has
    ws = Workspace(tmp_path / "ws")
    r = pull_misp_feed(ws, url, include_non_ids=True)
    assert r.fetched == 1 and len(r.failed) == 1 and "not valid JSON" in r.failed[0].reason
    assert "newsrental.net" in _values(ws)
    bad.write_text(good_text)
    r = pull_misp_feed(ws, url, include_non_ids=True)
    assert (r.fetched, r.unchanged) == (1, 1) and "office365.blogdns.com" in _values(ws)


def test_pull_without_include_non_ids_loads_nothing_of_a_to_ids_false_feed(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    url, _, _, _ = served
    ws = Workspace(tmp_path / "ws")
    r = pull_misp_feed(ws, url)
    assert r.fetched == 2 and read_indicators(ws).num_rows == 0
    reasons = {k for s in r.load.report for k in s.skip_reasons()}
    assert "not for detection" in reasons
    # asking for them later re-reads every event, although none changed
    r = pull_misp_feed(ws, url, include_non_ids=True)
    assert r.fetched == 2 and read_indicators(ws).num_rows == 16


def test_feed_directory_add_and_pull_give_the_same_indicators(tmp_path: Path, feed) -> None:  # type: ignore[no-untyped-def]
    d, _ = feed
    a = tmp_path / "a"
    res = CliRunner().invoke(app, ["intel", "add", str(d), "--include-non-ids", "--workspace", str(a)])
    assert res.exit_code == 0, res.output
    assert "file(s), nothing loaded" not in res.output  # manifest.json, hashes.csv: feed metadata, not intel
    b = Workspace(tmp_path / "b")
    pull_misp_feed(b, str(d), include_non_ids=True)
    ids = lambda ws: set(read_indicators(ws).column("indicator_id").to_pylist())  # noqa: E731
    assert ids(Workspace(a)) == ids(b) and len(ids(b)) == 16


def test_manifest_alone_is_refused_saying_what_it_is(tmp_path: Path, feed) -> None:  # type: ignore[no-untyped-def]
    d, _ = feed
    res = CliRunner().invoke(app, ["intel", "add", str(d / "manifest.json"), "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 2 and "MISP feed's manifest.json" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["intel", "pull", "--misp-feed", str(tmp_path), "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 2 and "manifest.json" in res.output


def test_manifest_keys_that_are_no_uuid_reach_no_file(tmp_path: Path, feed) -> None:  # type: ignore[no-untyped-def]
    d, events = feed
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"Event": {"info": "x", "Attribute": [{"type": "ip-dst", "value": "192.0.2.1"}]}}))
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["../secret"] = {"info": "x", "timestamp": "1"}
    (d / "manifest.json").write_text(json.dumps(manifest))
    ws = Workspace(tmp_path / "ws")
    r = pull_misp_feed(ws, str(d), include_non_ids=True)
    assert r.fetched == 2 and [f.reason for f in r.failed] == ["not an event uuid: '../secret'"]
    assert "192.0.2.1" not in _values(ws)


def test_an_empty_manifest_withdraws_nothing(tmp_path: Path, feed) -> None:  # type: ignore[no-untyped-def]
    d, _ = feed
    ws = Workspace(tmp_path / "ws")
    pull_misp_feed(ws, str(d), include_non_ids=True)
    (d / "manifest.json").write_text("{}")
    with pytest.raises(IntelError, match="lists no event"):
        pull_misp_feed(ws, str(d), include_non_ids=True)
    assert len(_values(ws)) == 16
