"""Behaviour scoring: small pure functions over per-contact aggregates.

A *contact* is one (victim host, actor IP, indicator, direction, service port) aggregate
from :func:`sightline.detect.sql.contacts_sql`; a *series* adds the interval statistics of
its outbound connections.  Each function returns a score in [0, 1] (0 = not this
behaviour) and a human-readable detail.

Beacon score, and how it differs from RITA's: RITA averages a timestamp score (Bowley
skew, median absolute deviation in absolute seconds capped at 30 s, connection count
against a fixed 24 h bucket count) and a data-size score (skew, MAD in bytes, smallness).
sightline measures dispersion *relative to the median interval* (MAD / median), so a 5 s
beacon with ±1 s jitter and a 1 h beacon with ±10 min jitter score alike; counts
connections against the span actually observed rather than a fixed day; and gives size
regularity less weight, because C2 tasking makes request sizes vary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .sql import EDGE_PORTS, TUNNEL_PORTS

MIN_REQUEST_BYTES = 1000
"""Request payload (bytes from the initiator) above which a session carried more than a probe:
TLS ClientHellos, IKE_SA_INIT and banner grabs stay under about 1 kB; exploit requests rarely do."""

MID_REQUEST_BYTES = 200
"""A request of this size (but under MIN_REQUEST_BYTES) counts as an exploitation attempt only
when it is focused: the actor address touched at most FOCUSED_MAX_HOSTS hosts and
FOCUSED_MAX_PORTS ports of the organization.  In a sweep it is a banner grab."""
FOCUSED_MAX_HOSTS = 2
FOCUSED_MAX_PORTS = 3

BEACON_MIN_CONNECTIONS = 6
BEACON_THRESHOLD = 0.6
ONE_WAY_FACTOR = 0.85
"""A beacon seen only in its request direction (replies not in the telemetry) scores this much of
a two-way one."""
LONG_SESSION_S = 3600.0
LONG_CUMULATIVE_S = 4 * 3600.0
TUNNEL_MIN_BYTES = 1_000_000
TUNNEL_MIN_EACH_WAY = 200_000
TUNNEL_MIN_RATIO = 0.02
TUNNEL_MIN_SESSION_S = 600.0
"""A VPN tunnel carries sustained traffic both ways: at least TUNNEL_MIN_BYTES in all, at least
TUNNEL_MIN_EACH_WAY in each direction, and the smaller direction at least TUNNEL_MIN_RATIO of
the larger, with a session of at least TUNNEL_MIN_SESSION_S.  A one-way bulk download (a few kB
of request, megabytes back) is not a tunnel, and neither are many short sessions that add up."""

INBOUND_USE_MIN = 10
"""Answered sessions from one address to one service of a host above which the address uses the
service (an uptime monitor, a partner's client) rather than probing it: a scanner touches a
port once or a few times."""

FAILED_CALLBACK_MIN = 10
FAILED_CALLBACK_SPAN_S = 300.0
FAILED_CALLBACK_REGULAR_MIN = 6
FAILED_CALLBACK_REGULARITY = 0.25
FAILED_CALLBACK_MAX_SCORE = 0.7
"""Refused or unanswered callbacks (S0, REJ ...) from a host to an indicator are an infection
sign (the C2 is down or blocked) when they persist -- at least FAILED_CALLBACK_MIN attempts over
FAILED_CALLBACK_SPAN_S or on two days -- or repeat on a schedule (FAILED_CALLBACK_REGULAR_MIN
attempts whose interval spread is at most FAILED_CALLBACK_REGULARITY of the interval).  They
score below an answered session (at most FAILED_CALLBACK_MAX_SCORE); one attempt stays a contact."""
EXFIL_MIN_BYTES = 20_000_000
EXFIL_BASELINE_MIN_BYTES = 5_000_000
EXFIL_BASELINE_FACTOR = 10.0
"""Exfiltration: at least EXFIL_MIN_BYTES out (and twice what came back), or at least
EXFIL_BASELINE_MIN_BYTES when that is EXFIL_BASELINE_FACTOR times the host's median daily
outbound volume to all destinations (its baseline)."""

POPULAR_MIN_ORGS = 5
POPULAR_SHARE = 0.3
"""An indicator is a *popular destination* (a CDN or cloud address the actor also used) when
at least POPULAR_MIN_ORGS organizations, and POPULAR_SHARE of the registry's, talk to it
two-way.  Mere contact with it decides nothing; only C2-like regularity or volume does."""


def popular_threshold(registry_orgs: int) -> int:
    return max(POPULAR_MIN_ORGS, math.ceil(POPULAR_SHARE * registry_orgs))


INDICATOR_AGE_DAYS = ((180, 1.0), (365, 0.85))
"""Evidence confidence by the indicator's age at first contact; older than a year: 0.7."""


@dataclass(frozen=True)
class Behaviour:
    name: str
    score: float
    detail: str


def bowley_skew(q1: float, q2: float, q3: float) -> float:
    """Bowley (quartile) skewness in [-1, 1]; 0 for a symmetric or degenerate spread."""
    if q3 - q1 <= 0:
        return 0.0
    return max(-1.0, min(1.0, (q1 + q3 - 2 * q2) / (q3 - q1)))


def beacon_score(n: int, q1: float | None, q2: float | None, q3: float | None, mad: float | None,
                 size_median: float | None, size_mad: float | None, span_s: float) -> float:
    """Regularity of an outbound connection series, 0..1."""
    if n < BEACON_MIN_CONNECTIONS or not q2 or q2 <= 0 or q1 is None or q3 is None or mad is None:
        return 0.0
    dispersion = mad / q2
    regular = max(0.0, 1.0 - dispersion / 0.5)
    skew = 1.0 - abs(bowley_skew(q1, q2, q3))
    expected = span_s / q2 if q2 else 0.0
    coverage = min(1.0, n / expected) if expected > 0 else 0.0
    count = min(1.0, n / 24.0)
    if size_median and size_median > 0 and size_mad is not None:
        size_reg = max(0.0, 1.0 - (size_mad / size_median) / 0.5)
    else:
        size_reg = 0.5
    return round(0.45 * regular + 0.15 * skew + 0.15 * count + 0.1 * coverage + 0.15 * size_reg, 4)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.0f} TB"


