"""Infrastructure pivoting: external addresses that compromised hosts talk to in the same
pattern but that no intel names.  Scored, listed as ``suspected_infrastructure``, never a
verdict on their own.

"Same pattern" means C2-like regularity: each host's connection intervals to the address
have a small spread (median over hosts of 1 - MAD/median >= ``pivot_min_regularity`` of
:class:`sightline.config.DetectionParams`).  Sharing an
ordinary destination (a web site two compromised hosts both browse) is not enough.

Score = 0.4 x exclusivity (share of the address's talkers that are compromised hosts)
      + 0.2 x breadth (how many compromised hosts, saturating at 3)
      + 0.4 x regularity.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import pyarrow as pa

from ..config import DEFAULT_DETECTION, DetectionParams
from ..core.tlp import DEFAULT_TLP, TLP, marking, most_restrictive
from ..engines.base import Engine
from ..findings.model import Organization, SuspectedInfrastructure
from ..net import ip_text, parse_ips
from . import FlowsFor
from .sql import FAILED_STATES, _in

_COLUMNS = ["ts", "src_ip", "src_ip6", "dst_ip", "dst_ip6", "dst_port", "bytes_out", "bytes_in", "conn_state"]
"""The flow columns the statements below read."""


def _sql(params: DetectionParams, source: str = "flows") -> list[str]:
    """The compromised hosts' flows are read once; candidates are their aggregate, and only
    flows to the (few) candidates are kept for the interval statistics."""
    failed = _in(FAILED_STATES)
    return [
        # the compromised hosts' flows with payload, read once (candidates and their
        # intervals both come from them)
        f"""
CREATE OR REPLACE TEMP TABLE pivot_src AS
SELECT f.dst_ip AS ip4, f.dst_ip6 AS ip6, f.dst_port AS port, f.src_ip AS h4, f.src_ip6 AS h6,
       f.bytes_out, f.bytes_in, f.ts
FROM {source} f JOIN comp_hosts c ON f.src_ip = c.host_ip4
WHERE coalesce(f.conn_state, '') NOT IN {failed} AND coalesce(f.bytes_out, 0) > 0
UNION ALL
SELECT f.dst_ip, f.dst_ip6, f.dst_port, f.src_ip, f.src_ip6, f.bytes_out, f.bytes_in, f.ts
FROM {source} f JOIN comp_hosts c ON f.src_ip6 = c.host_ip6
WHERE coalesce(f.conn_state, '') NOT IN {failed} AND coalesce(f.bytes_out, 0) > 0
""",
        f"""
CREATE OR REPLACE TEMP TABLE pivot_cand AS
-- a host is IPv4 or IPv6, never both: distinct hosts = distinct IPv4 + distinct IPv6 sources
-- (integer keys: counting a text form of the address cost most of this statement)
SELECT ip4, ip6, port, count(DISTINCT h4) + count(DISTINCT h6) AS comp_hosts,
       count(*) AS flows, sum(bytes_out) AS bytes_out, sum(bytes_in) AS bytes_in, min(ts) AS first_seen, max(ts) AS last_seen
FROM pivot_src
GROUP BY ip4, ip6, port
HAVING count(DISTINCT h4) + count(DISTINCT h6) >= {int(params.pivot_min_hosts)}
""",
        """
DELETE FROM pivot_cand WHERE EXISTS (
  SELECT 1 FROM ind_ip i
  WHERE (pivot_cand.ip4 BETWEEN i.s4 AND i.e4) OR (pivot_cand.ip6 BETWEEN i.s6 AND i.e6))
""",
        """
DELETE FROM pivot_cand WHERE EXISTS (
  SELECT 1 FROM orgs o
  WHERE (pivot_cand.ip4 BETWEEN o.ip_start4 AND o.ip_end4) OR (pivot_cand.ip6 BETWEEN o.ip_start6 AND o.ip_end6))
""",
        """
CREATE OR REPLACE TEMP TABLE pivot_out AS
SELECT p.ip4, p.ip6, p.port, p.h4, p.h6, CAST(epoch_us(p.ts) AS DOUBLE) / 1000000.0 AS t
FROM pivot_src p
JOIN pivot_cand k ON p.port = k.port AND p.ip4 IS NOT DISTINCT FROM k.ip4 AND p.ip6 IS NOT DISTINCT FROM k.ip6
""",
        """
