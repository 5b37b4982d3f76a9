"""KEV catalog: bundled snapshot, validated atomic update from file and URL, CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.errors import InputError
from sightline.exposure import load_kev, update_kev
from sightline.exposure.kev import kev_path
from sightline.store import Workspace

from .datafiles import kev_catalog


@pytest.fixture(scope="module")
def real_doc() -> dict:
    return kev_catalog()


def test_bundled_catalog_matches_the_real_one(real_doc: dict) -> None:
    kev = load_kev()
    assert kev.num_rows == len(real_doc["vulnerabilities"]) == real_doc["count"]
    meta = kev.schema.metadata
    assert meta[b"catalog_version"].decode() == real_doc["catalogVersion"]
    assert meta[b"origin"] == b"bundled"
    rows = {r["cve"]: r for r in kev.to_pylist()}
    ivanti = rows["CVE-2023-46805"]
    assert ivanti["vendor_project"] == "Ivanti"
    assert ivanti["date_added"] == dt.date(2024, 1, 10)
    src = {v["cveID"]: v for v in real_doc["vulnerabilities"]}
    for cve in ("CVE-2023-46805", "CVE-2018-13379", "CVE-2023-3519"):
        assert rows[cve]["known_ransomware"] is (src[cve]["knownRansomwareCampaignUse"] == "Known")
        assert rows[cve]["due_date"].isoformat() == src[cve]["dueDate"]


def _older_catalog(doc: dict, n: int = 100) -> dict:
    vulns = doc["vulnerabilities"][-n:]
    return {**doc, "catalogVersion": "2020.01.01", "count": len(vulns), "vulnerabilities": vulns}


def test_update_from_file_then_workspace_copy_is_used(tmp_path: Path, real_doc: dict) -> None:
    ws = Workspace(tmp_path / "ws")
    small = tmp_path / "kev.json"
    small.write_text(json.dumps(_older_catalog(real_doc)))
    info = update_kev(ws, file=small)
    assert info["catalog_version"] == "2020.01.01" and info["count"] == 100
    assert info["previous_version"] == real_doc["catalogVersion"]  # the bundled one
    kev = load_kev(ws)
    assert kev.num_rows == 100 and kev.schema.metadata[b"origin"].decode() == str(kev_path(ws))
    assert load_kev().num_rows == real_doc["count"]  # the package copy is untouched


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: {**d, "count": d["count"] + 5}, "truncated"),
        (lambda d: {**d, "vulnerabilities": []}, "no vulnerabilities"),
        (lambda d: {k: v for k, v in d.items() if k != "catalogVersion"}, "not a valid KEV catalog"),
        (
            lambda d: {
                **d,
                "vulnerabilities": [{**d["vulnerabilities"][0], "cveID": "not-a-cve"}] + d["vulnerabilities"][1:],
            },
            "vulnerabilities/0/cveID",
        ),
        (
            lambda d: {
                **d,
                "count": d["count"] + 1,
                "vulnerabilities": d["vulnerabilities"] + d["vulnerabilities"][:1],
            },
            "twice",
        ),
    ],
    ids=["count-mismatch", "empty", "schema", "bad-cve-id", "duplicate"],
)
def test_invalid_catalog_never_replaces_the_good_one(tmp_path: Path, real_doc: dict, mutate, needle: str) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace(tmp_path / "ws")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_older_catalog(real_doc, 50)))
    update_kev(ws, file=good)
    before = kev_path(ws).read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(mutate(_older_catalog(real_doc, 50))))
    with pytest.raises(InputError) as ei:
        update_kev(ws, file=bad)
    assert needle in str(ei.value)
    assert kev_path(ws).read_bytes() == before
    assert not [p for p in kev_path(ws).parent.iterdir() if p.name.endswith(".tmp")]


def test_not_json_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "kev.json"
    bad.write_text("<html>rate limited</html>")
    with pytest.raises(InputError, match="not JSON"):
        update_kev(Workspace(tmp_path / "ws"), file=bad)


def test_update_from_url_through_an_injected_transport(tmp_path: Path, real_doc: dict) -> None:
    body = json.dumps(_older_catalog(real_doc, 10)).encode()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path.endswith("missing.json"):
            return httpx.Response(404)
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    ws = Workspace(tmp_path / "ws")
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        info = update_kev(ws, url="https://kev.example/feed.json", client=client)
        assert info["count"] == 10
        with pytest.raises(InputError, match="cannot download"):
            update_kev(ws, url="https://kev.example/missing.json", client=client)
    assert seen == ["https://kev.example/feed.json", "https://kev.example/missing.json"]
    assert load_kev(ws).num_rows == 10


def test_cli_kev_update_and_status(tmp_path: Path, real_doc: dict) -> None:
    runner = CliRunner()
    ws = tmp_path / "ws"
    f = tmp_path / "kev.json"
    f.write_text(json.dumps(_older_catalog(real_doc, 20)))
    r = runner.invoke(app, ["kev", "update", "--file", str(f), "--workspace", str(ws)])
    assert r.exit_code == 0, r.output
    assert "2020.01.01" in r.output and "20 CVEs" in r.output
    r = runner.invoke(app, ["kev", "status", "--workspace", str(ws)])
    assert r.exit_code == 0 and "20 CVEs" in r.output
    r = runner.invoke(app, ["kev", "update", "--file", str(tmp_path / "absent.json"), "--workspace", str(ws)])
    assert r.exit_code == 2 and "cannot read KEV file" in r.output
