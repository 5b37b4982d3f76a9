"""Scoring maths of the detections, from case tables."""

from __future__ import annotations

import numpy as np
import pytest

from sightline.config import DEFAULT_DETECTION, DetectionParams
from sightline.detect.behaviours import (
    age_factor,
    beacon_score,
    bowley_skew,
    evidence_confidence,
    outbound_behaviours,
)


def _series(intervals: np.ndarray, sizes: np.ndarray) -> dict:
    q1, q2, q3 = np.percentile(intervals, [25, 50, 75])
    return {
        "n": len(intervals) + 1,
        "q1": q1,
        "q2": q2,
        "q3": q3,
        "dt_mad": float(np.median(np.abs(intervals - q2))),
        "size_median": float(np.median(sizes)),
        "size_mad": float(np.median(np.abs(sizes - np.median(sizes)))),
    }


rng = np.random.default_rng(5)
BEACON_CASES = [
    ("5min +-3%", 300 * (1 + 0.03 * rng.uniform(-1, 1, 200)), True),
    ("1h +-20%", 3600 * (1 + 0.2 * rng.uniform(-1, 1, 100)), True),
    ("10s +-40%", 10 * (1 + 0.4 * rng.uniform(-1, 1, 500)), True),
    ("poisson browsing", rng.exponential(120, 300), False),
    ("bursty human", np.concatenate([rng.uniform(1, 5, 100), rng.uniform(3000, 30000, 20)]), False),
]


@pytest.mark.parametrize("intervals,is_beacon", [(c[1], c[2]) for c in BEACON_CASES], ids=[c[0] for c in BEACON_CASES])
def test_beacon_score_separates_regular_from_human(intervals: np.ndarray, is_beacon: bool) -> None:
    s = _series(intervals, rng.normal(500, 20, len(intervals)))
    score = beacon_score(
        s["n"], s["q1"], s["q2"], s["q3"], s["dt_mad"], s["size_median"], s["size_mad"], float(intervals.sum())
    )
    assert (score >= DEFAULT_DETECTION.beacon_threshold) == is_beacon, score


def test_beacon_needs_enough_connections() -> None:
    assert beacon_score(3, 299, 300, 301, 1, 500, 5, 900) == 0.0
    # the minimum is the parameters', not the module's
    assert beacon_score(3, 299, 300, 301, 1, 500, 5, 900, DetectionParams(beacon_min_connections=3)) > 0.0


@pytest.mark.parametrize("q,expected", [((1, 2, 3), 0.0), ((1, 1, 3), 1.0), ((1, 3, 3), -1.0), ((2, 2, 2), 0.0)])
def test_bowley_skew(q: tuple, expected: float) -> None:
    assert bowley_skew(*q) == expected


@pytest.mark.parametrize("age,factor", [(None, 1.0), (-3, 1.0), (30, 1.0), (200, 0.85), (800, 0.7)])
def test_indicator_age_factor(age, factor) -> None:
    assert age_factor(age) == factor


def test_evidence_confidence_orders_by_trust() -> None:
    hi = evidence_confidence(0.9, 90)
    lo = evidence_confidence(0.9, 20)
    shared = evidence_confidence(0.9, 90, shared=True)
    old = evidence_confidence(0.9, 90, age_days=900)
    assert hi > old > lo and hi > shared
    assert 0 <= lo and hi <= 100


def _contact(**kw) -> dict:
    c = {
        "two_way": 4,
        "flows": 4,
        "service_port": 443,
        "req_bytes": 1000,
        "resp_bytes": 5000,
        "first_t": 0.0,
        "last_t": 3600.0,
        "max_duration": 10.0,
        "total_duration": 40.0,
        "days": 1,
        "daily_median": None,
    }
    c.update(kw)
    return c


@pytest.mark.parametrize(
    "kw,expect",
    [
        ({"req_bytes": 30_000_000, "resp_bytes": 100_000}, True),  # large in absolute terms
        ({"req_bytes": 6_000_000, "resp_bytes": 100_000, "daily_median": 200_000}, True),  # 30x its baseline
        ({"req_bytes": 6_000_000, "resp_bytes": 100_000, "daily_median": 5_000_000}, False),  # a busy host's normal day
        ({"req_bytes": 30_000_000, "resp_bytes": 40_000_000}, False),  # a download, not exfiltration
    ],
    ids=["absolute", "above-baseline", "within-baseline", "download"],
)
def test_exfiltration(kw: dict, expect: bool) -> None:
    names = {b.name for b in outbound_behaviours(_contact(**kw), None)}
    assert ("exfiltration" in names) == expect


def test_tunnel_and_long_connection() -> None:
    names = {
        b.name
        for b in outbound_behaviours(
            _contact(
                service_port=5555, req_bytes=3_000_000, resp_bytes=9_000_000, max_duration=7200.0, total_duration=7200.0
            ),
            None,
        )
    }
    assert {"vpn_tunnel", "long_connection"} <= names
    assert {b.name for b in outbound_behaviours(_contact(two_way=0), None)} == {"outbound_attempt"}