def _fmt_s(s: float) -> str:
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}min"
    return f"{s / 3600:.1f}h"


def failed_callback(c: dict, series: dict | None) -> Behaviour | None:
    """A host that keeps calling an indicator that never answers (see FAILED_CALLBACK_MIN)."""
    n = int(series["n"]) if series and series.get("n") else 0
    if n < 2:
        return None
    span = max(0.0, float(c["last_t"] - c["first_t"]))
    days = max(1, int(c["days"]))
    q2, mad = series.get("q2"), series.get("dt_mad")  # type: ignore[union-attr]
    regular = (n >= FAILED_CALLBACK_REGULAR_MIN and q2 is not None and q2 > 0 and mad is not None
               and mad / q2 <= FAILED_CALLBACK_REGULARITY)
    persistent = (n >= FAILED_CALLBACK_MIN and span >= FAILED_CALLBACK_SPAN_S) or (days >= 2 and n >= 4)
    if not (regular or persistent):
        return None
    s = 0.5 + 0.04 * math.log2(1 + n / FAILED_CALLBACK_MIN) + (0.05 if regular else 0.0) + 0.02 * min(days - 1, 3)
    every = f", every {_fmt_s(float(q2))} ±{_fmt_s(float(mad or 0))}" if regular and q2 else ""
    return Behaviour("failed_callback", round(min(FAILED_CALLBACK_MAX_SCORE, s), 4),
                     f"{n} connection attempts over {_fmt_s(span)} on {days} day(s){every}, none answered "
                     f"(refused or no reply): the host keeps calling this address (C2 down or blocked)")


