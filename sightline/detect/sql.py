"""Detection queries, written once in sightline's SQL dialect (DuckDB's; kept to what
sqlglot transpiles to Spark SQL).  Every query reads views registered on the engine:

- ``flows``       the flow store (FLOW_SCHEMA)
- ``indicators``  the indicator table (INDICATOR_SCHEMA)

and creates temp tables the next query builds on.  Nothing here loops over flows in Python.
"""

from __future__ import annotations

from ..core.tlp import TLP

SERVICE_PORTS = (
    22,
    53,
    80,
    443,
    500,
    992,
    1194,
    1701,
    1723,
    3389,
    4433,
    4443,
    4500,
    5555,
    8080,
    8443,
    8888,
    9443,
    10443,
)
"""Ports that identify the responder of a unidirectional record (besides all ports < 1024)."""

EDGE_PORTS = (443, 8443, 4433, 4443, 10443, 9443, 500, 4500, 1194, 1701, 1723, 992, 5555, 80, 8080, 22, 3389)
"""Internet-facing firewall / VPN / load-balancer / remote-access services."""

TUNNEL_PORTS = (443, 992, 1194, 5555, 4433, 8443, 10443)
"""Ports SoftEther-like VPN tunnels back to actor infrastructure use."""

FAILED_STATES = ("S0", "REJ", "RSTOS0", "RSTRH", "SH", "SHR")
ESTABLISHED_STATES = ("SF", "S1", "S2", "S3", "RSTO", "RSTR")
"""Zeek states (or NetFlow TCP-flag states) of a connection whose handshake completed."""

_TLP_RANK = "CASE lower(tlp) " + " ".join(f"WHEN '{t.label}' THEN {int(t)}" for t in TLP) + f" ELSE {int(TLP.RED)} END"
"""An indicator's marking as its rank in the one TLP order; an unreadable marking counts as RED."""


def _in(values: tuple) -> str:
    return "(" + ", ".join(str(v) if isinstance(v, int) else "'" + v + "'" for v in values) + ")"


IND_IP = f"""
CREATE OR REPLACE TEMP TABLE ind_ip AS
WITH agg AS (
SELECT value,
       coalesce(port, -1) AS ind_port,
       ip_start4 AS s4, ip_end4 AS e4,
       ip_start6 AS s6, ip_end6 AS e6,
       CASE WHEN bool_or(valid_from IS NULL) THEN NULL ELSE min(valid_from) END AS valid_from,
       CASE WHEN bool_or(valid_until IS NULL) THEN NULL ELSE max(valid_until) END AS valid_until,
       max(coalesce(confidence, 50)) AS confidence,
       max({_TLP_RANK}) AS tlp_rank,
       string_agg(DISTINCT actor, '; ' ORDER BY actor) AS actor
FROM indicators
WHERE type IN ('ipv4', 'ipv6') AND NOT coalesce(revoked, false)
GROUP BY value, coalesce(port, -1), ip_start4, ip_end4, ip_start6, ip_end6
)
SELECT *, CASE WHEN actor IS NOT NULL THEN dense_rank() OVER (ORDER BY actor) END AS actor_rank
FROM agg
"""
"""IP indicators, one row per (value, port, range): the same indicator from several sources
merges into the widest validity window, the highest confidence and the strictest TLP.
Derived indicators (an address a listed domain resolved to, a server presenting a listed
certificate) carry the domain or certificate as ``value`` and the address as range.
``actor_rank`` orders the actor texts (a larger rank, a larger text): matches carry the
number and :func:`contacts_sql` takes its maximum, an aggregate a cluster engine keeps in a
hash table (Spark aggregates a text column by sorting every row)."""


MATCH_COLUMNS = (
    "ts",
    "duration_s",
    "src_ip",
    "src_ip6",
    "src_port",
    "dst_ip",
    "dst_ip6",
    "dst_port",
    "proto",
    "bytes_out",
    "bytes_in",
    "packets_out",
    "packets_in",
    "conn_state",
    "sensor",
    "source_format",
    "history",
)
"""The flow columns :func:`match_sql` reads (what an index read of candidate flows must decode)."""


