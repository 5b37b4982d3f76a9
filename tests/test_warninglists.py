"""MISP warninglists: the bundled snapshot, rebuilding it, and a workspace's own lists
(``sightline allowlist update --from DIR``) with damaged list files skipped, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.enrich import warninglists as wl
from sightline.enrich.shared_infra import classifier, classify_name, name_classifier
from sightline.store import Workspace

BUNDLED = Path(__file__).resolve().parent.parent / "sightline" / "data" / "warninglists"


def cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def misp_list(root: Path, lid: str, entries: list, *, name: str, typ: str = "cidr", version: int = 20990101) -> None:
    d = root / "lists" / lid
    d.mkdir(parents=True)
    (d / "list.json").write_text(
        json.dumps(
            {
                "name": name,
                "version": version,
                "description": "test list",
                "matching_attributes": ["ip-dst"],
                "type": typ,
                "list": entries,
            }
        )
    )


@pytest.fixture
def user_lists(tmp_path) -> Path:
    """A small checkout in MISP's layout: an updated resolver list, a new CDN list, a damaged
    Cloudflare list, an unknown list and a name list."""
    root = tmp_path / "misp-warninglists"
    misp_list(
        root,
        "public-dns-v4",
        ["203.0.113.53", "not-an-address", "198.51.100.0/30"],
        name="List of known IPv4 public DNS resolvers",
    )
    misp_list(root, "our-cdn", ["192.0.2.0/25", "2001:db8:cd::/48"], name="Our regional CDN")
    misp_list(root, "mystery", ["192.0.2.200"], name="A list sightline does not know")
    misp_list(
        root,
        "tranco10k",
        ["tiny-popular.example", "bad name!"],
        name="Top 10K most-used sites from Tranco",
        typ="hostname",
    )
    (root / "lists" / "cloudflare").mkdir(parents=True)
    (root / "lists" / "cloudflare" / "list.json").write_text('{"name": "List of known Cloudflare IP ranges", "list": [')
    return root


def test_bundled_snapshot_is_small_versioned_and_categorized():
    size = sum(p.stat().st_size for p in BUNDLED.iterdir())
    assert size < 4_000_000
    snap = wl.read_snapshot(BUNDLED)
    assert not snap.problems and snap.manifest["format"] == wl.FORMAT
    assert snap.manifest["source"]["kind"] == "pymispwarninglists"
    lists = snap.lists
    for m in lists.values():
        assert m["category"] in (*wl.CATEGORIES, wl.BOUNDARY) and m["name"] and m["version"]
    cats = {m["category"] for m in lists.values()}
    assert cats >= {"resolver", "cdn", "cloud", "saas", "crl", "vpn", "scanner", "popular_domain"}
    assert lists["public-dns-v4"]["name"] == "List of known IPv4 public DNS resolvers"
    # counts in the manifest are what the tables hold
    per_list = snap.ranges.group_by("list").aggregate([("list", "count")]).to_pylist()
    assert {r["list"]: r["list_count"] for r in per_list} == {
        k: m["entries"] for k, m in lists.items() if m["type"] == "cidr" and m["entries"]
    }
    # every list of the package is either kept or left out with a reason
    assert all(x["reason"] for x in snap.manifest["left_out"])
    assert {"tranco", "sinkholes", "rfc1918"} <= {x["id"] for x in snap.manifest["left_out"]}


def test_rebuilding_from_the_pinned_package_reproduces_the_bundled_snapshot(tmp_path):
    pytest.importorskip("pymispwarninglists")
    root, version = wl.package_lists_dir()
    if version != wl.read_snapshot(BUNDLED).manifest["source"]["version"]:
        pytest.skip(f"installed pymispwarninglists {version} is not the pinned one")
    assert wl.main(["build", "--out", str(tmp_path / "snap")]) == 0
    for f in ("ranges.parquet", "names.parquet"):
        assert pq.read_table(tmp_path / "snap" / f).equals(pq.read_table(BUNDLED / f))
    new = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    old = json.loads((BUNDLED / "manifest.json").read_text())
    assert new["lists"] == old["lists"] and new["left_out"] == old["left_out"]


def test_compile_skips_damaged_lists_and_bad_entries_with_reasons(user_lists):
    snap = wl.build_from(user_lists, categories={"our-cdn": "cdn"})
    lists = snap.lists
    assert set(lists) == {"public-dns-v4", "our-cdn", "tranco10k"}
    assert snap.manifest["skipped_lists"] == [
        {"id": "cloudflare", "reason": snap.manifest["skipped_lists"][0]["reason"]}
    ]
    assert "not valid JSON" in snap.manifest["skipped_lists"][0]["reason"]
    assert lists["public-dns-v4"]["entries"] == 2 and lists["public-dns-v4"]["skipped"] == 1
    assert "not-an-address" in lists["public-dns-v4"]["skip_reasons"][0]
    assert lists["tranco10k"]["skipped"] == 1
    assert {"id": "mystery", "reason": wl.DEFAULT_LEFT_OUT} in snap.manifest["left_out"]
    assert any("cloudflare" in p for p in snap.problems)


def test_unknown_category_is_refused():
    with pytest.raises(wl.InputError, match="unknown category"):
        wl.compile_lists(Path("."), source={}, categories={"x": "friendly"})


def test_allowlist_update_from_dir_overrides_bundled_lists(tmp_path, user_lists):
    ws_path = tmp_path / "ws"
    res = cli(
        "allowlist", "update", "--from", str(user_lists), "--category", "our-cdn=cdn", "--workspace", str(ws_path)
    )
    assert res.exit_code == 0, res.output
    assert "3 list(s)" in res.stdout and "workspace snapshot: 3 list(s)" in res.stdout
    assert "cloudflare skipped" in res.stderr and "not valid JSON" in res.stderr
    ws = Workspace(ws_path)
    check = classifier(ws)
    m = check("203.0.113.53")
    assert (m.category, m.source) == ("resolver", "misp-warninglist:public-dns-v4@20990101")
    assert check("198.51.100.2").category == "resolver"
    # the workspace list replaced the bundled one of the same id: 8.8.8.8 is no longer in it,
    # only the Google /24 of sightline's own CSV marks it
    assert check("8.8.8.8").source.startswith("sightline:shared_infra/resolvers.csv:")
    assert check("9.9.9.9").source.startswith("sightline:shared_infra/resolvers.csv:")
    assert check("208.67.222.222") is None
    # a new list with the category given on the command line, IPv4 and IPv6
    assert check("192.0.2.1").list_name == "MISP warninglist: Our regional CDN"
    assert check("2001:db8:cd::1").category == "cdn" and check("2001:db8:ce::1") is None
    # the damaged Cloudflare list of the workspace did not cost the bundled one
    assert check("104.16.1.1").source.startswith("misp-warninglist:cloudflare@20251223")
    # unknown list without a category: left out
    assert check("192.0.2.200") is None
    names = name_classifier(ws)
    assert names("www.tiny-popular.example").category == "popular_domain"
    assert names("2gis.com") is None and classify_name("2gis.com") is not None


def test_allowlist_status_reports_lists_entries_versions_and_ages(tmp_path, user_lists):
    ws_path = tmp_path / "ws"
    res = cli("allowlist", "status", "--workspace", str(ws_path), "--json")
    assert res.exit_code == 0
    st = json.loads(res.stdout)
    assert st["workspace"] is None and st["totals"]["ranges"] > 100_000
    dns = next(x for x in st["lists"] if x["id"] == "public-dns-v4")
    assert dns["origin"] == "bundled" and dns["version"] == "20240615" and dns["age_days"] > 0
    cli("allowlist", "update", "--from", str(user_lists), "--workspace", str(ws_path))
    st = json.loads(cli("allowlist", "status", "--workspace", str(ws_path), "--json").stdout)
    dns = next(x for x in st["lists"] if x["id"] == "public-dns-v4")
    assert (dns["origin"], dns["entries"], dns["age_days"]) == ("workspace", 2, None)  # dated in the future: no age
    assert st["workspace"]["source"]["kind"] == "directory"
    text = cli("allowlist", "status", "--workspace", str(ws_path)).stdout
    assert "workspace snapshot: 2 list(s)" in text and "public-dns-v4" in text


def test_allowlist_update_with_nothing_usable_fails_and_keeps_the_workspace_copy(tmp_path, user_lists):
    ws_path = tmp_path / "ws"
    assert cli("allowlist", "update", "--from", str(user_lists), "--workspace", str(ws_path)).exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("allowlist", "update", "--from", str(empty), "--workspace", str(ws_path))
    assert res.exit_code == 2 and "no usable warninglist" in res.stderr
    res = cli("allowlist", "update", "--from", str(tmp_path / "missing"), "--workspace", str(ws_path))
    assert res.exit_code == 2 and "not a directory" in res.stderr
    assert classifier(Workspace(ws_path))("203.0.113.53").category == "resolver"


def test_a_damaged_workspace_snapshot_falls_back_to_the_bundled_one(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    (ws.root / "warninglists").mkdir()
    (ws.root / "warninglists" / "manifest.json").write_text("{not json")
    probs: list[str] = []
    check = classifier(ws, problems=probs)
    assert check("8.8.8.8").source.startswith("misp-warninglist:public-dns-v4@")
    assert any("unusable" in p and "allowlist update" in p for p in probs)
    st = wl.status(ws)
    assert st["problems"] and st["workspace"] is None
