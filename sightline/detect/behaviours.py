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

Every behaviour is written once, over columns (:func:`score_outbound`, :func:`score_inbound`,
:func:`scan_scores`, :func:`evidence_confidences`: numpy arrays in, arrays out, details built by
Arrow string kernels), so that assessing a campaign of a hundred thousand contacts costs a few
array passes; the functions over one contact (:func:`outbound_behaviours`, ...) run the same
code on a one-row column set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import DEFAULT_DETECTION, DetectionParams
from .sql import EDGE_PORTS, TUNNEL_PORTS

Columns = Mapping[str, np.ndarray]
"""Contact columns by name (those of :func:`sightline.detect.sql.contacts_for_assessment_sql`):
numbers as float64 with NaN for a missing value (a contact without a series has NaN ``s_n``)."""


def popular_threshold(registry_orgs: int, params: DetectionParams = DEFAULT_DETECTION) -> int:
    return params.popular_threshold(registry_orgs)


@dataclass(frozen=True)
class Behaviour:
    name: str
    score: float
    detail: str


@dataclass
class Scored:
    """Behaviour rows of a set of contacts: ``row`` indexes the contact columns they were scored
    from (a contact can show several behaviours), in the order the behaviours are listed."""

    row: np.ndarray
    name: pa.Array
    score: np.ndarray
    detail: pa.Array

    def __len__(self) -> int:
        return len(self.row)


class _Rows:
    """Collects behaviour rows chunk by chunk."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.names: list[pa.Array] = []
        self.scores: list[np.ndarray] = []
        self.details: list[pa.Array] = []

    def add(self, mask: np.ndarray, name: str, score: np.ndarray | float, detail: pa.Array | str) -> None:
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        sc = np.broadcast_to(np.asarray(score, dtype=np.float64), mask.shape)[idx]
        self.rows.append(idx)
        self.names.append(pa.array(np.full(len(idx), name, dtype=object), pa.string()))
        self.scores.append(np.array(sc, dtype=np.float64))
        if isinstance(detail, str):
            self.details.append(pa.array(np.full(len(idx), detail, dtype=object), pa.string()))
        else:
            self.details.append(detail.take(pa.array(idx)))

    def done(self) -> Scored:
        if not self.rows:
            return Scored(np.zeros(0, np.int64), pa.array([], pa.string()), np.zeros(0), pa.array([], pa.string()))
        return Scored(
            np.concatenate(self.rows),
            pa.concat_arrays(self.names),
            np.concatenate(self.scores),
            pa.concat_arrays(self.details),
        )


# --- text, column-wise -------------------------------------------------------------------------


def _cat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of text columns and constants."""
    return pc.binary_join_element_wise(*parts, "")