HEADER_BYTES_SQL = """CASE WHEN proto = 'tcp' THEN 52 ELSE 28 END
  + CASE WHEN actor_ip6 IS NOT NULL THEN 20 ELSE 0 END
  + CASE WHEN source_format LIKE 'suricata%' THEN 14 ELSE 0 END"""
"""Header bytes per packet in sources that count IP bytes: IPv4 20 + TCP 20 + the 12 of the
timestamp option most stacks send on every segment (a pure ACK is then 52 bytes: no payload),
or UDP/ICMP 8; IPv6 20 more; Suricata counts Ethernet frames, 14 more."""
HEADER_SLACK_BYTES = 16
"""What is left of a record after the headers and is still no payload: the options of its SYN
(at most ~20 bytes, 8 beyond the timestamp option counted above) and rounding."""
ONE_WAY_MIN_PAYLOAD_PER_PACKET = 20
"""Request bytes per packet beyond the headers above which a SYN-only state (S0/SH) with no
packet back is data the sensor saw one way, not a probe: SYN options are at most ~20 bytes."""


def prefilter_sql(kinds: set[tuple[str, str]] | None = None) -> str | None:
    """The flows with an endpoint equal to a single-address indicator, in one pass over the flows.

    :func:`match_sql` joins each side and family separately, a scan of every column it reads
    per join; semi-joins on both addresses at once read them once (measured on 20M flows with
    5,000 indicators: 2.5 -> 1.0 s, the per-indicator joins then run over the 5 % that match).
    Range (CIDR) indicators are joined against all flows as before.  None: no exact kinds.
    """
    conds = []
    if kinds is None or ("4", "exact") in kinds:
        conds += [f"{c} IN (SELECT s4 FROM ind_ip WHERE s4 = e4)" for c in ("src_ip", "dst_ip")]
    if kinds is None or ("6", "exact") in kinds:
        conds += [f"{c} IN (SELECT s6 FROM ind_ip WHERE s6 = e6)" for c in ("src_ip6", "dst_ip6")]
    if not conds:
        return None
    return f"""
CREATE OR REPLACE TEMP TABLE match_pre AS
SELECT {", ".join(MATCH_COLUMNS)}
FROM flows
WHERE {" OR ".join(conds)}
"""