CREATE OR REPLACE TEMP TABLE pivot_reg AS
WITH s AS (
  SELECT p.ip4, p.ip6, p.port, p.h4, p.h6,
         p.t - lag(p.t) OVER (PARTITION BY p.ip4, p.ip6, p.port, p.h4, p.h6 ORDER BY p.t) AS dt
  FROM pivot_out p JOIN pivot_cand c ON p.port = c.port
   AND p.ip4 IS NOT DISTINCT FROM c.ip4 AND p.ip6 IS NOT DISTINCT FROM c.ip6
),
m AS (
  SELECT ip4, ip6, port, h4, h6, count(dt) AS n, median(dt) AS med
  FROM s GROUP BY ip4, ip6, port, h4, h6
),
h AS (  -- median absolute deviation, written as two medians so every engine runs it
  SELECT m.ip4, m.ip6, m.port, m.h4, m.h6, m.n, m.med, median(abs(s.dt - m.med)) AS dmad
  FROM m JOIN s ON s.port = m.port AND s.ip4 IS NOT DISTINCT FROM m.ip4 AND s.ip6 IS NOT DISTINCT FROM m.ip6
   AND s.h4 IS NOT DISTINCT FROM m.h4 AND s.h6 IS NOT DISTINCT FROM m.h6
  GROUP BY m.ip4, m.ip6, m.port, m.h4, m.h6, m.n, m.med
)
SELECT ip4, ip6, port,
       median(CASE WHEN n >= 4 AND med > 0 THEN greatest(0.0, 1.0 - dmad / med) ELSE 0.0 END) AS regularity,
       median(med) AS interval_s
FROM h GROUP BY ip4, ip6, port
""",
        # only candidates that can still pass (regular enough, and enough score even if every
        # talker were a compromised host) need their talkers counted: with popular shared
        # destinations that is a handful out of thousands
        f"""
DELETE FROM pivot_cand WHERE NOT EXISTS (
  SELECT 1 FROM pivot_reg r
  WHERE r.port = pivot_cand.port AND r.ip4 IS NOT DISTINCT FROM pivot_cand.ip4
    AND r.ip6 IS NOT DISTINCT FROM pivot_cand.ip6 AND r.regularity >= {params.pivot_min_regularity}
    AND 0.4 + 0.2 * least(1.0, pivot_cand.comp_hosts / 3.0) + 0.4 * r.regularity >= {params.pivot_min_score - 0.001})
""",
        f"""
CREATE OR REPLACE TEMP TABLE pivot_talkers AS
WITH t AS (
  SELECT c.ip4, c.ip6, c.port, f.src_ip, f.src_ip6
  FROM pivot_cand c JOIN {source} f ON f.dst_port = c.port AND f.dst_ip = c.ip4
  UNION ALL
  SELECT c.ip4, c.ip6, c.port, f.src_ip, f.src_ip6
  FROM pivot_cand c JOIN {source} f ON f.dst_port = c.port AND f.dst_ip6 = c.ip6
)
SELECT ip4, ip6, port,
       count(DISTINCT src_ip) + count(DISTINCT src_ip6) AS talkers
FROM t
GROUP BY ip4, ip6, port
""",
    ]


def pivot(
    engine: Engine,
    organizations: Sequence[Organization],
    flows_for: FlowsFor | None = None,
    default_tlp: TLP = DEFAULT_TLP,
    params: DetectionParams = DEFAULT_DETECTION,
) -> list[SuspectedInfrastructure]:
    """Suspected infrastructure from the compromised hosts of ``organizations`` (most confident
    first).  Each item carries the most restrictive TLP of the verdicts it rests on: a host's
    evidence, and its organization's exploitation evidence where the verdict followed it."""
    comp_ips: list[str] = []
    comp_conf: list[int] = []
    host_org: dict[str, str] = {}
    host_tlp: dict[str, TLP] = {}
    for o in organizations:
        for h in o.hosts:
            host_org[h.ip] = o.org_id
            if h.verdict == "compromised":
                level = marking(h.tlp, default_tlp)
                if any(e.follows_exploitation for e in h.evidence):
                    level = max(level, marking(o.tlp, default_tlp))
                host_tlp[h.ip] = level
                comp_ips.append(h.ip)
                comp_conf.append(int(h.confidence))
    # most confident first (pivoting keeps the top ones); addresses parsed column-wise
    order = np.argsort(-np.array(comp_conf, dtype=np.int64), kind="stable")
    parsed = parse_ips(pa.array(comp_ips, pa.string()))
    v4 = parsed.v4.take(pa.array(order)).to_pylist()
    v6 = parsed.v6.take(pa.array(order)).to_pylist()
    rows = suspected_infrastructure(engine, list(zip(v4, v6)), host_org, flows_for, params)
    out = []
    for r in rows:
        members = r.pop("_members")
        r["tlp"] = most_restrictive((host_tlp.get(m, default_tlp) for m in members), default=default_tlp).label
        out.append(msgspec.convert(r, SuspectedInfrastructure))
    return out


