"""IP -> ASN / AS organization / country: loading range tables and looking IPs up in the engine.

Inputs (``sightline geo load PATH``):

- ip-location-db range CSVs (no header): ``start,end,asn,org`` (ASN) and ``start,end,country``
  (country; the city layout ``start,end,country,...`` too); IPv4 or IPv6 text addresses or
  integers; ``.gz`` ok.
- MMDB files (``maxminddb``): GeoLite2 / DB-IP ASN (``autonomous_system_number``,
  ``autonomous_system_organization``) and Country / City layouts (``country.iso_code``,
  else ``registered_country.iso_code``).

Workspace tables (``<workspace>/geo/``), one row per range, either IPv4 or IPv6 set::

    asn.parquet      ip_start4, ip_end4 (uint32), ip_start6, ip_end6 (binary(16)), asn int64, as_org
    country.parquet  same ranges, country

Loading an IPv4 file replaces the IPv4 part of its table and keeps the IPv6 part (and vice
versa), so ``asn-ipv4.csv`` and ``asn-ipv6.csv`` load one after the other.  Where each table
came from is kept in ``geo/sources.json``; ``sightline geo update`` reloads from there.

Lookups are interval joins in the engine (:func:`lookup_sql`, :func:`enrich_ips`), never a
Python call per IP.  The data is not bundled: users load it (see the CLI's ``geo update``).
"""

from __future__ import annotations

import csv as csvmod
import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..engines.base import Engine
from ..errors import InputError
from ..net import IPV6_TYPE, parse_ips, parse_network
from ..store import Workspace, atomic_write_json, atomic_write_parquet

_RANGE_FIELDS = [
    pa.field("ip_start4", pa.uint32()),
    pa.field("ip_end4", pa.uint32()),
    pa.field("ip_start6", IPV6_TYPE),
    pa.field("ip_end6", IPV6_TYPE),
]
ASN_SCHEMA = pa.schema(_RANGE_FIELDS + [pa.field("asn", pa.int64()), pa.field("as_org", pa.string())])
COUNTRY_SCHEMA = pa.schema(_RANGE_FIELDS + [pa.field("country", pa.string())])
ENRICH_SCHEMA = pa.schema(
    [
        pa.field("ip4", pa.uint32()),
        pa.field("ip6", IPV6_TYPE),
        pa.field("asn", pa.int64()),
        pa.field("as_org", pa.string()),
        pa.field("country", pa.string()),
    ]
)

KINDS = {"asn": ASN_SCHEMA, "country": COUNTRY_SCHEMA}


def table_path(ws: Workspace, kind: str) -> Path:
    return ws.geo_dir / f"{kind}.parquet"


# --- reading sources ----------------------------------------------------------------------