def match_sql(kinds: set[tuple[str, str]] | None = None, exact_source: str = "flows") -> str:
    """Flows whose source or destination is an indicator, normalized to the victim's view.

    ``kinds`` names the (family, kind) joins worth running, e.g. ``{("4", "exact")}`` when
    every indicator is a single IPv4 address; each join scans the flows once per side.

    One output row per (flow, matching indicator).  ``outbound`` means the victim host
    initiated.  For unidirectional records (``bytes_in`` null) the responder is the side
    on a service port, so replies are attributed to the connection they belong to.  So is it
    for a two-way record whose sensor missed the start (``mid_session``: a ``history`` without
    the originator's SYN, or flipped by the sensor, ``^``): such a record from a service port
    to an ephemeral one has its roles swapped.  Null ``history`` (NetFlow, older stores)
    changes nothing.
    Payload bytes: Zeek and sightline's own pcap reader count application payload;
    NetFlow/IPFIX and nfdump count IP bytes and Suricata whole frames, so the headers of each
    packet are taken off (:data:`HEADER_BYTES_SQL`).

    ``exact_source``: where the single-address joins read flows (``match_pre`` of
    :func:`prefilter_sql`); range joins always read ``flows``.
    """
    svc = _in(SERVICE_PORTS)
    failed = _in(FAILED_STATES)
    hdr = HEADER_BYTES_SQL
    parts: list[str] = []
    for side, other in (("dst", "src"), ("src", "dst")):
        for fam, exact, rng in (
            ("4", f"f.{side}_ip = i.s4", f"f.{side}_ip BETWEEN i.s4 AND i.e4"),
            ("6", f"f.{side}_ip6 = i.s6", f"f.{side}_ip6 BETWEEN i.s6 AND i.e6"),
        ):
            for kind, cond, filt in (("exact", exact, f"s{fam} = e{fam}"), ("range", rng, f"s{fam} < e{fam}")):
                if kinds is not None and (fam, kind) not in kinds and parts:
                    continue
                parts.append(
                    f"""SELECT f.ts, f.duration_s, f.proto, f.conn_state, f.source_format, f.sensor, f.history,
       f.{other}_ip AS host_ip4, f.{other}_ip6 AS host_ip6, f.{side}_ip AS actor_ip4, f.{side}_ip6 AS actor_ip6,
       f.{other}_port AS host_port, f.{side}_port AS actor_port,
       f.src_port, f.dst_port, f.bytes_out, f.bytes_in, f.packets_out, f.packets_in,
       '{side}' AS actor_side, i.value AS indicator, i.ind_port, i.valid_from, i.valid_until,
       i.confidence AS indicator_confidence, i.tlp_rank, i.actor_rank
FROM {exact_source if kind == "exact" else "flows"} f JOIN (SELECT * FROM ind_ip WHERE {filt}) i ON {cond}
WHERE (i.ind_port = -1 OR i.ind_port = f.{side}_port)"""
                )
    union = "\nUNION ALL\n".join(parts)
    return f"""
CREATE OR REPLACE TEMP TABLE matched AS
WITH hits AS ({union}),
ends AS (
  SELECT *,
    -- a record of one direction only: unidirectional sources (bytes_in null), and two-way
    -- formats that saw no packet back and no handshake (mid-stream, OTH: asymmetric routing
    -- gives the server's half of a connection as its own record)
    (bytes_in IS NULL OR (coalesce(packets_in, 0) = 0 AND coalesce(bytes_in, 0) = 0 AND conn_state = 'OTH')) AS one_way,
    -- the sensor did not see the connection open: Zeek's history (or what sightline derives
    -- from packets or flags) lacks the originator's SYN, or the sensor flipped the roles ('^').
    -- A capture that began mid-session orients it by whichever packet came first
    (history IS NOT NULL AND (history LIKE '%^%' OR (coalesce(proto = 'tcp', false) AND history NOT LIKE '%S%'))) AS mid_session,
    -- from a service port to an ephemeral one: the side on the service port is the responder
    (src_port IS NOT NULL AND dst_port IS NOT NULL
      AND (src_port < 1024 OR src_port IN {svc})
      AND NOT (dst_port < 1024 OR dst_port IN {svc})) AS from_service
  FROM hits
),
dir AS (
  SELECT *,
    -- the reply of a connection the host opened, given as its own one-way record
    (one_way AND from_service) AS flipped,
    -- a two-way record oriented backwards by a sensor that missed the start: the roles swap
    -- (C2 sessions older than the capture, a resolver's answers taken for the originator)
    (mid_session AND NOT coalesce(one_way, false) AND from_service) AS swapped,
    CASE WHEN source_format LIKE 'zeek%' OR source_format = 'pcap' OR bytes_out IS NULL THEN bytes_out
         WHEN bytes_out - ({hdr}) * coalesce(packets_out, 0) > {HEADER_SLACK_BYTES}
         THEN bytes_out - ({hdr}) * coalesce(packets_out, 0) ELSE 0 END AS pay_out,
    CASE WHEN source_format LIKE 'zeek%' OR source_format = 'pcap' OR bytes_in IS NULL THEN bytes_in
         WHEN bytes_in - ({hdr}) * coalesce(packets_in, 0) > {HEADER_SLACK_BYTES}
         THEN bytes_in - ({hdr}) * coalesce(packets_in, 0) ELSE 0 END AS pay_in
  FROM ends
)
SELECT ts, CAST(epoch_us(ts) AS DOUBLE) / 1000000.0 AS t, duration_s, proto,
       -- payload seen both ways outranks a "failed" state derived from partial TCP flags; so
       -- does request data with no packet back at all: TCP sends data only after a handshake,
       -- so the sensor missed the other direction (more than a SYN's options per packet)
       CASE WHEN coalesce(pay_out, 0) > 0 AND coalesce(pay_in, 0) > 0 AND conn_state IN {failed}
            THEN 'OTH'
            WHEN NOT flipped AND proto = 'tcp' AND conn_state IN ('S0', 'SH') AND coalesce(packets_in, 0) = 0 AND coalesce(bytes_in, 0) = 0
                 AND coalesce(pay_out, 0) >= {ONE_WAY_MIN_PAYLOAD_PER_PACKET} * greatest(coalesce(packets_out, 1), 1)
            THEN 'OTH' ELSE conn_state END AS conn_state,
       source_format, sensor,
       host_ip4, host_ip6, actor_ip4, actor_ip6, indicator, ind_port, valid_from, valid_until,
       indicator_confidence, tlp_rank, actor_rank,
       ((actor_side = 'dst') <> (flipped OR swapped)) AS outbound,
       CASE WHEN flipped OR swapped THEN src_port ELSE dst_port END AS service_port,
       CASE WHEN flipped THEN NULL WHEN swapped THEN pay_in ELSE pay_out END AS req_bytes,
       CASE WHEN flipped OR swapped THEN pay_out ELSE pay_in END AS resp_bytes,
       CASE WHEN flipped THEN NULL WHEN swapped THEN packets_in ELSE packets_out END AS req_packets,
       CASE WHEN flipped OR swapped THEN packets_out ELSE packets_in END AS resp_packets,
       bytes_out AS raw_bytes_out, bytes_in AS raw_bytes_in, flipped AS reply_record, mid_session,
       (valid_from IS NULL OR ts >= valid_from) AND (valid_until IS NULL OR ts <= valid_until) AS in_window
FROM dir
"""


