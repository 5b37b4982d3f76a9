"""Derived indicators: the addresses behind listed domains and certificates.

Intel names domains and certificates; flows carry addresses.  Name telemetry (the workspace's
names dataset: DNS answers, TLS SNI, presented certificates, see
:mod:`sightline.ingest.names`) links the two:

- a ``domain`` indicator stands for every address a DNS answer gave for the domain or one
  of its subdomains (label boundary: ``evil.com`` covers ``a.evil.com``, not ``notevil.com``),
  and every server a TLS client reached with that name as SNI or an HTTP client with that
  name as ``Host``;
- a ``url`` indicator stands for every server an HTTP request for that URL (query string
  aside) went to, as read from packets;
- a certificate indicator (``x509_sha1``, ``x509_sha256``, ``x509_md5``, ``x509_serial``)
  stands for every server that presented that certificate.

Public API::

    derived_indicators(engine, name_files, indicators) -> pa.Table  # INDICATOR_SCHEMA

Each derived row is an ``ipv4``/``ipv6`` indicator whose ``value`` is the parent's domain or
certificate (so evidence names what the intel named) and whose range is the one address.
It inherits the parent's actor, confidence and TLP; its validity is the parent's window
intersected with [first seen in name telemetry, last seen + max(TTL, 1 day)].  All joins run
in the engine; Python only assembles the (small) result.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..engines.base import Engine
from ..ingest.names import NAMES_SCHEMA
from ..schema import INDICATOR_SCHEMA, TS

MIN_HOLD_S = 86_400.0
"""A resolved or presented address stays linked to its name at least this long after it was
last seen: hosts and malware keep using an address well past a short DNS TTL."""

NAME_LEAD_S = 60.0
"""A name links its address from this long before it was first seen: a TLS SNI or HTTP Host
read from packets (pcap, Suricata events) is seen inside the session it names, a moment after
that session's first packet."""

CERT_TYPES = ("x509_sha1", "x509_sha256", "x509_md5", "x509_serial")

_TAIL = r"([^.]+\.[^.]+)$"

