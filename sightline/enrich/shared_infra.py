"""Shared infrastructure: which actor addresses and names many unrelated parties share.

Feeds list public resolvers, CDN edges and cloud addresses (sandbox contacts, polluted
feeds).  This module marks them; it clears nothing: a VPS the actor rents in a cloud stays
an indicator, and what each category changes is decided in ``assess``.

Sources, in tiers; within a tier the most specific range wins, and on the very same range
the one listed first:

0. ``<workspace>/shared_infra/*.csv``: the user's own rows (``cidr,kind,name``);
1. ``sightline/data/shared_infra/*.csv`` (the few entries the warninglists lack), then the
   MISP warninglists (:mod:`sightline.enrich.warninglists`): the bundled snapshot, with lists
   rebuilt into ``<workspace>/warninglists/`` by ``sightline allowlist update`` in place of
   the bundled ones;
2. the aggregate lists (``warninglists.AGGREGATE``: VPN/datacenter ranges, GitHub), only
   where nothing above holds the address;
3. for an address no list holds, the workspace's ASN table (``sightline geo load``): an AS
   organization :func:`classify_as_org` knows (Akamai, Cloudflare, Microsoft, ...).

API::

    classifier(ws) -> Callable[[str], SharedMark | None]      # an address or CIDR
    name_classifier(ws) -> Callable[[str], SharedMark | None] # a DNS name (suffix match)
    classify_name(domain), classify_as_org(as_org, asn=None) -> SharedMark | None
    load_shared_infra(ws) -> pa.Table                          # every range, for joins

A bad row of a CSV file is skipped with the reason (``problems``), never raised.
"""

from __future__ import annotations

import bisect
import csv
import functools
import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..net import IPV6_TYPE, parse_network
from ..store import Workspace
from .warninglists import AGGREGATE, BOUNDARY, CATEGORIES, Snapshot, effective_snapshot

log = logging.getLogger(__name__)

MULTI_TENANT = frozenset({"resolver", "cdn", "saas", "crl"})
"""Categories where one address serves many unrelated customers at the same time.  Cloud
compute, VPN exits and scanners are rented or run by one party at a time; a popular domain
belongs to one operator."""

_SINGLE_TENANT = frozenset({"cloud", "hosting", "vpn", "scanner", "popular_domain"})
_LEGACY_KIND = {"dns_resolver": "resolver", "research_scanner": "scanner"}


@dataclass(frozen=True)
class SharedMark:
    """Why an address or name counts as shared infrastructure.

    ``category``: one of :data:`CATEGORIES` (a user's CSV may name another);
    ``list_name``: human name, e.g. ``MISP warninglist: List of known IPv4 public DNS resolvers``;
    ``source``: ``misp-warninglist:<id>@<version>``, ``sightline:<file>:<line>`` (bundled CSV),
    ``workspace:<file>:<line>`` (the user's CSV) or ``as-org:AS<n>`` (geo ASN table);
    ``multi_tenant``: one address serves many unrelated customers at once;
    ``entry``: the range or name that matched.
    """

    category: str
    list_name: str
    source: str
    multi_tenant: bool
    entry: str = ""

    @property
    def label(self) -> str:
        """``category: list name``, the text evidence rows carry."""
        return f"{self.category}: {self.list_name}"

    def __str__(self) -> str:
        return self.label


def is_multi_tenant(category: str) -> bool:
    """Known multi-tenant categories; a user's own category counts as shared unless it is
    one of the single-tenant ones (the user put it in a shared-infrastructure list)."""
    return category in MULTI_TENANT or category not in _SINGLE_TENANT


SHARED_INFRA_SCHEMA = pa.schema(
    [
        pa.field("cidr", pa.string()),
        pa.field("category", pa.string()),
        pa.field("list_name", pa.string()),
        pa.field("source", pa.string()),
        pa.field("multi_tenant", pa.bool_()),
        pa.field("tier", pa.int8()),
        pa.field("prefix_len", pa.uint8()),
        pa.field("rank", pa.int32()),
        pa.field("ip_start4", pa.uint32()),
        pa.field("ip_end4", pa.uint32()),
        pa.field("ip_start6", IPV6_TYPE),
        pa.field("ip_end6", IPV6_TYPE),
    ]
)
"""One row per range.  Per address the row of the lowest ``tier`` wins, then the most
specific (largest ``prefix_len``), then the lowest ``rank``."""

