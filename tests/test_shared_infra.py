"""Shared-infrastructure lists: bundled, user-updatable, most specific range wins."""

from __future__ import annotations

import pytest

from sightline.enrich.shared_infra import classifier, load_shared_infra
from sightline.errors import InputError
from sightline.workspace import Workspace


def test_bundled_lists_mark_cdn_resolver_and_scanner():
    t = load_shared_infra()
    kinds = set(t.column("kind").to_pylist())
    assert {"cdn", "dns_resolver", "scanner"} <= kinds
    check = classifier()
    assert check("104.16.1.1") == "cdn: Cloudflare"
    assert check("2606:4700::1111") == "cdn: Cloudflare"
    assert check("2606:4700:4700::1111") == "dns_resolver: Cloudflare 1.1.1.1"  # more specific wins
    assert check("167.94.138.35") == "scanner: Censys"
    assert check("140.112.8.116") is None and check("not an ip") is None


def test_user_list_in_workspace_adds_and_overrides(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    (ws.root / "shared_infra").mkdir()
    (ws.root / "shared_infra" / "ours.csv").write_text(
        "cidr,kind,name\n203.0.113.0/24,cloud,Our hosting provider\n8.8.8.0/24,allow,Google DNS (ours)\n")
    check = classifier(ws)
    assert check("203.0.113.9") == "cloud: Our hosting provider"
    assert check("8.8.8.8") == "allow: Google DNS (ours)"
    (ws.root / "shared_infra" / "bad.csv").write_text("cidr,kind,name\n300.1.1.0/24,cdn,x\n")
    with pytest.raises(InputError, match="bad CIDR"):
        load_shared_infra(ws)