def _range_columns(start: pa.Array, end: pa.Array, path: Path) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Text or integer start/end columns -> the four range columns and a row-valid mask."""
    if pa.types.is_integer(start.type):
        # the ip-location-db "-num" variants: IPv4 as integers
        s = pc.cast(start, pa.uint32(), safe=False)
        e = pc.cast(end, pa.uint32(), safe=False)
        ok = np.asarray(pc.and_(pc.is_valid(start), pc.less_equal(start, end)).to_numpy(zero_copy_only=False), bool)
        n = len(start)
        return {
            "ip_start4": s,
            "ip_end4": e,
            "ip_start6": pa.nulls(n, IPV6_TYPE),
            "ip_end6": pa.nulls(n, IPV6_TYPE),
        }, ok
    ps, pe = parse_ips(start), parse_ips(end)
    same4 = np.asarray(pc.and_(pc.is_valid(ps.v4), pc.is_valid(pe.v4)).to_numpy(zero_copy_only=False), bool)
    same6 = np.asarray(pc.and_(pc.is_valid(ps.v6), pc.is_valid(pe.v6)).to_numpy(zero_copy_only=False), bool)
    ok = same4 | same6
    return {"ip_start4": ps.v4, "ip_end4": pe.v4, "ip_start6": ps.v6, "ip_end6": pe.v6}, ok


def _read_csv(path: Path) -> tuple[str, pa.Table, int]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise InputError(f"corrupt gzip file: {e}", path=path, hint="download it again") from e
    first = raw.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    cells = [c.strip() for c in next(csvmod.reader([first]))]
    header = False
    try:
        parse_network(cells[0])
    except ValueError:
        header = not cells[0].isdigit()
    ncol = len(cells)
    names = [f"c{i}" for i in range(ncol)]
    try:
        t = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0),
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda row: "skip"),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}),
        )
    except pa.ArrowInvalid as e:
        raise InputError(
            f"not a range CSV: {e}",
            path=path,
            hint="expected start,end,asn,org or start,end,country (ip-location-db layout)",
        ) from e
    if ncol >= 4 and _looks_numeric(t.column("c2")):
        kind = "asn"
    elif ncol >= 3:
        kind = "country"
    else:
        raise InputError(
            f"range CSV has {ncol} columns",
            path=path,
            hint="expected start,end,asn,org or start,end,country (ip-location-db layout)",
        )
    start, end = t.column("c0").combine_chunks(), t.column("c1").combine_chunks()
    if _looks_numeric(t.column("c0")):
        start, end = pc.cast(start, pa.int64()), pc.cast(end, pa.int64())
    cols, ok = _range_columns(start, end, path)
    if kind == "asn":
        asn_txt = pc.utf8_ltrim(pc.utf8_lower(t.column("c2").combine_chunks()), "as")
        asn = pc.cast(pc.if_else(pc.match_substring_regex(asn_txt, r"^[0-9]+$"), asn_txt, None), pa.int64())
        cols["asn"] = asn
        cols["as_org"] = t.column("c3").combine_chunks()
        ok &= np.asarray(pc.is_valid(asn).to_numpy(zero_copy_only=False), bool)
    else:
        cc = pc.utf8_upper(pc.utf8_trim_whitespace(t.column("c2").combine_chunks()))
        cols["country"] = cc
        ok &= np.asarray(
            pc.fill_null(pc.match_substring_regex(cc, r"^[A-Z]{2}$"), False).to_numpy(zero_copy_only=False), bool
        )
    out = pa.table(cols).cast(KINDS[kind]).filter(pa.array(ok))
    if out.num_rows == 0:
        # loading it would replace a table with nothing, and "0 ranges" reads like success
        raise InputError(
            f"no IP range in this file: none of its {t.num_rows:,} row(s) is start,end,"
            + ("asn,org" if kind == "asn" else "country")
            + " with IP addresses",
            path=path,
            hint="expected an ip-location-db range CSV (start,end,asn,org or start,end,country) or an MMDB file",
        )
    return kind, out, int((~ok).sum())


def _looks_numeric(col: pa.ChunkedArray) -> bool:
    head = col.slice(0, 50).combine_chunks() if len(col) else pa.array([], pa.string())
    if len(head) == 0:
        return False
    return bool(pc.all(pc.fill_null(pc.match_substring_regex(head, r"^\s*(AS|as)?[0-9]+\s*$"), False)).as_py())


def _read_mmdb(path: Path) -> list[tuple[str, pa.Table, int]]:
    import maxminddb

    try:
        reader = maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
        raise InputError(f"not a readable MMDB file: {e}", path=path, hint="download it again") from e
    asn_rows: dict[str, list[Any]] = {k: [] for k in ASN_SCHEMA.names}
    cc_rows: dict[str, list[Any]] = {k: [] for k in COUNTRY_SCHEMA.names}
    skipped = 0
    try:
        for net, rec in reader:  # one pass over the tree at load time; lookups never do this
            if not isinstance(rec, dict):
                skipped += 1
                continue
            r = parse_network(str(net))
            rng = (r.start4, r.end4, r.start6, r.end6)
            asn = rec.get("autonomous_system_number")
            if asn is not None:
                for k, v in zip(ASN_SCHEMA.names, (*rng, int(asn), rec.get("autonomous_system_organization"))):
                    asn_rows[k].append(v)
            country = (rec.get("country") or {}).get("iso_code") or (rec.get("registered_country") or {}).get(
                "iso_code"
            )
            if country:
                for k, v in zip(COUNTRY_SCHEMA.names, (*rng, str(country).upper())):
                    cc_rows[k].append(v)
    finally:
        reader.close()
    out = []
    if asn_rows["asn"]:
        out.append(("asn", pa.table(asn_rows, schema=ASN_SCHEMA), skipped))
    if cc_rows["country"]:
        out.append(("country", pa.table(cc_rows, schema=COUNTRY_SCHEMA), skipped))
    if not out:
        raise InputError(
            "MMDB file has neither ASN nor country records",
            path=path,
            hint="use a GeoLite2/DB-IP ASN, Country or City database",
        )
    return out


def read_geo_file(path: Path) -> list[tuple[str, pa.Table, int]]:
    """Read one geo source into ``[(kind, table, skipped_rows)]`` (kind ``asn`` or ``country``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("geo file not found", path=path, hint="pass an MMDB file or an ip-location-db CSV")
    with open(path, "rb") as fh:
        head = fh.read(4)
    data = path.read_bytes() if head[:2] != b"\x1f\x8b" else b""
    if data and b"\xab\xcd\xefMaxMind.com" in data[-128 * 1024 :]:
        return _read_mmdb(path)
    return [_read_csv(path)]


# --- workspace tables ---------------------------------------------------------------------


def load_geo(ws: Workspace, path: Path) -> dict[str, Any]:
    """Load one geo file into the workspace tables; returns ``{kind, rows, skipped, path}``."""
    results = read_geo_file(Path(path))
    info: dict[str, Any] = {"path": str(path), "kind": "", "rows": 0, "skipped": 0}
    with ws.lock():
        sources = _sources(ws)
        for kind, t, skipped in results:
            has4 = bool(pc.any(pc.is_valid(t.column("ip_start4"))).as_py() or False)
            has6 = bool(pc.any(pc.is_valid(t.column("ip_start6"))).as_py() or False)
            p = table_path(ws, kind)
            if p.exists():
                old = pq.read_table(p).cast(KINDS[kind])
                keep = pc.invert(
                    pc.or_(
                        pc.and_(pc.is_valid(old.column("ip_start4")), pa.scalar(has4)),
                        pc.and_(pc.is_valid(old.column("ip_start6")), pa.scalar(has6)),
                    )
                )
                t = pa.concat_tables([old.filter(keep), t])
            t = t.sort_by([("ip_start4", "ascending"), ("ip_start6", "ascending")])
            atomic_write_parquet(p, t)
            fam = [f for f, h in (("ipv4", has4), ("ipv6", has6)) if h]
            for f in fam:
                sources[f"{kind}/{f}"] = str(Path(path).resolve())
            info["kind"] = (info["kind"] + "+" if info["kind"] else "") + kind
            info["rows"] += t.num_rows
            info["skipped"] += skipped
        atomic_write_json(ws.geo_dir / "sources.json", sources)
    return info


def _sources(ws: Workspace) -> dict[str, str]:
    p = ws.geo_dir / "sources.json"
    if not p.exists():
        return {}
    try:
        return dict(json.loads(p.read_text("utf-8")))
    except (OSError, ValueError):
        return {}


def update_geo(ws: Workspace, directory: Path | None = None) -> list[dict[str, Any]]:
    """Reload every geo table from where it was loaded (or the same file names in ``directory``)."""
    srcs = sorted(set(_sources(ws).values()))
    if not srcs:
        raise InputError(
            "no geo tables loaded yet",
            path=ws.geo_dir,
            hint="load some first: sightline geo load asn-ipv4.csv.gz geo-whois-asn-country-ipv4.csv.gz",
        )
    out = []
    for s in srcs:
        p = Path(directory) / Path(s).name if directory else Path(s)
        out.append(load_geo(ws, p))
    return out


def read_geo(ws: Workspace, kind: str) -> pa.Table:
    """A workspace geo table (empty with the right schema when not loaded)."""
    p = table_path(ws, kind)
    return pq.read_table(p).cast(KINDS[kind]) if p.exists() else KINDS[kind].empty_table()


# --- lookups in the engine ----------------------------------------------------------------


V4_BUCKET_BITS = 16
"""IPv4 ranges are indexed by their /16 blocks (at most 65,536 per range)."""
V6_BUCKET_HEX = 6
"""IPv6 ranges are indexed by their first 24 bits, as 6 upper-case hex digits."""


def lookup_sql(ips_view: str, asn_view: str = "geo_asn", country_view: str = "geo_country") -> str:
    """SQL: ``ips_view(ip4 uint32, ip6 binary)`` -> ip4, ip6, asn, as_org, country.

    A bucketed interval join: each range is listed under every /16 (IPv4) or /24 (IPv6)
    block it covers (:func:`register_geo` builds these views), so the join is an equality
    join on the block followed by a range filter: plain SQL that any engine runs as a hash
    join (a bare ``BETWEEN`` join degenerates to a nested loop on hundreds of thousands of
    ranges).  Ranges of one table do not overlap, so each IP gets at most one answer.
    """
    b4 = f"CAST(floor(i.ip4 / {2**V4_BUCKET_BITS}) AS BIGINT)"
    b6 = f"upper(substr(hex(i.ip6), 1, {V6_BUCKET_HEX}))"
    return f"""
WITH ips4 AS (SELECT DISTINCT ip4 FROM {ips_view} WHERE ip4 IS NOT NULL),
ips6 AS (SELECT DISTINCT ip6 FROM {ips_view} WHERE ip6 IS NOT NULL AND ip4 IS NULL),
a4 AS (SELECT i.ip4, min(g.asn) AS asn, min(g.as_org) AS as_org FROM ips4 i JOIN {asn_view}4 g
       ON g.bucket = {b4} AND i.ip4 >= g.ip_start4 AND i.ip4 <= g.ip_end4 GROUP BY i.ip4),
c4 AS (SELECT i.ip4, min(g.country) AS country FROM ips4 i JOIN {country_view}4 g
       ON g.bucket = {b4} AND i.ip4 >= g.ip_start4 AND i.ip4 <= g.ip_end4 GROUP BY i.ip4),
a6 AS (SELECT i.ip6, min(g.asn) AS asn, min(g.as_org) AS as_org FROM ips6 i JOIN {asn_view}6 g
       ON g.bucket = {b6} AND i.ip6 >= g.ip_start6 AND i.ip6 <= g.ip_end6 GROUP BY i.ip6),
c6 AS (SELECT i.ip6, min(g.country) AS country FROM ips6 i JOIN {country_view}6 g
       ON g.bucket = {b6} AND i.ip6 >= g.ip_start6 AND i.ip6 <= g.ip_end6 GROUP BY i.ip6)
SELECT i.ip4, CAST(NULL AS BLOB) AS ip6, a4.asn, a4.as_org, c4.country
FROM ips4 i LEFT JOIN a4 ON i.ip4 = a4.ip4 LEFT JOIN c4 ON i.ip4 = c4.ip4
UNION ALL
SELECT CAST(NULL AS UINTEGER) AS ip4, i.ip6, a6.asn, a6.as_org, c6.country
FROM ips6 i LEFT JOIN a6 ON i.ip6 = a6.ip6 LEFT JOIN c6 ON i.ip6 = c6.ip6
"""


def _explode(t: pa.Table, first: np.ndarray, last: np.ndarray, bucket: pa.DataType) -> pa.Table:
    counts = (last - first + 1).astype(np.int64)
    idx = np.repeat(np.arange(len(counts)), counts)
    offs = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    b = first.astype(np.int64)[idx] + offs
    out = t.take(pa.array(idx, pa.int64()))
    if pa.types.is_string(bucket):
        col = pa.array([f"{x:0{V6_BUCKET_HEX}X}" for x in b.tolist()], pa.string())
    else:
        col = pa.array(b, pa.int64())
    return out.append_column("bucket", col)


def _prefix24(col: pa.Array) -> np.ndarray:
    """First 24 bits of non-null 16-byte binaries as integers (vectorized)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    buf = np.frombuffer(col.buffers()[1], dtype=np.uint8)[col.offset * 16 : (col.offset + len(col)) * 16]
    m = buf.reshape(-1, 16)[:, :3].astype(np.int64)
    return (m[:, 0] << 16) | (m[:, 1] << 8) | m[:, 2]


def bucketed(t: pa.Table) -> tuple[pa.Table, pa.Table]:
    """A geo range table -> (IPv4 rows by /16 block, IPv6 rows by /24 block), with ``bucket``."""
    payload = [n for n in t.schema.names if not n.startswith("ip_")]
    t4 = t.filter(pc.is_valid(t.column("ip_start4"))).select(["ip_start4", "ip_end4", *payload])
    t6 = t.filter(pc.and_(pc.is_valid(t.column("ip_start6")), pc.is_null(t.column("ip_start4"))))
    t6 = t6.select(["ip_start6", "ip_end6", *payload])
    s4 = np.asarray(t4.column("ip_start4").to_numpy(), dtype=np.int64) >> V4_BUCKET_BITS
    e4 = np.asarray(t4.column("ip_end4").to_numpy(), dtype=np.int64) >> V4_BUCKET_BITS
    b4 = _explode(t4, s4, e4, pa.int64())
    if t6.num_rows:
        b6 = _explode(t6, _prefix24(t6.column("ip_start6")), _prefix24(t6.column("ip_end6")), pa.string())
    else:
        b6 = t6.append_column("bucket", pa.array([], pa.string()))
    return b4, b6


def register_geo(
    engine: Engine, ws: Workspace, *, asn_view: str = "geo_asn", country_view: str = "geo_country"
) -> None:
    """Expose the workspace geo tables to the engine as bucketed views (see :func:`lookup_sql`).

    Registers ``<view>4`` and ``<view>6`` for each table (empty when not loaded).
    """
    for kind, view in (("asn", asn_view), ("country", country_view)):
        b4, b6 = bucketed(read_geo(ws, kind))
        engine.register_table(f"{view}4", b4)
        engine.register_table(f"{view}6", b6)


def enrich_ips(engine: Engine, ips_view_name: str, ws: Workspace | None = None) -> pa.Table:
    """ASN, AS organization and country for every distinct (ip4, ip6) of a view.

    ``ips_view_name`` must have columns ``ip4`` (uint32) and ``ip6`` (binary(16)).  With
    ``ws`` the workspace tables are registered first; without it, the views
    :func:`register_geo` makes must already exist.  Returns :data:`ENRICH_SCHEMA` (unknowns null).
    """
    if ws is not None:
        register_geo(engine, ws)
    t = engine.query(lookup_sql(ips_view_name))
    return t.select(ENRICH_SCHEMA.names).cast(ENRICH_SCHEMA)


def lookup_hosts(engine: Engine, ws: Workspace, hosts: pa.Table) -> dict[str, dict[str, Any]]:
    """Victim hosts (``host_ip4``, ``host_ip6``) -> ``{ip text: {asn, as_org, country}}``.

    For the (small) set of hosts with findings; the join itself runs in the engine.
    """
    from ..net import ip_text

    if not table_path(ws, "asn").exists() and not table_path(ws, "country").exists():
        return {}
    ips = pa.table({"ip4": hosts.column("host_ip4").cast(pa.uint32()), "ip6": hosts.column("host_ip6").cast(IPV6_TYPE)})
    engine.register_table("_geo_hosts", ips)
    res = enrich_ips(engine, "_geo_hosts", ws)
    out: dict[str, dict[str, Any]] = {}
    for r in res.to_pylist():
        ip = ip_text(r["ip4"], r["ip6"])
        if ip is not None:
            out[ip] = {"asn": r["asn"], "as_org": r["as_org"], "country": r["country"]}
    return out


__all__ = [
    "ASN_SCHEMA",
    "COUNTRY_SCHEMA",
    "ENRICH_SCHEMA",
    "read_geo_file",
    "load_geo",
    "update_geo",
    "read_geo",
    "lookup_sql",
    "register_geo",
    "bucketed",
    "enrich_ips",
    "lookup_hosts",
]
