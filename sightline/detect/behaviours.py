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

Thresholds are :class:`sightline.config.DetectionParams` (defaults there only): each function
takes ``params`` and defaults to :data:`sightline.config.DEFAULT_DETECTION`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import DEFAULT_DETECTION, DetectionParams
from .sql import EDGE_PORTS, TUNNEL_PORTS


def popular_threshold(registry_orgs: int, params: DetectionParams = DEFAULT_DETECTION) -> int:
    return params.popular_threshold(registry_orgs)


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


def beacon_score(
    n: int,
    q1: float | None,
    q2: float | None,
    q3: float | None,
    mad: float | None,
    size_median: float | None,
    size_mad: float | None,
    span_s: float,
    params: DetectionParams = DEFAULT_DETECTION,
) -> float:
    """Regularity of an outbound connection series, 0..1."""
    if n < params.beacon_min_connections or not q2 or q2 <= 0 or q1 is None or q3 is None or mad is None:
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


def failed_callback(c: dict, series: dict | None, params: DetectionParams = DEFAULT_DETECTION) -> Behaviour | None:
    """A host that keeps calling an indicator that never answers (see ``failed_callback_min``)."""
    n = int(series["n"]) if series and series.get("n") else 0
    if n < 2:
        return None
    span = max(0.0, float(c["last_t"] - c["first_t"]))
    days = max(1, int(c["days"]))
    q2, mad = series.get("q2"), series.get("dt_mad")  # type: ignore[union-attr]
    regular = (
        n >= params.failed_callback_regular_min
        and q2 is not None
        and q2 > 0
        and mad is not None
        and mad / q2 <= params.failed_callback_regularity
    )
    persistent = (n >= params.failed_callback_min and span >= params.failed_callback_span_s) or (days >= 2 and n >= 4)
    if not (regular or persistent):
        return None
    s = (
        0.5
        + 0.04 * math.log2(1 + n / params.failed_callback_min)
        + (0.05 if regular else 0.0)
        + 0.02 * min(days - 1, 3)
    )
    every = f", every {_fmt_s(float(q2))} ±{_fmt_s(float(mad or 0))}" if regular and q2 else ""
    return Behaviour(
        "failed_callback",
        round(min(params.failed_callback_max_score, s), 4),
        f"{n} connection attempts over {_fmt_s(span)} on {days} day(s){every}, none answered "
        f"(refused or no reply): the host keeps calling this address (C2 down or blocked)",
    )


def outbound_behaviours(
    c: dict, series: dict | None, failed_series: dict | None = None, params: DetectionParams = DEFAULT_DETECTION
) -> list[Behaviour]:
    """Behaviours of a victim host initiating contact with actor infrastructure."""
    out: list[Behaviour] = []
    two_way = int(c["two_way"])
    if two_way == 0:
        if not int(c["flows"]):
            return out
        # one-way telemetry (asymmetric routing, a sensor that sees one direction): replies are
        # unknown, not absent.  A regular series of requests with payload is still a beacon,
        # trusted a little less; a request series that was refused or failed is not (S0, REJ)
        if (
            series is not None
            and not int(c.get("reply_seen") or 0)
            and float(c["req_bytes"]) > 0
            and float(c["resp_bytes"]) == 0
        ):
            span = max(0.0, float(c["last_t"] - c["first_t"]))
            b = beacon_score(
                int(series["n"]),
                series["q1"],
                series["q2"],
                series["q3"],
                series["dt_mad"],
                series["size_median"],
                series["size_mad"],
                span,
                params,
            )
            if b >= params.beacon_threshold:
                jitter = series["dt_mad"] or 0.0
                out.append(
                    Behaviour(
                        "beacon",
                        round(b * params.one_way_factor, 4),
                        f"interval {_fmt_s(series['q2'])} ±{_fmt_s(jitter)} over {int(series['n'])} "
                        f"connections with request payload, {c['days']} day(s); replies not in this "
                        f"telemetry (one-way records)",
                    )
                )
        fb = failed_callback(c, failed_series, params)
        if fb is not None:
            out.append(fb)
        out.append(Behaviour("outbound_attempt", 0.3, f"{c['flows']} connection attempt(s) without two-way payload"))
        return out
    port = c["service_port"]
    req, resp = float(c["req_bytes"]), float(c["resp_bytes"])
    span = max(0.0, float(c["last_t"] - c["first_t"]))
    if series is not None:
        b = beacon_score(
            int(series["n"]),
            series["q1"],
            series["q2"],
            series["q3"],
            series["dt_mad"],
            series["size_median"],
            series["size_mad"],
            span,
            params,
        )
        if b >= params.beacon_threshold:
            jitter = series["dt_mad"] or 0.0
            out.append(
                Behaviour(
                    "beacon",
                    b,
                    f"interval {_fmt_s(series['q2'])} ±{_fmt_s(jitter)} over "
                    f"{int(series['n'])} connections, {c['days']} day(s)",
                )
            )
    if float(c["max_duration"]) >= params.long_session_s or float(c["total_duration"]) >= params.long_cumulative_s:
        s = min(0.95, 0.7 + 0.05 * math.log2(1 + float(c["total_duration"]) / params.long_session_s))
        out.append(
            Behaviour(
                "long_connection",
                round(s, 4),
                f"longest session {_fmt_s(float(c['max_duration']))}, cumulative {_fmt_s(float(c['total_duration']))}",
            )
        )
    if (
        port in TUNNEL_PORTS
        and req + resp >= params.tunnel_min_bytes
        and float(c["max_duration"]) >= params.tunnel_min_session_s
        and min(req, resp) >= params.tunnel_min_each_way
        and min(req, resp) >= params.tunnel_min_ratio * max(req, resp)
    ):
        out.append(
            Behaviour(
                "vpn_tunnel",
                0.9,
                f"sustained two-way volume on {port}/tcp: {_fmt_bytes(req)} out, {_fmt_bytes(resp)} in",
            )
        )
    baseline = c.get("daily_median")
    days = max(1, int(c["days"]))
    above_baseline = bool(baseline) and req / days >= params.exfil_baseline_factor * float(baseline)
    if req > 2 * resp and (
        req >= params.exfil_min_bytes or (req >= params.exfil_baseline_min_bytes and above_baseline)
    ):
        note = f"; {req / days / float(baseline):.0f}x the host's usual daily outbound volume" if baseline else ""
        out.append(
            Behaviour(
                "exfiltration",
                min(0.95, 0.75 + 0.05 * math.log10(req / params.exfil_baseline_min_bytes + 1)),
                f"{_fmt_bytes(req)} sent, {_fmt_bytes(resp)} received{note}",
            )
        )
    if two_way >= 3 or int(c["days"]) >= 2:
        s = min(0.85, 0.55 + 0.05 * min(int(c["days"]), 4) + 0.02 * min(two_way, 10))
        out.append(
            Behaviour(
                "callback", round(s, 4), f"{two_way} two-way session(s) initiated by the host over {c['days']} day(s)"
            )
        )
    if not out:
        out.append(Behaviour("contact", 0.4, f"{two_way} two-way session(s) initiated by the host"))
    return out