_USER, _LISTS, _AGGREGATE = 0, 1, 2
_V4_MAPPED = bytes(10) + b"\xff\xff"


# ---- CSV lists ------------------------------------------------------------------------------


def _bundled_csvs() -> list[tuple[str, str]]:
    d = resources.files("sightline") / "data" / "shared_infra"
    return [
        (f"shared_infra/{p.name}", p.read_text("utf-8"))
        for p in sorted(d.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".csv")
    ]


def _parse_csv(label: str, text: str, origin: str, tier: int, problems: list[str]) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in next(csv.reader([line]))]
        if cells and cells[0].lower() == "cidr":
            continue
        if len(cells) < 2 or not cells[1]:
            problems.append(f"{label}:{lineno}: expected cidr,kind,name, got {line.strip()[:80]!r}; row skipped")
            continue
        try:
            r = parse_network(cells[0])
        except ValueError:
            problems.append(f"{label}:{lineno}: bad CIDR {cells[0][:60]!r}; row skipped")
            continue
        cat = cells[1].lower()
        cat = _LEGACY_KIND.get(cat, cat)
        rows.append(
            {
                "cidr": r.text,
                "category": cat,
                "list_name": cells[2] if len(cells) > 2 and cells[2] else cat,
                "source": f"{origin}:{label}:{lineno}",
                "multi_tenant": is_multi_tenant(cat),
                "tier": tier,
                "prefix_len": r.prefix,
                "rank": -1,
                "ip_start4": r.start4,
                "ip_end4": r.end4,
                "ip_start6": r.start6,
                "ip_end6": r.end6,
            }
        )
    return rows


def _csv_rows(ws: Workspace | None, extra: Iterable[Path], problems: list[str]) -> list[dict[str, Any]]:
    rows = []
    for label, text in _bundled_csvs():
        rows += _parse_csv(label, text, "sightline", _LISTS, problems)
    user = (
        sorted((ws.root / "shared_infra").glob("*.csv"))
        if ws is not None and (ws.root / "shared_infra").is_dir()
        else []
    )
    for p in [*user, *map(Path, extra)]:
        try:
            text = p.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{p}: cannot read shared-infrastructure list ({e}); file skipped")
            continue
        label = f"shared_infra/{p.name}" if p in user else str(p)
        rows += _parse_csv(label, text, "workspace", _USER, problems)
    return rows


# ---- the ranges as one table -----------------------------------------------------------------


def _list_meta(snap: Snapshot) -> tuple[list[str], dict[str, list[Any]]]:
    ids: list[str] = []
    meta: dict[str, list[Any]] = {
        "category": [],
        "list_name": [],
        "source": [],
        "multi_tenant": [],
        "tier": [],
        "rank": [],
    }
    for i, m in enumerate(snap.manifest.get("lists", [])):
        if m["category"] == BOUNDARY:
            continue
        ids.append(m["id"])
        meta["category"].append(m["category"])
        meta["list_name"].append(f"MISP warninglist: {m['name']}")
        meta["source"].append(f"misp-warninglist:{m['id']}@{m['version']}")
        meta["multi_tenant"].append(is_multi_tenant(m["category"]))
        meta["tier"].append(_AGGREGATE if m["id"] in AGGREGATE else _LISTS)
        meta["rank"].append(i)
    return ids, meta