def outbound_behaviours(c: dict, series: dict | None, failed_series: dict | None = None) -> list[Behaviour]:
    """Behaviours of a victim host initiating contact with actor infrastructure."""
    out: list[Behaviour] = []
    two_way = int(c["two_way"])
    if two_way == 0:
        if not int(c["flows"]):
            return out
        # one-way telemetry (asymmetric routing, a sensor that sees one direction): replies are
        # unknown, not absent.  A regular series of requests with payload is still a beacon,
        # trusted a little less; a request series that was refused or failed is not (S0, REJ)
        if (series is not None and not int(c.get("reply_seen") or 0) and float(c["req_bytes"]) > 0
                and float(c["resp_bytes"]) == 0):
            span = max(0.0, float(c["last_t"] - c["first_t"]))
            b = beacon_score(int(series["n"]), series["q1"], series["q2"], series["q3"], series["dt_mad"],
                             series["size_median"], series["size_mad"], span)
            if b >= BEACON_THRESHOLD:
                jitter = series["dt_mad"] or 0.0
                out.append(Behaviour("beacon", round(b * ONE_WAY_FACTOR, 4),
                                     f"interval {_fmt_s(series['q2'])} ±{_fmt_s(jitter)} over {int(series['n'])} "
                                     f"connections with request payload, {c['days']} day(s); replies not in this "
                                     f"telemetry (one-way records)"))
        fb = failed_callback(c, failed_series)
        if fb is not None:
            out.append(fb)
        out.append(Behaviour("outbound_attempt", 0.3,
                             f"{c['flows']} connection attempt(s) without two-way payload"))
        return out
    port = c["service_port"]
    req, resp = float(c["req_bytes"]), float(c["resp_bytes"])
    span = max(0.0, float(c["last_t"] - c["first_t"]))
    if series is not None:
        b = beacon_score(int(series["n"]), series["q1"], series["q2"], series["q3"], series["dt_mad"],
                         series["size_median"], series["size_mad"], span)
        if b >= BEACON_THRESHOLD:
            jitter = series["dt_mad"] or 0.0
            out.append(Behaviour("beacon", b, f"interval {_fmt_s(series['q2'])} ±{_fmt_s(jitter)} over "
                                              f"{int(series['n'])} connections, {c['days']} day(s)"))
    if float(c["max_duration"]) >= LONG_SESSION_S or float(c["total_duration"]) >= LONG_CUMULATIVE_S:
        s = min(0.95, 0.7 + 0.05 * math.log2(1 + float(c["total_duration"]) / LONG_SESSION_S))
        out.append(Behaviour("long_connection", round(s, 4),
                             f"longest session {_fmt_s(float(c['max_duration']))}, cumulative "
                             f"{_fmt_s(float(c['total_duration']))}"))
    if port in TUNNEL_PORTS and req + resp >= TUNNEL_MIN_BYTES and float(c["max_duration"]) >= TUNNEL_MIN_SESSION_S \
            and min(req, resp) >= TUNNEL_MIN_EACH_WAY and min(req, resp) >= TUNNEL_MIN_RATIO * max(req, resp):
        out.append(Behaviour("vpn_tunnel", 0.9, f"sustained two-way volume on {port}/tcp: "
                                                f"{_fmt_bytes(req)} out, {_fmt_bytes(resp)} in"))
    baseline = c.get("daily_median")
    days = max(1, int(c["days"]))
    above_baseline = bool(baseline) and req / days >= EXFIL_BASELINE_FACTOR * float(baseline)
    if req > 2 * resp and (req >= EXFIL_MIN_BYTES or (req >= EXFIL_BASELINE_MIN_BYTES and above_baseline)):
        note = (f"; {req / days / float(baseline):.0f}x the host's usual daily outbound volume"
                if baseline else "")
        out.append(Behaviour("exfiltration", min(0.95, 0.75 + 0.05 * math.log10(req / EXFIL_BASELINE_MIN_BYTES + 1)),
                             f"{_fmt_bytes(req)} sent, {_fmt_bytes(resp)} received{note}"))
    if two_way >= 3 or int(c["days"]) >= 2:
        s = min(0.85, 0.55 + 0.05 * min(int(c["days"]), 4) + 0.02 * min(two_way, 10))
        out.append(Behaviour("callback", round(s, 4),
                             f"{two_way} two-way session(s) initiated by the host over {c['days']} day(s)"))
    if not out:
        out.append(Behaviour("contact", 0.4, f"{two_way} two-way session(s) initiated by the host"))
    return out