def inbound_behaviours(
    c: dict, *, focused: bool = False, params: DetectionParams = DEFAULT_DETECTION
) -> list[Behaviour]:
    """Behaviours of actor infrastructure connecting to a victim host on one port.

    ``focused``: the actor address touched only a few hosts and ports of the organization
    (see ``mid_request_bytes``), so medium-sized requests count as exploitation too.
    """
    port = c["service_port"]
    edge = port in EDGE_PORTS
    payload = int(c["payload_sessions"])
    answered = int(c["two_way"]) > 0 or int(c["unidirectional"]) == 1
    if focused and edge and payload == 0 and answered and int(c.get("mid_payload_sessions") or 0) > 0:
        payload = int(c["mid_payload_sessions"])
        s = 0.55 + 0.05 * min(payload, 3)
        return [
            Behaviour(
                "exploitation",
                round(s, 4),
                f"{payload} session(s) with request payload to edge service {port}/tcp from an address "
                f"that touched no other service of the organization, largest request "
                f"{_fmt_bytes(float(c['max_req_bytes']))}",
            )
        ]
    if payload > 0 and answered and int(c["max_req_bytes"]) >= params.min_request_bytes:
        s = 0.6 + 0.08 * min(payload, 3) + (0.1 if edge else 0.0)
        if int(c["unidirectional"]):
            s -= 0.1
        return [
            Behaviour(
                "exploitation",
                round(min(0.95, s), 4),
                f"{payload} session(s) with request payload to {'edge service ' if edge else ''}"
                f"{port}/tcp, largest request {_fmt_bytes(float(c['max_req_bytes']))}",
            )
        ]
    if int(c["two_way"]) >= params.inbound_use_min and int(c["failed"]) * 2 < int(c["flows"]):
        return [
            Behaviour(
                "inbound_contact",
                0.3,
                f"{int(c['two_way'])} answered session(s) to {port}/tcp with small requests: the address "
                f"uses the service (a monitor or client), it does not probe it",
            )
        ]
    return [Behaviour("scan", 0.0, "")]  # scored per host below, across ports


def scan_score(probes: int, ports: int, hosts_in_org: int) -> float:
    """Reconnaissance strength from probe counts (one host's view plus the org's breadth)."""
    s = 0.45 + 0.12 * math.log10(1 + probes) + (0.1 if ports > 1 else 0.0) + (0.1 if hosts_in_org > 1 else 0.0)
    return round(min(0.9, s), 4)


def age_factor(age_days: float | None, params: DetectionParams = DEFAULT_DETECTION) -> float:
    """Trust in an indicator fades as it ages: infrastructure changes hands."""
    if age_days is None or age_days < 0:
        return 1.0
    for limit, factor in params.indicator_age_days:
        if age_days <= limit:
            return factor
    return 0.7


def evidence_confidence(
    score: float,
    indicator_confidence: int | None,
    shared: bool = False,
    age_days: float | None = None,
    params: DetectionParams = DEFAULT_DETECTION,
) -> int:
    """Confidence (0-100) of one evidence row: behaviour strength x trust in the indicator
    (its stated confidence, its age at first contact, shared-infrastructure marks)."""
    ic = 50 if indicator_confidence is None else max(0, min(100, int(indicator_confidence)))
    c = score * (0.5 + 0.5 * ic / 100.0) * age_factor(age_days, params)
    if shared:
        c *= 0.6
    return int(round(100 * c))


__all__ = [
    "Behaviour",
    "bowley_skew",
    "beacon_score",
    "outbound_behaviours",
    "inbound_behaviours",
    "scan_score",
    "failed_callback",
    "evidence_confidence",
    "age_factor",
    "popular_threshold",
]
