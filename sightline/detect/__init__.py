"""Detect: flows x indicators -> per-contact aggregates, on any engine.

Public API::

    run_detection(engine, flow_files, indicators, orgs, params=DEFAULT_DETECTION) -> Detection

The engine does the heavy lifting (indicator match, per-contact aggregation, interval
statistics, host -> organization mapping); what comes back is small (one row per
host x actor IP x direction x port) and is scored by :mod:`sightline.detect.behaviours`.
Thresholds are :class:`sightline.config.DetectionParams`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from ..config import DEFAULT_DETECTION, DetectionParams
from ..engines.base import Engine
from ..schema import FLOW_SCHEMA, INDICATOR_SCHEMA, ORG_SCHEMA
from . import sql

FlowsFor = Callable[..., None]
"""``flows_for(view, ips, columns)`` registers as ``view`` every stored flow to or from the
addresses in ``ips`` (columns ``ip4`` uint32, ``ip6`` binary(16)), e.g. through the indicator
index; only ``columns`` need to hold values (FLOW_SCHEMA names)."""


@dataclass
class Detection:
    contacts: pa.Table  # with the connection-series statistics (s_*) and talker_orgs
    stale: pa.Table
    host_org: pa.Table
    matched_flows: int
    timings: list[dict] = field(default_factory=list)
    baseline: pa.Table | None = None  # host -> daily outbound bytes (median)
    actor_org: pa.Table | None = None  # actor address inside a registered organization -> org_id


def run_detection(
    engine: Engine,
    flow_files: list[str],
    indicators: pa.Table,
    orgs: pa.Table | None = None,
    *,
    flows: pa.Table | None = None,
    flows_for: FlowsFor | None = None,
    flows_registered: bool = False,
    params: DetectionParams = DEFAULT_DETECTION,
) -> Detection:
    """Match the stored flows against the indicators and aggregate per contact.

    ``flows``, when given, replaces ``flow_files``: the candidate rows an indicator index
    selected (see :mod:`sightline.store.index`); ``flows_registered`` says the engine's
    ``flows`` view already holds them (the engine read them itself).  Hosts' usual volumes
    need all their flows, not only those to indicators: ``flows_for`` provides them (required
    with pre-selected flows).
    """
    if (flows is not None or flows_registered) and flows_for is None:
        raise ValueError("flows_for is needed with pre-selected flows: baselines read all of a host's flows")
    timings: list[dict] = []

    def step(name: str, statement: str, count_table: str | None = None) -> None:
        t0 = time.perf_counter()
        engine.execute(statement)
        rows = None
        if count_table:
            rows = int(engine.query(f"SELECT count(*) AS n FROM {count_table}").column(0)[0].as_py())
        timings.append({"stage": name, "rows": rows, "seconds": round(time.perf_counter() - t0, 3)})

    if flows_registered:
        pass
    elif flows is not None:
        engine.register_table("flows", flows.cast(FLOW_SCHEMA))
    else:
        engine.register_parquet("flows", flow_files, FLOW_SCHEMA)
    engine.register_table(
        "indicators", indicators.cast(INDICATOR_SCHEMA) if indicators.num_rows else INDICATOR_SCHEMA.empty_table()
    )
    engine.register_table("orgs", (orgs if orgs is not None else ORG_SCHEMA.empty_table()).cast(ORG_SCHEMA))
    step("indicators", sql.IND_IP, "ind_ip")
    kinds = {(r["fam"], r["kind"]) for r in engine.query(sql.INDICATOR_KINDS_SQL).to_pylist()}
    pre = sql.prefilter_sql(kinds)
    if pre is not None:
        step("prefilter", pre, "match_pre")
    step("match", sql.match_sql(kinds, "match_pre" if pre is not None else "flows"), "matched")
    if pre is not None:
        engine.release("match_pre")
    step("contacts", sql.contacts_sql(params.min_request_bytes, params.mid_request_bytes), "contacts")
    step("series_points", sql.series_points_sql(), "series_pts")
    step("intervals", sql.intervals_sql(), "series")
    step("failed_points", sql.failed_points_sql(), "fail_pts")
    step("failed_intervals", sql.failed_series_sql(), "fail_series")
    engine.release("series_pts", "fail_pts")
    step("host_org", sql.host_org_sql(), "host_org")
    if flows_for is not None:
        hosts = engine.query(sql.baseline_hosts_sql(params.exfil_baseline_min_bytes))
        flows_for(
            "baseline_flows",
            pa.table({"ip4": hosts.column("host_ip4"), "ip6": hosts.column("host_ip6")}),
            ["ts", "src_ip", "src_ip6", "bytes_out"],
        )
        step("baseline", sql.baseline_sql(params.exfil_baseline_min_bytes, "baseline_flows"), "host_baseline")
        engine.release("baseline_flows")
    elif engine.in_process:
        step("baseline", sql.baseline_sql(params.exfil_baseline_min_bytes), "host_baseline")
    else:
        # a cluster engine reads the store once for both address families (no join filters
        # on its scans), then joins the few flows of those hosts; not at all without hosts
        n_hosts = engine.query(f"SELECT count(*) AS n FROM ({sql.baseline_hosts_sql(params.exfil_baseline_min_bytes)})")
        if int(n_hosts.column(0)[0].as_py()):
            step("baseline_scan", sql.baseline_pre_sql(params.exfil_baseline_min_bytes), "baseline_pre")
        else:
            engine.register_table(
                "baseline_pre", pa.schema([FLOW_SCHEMA.field(c) for c in sql.BASELINE_COLUMNS]).empty_table()
            )
        step("baseline", sql.baseline_sql(params.exfil_baseline_min_bytes, "baseline_pre"), "host_baseline")
        engine.release("baseline_pre")
    step("popularity", sql.POPULARITY_SQL, "ind_pop")
    step("actor_org", sql.actor_org_sql(), "actor_org")
    registry_orgs = len(set(orgs.column("org_id").to_pylist())) if orgs is not None and orgs.num_rows else 0
    matched = int(engine.query("SELECT count(*) FROM matched").column(0)[0].as_py())
    return Detection(
        contacts=engine.query(sql.contacts_for_assessment_sql(params.popular_threshold(registry_orgs))),
        stale=engine.query(sql.stale_sql()),
        host_org=engine.query("SELECT * FROM host_org"),
        baseline=engine.query("SELECT * FROM host_baseline"),
        actor_org=engine.query("SELECT * FROM actor_org"),
        matched_flows=matched,
        timings=timings,
    )


__all__ = ["Detection", "FlowsFor", "run_detection"]