DERIVE_SQL = f"""
WITH ind AS (
  SELECT indicator_id, type,
         CASE WHEN type = 'x509_serial'
                   THEN regexp_replace(replace(replace(lower(value), ':', ''), ' ', ''), '^0+(.)', '\\1')
              WHEN type = 'domain' THEN lower(value)
              WHEN type = 'url' THEN regexp_extract(value, '^([^?#]*)', 1)
              ELSE replace(replace(lower(value), ':', ''), ' ', '') END AS ikey
  FROM derive_parents
  WHERE type IN ('domain', 'url', {", ".join("'" + t + "'" for t in CERT_TYPES)}) AND NOT coalesce(revoked, false)
),
dom AS (SELECT indicator_id, ikey, regexp_extract(ikey, '{_TAIL}', 1) AS tail FROM ind WHERE type = 'domain'),
nm AS (
  SELECT ts, kind, name, dst_ip, dst_ip6, ttl_s, regexp_extract(name, '{_TAIL}', 1) AS tail
  FROM names
  WHERE kind IN ('dns_answer', 'tls_sni', 'http_host') AND name IS NOT NULL AND (dst_ip IS NOT NULL OR dst_ip6 IS NOT NULL)
),
-- equi-join on the last two labels first, so the suffix test runs on few pairs
dom_hits AS (
  SELECT d.indicator_id, n.kind AS how, n.dst_ip, n.dst_ip6, n.ts, n.ttl_s
  FROM nm n JOIN dom d ON n.tail = d.tail
  WHERE n.name = d.ikey OR right(n.name, length(d.ikey) + 1) = concat('.', d.ikey)
),
-- a URL indicator: the servers HTTP requests for that URL went to (query string aside)
url_hits AS (
  SELECT i.indicator_id, 'http_url' AS how, n.dst_ip, n.dst_ip6, n.ts, CAST(NULL AS DOUBLE) AS ttl_s
  FROM (SELECT ts, dst_ip, dst_ip6, regexp_extract(name, '^([^?#]*)', 1) AS base FROM names
        WHERE kind = 'http_url' AND name IS NOT NULL AND (dst_ip IS NOT NULL OR dst_ip6 IS NOT NULL)) n
  JOIN ind i ON i.type = 'url' AND n.base = i.ikey
),
x_id AS (
  SELECT cert_id, max(cert_sha1) AS sha1, max(cert_sha256) AS sha256, max(cert_md5) AS md5,
         max(cert_serial) AS serial
  FROM names WHERE kind = 'x509' AND cert_id IS NOT NULL GROUP BY cert_id
),
x_fp AS (
  SELECT cert_sha256, max(cert_sha1) AS sha1, max(cert_md5) AS md5, max(cert_serial) AS serial
  FROM names WHERE kind = 'x509' AND cert_sha256 IS NOT NULL GROUP BY cert_sha256
),
tc AS (
  SELECT t.ts, t.dst_ip, t.dst_ip6,
         coalesce(t.cert_sha1, a.sha1, b.sha1) AS sha1,
         coalesce(t.cert_sha256, a.sha256) AS sha256,
         coalesce(t.cert_md5, a.md5, b.md5) AS md5,
         coalesce(t.cert_serial, a.serial, b.serial) AS serial
  FROM names t
  LEFT JOIN x_id a ON t.cert_id = a.cert_id
  LEFT JOIN x_fp b ON t.cert_sha256 = b.cert_sha256
  WHERE t.kind = 'tls_cert' AND (t.dst_ip IS NOT NULL OR t.dst_ip6 IS NOT NULL)
),
fps AS (
  SELECT ts, dst_ip, dst_ip6, 'x509_sha1' AS type, sha1 AS fp FROM tc WHERE sha1 IS NOT NULL
  UNION ALL SELECT ts, dst_ip, dst_ip6, 'x509_sha256', sha256 FROM tc WHERE sha256 IS NOT NULL
  UNION ALL SELECT ts, dst_ip, dst_ip6, 'x509_md5', md5 FROM tc WHERE md5 IS NOT NULL
  UNION ALL SELECT ts, dst_ip, dst_ip6, 'x509_serial', serial FROM tc WHERE serial IS NOT NULL
),
cert_hits AS (
  SELECT i.indicator_id, 'tls_cert' AS how, f.dst_ip, f.dst_ip6, f.ts, CAST(NULL AS DOUBLE) AS ttl_s
  FROM fps f JOIN ind i ON i.type = f.type AND i.ikey = f.fp
),
hits AS (SELECT * FROM dom_hits UNION ALL SELECT * FROM cert_hits UNION ALL SELECT * FROM url_hits)
SELECT indicator_id AS parent_id, dst_ip, dst_ip6,
       coalesce(CAST(dst_ip AS VARCHAR), hex(dst_ip6)) AS addr_key,
       min(ts) AS first_seen,
       max(CAST(epoch_us(ts) AS DOUBLE) / 1000000.0 + greatest(coalesce(ttl_s, 0.0), {MIN_HOLD_S})) AS hold_until_s,
       sum(CASE WHEN how = 'dns_answer' THEN 1 ELSE 0 END) AS dns_answers,
       sum(CASE WHEN how = 'tls_sni' THEN 1 ELSE 0 END) AS tls_sni,
       sum(CASE WHEN how = 'tls_cert' THEN 1 ELSE 0 END) AS tls_cert,
       sum(CASE WHEN how = 'http_host' THEN 1 ELSE 0 END) AS http_host,
       sum(CASE WHEN how = 'http_url' THEN 1 ELSE 0 END) AS http_url
FROM hits
GROUP BY indicator_id, dst_ip, dst_ip6
"""
"""Parents (view ``derive_parents``) x names (view ``names``) -> one row per parent x address."""


def derived_indicators(engine: Engine, name_files: list[str], indicators: pa.Table) -> pa.Table:
    """IP indicators derived from domain and certificate indicators through name telemetry.

    Parameters
    ----------
    engine
        The engine the hunt runs on; the views ``names`` and ``derive_parents`` are
        (re)registered on it.
    name_files
        Committed names parquet files (:meth:`sightline.store.Workspace.name_files`).
    indicators
        The indicator table (INDICATOR_SCHEMA); only non-revoked domain and certificate rows
        are used.

    Returns
    -------
    pa.Table
        INDICATOR_SCHEMA rows, type ``ipv4``/``ipv6``, ``source`` ``derived:<parent source>``,
        ``source_id`` the parent's ``indicator_id``.  Empty when nothing resolves.
    """
    if not name_files or indicators.num_rows == 0:
        return INDICATOR_SCHEMA.empty_table()
    parents = indicators.cast(INDICATOR_SCHEMA)
    wanted = pc.is_in(parents.column("type"), value_set=pa.array(("domain", "url") + CERT_TYPES))
    parents = parents.filter(wanted)
    if parents.num_rows == 0:
        return INDICATOR_SCHEMA.empty_table()
    engine.register_parquet("names", name_files, NAMES_SCHEMA)
    engine.register_table("derive_parents", parents)
    hits = engine.query(DERIVE_SQL)
    if hits.num_rows == 0:
        return INDICATOR_SCHEMA.empty_table()
    return _assemble(hits, parents)