def int_text(values: np.ndarray) -> pa.Array:
    """Numbers as ``f"{v:.0f}"`` (missing: ``None``)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    out = pc.cast(pa.array(np.rint(np.where(ok, v, 0)).astype(np.int64)), pa.string())
    if ok.all():
        return out
    return pc.if_else(pa.array(ok), out, "None")


def _tenths_text(values: np.ndarray) -> pa.Array:
    """Non-negative numbers with one decimal (``f"{v:.1f}"``)."""
    # formatted one by one: scaling by 10 first would round 0.35 up where ``.1f`` rounds it down
    return pa.array([f"{v:.1f}" for v in np.asarray(values, dtype=np.float64).tolist()], pa.string())


def fmt_s(seconds: np.ndarray) -> pa.Array:
    """Durations in words: ``45s``, ``12min``, ``3.5h``."""
    s = np.nan_to_num(np.asarray(seconds, dtype=np.float64))
    hours = s >= 7200
    h_text = pa.nulls(len(s), pa.string())
    if hours.any():  # formatted one by one: only the values that are shown in hours
        h_text = pc.replace_with_mask(h_text, pa.array(hours), _cat(_tenths_text(s[hours] / 3600), "h"))
    return pc.case_when(
        pc.make_struct(pa.array(s < 120), pa.array(s < 7200)),
        _cat(int_text(s), "s"),
        _cat(int_text(s / 60), "min"),
        h_text,
    )


def fmt_bytes(n: np.ndarray) -> pa.Array:
    """Volumes in words: ``512 B``, ``12 kB``, ``3 MB``."""
    v = np.nan_to_num(np.asarray(n, dtype=np.float64))
    scaled, conds = [], []
    for _ in ("B", "kB", "MB", "GB"):
        scaled.append(v)
        conds.append(np.abs(v) < 1000)
        v = v / 1000
    scaled.append(v)
    out = _cat(int_text(scaled[-1]), " TB")
    for unit, val, cond in reversed(list(zip(("B", "kB", "MB", "GB"), scaled, conds))):
        out = pc.if_else(pa.array(cond), _cat(int_text(val), " " + unit), out)
    return out


def _port_text(port: np.ndarray) -> pa.Array:
    return int_text(port)


def _round4(x: np.ndarray) -> np.ndarray:
    # Python's round (correctly rounded on the binary value), not np.round (scale then rint):
    # scores must not move by 0.0001 between the batch and the one-row path.  Scaling by 10^4
    # and rounding gives the same integer except next to a tie (.5), where the product's own
    # rounding can push it across: those few values go through Python's round
    v = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = v * 1e4
        out = np.rint(scaled) / 1e4
        near = (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6) | (np.isfinite(v) & ~np.isfinite(scaled))
    for i in np.flatnonzero(near).tolist():
        out[i] = round(float(v[i]), 4)
    return out


# --- scores ------------------------------------------------------------------------------------


def bowley_skews(q1: np.ndarray, q2: np.ndarray, q3: np.ndarray) -> np.ndarray:
    """Bowley (quartile) skewness in [-1, 1]; 0 for a symmetric or degenerate spread."""
    iqr = q3 - q1
    with np.errstate(divide="ignore", invalid="ignore"):
        sk = np.clip((q1 + q3 - 2 * q2) / iqr, -1.0, 1.0)
    return np.where(iqr > 0, sk, 0.0)


def beacon_scores(
    n: np.ndarray,
    q1: np.ndarray,
    q2: np.ndarray,
    q3: np.ndarray,
    mad: np.ndarray,
    size_median: np.ndarray,
    size_mad: np.ndarray,
    span_s: np.ndarray,
    params: DetectionParams = DEFAULT_DETECTION,
) -> np.ndarray:
    """Regularity of outbound connection series, 0..1 (NaN inputs: no series, score 0)."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        valid = (
            (np.nan_to_num(n) >= params.beacon_min_connections)
            & (np.nan_to_num(q2) > 0)
            & np.isfinite(q1)
            & np.isfinite(q3)
            & np.isfinite(mad)
        )
        regular = np.maximum(0.0, 1.0 - (mad / q2) / 0.5)
        skew = 1.0 - np.abs(bowley_skews(q1, q2, q3))
        expected = np.where(q2 > 0, span_s / q2, 0.0)
        coverage = np.where(expected > 0, np.minimum(1.0, n / expected), 0.0)
        count = np.minimum(1.0, n / 24.0)
        sized = (np.nan_to_num(size_median) > 0) & np.isfinite(size_mad)
        size_reg = np.where(sized, np.maximum(0.0, 1.0 - (size_mad / size_median) / 0.5), 0.5)
        s = 0.45 * regular + 0.15 * skew + 0.15 * count + 0.1 * coverage + 0.15 * size_reg
    return np.where(valid, _round4(np.nan_to_num(s)), 0.0)


def _f(c: Columns, name: str) -> np.ndarray:
    return np.asarray(c[name], dtype=np.float64)


def _z(c: Columns, name: str) -> np.ndarray:
    """A count column with missing values as 0."""
    return np.nan_to_num(_f(c, name))