def _snapshot_ranges(snap: Snapshot) -> pa.Table:
    t = snap.ranges
    ids, meta = _list_meta(snap)
    idx = pc.index_in(t.column("list"), value_set=pa.array(ids, pa.string()))
    t = t.filter(pc.is_valid(idx))
    idx = pc.drop_null(idx)
    prefix = t.column("prefix").to_numpy().astype(np.uint64)
    fam = t.column("family").to_numpy()
    start4 = t.column("start4").fill_null(0).to_numpy().astype(np.uint64)
    host = np.where(fam == 4, (np.uint64(1) << (np.uint64(32) - np.minimum(prefix, 32))) - np.uint64(1), 0)
    v4 = pc.equal(t.column("family"), 4)
    end4 = pa.array((start4 | host).astype(np.uint32), pa.uint32(), mask=~v4.to_numpy(zero_copy_only=False))
    end6: list[bytes | None] = [None] * t.num_rows
    for i in np.nonzero(fam == 6)[0].tolist():
        s = int.from_bytes(t.column("start6")[i].as_py(), "big")
        end6[i] = (s | ((1 << (128 - int(prefix[i]))) - 1)).to_bytes(16, "big")
    cols = {
        "cidr": t.column("entry"),
        **{k: pc.take(pa.array(v, SHARED_INFRA_SCHEMA.field(k).type), idx) for k, v in meta.items()},
        "prefix_len": t.column("prefix"),
        "ip_start4": t.column("start4"),
        "ip_end4": end4,
        "ip_start6": t.column("start6"),
        "ip_end6": pa.array(end6, IPV6_TYPE),
    }
    return pa.table(cols).select(SHARED_INFRA_SCHEMA.names).cast(SHARED_INFRA_SCHEMA)


def load_shared_infra(
    ws: Workspace | None = None, extra: Iterable[Path] = (), *, problems: list[str] | None = None
) -> pa.Table:
    """Every shared-infrastructure range (:data:`SHARED_INFRA_SCHEMA`): the warninglists in
    effect for ``ws``, the bundled CSVs, the workspace's CSVs and ``extra`` CSV files.

    Rows that cannot be used are skipped; their reasons go to ``problems`` when given, else
    to the log.  For engine joins: take, per address, the row with the largest
    ``prefix_len``, then the lowest ``rank``.
    """
    probs: list[str] = []
    snap = effective_snapshot(ws)
    probs += snap.problems
    csv_rows = _csv_rows(ws, extra, probs)
    t = pa.concat_tables([_snapshot_ranges(snap), pa.Table.from_pylist(csv_rows, schema=SHARED_INFRA_SCHEMA)])
    if problems is not None:
        problems.extend(probs)
    else:
        for p in probs:
            log.warning("shared infrastructure: %s", p)
    return t


# ---- per-address lookup ------------------------------------------------------------------------


class _RangeIndex:
    """Per tier and address family, the ranges sorted by start with a parent pointer to the
    innermost range around each (CIDRs nest or are disjoint).  A lookup is one bisection and
    a walk up the few enclosing ranges."""

    def __init__(self, t: pa.Table) -> None:
        self.t = t
        tier = t.column("tier").to_numpy()
        is4 = t.column("ip_start4").is_valid().to_numpy(zero_copy_only=False)
        s4 = t.column("ip_start4").fill_null(0).to_numpy().astype(np.int64)
        e4 = t.column("ip_end4").fill_null(0).to_numpy().astype(np.int64)
        s6 = t.column("ip_start6").to_pylist()
        e6 = t.column("ip_end6").to_pylist()
        rank = t.column("rank").to_numpy()
        self.v4: list[tuple[list[int], list[int], list[int], list[int]]] = []
        self.v6: list[tuple[list[int], list[int], list[int], list[int]]] = []
        for tr in sorted(np.unique(tier).tolist()):
            sel = np.nonzero((tier == tr) & is4)[0]
            self.v4.append(self._nest(s4[sel].tolist(), e4[sel].tolist(), rank[sel].tolist(), sel.tolist()))
            sel = np.nonzero((tier == tr) & ~is4)[0].tolist()
            self.v6.append(
                self._nest(
                    [int.from_bytes(s6[i], "big") for i in sel],
                    [int.from_bytes(e6[i], "big") for i in sel],
                    [int(rank[i]) for i in sel],
                    sel,
                )
            )
        self._marks: dict[int, SharedMark] = {}

    @staticmethod
    def _nest(
        starts: list[int], ends: list[int], ranks: list[int], rows: list[int]
    ) -> tuple[list[int], list[int], list[int], list[int]]:
        """(starts, ends, parent, row): sorted by start, outer before inner; one row per range
        (the lowest rank); ``parent`` the innermost enclosing range (-1 for none)."""
        order = sorted(range(len(starts)), key=lambda i: (starts[i], -ends[i], ranks[i]))
        ss: list[int] = []
        ee: list[int] = []
        rr: list[int] = []
        for i in order:
            if ss and ss[-1] == starts[i] and ee[-1] == ends[i]:
                continue  # the same range in another list: the first (lowest rank) names it
            ss.append(starts[i])
            ee.append(ends[i])
            rr.append(rows[i])
        parent = [-1] * len(ss)
        stack: list[int] = []
        for k in range(len(ss)):
            while stack and ee[stack[-1]] < ss[k]:
                stack.pop()
            parent[k] = stack[-1] if stack else -1
            stack.append(k)
        return ss, ee, parent, rr

    def find(self, text: str) -> int | None:
        try:  # inet_pton: a fifth of ipaddress's time, and this runs per distinct address
            if ":" in text:
                b = socket.inet_pton(socket.AF_INET6, text.strip())
                v4 = b[:12] == _V4_MAPPED
                lo = hi = int.from_bytes(b[12:] if v4 else b, "big")
            else:
                v4, lo = True, int.from_bytes(socket.inet_pton(socket.AF_INET, text.strip()), "big")
                hi = lo
        except (OSError, ValueError):
            try:
                r = parse_network(text)
            except ValueError:
                return None
            v4 = r.start4 is not None
            lo = r.start4 if v4 else int.from_bytes(r.start6, "big")  # type: ignore[assignment,arg-type]
            hi = r.end4 if v4 else int.from_bytes(r.end6, "big")  # type: ignore[assignment,arg-type]
        for ss, ee, parent, rows in self.v4 if v4 else self.v6:
            k = bisect.bisect_right(ss, lo) - 1
            while k >= 0 and ee[k] < hi:
                k = parent[k]
            if k >= 0:
                return rows[k]
        return None

    def mark(self, row: int) -> SharedMark:
        m = self._marks.get(row)
        if m is None:
            r = {k: self.t.column(k)[row].as_py() for k in ("cidr", "category", "list_name", "source", "multi_tenant")}
            m = self._marks[row] = SharedMark(
                r["category"], r["list_name"], r["source"], bool(r["multi_tenant"]), r["cidr"]
            )
        return m