INDICATOR_KINDS_SQL = """
SELECT DISTINCT CASE WHEN s4 IS NOT NULL THEN '4' ELSE '6' END AS fam,
       CASE WHEN coalesce(s4 = e4, s6 = e6) THEN 'exact' ELSE 'range' END AS kind
FROM ind_ip
"""


CONTACT_COLUMNS = (
    "host_ip4",
    "host_ip6",
    "actor_ip4",
    "actor_ip6",
    "indicator",
    "outbound",
    "service_port",
    "flows",
    "failed",
    "two_way",
    "payload_sessions",
    "mid_payload_sessions",
    "req_bytes",
    "resp_bytes",
    "max_req_bytes",
    "total_duration",
    "max_duration",
    "first_seen",
    "last_seen",
    "first_t",
    "last_t",
    "days",
    "indicator_confidence",
    "valid_from",
    "tlp_rank",
    "actor",
    "unidirectional",
    "reply_seen",
)
"""The columns of the ``contacts`` table, in order."""


def contacts_sql(min_request_bytes: int, mid_request_bytes: int = 200) -> str:
    """Aggregate in-window matches per (host, actor IP, direction, service port).

    ``two_way`` counts sessions with payload both ways: a bidirectional record with bytes
    each way; for unidirectional sources, a request record whose TCP flags show a completed
    handshake (the initiator only ACKs what the responder sent); for any source, a request
    record with nothing seen back matched by a reply record of the same contact.

    A mid-session record (``mid_session`` of :func:`match_sql`) that is still inbound after its
    orientation by ports is no evidence the host was attacked: the sensor did not see who
    opened the connection.  It counts neither as a probe nor as request payload, so it is left
    out of the inbound contacts; outbound it counts as any record (C2 seen mid-way is C2).
    """
    failed = _in(FAILED_STATES)
    est = _in(ESTABLISHED_STATES)
    # a request record whose source gave no reply direction (one-way telemetry)
    req_only = "(NOT reply_record AND coalesce(resp_packets, 0) = 0 AND coalesce(resp_bytes, 0) = 0)"
    # a connection a one-way source gives as a request record and a reply record counts once
    connections = (
        f"(count(*) - least(sum(CASE WHEN {req_only} THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN reply_record THEN 1 ELSE 0 END)))"
    )
    out = ", ".join("a.actor" if c == "actor" else f"c.{c}" for c in CONTACT_COLUMNS)
    return f"""
CREATE OR REPLACE TEMP TABLE contacts AS
WITH c AS (
SELECT host_ip4, host_ip6, actor_ip4, actor_ip6, indicator, outbound, service_port,
       {connections} AS flows,
       least(sum(CASE WHEN coalesce(conn_state, '') IN {failed}
                        OR (coalesce(req_bytes, 0) = 0 AND coalesce(resp_bytes, 0) = 0) THEN 1 ELSE 0 END),
             {connections}) AS failed,
       sum(CASE WHEN coalesce(conn_state, '') NOT IN {failed}
                 AND coalesce(req_bytes, 0) > 0 AND coalesce(resp_bytes, 0) > 0 THEN 1 ELSE 0 END)
         + sum(CASE WHEN resp_bytes IS NULL AND coalesce(req_bytes, 0) > 0
                     AND coalesce(conn_state, '') IN {est} THEN 1 ELSE 0 END)
         + least(sum(CASE WHEN {req_only} AND coalesce(req_bytes, 0) > 0
                           AND coalesce(conn_state, '') NOT IN {failed}
                           AND NOT (resp_bytes IS NULL AND coalesce(conn_state, '') IN {est}) THEN 1 ELSE 0 END),
                 sum(CASE WHEN req_bytes IS NULL AND coalesce(resp_bytes, 0) > 0
                           AND coalesce(conn_state, '') NOT IN {failed} THEN 1 ELSE 0 END)) AS two_way,
       sum(CASE WHEN coalesce(conn_state, '') NOT IN {failed}
                 AND coalesce(req_bytes, 0) >= {int(min_request_bytes)} THEN 1 ELSE 0 END) AS payload_sessions,
       sum(CASE WHEN coalesce(conn_state, '') NOT IN {failed}
                 AND coalesce(req_bytes, 0) >= {int(mid_request_bytes)} THEN 1 ELSE 0 END) AS mid_payload_sessions,
       coalesce(sum(req_bytes), 0) AS req_bytes,
       coalesce(sum(resp_bytes), 0) AS resp_bytes,
       max(coalesce(req_bytes, 0)) AS max_req_bytes,
       coalesce(sum(CASE WHEN NOT reply_record AND NOT ({req_only}) THEN duration_s END), 0)
         + greatest(coalesce(sum(CASE WHEN {req_only} THEN duration_s END), 0),
                    coalesce(sum(CASE WHEN reply_record THEN duration_s END), 0)) AS total_duration,
       coalesce(max(duration_s), 0) AS max_duration,
       min(ts) AS first_seen, max(ts) AS last_seen,
       min(t) AS first_t, max(t) AS last_t,
       count(DISTINCT CAST(ts AS DATE)) AS days,
       max(indicator_confidence) AS indicator_confidence,
       min(valid_from) AS valid_from,
       max(tlp_rank) AS tlp_rank,
       max(actor_rank) AS actor_rank,
       max(CASE WHEN resp_bytes IS NULL THEN 1 ELSE 0 END) AS unidirectional,
       max(CASE WHEN coalesce(resp_packets, 0) > 0 OR coalesce(resp_bytes, 0) > 0 THEN 1 ELSE 0 END) AS reply_seen
FROM matched
WHERE in_window AND (outbound OR NOT mid_session)
GROUP BY host_ip4, host_ip6, actor_ip4, actor_ip6, indicator, outbound, service_port
),
a AS (SELECT DISTINCT actor_rank, actor FROM ind_ip WHERE actor_rank IS NOT NULL)
SELECT {out}
FROM c LEFT JOIN a ON c.actor_rank = a.actor_rank
"""