def inbound_behaviours(c: dict, *, focused: bool = False) -> list[Behaviour]:
    """Behaviours of actor infrastructure connecting to a victim host on one port.

    ``focused``: the actor address touched only a few hosts and ports of the organization
    (see MID_REQUEST_BYTES), so medium-sized requests count as exploitation too.
    """
    port = c["service_port"]
    edge = port in EDGE_PORTS
    payload = int(c["payload_sessions"])
    answered = int(c["two_way"]) > 0 or int(c["unidirectional"]) == 1
    if focused and edge and payload == 0 and answered and int(c.get("mid_payload_sessions") or 0) > 0:
        payload = int(c["mid_payload_sessions"])
        s = 0.55 + 0.05 * min(payload, 3)
        return [Behaviour("exploitation", round(s, 4),
                          f"{payload} session(s) with request payload to edge service {port}/tcp from an address "
                          f"that touched no other service of the organization, largest request "
                          f"{_fmt_bytes(float(c['max_req_bytes']))}")]
    if payload > 0 and answered and int(c["max_req_bytes"]) >= MIN_REQUEST_BYTES:
        s = 0.6 + 0.08 * min(payload, 3) + (0.1 if edge else 0.0)
        if int(c["unidirectional"]):
            s -= 0.1
        return [Behaviour("exploitation", round(min(0.95, s), 4),
                          f"{payload} session(s) with request payload to {'edge service ' if edge else ''}"
                          f"{port}/tcp, largest request {_fmt_bytes(float(c['max_req_bytes']))}")]
    if int(c["two_way"]) >= INBOUND_USE_MIN and int(c["failed"]) * 2 < int(c["flows"]):
        return [Behaviour("inbound_contact", 0.3,
                          f"{int(c['two_way'])} answered session(s) to {port}/tcp with small requests: the address "
                          f"uses the service (a monitor or client), it does not probe it")]
    return [Behaviour("scan", 0.0, "")]  # scored per host below, across ports


def scan_score(probes: int, ports: int, hosts_in_org: int) -> float:
    """Reconnaissance strength from probe counts (one host's view plus the org's breadth)."""
    s = 0.45 + 0.12 * math.log10(1 + probes) + (0.1 if ports > 1 else 0.0) + (0.1 if hosts_in_org > 1 else 0.0)
    return round(min(0.9, s), 4)


def age_factor(age_days: float | None) -> float:
    """Trust in an indicator fades as it ages: infrastructure changes hands."""
    if age_days is None or age_days < 0:
        return 1.0
    for limit, factor in INDICATOR_AGE_DAYS:
        if age_days <= limit:
            return factor
    return 0.7


def evidence_confidence(score: float, indicator_confidence: int | None, shared: bool = False,
                        age_days: float | None = None) -> int:
    """Confidence (0-100) of one evidence row: behaviour strength x trust in the indicator
    (its stated confidence, its age at first contact, shared-infrastructure marks)."""
    ic = 50 if indicator_confidence is None else max(0, min(100, int(indicator_confidence)))
    c = score * (0.5 + 0.5 * ic / 100.0) * age_factor(age_days)
    if shared:
        c *= 0.6
    return int(round(100 * c))


__all__ = [
    "Behaviour",
    "MIN_REQUEST_BYTES",
    "MID_REQUEST_BYTES",
    "FOCUSED_MAX_HOSTS",
    "FOCUSED_MAX_PORTS",
    "BEACON_THRESHOLD",
    "bowley_skew",
    "beacon_score",
    "outbound_behaviours",
    "inbound_behaviours",
    "scan_score",
    "failed_callback",
    "evidence_confidence",
    "age_factor",
    "POPULAR_MIN_ORGS",
    "POPULAR_SHARE",
    "popular_threshold",
]