def _failed_callbacks(c: Columns, cand: np.ndarray, params: DetectionParams) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    n = _z(c, "f_n")
    span = np.maximum(0.0, _z(c, "last_t") - _z(c, "first_t"))
    days = np.maximum(1, _z(c, "days"))
    q2, mad = _f(c, "f_q2"), _f(c, "f_dt_mad")
    with np.errstate(divide="ignore", invalid="ignore"):
        regular = (
            (n >= params.failed_callback_regular_min)
            & (np.nan_to_num(q2) > 0)
            & np.isfinite(mad)
            & (np.nan_to_num(mad / q2, nan=np.inf) <= params.failed_callback_regularity)
        )
    persistent = ((n >= params.failed_callback_min) & (span >= params.failed_callback_span_s)) | (
        (days >= 2) & (n >= 4)
    )
    mask = cand & (n >= 2) & (regular | persistent)
    s = 0.5 + 0.04 * np.log2(1 + n / params.failed_callback_min) + np.where(regular, 0.05, 0.0)
    s = s + 0.02 * np.minimum(days - 1, 3)
    score = _round4(np.minimum(params.failed_callback_max_score, s))
    every = pc.if_else(
        pa.array(regular & (np.nan_to_num(q2) > 0)),
        _cat(", every ", fmt_s(q2), " ±", fmt_s(np.nan_to_num(mad))),
        "",
    )
    detail = _cat(
        int_text(n),
        " connection attempts over ",
        fmt_s(span),
        " on ",
        int_text(days),
        " day(s)",
        every,
        ", none answered (refused or no reply): the host keeps calling this address (C2 down or blocked)",
    )
    return mask, score, detail