_SERIES_KEYS = "host_ip4, host_ip6, actor_ip4, actor_ip6, indicator, service_port"
_SERIES_ON = """s.host_ip4 IS NOT DISTINCT FROM g.host_ip4 AND s.host_ip6 IS NOT DISTINCT FROM g.host_ip6
 AND s.actor_ip4 IS NOT DISTINCT FROM g.actor_ip4 AND s.actor_ip6 IS NOT DISTINCT FROM g.actor_ip6
 AND s.indicator = g.indicator AND s.service_port IS NOT DISTINCT FROM g.service_port"""


def series_points_sql() -> str:
    """The connections of outbound two-way series, each with the interval since the previous
    one of its contact (``dt``): a table of its own, as :func:`intervals_sql` reads it twice
    (medians, then deviations from them) and a cluster engine would compute the window twice."""
    failed = _in(FAILED_STATES)
    return f"""
CREATE OR REPLACE TEMP TABLE series_pts AS
SELECT {_SERIES_KEYS}, t, req_bytes,
       t - lag(t) OVER (PARTITION BY {_SERIES_KEYS} ORDER BY t) AS dt
FROM matched
WHERE in_window AND outbound AND coalesce(conn_state, '') NOT IN {failed} AND coalesce(req_bytes, 0) > 0
"""