class _AsnIndex:
    """The workspace's ASN table as sorted arrays: address -> (asn, as_org)."""

    def __init__(self, t: pa.Table) -> None:
        v4 = t.filter(pc.is_valid(t.column("ip_start4"))).sort_by("ip_start4")
        self.s4 = v4.column("ip_start4").to_numpy().astype(np.int64)
        self.e4 = v4.column("ip_end4").to_numpy().astype(np.int64)
        self.a4 = v4.select(["asn", "as_org"])
        v6 = t.filter(pc.is_valid(t.column("ip_start6"))).sort_by("ip_start6")
        self.s6 = np.array(v6.column("ip_start6").to_pylist(), dtype="S16")
        self.e6 = np.array(v6.column("ip_end6").to_pylist(), dtype="S16")
        self.a6 = v6.select(["asn", "as_org"])

    def find(self, text: str) -> tuple[int | None, str | None]:
        try:
            a = ipaddress.ip_address(text.strip())
        except ValueError:
            return None, None
        if a.version == 4:
            i = int(np.searchsorted(self.s4, int(a), side="right")) - 1
            ok, tab = i >= 0 and self.e4[i] >= int(a), self.a4
        else:
            key = np.array([a.packed], dtype="S16")
            i = int(np.searchsorted(self.s6, key, side="right")[0]) - 1
            ok, tab = i >= 0 and self.e6[i] >= key[0], self.a6
        if not ok:
            return None, None
        return tab.column("asn")[i].as_py(), tab.column("as_org")[i].as_py()


def _asn_index(ws: Workspace | None) -> _AsnIndex | None:
    if ws is None:
        return None
    try:
        from .geo import read_geo, table_path

        if not table_path(ws, "asn").exists():
            return None
        return _AsnIndex(read_geo(ws, "asn"))
    except Exception as e:  # a damaged geo table must not cost the list marks
        log.warning("shared infrastructure: AS organizations not used (%s)", e)
        return None


_INDEXES: dict[tuple, Any] = {}
_KEEP_INDEXES = 4