def score_outbound(c: Columns, params: DetectionParams = DEFAULT_DETECTION) -> Scored:
    """Behaviours of victim hosts initiating contact with actor infrastructure, one or more
    rows per contact (``c`` holds outbound contacts only)."""
    out = _Rows()
    two_way = _z(c, "two_way")
    flows = _z(c, "flows")
    req, resp = _z(c, "req_bytes"), _z(c, "resp_bytes")
    span = np.maximum(0.0, _z(c, "last_t") - _z(c, "first_t"))
    days_raw = _z(c, "days")
    has_series = np.isfinite(_f(c, "s_n"))
    sn = _z(c, "s_n")
    q2, mad = _f(c, "s_q2"), _f(c, "s_dt_mad")
    b = beacon_scores(
        sn, _f(c, "s_q1"), q2, _f(c, "s_q3"), mad, _f(c, "s_size_median"), _f(c, "s_size_mad"), span, params
    )
    beacon_ok = has_series & (b >= params.beacon_threshold)
    interval = _cat("interval ", fmt_s(q2), " ±", fmt_s(np.nan_to_num(mad)), " over ", int_text(sn))
    days_text = int_text(days_raw)

    one_way = two_way == 0
    ow = one_way & (flows > 0)
    # one-way telemetry (asymmetric routing, a sensor that sees one direction): replies are
    # unknown, not absent.  A regular series of requests with payload is still a beacon,
    # trusted a little less; a request series that was refused or failed is not (S0, REJ)
    ow_beacon = ow & beacon_ok & (_z(c, "reply_seen") == 0) & (req > 0) & (resp == 0)
    out.add(
        ow_beacon,
        "beacon",
        _round4(b * params.one_way_factor),
        _cat(
            interval,
            " connections with request payload, ",
            days_text,
            " day(s); replies not in this telemetry (one-way records)",
        ),
    )
    fb_mask, fb_score, fb_detail = _failed_callbacks(c, ow, params)
    out.add(fb_mask, "failed_callback", fb_score, fb_detail)
    out.add(ow, "outbound_attempt", 0.3, _cat(int_text(flows), " connection attempt(s) without two-way payload"))

    tw = ~one_way
    any_row = np.zeros(len(two_way), dtype=bool)

    def add(mask: np.ndarray, name: str, score: np.ndarray | float, detail: pa.Array) -> None:
        nonlocal any_row
        out.add(mask, name, score, detail)
        any_row = any_row | mask

    add(tw & beacon_ok, "beacon", b, _cat(interval, " connections, ", days_text, " day(s)"))
    max_d, tot_d = _z(c, "max_duration"), _z(c, "total_duration")
    long_ = tw & ((max_d >= params.long_session_s) | (tot_d >= params.long_cumulative_s))
    add(
        long_,
        "long_connection",
        _round4(np.minimum(0.95, 0.7 + 0.05 * np.log2(1 + tot_d / params.long_session_s))),
        _cat("longest session ", fmt_s(max_d), ", cumulative ", fmt_s(tot_d)),
    )
    port = _f(c, "service_port")
    lo, hi = np.minimum(req, resp), np.maximum(req, resp)
    tunnel = (
        tw
        & np.isin(port, TUNNEL_PORTS)
        & (req + resp >= params.tunnel_min_bytes)
        & (max_d >= params.tunnel_min_session_s)
        & (lo >= params.tunnel_min_each_way)
        & (lo >= params.tunnel_min_ratio * hi)
    )
    add(
        tunnel,
        "vpn_tunnel",
        0.9,
        _cat(
            "sustained two-way volume on ",
            _port_text(port),
            "/tcp: ",
            fmt_bytes(req),
            " out, ",
            fmt_bytes(resp),
            " in",
        ),
    )
    baseline = _z(c, "daily_median") if "daily_median" in c else np.zeros(len(two_way))
    days = np.maximum(1, days_raw)
    has_base = baseline != 0
    above = has_base & (req / days >= params.exfil_baseline_factor * baseline)
    exfil = (
        tw & (req > 2 * resp) & ((req >= params.exfil_min_bytes) | ((req >= params.exfil_baseline_min_bytes) & above))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        times = np.where(has_base, req / days / np.where(has_base, baseline, 1.0), 0.0)
    note = pc.if_else(pa.array(has_base), _cat("; ", int_text(times), "x the host's usual daily outbound volume"), "")
    add(
        exfil,
        "exfiltration",
        np.minimum(0.95, 0.75 + 0.05 * np.log10(req / params.exfil_baseline_min_bytes + 1)),
        _cat(fmt_bytes(req), " sent, ", fmt_bytes(resp), " received", note),
    )
    callback = tw & ((two_way >= 3) | (days_raw >= 2))
    add(
        callback,
        "callback",
        _round4(np.minimum(0.85, 0.55 + 0.05 * np.minimum(days_raw, 4) + 0.02 * np.minimum(two_way, 10))),
        _cat(int_text(two_way), " two-way session(s) initiated by the host over ", days_text, " day(s)"),
    )
    out.add(tw & ~any_row, "contact", 0.4, _cat(int_text(two_way), " two-way session(s) initiated by the host"))
    return _in_contact_order(out.done())


def _in_contact_order(s: Scored) -> Scored:
    """Rows of one contact together, in the order its behaviours were listed."""
    order = np.argsort(s.row, kind="stable")
    idx = pa.array(order)
    return Scored(s.row[order], s.name.take(idx), s.score[order], s.detail.take(idx))


def score_inbound(c: Columns, focused: np.ndarray, params: DetectionParams = DEFAULT_DETECTION) -> Scored:
    """The behaviour of actor infrastructure connecting to victim hosts, one row per contact
    (``c`` holds inbound contacts only): exploitation, a service's ordinary client
    (``inbound_contact``), or a probe (``scan``, score 0: scored per host across ports by
    :func:`scan_scores`).

    ``focused``: the actor address touched only a few hosts and ports of the organization (see
    ``mid_request_bytes``), so medium-sized requests count as exploitation too.
    """
    out = _Rows()
    port = _f(c, "service_port")
    edge = np.isin(port, EDGE_PORTS)
    payload = _z(c, "payload_sessions")
    mid = _z(c, "mid_payload_sessions")
    two_way = _z(c, "two_way")
    uni = _z(c, "unidirectional") != 0
    answered = (two_way > 0) | uni
    max_req = fmt_bytes(_z(c, "max_req_bytes"))
    ptext = _port_text(port)
    focused_x = np.asarray(focused, dtype=bool) & edge & (payload == 0) & answered & (mid > 0)
    out.add(
        focused_x,
        "exploitation",
        _round4(0.55 + 0.05 * np.minimum(mid, 3)),
        _cat(
            int_text(mid),
            " session(s) with request payload to edge service ",
            ptext,
            "/tcp from an address that touched no other service of the organization, largest request ",
            max_req,
        ),
    )
    left = ~focused_x
    x = left & (payload > 0) & answered & (_z(c, "max_req_bytes") >= params.min_request_bytes)
    s = 0.6 + 0.08 * np.minimum(payload, 3) + np.where(edge, 0.1, 0.0) - np.where(uni, 0.1, 0.0)
    out.add(
        x,
        "exploitation",
        _round4(np.minimum(0.95, s)),
        _cat(
            int_text(payload),
            " session(s) with request payload to ",
            pc.if_else(pa.array(edge), "edge service ", ""),
            ptext,
            "/tcp, largest request ",
            max_req,
        ),
    )
    left &= ~x
    use = left & (two_way >= params.inbound_use_min) & (_z(c, "failed") * 2 < _z(c, "flows"))
    out.add(
        use,
        "inbound_contact",
        0.3,
        _cat(
            int_text(two_way),
            " answered session(s) to ",
            ptext,
            "/tcp with small requests: the address uses the service (a monitor or client), it does not probe it",
        ),
    )
    out.add(left & ~use, "scan", 0.0, "")
    return _in_contact_order(out.done())


def scan_scores(probes: np.ndarray, ports: np.ndarray, hosts_in_org: np.ndarray) -> np.ndarray:
    """Reconnaissance strength from probe counts (one host's view plus the org's breadth)."""
    p = np.asarray(probes, dtype=np.float64)
    s = 0.45 + 0.12 * np.log10(1 + p) + np.where(np.asarray(ports) > 1, 0.1, 0.0)
    s = s + np.where(np.asarray(hosts_in_org) > 1, 0.1, 0.0)
    return _round4(np.minimum(0.9, s))


def age_factors(age_days: np.ndarray, params: DetectionParams = DEFAULT_DETECTION) -> np.ndarray:
    """Trust in indicators fades as they age: infrastructure changes hands (NaN: age unknown)."""
    a = np.asarray(age_days, dtype=np.float64)
    out = np.full(a.shape, 0.7)
    for limit, factor in reversed(params.indicator_age_days):
        out = np.where(a <= limit, factor, out)
    return np.where(np.isnan(a) | (a < 0), 1.0, out)


def evidence_confidences(
    score: np.ndarray,
    indicator_confidence: np.ndarray,
    shared: np.ndarray,
    age_days: np.ndarray,
    params: DetectionParams = DEFAULT_DETECTION,
) -> np.ndarray:
    """Confidence (0-100) of evidence rows: behaviour strength x trust in the indicator (its
    stated confidence -- NaN: 50 --, its age at first contact, shared-infrastructure marks)."""
    ic = np.clip(np.nan_to_num(np.asarray(indicator_confidence, dtype=np.float64), nan=50.0), 0, 100)
    c = np.asarray(score, dtype=np.float64) * (0.5 + 0.5 * ic / 100.0) * age_factors(age_days, params)
    c = np.where(np.asarray(shared, dtype=bool), c * 0.6, c)
    return np.rint(100 * c).astype(np.int64)


# --- the same, one contact at a time -------------------------------------------------------------

_CONTACT_DEFAULTS = {
    "two_way": 0,
    "flows": 0,
    "reply_seen": 0,
    "req_bytes": 0,
    "resp_bytes": 0,
    "first_t": 0.0,
    "last_t": 0.0,
    "days": 1,
    "max_duration": 0.0,
    "total_duration": 0.0,
    "service_port": None,
    "daily_median": None,
    "payload_sessions": 0,
    "mid_payload_sessions": 0,
    "unidirectional": 0,
    "max_req_bytes": 0,
    "failed": 0,
}
SERIES_STATS = ("n", "q1", "q2", "q3", "dt_mad", "size_median", "size_mad")
"""Interval statistics of a contact's connection series (``s_<name>`` columns)."""
FAILED_STATS = ("n", "q2", "dt_mad")
"""Interval statistics of its unanswered attempts (``f_<name>`` columns)."""
SCORE_COLUMNS = (*_CONTACT_DEFAULTS, *("s_" + k for k in SERIES_STATS), *("f_" + k for k in FAILED_STATS))
"""Every column the scoring reads."""


def table_columns(t: pa.Table) -> dict[str, np.ndarray]:
    """The scoring columns of a contacts table as float arrays (a missing column or value: NaN);
    series statistics only where the contact has a series, as the one-contact functions take them."""
    cols: dict[str, np.ndarray] = {}
    for name in SCORE_COLUMNS:
        if name in t.column_names:
            cols[name] = pc.cast(t.column(name), pa.float64()).to_numpy(zero_copy_only=False)
        else:
            cols[name] = np.full(t.num_rows, np.nan)
    for prefix, names in (("s_", SERIES_STATS), ("f_", FAILED_STATS)):
        missing = np.isnan(cols[prefix + "n"])
        if missing.any():
            for k in names:
                cols[prefix + k] = np.where(missing, np.nan, cols[prefix + k])
    return cols


def _one(value: Any) -> np.ndarray:
    return np.array([np.nan if value is None else float(value)], dtype=np.float64)


def _columns(c: Mapping[str, Any], series: Mapping[str, Any] | None, failed: Mapping[str, Any] | None) -> Columns:
    cols = {k: _one(c.get(k, d)) for k, d in _CONTACT_DEFAULTS.items()}
    for k in SERIES_STATS:
        cols["s_" + k] = _one(series.get(k) if series else None)
    for k in FAILED_STATS:
        cols["f_" + k] = _one(failed.get(k) if failed else None)
    return cols


def _behaviours(s: Scored) -> list[Behaviour]:
    return [Behaviour(n, float(v), d) for n, v, d in zip(s.name.to_pylist(), s.score.tolist(), s.detail.to_pylist())]


def bowley_skew(q1: float, q2: float, q3: float) -> float:
    """Bowley (quartile) skewness of one series (see :func:`bowley_skews`)."""
    return float(bowley_skews(np.array([q1], float), np.array([q2], float), np.array([q3], float))[0])


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
    """Regularity of one outbound connection series, 0..1 (see :func:`beacon_scores`)."""
    return float(
        beacon_scores(
            _one(n), _one(q1), _one(q2), _one(q3), _one(mad), _one(size_median), _one(size_mad), _one(span_s), params
        )[0]
    )


def failed_callback(
    c: Mapping[str, Any], series: Mapping[str, Any] | None, params: DetectionParams = DEFAULT_DETECTION
) -> Behaviour | None:
    """A host that keeps calling an indicator that never answers (see ``failed_callback_min``)."""
    cols = _columns(c, None, series)
    mask, score, detail = _failed_callbacks(cols, np.ones(1, dtype=bool), params)
    if not mask[0]:
        return None
    return Behaviour("failed_callback", float(score[0]), str(detail[0].as_py()))


def outbound_behaviours(
    c: Mapping[str, Any],
    series: Mapping[str, Any] | None,
    failed_series: Mapping[str, Any] | None = None,
    params: DetectionParams = DEFAULT_DETECTION,
) -> list[Behaviour]:
    """Behaviours of a victim host initiating contact with actor infrastructure (one contact)."""
    return _behaviours(score_outbound(_columns(c, series, failed_series), params))


def inbound_behaviours(
    c: Mapping[str, Any], *, focused: bool = False, params: DetectionParams = DEFAULT_DETECTION
) -> list[Behaviour]:
    """Behaviours of actor infrastructure connecting to a victim host on one port (one contact)."""
    return _behaviours(score_inbound(_columns(c, None, None), np.array([focused]), params))


def scan_score(probes: int, ports: int, hosts_in_org: int) -> float:
    """Reconnaissance strength of one host's probes (see :func:`scan_scores`)."""
    return float(scan_scores(np.array([probes]), np.array([ports]), np.array([hosts_in_org]))[0])


def age_factor(age_days: float | None, params: DetectionParams = DEFAULT_DETECTION) -> float:
    """Trust in an indicator fades as it ages: infrastructure changes hands."""
    return float(age_factors(_one(age_days), params)[0])


def evidence_confidence(
    score: float,
    indicator_confidence: int | None,
    shared: bool = False,
    age_days: float | None = None,
    params: DetectionParams = DEFAULT_DETECTION,
) -> int:
    """Confidence (0-100) of one evidence row (see :func:`evidence_confidences`)."""
    return int(
        evidence_confidences(
            np.array([score], float), _one(indicator_confidence), np.array([shared]), _one(age_days), params
        )[0]
    )


__all__ = [
    "SCORE_COLUMNS",
    "SERIES_STATS",
    "FAILED_STATS",
    "table_columns",
    "Behaviour",
    "Columns",
    "Scored",
    "bowley_skew",
    "bowley_skews",
    "beacon_score",
    "beacon_scores",
    "outbound_behaviours",
    "inbound_behaviours",
    "score_outbound",
    "score_inbound",
    "scan_score",
    "scan_scores",
    "failed_callback",
    "evidence_confidence",
    "evidence_confidences",
    "age_factor",
    "age_factors",
    "popular_threshold",
    "fmt_s",
    "fmt_bytes",
    "int_text",
]