def intervals_sql() -> str:
    """Interval statistics of outbound two-way connection series (beaconing), from the points
    of :func:`series_points_sql`.  The quartiles are one aggregate (one pass over each series)."""
    gk = ", ".join(f"g.{k}" for k in _SERIES_KEYS.split(", "))
    return f"""
CREATE OR REPLACE TEMP TABLE series AS
WITH q AS (
  SELECT {_SERIES_KEYS}, count(*) AS n,
         quantile_cont(dt, [0.25, 0.5, 0.75]) AS qs,
         quantile_cont(req_bytes, 0.5) AS size_median
  FROM series_pts
  GROUP BY {_SERIES_KEYS}
),
g AS (SELECT {_SERIES_KEYS}, n, qs[1] AS q1, qs[2] AS q2, qs[3] AS q3, size_median FROM q)
-- mad() has no Spark twin: median absolute deviation is spelled out as two medians
SELECT {gk}, g.n, g.q1, g.q2, g.q3,
       quantile_cont(abs(s.dt - g.q2), 0.5) AS dt_mad, g.size_median,
       quantile_cont(abs(s.req_bytes - g.size_median), 0.5) AS size_mad
FROM series_pts s JOIN g ON {_SERIES_ON}
GROUP BY {gk}, g.n, g.q1, g.q2, g.q3, g.size_median
"""


def failed_points_sql() -> str:
    """Outbound attempts that were refused or never answered (S0, REJ, ...), each with the
    interval since the previous one of its contact.  Records of a source that sees replies
    count, and one-way TCP records whose flags show no completed handshake (S0, REJ): an
    initiator that got a SYN-ACK would have acknowledged it, so the handshake never completed.
    Other one-way records say nothing about an answer."""
    failed = _in(FAILED_STATES)
    return f"""
CREATE OR REPLACE TEMP TABLE fail_pts AS
SELECT {_SERIES_KEYS}, t,
       t - lag(t) OVER (PARTITION BY {_SERIES_KEYS} ORDER BY t) AS dt
FROM matched
WHERE in_window AND outbound AND NOT reply_record
  AND (raw_bytes_in IS NOT NULL OR (proto = 'tcp' AND conn_state IN ('S0', 'REJ')))
  AND coalesce(conn_state, '') IN {failed}
"""


def failed_series_sql() -> str:
    """Interval statistics of the failed attempts of :func:`failed_points_sql` per contact: an
    infected host retrying a C2 that is down or blocked."""
    gk = ", ".join(f"g.{k}" for k in _SERIES_KEYS.split(", "))
    return f"""
CREATE OR REPLACE TEMP TABLE fail_series AS
WITH g AS (
  SELECT {_SERIES_KEYS}, count(*) AS n, quantile_cont(dt, 0.5) AS q2
  FROM fail_pts
  GROUP BY {_SERIES_KEYS}
)
SELECT {gk}, g.n, g.q2, quantile_cont(abs(s.dt - g.q2), 0.5) AS dt_mad
FROM g JOIN fail_pts s ON {_SERIES_ON}
GROUP BY {gk}, g.n, g.q2
"""


def actor_org_sql() -> str:
    """Actor addresses of the contacts that lie inside a registered organization (longest
    prefix wins): an indicator there is that organization's compromised asset (a relay or C2
    host the actor took over), not an outside attacker."""
    return """
CREATE OR REPLACE TEMP TABLE actor_org AS
WITH actors AS (SELECT DISTINCT actor_ip4, actor_ip6 FROM contacts),
cand AS (
  SELECT a.actor_ip4, a.actor_ip6, o.org_id, o.prefix_len
  FROM actors a JOIN orgs o ON (a.actor_ip4 IS NOT NULL AND a.actor_ip4 BETWEEN o.ip_start4 AND o.ip_end4)
  UNION ALL
  SELECT a.actor_ip4, a.actor_ip6, o.org_id, o.prefix_len
  FROM actors a JOIN orgs o ON (a.actor_ip6 IS NOT NULL AND a.actor_ip6 BETWEEN o.ip_start6 AND o.ip_end6)
),
ranked AS (
  SELECT *, row_number() OVER (PARTITION BY actor_ip4, actor_ip6 ORDER BY prefix_len DESC, org_id) AS rn
  FROM cand
)
SELECT actor_ip4, actor_ip6, org_id FROM ranked WHERE rn = 1
"""