def _inputs_stamp(ws: Workspace | None) -> tuple:
    """What a built index depends on besides the bundled files: the workspace's snapshot and
    CSV files, by name, size and modification time."""
    if ws is None:
        return ()
    files = [*sorted((ws.root / "warninglists").glob("*")), *sorted((ws.root / "shared_infra").glob("*.csv"))]
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f.relative_to(ws.root)), st.st_size, st.st_mtime_ns))
    return (str(ws.root.resolve()), *out) if out else ()


def _remember(key: tuple, value: Any) -> None:
    """Indexes are kept per input state (a hunt, a dashboard and tests build the same one
    again and again: ~0.5 s each); a few at most."""
    while len(_INDEXES) >= _KEEP_INDEXES:
        _INDEXES.pop(next(iter(_INDEXES)))
    _INDEXES[key] = value


def classifier(ws: Workspace | None = None, *, problems: list[str] | None = None) -> Callable[[str], SharedMark | None]:
    """A function ``address or CIDR text -> SharedMark | None`` (most specific range wins).

    Called once per distinct actor address (cached); an address no list holds falls back to
    the workspace's ASN table and :func:`classify_as_org`.  Bulk marking should join
    :func:`load_shared_infra`'s table in the engine instead.
    """
    key = ("ranges", _inputs_stamp(ws))
    hit = _INDEXES.get(key)
    if hit is None:
        probs: list[str] = []
        hit = (_RangeIndex(load_shared_infra(ws, problems=probs)), probs)
        _remember(key, hit)
    index, probs = hit
    if problems is not None:
        problems.extend(probs)
    else:
        for p in probs:
            log.warning("shared infrastructure: %s", p)
    asn: list[_AsnIndex | None] = []  # loaded at the first address the lists miss

    @functools.lru_cache(maxsize=65536)
    def check(ip: str) -> SharedMark | None:
        row = index.find(ip)
        if row is not None:
            return index.mark(row)
        if "/" in ip:
            return None
        if not asn:
            asn.append(_asn_index(ws))
        if asn[0] is None:
            return None
        number, org = asn[0].find(ip)
        return classify_as_org(org, number) if org else None

    return check


# ---- names -------------------------------------------------------------------------------------


class _NameIndex:
    def __init__(self, snap: Snapshot) -> None:
        lists = snap.manifest.get("lists", [])
        rank = self.rank = {m["id"]: i for i, m in enumerate(lists)}
        self.meta = {m["id"]: m for m in lists}
        self.exact: dict[str, str] = {}
        self.suffix: dict[str, str] = {}
        self.boundary: set[str] = set()
        t = snap.names
        for lid, name, suf in sorted(
            zip(t.column("list").to_pylist(), t.column("name").to_pylist(), t.column("suffix").to_pylist()),
            key=lambda r: -rank.get(r[0], len(rank)),
        ):
            if lid not in self.meta:
                continue
            if self.meta[lid]["category"] == BOUNDARY:
                self.boundary.add(name)
            else:
                (self.suffix if suf else self.exact)[name] = lid  # lowest rank written last, kept

    def find(self, domain: str) -> SharedMark | None:
        n = str(domain).strip().lower().rstrip(".")
        if n.startswith("*."):
            n = n[2:]
        if not n or "/" in n or ":" in n:
            return None
        # the name and its parents up to a public suffix; of the lists that hold one of them,
        # the first in list order (saas before popular_domain), then the most specific name
        hits = [(self.rank[lid], 0, lid, n) for lid in (self.exact.get(n), self.suffix.get(n)) if lid]
        depth = 0
        while "." in n:
            n = n.split(".", 1)[1]
            depth += 1
            if n in self.boundary:
                break  # co.uk, github.io, duckdns.org: the names under it are unrelated parties'
            lid = self.suffix.get(n)
            if lid:
                hits.append((self.rank[lid], depth, lid, n))
        if not hits:
            return None
        _, _, lid, entry = min(hits)
        return self._mark(lid, entry)

    def _mark(self, lid: str, entry: str) -> SharedMark:
        m = self.meta[lid]
        return SharedMark(
            m["category"],
            f"MISP warninglist: {m['name']}",
            f"misp-warninglist:{lid}@{m['version']}",
            is_multi_tenant(m["category"]),
            entry,
        )