def _assemble(hits: pa.Table, parents: pa.Table) -> pa.Table:
    """Join the hits with their parents and build INDICATOR_SCHEMA rows (vectorized)."""
    t = hits.join(parents, keys="parent_id", right_keys="indicator_id", join_type="inner")
    first_us = pc.subtract(pc.cast(pc.cast(t.column("first_seen"), TS), pa.int64()), int(NAME_LEAD_S * 1e6))
    first = pc.cast(first_us, TS)
    hold_us = pc.cast(pc.round(pc.multiply(t.column("hold_until_s"), 1e6)), pa.int64(), safe=False)
    hold = pc.cast(hold_us, TS)
    pf, pu = t.column("valid_from"), t.column("valid_until")
    vf = pc.if_else(pc.and_(pc.is_valid(pf), pc.greater(pc.fill_null(pf, first), first)), pf, first)
    vu = pc.if_else(pc.and_(pc.is_valid(pu), pc.less(pc.fill_null(pu, hold), hold)), pu, hold)
    keep = pc.less_equal(vf, vu)  # the name pointed there while the intel was valid
    is4 = pc.is_valid(t.column("dst_ip"))
    how = _how(t)
    value = t.column("value")
    n = t.num_rows
    cols = {
        "indicator_id": pc.binary_join_element_wise("derived", t.column("parent_id"), t.column("addr_key"), ":"),
        "type": pc.if_else(is4, "ipv4", "ipv6"),
        "value": value,
        "ip_start4": t.column("dst_ip"),
        "ip_end4": t.column("dst_ip"),
        "ip_start6": t.column("dst_ip6"),
        "ip_end6": t.column("dst_ip6"),
        "port": pa.nulls(n, pa.int32()),
        "actor": t.column("actor"),
        "valid_from": vf,
        "valid_until": vu,
        "confidence": t.column("confidence"),
        "tlp": t.column("tlp"),
        "source": pc.binary_join_element_wise("derived", pc.fill_null(t.column("source"), ""), ":"),
        "source_id": t.column("parent_id"),
        "description": pc.binary_join_element_wise(how, pc.cast(t.column("type"), pa.string()), value, " "),
        "revoked": pa.array(np.zeros(n, dtype=bool)),
        "imported_at": t.column("imported_at"),
    }
    out = pa.table({f.name: cols[f.name] for f in INDICATOR_SCHEMA}).cast(INDICATOR_SCHEMA)
    out = out.filter(keep)
    return out.sort_by([("value", "ascending"), ("indicator_id", "ascending")])


def _how(t: pa.Table) -> pa.Array:
    """Description prefix, e.g. ``address from 3 DNS answer(s), 1 TLS SNI for``."""
    parts = []
    for col, text in (
        ("dns_answers", " DNS answer(s)"),
        ("tls_sni", " TLS SNI"),
        ("tls_cert", " presented certificate(s)"),
        ("http_host", " HTTP Host"),
        ("http_url", " HTTP request(s)"),
    ):
        c = pc.cast(t.column(col), pa.int64())
        parts.append(
            pc.if_else(
                pc.greater(c, 0),
                pc.binary_join_element_wise(pc.cast(c, pa.string()), pa.scalar(text), ""),
                pa.scalar(None, pa.string()),
            )
        )
    # null pieces are skipped, so only the ways the address was actually seen are listed
    joined = pc.binary_join_element_wise(*parts, ", ", null_handling="skip")
    return pc.binary_join_element_wise("address from", joined, "for", " ")


__all__ = ["derived_indicators", "DERIVE_SQL", "CERT_TYPES", "MIN_HOLD_S"]