POPULARITY_SQL = """
CREATE OR REPLACE TEMP TABLE ind_pop AS
SELECT c.indicator,
       count(DISTINCT coalesce(o.org_id, CAST(c.host_ip4 // 256 AS VARCHAR), substr(hex(c.host_ip6), 1, 12))) AS talker_orgs
FROM contacts c
LEFT JOIN host_org o ON c.host_ip4 IS NOT DISTINCT FROM o.host_ip4 AND c.host_ip6 IS NOT DISTINCT FROM o.host_ip6
WHERE c.outbound AND c.two_way > 0
GROUP BY c.indicator
"""
"""How many organizations talk two-way to each indicator (a registry organization, else the
host's /24 or /48 stands in for one)."""


def contacts_for_assessment_sql(popular_orgs: int) -> str:
    """Contacts worth scoring, each with the interval statistics of its connection series
    (``s_*``, outbound only) and its indicator's popularity: everything, except that contacts with a popular indicator are
    kept only when they could be C2 (repeated, long, voluminous).  Keeps memory bounded
    when the intel names a CDN address half the customers of an ISP talk to."""
    return f"""
SELECT c.*, coalesce(p.talker_orgs, 0) AS talker_orgs,
       s.n AS s_n, s.q1 AS s_q1, s.q2 AS s_q2, s.q3 AS s_q3, s.dt_mad AS s_dt_mad,
       s.size_median AS s_size_median, s.size_mad AS s_size_mad,
       fs.n AS f_n, fs.q2 AS f_q2, fs.dt_mad AS f_dt_mad
FROM contacts c LEFT JOIN ind_pop p ON c.indicator = p.indicator
LEFT JOIN series s
  ON c.outbound AND s.host_ip4 IS NOT DISTINCT FROM c.host_ip4 AND s.host_ip6 IS NOT DISTINCT FROM c.host_ip6
 AND s.actor_ip4 IS NOT DISTINCT FROM c.actor_ip4 AND s.actor_ip6 IS NOT DISTINCT FROM c.actor_ip6
 AND s.indicator = c.indicator AND s.service_port IS NOT DISTINCT FROM c.service_port
LEFT JOIN fail_series fs
  ON c.outbound AND fs.host_ip4 IS NOT DISTINCT FROM c.host_ip4 AND fs.host_ip6 IS NOT DISTINCT FROM c.host_ip6
 AND fs.actor_ip4 IS NOT DISTINCT FROM c.actor_ip4 AND fs.actor_ip6 IS NOT DISTINCT FROM c.actor_ip6
 AND fs.indicator = c.indicator AND fs.service_port IS NOT DISTINCT FROM c.service_port
WHERE NOT (coalesce(p.talker_orgs, 0) >= {int(popular_orgs)} AND c.outbound
           AND c.flows < 6 AND c.max_duration < 3600 AND c.total_duration < 14400
           AND c.req_bytes < 5000000 AND c.req_bytes + c.resp_bytes < 1000000)
"""


def baseline_hosts_sql(min_bytes: int) -> str:
    """Hosts whose usual outbound volume can matter: an outbound contact that sent at least
    ``min_bytes`` and twice what came back (the only case the baseline decides, see
    :func:`sightline.detect.behaviours.outbound_behaviours`)."""
    return f"""
SELECT DISTINCT host_ip4, host_ip6 FROM contacts
WHERE outbound AND req_bytes >= {int(min_bytes)} AND req_bytes > 2 * resp_bytes
"""


BASELINE_COLUMNS = ("ts", "src_ip", "src_ip6", "bytes_out")
"""The flow columns :func:`baseline_sql` reads."""