def suspected_infrastructure(
    engine: Engine,
    compromised_hosts: list[tuple[int | None, bytes | None]],
    host_org: dict[str, str],
    flows_for: FlowsFor | None = None,
    params: DetectionParams = DEFAULT_DETECTION,
) -> list[dict]:
    """Score external addresses shared by compromised hosts (run after :func:`run_detection`).

    Reads the engine's ``flows`` view, or, with ``flows_for`` (a retro-hunt through the
    indicator index), only the stored flows of the compromised hosts and then of the
    candidate addresses -- the same rows the statements would pick out of the whole store.
    """
    if len(compromised_hosts) < params.pivot_min_hosts:
        return []
    compromised_hosts = compromised_hosts[: params.pivot_max_hosts]
    comp = pa.table(
        {
            "host_ip4": pa.array([h[0] for h in compromised_hosts], pa.uint32()),
            "host_ip6": pa.array([h[1] for h in compromised_hosts], pa.binary(16)),
        }
    )
    engine.register_table("comp_hosts", comp)
    if flows_for is None:
        for stmt in _sql(params):
            engine.execute(stmt)
    else:
        stmts = _sql(params, "pivot_flows")
        comp_ips = pa.table({"ip4": comp.column("host_ip4"), "ip6": comp.column("host_ip6")})
        flows_for("pivot_flows", comp_ips, _COLUMNS)
        for stmt in stmts[:-1]:  # candidates and their regularity: the compromised hosts' own flows
            engine.execute(stmt)
        # their talkers: every flow to a candidate that can still pass
        cand = engine.query("SELECT DISTINCT ip4, ip6 FROM pivot_cand")
        flows_for("pivot_flows", cand.cast(comp_ips.schema), _COLUMNS)
        engine.execute(stmts[-1])
        engine.release("pivot_flows")
    engine.release("pivot_src")
    # score in the engine and keep only what can pass: with popular destinations the
    # candidates run into the millions, their survivors into the tens
    engine.execute(f"""
        CREATE OR REPLACE TEMP TABLE pivot_keep AS
        SELECT * FROM (
          SELECT c.*, t.talkers, r.regularity, r.interval_s,
                 0.4 * c.comp_hosts / greatest(1, t.talkers) + 0.2 * least(1.0, c.comp_hosts / 3.0)
                 + 0.4 * coalesce(r.regularity, 0.0) AS raw_score
          FROM pivot_cand c
          JOIN pivot_talkers t ON c.port = t.port AND c.ip4 IS NOT DISTINCT FROM t.ip4 AND c.ip6 IS NOT DISTINCT FROM t.ip6
          LEFT JOIN pivot_reg r ON c.port = r.port AND c.ip4 IS NOT DISTINCT FROM r.ip4 AND c.ip6 IS NOT DISTINCT FROM r.ip6
        ) x
        WHERE coalesce(regularity, 0.0) >= {params.pivot_min_regularity}
          AND raw_score >= {params.pivot_min_score - 0.001}
    """)
    rows = engine.query("SELECT * FROM pivot_keep").to_pylist()
    hosts_by_dst = engine.query("""
        SELECT DISTINCT p.ip4, p.ip6, p.port, p.h4, p.h6 FROM pivot_out p
        JOIN pivot_keep c ON p.port = c.port AND p.ip4 IS NOT DISTINCT FROM c.ip4 AND p.ip6 IS NOT DISTINCT FROM c.ip6
    """).to_pylist()
    members: dict[tuple, list[str]] = {}
    for r in hosts_by_dst:
        members.setdefault((r["ip4"], r["ip6"], r["port"]), []).append(ip_text(r["h4"], r["h6"]) or "")
    out = []
    for r in rows:
        exclusivity = r["comp_hosts"] / max(1, r["talkers"])
        breadth = min(1.0, r["comp_hosts"] / 3.0)
        regularity = float(r["regularity"] or 0.0)
        score = round(0.4 * exclusivity + 0.2 * breadth + 0.4 * regularity, 3)
        if regularity < params.pivot_min_regularity or score < params.pivot_min_score:
            continue
        hosts = sorted(members.get((r["ip4"], r["ip6"], r["port"]), []))
        orgs = sorted({host_org[h] for h in hosts if h in host_org})
        interval = f", median interval {r['interval_s']:.0f}s" if r.get("interval_s") and regularity > 0.5 else ""
        out.append(
            {
                "ip": ip_text(r["ip4"], r["ip6"]),
                "port": r["port"],
                "score": score,
                "hosts": len(hosts),
                "host_ips": hosts[:50],
                "organizations": orgs,
                "ports": [r["port"]],
                "flows": int(r["flows"]),
                "bytes_out": int(r["bytes_out"] or 0),
                "bytes_in": int(r["bytes_in"] or 0),
                "first_seen": r["first_seen"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "last_seen": r["last_seen"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "talkers": int(r["talkers"]),
                "_members": hosts,
                "reason": f"{r['comp_hosts']} compromised host(s) talk to it ({r['comp_hosts']} of {r['talkers']} talkers)"
                f"{interval}; not in the intel",
            }
        )
    out.sort(key=lambda d: (-d["score"], d["ip"]))
    return out


__all__ = ["pivot", "suspected_infrastructure"]
