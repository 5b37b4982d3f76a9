"""Shared infrastructure: CDN / cloud front ends, public resolvers, benign mass scanners.

Contacts of the actor's infrastructure that fall in these ranges are marked so detections can
weigh them less and say why (many unrelated tenants share a CDN address; a Censys probe looks
like reconnaissance).  Lists are CSV ``cidr,kind,name`` (``#`` comments): the bundled ones in
``sightline/data/shared_infra/`` plus any ``*.csv`` in ``<workspace>/shared_infra/`` (the
user's additions and updates; a user row for the same CIDR wins).
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import InputError
from ..net import IPV6_TYPE, parse_network
from ..workspace import Workspace

SHARED_INFRA_SCHEMA = pa.schema([
    pa.field("cidr", pa.string()), pa.field("kind", pa.string()), pa.field("name", pa.string()),
    pa.field("ip_start4", pa.uint32()), pa.field("ip_end4", pa.uint32()),
    pa.field("ip_start6", IPV6_TYPE), pa.field("ip_end6", IPV6_TYPE),
])


def _bundled() -> list[tuple[str, str]]:
    d = resources.files("sightline") / "data" / "shared_infra"
    return [(f"sightline/data/shared_infra/{p.name}", p.read_text("utf-8"))
            for p in sorted(d.iterdir(), key=lambda p: p.name) if p.name.endswith(".csv")]


def _parse(name: str, text: str) -> list[dict[str, object]]:
    rows = []
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for i, cells in enumerate(csv.reader(io.StringIO("\n".join(lines)))):
        if i == 0 and cells and cells[0].strip().lower() == "cidr":
            continue
        if len(cells) < 2:
            raise InputError(f"expected cidr,kind,name, got {cells!r}", path=name,
                             hint="fix the row (lines are cidr,kind,name)")
        try:
            r = parse_network(cells[0])
        except ValueError as e:
            raise InputError(f"bad CIDR {cells[0]!r}", path=name, hint="fix or remove the row") from e
        rows.append({"cidr": r.text, "kind": cells[1].strip().lower(),
                     "name": cells[2].strip() if len(cells) > 2 else "",
                     "ip_start4": r.start4, "ip_end4": r.end4, "ip_start6": r.start6, "ip_end6": r.end6})
    return rows


def load_shared_infra(ws: Workspace | None = None, extra: Iterable[Path] = ()) -> pa.Table:
    """All shared-infrastructure ranges (bundled, then the workspace's, then ``extra`` files)."""
    sources = _bundled()
    user = sorted((ws.root / "shared_infra").glob("*.csv")) if ws is not None and (ws.root / "shared_infra").is_dir() else []
    for p in [*user, *map(Path, extra)]:
        try:
            sources.append((str(p), p.read_text("utf-8")))
        except OSError as e:
            raise InputError(f"cannot read shared-infrastructure list: {e}", path=p) from e
    by_cidr: dict[str, dict[str, object]] = {}
    for name, text in sources:
        for row in _parse(name, text):
            by_cidr[str(row["cidr"])] = row  # later files (the user's) override bundled rows
    return pa.Table.from_pylist(list(by_cidr.values()), schema=SHARED_INFRA_SCHEMA)


def classifier(ws: Workspace | None = None) -> Callable[[str], str | None]:
    """A function ``ip text -> "kind: name"`` (or None) over the shared-infrastructure ranges.

    For the handful of actor addresses in findings; bulk marking should join
    :func:`load_shared_infra`'s table in the engine instead.
    """
    t = load_shared_infra(ws)
    rows = t.to_pylist()
    # most specific range first, so a /32 scanner inside a cloud block names the scanner
    rows.sort(key=lambda r: (r["ip_end4"] - r["ip_start4"]) if r["ip_start4"] is not None
              else int.from_bytes(r["ip_end6"], "big") - int.from_bytes(r["ip_start6"], "big"))
    s4 = np.array([r["ip_start4"] for r in rows if r["ip_start4"] is not None], dtype=np.int64)
    e4 = np.array([r["ip_end4"] for r in rows if r["ip_start4"] is not None], dtype=np.int64)
    lab4 = [f"{r['kind']}: {r['name']}" for r in rows if r["ip_start4"] is not None]
    v6 = [(r["ip_start6"], r["ip_end6"], f"{r['kind']}: {r['name']}") for r in rows if r["ip_start6"] is not None]

    @functools.lru_cache(maxsize=65536)  # called once per contact: the same actor addresses recur
    def check(ip: str) -> str | None:
        try:
            r = parse_network(ip)
        except ValueError:
            return None
        if r.start4 is not None:
            hit = np.nonzero((s4 <= r.start4) & (e4 >= r.end4))[0]
            return lab4[hit[0]] if len(hit) else None
        for a, b, lab in v6:
            if a <= r.start6 and r.end6 <= b:  # type: ignore[operator]
                return lab
        return None

    return check


__all__ = ["SHARED_INFRA_SCHEMA", "load_shared_infra", "classifier"]