def baseline_pre_sql(min_bytes: int) -> str:
    """The flows sent by the hosts of :func:`baseline_hosts_sql`, in one pass over the store
    (semi-joins on both address families at once, as :func:`prefilter_sql`): :func:`baseline_sql`
    joins each family separately, and an engine without DuckDB's join filters on the scan
    (Spark) would read the store once per join."""
    return f"""
CREATE OR REPLACE TEMP TABLE baseline_pre AS
WITH h AS ({baseline_hosts_sql(min_bytes)})
SELECT {", ".join(BASELINE_COLUMNS)}
FROM flows
WHERE src_ip IN (SELECT host_ip4 FROM h WHERE host_ip4 IS NOT NULL)
   OR src_ip6 IN (SELECT host_ip6 FROM h WHERE host_ip6 IS NOT NULL)
"""


def baseline_sql(min_bytes: int, source: str = "flows") -> str:
    """Each candidate host's usual outbound volume: bytes it sends per day to any destination
    (read from ``source``: the store, or the rows of those hosts an index selected)."""
    return f"""
CREATE OR REPLACE TEMP TABLE host_baseline AS
WITH h AS ({baseline_hosts_sql(min_bytes)}),
d AS (
  SELECT f.src_ip AS host_ip4, f.src_ip6 AS host_ip6, CAST(f.ts AS DATE) AS day, sum(coalesce(f.bytes_out, 0)) AS b
  FROM {source} f JOIN h ON f.src_ip = h.host_ip4
  GROUP BY f.src_ip, f.src_ip6, CAST(f.ts AS DATE)
  UNION ALL
  SELECT f.src_ip, f.src_ip6, CAST(f.ts AS DATE), sum(coalesce(f.bytes_out, 0))
  FROM {source} f JOIN h ON f.src_ip6 = h.host_ip6
  GROUP BY f.src_ip, f.src_ip6, CAST(f.ts AS DATE)
)
SELECT host_ip4, host_ip6, median(b) AS daily_median, count(*) AS days
FROM d GROUP BY host_ip4, host_ip6
"""


def stale_sql() -> str:
    return """
SELECT host_ip4, host_ip6, actor_ip4, actor_ip6, indicator, count(*) AS flows,
       min(ts) AS first_seen, max(ts) AS last_seen,
       min(valid_from) AS valid_from, max(valid_until) AS valid_until, max(tlp_rank) AS tlp_rank
FROM matched
WHERE NOT in_window
GROUP BY host_ip4, host_ip6, actor_ip4, actor_ip6, indicator
"""


def host_org_sql() -> str:
    """Map every victim host to its organization: longest registry prefix wins."""
    return """
CREATE OR REPLACE TEMP TABLE host_org AS
WITH hosts AS (SELECT DISTINCT host_ip4, host_ip6 FROM matched),
cand AS (
  SELECT h.host_ip4, h.host_ip6, o.org_id, o.prefix_len
  FROM hosts h JOIN orgs o
    ON (h.host_ip4 IS NOT NULL AND h.host_ip4 BETWEEN o.ip_start4 AND o.ip_end4)
  UNION ALL
  SELECT h.host_ip4, h.host_ip6, o.org_id, o.prefix_len
  FROM hosts h JOIN orgs o
    ON (h.host_ip6 IS NOT NULL AND h.host_ip6 BETWEEN o.ip_start6 AND o.ip_end6)
),
ranked AS (
  SELECT *, row_number() OVER (PARTITION BY host_ip4, host_ip6 ORDER BY prefix_len DESC, org_id) AS rn
  FROM cand
)
SELECT h.host_ip4, h.host_ip6, r.org_id
FROM hosts h LEFT JOIN ranked r
  ON r.rn = 1 AND h.host_ip4 IS NOT DISTINCT FROM r.host_ip4 AND h.host_ip6 IS NOT DISTINCT FROM r.host_ip6
"""


__all__ = [
    "SERVICE_PORTS",
    "EDGE_PORTS",
    "TUNNEL_PORTS",
    "FAILED_STATES",
    "ESTABLISHED_STATES",
    "IND_IP",
    "INDICATOR_KINDS_SQL",
    "match_sql",
    "prefilter_sql",
    "contacts_sql",
    "series_points_sql",
    "intervals_sql",
    "failed_points_sql",
    "baseline_hosts_sql",
    "baseline_sql",
    "baseline_pre_sql",
    "BASELINE_COLUMNS",
    "POPULARITY_SQL",
    "failed_series_sql",
    "actor_org_sql",
    "contacts_for_assessment_sql",
    "stale_sql",
    "host_org_sql",
]