def name_classifier(ws: Workspace | None = None) -> Callable[[str], SharedMark | None]:
    """A function ``DNS name -> SharedMark | None`` over the warninglists' name lists.

    A list entry covers the name itself and (for MISP ``hostname`` lists and entries written
    ``.example.com``) the names under it, but a match never climbs past a public suffix or a
    dynamic-DNS parent: ``evil.github.io`` and ``x.duckdns.org`` are nobody's popular domain,
    ``mail.google.com`` is Google's.
    """
    key = ("names", _inputs_stamp(ws))
    index = _INDEXES.get(key)
    if index is None:
        index = _NameIndex(effective_snapshot(ws))
        _remember(key, index)
    return functools.lru_cache(maxsize=65536)(index.find)


@functools.lru_cache(maxsize=1)
def _bundled_names() -> Callable[[str], SharedMark | None]:
    return name_classifier(None)


def classify_name(domain: str, ws: Workspace | None = None) -> SharedMark | None:
    """:func:`name_classifier` for one name (the bundled lists are loaded once and kept)."""
    return (_bundled_names() if ws is None else name_classifier(ws))(domain)


@functools.lru_cache(maxsize=1)
def _well_known_resolver_nets() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    text = (resources.files("sightline") / "data" / "shared_infra" / "resolvers.csv").read_text("utf-8")
    nets = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 2 and cells[1] == "resolver" and not line.lstrip().startswith("#"):
            try:
                nets.append(ipaddress.ip_network(cells[0], strict=False))
            except ValueError:
                continue
    return tuple(nets)


@functools.lru_cache(maxsize=65536)
def is_well_known_resolver(ip: str) -> bool:
    """Whether ``ip`` is in the anycast prefixes of the big public resolvers (Google, Cloudflare,
    Quad9: ``data/shared_infra/resolvers.csv``), whatever list names it more specifically."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(a.version == n.version and a in n for n in _well_known_resolver_nets())


# ---- names an address serves -------------------------------------------------------------------

SERVED_NAMES_SQL = """
SELECT n.dst_ip AS ip4, n.dst_ip6 AS ip6, n.name, n.kind, count(*) AS seen
FROM names n JOIN served_addresses a
  ON (n.dst_ip IS NOT NULL AND n.dst_ip = a.ip4) OR (n.dst_ip6 IS NOT NULL AND n.dst_ip6 = a.ip6)
WHERE n.kind IN ('tls_sni', 'dns_answer', 'http_host') AND n.name IS NOT NULL
GROUP BY n.dst_ip, n.dst_ip6, n.name, n.kind
"""
"""Names (TLS SNI, DNS answers) name telemetry saw the given addresses serve (views ``names``
and ``served_addresses``, on the hunt's engine)."""

SERVED_CATEGORIES = frozenset({"popular_domain", "saas", "cdn", "resolver"})


def served_name_marks(
    engine: Any, name_files: list[str], ips: Iterable[str], name_mark: Callable[[str], SharedMark | None]
) -> dict[str, SharedMark]:
    """Addresses name telemetry shows serving a popular site (a TLS SNI or DNS answer naming a
    domain on the popular-domain, SaaS or CDN lists): a shared front end, whatever list its
    address is on, e.g. a CDN edge a feed names.  ``name_mark`` classifies names
    (:func:`name_classifier`).  Returns ``ip -> mark`` (multi-tenant, category ``popular_site``)."""
    from ..ingest.names import NAMES_SCHEMA
    from ..net import ip_text, parse_ips

    ip_list = sorted(set(ips))
    if not name_files or not ip_list:
        return {}
    parsed = parse_ips(pa.array(ip_list, pa.string()))
    engine.register_parquet("names", name_files, NAMES_SCHEMA)
    engine.register_table("served_addresses", pa.table({"ip4": parsed.v4, "ip6": parsed.v6}))
    rows = engine.query(SERVED_NAMES_SQL).to_pylist()
    engine.release("served_addresses")
    best: dict[str, tuple[int, SharedMark]] = {}
    for r in rows:
        m = name_mark(r["name"])
        if m is None or m.category not in SERVED_CATEGORIES:
            continue
        ip = ip_text(r["ip4"], r["ip6"])
        how = {"tls_sni": "TLS SNI", "http_host": "HTTP Host"}.get(r["kind"], "DNS answer")
        mark = SharedMark("popular_site", f"serves {r['name']} ({how}; {m.list_name})", m.source, True, r["name"])
        if ip is not None and int(r["seen"]) > best.get(ip, (0, mark))[0]:
            best[ip] = (int(r["seen"]), mark)
    return {ip: m for ip, (_, m) in best.items()}


# ---- AS organizations ------------------------------------------------------------------------

AS_ORGS: tuple[tuple[str, str, str], ...] = (
    # (pattern on the AS organization name, category, provider); the first match wins
    (r"linode|akamai connected cloud", "hosting", "Akamai Connected Cloud (Linode)"),
    (r"\bakamai", "cdn", "Akamai"),
    (r"cloudflare", "cdn", "Cloudflare"),
    (r"\bfastly", "cdn", "Fastly"),
    (r"edgecast|edgio|limelight|stackpath|highwinds|\bcdn77\b|bunny ?way|incapsula|imperva", "cdn", "CDN"),
    (r"zscaler", "saas", "Zscaler"),
    (r"amazon|\baws\b", "cloud", "Amazon"),
    (r"google cloud|google-cloud", "cloud", "Google Cloud"),
    (r"\bgoogle", "saas", "Google"),
    (r"microsoft", "saas", "Microsoft"),
    (r"\bapple\b", "saas", "Apple"),
    (r"facebook|meta platforms", "saas", "Meta"),
    (r"\boracle", "cloud", "Oracle Cloud"),
    (r"alibaba|aliyun", "hosting", "Alibaba Cloud"),
    (r"tencent", "hosting", "Tencent Cloud"),
    (r"digitalocean", "hosting", "DigitalOcean"),
    (r"vultr|choopa|the constant company", "hosting", "Vultr"),
    (r"\bovh", "hosting", "OVH"),
    (r"hetzner", "hosting", "Hetzner"),
    # networks that exist to scan the internet (their AS names them): research and search engines
    (
        r"driftnet|internet measurement|censys|shodan|shadowserver|stretchoid|onyphe|binaryedge|leakix|recyber|"
        r"alpha ?strike|criminal ?ip|cyber ?resilience|internet-census",
        "scanner",
        "internet-wide scanner",
    ),
    # security vendors' update and telemetry services: every customer's hosts poll them
    (
        r"\beset\b|kaspersky|symantec|trend ?micro|sophos|mcafee|trellix|avast|\bavg\b|bitdefender|f-secure|"
        r"withsecure|crowdstrike|sentinelone|malwarebytes|eset spol|\bnorton",
        "saas",
        "security vendor service",
    ),
)
"""Well-known AS organizations, for addresses no list holds (``hosting``: VPS providers, where
an actor rents its servers; ``cloud``: the hyperscalers, whose addresses also front a great many
ordinary services).  Microsoft and Google stand for
their own services (their rentable cloud ranges are in the warninglists); Amazon for AWS."""

AS_NUMBERS: dict[int, tuple[str, str]] = {
    63949: ("hosting", "Akamai Connected Cloud (Linode)"),  # named "Akamai Technologies, Inc." in some tables
}
_AS_RE = [(re.compile(p, re.IGNORECASE), c, n) for p, c, n in AS_ORGS]


def classify_as_org(as_org: str | None, asn: int | None = None) -> SharedMark | None:
    """The category of a well-known AS organization (``AS_ORGS``), or None."""
    hit = AS_NUMBERS.get(int(asn)) if asn is not None else None
    if hit is None and as_org:
        hit = next(((c, n) for rx, c, n in _AS_RE if rx.search(as_org)), None)
    if hit is None:
        return None
    cat, provider = hit
    where = f"AS{asn} " if asn is not None else ""
    return SharedMark(
        cat,
        f"AS organization: {as_org or provider} ({where}{provider})",
        f"as-org:AS{asn}" if asn is not None else f"as-org:{as_org}",
        is_multi_tenant(cat),
        as_org or "",
    )


__all__ = [
    "CATEGORIES",
    "MULTI_TENANT",
    "SharedMark",
    "SHARED_INFRA_SCHEMA",
    "AS_ORGS",
    "load_shared_infra",
    "classifier",
    "name_classifier",
    "classify_name",
    "classify_as_org",
    "is_multi_tenant",
    "served_name_marks",
    "is_well_known_resolver",
]
